"""``--web.*`` and ``--log.*``: where /metrics is served and how the process logs."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config.flags import Opt, Section
from exporter.config.values import DEFAULT_PORT, parse_choice, parse_listen_address

LOG_LEVELS = ("debug", "info", "warn", "error")


@dataclass(frozen=True)
class WebConfig:
    listen_address: tuple[str, int] = ("", DEFAULT_PORT)

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
WEB = Section(WebConfig, listen_address=LISTEN)
LOG = Section(LogConfig, level=Opt("log.level", parse_choice(LOG_LEVELS), "one of " + ", ".join(LOG_LEVELS)))
