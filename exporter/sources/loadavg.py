"""/proc/loadavg (Documentation/filesystems/proc.rst, "1.2 Kernel data": loadavg).

``0.20 0.18 0.12 1/80 11206``: the load averages over 1, 5 and 15 minutes
(runnable plus uninterruptible tasks, fs/proc/loadavg.c), then running/total
scheduling entities and the last pid; only the averages are read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import HeldFiles, SourceError, read_small


@dataclass(frozen=True)
class LoadAvg:
    load1: float
    load5: float
    load15: float


def parse_loadavg(text: str, path: str = "/proc/loadavg") -> LoadAvg:
    fields = text.split()
    if len(fields) < 3:
        raise SourceError(path, f"expected 3 load averages, got {text[:60]!r}")
    try:
        values = [float(f) for f in fields[:3]]
    except ValueError:
        raise SourceError(path, f"load averages are not numbers: {text[:60]!r}") from None
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise SourceError(path, f"load averages out of range: {text[:60]!r}")
    return LoadAvg(*values)


def read_loadavg(procfs: Path, held: HeldFiles | None = None) -> LoadAvg:
    """``held``: read through its descriptor for the file; printed in one go (fs/proc/loadavg.c, proc_create_single)."""
    path = str(procfs / "loadavg")
    return parse_loadavg(read_small(path) if held is None else held.read(path, short_read_ends=True), path)
