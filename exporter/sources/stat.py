"""/proc/stat per-CPU times (Documentation/filesystems/proc.rst, "1.7 Miscellaneous kernel statistics").

Columns after ``cpuN``: user nice system idle iowait irq softirq steal guest
guest_nice, in USER_HZ ticks. Older kernels print fewer columns (steal since
2.6.11, guest since 2.6.24, guest_nice since 2.6.33); missing columns are
absent from the result, not zero. guest and guest_nice are already counted in
user and nice (kernel/sched/cputime.c account_guest_time), so they are kept
apart and never summed into a total.

Offline CPUs have no ``cpuN`` line (fs/proc/stat.c iterates
for_each_online_cpu).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import HeldFiles, SourceError, read_small

MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
GUEST_MODES = ("guest", "guest_nice")
_COLUMNS = MODES + GUEST_MODES
_CPU = re.compile(r"cpu([0-9]+)\Z")
# A column is an unsigned decimal of at most 20 digits, as fs/proc/stat.c prints u64 (int() would also
# take "-1", "1_0" and "²").
_TICKS_DIGITS = 20
_U64_MAX = 2**64 - 1


def user_hz() -> int:
    """Ticks per second of /proc/stat (USER_HZ, 100 on every mainstream arch)."""
    return os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuTimes:
    """Seconds one CPU spent in each mode since boot."""

    seconds: dict[str, float]
    guest_seconds: dict[str, float]


def parse_stat(text: str, hz: int, path: str = "/proc/stat") -> dict[int, CpuTimes]:
    """Per-CPU times keyed by CPU number, converted from ticks to seconds."""
    cpus: dict[int, CpuTimes] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        fields = line.split()
        name = fields[0]
        number = _CPU.match(name)
        if number is None:
            raise SourceError(path, f"unexpected CPU name {name[:40]!r}", lineno)
        values = fields[1:]
        if len(values) < 4:
            raise SourceError(path, f"{name} has {len(values)} columns, need at least 4", lineno)
        columns = values[: len(_COLUMNS)]
        digits = "".join(columns)
        if not (digits.isascii() and digits.isdigit()) or max(map(len, columns)) > _TICKS_DIGITS:
            raise SourceError(path, f"{name} has a column that is not an unsigned integer", lineno)
        ticks = [int(v) for v in columns]
        if max(ticks) > _U64_MAX:
            raise SourceError(path, f"{name} has a column beyond 64 bits", lineno)
        cpu = int(number.group(1))
        if cpu in cpus:
            raise SourceError(path, f"{name} appears twice", lineno)
        cpus[cpu] = CpuTimes(
            seconds={m: t / hz for m, t in zip(MODES, ticks, strict=False)},
            guest_seconds={m: t / hz for m, t in zip(GUEST_MODES, ticks[len(MODES) :], strict=False)},
        )
    if not cpus:
        raise SourceError(path, "no per-CPU lines")
    return cpus


# A cpu line is about 100 bytes: 8,192 CPUs take under 1 MiB, and the intr line of a host with
# thousands of interrupts a few hundred KiB more.
STAT_LIMIT = 8 << 20


def read_stat(procfs: Path, hz: int, held: HeldFiles | None = None) -> dict[int, CpuTimes]:
    """``held``: read through its descriptor for the file. fs/proc/stat.c prints the file in one go
    (single_open_size), so a read shorter than asked is all of it."""
    path = str(procfs / "stat")
    text = read_small(path, STAT_LIMIT) if held is None else held.read(path, STAT_LIMIT, short_read_ends=True)
    return parse_stat(text, hz, path)
