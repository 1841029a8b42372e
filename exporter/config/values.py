"""Parsers of flag values: each takes the text and returns the value, or raises ValueError saying what to pass."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

DEFAULT_PORT = 9477

# Go's time.ParseDuration units; microseconds also as U+00B5 (micro sign) and U+03BC (Greek mu).
_DURATION_PART = re.compile("(\\d+(?:\\.\\d*)?|\\.\\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_UNITS_NS = {
    "ns": 1,
    "us": 10**3,
    "\u00b5s": 10**3,
    "\u03bcs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_duration(text: str, *, bare_seconds: bool = True) -> float:
    """A Go duration ("250ms", "1m30s", "1.5s") in seconds. A bare number is seconds, unless
    ``bare_seconds`` is False: then, as Go's time.ParseDuration, only "0" may go without a unit,
    and a leading sign is allowed ("+1s", "-1s": callers bound the value)."""
    given = text = text.strip()
    if bare_seconds:
        try:
            return float(text)
        except ValueError:
            pass
    sign = 1.0
    if not bare_seconds:
        if text[:1] in ("+", "-"):
            sign, text = (-1.0 if text[0] == "-" else 1.0), text[1:]
        if text == "0":
            return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            raise ValueError(f"{given!r} is not a duration (examples: 250ms, 1s, 1m30s)")
        total += float(m.group(1)) * _UNITS_NS[m.group(2)]  # in ns, as Go counts: 200000µs is 0.2 s exactly
        pos = m.end()
    if not text:
        raise ValueError("empty duration (examples: 250ms, 1s, 1m30s)")
    return sign * total / 1e9


def format_duration(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


class duration_in:
    """A duration between ``low`` and ``high`` seconds; --help shows its default as a duration."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def __call__(self, text: str) -> float:
        value = parse_duration(text)
        low, high = self.low, self.high
        if not low <= value <= high:
            raise ValueError(
                f"{text} is outside {format_duration(low)}..{format_duration(high)}; "
                f"pass a duration between {format_duration(low)} and {format_duration(high)}"
            )
        return value


_BYTE_UNITS = {"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
_BYTES = re.compile(r"(\d+)\s*(B|KiB|MiB|GiB|TiB)?")


def format_bytes(n: int) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if n and n % _BYTE_UNITS[unit] == 0:
            return f"{n // _BYTE_UNITS[unit]}{unit}"
    return str(n)


class bytes_in:
    """A size in bytes between ``low`` and ``high``: ``67108864``, ``64MiB`` or ``1GiB``; --help shows it so."""

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def __call__(self, text: str) -> int:
        m = _BYTES.fullmatch(text.strip())
        if not m:
            raise ValueError(f"{text!r} is not a size; pass bytes, or a number with KiB, MiB, GiB or TiB")
        value = int(m.group(1)) * _BYTE_UNITS[m.group(2) or ""]
        if not self.low <= value <= self.high:
            raise ValueError(
                f"{text} is outside {format_bytes(self.low)}..{format_bytes(self.high)}; pass a size in that range"
            )
        return value


def parse_listen_address(text: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT; pass e.g. :{DEFAULT_PORT} or 127.0.0.1:{DEFAULT_PORT}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def parse_path(text: str) -> Path:
    if not text.strip():
        raise ValueError("empty path; pass a file path")
    return Path(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"{text} must be above 0")
    return value


def parse_pattern(text: str) -> str:
    if not text.strip():
        raise ValueError("empty pattern; pass a socket path such as /run/vms/{vm}/agent.sock")
    return text


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean; pass true or false")


def parse_regex(text: str) -> re.Pattern[str] | None:
    """A Python regular expression searched in each cgroup path; empty means none."""
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as e:
        raise ValueError(f"{text!r} is not a regular expression ({e}); pass e.g. '^/kubepods'") from None


def int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer; pass one between {low} and {high}") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}; pass an integer between {low} and {high}")
        return value

    return parse


def parse_choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def parse_pid(text: str) -> int:
    if not text.strip().isdigit() or int(text) <= 0:
        raise ValueError(f"{text!r} is not a process id; pass a positive integer")
    return int(text)
