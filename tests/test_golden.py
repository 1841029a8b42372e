"""Golden expositions: the user-visible output for each fixture host.

Regenerate with ``pytest tests/test_golden.py --update-golden`` (or ``make golden``)
and review the diff: it is exactly what users will see change.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from exporter.collector import Renderer, default_collectors
from exporter.snapshot import Readers, Snapshot, take_snapshot
from exporter.sources.perf import PerfReading
from tests.helpers import FIXTURES, GOLDEN, require_binary

COLLECTORS = frozenset({"cpu", "cpufreq", "cpuinfo", "meminfo"})


class RecordedPerf:
    """Perf counters as ``PerfCounters.read`` returns them: cycles and reference cycles per CPU.

    perf_event_open cannot be replayed from a file, so the counts are written here: about
    2.6e9 cycles per busy second, reference cycles a little behind (turbo).
    """

    def __init__(self, readings: dict[int, PerfReading]) -> None:
        self.readings = readings

    def open_cpu(self, cpu: int) -> None:
        assert cpu in self.readings

    def read(self) -> dict[int, PerfReading]:
        return self.readings


class FixedClock:
    def wall(self) -> float:
        return 1_700_000_000.0

    def monotonic(self) -> float:
        return 100.0


def _snapshot(roots: list[Path], perf: RecordedPerf | None = None) -> Snapshot:
    snap = None
    collectors = COLLECTORS | {"perf"} if perf else COLLECTORS
    for root in roots:
        snap = take_snapshot(snap, Readers(root / "proc", root / "sys", 100, collectors, perf), FixedClock())
    assert snap is not None
    return snap


SCENARIOS = {
    "vm-2cpu": [FIXTURES / "vm-2cpu"],
    "baremetal-8cpu": [FIXTURES / "baremetal-8cpu"],
    "hotplug": sorted((FIXTURES / "hotplug").glob("step*")),
    "vm-2cpu-perf": [FIXTURES / "vm-2cpu"],
}
PERF = {
    "vm-2cpu-perf": RecordedPerf({0: PerfReading(4.3e10, 4.1e10), 1: PerfReading(8.9e10, 8.6e10)}),
}


def render(name: str) -> bytes:
    snapshot = _snapshot(SCENARIOS[name], PERF.get(name))
    return Renderer(default_collectors("golden"))(snapshot).body(False, False)[0]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden(name, request):
    path = GOLDEN / f"{name}.prom"
    text = render(name)
    if request.config.getoption("--update-golden"):
        path.write_bytes(text)
    assert text.decode() == path.read_text(), f"exposition changed; review and run make golden ({path})"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_is_promtool_clean(name):
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=(GOLDEN / f"{name}.prom").read_bytes(), capture_output=True
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
