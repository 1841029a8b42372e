"""Exposition text written directly, for families too large to go through prometheus_client's writers.

A cgroup sample carries ~20 series per cgroup: 1000 cgroups are 20,000+
samples, which prometheus-client 0.26 takes about 330 ms to write in both
formats. These families are simple (counters and gauges, no timestamps, no
exemplars), so each sample line is written once and shared by the two
formats, which differ only in the HELP/TYPE header (OpenMetrics names a
counter family without ``_total``) and the final ``# EOF``; the shared lines
are also compressed once for both (collector/gzipped.py). The bytes equal
what prometheus_client writes for the same families (tests/collector/test_text.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.utils import floatToGoString


def format_value(value: float) -> str:
    """A sample value as prometheus_client writes it (Go's float formatting: 1e+06, 0.5, +Inf)."""
    return floatToGoString(value)  # type: ignore[no-untyped-call,no-any-return]


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass
class Family:
    """One metric family being written: ``lines`` are complete sample lines (``name{labels} value\\n``)."""

    name: str  # as exposed in text 0.0.4, with _total for counters
    type: str  # "counter" | "gauge"
    help: str
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Piece:
    """One written family: its HELP/TYPE header in each format and the sample lines both formats share."""

    text_header: bytes
    openmetrics_header: bytes
    samples: bytes


def format_families(families: Iterable[Family]) -> list[Piece]:
    """The families that have samples, each as its two headers and its sample lines."""
    pieces = []
    for f in families:
        if not f.lines:
            continue
        om_name = f.name.removesuffix("_total") if f.type == "counter" else f.name
        text_help = f.help.replace("\\", r"\\").replace("\n", r"\n")
        pieces.append(
            Piece(
                f"# HELP {f.name} {text_help}\n# TYPE {f.name} {f.type}\n".encode(),
                f"# HELP {om_name} {escape_label_value(f.help)}\n# TYPE {om_name} {f.type}\n".encode(),
                "".join(f.lines).encode(),
            )
        )
    return pieces


def join_pieces(pieces: Iterable[Piece]) -> tuple[bytes, bytes]:
    """(text 0.0.4, OpenMetrics without ``# EOF``)."""
    pieces = list(pieces)
    return (
        b"".join(p.text_header + p.samples for p in pieces),
        b"".join(p.openmetrics_header + p.samples for p in pieces),
    )
