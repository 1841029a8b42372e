"""``--web.*`` and ``--log.*``: where /metrics is served and how the process logs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporter.config.flags import Opt, Section
from exporter.config.values import (
    DEFAULT_PORT,
    duration_in,
    int_in,
    parse_bool,
    parse_choice,
    parse_listen_address,
    parse_path,
)

LOG_LEVELS = ("debug", "info", "warn", "error")


LOG_FORMATS = ("logfmt", "json")


def parse_telemetry_path(text: str) -> str:
    if not text.startswith("/") or text in ("/", "/-/healthy", "/-/ready"):
        raise ValueError(f"{text!r} is not a path of its own; pass one such as /metrics")
    return text


@dataclass(frozen=True)
class WebConfig:
    listen_addresses: tuple[tuple[str, int], ...] = (("", DEFAULT_PORT),)
    config_file: Path | None = None  # exporter-toolkit's web configuration (exporter/config/webfile.py)
    health_without_auth: bool = False
    telemetry_path: str = "/metrics"
    max_requests: int = 40  # 0: unlimited
    disable_exporter_metrics: bool = False
    systemd_socket: bool = False  # serve on the sockets systemd passes instead of listen_addresses
    # Prometheus' own --web.max-connections default; far below the 8192 descriptors the units allow.
    max_connections: int = 512
    read_header_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 60.0

    @property
    def host(self) -> str:
        return self.listen_addresses[0][0]

    @property
    def port(self) -> int:
        return self.listen_addresses[0][1]


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "logfmt"


LISTEN = Opt(
    "web.listen-address",
    parse_listen_address,
    "address for /metrics, / and the health endpoints; repeatable",
    repeatable=True,
    shown=f":{DEFAULT_PORT}",
)
WEB = Section(
    WebConfig,
    listen_addresses=LISTEN,
    systemd_socket=Opt(
        "web.systemd-socket",
        parse_bool,
        "serve on the sockets systemd passes (socket activation) instead of --web.listen-address",
        boolean=True,
    ),
    telemetry_path=Opt("web.telemetry-path", parse_telemetry_path, "path of the metrics"),
    max_requests=Opt("web.max-requests", int_in(0, 1_000_000), "most concurrent scrapes, then 503; 0 is no limit"),
    disable_exporter_metrics=Opt(
        "web.disable-exporter-metrics",
        parse_bool,
        "leave out process_* and sysmon_http_* (the exporter's own process and HTTP metrics)",
        boolean=True,
    ),
    config_file=Opt("web.config.file", parse_path, "exporter-toolkit web configuration: TLS, client certs, basic auth"),
    health_without_auth=Opt(
        "web.health-without-auth", parse_bool, "serve /-/healthy and /-/ready without basic auth", boolean=True
    ),
    max_connections=Opt(
        "web.max-connections",
        int_in(1, 1_000_000),
        "most connections open at once; at the cap the longest-idle one makes room, else a new one is refused",
    ),
    read_header_timeout_seconds=Opt(
        "web.read-header-timeout",
        duration_in(0.1, 300.0),
        "a new connection that has not sent a whole request head by then is closed",
    ),
    idle_timeout_seconds=Opt(
        "web.idle-timeout",
        duration_in(0.1, 3600.0),
        "a connection waiting this long for its next request is closed",
    ),
)
LOG = Section(
    LogConfig,
    level=Opt("log.level", parse_choice(LOG_LEVELS), "one of " + ", ".join(LOG_LEVELS)),
    format=Opt("log.format", parse_choice(LOG_FORMATS), "logfmt or json (one object a line)"),
)
