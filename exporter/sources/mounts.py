"""/proc/<pid>/mountinfo (proc(5), "/proc/pid/mountinfo") and statvfs(3) of each real filesystem.

``<procfs>/1/mountinfo`` lists the mounts of init's mount namespace, so a
container given the host's /proc sees the host's filesystems. Where init's
entry is hidden (``hidepid=invisible``: not found) or closed
(``hidepid=noaccess``: permission denied), as it is to an unprivileged
exporter on a hardened host, ``<procfs>/self/mountinfo`` is read instead (as
node_exporter does). Each line is ``id parent major:minor root mountpoint
options [optional...] - fstype source superoptions``, with spaces, tabs,
newlines and backslashes octal-escaped (fs/proc_namespace.c show_mountinfo,
mangle()); every other byte is given as it is, so a path need not be UTF-8:
such bytes reach labels as ``\\xNN`` and statvfs as they are. Mount points are
stat'ed below ``rootfs`` (``/``, or the host's root bind-mounted into a
container).

"Real" filesystems are the ones backed by a block device (``/dev/...``),
like gopsutil's ``disk.Partitions(false)`` that ServiceRadar's checker uses,
less the mount points and filesystem types a :class:`MountFilter` excludes
(node_exporter's defaults, plus kubelet's volume mounts as kube-prometheus-stack
adds them). Network and pseudo filesystems are never stat'ed, so a dead NFS
server cannot hang a sample. A directory of a filesystem is reported once,
however often it is mounted: one mount per (device, root), and a bind mount of
a directory onto itself (``ip netns`` does this with /run/netns) is the mount
that already shows it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import read_small_bytes
from exporter.sources.mountinfo import MOUNT_TABLE_LIMIT, label, parse_mountinfo

# node_exporter's defaults (collector/filesystem_linux.go defMountPointsExcluded, defFSTypesExcluded);
# var/lib/kubelet/.+ is kube-prometheus-stack's addition for pod volume mounts.
MOUNT_POINTS_EXCLUDED = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+|var/lib/kubelet/.+)($|/)"
)
FS_TYPES_EXCLUDED = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs"
    r"|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$"
)


@dataclass(frozen=True)
class MountFilter:
    """Mount points and filesystem types left out (regexes searched as node_exporter does; None: none)."""

    mount_points_exclude: re.Pattern[str] | None = re.compile(MOUNT_POINTS_EXCLUDED)
    fs_types_exclude: re.Pattern[str] | None = re.compile(FS_TYPES_EXCLUDED)

    def excludes(self, mount: Mount) -> bool:
        points, types = self.mount_points_exclude, self.fs_types_exclude
        return bool(
            (points is not None and points.search(mount.mount_point))
            or (types is not None and types.search(mount.fstype))
        )


@dataclass(frozen=True)
class Mount:
    device: str  # the source as a label (undecodable bytes as \xNN)
    mount_point: str  # likewise
    fstype: str
    readonly: bool
    root: str = "/"  # the directory of the filesystem mounted there
    device_number: str = ""  # major:minor
    path: str = ""  # the mount point as the kernel gave it (os.fsdecode), for statvfs; "" means mount_point


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


def parse_mounts(data: bytes | str, path: str = "/proc/1/mountinfo") -> list[Mount]:
    """The mounts of a mountinfo file (sources/mountinfo.py parses it), as this module measures them."""
    return [
        Mount(m.source, m.mount_point, m.fstype, m.readonly, m.root, m.device_number, m.path)
        for m in parse_mountinfo(data, path)
    ]


def _inside(root: str, parent_root: str) -> str | None:
    """``root`` relative to ``parent_root`` ("" if equal), or None if it is not inside it."""
    if root == parent_root:
        return ""
    prefix = parent_root.rstrip("/") + "/"
    return root[len(prefix) :] if root.startswith(prefix) else None


def _shown_by(mount: Mount, other: Mount) -> bool:
    """``mount`` shows a directory ``other`` already shows: the same (device, root), or a bind onto itself."""
    if mount.device_number != other.device_number:
        return False
    if mount.root == other.root:
        return True
    rel = _inside(mount.root, other.root)
    if rel is None:
        return False
    return (mount.path or mount.mount_point) == os.path.join(other.path or other.mount_point, rel)


def real_filesystems(mounts: list[Mount], only: MountFilter | None = None) -> list[Mount]:
    """Block-device filesystems, one per mount point (the last mount over a point is the visible one),
    and one per directory of a device however often it is mounted."""
    only = only or MountFilter()
    by_point: dict[str, Mount] = {}
    for mount in mounts:
        if mount.device.startswith("/dev/") and not only.excludes(mount):
            by_point[mount.mount_point] = mount
        elif mount.mount_point in by_point:  # over-mounted by something else
            del by_point[mount.mount_point]
    kept: list[Mount] = []
    for mount in sorted(by_point.values(), key=lambda m: (m.mount_point.rstrip("/").count("/"), m.mount_point)):
        if not any(_shown_by(mount, k) for k in kept):
            kept.append(mount)
    return sorted(kept, key=lambda m: m.mount_point)


def read_mounts(procfs: Path) -> list[Mount]:
    path = procfs / "1" / "mountinfo"
    try:
        data = read_small_bytes(path, MOUNT_TABLE_LIMIT)
    except (FileNotFoundError, PermissionError):  # hidepid=invisible / hidepid=noaccess
        path = procfs / "self" / "mountinfo"
        data = read_small_bytes(path, MOUNT_TABLE_LIMIT)
    return parse_mounts(data, str(path))


StatVfs = Callable[[str], os.statvfs_result]


def stat_filesystem(mount: Mount, rootfs: Path, statvfs: StatVfs = os.statvfs) -> Filesystem:
    where = rootfs / (mount.path or mount.mount_point).lstrip("/")
    try:
        st = statvfs(str(where))
    except OSError as e:
        shown = label(os.fsencode(where))
        return Filesystem(mount.device, mount.mount_point, mount.fstype, mount.readonly, error=f"{shown}: {e.strerror}")
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


def read_filesystems(
    procfs: Path, rootfs: Path, statvfs: StatVfs = os.statvfs, only: MountFilter | None = None
) -> tuple[Filesystem, ...]:
    """Every real filesystem with its sizes; one that cannot be stat'ed carries its error instead."""
    return tuple(stat_filesystem(m, rootfs, statvfs) for m in real_filesystems(read_mounts(procfs), only))
