"""Text 0.0.4 and OpenMetrics 1.0 written directly, once per sample, for both formats at once.

prometheus_client's generate_latest re-escapes every label of every sample on
every call: about 50 ms for a 256-CPU host and 330 ms for 1000 cgroups here.
The families this exporter serves are simple (counters, gauges, one histogram; no
timestamps, no exemplars), and the sample lines of the two formats are
identical for them: the formats differ only in the HELP/TYPE header
(OpenMetrics names a counter family without ``_total`` and escapes ``"`` in
HELP) and the closing ``# EOF``. So each family is written once as a
:class:`Piece` (two headers, one block of sample lines) and framed twice; the
shared lines are also compressed once for both (collector/gzipped.py).

Two ways in:

- :class:`Family` for large families written straight from the snapshot
  (cgroups: ``format_families``);
- :class:`ExpositionWriter` for prometheus_client ``Metric`` families (the
  registry's, ProcessCollector included); it keeps each sample's rendered
  ``name{labels} `` prefix between renders and forgets label sets that
  disappear, so its cache is never larger than one exposition.

Values go through :func:`format_value` whatever their source: float64,
written exactly (integers below 1e15 without exponent or ``.0``). Tests parse the output with
prometheus_client's own parsers and compare with its writers.
(https://prometheus.io/docs/instrumenting/exposition_formats/,
https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.core import Metric

_TYPES = ("counter", "gauge", "histogram")  # histograms: the exporter's own HTTP metrics
EOF_LINE = b"# EOF\n"


def format_value(value: float) -> str:
    """The one spelling of a sample value, for every family: a float64 as Prometheus parses it.

    Integers are converted like any number (a 401-digit integer written as is
    fails the whole scrape: Go's ParseFloat refuses it), ints beyond float64
    become +Inf/-Inf, and the rest is Go-parsable: NaN, +Inf, -Inf, integers
    below 1e15 as digits, other values as Python's shortest repr.
    """
    if type(value) is float and -1e15 < value < 1e15:  # finite and in range (NaN compares false): most values
        return str(int(value)) if value.is_integer() else repr(value)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf if value > 0 else -math.inf
    if number != number:
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def format_values(values: list[float], before: tuple[list[float], list[str]] | None = None) -> list[str]:
    """:func:`format_value` of each value, its fast path written inline: the per-CPU families format
    thousands of values a render (2,560 on a 256-CPU host), and the call was a sixth of that.

    ``before``: earlier values and their strings, position by position; a value equal to the one at its
    position there takes that string (equal values format alike: 0.0 and -0.0 are both "0"). Between two
    samples most of a host's /proc/stat columns do not move (nice, irq, steal, guest on most CPUs).
    """
    if before is None or len(before[0]) != len(values):
        return [
            (str(int(v)) if v.is_integer() else repr(v)) if type(v) is float and -1e15 < v < 1e15 else format_value(v)
            for v in values
        ]
    return [
        s
        if v == old
        else (str(int(v)) if v.is_integer() else repr(v))
        if type(v) is float and -1e15 < v < 1e15
        else format_value(v)
        for v, old, s in zip(values, *before, strict=True)
    ]


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass(frozen=True)
class Piece:
    """One written family: its HELP/TYPE header in each format and the sample lines both formats share."""

    text_header: bytes
    openmetrics_header: bytes
    samples: bytes


@functools.lru_cache(maxsize=1024)
def _headers(name: str, kind: str, help_text: str) -> tuple[bytes, bytes]:
    """A family's HELP/TYPE header in each format: the same few hundred families at every render, so kept
    (bounded: families come and go with cgroups' controllers and the registry, not with label values)."""
    if kind not in _TYPES:
        raise ValueError(f"{name}: metric type {kind} is not supported by this writer")
    om_name = name.removesuffix("_total") if kind == "counter" else name
    text_help = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return (
        f"# HELP {name} {text_help}\n# TYPE {name} {kind}\n".encode(),
        f"# HELP {om_name} {escape_label_value(help_text)}\n# TYPE {om_name} {kind}\n".encode(),
    )


def piece(name: str, kind: str, help_text: str, samples: str) -> Piece:
    """``name`` as text 0.0.4 exposes it: with ``_total`` for counters."""
    return Piece(*_headers(name, kind, help_text), samples.encode())


@dataclass
class Family:
    """A family being written straight to text: ``lines`` are complete sample lines (``name{labels} value\\n``)."""

    name: str  # as exposed in text 0.0.4, with _total for counters
    type: str  # "counter" | "gauge"
    help: str
    lines: list[str] = field(default_factory=list)


def format_families(families: Iterable[Family]) -> list[Piece]:
    """The families that have samples, each as its two headers and its sample lines."""
    return [piece(f.name, f.type, f.help, "".join(f.lines)) for f in families if f.lines]


def join_pieces(pieces: Iterable[Piece]) -> tuple[bytes, bytes]:
    """(text 0.0.4, OpenMetrics without ``# EOF``)."""
    pieces = list(pieces)
    return (
        b"".join(p.text_header + p.samples for p in pieces),
        b"".join(p.openmetrics_header + p.samples for p in pieces),
    )


class ExpositionWriter:
    """prometheus_client families -> Pieces, reusing rendered label prefixes between calls."""

    def __init__(self) -> None:
        self._prefixes: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    @property
    def cached_prefixes(self) -> int:
        """How many rendered label sets are kept: those of the last render, no more."""
        return len(self._prefixes)

    def pieces(self, families: Iterable[Metric | Piece]) -> list[Piece]:
        old, new = self._prefixes, {}
        out: list[Piece] = []
        for family in families:
            if isinstance(family, Piece):  # a family its collector wrote as text already (collector/cpu.py)
                out.append(family)
                continue
            lines = []
            for sample in family.samples:
                key = (sample.name, tuple(sample.labels.items()))
                prefix = old.get(key)
                if prefix is None:
                    if sample.labels:
                        labels = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sample.labels.items())
                        prefix = f"{sample.name}{{{labels}}} "
                    else:
                        prefix = sample.name + " "
                new[key] = prefix
                lines.append(prefix + format_value(sample.value) + "\n")
            if lines:
                name = family.name + "_total" if family.type == "counter" else family.name
                out.append(piece(name, family.type, family.documentation, "".join(lines)))
        self._prefixes = new
        return out

    def render(self, families: Iterable[Metric | Piece]) -> tuple[bytes, bytes]:
        """(text 0.0.4, OpenMetrics with ``# EOF``)."""
        text, openmetrics = join_pieces(self.pieces(families))
        return text, openmetrics + EOF_LINE
