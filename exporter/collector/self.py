"""The exporter's own families: per-source status, the sample time and build info."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.snapshot import Snapshot


def collect_self(snap: Snapshot, version: str) -> Iterator[Metric]:
    """sysmon_source_success{source="cpu"} 1 (and duration, last sample time, build info)."""
    success = GaugeMetricFamily(
        "sysmon_source_success",
        "1 if the source was read and parsed in the last sample, else 0.",
        labels=["source"],
    )
    duration = GaugeMetricFamily(
        "sysmon_source_duration_seconds",
        "Time the source took to read and parse in the last sample.",
        labels=["source"],
    )
    for name, status in snap.statuses.items():
        success.add_metric([name], 1.0 if status.success else 0.0)
        duration.add_metric([name], status.duration_seconds)
    yield success
    yield duration
    if snap.skipped_ticks:
        skipped = CounterMetricFamily(
            "sysmon_sampler_skipped_ticks",
            "Ticks a sampling job skipped because its previous step overran its interval.",
            labels=["job"],
        )
        for job, n in sorted(snap.skipped_ticks.items()):
            skipped.add_metric([job], n)
        yield skipped
    yield GaugeMetricFamily(
        "sysmon_last_sample_timestamp_seconds",
        "Unix time of the sample these values come from (the exporter samples in the background).",
        value=snap.timestamp_seconds,
    )
    build = GaugeMetricFamily("sysmon_build_info", "sysmon-exporter build information.", labels=["version"])
    build.add_metric([version], 1)
    yield build
