"""The host's view of this VM, sent down the guest channel, and the state file the agent keeps it in.

The host writes one ``host`` line per host sampler interval into the channel the
agent writes its rows to (the same versioned JSON-lines protocol, see
:mod:`exporter.guest.protocol`)::

    {"v":1,"type":"host","host_wall_ns":1700000000000000000,"interval_seconds":1.0,
     "vcpus":{"0":{"frequency_hz":2600000000.0,"frequency_source":"cpuinfo","steal_seconds":12.5,"host_cpu":1}}}

``vcpus`` is keyed by the guest's CPU number; ``frequency_hz`` and
``frequency_source`` (both or neither) are the frequency of the host CPU the
vCPU last ran on (``host_cpu``) and where the host's frequency chain found it;
``steal_seconds`` is the time the vCPU thread was runnable on the host but not
running, a counter.

Guest side: the agent checks every line with :func:`parse_host_line` (at most
:data:`~exporter.guest.lines.MAX_HOST_LINE_BYTES`; the version, the type, CPU numbers below
:data:`MAX_CPUS` (the rows' bound), finite non-negative numbers, known
frequency sources), counts and drops a line that fails, and keeps the latest
valid line in the state file (``--agent.host-state``): the line's known fields
and ``received_wall_ns``, the guest's wall clock when it arrived. The file
is written as a temporary file in the same directory and renamed over the old
one (rename(2) is atomic within a filesystem), mode 0644, so a reader sees the
previous line or the next, never half of one. The in-guest exporter reads it
with :func:`read_host_state` (``--path.host-state``) and checks it the same
way: the file is input too.

This module uses the standard library, :mod:`exporter.guest.lines` (the bounds, JSON
decoder and line splitter it shares with the rows) and :mod:`exporter.sources` only: the
snapshot and the catalogue's probe read the state file through it, below the
layer of the rest of :mod:`exporter.guest` (tests/test_catalogue.py LAYERS).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.guest.lines import MAX_CPUS, MAX_HOST_LINE_BYTES, MAX_NUMBER, VERSION, BadLine, decode
from exporter.sources import SourceError, read_small_bytes

STATE_MAX_BYTES = 4 * MAX_HOST_LINE_BYTES  # the state file: a line re-encoded (see state_bytes)
# The names the host's frequency chain gives (exporter.snapshot.Frequency.source); "host" where the
# host is itself a guest whose own host sends it lines (nested virtualisation).
FREQUENCY_SOURCES = ("cpufreq_avg", "cpufreq", "cpufreq_hardware", "host", "cpuinfo", "perf")
MAX_INTERVAL_SECONDS = 3600.0
# The reasons a host line is dropped (the agent's counts are keyed by them).
REASONS = ("too_long", "invalid_utf8", "invalid_json", "too_deep", "unsupported_version", "invalid_host_line")
_INVALID = "invalid_host_line"


class BadHostLine(BadLine):
    """A host line the agent drops; ``reason`` is one of :data:`REASONS`."""


@dataclass(frozen=True)
class HostVcpu:
    steal_seconds: float
    host_cpu: int
    frequency_hertz: float | None = None
    frequency_source: str | None = None


@dataclass(frozen=True)
class HostState:
    host_wall_ns: int  # the host's wall clock when it sent the line
    interval_seconds: float
    vcpus: Mapping[int, HostVcpu]
    received_wall_seconds: float | None = None  # in the state file only: when the agent received it


def _invalid(detail: str) -> BadHostLine:
    return BadHostLine(_INVALID, detail)


def _number(value: Any, what: str) -> float:
    # Checked after float(): an integer just below 2**63 rounds up to it, and would not read back.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= float(value) < MAX_NUMBER:
        raise _invalid(f"{what} is not a number in [0, 2**63)")  # NaN fails the comparison too
    return float(value)


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_NUMBER:
        raise _invalid(f"{what} is not an integer in [0, 2**63)")
    return value


def _cpu(key: str) -> int:
    # "007" would alias CPU 7 and "²" passes isdigit(): only canonical ASCII decimals.
    if not (key.isascii() and key.isdigit() and len(key) <= 4 and str(int(key)) == key and int(key) < MAX_CPUS):
        raise _invalid(f"vcpu {key[:16]!r} is not a CPU number below {MAX_CPUS}")
    return int(key)


def _vcpu(key: str, value: Any) -> HostVcpu:
    if not isinstance(value, dict):
        raise _invalid(f"vcpu {key} is not an object")
    hertz, source = value.get("frequency_hz"), value.get("frequency_source")
    if (hertz is None) != (source is None):
        raise _invalid(f"vcpu {key} has one of frequency_hz and frequency_source without the other")
    if source is not None and source not in FREQUENCY_SOURCES:
        raise _invalid(f"vcpu {key} frequency_source {str(source)[:24]!r} is not one of {', '.join(FREQUENCY_SOURCES)}")
    return HostVcpu(
        steal_seconds=_number(value.get("steal_seconds"), f"vcpu {key} steal_seconds"),
        host_cpu=_integer(value.get("host_cpu"), f"vcpu {key} host_cpu"),
        frequency_hertz=None if hertz is None else _number(hertz, f"vcpu {key} frequency_hz"),
        frequency_source=source,
    )


def parse_host_line(line: bytes, max_bytes: int = MAX_HOST_LINE_BYTES) -> HostState:
    """Decode and check one host line (without its newline); raise :class:`BadHostLine` and nothing else."""
    if len(line) > max_bytes:
        raise BadHostLine("too_long", f"{len(line)} bytes, more than {max_bytes}")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadHostLine("invalid_utf8", f"byte {e.start}") from None
    msg = decode(text, BadHostLine, _INVALID)
    if not isinstance(msg, dict):
        raise _invalid("not a JSON object")
    if msg.get("v") != VERSION:
        raise BadHostLine("unsupported_version", f"v={str(msg.get('v'))[:16]}")
    if msg.get("type") != "host":
        raise _invalid(f"type {str(msg.get('type'))[:16]!r}")
    interval = _number(msg.get("interval_seconds"), "interval_seconds")
    if not 0 < interval <= MAX_INTERVAL_SECONDS:
        raise _invalid(f"interval_seconds {interval:g} is not in (0, {MAX_INTERVAL_SECONDS:g}]")
    vcpus = msg.get("vcpus")
    if not isinstance(vcpus, dict):
        raise _invalid("vcpus is not an object")
    if len(vcpus) > MAX_CPUS:
        raise _invalid(f"more than {MAX_CPUS} vcpus")
    received = msg.get("received_wall_ns")
    return HostState(
        host_wall_ns=_integer(msg.get("host_wall_ns"), "host_wall_ns"),
        interval_seconds=interval,
        vcpus=dict(sorted((_cpu(k), _vcpu(k, v)) for k, v in vcpus.items())),
        received_wall_seconds=None if received is None else _integer(received, "received_wall_ns") / 1e9,
    )


def _vcpu_json(v: HostVcpu) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if v.frequency_hertz is not None:
        out["frequency_hz"], out["frequency_source"] = v.frequency_hertz, v.frequency_source
    out["steal_seconds"], out["host_cpu"] = v.steal_seconds, v.host_cpu
    return out


def state_bytes(state: HostState, received_wall_seconds: float) -> bytes:
    """The state file's content: the checked host line (its known fields) with the guest's receive time.

    Re-encoding can lengthen a number (``1e9`` is written ``1000000000.0``), at
    most about twice over a whole line: the file's bound is :data:`STATE_MAX_BYTES`.
    """
    msg = {
        "v": VERSION,
        "type": "host",
        "host_wall_ns": state.host_wall_ns,
        "interval_seconds": state.interval_seconds,
        "vcpus": {str(cpu): _vcpu_json(v) for cpu, v in state.vcpus.items()},
        "received_wall_ns": int(received_wall_seconds * 1e9),
    }
    return json.dumps(msg, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def write_state(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (a temporary file in its directory, renamed), mode 0644.

    The directory is created (0755) if missing. OSError when it cannot be written.
    """
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        try:
            os.fchmod(fd, 0o644)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        # No fsync: the default file is on tmpfs (/run), and after a crash a stale or missing
        # file is what the exporter expects anyway; rename alone keeps readers from half a line.
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_host_state(path: Path) -> HostState | None:
    """The state file, checked as a host line; None when it does not exist (no agent, or no line yet).

    SourceError when its content is not a host line with ``received_wall_ns``;
    OSError (with the file name) when it cannot be read.
    """
    try:
        data = read_small_bytes(path, STATE_MAX_BYTES)
    except FileNotFoundError:
        return None
    try:
        state = parse_host_line(data.rstrip(b"\n"), STATE_MAX_BYTES)
    except BadHostLine as e:
        raise SourceError(str(path), f"not a host line ({e})") from None
    if state.received_wall_seconds is None:
        raise SourceError(str(path), "no received_wall_ns: not written by sysmon-exporter agent")
    return state


def is_fresh(state: HostState, now: float, sampler_interval_seconds: float) -> bool:
    """Whether the state was received within 3 intervals (the longer of the host's and this sampler's).

    A receive time ahead of ``now`` by as much counts as stale too (the clock stepped back).
    """
    received = state.received_wall_seconds
    return received is not None and math.fabs(now - received) < freshness_limit(state, sampler_interval_seconds)


def freshness_limit(state: HostState, sampler_interval_seconds: float) -> float:
    """3 intervals: the host's (its lines' cadence) or this sampler's, whichever is longer."""
    return 3 * max(state.interval_seconds, sampler_interval_seconds)
