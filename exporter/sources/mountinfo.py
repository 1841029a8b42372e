"""/proc/<pid>/mountinfo: the mounts of a process's mount namespace (proc(5), "/proc/pid/mountinfo").

Documentation/filesystems/proc.rst, "3.5 /proc/<pid>/mountinfo". A line is

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue

mount id, parent id, major:minor, the root of the mount within its
filesystem, the mount point, per-mount options, zero or more optional fields
(``shared:N``, ``master:N``, ...) ended by ``-``, then the filesystem type,
the source and the per-superblock options. Root, mount point and source are
octal-escaped as in /proc/<pid>/mounts (fs/proc_namespace.c show_mountinfo).
The root field is what makes mountinfo worth reading over /proc/<pid>/mounts:
for a cgroup2 mount inside a cgroup namespace it is the cgroup the namespace
sees as its root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporter.sources import SourceError, read_small
from exporter.sources.mounts import MOUNT_TABLE_LIMIT, unescape


@dataclass(frozen=True)
class MountInfo:
    mount_id: int
    parent_id: int
    root: str  # the mounted directory within its filesystem ("/" for the whole filesystem)
    mount_point: str
    fstype: str
    source: str


def parse_mountinfo(text: str, path: str = "/proc/self/mountinfo") -> list[MountInfo]:
    mounts = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 2:
            raise SourceError(path, "expected 6 fields, optional fields, '-', fstype and source", lineno)
        try:
            mount_id, parent_id = int(fields[0]), int(fields[1])
        except ValueError:
            raise SourceError(path, f"mount ids {fields[0]!r} {fields[1]!r} are not numbers", lineno) from None
        root, mount_point = unescape(fields[3]), unescape(fields[4])
        mounts.append(MountInfo(mount_id, parent_id, root, mount_point, tail[0], unescape(tail[1])))
    return mounts


def read_mountinfo(procfs: Path, pid: str = "self") -> list[MountInfo]:
    path = procfs / pid / "mountinfo"
    return parse_mountinfo(read_small(path, MOUNT_TABLE_LIMIT), str(path))
