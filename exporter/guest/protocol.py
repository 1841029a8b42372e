"""The guest wire protocol: versioned JSON lines, one object per line, UTF-8.

On every (re)connect the agent sends a ``hello`` line, then one ``row`` per sample::

    {"v":1,"type":"hello","agent_version":"0.1.0","boot_id":"…","hostname":"web-1","capabilities":["cpu","meminfo"]}
    {"v":1,"type":"row","seq":7,"boot_id":"…","wall_ns":1700000000000000000,"mono_ns":123000000000,
     "cpu":{"0":{"user":12.5,"idle":900.1}},"freq":{"0":2600000000.0},"freq_source":{"0":"cpuinfo"},
     "mem":{"total_bytes":2147483648},"dropped":0}

Counters stay raw (seconds since the guest booted); the host derives nothing but
the clock offset. ``freq_source`` says where each frequency came from (cpufreq,
cpuinfo or perf); the host records it with the row. ``dropped`` is the number of rows the agent discarded since it
started because the channel was not being read; ``host_lines_rejected`` (optional,
0 when absent) the host lines it rejected since it started (malformed, oversized
or of another version, see guest/agent.py). ``seq`` counts rows per agent start.
With ``--collector.cgroup`` a row also carries ``cgroup``: for each cgroup path
the :data:`CGROUP_FIELDS` the guest's cgroupfs gave, e.g.
``"cgroup":{"/system.slice":{"cpu_usage_seconds":12.5,"memory_usage_bytes":1048576,"pids_current":7}}``.

Everything the host accepts from a guest is checked here: the keys and label
values that become series are bounded (known modes and memory fields, CPU
numbers below :data:`MAX_CPUS`, strings cut to :data:`MAX_TEXT`, at most
``GUEST_MAX_CGROUPS`` cgroup paths of up to :data:`MAX_CGROUP_PATH`
characters), so a guest cannot create unbounded series whatever it sends.
Every number is finite and fits the float64 of a sample and the int64/uint64
of the gRPC payload (:data:`MAX_NUMBER`); the quantities a row carries are
all non-negative. Strings are valid Unicode (a JSON ``\\ud800`` escape is not)
and label values carry no control characters. :func:`parse_line` raises
nothing but :class:`Malformed`.

A line with ``specversion`` is the guest's own CloudEvents 1.0 event in
structured JSON mode, checked by :func:`exporter.guest.cloudevent.check_guest_event`
(reason ``invalid_cloudevent``; a ``specversion`` other than "1.0" is
``unsupported_version``): the host records it and makes no series of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter.config import GUEST_MAX_CGROUPS
from exporter.guest.cloudevent import SPECVERSION, InvalidEvent, check_guest_event, sdk_missing
from exporter.guest.lines import MAX_CPUS, MAX_NUMBER, VERSION, BadLine, decode
from exporter.snapshot import Snapshot
from exporter.sources.stat import MODES

MAX_TEXT = 128
MAX_CGROUP_PATH = 1024  # Kubernetes container paths are about 200 characters
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MEMORY_FIELDS = (
    "total_bytes",
    "free_bytes",
    "available_bytes",
    "buffers_bytes",
    "cached_bytes",
    "sreclaimable_bytes",
    "used_bytes",
    "swap_total_bytes",
    "swap_free_bytes",
)
# Per-cgroup values a row carries (CgroupStats fields), with --collector.cgroup on the agent.
CGROUP_FIELDS = ("cpu_usage_seconds", "memory_usage_bytes", "pids_current")


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8: the bytes a signature covers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def hello_line(agent_version: str, boot_id: str, hostname: str, capabilities: list[str]) -> bytes:
    msg = {
        "v": VERSION,
        "type": "hello",
        "agent_version": agent_version,
        "boot_id": boot_id,
        "hostname": hostname,
        "capabilities": sorted(capabilities),
    }
    return canonical_json(msg) + b"\n"


def row_from_snapshot(snap: Snapshot, seq: int, boot_id: str) -> dict[str, Any]:
    """One sample as a row (without ``dropped``, which the writer adds when it sends it)."""
    mem: dict[str, int] = {}
    if snap.memory is not None:
        for name in MEMORY_FIELDS:
            value = getattr(snap.memory, name)
            if value is not None:
                mem[name] = value
    row: dict[str, Any] = {
        "v": VERSION,
        "type": "row",
        "seq": seq,
        "boot_id": boot_id,
        "wall_ns": int(snap.timestamp_seconds * 1e9),
        "mono_ns": int(snap.monotonic_seconds * 1e9),
        "cpu": {str(c): dict(modes) for c, modes in snap.cpu_seconds.items()},
        "freq": {str(c): f.hertz for c, f in snap.frequency.items()},
        "freq_source": {str(c): f.source for c, f in snap.frequency.items()},
        "mem": mem,
    }
    if snap.cgroups is not None:
        row["cgroup"] = {
            path: {k: v for k in CGROUP_FIELDS if (v := getattr(stats, k)) is not None}
            for path, stats in snap.cgroups.stats.items()
        }
    return row


@dataclass(frozen=True)
class Hello:
    agent_version: str
    boot_id: str
    hostname: str
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GuestEvent:
    """A CloudEvents 1.0 event the guest sent itself (a line with ``specversion``): recorded, never a metric."""

    raw: Mapping[str, Any]


@dataclass(frozen=True)
class Row:
    seq: int
    boot_id: str
    wall_seconds: float
    dropped: int
    host_lines_rejected: int = 0
    cpu_seconds: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    frequency_hertz: Mapping[int, float] = field(default_factory=dict)
    memory_bytes: Mapping[str, float] = field(default_factory=dict)
    cgroups: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # by cgroup path
    raw: Mapping[str, Any] = field(default_factory=dict)


class Malformed(BadLine):
    """A line the host discards; ``reason`` is one of :data:`REASONS`."""


def _number(value: Any, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < MAX_NUMBER  # False for NaN too
    ):
        raise Malformed("invalid_row", f"{what} is not a number in [0, 2**63)")
    return float(value)


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_NUMBER:
        raise Malformed("invalid_row", f"{what} is not an integer in [0, 2**63)")
    return value


def _label(value: str, what: str) -> str:
    """``value`` if it may become a label value: no control characters."""
    if _CONTROL.search(value):
        raise Malformed("invalid_row", f"{what} holds a control character")
    return value


def _text(msg: Mapping[str, Any], key: str) -> str:
    value = msg.get(key, "")
    if not isinstance(value, str):
        raise Malformed("invalid_row", f"{key} is not a string")
    return _label(value[:MAX_TEXT], key)


def _cpu_number(key: str) -> int:
    # isdigit() alone is true for "²", which int() refuses; "007" would alias CPU 7.
    if not (key.isascii() and key.isdigit() and len(key) <= 4 and str(int(key)) == key and int(key) < MAX_CPUS):
        raise Malformed("invalid_row", f"cpu {key[:16]!r} is not a CPU number below {MAX_CPUS}")
    return int(key)


def _cgroups(msg: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    cgroups = _mapping(msg, "cgroup")
    if len(cgroups) > GUEST_MAX_CGROUPS:
        raise Malformed("invalid_row", f"more than {GUEST_MAX_CGROUPS} cgroups")
    out: dict[str, dict[str, float]] = {}
    for path, stats in cgroups.items():
        if not path.startswith("/") or len(path) > MAX_CGROUP_PATH:
            raise Malformed("invalid_row", f"cgroup {path[:16]!r} is not a path of up to {MAX_CGROUP_PATH} characters")
        if not isinstance(stats, dict):
            raise Malformed("invalid_row", "cgroup values are not an object")
        _label(path, "cgroup path")
        out[path] = {k: _number(v, f"cgroup {k}") for k, v in stats.items() if k in CGROUP_FIELDS}
    return out


def _mapping(msg: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = msg.get(key, {})
    if not isinstance(value, dict):
        raise Malformed("invalid_row", f"{key} is not an object")
    return value


def _guest_event(msg: dict[str, Any]) -> GuestEvent:
    if msg["specversion"] != SPECVERSION:
        raise Malformed("unsupported_version", f"specversion={str(msg['specversion'])[:16]}")
    try:
        return GuestEvent(check_guest_event(msg))
    except InvalidEvent as e:
        raise Malformed("invalid_cloudevent", str(e)) from None
    except ImportError:
        raise Malformed("unsupported_version", f"a CloudEvent; the host {sdk_missing()}") from None


def parse_line(line: bytes) -> Hello | Row | GuestEvent:
    """Decode and check one line (without its newline); raise :class:`Malformed` with the reason."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Malformed("invalid_utf8", f"byte {e.start}") from None
    msg = decode(text, Malformed, "invalid_row")
    if not isinstance(msg, dict):
        raise Malformed("invalid_row", "not a JSON object")
    if "specversion" in msg:
        return _guest_event(msg)
    if msg.get("v") != VERSION:
        raise Malformed("unsupported_version", f"v={str(msg.get('v'))[:16]}")
    kind = msg.get("type")
    if kind == "hello":
        return Hello(_text(msg, "agent_version"), _text(msg, "boot_id"), _text(msg, "hostname"), msg)
    if kind != "row":
        raise Malformed("invalid_row", f"type {str(kind)[:16]!r}")
    cpu: dict[int, dict[str, float]] = {}
    for key, modes in _mapping(msg, "cpu").items():
        if not isinstance(modes, dict):
            raise Malformed("invalid_row", "cpu modes are not an object")
        cpu[_cpu_number(key)] = {
            mode: _number(value, f"cpu {key} {mode}") for mode, value in modes.items() if mode in MODES
        }
    freq = {_cpu_number(k): _number(v, f"freq {k}") for k, v in _mapping(msg, "freq").items()}
    mem = {k: _number(v, f"mem {k}") for k, v in _mapping(msg, "mem").items() if k in MEMORY_FIELDS}
    if "mono_ns" in msg:
        _number(msg["mono_ns"], "mono_ns")
    return Row(
        seq=_integer(msg.get("seq"), "seq"),
        boot_id=_text(msg, "boot_id"),
        wall_seconds=_number(msg.get("wall_ns"), "wall_ns") / 1e9,
        dropped=_integer(msg.get("dropped", 0), "dropped"),
        host_lines_rejected=_integer(msg.get("host_lines_rejected", 0), "host_lines_rejected"),
        cpu_seconds=cpu,
        frequency_hertz=freq,
        memory_bytes=mem,
        cgroups=_cgroups(msg),
        raw=msg,
    )
