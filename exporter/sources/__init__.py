"""Pure readers of kernel files.

Each module is named after the kernel interface it reads and offers
``parse_<file>(text)`` (no I/O) and ``read_<file>(root)`` (reads below an
explicit root, so a container can read the host's bind-mounted /proc and /sys).
Readers raise :class:`SourceError` for data they cannot use; ``OSError`` from
the filesystem propagates unchanged. Neither is caught here: the snapshot
decides what a failure means for its source.
"""


class SourceError(ValueError):
    """A kernel file exists but its content is not what the parser expects."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


def read_small(path: str) -> str:
    """A sysfs/procfs file's text with one open and few reads (a third of Path.read_text's cost).

    Raises OSError (FileNotFoundError, PermissionError, ...) with ``filename`` set, as open() does.
    """
    import os

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()
