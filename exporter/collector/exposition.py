"""Text 0.0.4 and OpenMetrics 1.0 rendering of metric families, built for a sampler.

prometheus_client's generate_latest re-escapes every label of every sample on
every call (about 50 ms for a 256-CPU host here). The exporter renders the same
label sets once per sample, so this renderer keeps each sample's rendered
``name{labels} `` prefix between renders and only formats values; a label set
that disappears is forgotten at the next render, so the cache stays as large
as one exposition. The sample lines of the two formats are identical for
counters and gauges, so they are rendered once and framed twice: the formats
differ only in the TYPE line of counters (OpenMetrics names the family without
``_total``), HELP escaping and the closing ``# EOF``.
(Formats: https://prometheus.io/docs/instrumenting/exposition_formats/,
https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md)
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.core import Metric

_TEXT_TYPES = {"counter": "counter", "gauge": "gauge", "unknown": "untyped"}


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _help_text(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def format_value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class ExpositionWriter:
    """Renders families to (text 0.0.4, OpenMetrics) bytes; reuses label prefixes between calls."""

    def __init__(self) -> None:
        self._prefixes: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    @property
    def cached_prefixes(self) -> int:
        """How many rendered label sets are kept: those of the last render, no more."""
        return len(self._prefixes)

    def render(self, families: Iterable[Metric]) -> tuple[bytes, bytes]:
        old, new = self._prefixes, {}
        text: list[str] = []
        om: list[str] = []
        for family in families:
            kind = family.type
            if kind not in _TEXT_TYPES:
                raise ValueError(f"{family.name}: metric type {kind} is not supported by this renderer")
            lines = []
            for sample in family.samples:
                key = (sample.name, tuple(sample.labels.items()))
                prefix = old.get(key)
                if prefix is None:
                    if sample.labels:
                        labels = ",".join(f'{k}="{_label_value(v)}"' for k, v in sample.labels.items())
                        prefix = f"{sample.name}{{{labels}}} "
                    else:
                        prefix = sample.name + " "
                new[key] = prefix
                lines.append(prefix + format_value(sample.value))
            if not lines:
                continue
            body = "\n".join(lines) + "\n"
            text_name = family.name + "_total" if kind == "counter" else family.name
            text.append(
                f"# HELP {text_name} {_help_text(family.documentation)}\n# TYPE {text_name} {_TEXT_TYPES[kind]}\n{body}"
            )
            om.append(
                f"# HELP {family.name} {_help_text(family.documentation).replace(chr(34), chr(92) + chr(34))}\n"
                f"# TYPE {family.name} {kind}\n"
                + (f"# UNIT {family.name} {family.unit}\n" if family.unit else "")
                + body
            )
        self._prefixes = new
        om.append("# EOF\n")
        return "".join(text).encode(), "".join(om).encode()
