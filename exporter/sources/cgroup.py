"""cgroup v2 and v1 memory, cpu, io and pids files, walked below an explicit cgroupfs root.

Interfaces: Documentation/admin-guide/cgroup-v2.rst (memory.events,
memory.current, memory.max, memory.high, memory.stat, memory.swap.current,
cpu.stat, cpu.max, cpu.weight, io.stat, pids.*, "PSI - Pressure Stall
Information" for *.pressure) and Documentation/admin-guide/cgroup-v1/
(memory.rst: memory.usage_in_bytes, memory.limit_in_bytes, memory.failcnt,
memory.oom_control, memory.stat, memory.memsw.usage_in_bytes,
memory.kmem.usage_in_bytes; cpuacct.rst: cpuacct.usage in ns, cpuacct.stat in
USER_HZ; pids.rst; blkio-controller.rst: blkio.throttle.* and blkio.bfq.*
io_service_bytes_recursive and io_serviced_recursive;
scheduler/sched-bwc.rst: cpu.stat nr_periods, nr_throttled, throttled_time in
ns, cpu.cfs_quota_us and cpu.cfs_period_us).

Layouts (:func:`detect_layout`):

- ``v2``: cgroup2 mounted at the root (``cgroup.controllers`` there);
- ``hybrid``: v1 controller hierarchies under ``<root>/<controller>`` and
  cgroup2 at ``<root>/unified`` (systemd's hybrid mode);
- ``v1``: controller hierarchies only. Combined mounts such as
  ``cpu,cpuacct`` are walked once; the ``cpu`` and ``cpuacct`` symlinks to
  them are skipped.

A cgroup is named by its path relative to its hierarchy root (``/`` for the
root). The same path in several hierarchies is one cgroup with the union of
their counters; where two hierarchies give the same value (v1 cpuacct and the
v2 ``cpu.stat`` core stats, which cgroup2 keeps for every cgroup since 4.15),
the v1 hierarchy wins, because on a hybrid host the controller is attached
there.

Version caveats: memory.oom_control has ``oom_kill`` since 4.13 (commit
fe6bdfc8e1e1); memory.events ``oom_group_kill`` since 5.17; cpu ``*.pressure``
since 4.20; the ``full`` line of cpu.pressure since 5.13; v2 memory.stat
``kernel`` since 5.18 (before it, ``kernel_stack`` + ``slab`` + ``sock`` +
``percpu`` is the same sum). v1 ``blkio.throttle.*`` counts a device's I/O only
once some throttle rule has been set on that device (checked on 6.18: a fresh
cgroup's 16 MiB of O_DIRECT writes read ``Total 0``); where BFQ is the device's
scheduler, ``blkio.bfq.*`` counts it regardless.

The working set is cAdvisor's (container/libcontainer/handler.go
setMemoryStats), which the kubelet uses for eviction and ``kubectl top``:
usage minus memory.stat ``inactive_file`` (v1 ``total_inactive_file``),
floored at 0.

Units are converted here, once: usec and ns to seconds, USER_HZ ticks to
seconds. A limit of ``max`` (v2) or the v1 "unlimited" sentinel is ``None``.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.sources import SourceError, read_small, read_small_bytes
from exporter.sources.dirwatch import MAX_WATCHES, DirectoryWatch, open_watch

V1_CONTROLLERS = frozenset({"memory", "cpu", "cpuacct", "pids", "blkio"})

# v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes (LONG_MAX rounded
# down to the page size: 9223372036854771712 with 4 KiB pages, mm/page_counter.c).
# Anything above 2**62 bytes is that sentinel whatever the page size.
V1_UNLIMITED_ABOVE = 2**62

PRESSURE_RESOURCES = ("cpu", "memory", "io")


@dataclass(frozen=True)
class CgroupStats:
    """One cgroup's values, in base units; None or empty where no file gave them."""

    memory_events: Mapping[str, int] = field(default_factory=dict)
    memory_usage_bytes: int | None = None
    memory_limit_bytes: int | None = None
    cpu_usage_seconds: float | None = None
    cpu_user_seconds: float | None = None
    cpu_system_seconds: float | None = None
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_seconds: float | None = None
    pids_events: Mapping[str, int] = field(default_factory=dict)
    pids_current: int | None = None
    pids_limit: int | None = None
    # resource (cpu, memory, io) -> kind (some, full) -> stall seconds
    pressure_seconds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    memory_working_set_bytes: int | None = None
    memory_rss_bytes: int | None = None
    memory_cache_bytes: int | None = None
    memory_mapped_file_bytes: int | None = None
    memory_swap_bytes: int | None = None
    memory_kernel_bytes: int | None = None
    memory_high_bytes: int | None = None
    memory_failures: Mapping[str, int] = field(default_factory=dict)  # pgfault, pgmajfault
    cpu_limit_cores: float | None = None
    cpu_weight: int | None = None
    # device name (or MAJ:MIN) -> read_bytes, write_bytes, reads, writes; devices with all zeros left out
    io: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Hierarchy:
    version: int  # 1 or 2
    path: Path


@dataclass(frozen=True)
class Layout:
    name: str  # "v2" | "hybrid" | "v1"
    hierarchies: tuple[Hierarchy, ...]


@dataclass(frozen=True)
class CgroupLimits:
    """Bounds on the walk: depth below each hierarchy root, path filters, and how many cgroups in all."""

    max_depth: int = 6
    include: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None
    max_count: int = 1000


@dataclass(frozen=True)
class Found:
    """A cgroup seen by the walk: its directories in each hierarchy and the files of interest in each."""

    path: str
    dirs: tuple[tuple[str, int, tuple[str, ...]], ...]  # (directory, cgroup version, file names), v1 first


@dataclass(frozen=True)
class Walk:
    found: tuple[Found, ...]
    dropped: int
    errors: Mapping[str, str]


