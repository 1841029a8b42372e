"""cgroup memory, cpu, io, pids and pressure families from a Snapshot (v2 and v1 files, one set of names).

Written straight to exposition text (collector/exposition.py): a thousand cgroups
are twenty thousand samples, rendered once per cgroup interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
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


Rows = list[tuple[str, CgroupStats]]  # (the cgroup's label text, its stats), in the tree's order


def _per_key_lines(name: str, label: str, cgroups: Rows, maps: list[Mapping[str, float]]) -> list[str]:
    """One sample per cgroup and key of a mapping (events, fault kinds, stall kinds)."""
    return [
        # an identifier (oom_kill, some, pgfault: every key the kernel writes) has nothing to escape
        f'{name}{cgroup},{label}="{key if key.isidentifier() else escape_label_value(key)}"}} {_value(count)}\n'
        for (cgroup, _), mapping in zip(cgroups, maps, strict=True)
        for key, count in mapping.items()
    ]


def _scalar_lines(name: str, cgroups: Rows, values: list[float | None]) -> list[str]:
    return [f"{name}{cgroup}}} {_value(v)}\n" for (cgroup, _), v in zip(cgroups, values, strict=True) if v is not None]


def _io_lines(name: str, key: str, io_rows: list[tuple[str, Mapping[str, int]]]) -> list[str]:
    return [f"{name}{labels}{_value(counters[key])}\n" for labels, counters in io_rows if key in counters]


def _info_lines(cgroups: Rows, paths: list[str]) -> list[str]:
    lines = []
    for (cgroup, _), path in zip(cgroups, paths, strict=True):
        identity = container_identity(path)
        if identity is not None:
            pod, container = identity
            lines.append(f'sysmon_cgroup_info{cgroup},container_id="{container}",pod_uid="{pod}"}} {format_value(1)}\n')
    return lines


class CgroupRenderer:
    """The cgroup families, snapshot after snapshot (one per Renderer; :func:`render_cgroup` uses one once).

    A family whose inputs equal the last render's (the same cgroup paths and, for each, the
    same values it writes) keeps its bytes: limits, weights, identities and events seldom
    change, and comparing values costs a fraction of writing their lines. Equal values write
    equal text (format_value depends on the number alone), so the bytes are those a fresh
    render writes. Only the last render's inputs are kept.
    """

    def __init__(self) -> None:
        self._paths: list[str] | None = None
        self._last: dict[str, tuple[object, Piece | None]] = {}
        # The last render's tree: the same dropped count and the very same stats objects (which the
        # cgroup memo hands on for cgroups whose files did not change) write the same pieces.
        self._tree: tuple[int, list[CgroupStats], list[Piece]] | None = None

    def __call__(self, snap: Snapshot) -> list[Piece]:
        """sysmon_cgroup_memory_events_total{cgroup="/kubepods.slice",event="oom_kill"} 1 (and cpu, pids, pressure)."""
        tree = snap.cgroups
        if tree is None:
            self._paths, self._last, self._tree = None, {}, None
            return []
        paths = list(tree.stats)
        every = list(tree.stats.values())
        if (
            self._tree is not None
            and paths == self._paths
            and self._tree[0] == tree.dropped
            and all(a is b for a, b in zip(self._tree[1], every, strict=True))
        ):
            return list(self._tree[2])
        last = self._last if paths == self._paths else {}
        seen: dict[str, tuple[object, Piece | None]] = {}
        out: list[Piece] = []

        def family(name: str, kind: str, help_text: str, inputs: object, lines: Callable[[], list[str]]) -> None:
            before = last.get(name)
            if before is not None and inputs is not None and before[0] == inputs:
                written = before[1]
            else:
                text = "".join(lines())
                written = piece(name, kind, help_text, text) if text else None
            seen[name] = (inputs, written)
            if written is not None:
                out.append(written)

        def per_key(
            name: str, help_text: str, label: str, mapping: Callable[[CgroupStats], Mapping[str, float]]
        ) -> None:
            maps = [mapping(stats) for _, stats in cgroups]
            inputs = [tuple(m.items()) for m in maps]
            family(name, "counter", help_text, inputs, partial(_per_key_lines, name, label, cgroups, maps))

        cgroups = [(f'{{cgroup="{escape_label_value(path)}"', stats) for path, stats in tree.stats.items()]
        family(
            "sysmon_cgroup_dropped",
            "gauge",
            "Cgroups not exported because there were more than --cgroup.max-count (the deepest are dropped).",
            None,
            lambda: [f"sysmon_cgroup_dropped {format_value(tree.dropped)}\n"],
        )
        family(
            "sysmon_cgroup_info",
            "gauge",
            "1 for each cgroup whose path holds a Kubernetes pod UID or a container ID.",
            (),  # the paths alone
            partial(_info_lines, cgroups, paths),
        )
        per_key(
            "sysmon_cgroup_memory_events_total",
            "Memory events (v2 memory.events; v1 memory.failcnt as max, memory.oom_control oom_kill).",
            "event",
            attrgetter("memory_events"),
        )
        per_key(
            "sysmon_cgroup_memory_failures_total",
            "Page faults in the cgroup, kind=pgfault (all) or pgmajfault (major) (memory.stat pgfault, pgmajfault).",
            "kind",
            attrgetter("memory_failures"),
        )
        for name, kind, help_text, field in _SCALARS:
            get = attrgetter(field)
            values = [get(stats) for _, stats in cgroups]
            family(name, kind, help_text, values, partial(_scalar_lines, name, cgroups, values))
        io_rows = [
            (f'{cgroup},device="{escape_label_value(device)}"}} ', counters)
            for cgroup, stats in cgroups
            for device, counters in stats.io.items()
        ]
        for name, help_text, key in _IO:  # counters that move with every I/O: written each time
            family(name, "counter", help_text, None, partial(_io_lines, name, key, io_rows))
        per_key(
            "sysmon_cgroup_pids_events_total",
            "Forks refused because the cgroup was at pids.max (pids.events).",
            "event",
            attrgetter("pids_events"),
        )
        for resource, name, help_text in _PRESSURE:
            per_key(name, help_text, "kind", _stalls(resource))
        self._paths, self._last, self._tree = paths, seen, (tree.dropped, every, out)
        return list(out)


def render_cgroup(snap: Snapshot) -> list[Piece]:
    """sysmon_cgroup_memory_events_total{cgroup="/kubepods.slice",event="oom_kill"} 1 (and cpu, pids, pressure)."""
    return CgroupRenderer()(snap)
