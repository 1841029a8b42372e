"""Syscall families from a Snapshot (eBPF counters on sys_enter)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from exporter.snapshot import Snapshot


def collect_syscalls(snap: Snapshot) -> Iterator[Metric]:
    """sysmon_syscalls_total{syscall="read"} 1234 (for every syscall seen since the counters were attached)."""
    if not snap.syscalls:
        return
    family = CounterMetricFamily(
        "sysmon_syscalls_total",
        "System calls entered by the selected processes since the exporter attached its counters.",
        labels=["syscall"],
    )
    for name, count in snap.syscalls.items():
        family.add_metric([name], count)
    yield family
