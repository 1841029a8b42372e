"""Syscall families from a Snapshot (eBPF counters on sys_enter)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from exporter.snapshot import Snapshot


def collect_syscalls(snap: Snapshot) -> Iterator[Metric]:
    """sysmon_syscalls_total{syscall="read"} 1234 (with --syscalls.by, a comm or cgroup label too)."""
    if not snap.syscalls:
        return
    by = snap.syscalls_by_label
    family = CounterMetricFamily(
        "sysmon_syscalls_total",
        "System calls entered by the selected processes since the exporter attached its counters.",
        labels=["syscall", by] if by else ["syscall"],
    )
    if by:
        for (value, name), count in snap.syscalls_by.items():
            family.add_metric([name, value], count)
    else:
        for name, count in snap.syscalls.items():
            family.add_metric([name], count)
    yield family
