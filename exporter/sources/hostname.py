"""/proc/sys/kernel/hostname: the UTS hostname (Documentation/admin-guide/sysctl/kernel.rst, "hostname")."""

from __future__ import annotations

from pathlib import Path

from exporter.sources import SourceError, read_small

# HOST_NAME_MAX is 64 (include/uapi/linux/utsname.h __NEW_UTS_LEN); leave room for a fixture's longer name.
MAX_LENGTH = 255


def parse_hostname(text: str, path: str = "/proc/sys/kernel/hostname") -> str:
    name = text.strip()
    if not name or len(name) > MAX_LENGTH or not name.isprintable() or any(c.isspace() for c in name):
        raise SourceError(path, f"not a hostname: {text[:60]!r}")
    return name


def read_hostname(procfs: Path) -> str:
    path = procfs / "sys" / "kernel" / "hostname"
    return parse_hostname(read_small(path), str(path))
