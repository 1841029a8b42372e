"""cgroup memory, cpu, io, pids and pressure families from a Snapshot (v2 and v1 files, one set of names).

Written straight to exposition text (collector/exposition.py): a thousand cgroups
are twenty thousand samples, rendered once per cgroup interval.
"""

from __future__ import annotations

from exporter.collector.exposition import Family, Piece, escape_label_value, format_families, format_value
from exporter.snapshot import Snapshot
from exporter.sources.cgroup import PRESSURE_RESOURCES, container_identity

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


def render_cgroup(snap: Snapshot) -> list[Piece]:
    """sysmon_cgroup_memory_events_total{cgroup="/kubepods.slice",event="oom_kill"} 1 (and cpu, pids, pressure)."""
    tree = snap.cgroups
    if tree is None:
        return []
    dropped = Family(
        "sysmon_cgroup_dropped",
        "gauge",
        "Cgroups not exported because there were more than --cgroup.max-count (the deepest are dropped).",
        [f"sysmon_cgroup_dropped {format_value(tree.dropped)}\n"],
    )
    info = Family(
        "sysmon_cgroup_info",
        "gauge",
        "1 for each cgroup whose path holds a Kubernetes pod UID or a container ID.",
    )
    memory_events = Family(
        "sysmon_cgroup_memory_events_total",
        "counter",
        "Memory events (v2 memory.events; v1 memory.failcnt as max, memory.oom_control oom_kill).",
    )
    pids_events = Family(
        "sysmon_cgroup_pids_events_total",
        "counter",
        "Forks refused because the cgroup was at pids.max (pids.events).",
    )
    pressure = {
        "cpu": Family(
            "sysmon_cgroup_pressure_cpu_seconds_total",
            "counter",
            "Time some (or all, kind=full) runnable tasks of the cgroup waited for a CPU (cpu.pressure total).",
        ),
        "memory": Family(
            "sysmon_cgroup_pressure_memory_seconds_total",
            "counter",
            "Time some (or all, kind=full) tasks of the cgroup stalled on memory (memory.pressure total).",
        ),
        "io": Family(
            "sysmon_cgroup_pressure_io_seconds_total",
            "counter",
            "Time some (or all, kind=full) tasks of the cgroup stalled on I/O (io.pressure total).",
        ),
    }
    failures = Family(
        "sysmon_cgroup_memory_failures_total",
        "counter",
        "Page faults in the cgroup, kind=pgfault (all) or pgmajfault (major) (memory.stat pgfault, pgmajfault).",
    )
    io = [(Family(name, "counter", help_text), key) for name, help_text, key in _IO]
    scalars = [(Family(name, kind, help_text), name, field) for name, kind, help_text, field in _SCALARS]
    for path, stats in tree.stats.items():
        cgroup = f'{{cgroup="{escape_label_value(path)}"'
        identity = container_identity(path)
        if identity is not None:
            pod, container = identity
            info.lines.append(
                f'sysmon_cgroup_info{cgroup},container_id="{container}",pod_uid="{pod}"}} {format_value(1)}\n'
            )
        for family, name, field in scalars:
            value = getattr(stats, field)
            if value is not None:
                family.lines.append(f"{name}{cgroup}}} {format_value(value)}\n")
        for event, count in stats.memory_events.items():
            labels = f'{cgroup},event="{escape_label_value(event)}"}}'
            memory_events.lines.append(f"sysmon_cgroup_memory_events_total{labels} {format_value(count)}\n")
        for kind, count in stats.memory_failures.items():
            labels = f'{cgroup},kind="{kind}"}}'
            failures.lines.append(f"sysmon_cgroup_memory_failures_total{labels} {format_value(count)}\n")
        for device, counters in stats.io.items():
            labels = f'{cgroup},device="{escape_label_value(device)}"}}'
            for family, key in io:
                if key in counters:
                    family.lines.append(f"{family.name}{labels} {format_value(counters[key])}\n")
        for event, count in stats.pids_events.items():
            labels = f'{cgroup},event="{escape_label_value(event)}"}}'
            pids_events.lines.append(f"sysmon_cgroup_pids_events_total{labels} {format_value(count)}\n")
        for resource in PRESSURE_RESOURCES:
            family = pressure[resource]
            for kind, seconds in stats.pressure_seconds.get(resource, {}).items():
                family.lines.append(f'{family.name}{cgroup},kind="{kind}"}} {format_value(seconds)}\n')
    return format_families(
        [
            dropped,
            info,
            memory_events,
            failures,
            *(f for f, _, _ in scalars),
            *(f for f, _ in io),
            pids_events,
            *pressure.values(),
        ]
    )
