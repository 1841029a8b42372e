"""The aiohttp application: /metrics, /, /-/healthy, /-/ready.

Handlers only read what the sampler published; no file I/O and no rendering
happens on the scrape path (gzip aside, done once per sample on first demand).
"""

from __future__ import annotations

import html
import re
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


_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")


def _ranked(header: str) -> list[tuple[str, float]]:
    """(lower-cased token, q) for each element of an Accept or Accept-Encoding header (RFC 9110 12.4.2).

    An element whose q is not a valid qvalue is left out: it accepts nothing.
    """
    out: list[tuple[str, float]] = []
    for element in header.split(","):
        token, *params = (p.strip() for p in element.split(";"))
        if not token:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                q = float(value) if _QVALUE.match(value) else -1.0
        if q >= 0:
            out.append((token.lower(), q))
    return out


def _weight(ranked: list[tuple[str, float]], exact: str, *wildcards: str) -> tuple[float, int]:
    """q of the most specific element matching ``exact`` (then each wildcard), and how specific it was."""
    for specificity, name in enumerate((exact, *wildcards)):
        qs = [q for token, q in ranked if token == name]
        if qs:
            return max(qs), len(wildcards) - specificity + 1
    return 0.0, 0


def wants_openmetrics(accept: str) -> bool:
    """OpenMetrics when the client weighs it above text 0.0.4, or equal and more specifically named."""
    ranked = _ranked(accept)
    om = _weight(ranked, "application/openmetrics-text", "application/*", "*/*")
    text = _weight(ranked, "text/plain", "text/*", "*/*")
    return om[0] > 0 and om > text


def wants_gzip(accept_encoding: str) -> bool:
    """gzip when named with q > 0 and not weighed below an identity (or ``*``) the client names."""
    ranked = _ranked(accept_encoding)
    gzip_q = max((q for token, q in ranked if token in ("gzip", "x-gzip")), default=0.0)
    identity_q, named = _weight(ranked, "identity", "*")
    return gzip_q > 0 and (not named or gzip_q >= identity_q)


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
