"""``--web.*`` and ``--log.*``: where /metrics is served and how the process logs."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config.flags import Opt, Section
from exporter.config.values import DEFAULT_PORT, duration_in, int_in, parse_choice, parse_listen_address

LOG_LEVELS = ("debug", "info", "warn", "error")


@dataclass(frozen=True)
class WebConfig:
    listen_address: tuple[str, int] = ("", DEFAULT_PORT)
    # Prometheus' own --web.max-connections default; far below the 8192 descriptors the units allow.
    max_connections: int = 512
    read_header_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 60.0

    @property
    def host(self) -> str:
        return self.listen_address[0]

    @property
    def port(self) -> int:
        return self.listen_address[1]


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"


LISTEN = Opt("web.listen-address", parse_listen_address, "address for /metrics, / and the health endpoints")
WEB = Section(
    WebConfig,
    listen_address=LISTEN,
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
LOG = Section(LogConfig, level=Opt("log.level", parse_choice(LOG_LEVELS), "one of " + ", ".join(LOG_LEVELS)))
