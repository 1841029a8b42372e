"""Dashboards and alert rules: generated output current, names real, every panel query
answered by a real Prometheus that scraped the real exporter, rules unit-tested by promtool."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import (
    GOLDEN,
    ROOT,
    parse_exposition,
    promql,
    remove_cgroup,
    require_binary,
    root_block_device,
    run_exporter,
    run_prometheus,
    wait_until,
)

DASHBOARDS = ROOT / "dashboards"
RULES = DASHBOARDS / "rules.yaml"
RULES_TEST = DASHBOARDS / "tests" / "rules_test.yaml"
DASHBOARD_FILES = sorted(DASHBOARDS.glob("*.json"))

# Series that exist only where a source works: the source whose success decides it.
NEEDS_SOURCE = {
    "sysmon_cpu_cycles_total": "perf",
    "sysmon_cpu_ref_cycles_total": "perf",
    "sysmon_cpu_frequency_min_hertz": "cpufreq",
    "sysmon_cpu_frequency_max_hertz": "cpufreq",
    "sysmon_cpu_scaling_governor_info": "cpufreq",
}
# Written by Prometheus itself, not by the exporter.
PROMETHEUS_SERIES = {"up"}
METRIC = re.compile(r"\b(sysmon_[a-z0-9_]+|process_[a-z0-9_]+|up)\b(?!\s*\()")


def dashboard_queries(path: Path) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable of a dashboard."""
    board = json.loads(path.read_text())
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            text = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.+), *(\w+)\)", text)
            assert m, f"{path.name} variable {var['name']}: not label_values(selector, label): {text}"
            yield f"{path.name} variable ${var['name']}", m.group(1)
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"{path.name} panel {panel['title']!r} {target['refId']}", target["expr"]


def rule_queries() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]


def golden_names() -> set[str]:
    names: set[str] = set()
    for path in GOLDEN.glob("*.prom"):
        names |= set(re.findall(r"^# TYPE (\S+) ", path.read_text(), re.M))
        names |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", path.read_text(), re.M))
    return names


def test_there_are_dashboards_and_rules():
    assert [p.name for p in DASHBOARD_FILES][:1], "no dashboards/*.json"
    assert list(rule_queries())


