"""``--guest.*``: the host's ingest of guest agents, and the agent's channel addresses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from exporter.catalogue import HOST_STATE
from exporter.config.flags import ConfigError, Opt, Section
from exporter.config.values import bytes_in, duration_in, int_in, parse_choice, parse_pattern, positive_float

HOST_CID = 2  # VMADDR_CID_HOST, vsock(7)
VMADDR_CID_ANY = 0xFFFFFFFF
RECORD_FORMATS = ("jsonl", "cloudevents")


@dataclass(frozen=True)
class Address:
    """A guest channel end: ``virtio:[PATH]``, ``vsock:CID:PORT`` or ``unix:PATH``."""

    kind: str  # "virtio" | "vsock" | "unix"
    path: Path | None = None
    cid: int = HOST_CID
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "vsock":
            return f"vsock:{self.cid}:{self.port}"
        return f"{self.kind}:{self.path or ''}"


def _vsock_port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**32:
        raise ValueError(f"{text!r} is not a vsock port (1..4294967295)")
    return int(text)


def parse_agent_channel(text: str) -> Address:
    """``virtio:[PATH]``, ``vsock:[CID:]PORT`` (host CID 2 by default) or ``unix:PATH``."""
    kind, sep, rest = text.partition(":")
    if kind == "virtio" and sep:
        return Address("virtio", Path(rest) if rest else None)
    if kind == "unix" and rest:
        return Address("unix", Path(rest))
    if kind == "vsock" and rest:
        cid, sep2, port = rest.rpartition(":")
        if sep2 and not cid.isdigit():
            raise ValueError(f"{text!r}: {cid!r} is not a context id; pass vsock:CID:PORT, e.g. vsock:2:9477")
        return Address("vsock", cid=int(cid) if sep2 else HOST_CID, port=_vsock_port(port))
    raise ValueError(f"{text!r} is not virtio:[PATH], vsock:[CID:]PORT or unix:PATH")


def parse_guest_listen(text: str) -> Address:
    """``unix:PATH`` or ``vsock:PORT`` (any local CID)."""
    kind, _, rest = text.partition(":")
    if kind == "unix" and rest:
        return Address("unix", Path(rest))
    if kind == "vsock" and rest:
        return Address("vsock", cid=VMADDR_CID_ANY, port=_vsock_port(rest))
    raise ValueError(f"{text!r} is not unix:PATH or vsock:PORT")


@dataclass(frozen=True)
class GuestConfig:
    patterns: tuple[str, ...] = ()
    listens: tuple[Address, ...] = ()
    max_line_bytes: int = 65536
    max_vms: int = 256
    rate_limit: float = 10.0
    rate_burst: int = 256
    silent_seconds: float = 15.0
    rescan_seconds: float = 5.0
    record_dir: Path | None = None
    record_max_bytes: int = 64 << 20
    sign_key: Path | None = None
    record_format: str = "jsonl"

    @property
    def enabled(self) -> bool:
        return bool(self.patterns or self.listens)

    def check(self) -> None:
        if self.record_dir is not None and not self.enabled:
            raise ConfigError("--guest.record", "records nothing without --guest.socket or --guest.listen")
        if self.sign_key is not None and self.record_dir is None:
            raise ConfigError("--guest.record.sign-key", "signs recorded lines; pass --guest.record=DIR as well")
        if self.record_format != "jsonl" and self.record_dir is None:
            raise ConfigError(
                "--guest.record.format", "is the format of --guest.record; pass --guest.record=DIR as well"
            )
        if self.record_dir is not None and not self.record_dir.is_dir():
            raise ConfigError("--guest.record", f"{self.record_dir} is not a directory; create it first")


GUEST = Section(
    GuestConfig,
    patterns=Opt(
        "guest.socket",
        parse_pattern,
        "QEMU chardev socket of a guest's agent port; {vm} names the VM (repeatable)",
        repeatable=True,
    ),
    listens=Opt(
        "guest.listen",
        parse_guest_listen,
        "unix:PATH or vsock:PORT for agents to connect to (repeatable)",
        repeatable=True,
    ),
    max_line_bytes=Opt("guest.max-line-bytes", int_in(1024, 16 << 20), "longer guest lines are discarded"),
    max_vms=Opt("guest.max-vms", int_in(1, 100_000), "most VMs tracked at once"),
    rate_limit=Opt("guest.rate-limit", positive_float, "rows per second accepted from one VM"),
    rate_burst=Opt(
        "guest.rate-burst",
        int_in(1, 1_000_000),
        "rows one VM may send at once (an agent's backlog after a reconnect; the agent queues 120 by default)",
    ),
    silent_seconds=Opt(
        "guest.silent-window", duration_in(0.05, 3600.0), "a connection silent this long counts silent_window"
    ),
    rescan_seconds=Opt(
        "guest.rescan-interval", duration_in(0.05, 60.0), "how often --guest.socket is re-globbed and retried"
    ),
    record_dir=Opt("guest.record", Path, "append every guest row to DIR/<vm>.jsonl"),
    record_max_bytes=Opt("guest.record.max-bytes", bytes_in(4096, 1 << 40), "rotate a record file at this size"),
    sign_key=Opt("guest.record.sign-key", Path, "Ed25519 PEM private key that signs each recorded line"),
    record_format=Opt(
        "guest.record.format",
        parse_choice(RECORD_FORMATS),
        "jsonl (rows as host-stamped JSON lines) or cloudevents (one CloudEvents 1.0 JSON event a line)",
    ),
)


@dataclass(frozen=True)
class AgentChannelConfig:
    channel: Address = Address("virtio")
    interval_seconds: float = 5.0
    queue_size: int = 120
    host_state: Path = HOST_STATE


AGENT_CHANNEL = Section(
    AgentChannelConfig,
    channel=Opt("agent.channel", parse_agent_channel, "virtio:[PATH], vsock:[CID:]PORT or unix:PATH"),
    interval_seconds=Opt("agent.interval", duration_in(0.05, 3600.0), "how often the guest is sampled"),
    queue_size=Opt("agent.queue-size", int_in(1, 100_000), "rows kept while the host is not reading"),
    host_state=Opt("agent.host-state", Path, "file that keeps the host's latest line (its view of this VM's vCPUs)"),
)
