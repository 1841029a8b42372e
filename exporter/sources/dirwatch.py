"""Which directories nothing was written in since they were last read or listed: inotify(7), through the C library.

A cgroup's limits (memory.max, cpu.max, pids.max, ...) change only when something writes the
file, and every write(2) on any filesystem raises an ``IN_MODIFY`` event for the watches on
the file's directory (fs/read_write.c: vfs_write calls fsnotify_modify). Checked on 6.18, as
root, for cgroup2 and for the v1 pids and memory hierarchies: writing ``pids.max`` of a child
cgroup raised one ``IN_MODIFY`` for its name on the watch of the child's directory.

What the kernel does *not* raise on cgroupfs is any event when the directory goes: an rmdir
of a watched cgroup leaves the watch in place, silently, on a directory no path reaches. A
cgroup made again under the same name is a new inode that the old watch does not see. So a
directory counts as watched only while its inode (and change time) is the one the watch was
set on (:meth:`DirectoryWatch.quiet` is given it, from an ``fstat`` of the directory the
reader has open anyway), and a watch whose directory the last cycle did not reach is removed
(:meth:`DirectoryWatch.end`).

A cgroup made or removed is an event in its parent's directory (mkdir and rmdir, checked the
same way), which is what lets a walker take a listing as unchanged.

Only filesystems where every change goes through this kernel's VFS are watched: cgroup,
cgroup2 and the local ones fixture trees live on (tmpfs, ext4, xfs, btrfs). A network or FUSE
filesystem can change without an event, so :func:`open_watch` declines it and the reader reads
everything every cycle, as it does wherever inotify cannot be had.
"""

from __future__ import annotations

import os
import struct
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

from exporter.sources.libc import filesystem_type, inotify_add_watch, inotify_init1, inotify_rm_watch

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_ONESHOT = 0x80000000
# Anything that could change what a file in the directory reads: written, truncated, replaced,
# renamed over, made or removed, its mode changed; or the directory itself gone or moved.
WATCHED = IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF

# statfs(2) f_type of the filesystems every change of which goes through this kernel (linux/magic.h)
LOCAL_FILESYSTEMS = frozenset(
    {
        0x0027E0EB,  # CGROUP_SUPER_MAGIC
        0x63677270,  # CGROUP2_SUPER_MAGIC
        0x01021994,  # TMPFS_MAGIC
        0x0000EF53,  # EXT2/3/4_SUPER_MAGIC
        0x58465342,  # XFS_SUPER_MAGIC
        0x9123683E,  # BTRFS_SUPER_MAGIC
    }
)

# An event: int wd, uint32 mask, uint32 cookie, uint32 len, then len bytes of name
_EVENT = struct.Struct("iIII")
# Watches kept at most (:func:`watch_budget` lowers it): each is about 1 KiB of kernel memory, counted
# against fs.inotify.max_user_watches.
MAX_WATCHES = 16384
# Every this many cycles each directory is listed again whatever the events said (see DirectoryWatch)
RELIST_EVERY = 12
# Directory key: (st_dev, st_ino, st_ctime_ns); a new inode under the same path, or one reused by the
# filesystem (ext4 does) with a new change time, is another directory
Key = tuple[int, int, int]


