"""The connection to ServiceRadar's agent gateway: channel, TLS, chunks, and what its config means here.

TLS: grpcio cannot bound the TLS version of a client either (grpc/grpc#37305),
so, as for the shim's listener (tls.py), TLS is Python's ssl with
``minimum_version`` TLS 1.3: the gRPC channel speaks plaintext to a unix
socket in a private (0700) directory, and each connection there is carried
to the gateway over TLS, verified against the CA for ``--serviceradar.server-name``
and presenting the client certificate. A handshake that fails is reported
with the ssl module's own reason (wrong CA, wrong name), which grpcio would
reduce to UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace

import grpc

from exporter.config.serviceradar import CERT_DIR_OPTION, GatewayTls, ServiceRadarConfig
from exporter.config.values import format_duration, parse_duration
from exporter.grpc_compat._generated import gateway_pb2, gateway_pb2_grpc
from exporter.grpc_compat.status import SysmonSettings
from exporter.grpc_compat.tls import _pipe, close_server, load_pems

# Bounds ServiceRadar's agent applies (pkg/agent push loop; restated in the README).
HEARTBEAT_BOUNDS = (1, 3600)
CONFIG_POLL_BOUNDS = (30, 86400)
SAMPLE_INTERVAL_BOUNDS = (0.05, 300.0)
DEFAULT_SAMPLE_INTERVAL = 10.0
MAX_MESSAGE_BYTES = 15 * 2**20  # the gateway's limit per message


def client_context(files: GatewayTls) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["h2"])
    load_pems(ctx, files.cert_file, files.key_file, files.ca_file, CERT_DIR_OPTION)
    return ctx


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {e.verify_message}" if e.verify_message else str(e)
    if isinstance(e, ssl.SSLError):
        return e.reason or str(e)
    if isinstance(e, ConnectionResetError | asyncio.IncompleteReadError) and not getattr(e, "strerror", None):
        return "the connection was closed during the handshake (a gateway that does not offer TLS 1.3 does this)"
    if isinstance(e, OSError):
        return e.strerror or str(e) or type(e).__name__
    return str(e) or type(e).__name__


class TlsDialer:
    """A private unix socket; each connection to it is carried to host:port over TLS 1.3."""

    def __init__(self, context: ssl.SSLContext, host: str, port: int, server_name: str) -> None:
        self._context, self._host, self._port, self._server_name = context, host, port, server_name
        self._server: asyncio.Server | None = None
        self._dir: str | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.last_error = ""  # why the last TLS connection failed; cleared by the caller

    async def start(self) -> str:
        self._dir = tempfile.mkdtemp(prefix=f"sysmon-gateway-{os.getpid()}-")  # mode 0700
        path = os.path.join(self._dir, "gateway.sock")
        self._server = await asyncio.start_unix_server(self._handle, path)
        return f"unix:{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._context, server_hostname=self._server_name,
                    ssl_handshake_timeout=10,
                )  # fmt: skip
            except (ssl.SSLError, OSError) as e:
                self.last_error = f"TLS to {self._host}:{self._port} as {self._server_name!r} failed: {_reason(e)}"
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # stop() ends the connection (see tls.TlsTerminator._handle)
        finally:
            self._connections.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            await close_server(self._server, self._connections)
            self._server = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Connection:
    """One channel to the gateway: opened for a session, closed on any RPC error."""

    def __init__(self, config: ServiceRadarConfig, context: ssl.SSLContext | None) -> None:
        self._config = config
        self._dialer = TlsDialer(context, config.host, config.port, config.server_name) if context is not None else None
        self._channel: grpc.aio.Channel | None = None

    @property
    def tls_error(self) -> str:
        return self._dialer.last_error if self._dialer is not None else ""

    async def open(self) -> gateway_pb2_grpc.AgentGatewayServiceStub:
        options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES + 2**20)]
        if self._dialer is None:
            self._channel = grpc.aio.insecure_channel(_target(self._config.host, self._config.port), options=options)
        else:
            self._dialer.last_error = ""
            target = await self._dialer.start()
            authority = _target(self._config.server_name, self._config.port)
            self._channel = grpc.aio.insecure_channel(target, options=[*options, ("grpc.default_authority", authority)])
        return gateway_pb2_grpc.AgentGatewayServiceStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self._dialer is not None:
            await self._dialer.stop()


class TooLarge(ValueError):
    pass


def chunks(
    services: Sequence[gateway_pb2.GatewayServiceStatus], limit: int, **common: object
) -> list[gateway_pb2.GatewayStatusChunk]:
    """Services grouped in order so that each chunk's services stay within ``limit`` bytes; one stream's chunks.

    chunk_index counts from 0, every chunk carries the same total_chunks, the
    last has is_final. A single service above ``limit`` raises TooLarge.
    """
    groups: list[list[gateway_pb2.GatewayServiceStatus]] = []
    size = 0
    for service in services:
        n = service.ByteSize()
        if n > limit:
            raise TooLarge(f"a {service.service_name} status of {n} bytes is above the gateway's {limit}")
        if not groups or size + n > limit:
            groups.append([])
            size = 0
        groups[-1].append(service)
        size += n
    total = len(groups)
    return [
        gateway_pb2.GatewayStatusChunk(
            services=group,
            chunk_index=i,
            total_chunks=total,
            is_final=i == total - 1,
            **common,  # type: ignore[arg-type]
        )
        for i, group in enumerate(groups)
    ]


def clamp_seconds(value: int, bounds: tuple[int, int], current: float) -> float:
    """An interval in whole seconds from the gateway, clamped; 0 (unset) keeps ``current``."""
    if value <= 0:
        return current
    return float(min(bounds[1], max(bounds[0], value)))


@dataclass(frozen=True)
class Applied:
    settings: SysmonSettings
    problem: str = ""  # why the config was not applied (kept the old one)


def apply_sysmon(response: gateway_pb2.AgentConfigResponse, current: SysmonSettings) -> Applied:
    """The SysmonConfig in a GetConfig answer as settings; without one, the current settings stay."""
    if not response.HasField("sysmon_config"):
        return Applied(current)
    sc = response.sysmon_config
    interval = DEFAULT_SAMPLE_INTERVAL
    if sc.sample_interval:
        try:
            interval = parse_duration(sc.sample_interval, bare_seconds=False)  # Go's time.ParseDuration
        except ValueError:
            return Applied(current, f"sample_interval {sc.sample_interval!r} is not a Go duration")
        low, high = SAMPLE_INTERVAL_BOUNDS
        interval = min(high, max(low, interval))
    return Applied(
        replace(
            current,
            enabled=sc.enabled,
            sample_interval_seconds=interval,
            cpu=sc.collect_cpu,
            memory=sc.collect_memory,
            disk=sc.collect_disk,
            network=sc.collect_network,
            processes=sc.collect_processes,
            disk_paths=tuple(sc.disk_paths),
            disk_exclude_paths=tuple(sc.disk_exclude_paths),
        )
    )


def describe_settings(s: SysmonSettings) -> str:
    on = [name for name in ("cpu", "memory", "disk", "network", "processes") if getattr(s, name)]
    return f"every {format_duration(s.sample_interval_seconds)}: {', '.join(on) or 'nothing'}"