@dataclass(frozen=True)
class CgroupTree:
    layout: str
    stats: Mapping[str, CgroupStats]  # sorted by path
    dropped: int  # cgroups beyond max_count
    errors: Mapping[str, str]  # file or directory -> why it could not be used


# ---- parsers (pure) ----


def _lines(text: str, path: str) -> Iterable[tuple[int, str]]:
    """Numbered lines of a file the kernel writes whole; a last line without its newline is a truncated read."""
    if text and not text.endswith("\n"):
        raise SourceError(path, "truncated: last line has no newline")
    return enumerate(text.splitlines(), 1)


# The kernel prints cgroup counters and limits as (s)64/u64: a longer number is not a kernel value.
_INT_BOUND = 2**64


def _bounded(value: int, path: str, what: str, line: int | None = None) -> int:
    if not -_INT_BOUND < value < _INT_BOUND:
        raise SourceError(path, f"{what}: a {len(str(abs(value)))}-digit value is beyond 64 bits", line)
    return value


# What the kernel writes: ``<key> <decimal>\n`` lines. Up to 19 digits is always within 64 bits,
# so a file of this form needs no per-line check; anything else takes the line-by-line path.
_FLAT_KEYED = re.compile(r"(?:[A-Za-z0-9_.]++ -?+[0-9]{1,19}+\n)*+")


def parse_flat_keyed(text: str, path: str) -> dict[str, int]:
    """``<key> <integer>`` per line (memory.events, pids.events, cpu.stat, memory.oom_control, cpuacct.stat)."""
    if _FLAT_KEYED.fullmatch(text):
        words = iter(text.split())
        return dict(zip(words, map(int, words), strict=True))
    out: dict[str, int] = {}
    for lineno, line in _lines(text, path):
        parts = line.split()
        if len(parts) != 2:
            raise SourceError(path, f"expected '<key> <integer>', got {line[:60]!r}", lineno)
        try:
            out[parts[0]] = _bounded(int(parts[1]), path, parts[0], lineno)
        except ValueError as e:
            if isinstance(e, SourceError):
                raise
            raise SourceError(path, f"{parts[0]}: {parts[1][:30]!r} is not an integer", lineno) from None
    return out


def parse_single(text: str, path: str) -> int | None:
    """One integer, or ``max`` (no limit) as None (memory.current, memory.max, pids.*, cpuacct.usage)."""
    if text[-1:] == "\n" and len(text) <= 20 and text.isascii() and text[:-1].isdigit():
        return int(text)  # the kernel's form: digits (at most 19: within 64 bits) and a newline
    value = text.strip()
    if value == "max":
        return None
    if not text.endswith("\n") or "\n" in value:
        raise SourceError(path, f"expected one value and a newline, got {text[:40]!r}")
    try:
        number = int(value)
    except ValueError:
        raise SourceError(path, f"{value[:30]!r} is not an integer or 'max'") from None
    return _bounded(number, path, "value")


_PSI_KEYS = ["avg10", "avg60", "avg300", "total"]
_PSI = re.compile(r"(?:(?:some|full) avg10=[0-9.]++ avg60=[0-9.]++ avg300=[0-9.]++ total=[0-9]++\n)++")
_PSI_TOTAL = re.compile(r"^(some|full) .* total=([0-9]+)$", re.M)
# kernel/sched/psi.c psi_show(): a "some" line, then a "full" line (cpu's since 5.13)
_PSI_LINE = r"avg10=[0-9.]++ avg60=[0-9.]++ avg300=[0-9.]++ total=([0-9]++)\n"
_PSI_SOME_FULL = re.compile(f"some {_PSI_LINE}(?:full {_PSI_LINE})?+")


def parse_pressure(text: str, path: str) -> dict[str, float]:
    """PSI lines ``some avg10=.. avg60=.. avg300=.. total=<usec>`` -> {kind: stall seconds}."""
    if m := _PSI_SOME_FULL.fullmatch(text):  # as the kernel writes it: one match, the totals its groups
        some, full = m.groups()
        return {"some": int(some) / 1e6} if full is None else {"some": int(some) / 1e6, "full": int(full) / 1e6}
    if _PSI.fullmatch(text) and text.startswith("some "):  # well-formed: totals straight from the regex
        return {kind: int(total) / 1e6 for kind, total in _PSI_TOTAL.findall(text)}
    out: dict[str, float] = {}
    for lineno, line in _lines(text, path):
        fields = line.split()
        if (
            len(fields) != 5
            or fields[0] not in ("some", "full")
            or [f.partition("=")[0] for f in fields[1:]] != _PSI_KEYS
        ):
            raise SourceError(path, f"expected 'some|full avg10= avg60= avg300= total=', got {line[:60]!r}", lineno)
        try:
            out[fields[0]] = int(fields[4][6:]) / 1e6
        except ValueError:
            raise SourceError(path, f"{fields[4][:30]!r} is not total=<integer>", lineno) from None
    if "some" not in out:
        raise SourceError(path, "no 'some' line")
    return out


_MEMORY_STAT = re.compile(r"(?:[A-Za-z0-9_.]++ -?+[0-9]++\n)*+")  # possessive: no backtracking


def parse_memory_stat(text: str, path: str, keys: frozenset[str]) -> dict[str, int]:
    """memory.stat ``<key> <integer>`` lines, keeping only ``keys`` (the file has ~40 lines, we use a few).

    A key the kernel does not write (older kernels) is simply absent; a line that is not
    ``<key> <value>`` or a kept value that is not an integer fails the file."""
    if _MEMORY_STAT.fullmatch(text):  # the whole file well-formed: one C-speed check, then no per-line work
        lines = "\n" + text
        found: dict[str, int] = {}
        for key in keys:
            start = lines.find(f"\n{key} ")
            if start >= 0:
                start += len(key) + 2
                found[key] = int(lines[start : lines.index("\n", start)])
        return found
    # Malformed somewhere: find the first bad line for the error.
    out: dict[str, int] = {}
    if text and not text.endswith("\n"):
        raise SourceError(path, "truncated: last line has no newline")
    for lineno, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.partition(" ")
        if not sep or not key or not value or " " in value:
            raise SourceError(path, f"expected '<key> <integer>', got {line[:60]!r}", lineno)
        if key in keys:
            try:
                out[key] = int(value)
            except ValueError:
                raise SourceError(path, f"{key}: {value[:30]!r} is not an integer", lineno) from None
    return out


