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
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import HeldFiles, SourceError, read_small

MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
GUEST_MODES = ("guest", "guest_nice")
_COLUMNS = MODES + GUEST_MODES
# A column is an unsigned decimal of at most 20 digits, as fs/proc/stat.c prints u64 (int() would also
# take "-1", "1_0" and "²").
_TICKS_DIGITS = 20
_U64_MAX = 2**64 - 1
_U64_MAX_DIGITS = str(_U64_MAX)


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
    return {
        cpu: CpuTimes(dict(zip(MODES, row, strict=False)), dict(zip(GUEST_MODES, row[len(MODES) :], strict=False)))
        for cpu, row in parse_stat_rows(text, hz, path).items()
    }


class StatMemo:
    """The last parse's CPU columns, as text and as seconds, kept between samples by one reader of the file.

    Between two samples most of a host's columns do not move (nice, irq, steal and guest on most CPUs;
    all but idle on an idle one), and a column's text equal to the one at its position last time is the
    same number of seconds: int() and the division, two fifths of the parse of a 256-CPU file, are left
    to the columns that moved. Only equal text is trusted, so the rows are what parsing the text gives.
    Not thread-safe: one parse at a time (the cpu source's reads never overlap).
    """

    __slots__ = ("columns", "hz", "seconds")

    def __init__(self) -> None:
        self.columns: list[str] = []
        self.seconds: list[float] = []
        self.hz = 0


def parse_stat_rows(
    text: str, hz: int, path: str = "/proc/stat", memo: StatMemo | None = None
) -> dict[int, tuple[float, ...]]:
    """:func:`parse_stat` as one row of seconds per CPU: the columns of MODES then GUEST_MODES that the
    line has, in that order (no dicts: the snapshot keeps a CPU's columns as one row). ``memo``: the last
    parse's columns (:class:`StatMemo`), updated to this one's."""
    rows = _rows_at_once(text, hz, memo)
    return rows if rows is not None else _rows_line_by_line(text, hz, path)


def _rows_at_once(text: str, hz: int, memo: StatMemo | None = None) -> dict[int, tuple[float, ...]] | None:
    """The rows with each check made once over every CPU line's columns together (a 256-CPU file: 0.8 ms
    here, against 1.1 ms line by line); None when a check fails, for :func:`_rows_line_by_line` to say
    which line and why. ``memo``: see :class:`StatMemo`."""
    numbers: list[str] = []
    columns: list[str] = []
    widths: list[int] = []
    for line in text.splitlines():
        if line.startswith("cpu") and not line.startswith("cpu "):
            fields = line.split()
            numbers.append(fields[0][3:])
            row = fields[1 : len(_COLUMNS) + 1]
            columns += row
            widths.append(len(row))
    if not numbers or min(widths) < 4 or min(map(len, numbers)) == 0:
        return None
    names, digits = "".join(numbers), "".join(columns)
    if not (names.isascii() and names.isdigit() and digits.isascii() and digits.isdigit()):
        return None
    longest = max(map(len, columns))
    if longest > _TICKS_DIGITS:
        return None
    if longest == _TICKS_DIGITS and max(c for c in columns if len(c) == longest) > _U64_MAX_DIGITS:
        return None  # beyond 64 bits (digits of one length compare as their numbers do)
    cpus = list(map(int, numbers))
    if len(set(cpus)) < len(cpus):
        return None
    if memo is not None and memo.hz == hz and len(memo.columns) == len(columns):
        # the same text is the same number of seconds: only the columns that moved are converted
        last = zip(columns, memo.columns, memo.seconds, strict=True)
        seconds = [s if c == old else int(c) / hz for c, old, s in last]
    else:
        seconds = [t / hz for t in map(int, columns)]
    if memo is not None:
        memo.columns, memo.seconds, memo.hz = columns, seconds, hz
    width = widths[0]
    if widths.count(width) == len(widths):  # every line has the same columns, as the kernel prints them
        return dict(zip(cpus, zip(*[iter(seconds)] * width, strict=True), strict=True))
    rows: dict[int, tuple[float, ...]] = {}
    start = 0
    for cpu, n in zip(cpus, widths, strict=True):
        rows[cpu] = tuple(seconds[start : start + n])
        start += n
    return rows


def _rows_line_by_line(text: str, hz: int, path: str) -> dict[int, tuple[float, ...]]:
    cpus: dict[int, tuple[float, ...]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        fields = line.split()
        name = fields[0]
        number = name[3:]
        if not (number.isascii() and number.isdigit()):  # cpu[0-9]+, nothing after
            raise SourceError(path, f"unexpected CPU name {name[:40]!r}", lineno)
        if len(fields) < 5:
            raise SourceError(path, f"{name} has {len(fields) - 1} columns, need at least 4", lineno)
        columns = fields[1 : len(_COLUMNS) + 1]
        digits = "".join(columns)
        if not (digits.isascii() and digits.isdigit()) or max(map(len, columns)) > _TICKS_DIGITS:
            raise SourceError(path, f"{name} has a column that is not an unsigned integer", lineno)
        ticks = list(map(int, columns))
        if max(ticks) > _U64_MAX:
            raise SourceError(path, f"{name} has a column beyond 64 bits", lineno)
        cpu = int(number)
        if cpu in cpus:
            raise SourceError(path, f"{name} appears twice", lineno)
        cpus[cpu] = tuple([t / hz for t in ticks])
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
    return parse_stat(_read(path, held), hz, path)


def read_stat_rows(
    procfs: Path, hz: int, held: HeldFiles | None = None, memo: StatMemo | None = None
) -> dict[int, tuple[float, ...]]:
    """:func:`read_stat` as :func:`parse_stat_rows` gives it."""
    path = str(procfs / "stat")
    return parse_stat_rows(_read(path, held), hz, path, memo)


def _read(path: str, held: HeldFiles | None) -> str:
    return read_small(path, STAT_LIMIT) if held is None else held.read(path, STAT_LIMIT, short_read_ends=True)
