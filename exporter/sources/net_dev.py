"""/proc/net/dev: per-interface traffic counters (Documentation/networking/statistics.rst).

Two header lines, then one line per interface in the reader's network
namespace: ``name: <8 receive columns> <8 transmit columns>`` (bytes, packets,
errs, drop, fifo, frame|colls, compressed, multicast|carrier;
net/core/net-procfs.c dev_seq_printf_stats). The name is padded on the left
and, when long, runs into the first number (``veth1234567890:123``), so the
line is split at the last ``:`` of the name field, as node_exporter's procfs
(net_dev.go) does. Counters are 64-bit and restart when an interface is
recreated; they are exported raw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporter.sources import HeldFiles, SourceError, read_small

RECEIVE = ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")
TRANSMIT = ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed")


@dataclass(frozen=True)
class NetDevice:
    """One interface's counters, by /proc/net/dev's column names."""

    receive: dict[str, int]
    transmit: dict[str, int]


def parse_net_dev(text: str, path: str = "/proc/net/dev") -> dict[str, NetDevice]:
    lines = text.splitlines()
    if len(lines) < 2 or "|" not in lines[0] or "|" not in lines[1]:
        raise SourceError(path, "expected two header lines with '|'")
    out: dict[str, NetDevice] = {}
    for lineno, line in enumerate(lines[2:], 3):
        if not line.strip():
            continue
        name, sep, rest = line.rpartition(":")
        name = name.strip()
        if not sep or not name:
            raise SourceError(path, f"no interface name: {line[:60]!r}", lineno)
        fields = rest.split()
        if len(fields) < len(RECEIVE) + len(TRANSMIT):
            raise SourceError(path, f"{name}: {len(fields)} columns, expected 16", lineno)
        try:
            values = [int(f) for f in fields[:16]]
        except ValueError:
            raise SourceError(path, f"{name}: a counter is not an integer", lineno) from None
        out[name] = NetDevice(dict(zip(RECEIVE, values[:8], strict=True)), dict(zip(TRANSMIT, values[8:], strict=True)))
    return out


def read_net_dev(procfs: Path, held: HeldFiles | None = None) -> dict[str, NetDevice]:
    """``held``: read through its descriptor for the file. Printed an interface at a time (dev_seq_ops), so it
    is read until an empty read."""
    path = str(procfs / "net" / "dev")
    return parse_net_dev(read_small(path) if held is None else held.read(path), path)