_DEVICE = re.compile(r"[0-9]+:[0-9]+")
_IO_STAT_KEYS = {"rbytes": "read_bytes", "wbytes": "write_bytes", "rios": "reads", "wios": "writes"}


# A line as the kernel writes it (block/blk-cgroup.c blkcg_print_one_stat): the four counters first,
# in this order, then others (discards, io.cost and io.latency debug fields) that are not kept.
_IO_STAT_LINE = (
    r"([0-9]++:[0-9]++) rbytes=([0-9]{1,19}+) wbytes=([0-9]{1,19}+) rios=([0-9]{1,19}+) wios=([0-9]{1,19}+)"
    r"(?: (?!rbytes=|wbytes=|rios=|wios=)[a-z_.]++=[A-Za-z0-9_.:+-]*+)*+\n"
)
_IO_STAT_FILE = re.compile(f"(?:{_IO_STAT_LINE})*+")
_IO_STAT_LINES = re.compile(_IO_STAT_LINE)


def parse_io_stat(text: str, path: str) -> dict[str, dict[str, int]]:
    """v2 io.stat ``MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`` -> {MAJ:MIN: counters}.

    Only the four byte and operation counters are kept; other keys (discards, io.cost and
    io.latency debug fields) are checked for form only."""
    if _IO_STAT_FILE.fullmatch(text):  # the kernel's form: the counters straight from the regex
        return {
            dev: {"read_bytes": int(rb), "write_bytes": int(wb), "reads": int(r), "writes": int(w)}
            for dev, rb, wb, r, w in _IO_STAT_LINES.findall(text)
        }
    out: dict[str, dict[str, int]] = {}
    for lineno, line in _lines(text, path):
        fields = line.split()
        if not fields or not _DEVICE.fullmatch(fields[0]):
            raise SourceError(path, f"expected 'MAJ:MIN key=value ...', got {line[:60]!r}", lineno)
        counters: dict[str, int] = {}
        for f in fields[1:]:
            key, sep, value = f.partition("=")
            if not sep:
                raise SourceError(path, f"expected key=value, got {f[:30]!r}", lineno)
            name = _IO_STAT_KEYS.get(key)
            if name is not None:
                try:
                    counters[name] = int(value)
                except ValueError:
                    raise SourceError(path, f"{key}: {value[:30]!r} is not an integer", lineno) from None
        out[fields[0]] = counters
    return out


def parse_blkio(text: str, path: str, read: str, write: str) -> dict[str, dict[str, int]]:
    """v1 blkio ``MAJ:MIN <Op> <integer>`` lines and a last ``Total <integer>`` -> {MAJ:MIN: {read:, write:}}.

    Ops are Read, Write, Sync, Async, Discard and Total; only Read and Write are kept,
    under the names ``read`` and ``write``."""
    out: dict[str, dict[str, int]] = {}
    for lineno, line in _lines(text, path):
        fields = line.split()
        if len(fields) == 2 and fields[0] == "Total":
            continue
        if len(fields) != 3 or not _DEVICE.fullmatch(fields[0]):
            expected = "expected 'MAJ:MIN <op> <integer>' or 'Total <integer>'"
            raise SourceError(path, f"{expected}, got {line[:60]!r}", lineno)
        if fields[1] in ("Read", "Write"):
            try:
                value = int(fields[2])
            except ValueError:
                raise SourceError(path, f"{fields[1]}: {fields[2][:30]!r} is not an integer", lineno) from None
            out.setdefault(fields[0], {})[read if fields[1] == "Read" else write] = value
    return out


# Each handler turns one file's text into partial CgroupStats fields.
Fields = dict[str, Any]


def _memory_events(text: str, path: str, hz: int) -> Fields:
    return {"memory_events": parse_flat_keyed(text, path)}


def _pids_events(text: str, path: str, hz: int) -> Fields:
    return {"pids_events": parse_flat_keyed(text, path)}


def _single(name: str) -> Callable[[str, str, int], Fields]:
    def handler(text: str, path: str, hz: int) -> Fields:
        return {name: parse_single(text, path)}

    return handler


def _v1_limit(text: str, path: str, hz: int) -> Fields:
    value = parse_single(text, path)
    return {"memory_limit_bytes": None if value is None or value > V1_UNLIMITED_ABOVE else value}


def _v1_failcnt(text: str, path: str, hz: int) -> Fields:
    # memory.failcnt counts charges that hit the limit: v2's memory.events "max".
    value = parse_single(text, path)
    return {"memory_events": {"max": value}} if value is not None else {}


def _v1_oom_control(text: str, path: str, hz: int) -> Fields:
    values = parse_flat_keyed(text, path)
    return {"memory_events": {"oom_kill": values["oom_kill"]}} if "oom_kill" in values else {}


def _cpu_stat(text: str, path: str, hz: int) -> Fields:
    # v2: usage_usec, user_usec, system_usec [, nr_periods, nr_throttled, throttled_usec];
    # v1 (cpu controller): nr_periods, nr_throttled, throttled_time (ns).
    v = parse_flat_keyed(text, path)
    out: Fields = {}
    for key, name, per_second in (
        ("usage_usec", "cpu_usage_seconds", 1e6),
        ("user_usec", "cpu_user_seconds", 1e6),
        ("system_usec", "cpu_system_seconds", 1e6),
        ("throttled_usec", "cpu_throttled_seconds", 1e6),
        ("throttled_time", "cpu_throttled_seconds", 1e9),
    ):
        if key in v:
            out[name] = v[key] / per_second
    if "nr_periods" in v:
        out["cpu_periods"] = v["nr_periods"]
    if "nr_throttled" in v:
        out["cpu_throttled_periods"] = v["nr_throttled"]
    return out


