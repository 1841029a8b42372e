"""Grafana dashboards for sysmon-exporter, as code (grafana-foundation-sdk, Grafana 11 line).

``python dashboards/generate.py`` writes ``dashboards/<uid>.json`` and copies them, with
``dashboards/rules.yaml``, into the Helm chart's ``files/`` so the chart ships exactly what
is reviewed here. ``--check`` writes nothing and exits 1 when any output is stale.

Every query selects ``job=~"$job", instance=~"$instance"``: no job name or datasource uid
is written into a dashboard; the datasource is the ``$datasource`` variable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, heatmap, prometheus, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import heatmap as heatmap_model
from grafana_foundation_sdk.models import prometheus as prometheus_model

HERE = Path(__file__).resolve().parent
CHART_FILES = HERE.parent / "helm" / "sysmon-exporter" / "files"

DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'job=~"$job", instance=~"$instance"'
CPU_SEL = SEL + ', cpu=~"$cpu"'
FLEET_SEL = 'job=~"$job"'


def query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    if legend:
        q = q.legend_format(legend)
    if instant:
        q = q.instant().format(prometheus_model.PromQueryFormat.TABLE)
    return q


def ts(title: str, description: str, unit: str, *targets: prometheus.Dataquery) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).unit(unit).datasource(DS)
    panel = panel.legend(
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.RIGHT)
        .show_legend(True)
        .calcs(["mean", "min", "max"])
    )
    panel = panel.tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI))
    for target in targets:
        panel = panel.with_target(target)
    return panel


def rows_heatmap(title: str, description: str, unit: str, expr: str, legend: str) -> heatmap.Panel:
    """One row per series (calculate off): 64 cores stay 64 readable rows."""
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .with_target(query(expr, legend))
        .calculate(False)
        .cell_gap(1)
        .color(heatmap.HeatmapColorOptions().mode(heatmap_model.HeatmapColorMode.SCHEME).scheme("Turbo").steps(64))
        .y_axis(heatmap.YAxisConfig().unit("short"))
        .cell_values(heatmap.CellValues().unit(unit))
        .show_legend()
        .mode(common.TooltipDisplayMode.SINGLE)
    )


def label_values(name: str, label: str, expr: str) -> db.QueryVariable:
    """A multi-value variable over a label, "All" meaning any value (``.*``)."""
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query({"qryType": 1, "query": expr, "refId": "PrometheusVariableQueryEditor-VariableQuery"})
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.NATURAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


def base(uid: str, title: str, description: str, *extra: db.QueryVariable) -> db.Dashboard:
    """A dashboard with the datasource, job and instance variables, then ``extra`` ones."""
    d = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["sysmon"])
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(label_values("job", "Job", "label_values(sysmon_build_info, job)"))
        .with_variable(label_values("instance", "Instance", 'label_values(sysmon_build_info{job=~"$job"}, instance)'))
    )
    for v in extra:
        d = d.with_variable(v)
    return d


def cpu_frequency() -> db.Dashboard:
    freq = f"sysmon_cpu_frequency_hertz{{{CPU_SEL}}}"
    usage = f"sysmon_cpu_usage_ratio{{{CPU_SEL}}}"
    busy = (
        f'1 - sum by (job, instance, cpu) (rate(sysmon_cpu_seconds_total{{{CPU_SEL}, mode=~"idle|iowait"}}'
        "[$__rate_interval]))"
    )
    d = base(
        "sysmon-cpu-frequency",
        "sysmon / CPU frequency",
        "Per-core clock, where it comes from and whether it drops while the cores are busy; fleet views below.",
        label_values("cpu", "CPU", f"label_values(sysmon_cpu_frequency_hertz{{{SEL}}}, cpu)"),
    )
    d = d.with_row(db.Row("Per core"))
    d = d.with_panel(
        ts(
            "Frequency per core",
            "sysmon_cpu_frequency_hertz: from cpufreq, /proc/cpuinfo or perf (see the source table).",
            "hertz",
            query(freq, "{{instance}} cpu{{cpu}}"),
        )
        .span(12)
        .height(9)
    )
    d = d.with_panel(
        ts(
            "Usage per core",
            "Busy share of each core over the exporter's sample window (sysmon_cpu_usage_ratio). "
            "A core busy here while its frequency drops on the left is being throttled.",
            "percentunit",
            query(usage, "{{instance}} cpu{{cpu}}"),
        )
        .min(0)
        .max(1)
        .span(12)
        .height(9)
    )
    d = d.with_panel(
        rows_heatmap(
            "Frequency, one row per core",
            "Each row is a core, colour is its frequency: readable at 64 cores.",
            "hertz",
            freq,
            "{{cpu}}",
        )
        .span(12)
        .height(10)
    )
    d = d.with_panel(
        rows_heatmap(
            "Usage, one row per core",
            "Each row is a core, colour is its busy share.",
            "percentunit",
            usage,
            "{{cpu}}",
        )
        .span(12)
        .height(10)
    )
    d = d.with_panel(
        table.Panel()
        .title("Frequency source per core")
        .description("Which source supplied sysmon_cpu_frequency_hertz: cpufreq, cpuinfo or perf.")
        .datasource(DS)
        .with_target(query(f"sysmon_cpu_frequency_source_info{{{CPU_SEL}}} == 1", instant=True))
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True},
                    "indexByName": {"instance": 0, "cpu": 1, "source": 2},
                },
            )
        )
        .span(12)
        .height(8)
    )
    d = d.with_panel(
        bargauge.Panel()
        .title("Cores per frequency source")
        .description("How many cores each source supplies; sources absent here have no cores.")
        .datasource(DS)
        .with_target(
            query(
                f"count by (instance, source) (sysmon_cpu_frequency_source_info{{{CPU_SEL}}} == 1)",
                "{{instance}} {{source}}",
                instant=True,
            )
        )
        .unit("short")
        .span(12)
        .height(8)
    )
    d = d.with_panel(
        ts(
            "Effective frequency (perf): cycles per busy second",
            "rate(sysmon_cpu_cycles_total) divided by the core's busy share: the average clock while running. "
            "Empty where perf counters are unavailable (no PMU, or no CAP_PERFMON).",
            "hertz",
            query(
                f"rate(sysmon_cpu_cycles_total{{{CPU_SEL}}}[$__rate_interval])\n  / on (job, instance, cpu) ({busy})",
                "{{instance}} cpu{{cpu}}",
            ),
        )
        .span(12)
        .height(9)
    )
    d = d.with_panel(
        ts(
            "Cycles per reference cycle (perf)",
            "1.0 is the nominal (TSC) rate, above 1 is turbo, below 1 is throttled. "
            "Empty where the PMU has no reference cycles.",
            "percentunit",
            query(
                f"rate(sysmon_cpu_cycles_total{{{CPU_SEL}}}[$__rate_interval])\n"
                f"  / rate(sysmon_cpu_ref_cycles_total{{{CPU_SEL}}}[$__rate_interval])",
                "{{instance}} cpu{{cpu}}",
            ),
        )
        .span(12)
        .height(9)
    )
    band = [model.DynamicConfigValue(id_val="custom.fillBelowTo", value="supported min")]
    d = d.with_panel(
        ts(
            "Frequency against the supported range",
            "Lowest, average and highest core, inside the band cpufreq reports (cpuinfo_min_freq .. "
            "cpuinfo_max_freq). The band is empty where there is no cpufreq driver (most VMs).",
            "hertz",
            query(f"min by (instance) (sysmon_cpu_frequency_hertz{{{CPU_SEL}}})", "lowest core", "A"),
            query(f"avg by (instance) (sysmon_cpu_frequency_hertz{{{CPU_SEL}}})", "average", "B"),
            query(f"max by (instance) (sysmon_cpu_frequency_hertz{{{CPU_SEL}}})", "highest core", "C"),
            query(f"min by (instance) (sysmon_cpu_frequency_min_hertz{{{CPU_SEL}}})", "supported min", "D"),
            query(f"max by (instance) (sysmon_cpu_frequency_max_hertz{{{CPU_SEL}}})", "supported max", "E"),
        )
        .override_by_name("supported max", band)
        .span(24)
        .height(9)
    )
    d = d.with_row(db.Row("Fleet (all instances of the job)"))
    d = d.with_panel(
        bargauge.Panel()
        .title("Lowest-frequency instances")
        .description("The 10 instances with the lowest average core frequency now.")
        .datasource(DS)
        .with_target(
            query(
                f"bottomk(10, avg by (instance) (sysmon_cpu_frequency_hertz{{{FLEET_SEL}}}))",
                "{{instance}}",
                instant=True,
            )
        )
        .unit("hertz")
        .orientation(common.VizOrientation.HORIZONTAL)
        .span(12)
        .height(9)
    )
    d = d.with_panel(
        ts(
            "Frequency spread per instance",
            "Highest minus lowest core of each instance: cores of one box drifting apart.",
            "hertz",
            query(
                f"max by (instance) (sysmon_cpu_frequency_hertz{{{FLEET_SEL}}})\n"
                f"  - min by (instance) (sysmon_cpu_frequency_hertz{{{FLEET_SEL}}})",
                "{{instance}}",
            ),
        )
        .span(12)
        .height(9)
    )
    d = d.with_panel(
        ts(
            "Fleet frequency quantiles (all cores)",
            "10th, 50th and 90th percentile of every core's frequency across the job.",
            "hertz",
            query(f"quantile(0.1, sysmon_cpu_frequency_hertz{{{FLEET_SEL}}})", "p10", "A"),
            query(f"quantile(0.5, sysmon_cpu_frequency_hertz{{{FLEET_SEL}}})", "p50", "B"),
            query(f"quantile(0.9, sysmon_cpu_frequency_hertz{{{FLEET_SEL}}})", "p90", "C"),
        )
        .span(24)
        .height(8)
    )
    return d


DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "sysmon-cpu-frequency": cpu_frequency,
}


def render(build: Callable[[], db.Dashboard]) -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    out: dict[Path, str] = {}
    for uid, build in DASHBOARDS.items():
        text = render(build)
        out[HERE / f"{uid}.json"] = text
        out[CHART_FILES / "dashboards" / f"{uid}.json"] = text
    out[CHART_FILES / "rules.yaml"] = (HERE / "rules.yaml").read_text()
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale; write nothing")
    args = parser.parse_args(argv)
    stale = [path for path, text in outputs().items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(HERE.parent)} (run python dashboards/generate.py)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
