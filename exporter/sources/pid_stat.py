"""/proc/<pid>/stat: a process's status line (proc(5), "/proc/pid/stat"; fs/proc/array.c do_task_stat).

``pid (comm) state ppid pgrp ...`` on one line. The command name is at most
15 bytes but may hold spaces and parentheses, so the fields after it are
found after the *last* ``)``. The pid, command, state and parent pid are
parsed (the syscall counters' process-tree filter); the fields after the
command are kept as text for readers that need more (sources/processes.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from exporter.sources import SourceError, read_small


@dataclass(frozen=True)
class PidStat:
    pid: int
    comm: str
    state: str
    ppid: int
    fields: tuple[str, ...] = field(default=(), compare=False, repr=False)  # field 3 (state) onwards


_PID = re.compile(r"[0-9]{1,10}\Z")  # pid_max is at most 2**22; no sign, no "_", no other digits


def parse_pid_number(text: str, path: str, what: str, line: int | None = None) -> int:
    """A process id as the kernel prints it: plain ASCII decimal digits."""
    if not _PID.match(text):
        raise SourceError(path, f"{what}: {text[:20]!r} is not a number", line)
    return int(text)


def parse_pid_stat(text: str, path: str = "/proc/self/stat") -> PidStat:
    head, paren, rest = text.partition(" (")
    comm, close, tail = rest.rpartition(")")
    fields = tail.split()
    if not paren or not close or len(fields) < 2:
        raise SourceError(path, f"no parenthesised command name then state and ppid: got {text[:60]!r}")
    pid, ppid = parse_pid_number(head, path, "pid"), parse_pid_number(fields[1], path, "ppid")
    return PidStat(pid, comm, fields[0], ppid, tuple(fields))


def read_pid_stat(procfs: Path, pid: int) -> PidStat:
    """fs/proc/array.c prints the line in one go (proc_single_show), so a short read is all of it."""
    path = procfs / str(pid) / "stat"
    return parse_pid_stat(read_small(path, short_read_ends=True), str(path))


# include/linux/sched.h: the task is a kernel thread (in field 9 of the stat line, the task's flags)
PF_KTHREAD = 0x00200000


def is_kernel_thread(procfs: Path, pid: int) -> bool:
    """Whether ``pid`` is a kernel thread (PF_KTHREAD), from its stat line."""
    stat = read_pid_stat(procfs, pid)
    flags = stat.fields[6] if len(stat.fields) > 6 else ""
    if not flags.isascii() or not flags.isdigit():
        raise SourceError(f"{procfs}/{pid}/stat", "field 9 (flags) is not an unsigned integer")
    return bool(int(flags) & PF_KTHREAD)


def read_descendants(procfs: Path, pid: int) -> set[int]:
    """``pid``'s descendant processes (tgids) as /proc shows them now; vanished entries are skipped."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir(procfs):
        if not entry.name.isdigit():
            continue
        try:
            ppid = read_pid_stat(procfs, int(entry.name)).ppid
        except (OSError, SourceError):
            continue  # exited while scanning
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out
