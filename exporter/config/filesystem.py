"""``--filesystem.*``: which mounts the filesystem collector leaves out.

The defaults are the reader's own (exporter/sources/mounts.py: node_exporter's
``--collector.filesystem.mount-points-exclude`` and ``fs-types-exclude``
defaults), so the flags and the reader cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.config.flags import Opt, Section
from exporter.config.values import parse_regex
from exporter.sources.mounts import FS_TYPES_EXCLUDED, MOUNT_POINTS_EXCLUDED


@dataclass(frozen=True)
class FilesystemConfig:
    mount_points_exclude: re.Pattern[str] | None = re.compile(MOUNT_POINTS_EXCLUDED)
    fs_types_exclude: re.Pattern[str] | None = re.compile(FS_TYPES_EXCLUDED)


FILESYSTEM = Section(
    FilesystemConfig,
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
