"""Golden expositions: the user-visible output for each fixture host.

Regenerate with ``pytest tests/test_golden.py --update-golden`` (or ``make golden``)
and review the diff: it is exactly what users will see change.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from exporter.collector import Renderer, default_collectors
from exporter.config import GuestConfig
from exporter.guest.ingest import Ingest
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


def _with_guests(snap: Snapshot) -> Snapshot:
    """Feeds tests/fixtures/guests/*.jsonl through the ingest as if each came from a connection."""
    ingest = Ingest(GuestConfig(), FixedClock())
    for path in sorted((FIXTURES.parent / "guests").glob("*.jsonl")):
        ingest.feed(path.stem, path.read_bytes())
    ingest.feed("db-2", b"")  # connected, nothing sent yet
    return replace(snap, guests=ingest.view())


def _with_syscalls(snap: Snapshot, counts: Path) -> Snapshot:
    return take_syscalls(snap, SyscallReaders(RecordedSyscalls(counts), "", "x86_64"), FixedClock())


# name -> how its snapshot is made; each writes tests/golden/<name>.prom
SCENARIOS: dict[str, Callable[[], Snapshot]] = {
    "vm-2cpu": lambda: _snapshot([FIXTURES / "vm-2cpu"]),
    "vm-2cpu-filesystem": lambda: _snapshot([FIXTURES / "vm-2cpu"], COLLECTORS | {"filesystem"}),
    "baremetal-8cpu": lambda: _snapshot([FIXTURES / "baremetal-8cpu"]),
    "hotplug": lambda: _snapshot(sorted((FIXTURES / "hotplug").glob("step*"))),
    "guests": lambda: _with_guests(_snapshot([FIXTURES / "vm-2cpu"])),
    "vm-2cpu-syscalls": lambda: _with_syscalls(
        _snapshot([FIXTURES / "vm-2cpu"]), ROOT / "tests" / "fixtures" / "syscalls" / "x86_64-1s.json"
    ),
}


def render(name: str) -> bytes:
    return Renderer(default_collectors("golden"))(SCENARIOS[name]()).body(False, False)[0]


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
