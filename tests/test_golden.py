"""Golden expositions: the user-visible output for each fixture host.

Regenerate with ``pytest tests/test_golden.py --update-golden`` (or ``make golden``)
and review the diff: it is exactly what users will see change.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from exporter.collector import Renderer, default_collectors
from exporter.snapshot import Readers, Snapshot, take_snapshot
from tests.helpers import FIXTURES, GOLDEN, require_binary

COLLECTORS = frozenset({"cpu", "cpufreq", "cpuinfo", "meminfo"})


class FixedClock:
    def wall(self) -> float:
        return 1_700_000_000.0

    def monotonic(self) -> float:
        return 100.0


def fixed_statvfs(path: str) -> os.statvfs_result:
    """4 KiB blocks: 1000 in all, 400 free, 300 available; 100 inodes, 50 free (fixture trees carry no sizes)."""
    return os.statvfs_result((4096, 4096, 1000, 400, 300, 100, 50, 50, 0, 255))


def _snapshot(roots: list[Path], collectors: frozenset[str] = COLLECTORS) -> Snapshot:
    snap = None
    for root in roots:
        readers = Readers(root / "proc", root / "sys", 100, collectors, rootfs=root, statvfs=fixed_statvfs)
        snap = take_snapshot(snap, readers, FixedClock())
    assert snap is not None
    return snap


SCENARIOS = {
    "vm-2cpu": ([FIXTURES / "vm-2cpu"], COLLECTORS),
    "vm-2cpu-filesystem": ([FIXTURES / "vm-2cpu"], COLLECTORS | {"filesystem"}),
    "baremetal-8cpu": ([FIXTURES / "baremetal-8cpu"], COLLECTORS),
    "hotplug": (sorted((FIXTURES / "hotplug").glob("step*")), COLLECTORS),
}


def render(name: str) -> bytes:
    roots, collectors = SCENARIOS[name]
    return Renderer(default_collectors("golden"))(_snapshot(roots, collectors)).body(False, False)[0]


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
