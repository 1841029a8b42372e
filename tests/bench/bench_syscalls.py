"""Nanoseconds the syscall counters add to every syscall on this machine.

Run as root: ``python tests/bench/bench_syscalls.py [--loops N] [--rounds R]``.

The workload is ``perf bench syscall basic`` (linux-perf): getppid(2) in a tight
C loop, reporting microseconds per call. Each round measures, in turn:

- ``none``: no program attached;
- ``unfiltered``: the collector's program counting every process (the
  exporter's own tgid excluded, as by default);
- ``pid-other``: filtered to a process tree that is not the workload (a
  sleeping child), so the workload's calls pay the filter and are dropped;
- ``cgroup-other``: filtered to an empty cgroup v2 directory;
- ``by-comm``, ``by-cgroup``: unfiltered with the per-label breakdown;
- ``containers-other``: ``--syscalls.containers`` with the workload on the host,
  so its calls pay the container lookup and are dropped;
- ``containers-in``, ``containers-by-cgroup``: the workload in a cgroup shaped
  like a Docker scope (``/system.slice/docker-<64 hex>.scope`` under the
  cgroup2 mount), counted, without and with the per-container breakdown
  (``none-in`` is its baseline: nothing attached, the workload in the scope).

Rounds interleave the modes so drift (other tenants of the VM) spreads evenly;
the table shows the median and minimum per mode and the median minus the
``none`` median. Goal: unfiltered at most 50 ns per syscall.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from exporter.sources.syscalls import Filter, SyscallCounter

CGROUP2 = Path("/sys/fs/cgroup/unified")


def ns_per_call(loops: int, cgroup: Path | None = None) -> float:
    def join() -> None:
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text("0")

    out = subprocess.run(
        ["perf", "bench", "syscall", "basic", "-l", str(loops)],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=join,
    ).stdout
    m = re.search(r"([\d.]+) usecs/op", out)
    if m is None:
        raise RuntimeError(f"unexpected perf bench output: {out}")
    return float(m.group(1)) * 1000


@contextlib.contextmanager
def attached(filt: Filter | None) -> Iterator[None]:
    if filt is None:
        yield
        return
    counter = SyscallCounter(Path("/proc"), Path("/sys"), filt)
    try:
        yield
    finally:
        counter.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=5_000_000, help="getppid calls per measurement")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_syscalls: needs root (eBPF)", file=sys.stderr)
        return 1
    other = subprocess.Popen(["sleep", "3600"])
    cgroup = CGROUP2 / f"sysmon-bench-{os.getpid()}"
    cgroup.mkdir()
    made_slice = not (CGROUP2 / "system.slice").exists()
    scope = CGROUP2 / "system.slice" / f"docker-{secrets.token_hex(32)}.scope"
    scope.mkdir(parents=True)
    # name: (filter, the workload's cgroup)
    modes: dict[str, tuple[Filter | None, Path | None]] = {
        "none": (None, None),
        "unfiltered": (Filter(exclude_self=True), None),
        "pid-other": (Filter(pid=other.pid, exclude_self=True), None),
        "cgroup-other": (Filter(cgroup=cgroup, exclude_self=True), None),
        "by-comm": (Filter(exclude_self=True, by="comm"), None),
        "by-cgroup": (Filter(exclude_self=True, by="cgroup"), None),
        "containers-other": (Filter(exclude_self=True, containers=True), None),
        "none-in": (None, scope),
        "containers-in": (Filter(exclude_self=True, containers=True), scope),
        "containers-by-cgroup": (Filter(exclude_self=True, containers=True, by="cgroup"), scope),
    }
    results: dict[str, list[float]] = {name: [] for name in modes}
    try:
        ns_per_call(args.loops // 10)  # warm up
        for _ in range(args.rounds):
            for name, (filt, where) in modes.items():
                with attached(filt):
                    results[name].append(ns_per_call(args.loops, where))
    finally:
        other.kill()
        other.wait()
        cgroup.rmdir()
        scope.rmdir()
        if made_slice:
            scope.parent.rmdir()
    print(f"getppid(2) x {args.loops:,} per measurement, {args.rounds} rounds, {os.cpu_count()} CPUs")
    print(f"{'mode':<22}{'median ns':>12}{'min ns':>10}{'added ns':>10}")
    for name, values in results.items():
        med = statistics.median(values)
        base = statistics.median(results["none-in" if modes[name][1] is not None else "none"])
        print(f"{name:<22}{med:>12.1f}{min(values):>10.1f}{med - base:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
