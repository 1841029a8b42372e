"""``--cgroup.*``: the cgroup job's interval and the bounds of its walk."""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.config.flags import Opt, Section
from exporter.config.values import duration_in, int_in, parse_regex

# The most cgroups one guest row may carry; the host discards a row with more (reason invalid_row).
GUEST_MAX_CGROUPS = 1000


@dataclass(frozen=True)
class CgroupConfig:
    interval_seconds: float = 5.0
    max_depth: int = 6
    include: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None
    max_count: int = 1000


_DEPTH = Opt("cgroup.max-depth", int_in(0, 64), "deepest cgroup level walked below each hierarchy root")
_INCLUDE = Opt("cgroup.include", parse_regex, "export only cgroups whose path matches this regex")
_EXCLUDE = Opt("cgroup.exclude", parse_regex, "leave out cgroups whose path matches this regex")

CGROUP = Section(
    CgroupConfig,
    interval_seconds=Opt("cgroup.interval", duration_in(0.1, 300.0), "how often cgroups are sampled"),
    max_depth=_DEPTH,
    include=_INCLUDE,
    exclude=_EXCLUDE,
    max_count=Opt("cgroup.max-count", int_in(1, 1_000_000), "most cgroups exported; the deepest beyond it are dropped"),
)
# The agent sends its cgroups in every row, so fewer, and bounded by what the host accepts.
AGENT_CGROUP = Section(
    CgroupConfig,
    defaults={"max_count": 100},
    max_depth=_DEPTH,
    include=_INCLUDE,
    exclude=_EXCLUDE,
    max_count=Opt(
        "cgroup.max-count",
        int_in(1, GUEST_MAX_CGROUPS),
        "most cgroups in a row; each adds its path and ~90 bytes (host: --guest.max-line-bytes)",
    ),
)
