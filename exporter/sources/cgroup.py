"""cgroup v2 and v1 memory, cpu and pids files, walked below an explicit cgroupfs root.

Interfaces: Documentation/admin-guide/cgroup-v2.rst (memory.events,
memory.current, memory.max, cpu.stat, pids.*, "PSI - Pressure Stall
Information" for *.pressure) and Documentation/admin-guide/cgroup-v1/
(memory.rst: memory.usage_in_bytes, memory.limit_in_bytes, memory.failcnt,
memory.oom_control; cpuacct.rst: cpuacct.usage in ns, cpuacct.stat in USER_HZ;
pids.rst; scheduler/sched-bwc.rst: cpu.stat nr_periods, nr_throttled,
throttled_time in ns).

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
since 4.20; the ``full`` line of cpu.pressure since 5.13.

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

from exporter.sources import SourceError, read_small

V1_CONTROLLERS = frozenset({"memory", "cpu", "cpuacct", "pids"})

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


def parse_flat_keyed(text: str, path: str) -> dict[str, int]:
    """``<key> <integer>`` per line (memory.events, pids.events, cpu.stat, memory.oom_control, cpuacct.stat)."""
    out: dict[str, int] = {}
    for lineno, line in _lines(text, path):
        parts = line.split()
        if len(parts) != 2:
            raise SourceError(path, f"expected '<key> <integer>', got {line[:60]!r}", lineno)
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            raise SourceError(path, f"{parts[0]}: {parts[1][:30]!r} is not an integer", lineno) from None
    return out


def parse_single(text: str, path: str) -> int | None:
    """One integer, or ``max`` (no limit) as None (memory.current, memory.max, pids.*, cpuacct.usage)."""
    value = text.strip()
    if value == "max":
        return None
    if not text.endswith("\n") or "\n" in value:
        raise SourceError(path, f"expected one value and a newline, got {text[:40]!r}")
    try:
        return int(value)
    except ValueError:
        raise SourceError(path, f"{value[:30]!r} is not an integer or 'max'") from None


_PSI_KEYS = ["avg10", "avg60", "avg300", "total"]


def parse_pressure(text: str, path: str) -> dict[str, float]:
    """PSI lines ``some avg10=.. avg60=.. avg300=.. total=<usec>`` -> {kind: stall seconds}."""
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
}

_MAPPINGS = ("memory_events", "pids_events", "pressure_seconds")


def merge_fields(parts: Iterable[Fields]) -> CgroupStats:
    """Union of the files' fields; the first part to give a value (or an event key) wins."""
    out: Fields = {}
    for part in parts:
        for key, value in part.items():
            if key in _MAPPINGS:
                merged = out.setdefault(key, {})
                for k, v in value.items():
                    merged.setdefault(k, v)
            elif out.get(key) is None:
                out[key] = value
    return CgroupStats(**out)


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


def walk_hierarchy(
    hierarchy: Hierarchy, max_depth: int, errors: dict[str, str]
) -> Iterable[tuple[str, int, str, tuple[str, ...]]]:
    """(cgroup path, depth, directory, files of interest) for each directory, parents first.

    Lazy: a child is listed only after its parent was yielded, so a cgroup removed in
    between (its directory gone: ENOENT, or ENODEV while the kernel tears it down) is
    skipped without an error."""
    wanted = V2_FILES if hierarchy.version == 2 else V1_FILES
    stack: list[tuple[str, int, str]] = [("/", 0, str(hierarchy.path))]
    while stack:
        cgroup, depth, directory = stack.pop()
        files: list[str] = []
        children: list[str] = []
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    name = entry.name
                    if name in wanted:
                        files.append(name)
                    elif depth < max_depth and entry.is_dir(follow_symlinks=False):
                        children.append(name)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENODEV):  # vanished mid-walk: not an error
                errors[directory] = f"{directory}: {e.strerror}"
            continue
        yield cgroup, depth, directory, tuple(sorted(files))
        prefix = "/" if cgroup == "/" else cgroup + "/"
        for child in sorted(children, reverse=True):
            stack.append((prefix + _label(child), depth + 1, directory + "/" + child))


def walk(layout: Layout, limits: CgroupLimits) -> Walk:
    """Every cgroup path within the bounds, with its directories; the deepest beyond max_count are dropped."""
    errors: dict[str, str] = {}
    by_path: dict[str, tuple[int, list[tuple[str, int, tuple[str, ...]]]]] = {}
    for hierarchy in layout.hierarchies:
        for cgroup, depth, directory, files in walk_hierarchy(hierarchy, limits.max_depth, errors):
            if limits.include is not None and not limits.include.search(cgroup):
                continue
            if limits.exclude is not None and limits.exclude.search(cgroup):
                continue
            by_path.setdefault(cgroup, (depth, []))[1].append((directory, hierarchy.version, files))
    ordered = sorted(by_path.items(), key=lambda item: (item[1][0], item[0]))
    kept = ordered[: limits.max_count]
    found = tuple(Found(path, tuple(dirs)) for path, (_, dirs) in sorted(kept))
    return Walk(found, len(ordered) - len(kept), errors)


def read_found(found: Iterable[Found], hz: int, errors: dict[str, str]) -> dict[str, CgroupStats]:
    """Reads and parses each found cgroup's files. A cgroup whose directory is gone is skipped;
    a file that cannot be read or parsed is recorded in ``errors`` and the rest still count.

    Every control file read here is printed in one go, so a short read is its end
    (``short_read_ends``: a tenth of the syscalls of a cgroup cycle)."""
    stats: dict[str, CgroupStats] = {}
    for cgroup in found:
        parts: list[Fields] = []
        vanished = False
        for directory, version, files in cgroup.dirs:
            table = V2_FILES if version == 2 else V1_FILES
            for name in files:
                path = directory + "/" + name
                try:
                    parts.append(table[name](read_small(path, short_read_ends=True), path, hz))
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.ENODEV) and not os.path.isdir(directory):
                        vanished = True
                        break
                    errors[path] = f"{path}: {e.strerror}"
                except SourceError as e:
                    errors[path] = str(e)
            if vanished:
                break
        if not vanished:
            stats[cgroup.path] = merge_fields(parts)
    return stats


def read_cgroups(root: Path, limits: CgroupLimits, hz: int) -> CgroupTree:
    layout = detect_layout(root)
    walked = walk(layout, limits)
    errors = dict(walked.errors)
    stats = read_found(walked.found, hz, errors)
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
