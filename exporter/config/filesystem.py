"""``--filesystem.*``: how often filesystems are measured and which mounts the collector leaves out.

The defaults are the reader's own (exporter/sources/mounts.py: node_exporter's
``--collector.filesystem.mount-points-exclude`` and ``fs-types-exclude``
defaults), so the flags and the reader cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.config.flags import Opt, Section
from exporter.config.values import duration_in, parse_regex
from exporter.sources.mounts import FS_TYPES_EXCLUDED, MOUNT_POINTS_EXCLUDED


@dataclass(frozen=True)
class FilesystemConfig:
    # Sizes and free space move slowly, and the statvfs of every mount was the costliest source of a
    # CPU sample (0.6 of 2 ms on this project's VM); 15 s is Prometheus' default scrape interval.
    interval_seconds: float = 15.0
    mount_points_exclude: re.Pattern[str] | None = re.compile(MOUNT_POINTS_EXCLUDED)
    fs_types_exclude: re.Pattern[str] | None = re.compile(FS_TYPES_EXCLUDED)


FILESYSTEM = Section(
    FilesystemConfig,
    interval_seconds=Opt(
        "filesystem.interval",
        duration_in(0.0, 300.0),
        "how often filesystems are measured, at a CPU sample (0: at every one)",
    ),
    mount_points_exclude=Opt(
        "filesystem.mount-points-exclude",
        parse_regex,
        "leave out mount points matching this regex (empty: none)",
        shown=MOUNT_POINTS_EXCLUDED,
    ),
    fs_types_exclude=Opt(
        "filesystem.fs-types-exclude",
        parse_regex,
        "leave out filesystem types matching this regex (empty: none)",
        shown=FS_TYPES_EXCLUDED,
    ),
)
