"""Guest families from a Snapshot: what each VM's agent sent, as re-stamped by the host."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.guest_state import EVENTS, REASONS
from exporter.snapshot import Snapshot

_MEMORY = {
    "total_bytes": ("sysmon_guest_memory_total_bytes", "Guest usable RAM (MemTotal)."),
    "free_bytes": ("sysmon_guest_memory_free_bytes", "Guest unused RAM (MemFree)."),
    "available_bytes": ("sysmon_guest_memory_available_bytes", "Guest RAM available without swapping."),
    "buffers_bytes": ("sysmon_guest_memory_buffers_bytes", "Guest block device buffers (Buffers)."),
    "cached_bytes": ("sysmon_guest_memory_cached_bytes", "Guest page cache (Cached)."),
    "sreclaimable_bytes": ("sysmon_guest_memory_sreclaimable_bytes", "Guest reclaimable slab (SReclaimable)."),
    "used_bytes": ("sysmon_guest_memory_used_bytes", "Guest used RAM: total - free - buffers - cached - sreclaimable."),
    "swap_total_bytes": ("sysmon_guest_memory_swap_total_bytes", "Guest swap space (SwapTotal)."),
    "swap_free_bytes": ("sysmon_guest_memory_swap_free_bytes", "Guest unused swap space (SwapFree)."),
}


def collect_guest(snap: Snapshot) -> Iterator[Metric]:
    """sysmon_guest_up{vm="web-1"} 1 (and info, CPU, memory, cgroups, clock offset, channel counters)."""
    if not snap.guests:
        return
    up = GaugeMetricFamily("sysmon_guest_up", "1 while the guest's channel is connected, else 0.", labels=["vm"])
    info = GaugeMetricFamily(
        "sysmon_guest_info",
        "What the guest agent says about itself (hostname is the guest's claim; vm is the host's name).",
        labels=["vm", "hostname", "agent_version", "boot_id"],
    )
    cpu = CounterMetricFamily(
        "sysmon_guest_cpu_seconds_total",
        "Seconds each guest CPU spent in each mode, as the guest's /proc/stat counts them.",
        labels=["vm", "cpu", "mode"],
    )
    freq = GaugeMetricFamily(
        "sysmon_guest_cpu_frequency_hertz", "Guest CPU frequency as the guest sees it.", labels=["vm", "cpu"]
    )
    memory = {key: GaugeMetricFamily(name, help_text, labels=["vm"]) for key, (name, help_text) in _MEMORY.items()}
    cg_cpu = CounterMetricFamily(
        "sysmon_guest_cgroup_cpu_usage_seconds_total",
        "CPU time used by the guest's cgroup, as the guest's cgroupfs counts it.",
        labels=["vm", "cgroup"],
    )
    cg_memory = GaugeMetricFamily(
        "sysmon_guest_cgroup_memory_usage_bytes", "Memory charged to the guest's cgroup.", labels=["vm", "cgroup"]
    )
    cg_pids = GaugeMetricFamily(
        "sysmon_guest_cgroup_pids_current", "Tasks in the guest's cgroup.", labels=["vm", "cgroup"]
    )
    cgroup_families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
        "cpu_usage_seconds": cg_cpu,
        "memory_usage_bytes": cg_memory,
        "pids_current": cg_pids,
    }
    offset = GaugeMetricFamily(
        "sysmon_guest_clock_offset_seconds",
        "Guest wall clock minus host wall clock when the last row arrived (includes channel latency).",
        labels=["vm"],
    )
    last = GaugeMetricFamily(
        "sysmon_guest_last_row_timestamp_seconds", "Host Unix time when the last row arrived.", labels=["vm"]
    )
    rows = CounterMetricFamily("sysmon_guest_rows_total", "Rows accepted from the guest.", labels=["vm"])
    malformed = CounterMetricFamily(
        "sysmon_guest_malformed_rows_total",
        f"Guest lines discarded, by reason ({', '.join(REASONS)}).",
        labels=["vm", "reason"],
    )
    dropped = CounterMetricFamily(
        "sysmon_guest_dropped_rows_total",
        "Rows the guest agent dropped because the channel was not read, as the agent reports.",
        labels=["vm"],
    )
    events = CounterMetricFamily(
        "sysmon_guest_channel_events_total",
        f"Channel lifecycle events: {', '.join(EVENTS)}.",
        labels=["vm", "event"],
    )
    for vm, g in snap.guests.items():
        up.add_metric([vm], 1.0 if g.up else 0.0)
        if g.agent_version or g.hostname:
            info.add_metric([vm, g.hostname, g.agent_version, g.boot_id], 1)
        for c, modes in g.cpu_seconds.items():
            for mode, value in modes.items():
                cpu.add_metric([vm, str(c), mode], value)
        for c, hertz in g.frequency_hertz.items():
            freq.add_metric([vm, str(c)], hertz)
        for key, value in g.memory_bytes.items():
            memory[key].add_metric([vm], value)
        for path, values in g.cgroups.items():
            for key, value in values.items():
                cgroup_families[key].add_metric([vm, path], value)
        if g.clock_offset_seconds is not None:
            offset.add_metric([vm], g.clock_offset_seconds)
        if g.last_row_timestamp_seconds is not None:
            last.add_metric([vm], g.last_row_timestamp_seconds)
        rows.add_metric([vm], g.rows_total)
        # Every reason and event from the start, at 0: a counter that appears with its first
        # increment hides that increment from rate() and increase().
        for reason in REASONS:
            malformed.add_metric([vm, reason], g.malformed_rows_total.get(reason, 0))
        dropped.add_metric([vm], g.dropped_rows_total)
        for event in EVENTS:
            events.add_metric([vm, event], g.channel_events_total.get(event, 0))
    families = (up, info, cpu, freq, *memory.values(), cg_cpu, cg_memory, cg_pids, offset, last, rows, malformed)
    families += (dropped, events)
    yield from (m for m in families if m.samples)
