"""Guest families from a Snapshot: what each VM's agent sent, as re-stamped by the host.

Written straight to text (collector/exposition.py), one VM at a time: a VM
whose series cannot be rendered (the ingest refuses what would cause that, so
this is the last line of defence) loses its own series for that snapshot,
counted in ``sysmon_guest_render_failures_total`` and logged once; the other
VMs' series are written as usual.
"""

from __future__ import annotations

import logging

from exporter.collector.exposition import Family, Piece, escape_label_value, format_families, format_value
from exporter.guest_state import EVENTS, REASONS, GuestVm
from exporter.snapshot import Snapshot

log = logging.getLogger("exporter.collector.guest")

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
_CGROUP = {
    "cpu_usage_seconds": (
        "sysmon_guest_cgroup_cpu_usage_seconds_total",
        "counter",
        "CPU time used by the guest's cgroup, as the guest's cgroupfs counts it.",
    ),
    "memory_usage_bytes": (
        "sysmon_guest_cgroup_memory_usage_bytes",
        "gauge",
        "Memory charged to the guest's cgroup.",
    ),
    "pids_current": ("sysmon_guest_cgroup_pids_current", "gauge", "Tasks in the guest's cgroup."),
}


def _families() -> dict[str, Family]:
    """Every guest family, by name, in exposition order."""
    families = [
        Family(
            "sysmon_guest_channel_up",
            "gauge",
            "1 while the host is connected to the guest's channel (the socket), else 0.",
        ),
        Family(
            "sysmon_guest_up",
            "gauge",
            "1 while the guest's agent sends valid rows: one arrived within --guest.silent-window, else 0.",
        ),
        Family(
            "sysmon_guest_info",
            "gauge",
            "What the guest agent says about itself (hostname is the guest's claim; vm is the host's name).",
        ),
        Family(
            "sysmon_guest_cpu_seconds_total",
            "counter",
            "Seconds each guest CPU spent in each mode, as the guest's /proc/stat counts them.",
        ),
        Family("sysmon_guest_cpu_frequency_hertz", "gauge", "Guest CPU frequency as the guest sees it."),
        *(Family(name, "gauge", help_text) for name, help_text in _MEMORY.values()),
        *(Family(name, kind, help_text) for name, kind, help_text in _CGROUP.values()),
        Family(
            "sysmon_guest_clock_offset_seconds",
            "gauge",
            "Guest wall clock minus host wall clock when the last row arrived (includes channel latency).",
        ),
        Family("sysmon_guest_last_row_timestamp_seconds", "gauge", "Host Unix time when the last row arrived."),
        Family("sysmon_guest_rows_total", "counter", "Rows accepted from the guest."),
        Family(
            "sysmon_guest_malformed_rows_total",
            "counter",
            f"Guest lines discarded, by reason ({', '.join(REASONS)}).",
        ),
        Family(
            "sysmon_guest_dropped_rows_total",
            "counter",
            "Rows the guest agent dropped because the channel was not read, as the agent reports.",
        ),
        Family(
            "sysmon_guest_channel_events_total",
            "counter",
            f"Channel lifecycle events: {', '.join(EVENTS)}.",
        ),
        Family(
            "sysmon_guest_unrecorded_rows_total",
            "counter",
            "Rows accepted but not written by --guest.record (queue full, file refused or failing); 0 without it.",
        ),
        Family(
            "sysmon_guest_host_lines_sent_total",
            "counter",
            "Host lines (the host's frequency and steal per vCPU) written into the guest's channel.",
        ),
        Family(
            "sysmon_guest_host_lines_dropped_total",
            "counter",
            "Host lines dropped because the guest's channel would not take them without waiting.",
        ),
        Family(
            "sysmon_guest_host_lines_rejected_total",
            "counter",
            "Host lines the guest agent rejected (malformed, oversized or of another version), as the agent reports.",
        ),
        Family(
            "sysmon_guest_render_failures_total",
            "counter",
            "Snapshots in which the VM's guest series could not be written and were left out.",
        ),
    ]
    return {f.name: f for f in families}


