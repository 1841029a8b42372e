"""Snapshot -> the sysmon-vm JSON payload that ServiceRadar's core stores in ``cpu_metrics``.

ServiceRadar's core drops the whole payload on any type mismatch, so integer
fields (``core_id``, ``*_bytes``, ``response_time``) are Python ints (JSON
integers, never ``1.0`` or ``1e9``), every ``timestamp`` is RFC 3339 and
``host_ip`` is never empty: when something is missing the payload says
``"available": false`` with the reason instead of sending zeros.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from exporter.snapshot import Snapshot


def usage_percent(ratio: float) -> float:
    """The busy share of the last sample window in percent: ``sysmon_cpu_usage_ratio`` x 100."""
    return ratio * 100.0


def rfc3339(seconds: float) -> str:
    """Go's time.RFC3339Nano in UTC: ``2026-11-22T00:30:00.123456789Z``, trailing zeros trimmed."""
    whole = math.floor(seconds)
    frac = round((seconds - whole) * 1e9)  # the fraction alone: seconds * 1e9 would lose ~100 ns
    if frac >= 1_000_000_000:
        whole, frac = whole + 1, frac - 1_000_000_000
    text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def _why_missing(snap: Snapshot, source: str, otherwise: str) -> str:
    status = snap.statuses.get(source)
    return status.error if status is not None and not status.success and status.error else otherwise


def unavailable_reason(snap: Snapshot | None) -> str:
    """Why this snapshot cannot make a payload ServiceRadar accepts, or "" if it can."""
    if snap is None:
        return "waiting for the first sample"
    if not snap.cpu_usage_ratio:
        return _why_missing(snap, "cpu", "waiting for a second sample of /proc/stat (usage needs a window)")
    if snap.memory is None or snap.memory.total_bytes <= 0:
        return _why_missing(snap, "meminfo", "memory is not sampled (the meminfo collector is off)")
    if snap.host is None:
        return _why_missing(snap, "host", "host identity is not sampled")
    return ""


def build_payload(snap: Snapshot | None, elapsed_ns: Callable[[], int]) -> tuple[bool, bytes]:
    """(available, compact JSON). ``elapsed_ns`` is read last, for the payload's ``response_time``."""
    reason = unavailable_reason(snap)
    if reason or snap is None or snap.memory is None or snap.host is None:
        return False, _encode({"available": False, "error": reason, "response_time": elapsed_ns()})
    stamp = rfc3339(snap.timestamp_seconds)
    host = {"host_id": snap.host.hostname, "host_ip": snap.host.ipv4}
    cpus = []
    for cpu, ratio in sorted(snap.cpu_usage_ratio.items()):
        freq = snap.frequency.get(cpu)
        entry: dict[str, Any] = {
            "core_id": int(cpu),
            "label": f"CPU{cpu}",
            "usage_percent": usage_percent(ratio),
            "frequency_hz": freq.hertz if freq is not None else 0.0,
            "timestamp": stamp,
            **host,
        }
        if freq is not None:
            entry["frequency_source"] = freq.source
        cpus.append(entry)
    memory = {
        "used_bytes": int(snap.memory.used_bytes),
        "total_bytes": int(snap.memory.total_bytes),
        "timestamp": stamp,
        **host,
    }
    disks = [
        {
            "mount_point": fs.mount_point,
            "used_bytes": int(fs.used_bytes),
            "total_bytes": int(fs.size_bytes),
            "timestamp": stamp,
            **host,
        }
        for fs in snap.filesystems
        if not fs.error
    ]
    status = {"timestamp": stamp, **host, "cpus": cpus, "disks": disks, "memory": memory, "processes": []}
    return True, _encode({"available": True, "response_time": elapsed_ns(), "status": status})
