"""``sysmon-exporter syscalls``: the syscall counters as an ad-hoc command, printed per interval.

The same programs and filters as ``--collector.syscalls`` (sources/syscalls.py),
without the HTTP server: it attaches, then every ``-i`` prints the syscalls
made in that interval, busiest first, as a table or (``--json``) as one JSON
object per line. It stops after ``-d``, on Ctrl-C or on SIGTERM, printing the
last partial interval first so no count is lost: both signals stay blocked and
are taken by ``sigtimedwait`` as the wait between intervals, so one arriving
while the counters are read or printed is handled at the next wait instead of
interrupting them. This is a foreground tool with its own clock; the
exporter's sampler is not involved.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TextIO, TypeVar

from exporter.catalogue import Roots
from exporter.config import ConfigError, duration_in, int_in, parse_pid
from exporter.snapshot import describe
from exporter.sources import SourceError
from exporter.sources.bpf import BpfUnavailable
from exporter.sources.syscalls import Filter, SyscallCounter, names

PROG = "sysmon-exporter syscalls"
MAX_DURATION_SECONDS = 7 * 86400.0
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    pid: int | None
    cgroup: Path | None
    interval: float
    duration: float | None
    json: bool
    top: int
    include_self: bool
    roots: Roots


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(PROG, f"{message}; see {PROG} --help")


def _typed(parse: Callable[[str], T]) -> Callable[[str], T]:
    def wrapped(text: str) -> T:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return wrapped


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Count system calls with eBPF and print the busiest per interval.")
    p.add_argument("-p", "--pid", type=_typed(parse_pid), help="only this process and its descendants")
    p.add_argument("--cgroup", type=Path, help="only this cgroup v2 directory and below")
    p.add_argument("-i", "--interval", type=_typed(duration_in(0.05, 3600.0)), default=5.0, help="default 5s")
    p.add_argument(
        "-d",
        "--duration",
        type=_typed(duration_in(0.05, MAX_DURATION_SECONDS)),
        help="stop after this long (default: Ctrl-C)",
    )
    p.add_argument(
        "-n", "--top", type=_typed(int_in(1, 1000)), default=20, help="rows per interval in the table (default 20)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per interval and line")
    p.add_argument("--include-self", action="store_true", help="count this command's own syscalls too")
    p.add_argument("--path.procfs", dest="procfs", type=Path, default=Path("/proc"), help="procfs mount point")
    p.add_argument("--path.sysfs", dest="sysfs", type=Path, default=Path("/sys"), help="sysfs mount point")
    return p


def parse_args(argv: Sequence[str]) -> Options:
    args = vars(parser().parse_args(list(argv)))
    roots = Roots(procfs=args.pop("procfs"), sysfs=args.pop("sysfs"))
    return Options(**args, roots=roots)


def delta(now: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    """Counts made between two reads, busiest first, zeros left out."""
    out = {name: n - before.get(name, 0) for name, n in now.items()}
    return dict(sorted(((k, v) for k, v in out.items() if v > 0), key=lambda kv: (-kv[1], kv[0])))


def format_table(counts: Mapping[str, int], seconds: float, top: int, when: float) -> str:
    def row(name: str, n: int) -> str:
        return f"{name:<24}{n:>12}{n / seconds if seconds > 0 else 0:>12.1f}"

    stamp = time.strftime("%H:%M:%S", time.localtime(when))
    lines = [f"{stamp}  {sum(counts.values())} syscalls in {seconds:.1f}s"]
    lines.append(f"{'SYSCALL':<24}{'COUNT':>12}{'PER SEC':>12}")
    lines.extend(row(name, n) for name, n in list(counts.items())[:top])
    if len(counts) > top:
        lines.append(row(f"({len(counts) - top} more)", sum(list(counts.values())[top:])))
    return "\n".join(lines) + "\n"


def _what(opts: Options) -> str:
    parts = []
    if opts.pid is not None:
        parts.append(f"pid {opts.pid} and its descendants")
    if opts.cgroup is not None:
        parts.append(f"cgroup {opts.cgroup}")
    return " in ".join(parts) or "all processes"


def run(opts: Options, out: TextIO, err: TextIO) -> int:
    filt = Filter(opts.pid, opts.cgroup, exclude_self=not opts.include_self)
    try:
        counter = SyscallCounter(opts.roots.procfs, opts.roots.sysfs, filt)
    except BpfUnavailable as e:
        print(f"{PROG}: {e.strerror}", file=err)
        return 1
    except (SourceError, OSError, ValueError) as e:
        print(f"{PROG}: {describe(e)}", file=err)
        return 1
    machine = platform.machine()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        print(f"counting syscalls of {_what(opts)} every {opts.interval:g}s; Ctrl-C to stop", file=err, flush=True)
        start = last_time = time.monotonic()
        last = names(counter.read(), machine)
        stop = False
        while not stop:
            wake = last_time + opts.interval
            if opts.duration is not None and start + opts.duration <= wake:
                wake, stop = start + opts.duration, True
            if signal.sigtimedwait(STOP_SIGNALS, max(0.0, wake - time.monotonic())) is not None:
                stop = True
            now_time = time.monotonic()
            now = names(counter.read(), machine)
            counts = delta(now, last)
            seconds = now_time - last_time
            if opts.json:
                record = {"timestamp": time.time(), "interval_seconds": round(seconds, 6), "syscalls": counts}
                out.write(json.dumps(record) + "\n")
            else:
                out.write(format_table(counts, seconds, opts.top, time.time()) + "\n")
            out.flush()
            last, last_time = now, now_time
    finally:
        counter.close()
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return 0


def main(argv: Sequence[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(parser().format_help(), end="")
        return 0
    try:
        opts = parse_args(argv)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        return run(opts, sys.stdout, sys.stderr)
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as the reader asked
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
        return 0
