"""The exporter's own HTTP metrics and --web.max-requests, on a real aiohttp app."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.config import load
from exporter.http import Published, make_app
from exporter.web import exporter_registry, instrument
from tests.helpers import nothing_rendered, parse_exposition, run_exporter, wait_until


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_requests_are_counted_by_handler_and_code(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    web_config = load([], {}).web
    app = make_app(Published(lambda: None, nothing_rendered), "test", instrument(web_config, registry))
    client = await aiohttp_client(app)
    for _ in range(3):
        assert (await client.get("/-/healthy")).status == 200
    assert (await client.get("/metrics")).status == 503  # no sample yet
    assert (await client.get("/secret/123")).status == 404
    assert sample(registry, "sysmon_http_requests_total", handler="/-/healthy", code="200") == 3
    assert sample(registry, "sysmon_http_requests_total", handler="/metrics", code="503") == 1
    assert sample(registry, "sysmon_http_requests_total", handler="other", code="404") == 1
    assert sample(registry, "sysmon_http_request_duration_seconds_count", handler="/-/healthy") == 3
    assert sample(registry, "sysmon_http_requests_in_flight") == 0
    assert sample(registry, "sysmon_http_requests_limited_total") == 0


async def test_max_requests_refuses_with_503_and_counts(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    web_config = load(["--web.max-requests=2", "--web.telemetry-path=/stats"], {}).web
    release, entered = asyncio.Event(), asyncio.Semaphore(0)

    async def slow(request: web.Request) -> web.Response:
        entered.release()
        await release.wait()
        return web.Response(text="ok")

    app = web.Application(middlewares=instrument(web_config, registry))
    app.router.add_get("/stats", slow)
    app.router.add_get("/other", slow)
    client = await aiohttp_client(app)
    held = [asyncio.create_task(client.get("/stats")) for _ in range(2)]
    for _ in held:
        await entered.acquire()
    assert sample(registry, "sysmon_http_requests_in_flight") == 2
    refused = [await client.get("/stats") for _ in range(3)]
    assert [r.status for r in refused] == [503, 503, 503]
    other = asyncio.create_task(client.get("/other"))  # other paths are not limited
    await entered.acquire()
    release.set()
    assert [(await t).status for t in [*held, other]] == [200, 200, 200]
    assert sample(registry, "sysmon_http_requests_limited_total") == 3
    assert sample(registry, "sysmon_http_requests_total", handler="/stats", code="503") == 3
    assert sample(registry, "sysmon_http_requests_total", handler="/stats", code="200") == 2
    unlimited = load(["--web.max-requests=0"], {}).web
    assert unlimited.max_requests == 0


async def test_telemetry_path(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    app = make_app(Published(lambda: None, nothing_rendered), "test", (), "/stats")
    client = await aiohttp_client(app)
    assert (await client.get("/stats")).status == 503  # served there (no sample yet) ...
    assert (await client.get("/metrics")).status == 404  # ... and not here
    assert "href=stats" in await (await client.get("/")).text()


def test_disable_exporter_metrics_leaves_out_process_and_http(tmp_path: Path) -> None:
    assert exporter_registry(load([], {}).web).get_sample_value("process_cpu_seconds_total") is not None
    with run_exporter(["--no-collector.cgroup"], tmp_path) as exp:
        # run_exporter's readiness probe answered 200 before this; a sample rendered since then counts it
        # (an earlier one may hold only the 503s it got while the first sample was being taken).
        wait_until(
            lambda: 'sysmon_http_requests_total{handler="/-/ready",code="200"}' in exp.metrics(),
            what="the HTTP metrics rendered",
        )
        names = parse_exposition(exp.metrics())
        assert "process_resident_memory_bytes" in names
        assert names["sysmon_http_requests_total"][(("code", "200"), ("handler", "/-/ready"))] >= 1
    with run_exporter(["--no-collector.cgroup", "--web.disable-exporter-metrics"], tmp_path) as exp:
        text = exp.metrics()
        assert "sysmon_cpu_seconds_total" in text
        assert "process_" not in text and "sysmon_http_" not in text