def watch_budget(procfs: Path) -> int:
    """How many watches a reader may set: an eighth of ``fs.inotify.max_user_watches`` (``procfs``'s
    sys/fs/inotify), at most :data:`MAX_WATCHES`; 0 (no watch) when it cannot be read.

    The limit is shared by every process of the user (root, for a node's kubelet, containerd
    and systemd alike), and a watch refused to them fails their work ("no space left on device"),
    so this reader takes a small share of it and reads the rest of the directories whole."""
    try:
        limit = int((procfs / "sys" / "fs" / "inotify" / "max_user_watches").read_text())
    except (OSError, ValueError):
        return 0
    return max(0, min(MAX_WATCHES, limit // 8))


def open_watch(paths: Iterable[str | Path], max_watches: int = MAX_WATCHES) -> DirectoryWatch | None:
    """A watch for directories below ``paths``, of at most ``max_watches`` watches; None when that is 0,
    one of them is not on a local filesystem (:data:`LOCAL_FILESYSTEMS`) or inotify cannot be had (no fd
    left, or a seccomp filter refuses it)."""
    if max_watches <= 0:
        return None
    try:
        if any(filesystem_type(path) not in LOCAL_FILESYSTEMS for path in paths):
            return None
    except OSError:
        return None
    try:
        fd = inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    return DirectoryWatch(fd, max_watches=max_watches)


class DirectoryWatch:
    """Tells a reader which directories it may take as unwritten since it last read them.

    A cycle runs ``begin`` (take the events since the last), then, for each directory it
    reaches, ``quiet`` / ``unchanged`` (armed in an earlier cycle and no event since) or else
    ``arm`` it *before* reading it, then ``end`` with every directory it reached. A write after
    ``arm`` is an event the next ``begin`` takes, so a directory is taken as unwritten only for
    writes that came after the cycle's own ``begin``: what any read during the cycle might also
    have missed. One cycle uses the watch at a time: a cycle that starts while another still
    runs (past its deadline) is told no (``begin``) and reads everything.

    cgroupfs also adds and removes files with no event in their directory: a controller
    enabled or disabled for the children of a cgroup (a write to *its*
    ``cgroup.subtree_control``, so an event in the parent), or moved between hierarchies (no
    event anywhere). So a listing is taken as unchanged only while its parent's is too, and
    every :data:`RELIST_EVERY` th cycle (``relist``) lists every directory again."""

    def __init__(
        self, fd: int, add: Callable[[int, bytes, int], int] | None = None, max_watches: int = MAX_WATCHES
    ) -> None:
        self.fd = fd
        self.max_watches = max_watches
        self._add = add if add is not None else inotify_add_watch
        self._remove = inotify_rm_watch
        self._lock = threading.Lock()
        # directory -> (its key when armed, None if armed by path alone; watch descriptor; the cycle armed in)
        self.armed: dict[str, tuple[Key | None, int, int]] = {}
        self.quiet_since_armed: set[str] = set()
        self._by_wd: dict[int, list[str]] = {}  # the same inode reached by two paths has one descriptor
        self.cycle = 0
        self.relist = True  # this cycle lists every directory again
        self.reused: set[str] = set()  # directories whose listing this cycle took as unchanged
        self.overflows = 0
        self._close = weakref.finalize(self, os.close, fd)

    def close(self) -> None:
        self._close()

    def begin(self) -> bool:
        """Takes the events waiting; False (and nothing taken) when another cycle holds the watch."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self.cycle += 1
            self.relist = self.cycle % RELIST_EVERY == 1
            self.reused = set()
            self._take_events()
        except BaseException:
            self._lock.release()
            raise
        return True

    def _take_events(self) -> None:
        quiet, by_wd = self.quiet_since_armed, self._by_wd
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:  # not expected from an inotify fd; trust nothing this cycle
                quiet.clear()
                return
            if not buf:
                return
            offset, end = 0, len(buf)
            while offset + 16 <= end:
                wd, mask, _, length = _EVENT.unpack_from(buf, offset)
                offset += 16 + length
                if mask & IN_Q_OVERFLOW:  # events were lost: every directory is read again
                    self.overflows += 1
                    quiet.clear()
                    continue
                directories = by_wd.get(wd)
                if directories is None:
                    continue
                for directory in directories:
                    quiet.discard(directory)
                if mask & IN_IGNORED:  # the watch is gone (removed, or its filesystem unmounted)
                    del by_wd[wd]
                    for directory in directories:
                        self.armed.pop(directory, None)

    def unchanged(self, directory: str) -> bool:
        """Armed in an earlier cycle, and no event in ``directory`` since."""
        armed = self.armed.get(directory)
        return armed is not None and armed[2] < self.cycle and directory in self.quiet_since_armed

    def quiet(self, directory: str, key: Key) -> bool:
        """:meth:`unchanged`, and ``directory`` is the inode it was armed on."""
        return self.unchanged(directory) and self.armed[directory][0] == key

    def changed(self, directory: str) -> None:
        """Takes ``directory`` as written in, as an event would."""
        self.quiet_since_armed.discard(directory)

    def arm(self, directory: str, key: Key | None) -> None:
        """Watches ``directory`` (now ``key``, if known) from here on; call it before reading it."""
        old = self.armed.get(directory)
        if old is not None and old[2] == self.cycle:  # armed by path this cycle: the inode is known now
            if key is not None:
                self.armed[directory] = (key, old[1], old[2])
            return
        if old is None and len(self.armed) >= self.max_watches:
            return
        # One event is all a watch has to tell until the directory is read again (and armed again): a
        # oneshot watch raises that one and goes (IN_IGNORED), not one for every file written.
        wd = self._add(self.fd, os.fsencode(directory), WATCHED | IN_ONLYDIR | IN_ONESHOT)
        if wd < 0:  # ENOSPC (fs.inotify.max_user_watches), EACCES, or gone: read whole every cycle
            if old is not None:
                self._forget(directory)
            return
        if old is not None and old[1] != wd:
            self._forget(directory)
        self.armed[directory] = (key, wd, self.cycle)
        sharing = self._by_wd.setdefault(wd, [])
        if directory not in sharing:
            sharing.append(directory)
        self.quiet_since_armed.add(directory)

    def _forget(self, directory: str) -> None:
        wd = self.armed.pop(directory)[1]
        self.quiet_since_armed.discard(directory)
        sharing = self._by_wd.get(wd)
        if sharing is None:
            return
        if directory in sharing:
            sharing.remove(directory)
        if not sharing:
            del self._by_wd[wd]
            self._remove(self.fd, wd)

    def end(self, reached: Iterable[str]) -> None:
        """Ends the cycle: the watches of directories it did not reach (gone, or no longer walked) go."""
        try:
            gone = self.armed.keys() - set(reached)
            for directory in gone:
                self._forget(directory)
        finally:
            self._lock.release()
