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

import os
import re
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import SourceError, read_small_bytes

# A mount table holds a line per mount: a Kubernetes node with many pods has thousands.
MOUNT_TABLE_LIMIT = 16 << 20
_ESCAPE = re.compile(rb"\\([0-7]{3})")


def unescape(field: bytes) -> bytes:
    """A path field with its octal escapes (``\\040`` for a space) decoded, as the kernel's bytes."""
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), field)


def label(raw: bytes) -> str:
    """Bytes as a label value: UTF-8, with undecodable bytes shown as ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class MountInfo:
    mount_id: int
    parent_id: int
    root: str  # the mounted directory within its filesystem ("/" for the whole filesystem)
    mount_point: str  # as a label (undecodable bytes as \xNN)
    fstype: str
    source: str
    device_number: str = ""  # major:minor
    path: str = ""  # the mount point as the kernel gave it (os.fsdecode), for system calls
    readonly: bool = False  # the mount or its superblock is read-only (node_exporter#3157)


def _encode(text: str) -> bytes:
    """Text back to the kernel's bytes (os.fsdecode's escapes undone); a lone surrogate cannot be a byte: '?'."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def parse_mountinfo(data: bytes | str, path: str = "/proc/self/mountinfo") -> list[MountInfo]:
    raw = _encode(data) if isinstance(data, str) else data
    mounts = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        left, sep, right = line.partition(b" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 2:
            raise SourceError(path, "expected 6 fields, optional fields, '-', fstype and source", lineno)
        try:
            mount_id, parent_id = int(fields[0]), int(fields[1])
        except ValueError:
            ids = f"{label(fields[0])!r} {label(fields[1])!r}"
            raise SourceError(path, f"mount ids {ids} are not numbers", lineno) from None
        point = unescape(fields[4])
        options = fields[5].split(b",") + (tail[2].split(b",") if len(tail) > 2 else [])
        mounts.append(
            MountInfo(
                mount_id,
                parent_id,
                label(unescape(fields[3])),
                label(point),
                label(tail[0]),
                label(unescape(tail[1])),
                device_number=label(fields[2]),
                path=os.fsdecode(point),
                readonly=b"ro" in options,
            )
        )
    return mounts


def read_mountinfo(procfs: Path, pid: str = "self") -> list[MountInfo]:
    path = procfs / pid / "mountinfo"
    return parse_mountinfo(read_small_bytes(path, MOUNT_TABLE_LIMIT), str(path))


# Filesystems whose files the kernel fills in on read, without waiting on a disk, a network or a
# user-space daemon: a read of them cannot hang as a FUSE (lxcfs), NFS or FIFO read can.
KERNEL_FILESYSTEMS = frozenset({"proc", "sysfs"})


def on_kernel_filesystem(mounts: list[MountInfo], path: str) -> bool:
    """Whether ``path`` (absolute, symlinks resolved) and everything below it lie on proc or sysfs.

    The mount holding ``path`` is the last one listed whose mount point is ``path`` or above it (a later
    mount on the same point hides an earlier one); lxcfs, for one, mounts FUSE files over /proc/meminfo and
    /proc/stat, which makes them mount points of their own. A mount below ``path`` (another filesystem
    inside a directory that is read) counts against it as well.
    """
    holder: MountInfo | None = None
    for m in mounts:
        point = m.path.rstrip("/") or "/"
        if path == point or path.startswith(point.rstrip("/") + "/"):
            if holder is None or len(point) >= len(holder.path.rstrip("/") or "/"):
                holder = m
        elif point.startswith(path.rstrip("/") + "/") and m.fstype not in KERNEL_FILESYSTEMS:
            return False
    return holder is not None and holder.fstype in KERNEL_FILESYSTEMS
