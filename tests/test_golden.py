"""Golden expositions: the user-visible output for each fixture host.

Regenerate with ``pytest tests/test_golden.py --update-golden`` (or ``make golden``)
and review the diff: it is exactly what users will see change.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from exporter.collector import Renderer, default_collectors
from exporter.snapshot import Readers, Snapshot, SyscallReaders, take_snapshot, take_syscalls
from tests.helpers import FIXTURES, GOLDEN, ROOT, require_binary

COLLECTORS = frozenset({"cpu", "cpufreq", "cpuinfo", "meminfo"})


class FixedClock:
    def wall(self) -> float:
        return 1_700_000_000.0

    def monotonic(self) -> float:
        return 100.0


class RecordedSyscalls:
    """Syscall counts recorded on a real machine (tests/fixtures/syscalls/README.md)."""

    def __init__(self, path: Path) -> None:
        self.counts = {int(nr): n for nr, n in json.loads(path.read_text()).items()}

    def read(self) -> dict[int, int]:
        return dict(self.counts)


def _snapshot(roots: list[Path], syscalls: Path | None = None) -> Snapshot:
    snap = None
    for root in roots:
        snap = take_snapshot(snap, Readers(root / "proc", root / "sys", 100, COLLECTORS), FixedClock())
    if syscalls is not None:
        snap = take_syscalls(snap, SyscallReaders(RecordedSyscalls(syscalls), "", "x86_64"), FixedClock())
    assert snap is not None
    return snap


SCENARIOS = {
    "vm-2cpu": [FIXTURES / "vm-2cpu"],
    "baremetal-8cpu": [FIXTURES / "baremetal-8cpu"],
    "hotplug": sorted((FIXTURES / "hotplug").glob("step*")),
    "vm-2cpu-syscalls": [FIXTURES / "vm-2cpu"],
}
SYSCALL_COUNTS = {"vm-2cpu-syscalls": ROOT / "tests" / "fixtures" / "syscalls" / "x86_64-1s.json"}


def render(name: str) -> bytes:
    snap = _snapshot(SCENARIOS[name], SYSCALL_COUNTS.get(name))
    return Renderer(default_collectors("golden"))(snap).body(False, False)[0]


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