def _cpuacct_usage(text: str, path: str, hz: int) -> Fields:
    value = parse_single(text, path)
    return {"cpu_usage_seconds": value / 1e9} if value is not None else {}


def _cpuacct_stat(text: str, path: str, hz: int) -> Fields:
    v = parse_flat_keyed(text, path)
    out: Fields = {}
    if "user" in v:
        out["cpu_user_seconds"] = v["user"] / hz
    if "system" in v:
        out["cpu_system_seconds"] = v["system"] / hz
    return out


_BREAKDOWN = ("memory_rss_bytes", "memory_cache_bytes", "memory_mapped_file_bytes", "raw_inactive_file_bytes")
_V2_BREAKDOWN = ("anon", "file", "file_mapped", "inactive_file")
# v1: the total_* keys include the descendants, as v2's do (and as cAdvisor reads them)
_V1_BREAKDOWN = ("total_rss", "total_cache", "total_mapped_file", "total_inactive_file")
_KERNEL_PARTS = ("kernel_stack", "slab", "sock", "percpu")
_V2_MEMORY_STAT = frozenset({*_V2_BREAKDOWN, "kernel", *_KERNEL_PARTS, "pgfault", "pgmajfault"})
_V1_MEMORY_STAT = frozenset({*_V1_BREAKDOWN, "total_pgfault", "total_pgmajfault"})


def _breakdown(v: dict[str, int], keys: tuple[str, ...], fault_prefix: str) -> Fields:
    out: Fields = {name: v[key] for key, name in zip(keys, _BREAKDOWN, strict=True) if key in v}
    failures = {kind: v[fault_prefix + kind] for kind in ("pgfault", "pgmajfault") if fault_prefix + kind in v}
    if failures:
        out["memory_failures"] = failures
    return out


def _v2_memory_stat(text: str, path: str, hz: int) -> Fields:
    v = parse_memory_stat(text, path, _V2_MEMORY_STAT)
    out = _breakdown(v, _V2_BREAKDOWN, "")
    if "kernel" in v:
        out["memory_kernel_bytes"] = v["kernel"]
    elif all(k in v for k in _KERNEL_PARTS):  # before 5.18, which added the "kernel" line
        out["memory_kernel_bytes"] = sum(v[k] for k in _KERNEL_PARTS)
    return out


def _v1_memory_stat(text: str, path: str, hz: int) -> Fields:
    return _breakdown(parse_memory_stat(text, path, _V1_MEMORY_STAT), _V1_BREAKDOWN, "total_")


def _cpu_max(text: str, path: str, hz: int) -> Fields:
    # "<quota> <period>" in usec, quota "max" for none
    fields = text.split()
    if len(fields) != 2 or not text.endswith("\n"):
        raise SourceError(path, f"expected '<quota|max> <period>', got {text[:40]!r}")
    try:
        period = int(fields[1])
        quota = None if fields[0] == "max" else int(fields[0])
    except ValueError:
        raise SourceError(path, f"expected '<quota|max> <period>' integers, got {text[:40]!r}") from None
    if period <= 0:
        raise SourceError(path, f"period {period} is not positive")
    return {"cpu_limit_cores": None if quota is None else quota / period}


def _v1_cfs_quota(text: str, path: str, hz: int) -> Fields:
    value = parse_single(text, path)
    return {"raw_cfs_quota_us": None if value is None or value < 0 else value}  # -1: no quota


