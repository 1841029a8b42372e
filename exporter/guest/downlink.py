"""The host line: what the host knows of a VM's vCPUs, sent down its guest channel (host side).

Same versioned JSON-lines protocol as the guest's rows (guest/protocol.py), the
other way: one line per host sample into each VM's channel whose vCPUs the
host's ``vm`` source knows (the snapshot's ``vms`` entry with the channel's
``vm`` name)::

    {"v":1,"type":"host","host_wall_ns":1700000000000000000,"interval_seconds":1.0,
     "vcpus":{"0":{"frequency_hz":2600000000.0,"frequency_source":"cpuinfo","steal_seconds":12.5,"host_cpu":1}}}

``vcpus`` keys are the guest's CPU numbers (QEMU's ``CPU <n>/...``);
``frequency_hz`` and ``frequency_source`` are those of the host CPU the vCPU
last ran on (left out where that CPU has no frequency); ``steal_seconds`` is
the vCPU thread's cumulative wait on a host runqueue (a counter);
``host_cpu`` the host CPU it last ran on. A line is at most
:data:`MAX_HOST_LINE_BYTES`: vCPUs that would not fit (beyond about 500) are
left out, the lowest numbers kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from exporter.guest.lines import MAX_HOST_LINE_BYTES, VERSION
from exporter.snapshot import Snapshot, VmSample


def _compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def host_line(wall_seconds: float, interval_seconds: float, vm: VmSample) -> bytes:
    """One newline-terminated host line for ``vm``'s guest."""
    head = _compact(
        {"v": VERSION, "type": "host", "host_wall_ns": int(wall_seconds * 1e9), "interval_seconds": interval_seconds}
    )
    parts: list[str] = []
    size = len(head) + len(',"vcpus":{}}\n')
    for n, v in sorted(vm.vcpus.items()):
        entry: dict[str, object] = {}
        if v.frequency is not None:
            entry["frequency_hz"] = v.frequency.hertz
            entry["frequency_source"] = v.frequency.source
        entry["steal_seconds"] = v.wait_seconds
        entry["host_cpu"] = v.host_cpu
        part = f'"{n}":{_compact(entry)}'
        if size + len(part) + 1 > MAX_HOST_LINE_BYTES:
            break
        parts.append(part)
        size += len(part) + 1
    return f'{head[:-1]},"vcpus":{{{",".join(parts)}}}}}\n'.encode()


def host_lines(snap: Snapshot, interval_seconds: float) -> dict[str, bytes]:
    """{vm: host line} for every VM of the snapshot with at least one vCPU known."""
    vms: Mapping[str, VmSample] = snap.vms
    return {name: host_line(snap.timestamp_seconds, interval_seconds, vm) for name, vm in vms.items() if vm.vcpus}
