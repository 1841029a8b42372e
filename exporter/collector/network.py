"""Network interface counters from a Snapshot (/proc/net/dev), named as node_exporter's netdev collector names them.

node_exporter's ``node_network_<receive|transmit>_<column>_total{device}`` become
``sysmon_network_..._total{device}``, one family per /proc/net/dev column, every
interface included (lo, bridges and veths too, as node_exporter exports them
by default); only the ServiceRadar payload leaves out loopback and virtual
interfaces, as ServiceRadar's own sysmon does.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from exporter.snapshot import Snapshot

# (family, /proc/net/dev direction, column, help)
FAMILIES = (
    ("sysmon_network_receive_bytes_total", "receive", "bytes", "Bytes received"),
    ("sysmon_network_receive_packets_total", "receive", "packets", "Packets received"),
    ("sysmon_network_receive_errs_total", "receive", "errs", "Receive errors"),
    ("sysmon_network_receive_drop_total", "receive", "drop", "Received packets dropped"),
    ("sysmon_network_receive_fifo_total", "receive", "fifo", "Receive FIFO overruns"),
    ("sysmon_network_receive_frame_total", "receive", "frame", "Receive framing errors"),
    ("sysmon_network_receive_compressed_total", "receive", "compressed", "Compressed packets received"),
    ("sysmon_network_receive_multicast_total", "receive", "multicast", "Multicast packets received"),
    ("sysmon_network_transmit_bytes_total", "transmit", "bytes", "Bytes sent"),
    ("sysmon_network_transmit_packets_total", "transmit", "packets", "Packets sent"),
    ("sysmon_network_transmit_errs_total", "transmit", "errs", "Transmit errors"),
    ("sysmon_network_transmit_drop_total", "transmit", "drop", "Packets dropped on transmit"),
    ("sysmon_network_transmit_fifo_total", "transmit", "fifo", "Transmit FIFO underruns"),
    ("sysmon_network_transmit_colls_total", "transmit", "colls", "Collisions on transmit"),
    ("sysmon_network_transmit_carrier_total", "transmit", "carrier", "Carrier losses on transmit"),
    ("sysmon_network_transmit_compressed_total", "transmit", "compressed", "Compressed packets sent"),
)


def collect_network(snap: Snapshot) -> Iterator[Metric]:
    """sysmon_network_receive_bytes_total{device="eth0"} 1.5e9 (and packets, errs, drop, ... per direction)."""
    if not snap.network:
        return
    for name, direction, column, help_text in FAMILIES:
        family = CounterMetricFamily(name, f"{help_text} (/proc/net/dev {direction} {column}).", labels=["device"])
        for device, counters in snap.network.items():
            family.add_metric([device], getattr(counters, direction)[column])
        yield family