def test_generated_files_are_current():
    """dashboards/*.json and the chart's copies are exactly what generate.py writes."""
    result = subprocess.run(
        [sys.executable, str(DASHBOARDS / "generate.py"), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def test_dashboards_use_template_variables_not_fixed_names():
    for path in DASHBOARD_FILES:
        board = json.loads(path.read_text())
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert {"job", "instance"} <= set(variables)
        assert board["schemaVersion"] >= 39, "Grafana 11 schema"
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                assert 'job=~"$job"' in target["expr"], f"{panel['title']}: every query selects $job"


def test_every_metric_name_exists_in_golden_files():
    known = golden_names() | PROMETHEUS_SERIES
    used: dict[str, str] = {}
    for path in DASHBOARD_FILES:
        for where, expr in dashboard_queries(path):
            for name in METRIC.findall(expr):
                used.setdefault(name, where)
    for where, expr in rule_queries():
        for name in METRIC.findall(expr):
            used.setdefault(name, where)
    assert "sysmon_cpu_frequency_hertz" in used
    missing = {name: where for name, where in used.items() if name not in known}
    assert not missing, f"names not in tests/golden/*.prom: {missing}"


def test_rules_pass_promtool_check_and_unit_tests():
    promtool = require_binary("promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run([promtool, "test", "rules", str(RULES_TEST)], capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr


def test_every_rule_has_a_unit_test():
    tested = set(re.findall(r"alertname: (\w+)", RULES_TEST.read_text()))
    alerts = {where.removeprefix("rule ") for where, _ in rule_queries()}
    assert alerts <= tested, f"alerts without a promtool unit test: {alerts - tested}"


def substitute(expr: str, job: str, instance: str) -> str:
    """What Grafana sends for one job and instance, every other variable at "All"."""

    def regex(value: str) -> str:  # as Grafana writes a regex value into a PromQL string
        return re.escape(value).replace("\\", "\\\\")

    expr = expr.replace("$job", regex(job)).replace("$instance", regex(instance))
    expr = expr.replace("$__rate_interval", "1m").replace("$__range", "1m").replace("$__interval", "5s")
    expr = re.sub(r"\$\{?(cpu|cgroup)\}?", ".*", expr).replace("$topn", "10")
    assert "$" not in expr.replace("{{", ""), f"unsubstituted variable in {expr}"
    return expr


CGROUPFS = Path("/sys/fs/cgroup")
CONTAINER_ID = "0123456789abcdef" * 4


@contextlib.contextmanager
def limited_cgroups() -> Iterator[str]:
    """A v1 cgroup named like a Docker container scope, in the memory, pids, cpu, cpuacct and blkio
    hierarchies, with a memory limit, pids.max 3 and a 10% CPU quota that a busy process in it
    keeps hitting, and 1 MiB written to the root disk with O_DIRECT under a 1 TiB/s throttle rule
    (v1 blkio counts nothing without one); yields its path. Removed (and the rule reset) afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create cgroups")
    parent = f"sysmon-dashboards-{os.getpid()}"
    path = f"/{parent}/docker-{CONTAINER_ID}.scope"
    controllers = ["memory", "pids", "cpu", "cpuacct", "blkio"]
    dirs = [CGROUPFS / c / path.lstrip("/") for c in controllers]
    majmin, _ = root_block_device()
    rule = CGROUPFS / "blkio" / path.lstrip("/") / "blkio.throttle.write_bps_device"
    scratch = Path(tempfile.mkdtemp(prefix="sysmon-dashboards-", dir="/var/tmp"))
    burner = None
    try:
        for d in dirs:
            d.mkdir(parents=True)
        (CGROUPFS / "memory" / path.lstrip("/") / "memory.limit_in_bytes").write_text(str(64 << 20))
        (CGROUPFS / "pids" / path.lstrip("/") / "pids.max").write_text("3")
        (CGROUPFS / "cpu" / path.lstrip("/") / "cpu.cfs_quota_us").write_text("10000")
        rule.write_text(f"{majmin} {1 << 40}")
        procs = [CGROUPFS / c / path.lstrip("/") / "cgroup.procs" for c in ("memory", "cpu", "cpuacct", "pids")]
        burner = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import mmap, os, sys\n"
                "for p in sys.argv[1:-1]:\n"
                "    open(p, 'w').write(str(os.getpid()))\n"
                "buf = mmap.mmap(-1, 1 << 20)\n"
                "buf.write(b'x' * (1 << 20))\n"
                "fd = os.open(sys.argv[-1], os.O_WRONLY | os.O_CREAT | os.O_DIRECT)\n"
                "os.write(fd, buf)\n"
                "os.close(fd)\n"
                "while True: pass\n",
                str(CGROUPFS / "blkio" / path.lstrip("/") / "cgroup.procs"),
                *map(str, procs),
                str(scratch / "direct"),
            ]
        )
        yield path
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
        if rule.exists():
            rule.write_text(f"{majmin} 0")
        shutil.rmtree(scratch)
        for d in dirs:
            for gone in (d, d.parent):
                remove_cgroup(gone)


@pytest.mark.live
@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_every_panel_query_runs_against_prometheus(path, tmp_path):
    """Each query parses and returns data, except those needing a source this host lacks,
    which must parse and return nothing (perf without a PMU, cpufreq on a VM). Cgroup
    dashboards get a cgroup with limits, a container id and a throttled process to show."""
    with contextlib.ExitStack() as stack:
        if "sysmon_cgroup_" in path.read_text():
            stack.enter_context(limited_cgroups())
        exporter = stack.enter_context(run_exporter([], tmp_path))
        prom = stack.enter_context(run_prometheus([f"127.0.0.1:{exporter.port}"], tmp_path))
        instance = f"127.0.0.1:{exporter.port}"
        success = parse_exposition(exporter.metrics())["sysmon_source_success"]
        working = {dict(labels)["source"] for labels, value in success.items() if value == 1}
        queries = list(dashboard_queries(path))
        expect_empty = {
            where
            for where, expr in queries
            if not {NEEDS_SOURCE.get(n) for n in METRIC.findall(expr)} - {None} <= working
        }
        assert len(expect_empty) < len(queries)

        def failures() -> list[str]:
            out = []
            for where, expr in queries:
                result = promql(prom, substitute(expr, "sysmon", instance))
                if where in expect_empty and result:
                    out.append(f"{where}: data although a source it needs fails here: {result[:2]}")
                elif where not in expect_empty and not result:
                    out.append(f"{where}: no data: {expr}")
            return out

        # Rates need two scrapes, cgroup counters a second cgroup sample: poll until every
        # query that should answer does, then report what still does not.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: not failures(), timeout=40, interval=1, what="every panel query")
        assert not failures(), "\n".join(failures())


def test_readme_names_the_panels_that_need_perf_or_cpufreq():
    """dashboards/README.md's table of panels empty without a source matches the queries."""
    documented: dict[str, set[str]] = {}
    for title, needs in re.findall(
        r"^\| (.+?) \| ((?:perf|cpufreq)(?:, (?:perf|cpufreq))*) \|$", (DASHBOARDS / "README.md").read_text(), re.M
    ):
        documented[title.strip("*")] = set(needs.split(", "))
    actual: dict[str, set[str]] = {}
    for path in DASHBOARD_FILES:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                needs = {NEEDS_SOURCE[n] for n in METRIC.findall(target["expr"]) if n in NEEDS_SOURCE}
                if needs:
                    actual.setdefault(panel["title"], set()).update(needs)
    assert actual, "no panel uses perf or cpufreq series"
    assert documented == actual
