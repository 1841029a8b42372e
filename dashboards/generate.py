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

from grafana_foundation_sdk.builders import bargauge, heatmap, prometheus, stat, table, timeseries
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


def base(uid: str, title: str, description: str, *extra: db.QueryVariable | db.CustomVariable) -> db.Dashboard:
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
        .description(
            "Which source supplied sysmon_cpu_frequency_hertz: cpufreq_avg (cpuinfo_avg_freq), "
            "cpufreq (scaling_cur_freq), cpufreq_hardware (cpuinfo_cur_freq), cpuinfo or perf."
        )
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


def against_limit(title: str, description: str, unit: str, usage: str, limit: str) -> timeseries.Panel:
    """Usage per cgroup with its limit as a dashed line."""
    dashed = [model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash"})]
    return (
        ts(
            title,
            description,
            unit,
            query(usage, "{{instance}} {{cgroup}}", "A"),
            query(limit, "{{instance}} {{cgroup}} limit", "B"),
        )
        .override_by_query("B", dashed)
        .span(12)
        .height(9)
    )


def event_bars(title: str, description: str, counter: str) -> timeseries.Panel:
    """Bars of how many times each cgroup's event counter went up in each interval."""
    return (
        ts(
            title,
            description,
            "short",
            query(f"increase({counter}[$__rate_interval])", "{{instance}} {{cgroup}} {{event}}"),
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .span(12)
        .height(9)
    )


def pressure(title: str, resource: str, stalled: str, m: Callable[[str, str], str]) -> timeseries.Panel:
    """Top cgroups by the share of time some of their tasks (solid) or all of them (dashed) stalled."""
    counter = f"sysmon_cgroup_pressure_{resource}_seconds_total"
    dashed = [model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash"})]
    return (
        ts(
            f"{title} pressure, top $topn",
            f"Share of wall time in which some tasks of the cgroup {stalled} (solid), and in which all of them "
            f"did at once (dashed, kind=full: the cgroup made no progress). {resource}.pressure total; cgroup v2.",
            "percentunit",
            query(f"topk($topn, rate({m(counter, SOME)}[$__rate_interval]))", "{{instance}} {{cgroup}} some", "A"),
            query(f"topk($topn, rate({m(counter, FULL)}[$__rate_interval]))", "{{instance}} {{cgroup}} full", "B"),
        )
        .override_by_query("B", dashed)
        .min(0)
        .span(8)
        .height(9)
    )


SOME = ', kind="some"'
FULL = ', kind="full"'
OOM_EVENTS = ', event=~"oom_kill|oom_group_kill"'
HIGH_MAX_EVENTS = ', event=~"high|max"'
OOM_KILL = ', event="oom_kill"'
MAX_EVENT = ', event="max"'


def cgroups() -> db.Dashboard:
    sel = SEL + ', cgroup=~"$cgroup"'
    rate_window = "[$__rate_interval]"

    def m(name: str, extra: str = "") -> str:
        return f"{name}{{{sel}{extra}}}"

    top = "topk($topn, "
    d = base(
        "sysmon-cgroups",
        "sysmon / cgroups",
        "Memory and working set against limit, memory breakdown, OOM kills and memory events, CPU use against "
        "limit and throttling, I/O per device, pids against limit, per cgroup, with the top cgroups by each and "
        "pod / container ids where the path carries them.",
        label_values("cgroup", "cgroup", f"label_values(sysmon_cgroup_memory_usage_bytes{{{SEL}}}, cgroup)"),
        db.CustomVariable("topn")
        .label("Top N")
        .values("5,10,20,50")
        .current(model.VariableOption(selected=True, text="10", value="10")),
    )
    d = d.with_row(db.Row("Memory"))
    d = d.with_panel(
        against_limit(
            "Memory usage against limit",
            "memory.current (v2) / memory.usage_in_bytes (v1), dashed: the limit (memory.max / "
            "memory.limit_in_bytes; no line when unlimited).",
            "bytes",
            m("sysmon_cgroup_memory_usage_bytes"),
            m("sysmon_cgroup_memory_limit_bytes"),
        )
    )
    d = d.with_panel(
        ts(
            "Memory usage / limit, top $topn",
            "Cgroups closest to their memory limit (only cgroups that have one).",
            "percentunit",
            query(
                f"{top}{m('sysmon_cgroup_memory_usage_bytes')}\n  / {m('sysmon_cgroup_memory_limit_bytes')})",
                "{{instance}} {{cgroup}}",
            ),
        )
        .span(12)
        .height(9)
    )
    with_info = "\n  * on (job, instance, cgroup) group_left (pod_uid, container_id)\n  " + m(
        "sysmon_cgroup_info", ', container_id!=""'
    )
    d = d.with_panel(
        ts(
            "Working set / limit per container, top $topn",
            "The working set (usage minus inactive file pages: cAdvisor's container_memory_working_set_bytes, "
            "what the kubelet evicts and the OOM killer acts on) over the memory limit, for containers that "
            "have one. Near 1 the container is about to be OOM-killed.",
            "percentunit",
            query(
                f"{top}{m('sysmon_cgroup_memory_working_set_bytes')}\n"
                f"  / {m('sysmon_cgroup_memory_limit_bytes')}{with_info})",
                "{{instance}} {{cgroup}}",
            ),
        )
        .min(0)
        .span(12)
        .height(9)
    )
    d = d.with_panel(
        against_limit(
            "Working set against limit",
            "Working set per cgroup (memory.current - memory.stat inactive_file; v1 total_inactive_file), "
            "dashed: the memory limit.",
            "bytes",
            m("sysmon_cgroup_memory_working_set_bytes"),
            m("sysmon_cgroup_memory_limit_bytes"),
        )
    )
    breakdown = [
        ("rss", "sysmon_cgroup_memory_rss_bytes"),
        ("cache", "sysmon_cgroup_memory_cache_bytes"),
        ("mapped", "sysmon_cgroup_memory_mapped_file_bytes"),
        ("kernel", "sysmon_cgroup_memory_kernel_bytes"),
        ("swap", "sysmon_cgroup_memory_swap_bytes"),
    ]
    d = d.with_panel(
        ts(
            "Memory breakdown, top $topn by working set",
            "Anonymous memory (rss: memory.stat anon / total_rss), page cache (file / total_cache), the part of "
            "it mapped by processes (file_mapped), kernel memory and swap, for the cgroups with the largest "
            "working set. Pick one cgroup with the cgroup variable to see its split.",
            "bytes",
            *(
                query(
                    f"{m(name)}\n  and on (job, instance, cgroup) {top}{m('sysmon_cgroup_memory_working_set_bytes')})",
                    "{{instance}} {{cgroup}} " + kind,
                    chr(ord("A") + i),
                )
                for i, (kind, name) in enumerate(breakdown)
            ),
        )
        .span(24)
        .height(9)
    )
    d = d.with_panel(
        event_bars(
            "OOM kills",
            "Processes killed by the OOM killer in each cgroup (memory.events oom_kill, oom_group_kill; "
            "v1 memory.oom_control oom_kill).",
            m("sysmon_cgroup_memory_events_total", OOM_EVENTS),
        )
    )
    d = d.with_panel(
        event_bars(
            "Memory events: high and max",
            "memory.events high (throttled over memory.high) and max (hit memory.max; v1 memory.failcnt).",
            m("sysmon_cgroup_memory_events_total", HIGH_MAX_EVENTS),
        )
    )
    d = d.with_panel(
        table.Panel()
        .title("Top $topn cgroups by OOM kills in the time range")
        .datasource(DS)
        .with_target(
            query(
                f"{top}sum by (instance, cgroup) (increase("
                f"{m('sysmon_cgroup_memory_events_total', OOM_KILL)}[$__range])))",
                instant=True,
            )
        )
        .span(12)
        .height(8)
    )
    d = d.with_panel(
        table.Panel()
        .title("Top $topn containers by memory (pod UID, container ID)")
        .description("Joined to sysmon_cgroup_info, which exists for cgroups whose path names a pod or container.")
        .datasource(DS)
        .with_target(
            query(
                f"{top}{m('sysmon_cgroup_memory_usage_bytes')}\n"
                f"  * on (job, instance, cgroup) group_left (pod_uid, container_id)\n"
                f"  {m('sysmon_cgroup_info')})",
                instant=True,
            )
        )
        .unit("bytes")
        .span(12)
        .height(8)
    )
    throttled = (
        f"rate({m('sysmon_cgroup_cpu_throttled_periods_total')}{rate_window})\n"
        f"  / (rate({m('sysmon_cgroup_cpu_periods_total')}{rate_window}) > 0)"
    )
    d = d.with_row(db.Row("CPU"))
    d = d.with_panel(
        ts(
            "CPU usage, top $topn",
            "CPU seconds per second (cores) used by each cgroup (cpu.stat usage_usec; v1 cpuacct.usage).",
            "short",
            query(f"{top}rate({m('sysmon_cgroup_cpu_usage_seconds_total')}{rate_window}))", "{{instance}} {{cgroup}}"),
        )
        .span(12)
        .height(9)
    )
    d = d.with_panel(
        against_limit(
            "CPU usage against limit",
            "CPU seconds per second (cores) used by each cgroup, dashed: its CFS bandwidth limit in cores "
            "(cpu.max; v1 cpu.cfs_quota_us / cpu.cfs_period_us; no line without a quota).",
            "short",
            f"rate({m('sysmon_cgroup_cpu_usage_seconds_total')}{rate_window})\n"
            f"  and on (job, instance, cgroup) {m('sysmon_cgroup_cpu_limit_cores')}",
            m("sysmon_cgroup_cpu_limit_cores"),
        )
    )
    d = d.with_panel(
        ts(
            "CPU usage / limit, top $topn",
            "Cores used over the cores allowed by the quota; above about 0.8 the cgroup starts being throttled "
            "in bursts.",
            "percentunit",
            query(
                f"{top}rate({m('sysmon_cgroup_cpu_usage_seconds_total')}{rate_window})\n"
                f"  / {m('sysmon_cgroup_cpu_limit_cores')})",
                "{{instance}} {{cgroup}}",
            ),
        )
        .min(0)
        .span(12)
        .height(9)
    )
    d = d.with_panel(
        ts(
            "CPU throttled ratio, top $topn",
            "Share of CFS periods in which the cgroup was throttled by its CPU quota (cpu.stat nr_throttled / "
            "nr_periods); only cgroups with a quota.",
            "percentunit",
            query(f"{top}{throttled})", "{{instance}} {{cgroup}}"),
        )
        .min(0)
        .max(1)
        .span(12)
        .height(9)
    )
    d = d.with_panel(
        ts(
            "Throttled time",
            "Seconds per second the cgroup's tasks were held back by the quota (cpu.stat throttled_usec).",
            "short",
            query(
                f"{top}rate({m('sysmon_cgroup_cpu_throttled_seconds_total')}{rate_window}))",
                "{{instance}} {{cgroup}}",
            ),
        )
        .span(24)
        .height(8)
    )
    d = d.with_row(db.Row("I/O per device"))
    dashed = [model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash"})]
    for title, unit, read, write, what in [
        ("I/O bytes", "Bps", "sysmon_cgroup_io_read_bytes_total", "sysmon_cgroup_io_write_bytes_total", "Bytes"),
        ("I/O operations", "iops", "sysmon_cgroup_io_reads_total", "sysmon_cgroup_io_writes_total", "Operations"),
    ]:
        d = d.with_panel(
            ts(
                f"{title} per device, top $topn",
                f"{what} per second each cgroup read (solid) and wrote (dashed) on each block device (io.stat; "
                "v1 blkio.throttle.*, which counts only devices with a throttle rule, else blkio.bfq.*).",
                unit,
                query(f"{top}rate({m(read)}{rate_window}))", "{{instance}} {{cgroup}} {{device}} read", "A"),
                query(f"{top}rate({m(write)}{rate_window}))", "{{instance}} {{cgroup}} {{device}} write", "B"),
            )
            .override_by_query("B", dashed)
            .min(0)
            .span(12)
            .height(9)
        )
    d = d.with_row(db.Row("Pressure (PSI, cgroup v2)"))
    for title, resource, stalled in [
        ("CPU", "cpu", "waited for a CPU"),
        ("Memory", "memory", "stalled on memory (reclaim, swap-in, refaults)"),
        ("I/O", "io", "stalled on I/O"),
    ]:
        d = d.with_panel(pressure(title, resource, stalled, m))
    d = d.with_row(db.Row("Pids"))
    d = d.with_panel(
        against_limit(
            "Pids against limit",
            "pids.current, dashed: pids.max (no line when unlimited).",
            "short",
            m("sysmon_cgroup_pids_current"),
            m("sysmon_cgroup_pids_limit"),
        )
    )
    d = d.with_panel(
        event_bars(
            "Forks refused at the pids limit",
            "pids.events max: fork() and clone() that failed because the cgroup was at pids.max.",
            m("sysmon_cgroup_pids_events_total", MAX_EVENT),
        )
    )
    d = d.with_panel(
        bargauge.Panel()
        .title("Pids / limit, top $topn")
        .datasource(DS)
        .with_target(
            query(
                f"{top}{m('sysmon_cgroup_pids_current')} / {m('sysmon_cgroup_pids_limit')})",
                "{{instance}} {{cgroup}}",
                instant=True,
            )
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .orientation(common.VizOrientation.HORIZONTAL)
        .span(16)
        .height(8)
    )
    d = d.with_panel(
        stat.Panel()
        .title("Cgroups not exported")
        .description(
            "Cgroups left out because there were more than --cgroup.max-count (the deepest go first): "
            "while this is above 0 the panels above miss them. Raise the flag or narrow --cgroup.include."
        )
        .datasource(DS)
        .with_target(query(f"sysmon_cgroup_dropped{{{SEL}}}", "{{instance}}"))
        .unit("short")
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .thresholds(
            db.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(value=None, color="green"), model.Threshold(value=1, color="red")])
        )
        .span(8)
        .height(8)
    )
    return d


DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "sysmon-cpu-frequency": cpu_frequency,
    "sysmon-cgroups": cgroups,
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