def _vm_lines(vm: str, g: GuestVm) -> list[tuple[str, str]]:
    """(family name, sample line) for one VM's series."""
    label = f'vm="{escape_label_value(vm)}"'
    out: list[tuple[str, str]] = []

    def add(name: str, labels: str, value: float) -> None:
        out.append((name, f"{name}{{{labels}}} {format_value(value)}\n"))

    add("sysmon_guest_channel_up", label, 1 if g.channel_up else 0)
    add("sysmon_guest_up", label, 1 if g.up else 0)
    if g.agent_version or g.hostname:
        info = (
            f'{label},hostname="{escape_label_value(g.hostname)}",agent_version="{escape_label_value(g.agent_version)}"'
            f',boot_id="{escape_label_value(g.boot_id)}"'
        )
        add("sysmon_guest_info", info, 1)
    for c, modes in g.cpu_seconds.items():
        for mode, value in modes.items():
            add("sysmon_guest_cpu_seconds_total", f'{label},cpu="{c}",mode="{escape_label_value(mode)}"', value)
    for c, hertz in g.frequency_hertz.items():
        add("sysmon_guest_cpu_frequency_hertz", f'{label},cpu="{c}"', hertz)
    for key, value in g.memory_bytes.items():
        add(_MEMORY[key][0], label, value)
    for path, values in g.cgroups.items():
        cgroup = f'{label},cgroup="{escape_label_value(path)}"'
        for key, value in values.items():
            add(_CGROUP[key][0], cgroup, value)
    if g.clock_offset_seconds is not None:
        add("sysmon_guest_clock_offset_seconds", label, g.clock_offset_seconds)
    if g.last_row_timestamp_seconds is not None:
        add("sysmon_guest_last_row_timestamp_seconds", label, g.last_row_timestamp_seconds)
    add("sysmon_guest_rows_total", label, g.rows_total)
    # Every reason and event from the start, at 0: a counter that appears with its first
    # increment hides that increment from rate() and increase().
    for reason in REASONS:
        add("sysmon_guest_malformed_rows_total", f'{label},reason="{reason}"', g.malformed_rows_total.get(reason, 0))
    add("sysmon_guest_dropped_rows_total", label, g.dropped_rows_total)
    for event in EVENTS:
        add("sysmon_guest_channel_events_total", f'{label},event="{event}"', g.channel_events_total.get(event, 0))
    add("sysmon_guest_unrecorded_rows_total", label, g.unrecorded_rows_total)
    add("sysmon_guest_host_lines_sent_total", label, g.host_lines_sent_total)
    add("sysmon_guest_host_lines_dropped_total", label, g.host_lines_dropped_total)
    add("sysmon_guest_host_lines_rejected_total", label, g.host_lines_rejected_total)
    return out


class GuestRenderer:
    """Snapshot -> guest Pieces; keeps each VM's render failure count while the VM is in the snapshots."""

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}

    def __call__(self, snap: Snapshot) -> list[Piece]:
        """sysmon_guest_up{vm="web-1"} 1 (and channel, info, CPU, memory, cgroups, clock offset, counters)."""
        self.failures = {vm: n for vm, n in self.failures.items() if vm in snap.guests}
        if not snap.guests:
            return []
        families = _families()
        for vm, g in snap.guests.items():
            try:
                lines = _vm_lines(vm, g)
                "".join(line for _, line in lines).encode()  # what format_families will encode
            except (ValueError, TypeError, KeyError, OverflowError) as e:  # UnicodeEncodeError is a ValueError
                lines = []
                failures = self.failures.get(vm, 0)
                if not failures:
                    log.warning("vm %s: guest series cannot be written and are left out: %s", vm, e)
                self.failures[vm] = failures + 1
            for name, line in lines:
                families[name].lines.append(line)
        failed = families["sysmon_guest_render_failures_total"]
        for vm in snap.guests:
            failed.lines.append(
                f'sysmon_guest_render_failures_total{{vm="{escape_label_value(vm)}"}} '
                f"{format_value(self.failures.get(vm, 0))}\n"
            )
        return format_families(families.values())
