"""What stands around the HTTP handlers of exporter/http.py: the listeners, ``--web.config.file`` (TLS,
client certificates, basic auth, headers) and the exporter's own HTTP metrics. Kept apart from the handlers
and from the catalogue of sources."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector

from exporter.config.web import WebConfig
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


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host or '*'}:{port}"


def describe_listeners(addresses: Sequence[tuple[str, int]], scheme: str) -> str:
    return ", ".join(f"{scheme}://{_shown(h, p)}" for h, p in addresses)


async def start_sites(
    runner: web.AppRunner, addresses: Sequence[tuple[str, int]], ssl_context: ssl.SSLContext | None
) -> list[web.TCPSite]:
    """One site per --web.listen-address; OSError names the address that failed."""
    sites = []
    for host, port in addresses:
        site = web.TCPSite(runner, host or None, port, reuse_address=True, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as e:
            raise OSError(e.errno, f"cannot listen on {_shown(host, port)}: {e.strerror}") from None
        sites.append(site)
    return sites
