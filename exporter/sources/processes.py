"""Every process's state, CPU time, resident memory and start time: /proc/<pid>/stat and /proc/<pid>/status.

proc(5) and Documentation/filesystems/proc.rst (table 1-4, "Contents of the
stat fields"): ``pid (comm) state ppid ...`` where comm may hold spaces and
parentheses, so the fields are counted from the last ``)``; utime (14),
stime (15) are in USER_HZ ticks and starttime (22) in ticks since boot,
which /proc/stat's ``btime`` anchors to the wall clock. ``VmRSS`` of status
is the resident set in kB (KiB); kernel threads have none (0 here).

A process that exits between the directory listing and the reads is left out
silently; any other unreadable or malformed file fails the source.

The state letters are named as gopsutil names them (process.convertStatusChar),
which ServiceRadar's embedded sysmon reports (pkg/sysmon/process.go).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import SourceError, read_small
from exporter.sources.pid_stat import parse_pid_stat

STATES = {
    "R": "running",
    "S": "sleep",
    "D": "blocked",
    "T": "stop",
    "t": "stop",
    "Z": "zombie",
    "X": "zombie",
    "I": "idle",
    "W": "wait",
    "L": "lock",
}
_GONE = (errno.ENOENT, errno.ESRCH)


@dataclass(frozen=True)
class ProcessStat:
    comm: str
    state: str  # the letter
    cpu_seconds: float  # utime + stime
    start_ticks: int  # since boot


@dataclass(frozen=True)
class Process:
    pid: int
    name: str
    state: str  # gopsutil's word for the letter ("sleep"), "" for a letter it does not know
    cpu_seconds: float
    rss_bytes: int
    start_ticks: int  # with the pid, identifies the process across samples (pids are reused)
    start_time_seconds: float  # unix time


def parse_process_stat(text: str, hz: int, path: str = "/proc/<pid>/stat") -> ProcessStat:
    """The CPU time and start time of /proc/<pid>/stat (fields 14, 15 and 22), split by sources/pid_stat.py."""
    stat = parse_pid_stat(text, path)
    fields = stat.fields  # fields[0] is field 3 (state)
    if len(fields) < 20:
        raise SourceError(path, f"{len(fields) + 2} fields, need at least 22")
    try:
        utime, stime, start = int(fields[11]), int(fields[12]), int(fields[19])
    except ValueError:
        raise SourceError(path, "utime, stime or starttime is not an integer") from None
    return ProcessStat(stat.comm, stat.state, (utime + stime) / hz, start)


def parse_pid_status_rss(text: str, path: str = "/proc/<pid>/status") -> int:
    """VmRSS in bytes; 0 where the line is absent (kernel threads, zombies)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            if len(parts) != 3 or parts[2] != "kB" or not parts[1].isdigit():
                raise SourceError(path, f"unexpected VmRSS line {line!r}")
            return int(parts[1]) * 1024
    return 0


def parse_btime(text: str, path: str = "/proc/stat") -> int:
    for line in text.splitlines():
        if line.startswith("btime "):
            value = line.split()[1]
            if value.isdigit():
                return int(value)
    raise SourceError(path, "no btime line")


def _read_one(procfs: Path, pid: int, hz: int, btime: int) -> Process | None:
    base = procfs / str(pid)
    try:
        stat = parse_process_stat(read_small(str(base / "stat")), hz, str(base / "stat"))
        rss = parse_pid_status_rss(read_small(str(base / "status")), str(base / "status"))
    except OSError as e:
        if e.errno in _GONE:
            return None  # exited since the listing
        raise
    state = STATES.get(stat.state, "")
    return Process(pid, stat.comm, state, stat.cpu_seconds, rss, stat.start_ticks, btime + stat.start_ticks / hz)


def read_processes(procfs: Path, hz: int) -> tuple[Process, ...]:
    """Every process in the pid namespace of ``procfs``, by pid."""
    btime = parse_btime(read_small(str(procfs / "stat")), str(procfs / "stat"))
    pids = sorted(int(e.name) for e in os.scandir(procfs) if e.name.isdigit())
    out = []
    for pid in pids:
        proc = _read_one(procfs, pid, hz, btime)
        if proc is not None:
            out.append(proc)
    return tuple(out)