def _cpu_shares(text: str, path: str, hz: int) -> Fields:
    # The v2 weight the kernel shows for the same group shares: round(shares * 100 / 1024) in
    # 1..10000 (kernel/sched/core.c cpu_weight_read_u64, sched_weight_to_cgroup since 6.8).
    shares = parse_single(text, path)
    if shares is None:
        return {}
    return {"cpu_weight": min(max((shares * 100 + 512) // 1024, 1), 10000)}


def _io_stat(text: str, path: str, hz: int) -> Fields:
    return {"raw_io": parse_io_stat(text, path)}


def _blkio(key: str, read: str, write: str) -> Callable[[str, str, int], Fields]:
    def handler(text: str, path: str, hz: int) -> Fields:
        return {key: parse_blkio(text, path, read, write)}

    return handler


def _pressure(resource: str) -> Callable[[str, str, int], Fields]:
    def handler(text: str, path: str, hz: int) -> Fields:
        return {"pressure_seconds": {resource: parse_pressure(text, path)}}

    return handler


V2_FILES: dict[str, Callable[[str, str, int], Fields]] = {
    "memory.events": _memory_events,
    "memory.current": _single("memory_usage_bytes"),
    "memory.max": _single("memory_limit_bytes"),
    "cpu.stat": _cpu_stat,
    "pids.events": _pids_events,
    "pids.current": _single("pids_current"),
    "pids.max": _single("pids_limit"),
    **{f"{r}.pressure": _pressure(r) for r in PRESSURE_RESOURCES},
    "memory.stat": _v2_memory_stat,
    "memory.swap.current": _single("memory_swap_bytes"),
    "memory.high": _single("memory_high_bytes"),
    "cpu.max": _cpu_max,
    "cpu.weight": _single("cpu_weight"),
    "io.stat": _io_stat,
}

V1_FILES: dict[str, Callable[[str, str, int], Fields]] = {
    "memory.usage_in_bytes": _single("memory_usage_bytes"),
    "memory.limit_in_bytes": _v1_limit,
    "memory.failcnt": _v1_failcnt,
    "memory.oom_control": _v1_oom_control,
    "cpu.stat": _cpu_stat,
    "cpuacct.usage": _cpuacct_usage,
    "cpuacct.stat": _cpuacct_stat,
    "pids.events": _pids_events,
    "pids.current": _single("pids_current"),
    "pids.max": _single("pids_limit"),
    "memory.stat": _v1_memory_stat,
    "memory.memsw.usage_in_bytes": _single("raw_memsw_usage_bytes"),
    "memory.kmem.usage_in_bytes": _single("memory_kernel_bytes"),
    "cpu.cfs_quota_us": _v1_cfs_quota,
    "cpu.cfs_period_us": _single("raw_cfs_period_us"),
    "cpu.shares": _cpu_shares,
    "blkio.throttle.io_service_bytes_recursive": _blkio("raw_io_throttle", "read_bytes", "write_bytes"),
    "blkio.throttle.io_serviced_recursive": _blkio("raw_io_throttle", "reads", "writes"),
    "blkio.bfq.io_service_bytes_recursive": _blkio("raw_io_bfq", "read_bytes", "write_bytes"),
    "blkio.bfq.io_serviced_recursive": _blkio("raw_io_bfq", "reads", "writes"),
}

# The files whose values change only when something writes them (a cgroup's limits and weights, set by
# systemd, the kubelet or the runtime): read again only where a write was seen (:mod:`.dirwatch`).
# Counters, usage and events (memory.events, which the kernel itself raises) are read every cycle.
WRITTEN_ONLY = frozenset(
    {
        "memory.max",
        "memory.high",
        "cpu.max",
        "cpu.weight",
        "pids.max",
        "memory.limit_in_bytes",
        "cpu.cfs_quota_us",
        "cpu.cfs_period_us",
        "cpu.shares",
    }
)

_MAPPINGS = frozenset({"memory_events", "pids_events", "pressure_seconds", "memory_failures"})
# per device (MAJ:MIN) -> counter: merged two levels deep (bytes and operations come from two v1 files)
_IO_SOURCES = ("raw_io_throttle", "raw_io_bfq", "raw_io")  # in the order _derive prefers them


def merge_fields(parts: Iterable[Fields], device_name: Callable[[str], str | None] | None = None) -> CgroupStats:
    """Union of the files' fields; the first part to give a value (or an event key) wins.

    Then the values that take two files: the working set (usage and memory.stat), v1 swap
    (memsw and usage), the v1 CPU limit (quota and period), and I/O per device: v1 throttle
    counters, else BFQ's, else v2 io.stat, devices with all zeros left out, named by
    ``device_name`` (MAJ:MIN -> name, None for a device that is gone; MAJ:MIN when not given)."""
    out: Fields = {}
    for part in parts:
        for key, value in part.items():
            before = out.get(key)
            if before is None:
                out[key] = value  # most keys come from one file: taken as they are, not copied
            elif key in _MAPPINGS:
                out[key] = {**before, **{k: v for k, v in value.items() if k not in before}}
            elif key in _IO_SOURCES:
                devices = {dev: dict(counters) for dev, counters in before.items()}
                for dev, counters in value.items():
                    into = devices.setdefault(dev, {})
                    for k, v in counters.items():
                        into.setdefault(k, v)
                out[key] = devices
    return CgroupStats(**_derive(out, device_name))


def _derive(out: Fields, device_name: Callable[[str], str | None] | None) -> Fields:
    usage = out.get("memory_usage_bytes")
    inactive = out.pop("raw_inactive_file_bytes", None)
    if usage is not None and inactive is not None:
        out["memory_working_set_bytes"] = max(usage - inactive, 0)
    memsw = out.pop("raw_memsw_usage_bytes", None)
    if usage is not None and memsw is not None and out.get("memory_swap_bytes") is None:
        out["memory_swap_bytes"] = max(memsw - usage, 0)
    quota, period = out.pop("raw_cfs_quota_us", None), out.pop("raw_cfs_period_us", None)
    if quota is not None and period and out.get("cpu_limit_cores") is None:
        out["cpu_limit_cores"] = quota / period
    io: dict[str, Mapping[str, int]] = {}
    for source in _IO_SOURCES:
        for dev, counters in out.pop(source, {}).items():
            if not any(counters.values()):
                continue
            name = dev if device_name is None else device_name(dev)
            if name is not None:
                io.setdefault(name, counters)
    if io:
        out["io"] = dict(sorted(io.items()))
    return out


class BlockDevices:
    """MAJ:MIN -> kernel device name from ``<sysfs>/dev/block/MAJ:MIN/uevent`` DEVNAME, looked up once.

    None for a device sysfs no longer has (its io.stat line is skipped); MAJ:MIN itself when the
    uevent has no DEVNAME, or there is no sysfs or it has no ``dev/block`` (nothing to tell a gone
    device by)."""

    def __init__(self, sysfs: Path | None) -> None:
        self.block = sysfs / "dev" / "block" if sysfs is not None else None
        self.names: dict[str, str | None] = {}
        self.known: bool | None = None if sysfs is not None else False

    def __call__(self, dev: str) -> str | None:
        if dev in self.names:
            return self.names[dev]
        if self.known is None:
            self.known = self.block is not None and self.block.is_dir()
        name: str | None = dev
        if self.known:
            try:
                uevent = read_small(f"{self.block}/{dev}/uevent", short_read_ends=True)
            except OSError as e:
                name = None if e.errno in (errno.ENOENT, errno.ENOTDIR) else dev
            else:
                for line in uevent.splitlines():
                    if line.startswith("DEVNAME="):
                        name = _label(line[8:]) or dev
                        break
        self.names[dev] = name
        return name


# ---- layout and walk ----


def detect_layout(root: Path) -> Layout:
    """Which cgroup layout is mounted at ``root``; SourceError when there is none."""
    if (root / "cgroup.controllers").exists():
        return Layout("v2", (Hierarchy(2, root),))
    v1 = []
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_symlink() or not entry.is_dir():
                continue
            if V1_CONTROLLERS & set(entry.name.split(",")):
                v1.append(Hierarchy(1, Path(entry.path)))
    unified = root / "unified"
    if (unified / "cgroup.controllers").exists():
        return Layout("hybrid", (*v1, Hierarchy(2, unified)))
    if not v1:
        raise SourceError(str(root), "no cgroup2 mount and no v1 memory, cpu, cpuacct or pids hierarchy")
    return Layout("v1", tuple(v1))


def _label(name: str) -> str:
    """A directory name fit for a label value: bytes that are not UTF-8 become U+FFFD."""
    return name if name.isascii() else name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# Each table's names, each giving back the table's own string: the walk's file names are then the same
# objects every cycle, and the memo's comparison of a cgroup's files with the last cycle's is by identity.
_V2_NAMES = {name: name for name in V2_FILES}
_V1_NAMES = {name: name for name in V1_FILES}

# What the walk made of a directory's listing: the names joined by "/" (which no name holds), the files of
# interest and the subdirectories, each sorted
_Listing = tuple[str, tuple[str, ...], tuple[str, ...]]


def _classify(directory: str, wanted: Mapping[str, str]) -> _Listing:
    names: list[str] = []
    files: list[str] = []
    children: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            names.append(name)
            known = wanted.get(name)
            if known is not None:
                files.append(known)
            elif entry.is_dir(follow_symlinks=False):
                children.append(name)
    files.sort()
    children.sort()
    return "/".join(names), tuple(files), tuple(children)


def walk_hierarchy(
    hierarchy: Hierarchy,
    max_depth: int,
    errors: dict[str, str],
    last: Mapping[str, _Listing] | None = None,
    listed: dict[str, _Listing] | None = None,
    watch: DirectoryWatch | None = None,
) -> Iterable[tuple[str, int, str, tuple[str, ...]]]:
    """(cgroup path, depth, directory, files of interest) for each directory, parents first.

    Lazy: a child is listed only after its parent was yielded, so a cgroup removed in
    between (its directory gone: ENOENT, or ENODEV while the kernel tears it down) is
    skipped without an error.

    ``last`` holds the last walk's listings by directory: a directory that lists the same
    names (most do: cgroups come and go, their files stay) takes what was made of them from
    os.listdir's names alone, without a DirEntry, a type and a look-up per name (callgrind,
    the 1000-cgroup bench's idle cycle: 160 M user-space instructions down to 118 M). ``listed`` is
    given this walk's.

    ``watch`` (begun: :class:`~exporter.sources.dirwatch.DirectoryWatch`) spares even the
    os.listdir of a directory that had no event since it was last listed, and whose parent had
    none either (a parent's cgroup.subtree_control adds and removes its children's files)."""
    wanted = _V2_NAMES if hierarchy.version == 2 else _V1_NAMES
    listdir = os.listdir
    stack: list[tuple[str, int, str, str | None]] = [("/", 0, str(hierarchy.path), None)]
    while stack:
        cgroup, depth, directory, parent = stack.pop()
        try:
            listing = last.get(directory) if last is not None else None
            fresh = True
            if watch is not None:
                if (
                    not watch.relist
                    and listing is not None
                    and parent is not None
                    and watch.unchanged(directory)
                    and watch.unchanged(parent)
                ):
                    watch.reused.add(directory)
                    fresh = False
                elif not watch.unchanged(directory):
                    watch.arm(directory, None)  # before the listing: what changes after it is an event
            if fresh and (listing is None or listing[0] != "/".join(listdir(directory))):
                listing = _classify(directory, wanted)
            assert listing is not None  # the kept one, or listed now
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENODEV):  # vanished mid-walk: not an error
                errors[directory] = f"{directory}: {e.strerror}"
            continue
        if listed is not None:
            listed[directory] = listing
        yield cgroup, depth, directory, listing[1]
        if depth < max_depth and listing[2]:
            prefix = "/" if cgroup == "/" else cgroup + "/"
            below = directory + "/"
            depth += 1
            for child in reversed(listing[2]):
                stack.append((prefix + (child if child.isascii() else _label(child)), depth, below + child, directory))


def walk(
    layout: Layout, limits: CgroupLimits, memo: CgroupMemo | None = None, watch: DirectoryWatch | None = None
) -> Walk:
    """Every cgroup path within the bounds, with its directories; the deepest beyond max_count are dropped.

    ``memo`` keeps each directory's listing for the next walk (:class:`CgroupMemo`), and with a
    begun ``watch`` the unchanged ones are not listed again (:func:`walk_hierarchy`)."""
    errors: dict[str, str] = {}
    last = memo.listings if memo is not None else None
    listed: dict[str, _Listing] = {}
    by_path: dict[str, tuple[int, list[tuple[str, int, tuple[str, ...]]]]] = {}
    include, exclude = limits.include, limits.exclude
    for hierarchy in layout.hierarchies:
        version = hierarchy.version
        for cgroup, depth, directory, files in walk_hierarchy(hierarchy, limits.max_depth, errors, last, listed, watch):
            if include is not None and not include.search(cgroup):
                continue
            if exclude is not None and exclude.search(cgroup):
                continue
            seen = by_path.get(cgroup)
            if seen is None:
                by_path[cgroup] = (depth, [(directory, version, files)])
            else:
                seen[1].append((directory, version, files))
    dropped = 0
    paths = sorted(by_path)
    if len(paths) > limits.max_count:  # only then is the order by depth needed, to drop the deepest
        by_depth = sorted(paths, key=lambda path: by_path[path][0])  # stable: by path within a depth
        dropped = len(paths) - limits.max_count
        paths = sorted(by_depth[: limits.max_count])
    found = tuple(Found(path, tuple(by_path[path][1])) for path in paths)
    if memo is not None:
        memo.listings = listed
    return Walk(found, dropped, errors)


_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_PATH", 0) | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_CLOEXEC
# Larger than any cgroup control file the kernel prints (v2 memory.stat is about 1.5 KiB); a read
# that fills it goes through read_small_bytes, which bounds the size.
_FIRST_READ = 16384
# What a file may have grown by since the last read before the read after the first is needed: a
# counter gaining digits (a cgroup file is rewritten whole, so more rarely does it grow by more)
_SLACK = 64


# What a cgroup's cycle is kept as: the walk's directories and files, their bytes, the stats, device names
# and the size of each file's first read next time
_Made = tuple[
    tuple[tuple[str, int, tuple[str, ...]], ...],
    tuple[bytes | None, ...],  # None for a file not read: never in a cgroup the memo keeps
    CgroupStats,
    tuple[tuple[str, str | None], ...],
    tuple[int, ...],
]


class CgroupMemo:
    """What the last cycle read and made of it, kept between cycles by whoever walks the same root.

    Most cgroups of a node read the same bytes as a cycle ago (idle containers, and every
    cgroup's limits and event counts): a cgroup whose files all read the same bytes as last
    time (and whose devices keep their names) keeps its :class:`CgroupStats` without parsing
    anything. Only bytes equal to the last read are trusted, so what is exported is what
    parsing the files now would give. Only bytes and the stats are kept, not the parsed fields:
    bytes are no work for the garbage collector, and thousands of dicts kept alive from cycle to
    cycle are. Each cycle builds a new table and then replaces this one, so a cycle still
    running past its deadline only ever reads it."""

    __slots__ = ("cgroups", "listings", "max_watches", "watch", "watching")

    def __init__(self, max_watches: int = MAX_WATCHES) -> None:
        # cgroup path -> (the walk's directories and files, their bytes, the stats, the device names used,
        # the sizes to read them with)
        self.cgroups: dict[str, _Made] = {}
        # directory -> what the walk made of its listing (its names joined: about 20 bytes a name)
        self.listings: dict[str, _Listing] = {}
        # which directories nothing wrote in since they were listed and their limits (:data:`WRITTEN_ONLY`)
        # read, and the hierarchy roots it was opened for (None: not tried yet)
        self.watch: DirectoryWatch | None = None
        self.watching: tuple[str, ...] | None = None
        self.max_watches = max_watches  # 0: no watch, every file read every cycle (:func:`.dirwatch.watch_budget`)

    def watch_for(self, layout: Layout) -> DirectoryWatch | None:
        """The watch for ``layout``'s hierarchies, opened on first use and again if they change."""
        roots = tuple(str(h.path) for h in layout.hierarchies)
        if roots != self.watching:
            if self.watch is not None:
                self.watch.close()
            self.watch, self.watching = open_watch(roots, self.max_watches), roots
        return self.watch


class _NamesGiven:
    """``devices`` (MAJ:MIN itself without it), noting each name it gave."""

    __slots__ = ("devices", "given")

    def __init__(self, devices: Callable[[str], str | None] | None) -> None:
        self.devices = devices
        self.given: list[tuple[str, str | None]] = []

    def __call__(self, dev: str) -> str | None:
        name = dev if self.devices is None else self.devices(dev)
        self.given.append((dev, name))
        return name


def read_found(
    found: Iterable[Found],
    hz: int,
    errors: dict[str, str],
    devices: Callable[[str], str | None] | None = None,
    memo: CgroupMemo | None = None,
    watch: DirectoryWatch | None = None,
) -> dict[str, CgroupStats]:
    """Reads and parses each found cgroup's files. A cgroup whose directory is gone is skipped;
    a file that cannot be read or parsed is recorded in ``errors`` and the rest still count.
    ``devices`` names block devices (:class:`BlockDevices`); without it they keep MAJ:MIN.
    ``memo`` (:class:`CgroupMemo`) spares parsing the cgroups whose files did not change.

    Every control file read here is printed in one go, so a short read is its end
    (``short_read_ends``: a tenth of the syscalls of a cgroup cycle). Files are opened
    relative to the cgroup's directory (``dir_fd``), so the kernel resolves one name
    instead of the whole path: 13 % less time for 16 files a cgroup.

    ``watch`` (begun: :class:`~exporter.sources.dirwatch.DirectoryWatch`, with ``memo``) spares
    reading a cgroup's limits (:data:`WRITTEN_ONLY`) where nothing was written in its directory
    since they were last read: the last cycle's bytes stand for them. Those are 5 of a v2
    cgroup's 16 files."""
    stats: dict[str, CgroupStats] = {}
    last = memo.cgroups if memo is not None else {}
    now: dict[str, _Made] = {}
    if memo is None:
        watch = None
    open_, read, close, fstat = os.open, os.read, os.close, os.fstat
    written_only = WRITTEN_ONLY
    for cgroup in found:
        # Each file's bytes (None where it could not be read), in the order of the dirs' files: the
        # unchanged cgroup (most of them) is told by comparing these alone, and only a changed one
        # pays for paths and parser look-ups.
        datas: list[bytes | None] = []
        vanished = failed = False
        made = last.get(cgroup.path)
        same_files = made is not None and made[0] == cgroup.dirs
        sizes = iter(made[4] if made is not None and same_files else ())
        for directory, _, files in cgroup.dirs:
            try:
                dir_fd = open_(directory, _DIRECTORY)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ENODEV):
                    vanished = True
                    break
                errors[directory] = f"{directory}: {e.strerror}"
                failed = True
                for _ in files:
                    datas.append(None)
                    next(sizes, None)
                continue
            try:
                quiet = False
                if watch is not None:
                    try:
                        st = fstat(dir_fd)
                    except OSError:
                        pass
                    else:
                        key = (st.st_dev, st.st_ino, st.st_ctime_ns)
                        if watch.quiet(directory, key):
                            quiet = same_files  # the last cycle's bytes are there to stand in
                        else:
                            watch.arm(directory, key)  # before the reads: a write after them is an event
                for name in files:
                    want = next(sizes, _FIRST_READ)
                    if quiet and name in written_only:
                        assert made is not None  # same_files
                        datas.append(made[1][len(datas)])
                        continue
                    try:
                        # One open, one read and one close per file (read_small's loop only for a file
                        # that fills the first read): at a thousand cgroups the calls add up.
                        fd = open_(name, _FILE, dir_fd=dir_fd)
                        try:
                            data = read(fd, want)
                        finally:
                            close(fd)
                        if len(data) == want:
                            data = read_small_bytes(name, short_read_ends=True, dir_fd=dir_fd)
                        datas.append(data)
                    except OSError as e:
                        if e.errno in (errno.ENOENT, errno.ENODEV) and not os.path.isdir(directory):
                            vanished = True
                            break
                        if e.errno == errno.ENOENT and watch is not None and directory in watch.reused:
                            # gone with no event (a controller moved to another hierarchy): as a fresh
                            # listing would have it, and the next cycle lists the directory again
                            watch.changed(directory)
                            failed = True  # nothing of this cgroup is kept
                            datas.append(None)
                            continue
                        path = directory + "/" + name
                        errors[path] = f"{path}: {e.strerror}"
                        failed = True
                        datas.append(None)
                    except SourceError as e:
                        errors[directory + "/" + name] = str(e)
                        failed = True
                        datas.append(None)
            finally:
                close(dir_fd)
            if vanished:
                break
        if vanished:
            continue
        read_now = tuple(datas)
        if (
            made is not None
            and same_files
            and not failed
            and read_now == made[1]
            and all((dev if devices is None else devices(dev)) == name for dev, name in made[3])
        ):
            now[cgroup.path] = made
            stats[cgroup.path] = made[2]
            continue
        parts: list[Fields] = []
        i = 0
        for directory, version, files in cgroup.dirs:
            table = V2_FILES if version == 2 else V1_FILES
            for name in files:
                got = datas[i]
                i += 1
                if got is None:  # not read: its error is recorded
                    continue
                path = directory + "/" + name
                try:
                    parts.append(table[name](got.decode("utf-8", "replace"), path, hz))
                except SourceError as e:
                    errors[path] = str(e)
                    failed = True
                except (ValueError, OverflowError) as e:  # a value no kernel writes: this file fails, not all
                    errors[path] = f"{path}: {e}"
                    failed = True
        named = _NamesGiven(devices)
        stats[cgroup.path] = merge_fields(parts, named)
        if not failed:
            # The next read of each file asks for as much as it holds now and a little more: a buffer of
            # 512 bytes or less comes from Python's small-object allocator, not malloc (callgrind, the
            # 1000-cgroup bench's idle cycle: 6 % fewer user-space instructions than 16 KiB reads).
            sizes_next = tuple([len(data) + _SLACK for data in read_now if data is not None])
            now[cgroup.path] = (cgroup.dirs, read_now, stats[cgroup.path], tuple(named.given), sizes_next)
    if memo is not None:
        memo.cgroups = now
    return stats


def read_cgroups(
    root: Path, limits: CgroupLimits, hz: int, sysfs: Path | None = None, memo: CgroupMemo | None = None
) -> CgroupTree:
    """Walks and reads ``root``; block devices are named from ``sysfs``, by default the sysfs that
    holds ``root`` when it is mounted as ``<sysfs>/fs/cgroup`` (else they keep MAJ:MIN). ``memo``
    carries the last cycle's reads to the next (:class:`CgroupMemo`)."""
    if sysfs is None and root.parent.name == "fs":
        sysfs = root.parent.parent
    layout = detect_layout(root)
    watch = memo.watch_for(layout) if memo is not None else None
    if watch is not None and not watch.begin():  # another cycle, past its deadline, still holds it
        watch = None
    try:
        walked = walk(layout, limits, memo, watch)
        errors = dict(walked.errors)
        stats = read_found(walked.found, hz, errors, BlockDevices(sysfs), memo, watch)
    finally:
        if watch is not None:
            assert memo is not None
            watch.end(memo.listings)
    return CgroupTree(layout.name, stats, walked.dropped, dict(sorted(errors.items())))


# ---- container and pod identity ----

_POD_SYSTEMD = re.compile(r"^kubepods(?:-[a-z]+)?-pod([0-9a-f_]{36})\.slice$")
_POD_CGROUPFS = re.compile(r"^pod([0-9a-f-]{36})$")
_CONTAINER_SCOPE = re.compile(r"^(?:docker|cri-containerd|crio)-([0-9a-f]{64})\.scope$")
_CONTAINER_BARE = re.compile(r"^([0-9a-f]{64})$")


def container_identity(path: str) -> tuple[str, str] | None:
    """(pod UID, container ID) a cgroup path holds, "" for a part it lacks; None when it holds neither.

    Systemd driver: ``kubepods-burstable-pod<uid, _ for ->.slice/cri-containerd-<id>.scope``;
    cgroupfs driver: ``kubepods/burstable/pod<uid>/<id>``; Docker: ``docker-<id>.scope`` or
    ``docker/<id>``; CRI-O: ``crio-<id>.scope``. The innermost match wins.
    """
    pod = container = ""
    for part in path.split("/"):
        if m := _POD_SYSTEMD.match(part):
            pod = m.group(1).replace("_", "-")
        elif m := _POD_CGROUPFS.match(part):
            pod = m.group(1)
        elif (m := _CONTAINER_SCOPE.match(part)) or (m := _CONTAINER_BARE.match(part)):
            container = m.group(1)
    return (pod, container) if pod or container else None
