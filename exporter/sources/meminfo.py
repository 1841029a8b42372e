"""/proc/meminfo (Documentation/filesystems/proc.rst, "meminfo").

Values are ``Key:  <n> kB`` where kB means KiB (fs/proc/meminfo.c show_val_kb);
a few keys (HugePages_*) carry no unit. MemAvailable exists since 3.14.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import HeldFiles, SourceError, read_small

# An unsigned decimal (int() also takes "-1", "1_0" and "²"); at most 64 bits, as the kernel's unsigned long.
_NUMBER = re.compile(r"[0-9]{1,20}\Z")
_U64_MAX = 2**64 - 1


@dataclass(frozen=True)
class MemInfo:
    total_bytes: int
    free_bytes: int
    available_bytes: int | None
    buffers_bytes: int
    cached_bytes: int
    sreclaimable_bytes: int
    swap_total_bytes: int
    swap_free_bytes: int

    @property
    def used_bytes(self) -> int:
        """total - free - buffers - cached - sreclaimable, as free(1) and ServiceRadar count it."""
        return max(
            0,
            self.total_bytes - self.free_bytes - self.buffers_bytes - self.cached_bytes - self.sreclaimable_bytes,
        )


# The keys MemInfo is made of; the file has about 55, whose values are not looked at.
_KEYS = frozenset({"MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SReclaimable", "SwapTotal", "SwapFree"})


def parse_meminfo(text: str, path: str = "/proc/meminfo") -> MemInfo:
    """Every line must be ``Key: value``; only the values of the keys MemInfo holds are parsed and checked."""
    values: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        key, sep, rest = line.partition(":")
        if not sep:
            raise SourceError(path, f"line has no ':': {line[:60]!r}", lineno)
        if key not in _KEYS:
            continue
        parts = rest.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1] != "kB"):
            raise SourceError(path, f"{key}: unexpected value {rest.strip()!r}", lineno)
        if not _NUMBER.match(parts[0]) or int(parts[0]) > _U64_MAX:
            raise SourceError(path, f"{key[:40]}: {parts[0][:40]!r} is not an unsigned 64-bit integer", lineno)
        number = int(parts[0])
        values[key] = number * 1024 if len(parts) == 2 else number

    def need(key: str) -> int:
        if key not in values:
            raise SourceError(path, f"{key} is missing")
        return values[key]

    return MemInfo(
        total_bytes=need("MemTotal"),
        free_bytes=need("MemFree"),
        available_bytes=values.get("MemAvailable"),
        buffers_bytes=need("Buffers"),
        cached_bytes=need("Cached"),
        sreclaimable_bytes=values.get("SReclaimable", 0),
        swap_total_bytes=values.get("SwapTotal", 0),
        swap_free_bytes=values.get("SwapFree", 0),
    )


def read_meminfo(procfs: Path, held: HeldFiles | None = None) -> MemInfo:
    """``held``: read through its descriptor for the file; printed in one go (fs/proc/meminfo.c, proc_create_single)."""
    path = str(procfs / "meminfo")
    return parse_meminfo(read_small(path) if held is None else held.read(path, short_read_ends=True), path)
