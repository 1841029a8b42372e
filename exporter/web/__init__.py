"""What stands around the HTTP handlers of exporter/http.py: the listeners, ``--web.config.file`` (TLS,
client certificates, basic auth, headers) and the exporter's own HTTP metrics. Kept apart from the handlers
and from the catalogue of sources."""

from __future__ import annotations

import errno
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector

from exporter.config.web import WebConfig
from exporter.http import Connections, LimitedSite
from exporter.web import collect as _collect
from exporter.web import instrument as _instrument
from exporter.web.auth import Middleware, middleware
from exporter.web.live import LiveWebFile
from exporter.web.tls import make_reloading

HEALTH_PATHS = frozenset({"/-/healthy", "/-/ready"})


@dataclass(frozen=True)
class FrontDoor:
    ssl_context: ssl.SSLContext | None = None  # None: plain HTTP
    middlewares: tuple[Middleware, ...] = ()

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"


def open_front_door(config: WebConfig) -> FrontDoor:
    """The TLS context and middlewares for ``config``; ConfigError when the web configuration file is bad."""
    if config.config_file is None:
        return FrontDoor()
    live = LiveWebFile(config.config_file)
    tls = make_reloading(live.tls) if live.current().tls is not None else None
    open_paths = HEALTH_PATHS if config.health_without_auth else frozenset()
    return FrontDoor(tls, (middleware(live, open_paths),))


def exporter_registry(config: WebConfig) -> CollectorRegistry:
    """The sampler's registry: with process_* unless --web.disable-exporter-metrics."""
    registry = CollectorRegistry(auto_describe=False)
    if not config.disable_exporter_metrics:
        ProcessCollector(registry=registry)
    return registry


def collect_filter(config: WebConfig) -> Middleware:
    """The innermost middleware: collect[] on the telemetry path, cut from the cached exposition."""
    return _collect.middleware(config.telemetry_path)


def instrument(config: WebConfig, registry: CollectorRegistry) -> tuple[Middleware, Middleware]:
    """sysmon_http_* (registered unless disabled): the outermost middleware; and --web.max-requests, to go
    inside the web configuration's."""
    metrics = _instrument.HttpMetrics()
    if not config.disable_exporter_metrics:
        registry.register(metrics)
    return (
        _instrument.middleware(metrics),
        _instrument.limiter(metrics, config.telemetry_path, config.max_requests),
    )


SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): the first passed descriptor


def systemd_sockets(environ: Mapping[str, str], pid: int) -> list[socket.socket]:
    """The listening sockets systemd passed, as sd_listen_fds(3) finds them; OSError when there are none."""
    if environ.get("LISTEN_PID") != str(pid) or not environ.get("LISTEN_FDS", "").isdigit():
        raise OSError(
            errno.ENOENT,
            "--web.systemd-socket: no socket activation file descriptors found; start it from a .socket unit "
            "(deploy/sysmon-exporter.socket) or leave the flag out",
        )
    try:
        return [socket.socket(fileno=SD_LISTEN_FDS_START + i) for i in range(int(environ["LISTEN_FDS"]))]
    except OSError as e:
        raise OSError(e.errno, f"--web.systemd-socket: a passed descriptor is not a socket ({e.strerror})") from None


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host or '*'}:{port}"


def describe_listeners(config: WebConfig, scheme: str) -> str:
    if config.systemd_socket:
        return f"{scheme} on the systemd sockets"
    return ", ".join(f"{scheme}://{_shown(h, p)}" for h, p in config.listen_addresses)


async def start_sites(
    runner: web.AppRunner,
    config: WebConfig,
    ssl_context: ssl.SSLContext | None,
    connections: Connections,
    environ: Mapping[str, str] = os.environ,
) -> list[web.BaseSite]:
    """One site per --web.listen-address, or per systemd socket; OSError says what failed and the fix."""
    sites: list[web.BaseSite] = []
    if config.systemd_socket:
        for sock in systemd_sockets(environ, os.getpid()):
            site = LimitedSite(runner, None, 0, connections, ssl_context, sock)
            await site.start()
            sites.append(site)
        return sites
    for host, port in config.listen_addresses:
        tcp = LimitedSite(runner, host or None, port, connections, ssl_context)
        try:
            await tcp.start()
        except OSError as e:
            raise OSError(
                e.errno, f"--web.listen-address: cannot listen on {_shown(host, port)}: {e.strerror}; pick a free port"
            ) from None
        sites.append(tcp)
    return sites
