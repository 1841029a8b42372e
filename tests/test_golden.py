"""Golden expositions: the user-visible output for each fixture host.

Regenerate with ``pytest tests/test_golden.py --update-golden`` (or ``make golden``)
and review the diff: it is exactly what users will see change.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from exporter.collector import Renderer, default_collectors
from exporter.snapshot import CgroupReaders, Readers, Snapshot, take_cgroup_snapshot, take_snapshot
from exporter.sources.cgroup import CgroupLimits
from tests.helpers import FIXTURES, GOLDEN, require_binary

COLLECTORS = frozenset({"cpu", "cpufreq", "cpuinfo", "meminfo"})


class FixedClock:
    def wall(self) -> float:
        return 1_700_000_000.0

    def monotonic(self) -> float:
        return 100.0


def _snapshot(roots: list[Path]) -> Snapshot:
    snap = None
    for root in roots:
        snap = take_snapshot(snap, Readers(root / "proc", root / "sys", 100, COLLECTORS), FixedClock())
    assert snap is not None
    return snap


def _cgroup_snapshot(root: Path) -> Snapshot:
    return take_cgroup_snapshot(None, CgroupReaders(root / "sys" / "fs" / "cgroup", CgroupLimits(), 100), FixedClock())


SCENARIOS = {
    "vm-2cpu": lambda: _snapshot([FIXTURES / "vm-2cpu"]),
    "baremetal-8cpu": lambda: _snapshot([FIXTURES / "baremetal-8cpu"]),
    "hotplug": lambda: _snapshot(sorted((FIXTURES / "hotplug").glob("step*"))),
    "k8s-node-v2": lambda: _cgroup_snapshot(FIXTURES / "k8s-node-v2"),
    "legacy-v1": lambda: _cgroup_snapshot(FIXTURES / "legacy-v1"),
}


def render(name: str, openmetrics: bool = False) -> bytes:
    return Renderer(default_collectors("golden"))(SCENARIOS[name]()).body(openmetrics, False)[0]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden(name, request):
    path = GOLDEN / f"{name}.prom"
    text = render(name)
    if request.config.getoption("--update-golden"):
        path.write_bytes(text)
    assert text.decode() == path.read_text(), f"exposition changed; review and run make golden ({path})"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_openmetrics_has_the_same_samples_and_one_eof(name):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
    from prometheus_client.parser import text_string_to_metric_families as parse_text

    def samples(families):  # type: ignore[no-untyped-def]
        return sorted((s.name, tuple(sorted(s.labels.items())), s.value) for f in families for s in f.samples)

    om = render(name, openmetrics=True).decode()
    assert om.endswith("# EOF\n") and om.count("# EOF") == 1
    assert samples(parse_openmetrics(om)) == samples(parse_text(render(name).decode()))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_is_promtool_clean(name):
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=(GOLDEN / f"{name}.prom").read_bytes(), capture_output=True
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
