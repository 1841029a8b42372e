"""cgroup memory, cpu, io, pids and pressure families from a Snapshot (v2 and v1 files, one set of names).

Written straight to exposition text (collector/exposition.py): a thousand cgroups
are twenty thousand samples, rendered once per cgroup interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter
from types import MappingProxyType

from exporter.collector.exposition import Piece, escape_label_value, format_value, piece
from exporter.snapshot import Snapshot
from exporter.sources.cgroup import CgroupStats, container_identity

# (metric name, type, help, CgroupStats field): one value per cgroup.
_SCALARS = (
    (
        "sysmon_cgroup_memory_usage_bytes",
        "gauge",
        "Memory charged to the cgroup (v2 memory.current, v1 memory.usage_in_bytes).",
        "memory_usage_bytes",
    ),
    (
        "sysmon_cgroup_memory_limit_bytes",
        "gauge",
        "Memory limit of the cgroup (v2 memory.max, v1 memory.limit_in_bytes); absent when unlimited.",
        "memory_limit_bytes",
    ),
    (
        "sysmon_cgroup_cpu_usage_seconds_total",
        "counter",
        "CPU time used by the cgroup (v2 cpu.stat usage_usec, v1 cpuacct.usage).",
        "cpu_usage_seconds",
    ),
    (
        "sysmon_cgroup_cpu_user_seconds_total",
        "counter",
        "CPU time in user mode (v2 cpu.stat user_usec, v1 cpuacct.stat user).",
        "cpu_user_seconds",
    ),
    (
        "sysmon_cgroup_cpu_system_seconds_total",
        "counter",
        "CPU time in kernel mode (v2 cpu.stat system_usec, v1 cpuacct.stat system).",
        "cpu_system_seconds",
    ),
    (
        "sysmon_cgroup_cpu_periods_total",
        "counter",
        "CFS bandwidth periods that elapsed with runnable tasks (cpu.stat nr_periods).",
        "cpu_periods",
    ),
    (
        "sysmon_cgroup_cpu_throttled_periods_total",
        "counter",
        "CFS bandwidth periods in which the cgroup was throttled (cpu.stat nr_throttled).",
        "cpu_throttled_periods",
    ),
    (
        "sysmon_cgroup_cpu_throttled_seconds_total",
        "counter",
        "Time the cgroup's tasks were throttled (v2 cpu.stat throttled_usec, v1 throttled_time).",
        "cpu_throttled_seconds",
    ),
    (
        "sysmon_cgroup_memory_working_set_bytes",
        "gauge",
        "Usage minus inactive file pages, floored at 0: cAdvisor's and the kubelet's working set"
        " (v2 memory.current - memory.stat inactive_file, v1 usage_in_bytes - total_inactive_file).",
        "memory_working_set_bytes",
    ),
    (
        "sysmon_cgroup_memory_rss_bytes",
        "gauge",
        "Anonymous memory of the cgroup (v2 memory.stat anon, v1 total_rss).",
        "memory_rss_bytes",
    ),
    (
        "sysmon_cgroup_memory_cache_bytes",
        "gauge",
        "Page cache charged to the cgroup (v2 memory.stat file, v1 total_cache).",
        "memory_cache_bytes",
    ),
    (
        "sysmon_cgroup_memory_mapped_file_bytes",
        "gauge",
        "Page cache mapped into the cgroup's processes (v2 memory.stat file_mapped, v1 total_mapped_file).",
        "memory_mapped_file_bytes",
    ),
    (
        "sysmon_cgroup_memory_swap_bytes",
        "gauge",
        "Swap used by the cgroup (v2 memory.swap.current, v1 memory.memsw.usage_in_bytes - usage_in_bytes).",
        "memory_swap_bytes",
    ),
    (
        "sysmon_cgroup_memory_kernel_bytes",
        "gauge",
        "Kernel memory charged to the cgroup (v2 memory.stat kernel or its parts, v1 memory.kmem.usage_in_bytes).",
        "memory_kernel_bytes",
    ),
    (
        "sysmon_cgroup_memory_high_bytes",
        "gauge",
        "Memory throttling threshold of the cgroup (v2 memory.high); absent when max.",
        "memory_high_bytes",
    ),
    (
        "sysmon_cgroup_cpu_limit_cores",
        "gauge",
        "CFS bandwidth limit in CPUs (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us); absent when unlimited.",
        "cpu_limit_cores",
    ),
    (
        "sysmon_cgroup_cpu_weight",
        "gauge",
        "CPU weight, 1..10000, default 100 (v2 cpu.weight; v1 cpu.shares as round(shares * 100 / 1024)).",
        "cpu_weight",
    ),
    ("sysmon_cgroup_pids_current", "gauge", "Tasks in the cgroup (pids.current).", "pids_current"),
    ("sysmon_cgroup_pids_limit", "gauge", "Task limit of the cgroup (pids.max); absent when unlimited.", "pids_limit"),
)


# (resource, metric name, help): seconds per cgroup and kind (some, full), from CgroupStats.pressure_seconds.
_PRESSURE = (
    (
        "cpu",
        "sysmon_cgroup_pressure_cpu_seconds_total",
        "Time some (or all, kind=full) runnable tasks of the cgroup waited for a CPU (cpu.pressure total).",
    ),
    (
        "memory",
        "sysmon_cgroup_pressure_memory_seconds_total",
        "Time some (or all, kind=full) tasks of the cgroup stalled on memory (memory.pressure total).",
    ),
    (
        "io",
        "sysmon_cgroup_pressure_io_seconds_total",
        "Time some (or all, kind=full) tasks of the cgroup stalled on I/O (io.pressure total).",
    ),
)

# (metric name, help, CgroupStats.io counter): one value per cgroup and device.
_IO = (
    (
        "sysmon_cgroup_io_read_bytes_total",
        "Bytes read from the block device by the cgroup (v2 io.stat rbytes, v1 blkio io_service_bytes_recursive Read).",
        "read_bytes",
    ),
    (
        "sysmon_cgroup_io_write_bytes_total",
        "Bytes written to the block device by the cgroup (v2 io.stat wbytes, v1 blkio io_service_bytes_recursive"
        " Write).",
        "write_bytes",
    ),
    (
        "sysmon_cgroup_io_reads_total",
        "Read operations on the block device by the cgroup (v2 io.stat rios, v1 blkio io_serviced_recursive Read).",
        "reads",
    ),
    (
        "sysmon_cgroup_io_writes_total",
        "Write operations on the block device by the cgroup (v2 io.stat wios, v1 blkio io_serviced_recursive Write).",
        "writes",
    ),
)


_EXACT = 10**15  # format_value writes integers below this as their digits


def _value(value: float) -> str:
    """:func:`format_value`, with its most common case first: a cgroup counter (an int below 1e15)
    is its own digits, which is what format_value writes for it, for a third of the time."""
    if type(value) is int and -_EXACT < value < _EXACT:
        return str(value)
    return format_value(value)


_NONE: Mapping[str, float] = MappingProxyType({})


def _stalls(resource: str) -> Callable[[CgroupStats], Mapping[str, float]]:
    def stalls(stats: CgroupStats) -> Mapping[str, float]:
        return stats.pressure_seconds.get(resource, _NONE)

    return stalls


def _key(key: str) -> str:
    # an identifier (oom_kill, some, pgfault: every key the kernel writes) has nothing to escape
    return key if key.isidentifier() else escape_label_value(key)


def _per_key(name: str, label: str, mapping: Callable[[CgroupStats], Mapping[str, float]]) -> _Lines:
    """One sample per key of a mapping (events, fault kinds, stall kinds)."""

    def lines(cgroup: str, stats: CgroupStats) -> str:
        return "".join(f'{name}{cgroup},{label}="{_key(k)}"}} {_value(v)}\n' for k, v in mapping(stats).items())

    return lines


def _scalar(name: str, field: str) -> _Lines:
    get = attrgetter(field)

    def line(cgroup: str, stats: CgroupStats) -> str:
        v = get(stats)
        return "" if v is None else f"{name}{cgroup}}} {_value(v)}\n"

    return line


def _io(name: str, key: str) -> _Lines:
    def lines(cgroup: str, stats: CgroupStats) -> str:
        return "".join(
            f'{name}{cgroup},device="{escape_label_value(device)}"}} {_value(counters[key])}\n'
            for device, counters in stats.io.items()
            if key in counters
        )

    return lines


_Lines = Callable[[str, CgroupStats], str]  # a cgroup's lines of one family, from its label text and stats

# (name, type, help, lines of one cgroup) of every family written per cgroup, in the exposition's order
_FAMILIES: tuple[tuple[str, str, str, _Lines], ...] = (
    (
        "sysmon_cgroup_memory_events_total",
        "counter",
        "Memory events (v2 memory.events; v1 memory.failcnt as max, memory.oom_control oom_kill).",
        _per_key("sysmon_cgroup_memory_events_total", "event", attrgetter("memory_events")),
    ),
    (
        "sysmon_cgroup_memory_failures_total",
        "counter",
        "Page faults in the cgroup, kind=pgfault (all) or pgmajfault (major) (memory.stat pgfault, pgmajfault).",
        _per_key("sysmon_cgroup_memory_failures_total", "kind", attrgetter("memory_failures")),
    ),
    *((name, kind, help_text, _scalar(name, field)) for name, kind, help_text, field in _SCALARS),
    *((name, "counter", help_text, _io(name, key)) for name, help_text, key in _IO),
    (
        "sysmon_cgroup_pids_events_total",
        "counter",
        "Forks refused because the cgroup was at pids.max (pids.events).",
        _per_key("sysmon_cgroup_pids_events_total", "event", attrgetter("pids_events")),
    ),
    *(
        (name, "counter", help_text, _per_key(name, "kind", _stalls(resource)))
        for resource, name, help_text in _PRESSURE
    ),
)


def _info_lines(cgroups: list[str], paths: list[str]) -> str:
    lines = []
    for cgroup, path in zip(cgroups, paths, strict=True):
        identity = container_identity(path)
        if identity is not None:
            pod, container = identity
            lines.append(f'sysmon_cgroup_info{cgroup},container_id="{container}",pod_uid="{pod}"}} {format_value(1)}\n')
    return "".join(lines)


class CgroupRenderer:
    """The cgroup families, snapshot after snapshot (one per Renderer; :func:`render_cgroup` uses one once).

    The cgroup memo hands on the very same :class:`CgroupStats` object for a cgroup none of
    whose files changed, so for the same cgroup paths as the last render only the cgroups
    whose stats are new objects have their lines written again; the others keep last
    render's lines (equal values write equal text: format_value depends on the number alone,
    so the bytes are those a fresh render writes). A family whose text did not change keeps its
    :class:`Piece`, and a tree of the very same stats keeps every piece. Only the last
    render's lines are kept.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._paths: list[str] | None = None
        self._stats: list[CgroupStats] = []
        self._dropped: int | None = None
        self._lines: dict[str, list[str]] = {}  # family -> each cgroup's lines, in the tree's order
        self._pieces: dict[str, Piece | None] = {}  # family -> its piece (None: no samples)
        self._out: list[Piece] = []

    def __call__(self, snap: Snapshot) -> list[Piece]:
        """sysmon_cgroup_memory_events_total{cgroup="/kubepods.slice",event="oom_kill"} 1 (and cpu, pids, pressure)."""
        tree = snap.cgroups
        if tree is None:
            self._reset()
            return []
        paths = list(tree.stats)
        stats = list(tree.stats.values())
        same_paths = paths == self._paths
        changed: list[int] = []
        if same_paths:
            changed = [i for i, (a, b) in enumerate(zip(self._stats, stats, strict=True)) if a is not b]
            if not changed and tree.dropped == self._dropped:
                return list(self._out)
        cgroups = [f'{{cgroup="{escape_label_value(path)}"' for path in paths]
        out: list[Piece] = []
        pieces: dict[str, Piece | None] = {}
        lines_now: dict[str, list[str]] = {}

        def family(name: str, kind: str, help_text: str, text: str) -> None:
            before = self._pieces.get(name)
            if before is not None and same_paths and before.samples == text.encode():
                written: Piece | None = before
            else:
                written = piece(name, kind, help_text, text) if text else None
            pieces[name] = written
            if written is not None:
                out.append(written)

        family(
            "sysmon_cgroup_dropped",
            "gauge",
            "Cgroups not exported because there were more than --cgroup.max-count (the deepest are dropped).",
            f"sysmon_cgroup_dropped {format_value(tree.dropped)}\n",
        )
        if same_paths and "sysmon_cgroup_info" in self._pieces:
            info = self._pieces["sysmon_cgroup_info"]  # the paths alone
            pieces["sysmon_cgroup_info"] = info
            if info is not None:
                out.append(info)
        else:
            family(
                "sysmon_cgroup_info",
                "gauge",
                "1 for each cgroup whose path holds a Kubernetes pod UID or a container ID.",
                _info_lines(cgroups, paths),
            )
        for name, kind, help_text, write in _FAMILIES:
            last = self._lines.get(name) if same_paths else None
            if last is None:
                lines = [write(cgroup, s) for cgroup, s in zip(cgroups, stats, strict=True)]
            else:
                lines = list(last)
                for i in changed:
                    lines[i] = write(cgroups[i], stats[i])
            lines_now[name] = lines
            family(name, kind, help_text, "".join(lines))
        self._paths, self._stats, self._dropped = paths, stats, tree.dropped
        self._lines, self._pieces, self._out = lines_now, pieces, out
        return list(out)


def render_cgroup(snap: Snapshot) -> list[Piece]:
    """sysmon_cgroup_memory_events_total{cgroup="/kubepods.slice",event="oom_kill"} 1 (and cpu, pids, pressure)."""
    return CgroupRenderer()(snap)
