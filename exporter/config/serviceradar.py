"""``--serviceradar.*``: push to ServiceRadar's agent gateway (``monitoring.AgentGatewayService``) as its agent does.

The certificate files are looked up under the names ServiceRadar installs them
with: the agent's deb/rpm package (``agent.pem``, ``agent-key.pem``,
``root.pem``) or an edge-onboarding bundle (``component.pem``,
``component-key.pem``, ``ca-chain.pem``). The agent id and partition come from
the certificate's CN (read at start-up by exporter/grpc_compat/identity.py),
or from the flags where there is no certificate.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.config.flags import ConfigError, Opt, Section
from exporter.config.values import int_in

GATEWAY_OPTION = "--serviceradar.gateway"
CERT_DIR_OPTION = "--serviceradar.cert-dir"
AGENT_ID_OPTION = "--serviceradar.agent-id"
PARTITION_OPTION = "--serviceradar.partition"
# (certificate, key, CA) as each ServiceRadar install names them, first match wins.
CERT_NAMES = (
    ("agent.pem", "agent-key.pem", "root.pem"),  # the agent's deb/rpm (/etc/serviceradar/certs)
    ("component.pem", "component-key.pem", "ca-chain.pem"),  # an edge-onboarding bundle
)
DEFAULT_PARTITION = "default"


def parse_gateway(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; unlike a listen address the host is required."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT; pass the gateway's address, e.g. gateway.example.org:50052")
    return host, int(port)


def _name(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if "." in text:
            raise ValueError(
                f"{text!r} contains '.': the gateway matches it against the certificate CN "
                f"<agent_id>.<partition>.serviceradar, so {what} with a '.' can never match"
            )
        if not text:
            raise ValueError(f"empty {what}")
        return text

    return parse


@dataclass(frozen=True)
class GatewayTls:
    """The client certificate and key, and the CA that signs the gateway's certificate."""

    cert_file: Path
    key_file: Path
    ca_file: Path


@dataclass(frozen=True)
class ServiceRadarConfig:
    host: str
    port: int
    server_name: str  # the name the gateway's certificate must carry
    agent_id: str  # "" with tls: the certificate's CN gives it
    partition: str  # "" with tls: the certificate's CN gives it
    tls: GatewayTls | None  # None: plaintext (a lab gateway; a real one accepts only mTLS)
    buffer_samples: int


def find_cert_files(cert_dir: Path) -> GatewayTls:
    """The first complete set of CERT_NAMES in ``cert_dir``; ConfigError naming both sets if neither is."""
    for names in CERT_NAMES:
        paths = [cert_dir / n for n in names]
        if all(p.is_file() and os.access(p, os.R_OK) for p in paths):
            return GatewayTls(*paths)
    sets = " or ".join(", ".join(names) for names in CERT_NAMES)
    found = sorted(p.name for p in cert_dir.iterdir() if p.suffix == ".pem") if cert_dir.is_dir() else []
    where = f"{cert_dir} has {', '.join(found)}" if found else f"{cert_dir} has no .pem files"
    if not cert_dir.is_dir():
        where = f"{cert_dir} is not a directory"
    raise ConfigError(CERT_DIR_OPTION, f"needs {sets} (readable); {where}")


@dataclass(frozen=True)
class ServiceRadarFlags:
    gateway: tuple[str, int] | None = None
    cert_dir: Path | None = None
    server_name: str = ""
    agent_id: str = ""
    partition: str = ""
    buffer_samples: int = 60  # ServiceRadar's sysmon keeps 60 samples (pkg/sysmon/collector.go NewRingBuffer)

    def resolve(self) -> ServiceRadarConfig | None:
        """The push settings (None: off); ConfigError naming the flag for a bad combination."""
        if self.gateway is None:
            for attr, opt in SERVICERADAR.opts.items():
                if attr not in ("gateway", "buffer_samples") and getattr(self, attr):
                    raise ConfigError(f"--{opt.name}", f"only applies with {GATEWAY_OPTION}; add it")
            return None
        host, port = self.gateway
        tls = find_cert_files(self.cert_dir) if self.cert_dir is not None else None
        if tls is None and not self.agent_id:
            raise ConfigError(
                AGENT_ID_OPTION,
                f"required without {CERT_DIR_OPTION} (with it, the certificate's CN "
                "<agent_id>.<partition>.serviceradar gives it)",
            )
        partition = self.partition or ("" if tls is not None else DEFAULT_PARTITION)
        return ServiceRadarConfig(
            host, port, self.server_name or host, self.agent_id, partition, tls, self.buffer_samples
        )


SERVICERADAR = Section(
    ServiceRadarFlags,
    gateway=Opt(
        "serviceradar.gateway",
        parse_gateway,
        "push to ServiceRadar's agent gateway (monitoring.AgentGatewayService) at HOST:PORT",
    ),
    cert_dir=Opt(
        "serviceradar.cert-dir",
        Path,
        "mTLS: agent.pem, agent-key.pem, root.pem or an edge-onboarding bundle's component.pem, "
        "component-key.pem, ca-chain.pem; without it, plaintext",
    ),
    server_name=Opt(
        "serviceradar.server-name", str, "name the gateway's certificate must carry (default: the gateway host)"
    ),
    agent_id=Opt(
        "serviceradar.agent-id",
        _name("an agent id"),
        "agent id (default: from the certificate CN <agent_id>.<partition>.serviceradar)",
    ),
    partition=Opt(
        "serviceradar.partition",
        _name("a partition"),
        "partition (default: from the certificate CN; without a certificate, default)",
    ),
    buffer_samples=Opt(
        "serviceradar.buffer", int_in(1, 100_000), "samples kept while the gateway is unreachable (oldest dropped)"
    ),
)
