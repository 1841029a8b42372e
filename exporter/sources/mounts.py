"""/proc/<pid>/mounts (proc(5), "/proc/pid/mounts") and statvfs(3) of each real filesystem.

``<procfs>/1/mounts`` lists the mounts of init's mount namespace, so a
container given the host's /proc sees the host's filesystems; it falls back
to ``<procfs>/self/mounts`` where init's entry is not readable (as
node_exporter does). Each line is ``device mountpoint fstype options 0 0``
with spaces, tabs, newlines and backslashes octal-escaped (fs/proc_namespace.c
show_vfsmnt, mangle()). Mount points are stat'ed below ``rootfs`` (``/``, or
the host's root bind-mounted into a container).

"Real" filesystems are the ones backed by a block device (``/dev/...``),
like gopsutil's ``disk.Partitions(false)`` that ServiceRadar's checker uses,
minus read-only image formats (squashfs snaps, ISO images) and container
runtimes' storage bind mounts. Network and
pseudo filesystems are never stat'ed, so a dead NFS server cannot hang a
sample.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import SourceError, read_small

IMAGE_FSTYPES = frozenset({"squashfs", "iso9660", "erofs", "udf"})
# Container runtimes bind-mount their storage once per container: the same
# device again, at a churning path (node_exporter's default exclusion).
EXCLUDED_MOUNT_POINTS = re.compile(
    r"^/(dev|proc|sys|run/credentials/.+|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
_ESCAPE = re.compile(r"\\([0-7]{3})")
# A mount table holds a line per mount: a Kubernetes node with many pods has thousands.
MOUNT_TABLE_LIMIT = 16 << 20


@dataclass(frozen=True)
class Mount:
    device: str
    mount_point: str
    fstype: str
    readonly: bool


@dataclass(frozen=True)
class Filesystem:
    device: str
    mount_point: str
    fstype: str
    readonly: bool
    size_bytes: int = 0
    free_bytes: int = 0  # free for root
    avail_bytes: int = 0  # free for unprivileged users
    files: int = 0
    files_free: int = 0
    error: str = ""  # why statvfs failed; the sizes are then 0 and not exported

    @property
    def used_bytes(self) -> int:
        """size - free, as df(1) counts it."""
        return self.size_bytes - self.free_bytes


def unescape(field: str) -> str:
    """A path field of a mount table with its octal escapes (``\\040`` for a space) decoded."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str, path: str = "/proc/1/mounts") -> list[Mount]:
    mounts = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 4:
            raise SourceError(path, f"expected at least 4 fields, got {len(fields)}", lineno)
        options = fields[3].split(",")
        mounts.append(Mount(unescape(fields[0]), unescape(fields[1]), fields[2], "ro" in options))
    return mounts


def real_filesystems(mounts: list[Mount]) -> list[Mount]:
    """Block-device filesystems, one per mount point (the last mount over a point is the visible one)."""
    by_point: dict[str, Mount] = {}
    for mount in mounts:
        if EXCLUDED_MOUNT_POINTS.match(mount.mount_point):
            continue
        if mount.device.startswith("/dev/") and mount.fstype not in IMAGE_FSTYPES:
            by_point[mount.mount_point] = mount
        elif mount.mount_point in by_point:  # over-mounted by something else
            del by_point[mount.mount_point]
    return sorted(by_point.values(), key=lambda m: m.mount_point)


def read_mounts(procfs: Path) -> list[Mount]:
    path = procfs / "1" / "mounts"
    try:
        text = read_small(path, MOUNT_TABLE_LIMIT)
    except PermissionError:
        path = procfs / "self" / "mounts"
        text = read_small(path, MOUNT_TABLE_LIMIT)
    return parse_mounts(text, str(path))


StatVfs = Callable[[str], os.statvfs_result]


def stat_filesystem(mount: Mount, rootfs: Path, statvfs: StatVfs = os.statvfs) -> Filesystem:
    where = rootfs / mount.mount_point.lstrip("/")
    try:
        st = statvfs(str(where))
    except OSError as e:
        return Filesystem(mount.device, mount.mount_point, mount.fstype, mount.readonly, error=f"{where}: {e.strerror}")
    return Filesystem(
        mount.device,
        mount.mount_point,
        mount.fstype,
        mount.readonly,
        size_bytes=st.f_blocks * st.f_frsize,
        free_bytes=st.f_bfree * st.f_frsize,
        avail_bytes=st.f_bavail * st.f_frsize,
        files=st.f_files,
        files_free=st.f_ffree,
    )


def read_filesystems(procfs: Path, rootfs: Path, statvfs: StatVfs = os.statvfs) -> tuple[Filesystem, ...]:
    """Every real filesystem with its sizes; one that cannot be stat'ed carries its error instead."""
    return tuple(stat_filesystem(m, rootfs, statvfs) for m in real_filesystems(read_mounts(procfs)))
