"""Two snapshots -> the sysmon ``status`` sample as ServiceRadar's core types it (pkg/sysmon MetricSample).

The core decodes this with Go structs, so the keys are exactly theirs and no
others (no ``frequency_source``, no per-CPU timestamps or host fields as in
the legacy checker payload): ``timestamp`` (RFC 3339, UTC, nanoseconds),
``host_id``, ``host_ip``, ``partition``, ``agent_id``, ``cpus``, ``disks``,
``memory``, ``network`` (only when collected) and ``processes``. Integers are
Python ints, so JSON never shows a fraction. Usage is computed over the window
between the two snapshots (SysmonConfig's ``sample_interval``); the
loopback and virtual interfaces ServiceRadar's sysmon skips are skipped here
too (pkg/sysmon/network.go shouldSkipInterface, which also skips ``bridge*``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.grpc_compat.identity import Identity
from exporter.grpc_compat.payload import rfc3339, usage_percent
from exporter.snapshot import Snapshot, usage_between
from exporter.sources.processes import Process

SKIPPED_INTERFACES = ("docker", "br-", "veth", "virbr", "vnet", "tun", "tap", "bridge")
# pkg/sysmon/host.go getLocalIP: what the agent reports when it finds no address.
UNKNOWN_HOST_IP = "unknown"


@dataclass(frozen=True)
class SysmonSettings:
    """The applied SysmonConfig (what the gateway last sent, or these defaults until it does)."""

    enabled: bool = True
    sample_interval_seconds: float = 10.0
    cpu: bool = True
    memory: bool = True
    disk: bool = True
    network: bool = True
    processes: bool = False
    disk_paths: tuple[str, ...] = ()
    disk_exclude_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Disk:
    mount_point: str
    used_bytes: int
    total_bytes: int


def skipped_interface(name: str) -> bool:
    lowered = name.lower()
    return lowered in ("lo", "lo0") or lowered.startswith(SKIPPED_INTERFACES)


def disks_from_snapshot(snap: Snapshot, exclude: Iterable[str]) -> list[Disk]:
    """The filesystems the snapshot measured, less the excluded mount points."""
    skip = set(exclude)
    return [
        Disk(fs.mount_point, int(fs.used_bytes), int(fs.size_bytes))
        for fs in snap.filesystems
        if not fs.error and fs.mount_point not in skip
    ]


def _process_percent(proc: Process, before: Process | None, window: float, now: float) -> float:
    """Percent of one CPU over the window; a process new in it, since it started (gopsutil's CPUPercent)."""
    if before is not None and window > 0:
        return max(0.0, proc.cpu_seconds - before.cpu_seconds) / window * 100.0
    lifetime = now - proc.start_time_seconds
    return proc.cpu_seconds / lifetime * 100.0 if lifetime > 0 else 0.0


def _processes(prev: Snapshot | None, snap: Snapshot) -> list[dict[str, Any]]:
    earlier = {(p.pid, p.start_ticks): p for p in prev.processes} if prev is not None else {}
    window = snap.monotonic_seconds - prev.monotonic_seconds if prev is not None else 0.0
    rows = []
    for proc in snap.processes:
        percent = _process_percent(proc, earlier.get((proc.pid, proc.start_ticks)), window, snap.timestamp_seconds)
        rows.append((percent, proc))
    rows.sort(key=lambda r: (-r[0], -r[1].rss_bytes, r[1].pid))  # by CPU, then memory (pkg/sysmon/process.go)
    return [
        {
            "pid": int(p.pid),
            "name": p.name,
            "cpu_usage": percent,
            "memory_usage": int(p.rss_bytes),
            "status": p.state,
            "start_time": rfc3339(float(int(p.start_time_seconds))),  # whole seconds, as the Go agent formats it
        }
        for percent, p in rows
    ]


def build_status(
    prev: Snapshot | None,
    snap: Snapshot,
    settings: SysmonSettings,
    identity: Identity,
    disks: Sequence[Disk],
    fallback_ip: str = "",
) -> dict[str, Any]:
    """The ``status`` object; ``prev`` is the snapshot of the last sample (None: use the sampler's own window)."""
    status: dict[str, Any] = {
        "timestamp": rfc3339(snap.timestamp_seconds),
        "host_id": snap.host.hostname if snap.host is not None else "",
        "host_ip": (snap.host.ipv4 if snap.host is not None else "") or fallback_ip or UNKNOWN_HOST_IP,
        "partition": identity.partition,
        "agent_id": identity.agent_id,
    }
    cpus: list[dict[str, Any]] = []
    if settings.cpu:
        ratios = usage_between(prev, snap) if prev is not None and prev.cpu_seconds else snap.cpu_usage_ratio
        for cpu, ratio in sorted(ratios.items()):
            entry: dict[str, Any] = {"core_id": int(cpu), "label": f"CPU{cpu}", "usage_percent": usage_percent(ratio)}
            freq = snap.frequency.get(cpu)
            if freq is not None:
                entry["frequency_hz"] = float(freq.hertz)
            cpus.append(entry)
    status["cpus"] = cpus
    status["disks"] = (
        [{"mount_point": d.mount_point, "used_bytes": d.used_bytes, "total_bytes": d.total_bytes} for d in disks]
        if settings.disk
        else []
    )
    memory: dict[str, Any] = {"used_bytes": 0, "total_bytes": 0}
    mem = snap.memory
    if settings.memory and mem is not None:
        memory = {"used_bytes": int(mem.used_bytes), "total_bytes": int(mem.total_bytes)}
        if mem.swap_total_bytes > 0:
            memory["swap_used_bytes"] = int(max(0, mem.swap_total_bytes - mem.swap_free_bytes))
            memory["swap_total_bytes"] = int(mem.swap_total_bytes)
    status["memory"] = memory
    if settings.network:
        status["network"] = [
            {
                "interface": name,
                "bytes_sent": int(dev.transmit["bytes"]),
                "bytes_recv": int(dev.receive["bytes"]),
                "packets_sent": int(dev.transmit["packets"]),
                "packets_recv": int(dev.receive["packets"]),
                "errors_in": int(dev.receive["errs"]),
                "errors_out": int(dev.transmit["errs"]),
                "drops_in": int(dev.receive["drop"]),
                "drops_out": int(dev.transmit["drop"]),
            }
            for name, dev in snap.network.items()
            if not skipped_interface(name)
        ]
    status["processes"] = _processes(prev, snap) if settings.processes else []
    return status


def service_message(status: dict[str, Any], response_time_ns: int) -> bytes:
    """The GatewayServiceStatus ``message``: ``{"available":true,"response_time":N,"status":{...}}``."""
    document = {"available": True, "response_time": int(response_time_ns), "status": status}
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
