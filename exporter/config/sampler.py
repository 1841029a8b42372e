"""``--sampler.*``: how often the CPU job samples."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config.flags import Opt, Section
from exporter.config.values import duration_in


@dataclass(frozen=True)
class SamplerConfig:
    interval_seconds: float = 1.0


SAMPLER = Section(
    SamplerConfig,
    interval_seconds=Opt("sampler.interval", duration_in(0.05, 5.0), "how often CPU and memory are sampled"),
)
