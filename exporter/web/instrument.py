"""The exporter's own HTTP metrics and ``--web.max-requests``, as promhttp gives Go exporters.

``sysmon_http_requests_total{handler,code}``, ``sysmon_http_requests_in_flight``
and ``sysmon_http_request_duration_seconds{handler}`` count every request,
401s and 503s included (this middleware is the outermost). ``handler`` is the
route's path, or ``other`` for paths without a route, so its values are bounded.
They are read when the sampler renders, so a scrape shows them as of the last
sample. A request is in flight from its arrival until its response is sent.

Beyond ``max_requests`` concurrent requests to the telemetry path a request
gets 503 at once and counts in ``sysmon_http_requests_limited_total``, as
node_exporter's ``--web.max-requests`` does through promhttp.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from exporter.web.auth import Handler, Middleware

# promhttp's and prometheus-client's default buckets (Go's prometheus.DefBuckets), in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """Counts kept by the event loop, read by the sampler's thread through ``collect`` (a registry collector).

    Written without ``_created`` series, as promhttp writes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._buckets: dict[str, list[int]] = {}  # handler -> count per bucket (not cumulative), +Inf last
        self._sums: dict[str, float] = {}
        self.in_flight = 0
        self.limited = 0

    def observe(self, handler: str, code: int, seconds: float) -> None:
        with self._lock:
            key = (handler, str(code))
            self._requests[key] = self._requests.get(key, 0) + 1
            counts = self._buckets.setdefault(handler, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self._sums[handler] = self._sums.get(handler, 0.0) + seconds

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            requests = dict(self._requests)
            buckets = {h: list(c) for h, c in self._buckets.items()}
            sums = dict(self._sums)
            in_flight, limited = self.in_flight, self.limited
        total = CounterMetricFamily(
            "sysmon_http_requests_total",
            "HTTP requests served by the exporter, by handler and status code.",
            labels=["handler", "code"],
        )
        for (handler, code), n in sorted(requests.items()):
            total.add_metric([handler, code], n)
        yield total
        yield GaugeMetricFamily("sysmon_http_requests_in_flight", "HTTP requests being served right now.", in_flight)
        duration = HistogramMetricFamily(
            "sysmon_http_request_duration_seconds",
            "Time from a request's arrival until its response was sent, by handler.",
            labels=["handler"],
        )
        for handler, counts in sorted(buckets.items()):
            cumulative = list(itertools.accumulate(counts))
            bounds = [str(b) for b in BUCKETS] + ["+Inf"]  # le as Go writes it: 0.005, 1.0, +Inf
            duration.add_metric([handler], list(zip(bounds, cumulative, strict=True)), sums[handler])
        yield duration
        yield CounterMetricFamily(
            "sysmon_http_requests_limited_total",
            "Requests to the telemetry path refused with 503 because --web.max-requests were in flight.",
            limited,
        )


# What to run once the response is sent (the limiter's slot release): the outermost middleware sends it.
AFTER_SENT = web.RequestKey("sysmon_after_sent", list)


def middleware(metrics: HttpMetrics, clock: Callable[[], float] = time.perf_counter) -> Middleware:
    """The outermost middleware: counts every request, 401s from the web configuration included, and sends
    the response itself, so that a request stays in flight until a slow reader has it."""

    @web.middleware
    async def instrument(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        name = resource.canonical if resource is not None else "other"
        start = clock()
        code = 500
        metrics.in_flight += 1
        request[AFTER_SENT] = []
        try:
            try:
                response = await handler(request)
            except web.HTTPException as e:
                code = e.status
                raise
            code = response.status
            if not response.prepared:
                await response.prepare(request)
                await response.write_eof()
            return response
        finally:
            for done in request[AFTER_SENT]:
                done()
            metrics.in_flight -= 1
            metrics.observe(name, code, clock() - start)

    return instrument


def limiter(metrics: HttpMetrics, telemetry_path: str, max_requests: int) -> Middleware:
    """``--web.max-requests`` on the telemetry path, inside authentication (as promhttp's limit sits inside
    exporter-toolkit's handler), so requests that fail to authenticate take no slot. A slot is held until
    the outermost middleware has sent the response."""
    scrapes = 0

    def release() -> None:
        nonlocal scrapes
        scrapes -= 1

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal scrapes
        if request.path != telemetry_path or max_requests == 0:
            return await handler(request)
        if scrapes >= max_requests:
            metrics.limited += 1
            return web.Response(status=503, text=f"more than {max_requests} scrapes in flight (--web.max-requests)\n")
        scrapes += 1
        request[AFTER_SENT].append(release)
        return await handler(request)

    return limit
