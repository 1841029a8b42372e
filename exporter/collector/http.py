"""The /metrics listener's own connections, from the snapshot (exporter/http.py Connections fills it)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.snapshot import HTTP_CLOSE_REASONS, Snapshot


def collect_http(snap: Snapshot) -> Iterator[Metric]:
    """sysmon_http_connections_closed_total{reason="evicted"} 3 (and open connections, bad requests)."""
    http = snap.http
    if http is None:
        return
    yield GaugeMetricFamily("sysmon_http_connections", "Connections open to the /metrics listener.", value=http.open)
    closed = CounterMetricFamily(
        "sysmon_http_connections_closed",
        "Connections the exporter closed: refused at --web.max-connections, evicted (the longest idle, to make "
        "room), or header_timeout (no request head within --web.read-header-timeout).",
        labels=["reason"],
    )
    for reason in HTTP_CLOSE_REASONS:
        closed.add_metric([reason], http.closed_total.get(reason, 0))
    yield closed
    yield CounterMetricFamily(
        "sysmon_http_bad_requests",
        "Malformed HTTP requests (answered 4xx and closed; logged at debug).",
        value=http.bad_requests_total,
    )
