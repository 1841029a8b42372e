"""``--sampler.*``: how often the CPU job samples, and how long any source may take."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config.flags import Opt, Section
from exporter.config.values import duration_in


@dataclass(frozen=True)
class SamplerConfig:
    interval_seconds: float = 1.0
    source_timeout_seconds: float = 2.0


SAMPLER = Section(
    SamplerConfig,
    interval_seconds=Opt("sampler.interval", duration_in(0.05, 5.0), "how often CPU and memory are sampled"),
    source_timeout_seconds=Opt(
        "sampler.source-timeout",
        duration_in(0.1, 60.0),
        "a source that has not returned by then fails (a hung read stays on its own thread)",
    ),
)
