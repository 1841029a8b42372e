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
from prometheus_client import CollectorRegistry

from exporter.catalogue import SOURCES, Roots, of_job
from exporter.collector import Renderer, default_collectors
from exporter.config import GuestConfig
from exporter.guest.ingest import Ingest
from exporter.snapshot import (
    CgroupSources,
    CpuSources,
    HttpConnections,
    Snapshot,
    SyscallSources,
    take_cgroup_snapshot,
    take_snapshot,
    take_syscalls,
)
from exporter.sources.cgroup import CgroupLimits
from exporter.sources.perf import PerfReading
from exporter.sources.vm import VmWatch
from exporter.web.instrument import HttpMetrics
from tests.helpers import FIXTURES, GOLDEN, ROOT, require_binary

# Every default source of the CPU job that a fixture tree replays (catalogue ``replay``); the others
# (perf, filesystem, host, processes, syscalls, cgroup) have scenarios of their own below.
COLLECTORS = frozenset(n for n in of_job("cpu") if SOURCES[n].default and SOURCES[n].replay)


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


class RecordedThreadCycles:
    """Per-thread cycle counts as ``ThreadCycles.read`` returns them (perf_event_open cannot be replayed)."""

    def __init__(self, cycles: dict[int, float]) -> None:
        self.cycles = cycles
        self.open: set[int] = set()

    def open_thread(self, tid: int) -> None:
        self.open.add(tid)

    def close_thread(self, tid: int) -> None:
        self.open.discard(tid)

    def read(self) -> dict[int, float]:
        return {t: c for t, c in self.cycles.items() if t in self.open}

    def close(self) -> None:
        self.open.clear()


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


def _snapshot(
    roots: list[Path],
    collectors: frozenset[str] = COLLECTORS,
    perf: RecordedPerf | None = None,
    host: bool = False,
    host_state: Path | None = None,
    vms: VmWatch | None = None,
) -> Snapshot:
    """``host_state`` in place of the tree's own run/sysmon/host.json (which no fixture tree has)."""
    snap = None
    for root in roots:
        readers = CpuSources(
            root / "proc",
            root / "sys",
            100,
            collectors,
            perf,
            host_identity=host,
            rootfs=root,
            statvfs=fixed_statvfs,
            host_ipv4=lambda: "192.0.2.10",  # TEST-NET-1: the host's address is not in a fixture tree
            host_state=host_state or Roots.under(root).host_state,
            vms=vms,
        )
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
    return take_syscalls(snap, SyscallSources(RecordedSyscalls(counts), "", "x86_64"), FixedClock())


def _cgroup_snapshot(root: Path) -> Snapshot:
    return take_cgroup_snapshot(None, CgroupSources(root / "sys" / "fs" / "cgroup", CgroupLimits(), 100), FixedClock())


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
    "vm-2cpu-perf": lambda: _snapshot(
        [FIXTURES / "vm-2cpu"],
        COLLECTORS | {"perf"},
        RecordedPerf({0: PerfReading(4.3e10, 4.1e10), 1: PerfReading(8.9e10, 8.6e10)}),
    ),
    "vm-2cpu-sampler": lambda: replace(_snapshot([FIXTURES / "vm-2cpu"]), skipped_ticks={"cgroup": 3, "cpu": 0}),
    "vm-2cpu-host": lambda: _snapshot([FIXTURES / "vm-2cpu"], host=True),
    # a guest whose agent keeps the view of a host that gives this VM 4 vCPUs (tests/fixtures/hoststate)
    "vm-2cpu-hoststate": lambda: _snapshot(
        [FIXTURES / "vm-2cpu"], host_state=FIXTURES.parent / "hoststate" / "4-vcpus.json"
    ),
    "vm-2cpu-processes": lambda: _snapshot([FIXTURES / "vm-2cpu"], COLLECTORS | {"processes"}),
    # the listener's counts as Connections.view() gives them after a connection flood
    "vm-2cpu-http": lambda: replace(
        _snapshot([FIXTURES / "vm-2cpu"]),
        http=HttpConnections(3, {"refused": 7, "evicted": 120, "header_timeout": 40}, 2),
    ),
    # VMs of each hypervisor (tests/fixtures/hosts/kvm-host); web-1's two vCPUs with recorded cycles
    "kvm-host": lambda: _snapshot(
        [FIXTURES / "kvm-host"],
        COLLECTORS | {"vm"},
        vms=VmWatch(FIXTURES / "kvm-host" / "proc", cycles=RecordedThreadCycles({2104: 2.6e9, 2105: 5.2e9})),
    ),
    "k8s-node-v2": lambda: _cgroup_snapshot(FIXTURES / "k8s-node-v2"),
    "legacy-v1": lambda: _cgroup_snapshot(FIXTURES / "legacy-v1"),
}


def test_every_catalogued_source_succeeds_in_some_scenario():
    """A new source needs its fixture and golden lines: the runs above must read it successfully somewhere."""
    covered = {name for make in SCENARIOS.values() for name, status in make().statuses.items() if status.success}
    assert set(SOURCES) - covered == set(), "sources without a golden scenario"


def test_the_base_runs_are_the_catalogues_replayable_defaults():
    assert {"cpu", "cpufreq", "hoststate", "cpuinfo", "meminfo", "loadavg", "network"} == COLLECTORS
    assert not SOURCES["perf"].replay and not SOURCES["filesystem"].replay


def _http_registry() -> CollectorRegistry:
    """The exporter's own HTTP metrics after a fixed set of requests."""
    metrics = HttpMetrics()
    for handler, code, seconds in [
        ("/metrics", 200, 0.0004),
        ("/metrics", 200, 0.003),
        ("/metrics", 401, 0.06),
        ("/metrics", 503, 0.0001),
        ("/-/ready", 200, 0.0002),
        ("other", 404, 0.0002),
    ]:
        metrics.observe(handler, code, seconds)
    metrics.limited = 1
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return registry


# Scenarios rendered with a registry of their own (the sampler's holds process_* and the HTTP metrics).
REGISTRIES: dict[str, Callable[[], CollectorRegistry]] = {"vm-2cpu-http": _http_registry}


def render(name: str, openmetrics: bool = False) -> bytes:
    registry = REGISTRIES[name]() if name in REGISTRIES else None
    return Renderer(default_collectors("golden"), registry)(SCENARIOS[name]()).body(openmetrics, False)[0]


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
