"""The aiohttp application: /metrics, /, /-/healthy, /-/ready, and the listener that bounds its connections.

Handlers only read what the sampler published; no file I/O happens on the
scrape path. The first scrape of a snapshot has it rendered (on the sampler's
worker) and gzipped; the scrapes after it reuse those bytes.

A client cannot exhaust the process's descriptors: a new connection must send
its first request head within ``--web.read-header-timeout``, a kept-alive one
is closed after ``--web.idle-timeout`` without a request, and at most
``--web.max-connections`` are open (:class:`Connections`).
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import socket
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from exporter.collector import Exposition
from exporter.snapshot import HTTP_CLOSE_REASONS, HttpConnections, Snapshot

log = logging.getLogger("exporter.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Published:
    """What the HTTP app reads: the sampler's latest snapshot and its rendered bytes."""

    latest: Callable[[], Snapshot | None]
    rendered: Callable[[], Awaitable[Exposition | None]]
    stale: Callable[[], str] = str  # why sampling is stale, "" while it is not


PUBLISHED = web.AppKey("published", Published)
VERSION = web.AppKey("version", str)
TELEMETRY_PATH = web.AppKey("telemetry_path", str)


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
    exposition = await request.app[PUBLISHED].rendered()
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
    path = request.app[TELEMETRY_PATH]
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>sysmon-exporter</title></head><body>"
        f"<h1>sysmon-exporter</h1><p>version {html.escape(request.app[VERSION])}</p>"
        f"<p><a href={html.escape(path.lstrip('/'))}>{html.escape(path)}</a></p>"
        f"<h2>Sources</h2><table>{table}</table></body></html>"
    )
    return web.Response(text=page, content_type="text/html")


def make_app(
    published: Published, version: str, middlewares: Iterable[Any] = (), telemetry_path: str = "/metrics"
) -> web.Application:
    app = web.Application(middlewares=[_first_request, *middlewares])
    app[PUBLISHED] = published
    app[VERSION] = version
    app[TELEMETRY_PATH] = telemetry_path
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/", landing)
    return app


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds on the listener's connections (``--web.max-connections``, ``--web.*-timeout``)."""

    max_connections: int = 512
    read_header_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 60.0


class Connections:
    """The open connections, oldest activity first, and what the exporter closed and why.

    Runs on the event loop only. At the cap a new connection takes the place of
    the connection idle the longest (waiting for a request, none in progress),
    so idle clients cannot lock a scrape out; only when every connection has a
    request in progress is the new one refused.
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._open: OrderedDict[_Connection, None] = OrderedDict()
        self._closed = dict.fromkeys(HTTP_CLOSE_REASONS, 0)
        self._bad_requests = 0

    def view(self) -> HttpConnections:
        return HttpConnections(len(self._open), dict(self._closed), self._bad_requests)

    def admit(self, conn: _Connection) -> bool:
        if len(self._open) >= self.limits.max_connections:
            victim = next((c for c in self._open if c.idle()), None)
            if victim is None:
                self._closed["refused"] += 1
                return False
            self.close(victim, "evicted")
        self._open[conn] = None
        return True

    def touch(self, conn: _Connection) -> None:
        if conn in self._open:
            self._open.move_to_end(conn)

    def close(self, conn: _Connection, reason: str) -> None:
        if conn not in self._open:  # already closed (evicted as its header deadline fell due)
            return
        self._closed[reason] += 1
        self.forget(conn)
        conn.force_close()

    def forget(self, conn: _Connection) -> None:
        self._open.pop(conn, None)

    def bad_request(self) -> None:
        self._bad_requests += 1


class _Connection(RequestHandler):
    """aiohttp's request handler with a header-read deadline, the connection cap, and quiet client errors."""

    def __init__(self, manager: web.Server, connections: Connections, loop: asyncio.AbstractEventLoop) -> None:
        limits = connections.limits
        super().__init__(
            manager,
            loop=loop,
            # aiohttp arms this at connection_made and again after each response: the idle timeout.
            keepalive_timeout=limits.idle_timeout_seconds,
            access_log=None,  # type: ignore[arg-type]  # None turns the access log off, as AppRunner(access_log=None)
            # The exporter takes no request bodies: an unread body is not waited for long.
            lingering_time=limits.read_header_timeout_seconds,
        )
        self._connections = connections
        self._header_timer: asyncio.TimerHandle | None = None
        self._admitted = False
        self._client_error = False

    def idle(self) -> bool:
        # Waiting for the next request with none in progress: the state in which
        # aiohttp's own keep-alive timeout closes a connection (_process_keepalive).
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self._messages

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._connections.admit(self):
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
            return
        self._admitted = True
        super().connection_made(transport)
        self._header_timer = self._loop.call_later(
            self._connections.limits.read_header_timeout_seconds, self._connections.close, self, "header_timeout"
        )

    def data_received(self, data: bytes) -> None:
        self._connections.touch(self)
        super().data_received(data)

    def request_arrived(self) -> None:
        """Called once the first request's head is in: the header-read deadline no longer applies."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self.request_arrived()
        self._connections.forget(self)
        super().connection_lost(exc)

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        # 4xx: a malformed request (bad request line, oversized header, ...) is the client's
        # error; counted, and logged at debug instead of aiohttp's ERROR with a traceback.
        self._client_error = status < 500
        if self._client_error:
            self._connections.bad_request()
        try:
            return super().handle_error(request, status, exc, message)
        finally:
            self._client_error = False

    def log_exception(self, *args: Any, **kw: Any) -> None:
        if self._client_error:
            log.debug(*args, **kw)
        else:
            super().log_exception(*args, **kw)


@web.middleware
async def _first_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    protocol = request.protocol
    if isinstance(protocol, _Connection):
        protocol.request_arrived()
    return await handler(request)


class LimitedSite(web.BaseSite):
    """A TCP site (or a socket systemd passed) whose connections are bounded by :class:`Connections`."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        connections: Connections,
        ssl_context: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host, self._port, self._connections, self._sock = host, port, connections, sock

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host or '*'}:{self._port}"

    @property
    def port(self) -> int:
        assert self._server is not None
        sockets = getattr(self._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1])

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        manager = self._runner.server
        assert isinstance(manager, web.Server)

        def protocol() -> _Connection:
            return _Connection(manager, self._connections, loop)

        if self._sock is not None:
            self._server = await loop.create_server(protocol, sock=self._sock, ssl=self._ssl_context)
        else:
            self._server = await loop.create_server(
                protocol, self._host, self._port, reuse_address=True, ssl=self._ssl_context
            )
