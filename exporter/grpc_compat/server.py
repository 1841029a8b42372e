"""The AgentService servicer, the gRPC health service and the listener they share."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from exporter.config import GrpcConfig
from exporter.grpc_compat._generated import monitoring_pb2, monitoring_pb2_grpc
from exporter.grpc_compat.payload import build_payload, unavailable_reason
from exporter.grpc_compat.tls import TlsTerminator, server_context
from exporter.snapshot import Snapshot

log = logging.getLogger("exporter.grpc")

# The private directory of the mTLS front's plaintext upstream socket: <base>/sysmon-grpc-<pid>-<random>.
SOCKET_DIR_PREFIX = "sysmon-grpc-"
_SOCKET_DIR = re.compile(re.escape(SOCKET_DIR_PREFIX) + r"([0-9]+)-")

# The agent checks "" before every poll; the other two are what its configs may name.
HEALTH_SERVICES = ("", "sysmon-vm", "monitoring.AgentService")


def _since(start_ns: int) -> int:
    return time.perf_counter_ns() - start_ns


def _echo(request: monitoring_pb2.StatusRequest | monitoring_pb2.ResultsRequest) -> dict[str, Any]:
    """The request's identity fields, echoed in the response as the agent expects."""
    return {
        "service_name": request.service_name,
        "service_type": request.service_type,
        "agent_id": request.agent_id,
        "poller_id": request.poller_id,
    }


# How often a held call looks at latest() again while the first usage window is being taken.
HOLD_POLL_SECONDS = 0.01


class AgentService(monitoring_pb2_grpc.AgentServiceServicer):
    """Answers from ``latest()`` at once (the Go checker blocks for a sample interval; this does not).

    Right after start there is no usage window yet (it needs two samples). The
    Go checker never answers ``available=false`` for that (each call blocks and
    samples), so calls that arrive before the first complete payload are held
    until it exists, for at most ``hold_seconds`` after start; the payload is
    then whatever the snapshot gives. Once one payload has been complete, no
    call is held again.
    """

    def __init__(self, latest: Callable[[], Snapshot | None], hold_seconds: float = 0.0) -> None:
        self._latest = latest
        self._sequence = itertools.count(1)
        self._hold_until = time.monotonic() + hold_seconds
        self._started = hold_seconds <= 0

    async def _snapshot(self) -> Snapshot | None:
        snap = self._latest()
        while not self._started:
            left = self._hold_until - time.monotonic()
            if not unavailable_reason(snap) or left <= 0:
                self._started = True
                break
            await asyncio.sleep(min(left, HOLD_POLL_SECONDS))
            snap = self._latest()
        return snap

    async def _payload(self, start_ns: int) -> tuple[bool, bytes]:
        snap = await self._snapshot()
        return build_payload(snap, lambda: _since(start_ns))

    async def GetStatus(
        self, request: monitoring_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.StatusResponse:
        start = time.perf_counter_ns()
        available, message = await self._payload(start)
        return monitoring_pb2.StatusResponse(
            available=available, message=message, **_echo(request), response_time=_since(start)
        )

    async def GetResults(
        self, request: monitoring_pb2.ResultsRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.ResultsResponse:
        start = time.perf_counter_ns()
        available, data = await self._payload(start)
        return monitoring_pb2.ResultsResponse(
            available=available,
            data=data,
            **_echo(request),
            timestamp=time.time_ns(),
            current_sequence=str(next(self._sequence)),
            has_new_data=True,
            response_time=_since(start),
        )

    async def StreamResults(
        self, request: monitoring_pb2.ResultsRequest, context: grpc.aio.ServicerContext
    ) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "sysmon results fit one message; use GetResults")


def _address(host: str, port: int) -> str:
    if not host:
        return f"[::]:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    """A running AgentService + Health server; ``port`` is the bound TCP port."""

    def __init__(self, server: grpc.aio.Server, port: int, tls: TlsTerminator | None, socket_dir: str | None) -> None:
        self._server, self.port, self._tls, self._socket_dir = server, port, tls, socket_dir

    async def stop(self) -> None:
        if self._tls is not None:
            await self._tls.stop()
        await self._server.stop(grace=0.5)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)


def socket_base() -> str:
    """Where the upstream socket's directory goes: systemd's RuntimeDirectory=, else $XDG_RUNTIME_DIR, else $TMPDIR."""
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or os.environ.get("XDG_RUNTIME_DIR", "")
    return runtime if os.path.isdir(runtime) else tempfile.gettempdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_socket_dirs(base: str) -> list[str]:
    """Removes this user's socket directories left by processes that no longer run (SIGKILL, OOM kill)."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        match = _SOCKET_DIR.match(entry.name)
        if match is None or not entry.is_dir(follow_symlinks=False):
            continue
        pid = int(match.group(1))
        try:
            owner = entry.stat(follow_symlinks=False).st_uid
        except OSError:
            continue
        if owner == os.getuid() and pid != os.getpid() and not _alive(pid):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
            log.info("removed %s, left by process %d that no longer runs", entry.path, pid)
    return removed


async def start_server(
    config: GrpcConfig, latest: Callable[[], Snapshot | None], hold_seconds: float = 0.0
) -> GrpcServer:
    """Starts serving in the running event loop; OSError if the address cannot be bound.

    ``hold_seconds``: how long after start a call may wait for the first usage window (AgentService).
    """
    context = server_context(config.tls) if config.tls is not None else None  # ConfigError before binding
    options = [
        # No SO_REUSEPORT (grpc's default): a second process on the same port must fail, not share it.
        ("grpc.so_reuseport", 0),
        # A connection with no RPC for this long gets GOAWAY and is closed (plaintext and behind the TLS front).
        ("grpc.max_connection_idle_ms", int(config.idle_timeout_seconds * 1000)),
    ]
    server = grpc.aio.server(options=options)
    monitoring_pb2_grpc.add_AgentServiceServicer_to_server(AgentService(latest, hold_seconds), server)
    health_servicer = health.aio.HealthServicer()
    for name in HEALTH_SERVICES:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if context is None:
        address = _address(config.host, config.port)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as e:  # grpcio raises instead of returning 0 since 1.59
            raise OSError(f"cannot listen on {address}: {e}") from None
        if port == 0:
            raise OSError(f"cannot listen on {address}: address in use or not available")
        await server.start()
        return GrpcServer(server, port, None, None)
    base = socket_base()
    remove_stale_socket_dirs(base)
    socket_dir = tempfile.mkdtemp(prefix=f"{SOCKET_DIR_PREFIX}{os.getpid()}-", dir=base)  # mode 0700
    upstream = os.path.join(socket_dir, "agent.sock")
    server.add_insecure_port(f"unix:{upstream}")
    await server.start()
    terminator = TlsTerminator(context, upstream, config.idle_timeout_seconds)
    try:
        port = await terminator.start(config.host, config.port)
    except OSError:
        await server.stop(None)
        shutil.rmtree(socket_dir, ignore_errors=True)
        raise
    return GrpcServer(server, port, terminator, socket_dir)
