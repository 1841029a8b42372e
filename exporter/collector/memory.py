"""Memory and load families from a Snapshot (/proc/meminfo, /proc/loadavg)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from exporter.snapshot import Snapshot


def collect_memory(snap: Snapshot) -> Iterator[Metric]:
    """sysmon_memory_total_bytes 2.5e10 (and available, free, buffers, cached, ...)."""
    mem = snap.memory
    if mem is None:
        return
    for name, help_text, value in (
        ("sysmon_memory_total_bytes", "Usable RAM (MemTotal).", mem.total_bytes),
        ("sysmon_memory_free_bytes", "Unused RAM (MemFree).", mem.free_bytes),
        (
            "sysmon_memory_available_bytes",
            "RAM available for new work without swapping (MemAvailable).",
            mem.available_bytes,
        ),
        ("sysmon_memory_buffers_bytes", "Block device buffers (Buffers).", mem.buffers_bytes),
        ("sysmon_memory_cached_bytes", "Page cache (Cached).", mem.cached_bytes),
        ("sysmon_memory_sreclaimable_bytes", "Reclaimable slab (SReclaimable).", mem.sreclaimable_bytes),
        (
            "sysmon_memory_used_bytes",
            "Used RAM: total - free - buffers - cached - sreclaimable, as free(1) counts it.",
            mem.used_bytes,
        ),
        ("sysmon_memory_swap_total_bytes", "Swap space (SwapTotal).", mem.swap_total_bytes),
        ("sysmon_memory_swap_free_bytes", "Unused swap space (SwapFree).", mem.swap_free_bytes),
    ):
        if value is not None:
            yield GaugeMetricFamily(name, help_text, value=value)


def collect_load(snap: Snapshot) -> Iterator[Metric]:
    """sysmon_load1 0.2 (and sysmon_load5, sysmon_load15): node_exporter's node_load* under our prefix."""
    load = snap.load
    if load is None:
        return
    yield GaugeMetricFamily("sysmon_load1", "Load average over 1 minute (/proc/loadavg).", value=load.load1)
    yield GaugeMetricFamily("sysmon_load5", "Load average over 5 minutes (/proc/loadavg).", value=load.load5)
    yield GaugeMetricFamily("sysmon_load15", "Load average over 15 minutes (/proc/loadavg).", value=load.load15)
