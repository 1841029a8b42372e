"""/proc/<pid>/status: a process's state as ``Key:\tvalue`` lines (proc(5), "/proc/pid/status").

fs/proc/array.c proc_pid_status. Only the ids are parsed: ``Tgid`` (the
thread group, i.e. the process) and ``Pid`` (the thread), both as the pid
namespace of the reading /proc sees them. /proc/<tid>/status of a thread that
is not listed in /proc is still readable, which is how a thread id given as a
process is recognised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporter.sources import SourceError, read_small
from exporter.sources.pid_stat import parse_pid_number


@dataclass(frozen=True)
class PidStatus:
    tgid: int
    pid: int


def parse_pid_status(text: str, path: str = "/proc/self/status") -> PidStatus:
    ids: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.partition(":")
        if key in ("Tgid", "Pid"):
            ids[key] = parse_pid_number(value.strip(), path, key, lineno)
        elif not sep and line.strip():
            raise SourceError(path, f"not a 'Key: value' line: {line[:60]!r}", lineno)
    for key in ("Tgid", "Pid"):
        if key not in ids:
            raise SourceError(path, f"no {key} line")
    return PidStatus(ids["Tgid"], ids["Pid"])


def read_pid_status(procfs: Path, pid: int) -> PidStatus:
    path = procfs / str(pid) / "status"
    return parse_pid_status(read_small(path), str(path))
