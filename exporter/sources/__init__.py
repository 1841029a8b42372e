"""Pure readers of kernel files.

Each module is named after the kernel interface it reads and offers
``parse_<file>(text)`` (no I/O) and ``read_<file>(root)`` (reads below an
explicit root, so a container can read the host's bind-mounted /proc and /sys).
CpuSources raise :class:`SourceError` for data they cannot use; ``OSError`` from
the filesystem propagates unchanged. Neither is caught here: the snapshot
decides what a failure means for its source.
"""

from __future__ import annotations

import os


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
        chunks = []
        size = 0
        while size <= limit:
            want = min(_CHUNK, limit + 1 - size)
            chunk = os.read(fd, want)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if short_read_ends and len(chunk) < want:
                break
    finally:
        os.close(fd)
    if size > limit:
        raise SourceError(os.fsdecode(path), f"larger than {limit} bytes")
    return b"".join(chunks)
