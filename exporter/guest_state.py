"""What the host knows about one guest, frozen for the snapshot (no I/O, no asyncio).

Below the snapshot in the import graph: the guest ingest (exporter/guest/) fills it, the
snapshot carries it and the collectors read it; it imports nothing of the exporter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_VM_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def vm_label(text: str) -> str:
    """A bounded label value from a host-side name (path capture, socket name, CID or a VM's own name).

    The guest ingest and the host's ``vm`` source both name VMs with it, so their ``vm`` labels join.
    """
    return _VM_NAME.sub("_", text)[:64] or "_"


# Why a line was discarded: the values of sysmon_guest_malformed_rows_total{reason}.
REASONS = (
    "too_long",
    "invalid_utf8",
    "invalid_json",
    "too_deep",
    "invalid_row",
    "unsupported_version",
    "rate_limited",
    "invalid_cloudevent",
)

# The values of sysmon_guest_channel_events_total{event}, in the order they happen.
EVENTS = ("connect_failed", "connect", "first_byte", "silent_window", "disconnect")


@dataclass(frozen=True)
class GuestVm:
    vm: str
    channel_up: bool = False  # the host is connected to the VM's channel
    up: bool = False  # a valid row arrived within --guest.silent-window, on a connected channel
    hostname: str = ""
    agent_version: str = ""
    boot_id: str = ""
    cpu_seconds: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    frequency_hertz: Mapping[int, float] = field(default_factory=dict)
    memory_bytes: Mapping[str, float] = field(default_factory=dict)
    cgroups: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # path -> CGROUP_FIELDS values
    clock_offset_seconds: float | None = None
    last_row_timestamp_seconds: float | None = None
    rows_total: int = 0
    malformed_rows_total: Mapping[str, int] = field(default_factory=dict)
    dropped_rows_total: int = 0
    channel_events_total: Mapping[str, int] = field(default_factory=dict)
    unrecorded_rows_total: int = 0  # rows accepted but not written by --guest.record
    host_lines_sent_total: int = 0  # host lines (guest/downlink.py) written into the channel
    host_lines_dropped_total: int = 0  # host lines the channel would not take at once
    host_lines_rejected_total: int = 0  # host lines the guest's agent rejected, as its rows report
