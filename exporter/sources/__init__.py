"""Pure readers of kernel files.

Each module is named after the kernel interface it reads and offers
``parse_<file>(text)`` (no I/O) and ``read_<file>(root)`` (reads below an
explicit root, so a container can read the host's bind-mounted /proc and /sys).
CpuSources raise :class:`SourceError` for data they cannot use; ``OSError`` from
the filesystem propagates unchanged. Neither is caught here: the snapshot
decides what a failure means for its source.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable


class SourceError(ValueError):
    """A kernel file exists but its content is not what the parser expects."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


SMALL_LIMIT = 1 << 20
_CHUNK = 65536


def read_small(
    path: str | os.PathLike[str],
    limit: int = SMALL_LIMIT,
    *,
    short_read_ends: bool = False,
    dir_fd: int | None = None,
) -> str:
    """:func:`read_small_bytes` as text; bytes that are not UTF-8 become U+FFFD, for the parser to reject."""
    return read_small_bytes(path, limit, short_read_ends=short_read_ends, dir_fd=dir_fd).decode("utf-8", "replace")


def read_small_bytes(
    path: str | os.PathLike[str],
    limit: int = SMALL_LIMIT,
    *,
    short_read_ends: bool = False,
    dir_fd: int | None = None,
) -> bytes:
    """A procfs/sysfs/cgroupfs file's text, with one open and few reads (a third of Path.read_text's cost).

    At most ``limit`` bytes: a larger file raises :class:`SourceError` naming
    it, so a file that grew without bound cannot exhaust memory.
    ``short_read_ends`` skips the empty read that confirms the end after a
    read shorter than asked: right for files the kernel prints in one go
    (kernfs attributes, cgroup control files, single_open seq_files), wrong
    for seq_files printed record by record (mountinfo, cpuinfo), where one
    read returns about a page.

    ``dir_fd`` opens ``path`` relative to that directory, as os.open does.

    Raises OSError (FileNotFoundError, PermissionError, ...) with ``filename`` set, as open() does.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        # os.read, not pread: a FIFO or a socket file given as a path has no offset
        want = min(_CHUNK, limit + 1)
        first = os.read(fd, want)
        if short_read_ends and len(first) < want:  # all of it, in the one read most files take
            return first
        pending = [first]  # the loop's first read is that one

        def read(offset: int, want: int) -> bytes:
            return pending.pop() if pending else os.read(fd, want)

        data, _ = _read_whole(read, os.fsdecode(path), limit, short_read_ends)
    finally:
        os.close(fd)
    return data


def _read_whole(
    read: Callable[[int, int], bytes], path: str, limit: int, short_read_ends: bool, first: int = _CHUNK
) -> tuple[bytes, bool]:
    """``read(offset, want)`` until an empty read (or, with ``short_read_ends``, one shorter than asked), the
    first asking ``first`` bytes; and whether that first read filled what it asked. More than ``limit``
    bytes raise :class:`SourceError` naming ``path``."""
    chunks: list[bytes] = []
    size = 0
    want = min(first, limit + 1)
    first_filled = False
    while size <= limit:
        chunk = read(size, want)
        if not chunk:
            break
        if not chunks:
            first_filled = len(chunk) == want
        chunks.append(chunk)
        size += len(chunk)
        if short_read_ends and len(chunk) < want:
            break
        want = min(_CHUNK, limit + 1 - size)
    if size > limit:
        raise SourceError(path, f"larger than {limit} bytes")
    return b"".join(chunks), first_filled


class HeldFile:
    """A procfs file opened once and read whole from offset 0 with pread at each :meth:`read`.

    An open and a close cost about as much as the read of a small kernel file
    (the path walk and file setup): sampled 0.5 s apart, /proc/stat took 0.15 ms
    of CPU opened, read and closed, and 0.09 ms as one pread on a held
    descriptor; the five per-second proc files 0.29 ms against 0.19.
    A seq_file generates its text anew at each read from offset 0
    (fs/seq_file.c seq_read_iter resets its iterator to the first record, and a
    read at another offset than where the last ended traverses from the first),
    so a held descriptor reads fresh content each time. Only for files of proc:
    a regular file replaced by rename would keep reading the old inode.

    ``limit`` and ``short_read_ends`` as :func:`read_small_bytes`. A read that
    fills the buffer goes on at the next offset; the size that sufficed is kept,
    so the next read usually takes one pread. On an ``OSError`` (a descriptor
    gone stale) the file is opened again and read once more; a second failure
    propagates with ``filename`` set, and the next read opens it afresh.
    Not thread-safe: one caller at a time.
    """

    def __init__(self, path: str, limit: int = SMALL_LIMIT, *, short_read_ends: bool = False) -> None:
        self.path = path
        self.limit = limit
        self.short_read_ends = short_read_ends
        self._fd: int | None = None
        self._size = _CHUNK

    def fileno(self) -> int:
        """The held descriptor (opened now if it is not)."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        return self._fd

    def read(self) -> str:
        """The whole content as text; bytes that are not UTF-8 become U+FFFD, as :func:`read_small`."""
        return self.read_bytes().decode("utf-8", "replace")

    def read_bytes(self) -> bytes:
        fd = self._fd
        if fd is not None:
            try:
                return self._pread_all(fd)
            except OSError as e:
                self._drop(e)
        fd = self.fileno()
        try:
            return self._pread_all(fd)
        except OSError as e:
            self._drop(e)
            e.filename = self.path
            raise

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _drop(self, error: OSError) -> None:
        """Forgets the descriptor after a failed read; closes it unless it is no longer ours (EBADF: its number
        may have been reused by another open since)."""
        fd, self._fd = self._fd, None
        if fd is not None and error.errno != errno.EBADF:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _pread_all(self, fd: int) -> bytes:
        data, filled = _read_whole(
            lambda offset, want: os.pread(fd, want, offset), self.path, self.limit, self.short_read_ends, self._size
        )
        if filled:  # it did not fit in one read: next time, a buffer with a quarter more room than it took
            self._size = min(self.limit + 1, -(-(len(data) + len(data) // 4) // _CHUNK) * _CHUNK)
        return data


class HeldFiles:
    """:class:`HeldFile` by path, each opened at its first read and kept until :meth:`close`; and sysfs
    attributes read with one pread each (:meth:`read_attribute`).

    At most ``max_files`` descriptors are held (None: no bound): a path first read once that many are held
    is opened, read and closed at each read instead. The app bounds it by the descriptor limit
    (app.held_files).
    """

    def __init__(self, max_files: int | None = None) -> None:
        self.max_files = max_files
        self._files: dict[str, HeldFile] = {}
        self._attributes: dict[str, int] = {}

    def _full(self) -> bool:
        return self.max_files is not None and len(self._files) + len(self._attributes) >= self.max_files

    def read(self, path: str, limit: int = SMALL_LIMIT, *, short_read_ends: bool = False) -> str:
        held = self._files.get(path)
        if held is None:
            if self._full():
                return read_small(path, limit, short_read_ends=short_read_ends)
            held = self._files[path] = HeldFile(path, limit, short_read_ends=short_read_ends)
        return held.read()

    def read_attribute(self, path: str, size: int) -> bytes:
        """Up to ``size`` bytes of a sysfs attribute: one pread at offset 0 through its held descriptor.

        sysfs prints an attribute whole at a read from offset 0 (fs/sysfs/file.c sysfs_kf_seq_show, called
        through fs/seq_file.c seq_read_iter, which starts again from the first record at offset 0), so a
        held descriptor reads the current value each time; one pread instead of :class:`HeldFile`'s layers,
        for files of a few bytes read hundreds of times a sample (cpufreq's, two per CPU). On an
        ``OSError`` (the attribute removed with its device or policy: ENODEV; a policy gone inactive: EBUSY;
        EIO) the descriptor is closed and forgotten, and the path is opened, read and closed once: a file
        that is gone raises FileNotFoundError, and one that still fails raises with ``filename`` set; the
        next read holds it again.
        """
        fd = self._attributes.get(path)
        if fd is None:
            if self._full():
                return read_once(path, size)
            fd = self._attributes[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, 0)
        except OSError as e:
            del self._attributes[path]
            if e.errno != errno.EBADF:  # EBADF: no longer ours, its number may have been reused since
                with contextlib.suppress(OSError):
                    os.close(fd)
        return read_once(path, size)

    def paths(self) -> frozenset[str]:
        """The paths read through a held descriptor so far."""
        return frozenset(self._files) | frozenset(self._attributes)

    def close(self) -> None:
        files, self._files = self._files, {}
        attributes, self._attributes = self._attributes, {}
        for held in files.values():
            held.close()
        for fd in attributes.values():
            os.close(fd)


def read_once(path: str, size: int) -> bytes:
    """Up to ``size`` bytes of ``path`` with one open, one read and one close (an OSError names ``path``)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, size)
    except OSError as e:
        e.filename = path
        raise
    finally:
        os.close(fd)
