"""The aiohttp application: /metrics, /, /-/healthy, /-/ready.

Handlers only read what the sampler published; no file I/O and no rendering
happens on the scrape path (gzip aside, done once per sample on first demand).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from exporter.collector import Exposition
from exporter.snapshot import Snapshot


@dataclass(frozen=True)
class Published:
    """What the HTTP app reads: the sampler's latest snapshot and its rendered bytes."""

    latest: Callable[[], Snapshot | None]
    rendered: Callable[[], Exposition | None]
    stale: Callable[[], str] = str  # why sampling is stale, "" while it is not


PUBLISHED = web.AppKey("published", Published)
VERSION = web.AppKey("version", str)


def wants_openmetrics(accept: str) -> bool:
    for part in accept.split(","):
        media, _, params = part.partition(";")
        if media.strip() != "application/openmetrics-text":
            continue
        q = [p.strip()[2:] for p in params.split(";") if p.strip().startswith("q=")]
        try:
            if q and float(q[0]) == 0:
                continue
        except ValueError:
            continue
        return True
    return False


def wants_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        coding, _, params = part.partition(";")
        if coding.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


async def metrics(request: web.Request) -> web.Response:
    exposition = request.app[PUBLISHED].rendered()
    if exposition is None:
        return web.Response(status=503, text="no sample taken yet\n")
    gzipped = wants_gzip(request.headers.get("Accept-Encoding", ""))
    body, content_type = exposition.body(wants_openmetrics(request.headers.get("Accept", "")), gzipped)
    headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers)


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


async def ready(request: web.Request) -> web.Response:
    published = request.app[PUBLISHED]
    if published.latest() is None:
        return web.Response(status=503, text="waiting for the first sample\n")
    stale = published.stale()
    if stale:
        return web.Response(status=503, text=f"sampling is stale: {stale}\n")
    return web.Response(text="OK\n")


async def landing(request: web.Request) -> web.Response:
    snap = request.app[PUBLISHED].latest()
    rows = []
    if snap is not None:
        for name, status in snap.statuses.items():
            state = "ok" if status.success else "failed: " + status.error
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(state)}</td></tr>")
    table = "".join(rows) or "<tr><td colspan=2>waiting for the first sample</td></tr>"
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>sysmon-exporter</title></head><body>"
        f"<h1>sysmon-exporter</h1><p>version {html.escape(request.app[VERSION])}</p>"
        f"<p><a href=metrics>/metrics</a></p><h2>Sources</h2><table>{table}</table></body></html>"
    )
    return web.Response(text=page, content_type="text/html")


def make_app(published: Published, version: str) -> web.Application:
    app = web.Application()
    app[PUBLISHED] = published
    app[VERSION] = version
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/", landing)
    return app
