"""The flags of the other commands: ``agent`` (inside a guest), ``diag`` and ``verify-record``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from exporter.catalogue import Roots, collector_defaults
from exporter.config.cgroup import AGENT_CGROUP, CgroupConfig
from exporter.config.collectors import Collectors
from exporter.config.flags import FlagSet, Opt, Section
from exporter.config.guest import AGENT_CHANNEL, Address, AgentChannelConfig, parse_agent_channel
from exporter.config.paths import AGENT_PATHS, DIAG_PATHS
from exporter.config.values import DEFAULT_PORT, parse_bool, parse_listen_address
from exporter.config.web import LOG

AGENT_COLLECTORS = Collectors(agent=True)
AGENT = FlagSet("sysmon-exporter agent", (AGENT_CHANNEL, AGENT_PATHS, AGENT_CGROUP, LOG, AGENT_COLLECTORS))


@dataclass(frozen=True)
class AgentConfig:
    agent: AgentChannelConfig = field(default_factory=AgentChannelConfig)
    roots: Roots = field(default_factory=Roots)
    cgroup: CgroupConfig = field(default_factory=lambda: CgroupConfig(max_count=100))
    log_level: str = "info"
    collectors: frozenset[str] = field(
        default_factory=lambda: frozenset(n for n, on in collector_defaults(agent=True).items() if on)
    )


def load_agent(argv: Sequence[str], environ: Mapping[str, str]) -> AgentConfig:
    v = AGENT.parse(argv, environ)
    return AgentConfig(
        AGENT_CHANNEL.build(v),
        AGENT_PATHS.build(v),
        AGENT_CGROUP.build(v),
        LOG.build(v).level,
        AGENT_COLLECTORS.build(v),
    )


@dataclass(frozen=True)
class DiagFlags:
    channel: Address | None = None
    listen_address: tuple[str, int] = ("", DEFAULT_PORT)
    json: bool = False


DIAG_FLAGS = Section(
    DiagFlags,
    channel=Opt("agent.channel", parse_agent_channel, "the agent channel to check (default: look for virtio)"),
    listen_address=Opt("web.listen-address", parse_listen_address, "the exporter port to check"),
    json=Opt("json", parse_bool, "print the checks as JSON", boolean=True),
)
DIAG_COLLECTORS = Collectors(required=True)
DIAG = FlagSet("sysmon-exporter diag", (DIAG_FLAGS, DIAG_PATHS, DIAG_COLLECTORS))


@dataclass(frozen=True)
class DiagConfig:
    flags: DiagFlags
    roots: Roots
    requested: frozenset[str]  # --collector.<name>: must work
    refused: frozenset[str]  # --no-collector.<name>: not checked


def load_diag(argv: Sequence[str], environ: Mapping[str, str]) -> DiagConfig:
    v = DIAG.parse(argv, environ)
    return DiagConfig(DIAG_FLAGS.build(v), DIAG_PATHS.build(v), DIAG_COLLECTORS.build(v), DIAG_COLLECTORS.refused(v))


@dataclass(frozen=True)
class VerifyFlags:
    public_key: Path | None = None


VERIFY_FLAGS = Section(VerifyFlags, public_key=Opt("public-key", Path, "Ed25519 PEM public key"))
VERIFY = FlagSet("sysmon-exporter verify-record", (VERIFY_FLAGS,), positional=("file",))
