"""Pushing sysmon samples to ServiceRadar's agent gateway, as its agent does (v1.0.81 and later).

The agent's sequence (pkg/agent of carverauto/serviceradar): ``Hello``, then
``GetConfig``, then every ``heartbeat_interval_sec`` (Hello's, then the
config's; 1 s..1 h) the samples taken since, each as its own
``StreamStatus`` stream, and ``GetConfig`` again every
``config_poll_interval_sec`` (30 s..24 h) with the config version it holds.
Any RPC error drops the connection; the next Hello comes after a back-off of
5 s doubling to 60 s. Samples are taken every SysmonConfig ``sample_interval``
whether or not the gateway is reachable, and kept (at most
``--serviceradar.buffer``, the oldest dropped and counted) until a stream
that carried them is answered ``received``; so each arrives once, in order,
unless an answer is lost after the gateway stored it (then it is sent again).

Nothing here reads a file: samples come from the sampler's ``latest()``, and
the two things that need the system (statvfs of SysmonConfig ``disk_paths``
and the ``source_ip`` address) are callables the composition root passes in.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from exporter.config.serviceradar import ServiceRadarConfig
from exporter.grpc_compat._generated import gateway_pb2, gateway_pb2_grpc
from exporter.grpc_compat.gateway import (
    CONFIG_POLL_BOUNDS,
    HEARTBEAT_BOUNDS,
    MAX_MESSAGE_BYTES,
    Connection,
    TooLarge,
    apply_sysmon,
    chunks,
    clamp_seconds,
    client_context,
    describe_settings,
)
from exporter.grpc_compat.identity import Identity
from exporter.grpc_compat.status import Disk, SysmonSettings, build_status, disks_from_snapshot, service_message
from exporter.snapshot import Snapshot
from exporter.sources.mounts import Filesystem

log = logging.getLogger("exporter.serviceradar")

# Go's runtime.GOARCH for platform.machine() (the gateway and core speak Go's names).
GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386", "i386": "386",
           "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}  # fmt: skip
SERVICE = "sysmon"
SOURCE = "sysmon-metrics"  # any other source is cut to 4 KiB by the gateway and never ingested
DEFAULT_HEARTBEAT = 30.0
DEFAULT_CONFIG_POLL = 300.0

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Timing:
    """The durations of the protocol; tests inject their own sleep to run without waiting."""

    backoff_initial: float = 5.0
    backoff_max: float = 60.0
    rpc_timeout: float = 30.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    sleep: Sleep = asyncio.sleep  # between heartbeats and back-offs
    sample_sleep: Sleep = asyncio.sleep  # between samples


def go_arch(machine: str) -> str:
    return GO_ARCH.get(machine.lower(), machine.lower())


@dataclass(frozen=True)
class Sample:
    timestamp_ns: int
    message: bytes
    response_time_ns: int


class _Failed(Exception):
    """An answer that ends the session without an RPC error (Hello refused, a stream not received)."""


@dataclass
class _Once:
    """Logs a line when the failure changes, not while it repeats."""

    last: str = ""

    def failed(self, text: str) -> None:
        if text != self.last:
            log.warning("%s", text)
            self.last = text

    def recovered(self, text: str) -> None:
        if self.last:
            log.info("%s", text)
        self.last = ""


class Pusher:
    """Samples every sample_interval into a bounded buffer; a session sends them to the gateway."""

    def __init__(
        self,
        config: ServiceRadarConfig,
        identity: Identity,
        latest: Callable[[], Snapshot | None],
        *,
        version: str,
        statvfs: Callable[[str], Filesystem],  # a SysmonConfig disk path measured (its error set if it cannot be)
        source_ip: Callable[[], str],
        timing: Timing | None = None,
    ) -> None:
        self._config = config
        self._identity = identity
        self._latest = latest
        self._version = version
        self._statvfs = statvfs
        self._source_ip = source_ip
        self._timing = timing or Timing()
        self._context = client_context(config.tls) if config.tls is not None else None  # ConfigError at start
        self.settings = SysmonSettings()
        self.heartbeat_seconds = DEFAULT_HEARTBEAT
        self.config_poll_seconds = DEFAULT_CONFIG_POLL
        self.config_version = ""
        self.buffer: deque[Sample] = deque()
        self.dropped = 0  # samples dropped because the buffer was full
        self.sent = 0
        self._gateway_id = ""
        self._address = ""
        self._hostname = platform.node()
        self._backoff = self._timing.backoff_initial
        self._reconfigured = asyncio.Event()
        self._failure = _Once()
        self._disk_problem = _Once()
        self._tasks: list[asyncio.Task[None]] = []

    # --- sampling -----------------------------------------------------------------------------

    def _disks(self, snap: Snapshot) -> list[Disk]:
        s = self.settings
        if not s.disk_paths:
            return disks_from_snapshot(snap, s.disk_exclude_paths)
        out = []
        for path in s.disk_paths:
            if path in s.disk_exclude_paths:
                continue
            fs = self._statvfs(path)
            if fs.error:
                self._disk_problem.failed(f"SysmonConfig disk path {path}: {fs.error}; not reported")
                continue
            out.append(Disk(path, int(fs.used_bytes), int(fs.size_bytes)))
        return out

    def sample(self, prev: Snapshot | None) -> Snapshot | None:
        """Takes one sample from the latest snapshot into the buffer; returns the snapshot it used."""
        snap = self._latest()
        if snap is None or snap is prev or not self.settings.enabled:
            return prev
        start = time.perf_counter_ns()
        if snap.host is not None:
            self._hostname = snap.host.hostname
        status = build_status(prev, snap, self.settings, self._identity, self._disks(snap), self._address)
        elapsed = time.perf_counter_ns() - start
        message = service_message(status, elapsed)
        if len(self.buffer) >= self._config.buffer_samples:
            self.buffer.popleft()
            if not self.dropped:
                log.warning(
                    "the gateway has not taken samples for a while: dropping the oldest beyond "
                    "--serviceradar.buffer=%d",
                    self._config.buffer_samples,
                )
            self.dropped += 1
        self.buffer.append(Sample(round(snap.timestamp_seconds * 1e9), message, elapsed))
        return snap

    async def _sample_loop(self) -> None:
        prev: Snapshot | None = None
        while True:
            prev = self.sample(prev)
            while not await self._slept(1.0 if prev is None else None):
                pass  # the interval changed: wait the new one from now

    async def _slept(self, at_most: float | None) -> bool:
        """Waits one sample interval (``at_most`` while no snapshot exists); False if the interval changed."""
        waiting = self.settings.sample_interval_seconds
        self._reconfigured.clear()
        sleeper = asyncio.ensure_future(self._timing.sample_sleep(min(waiting, at_most or waiting)))
        changed = asyncio.ensure_future(self._reconfigured.wait())
        try:
            await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (sleeper, changed):
                pending.cancel()
        return sleeper.done() and not sleeper.cancelled()

    # --- the session ----------------------------------------------------------------------------

    def _hello(self) -> gateway_pb2.AgentHelloRequest:
        return gateway_pb2.AgentHelloRequest(
            agent_id=self._identity.agent_id,
            version=self._version,
            capabilities=[SERVICE],
            hostname=self._hostname,
            os="linux",
            arch=go_arch(platform.machine()),
            partition=self._identity.partition,
            config_version=self.config_version,
        )

    async def _get_config(self, stub: gateway_pb2_grpc.AgentGatewayServiceStub) -> None:
        response = await stub.GetConfig(
            gateway_pb2.AgentConfigRequest(agent_id=self._identity.agent_id, config_version=self.config_version),
            timeout=self._timing.rpc_timeout,
        )
        if response.not_modified:
            return
        self.config_version = response.config_version
        self.heartbeat_seconds = clamp_seconds(
            response.heartbeat_interval_sec, HEARTBEAT_BOUNDS, self.heartbeat_seconds
        )
        self.config_poll_seconds = clamp_seconds(
            response.config_poll_interval_sec, CONFIG_POLL_BOUNDS, self.config_poll_seconds
        )
        applied = apply_sysmon(response, self.settings)
        if applied.problem:
            log.warning("gateway config %s: %s; keeping the current one", response.config_version, applied.problem)
            return
        before, self.settings = self.settings, applied.settings
        if self.settings.sample_interval_seconds != before.sample_interval_seconds:
            self._reconfigured.set()  # the next sample one new interval from now, not after the old one
        if before.enabled and not self.settings.enabled:
            log.warning(
                "the gateway turned sysmon off for agent %s (no Sysmon profile targets it yet): nothing is pushed",
                self._identity.agent_id,
            )
        elif self.settings != before:
            log.info("gateway config %s: sysmon %s", response.config_version, describe_settings(self.settings))

    async def _send(self, stub: gateway_pb2_grpc.AgentGatewayServiceStub, sample: Sample) -> None:
        service = gateway_pb2.GatewayServiceStatus(
            service_name=SERVICE,
            available=True,
            message=sample.message,
            service_type=SERVICE,
            response_time=sample.response_time_ns,
            agent_id=self._identity.agent_id,
            gateway_id=self._gateway_id,
            partition=self._identity.partition,
            source=SOURCE,
        )
        stream = chunks(
            [service],
            self._timing.max_message_bytes,
            gateway_id=self._gateway_id,
            agent_id=self._identity.agent_id,
            timestamp=sample.timestamp_ns,
            partition=self._identity.partition,
            source_ip=self._address,
            version=self._version,
            hostname=self._hostname,
            os="linux",
            arch=go_arch(platform.machine()),
        )
        response = await stub.StreamStatus(iter(stream), timeout=self._timing.rpc_timeout)
        if not response.received:
            raise _Failed("the gateway answered a status stream with received=false")

    async def _send_buffered(self, stub: gateway_pb2_grpc.AgentGatewayServiceStub) -> None:
        while self.buffer:
            sample = self.buffer[0]
            try:
                await self._send(stub, sample)
            except TooLarge as e:
                log.warning("sample dropped: %s", e)
                self.dropped += 1
            else:
                self.sent += 1
            if self.buffer and self.buffer[0] is sample:  # the sampler may have dropped it meanwhile
                self.buffer.popleft()

    async def _session(self, connection: Connection) -> None:
        stub = await connection.open()
        self._address = await asyncio.get_running_loop().run_in_executor(None, self._source_ip)
        hello = await stub.Hello(self._hello(), timeout=self._timing.rpc_timeout)
        if not hello.accepted:
            raise _Failed(f"the gateway refused agent {self._identity.agent_id}: {hello.message or 'no reason given'}")
        self._gateway_id = hello.gateway_id
        self.heartbeat_seconds = clamp_seconds(hello.heartbeat_interval_sec, HEARTBEAT_BOUNDS, self.heartbeat_seconds)
        await self._get_config(stub)
        self._failure.recovered(f"pushing to gateway {hello.gateway_id or self._config.host} again")
        self._backoff = self._timing.backoff_initial
        since_poll = 0.0
        while True:
            if self.settings.enabled:
                await self._send_buffered(stub)
            await self._timing.sleep(self.heartbeat_seconds)
            since_poll += self.heartbeat_seconds
            if since_poll >= self.config_poll_seconds:
                since_poll = 0.0
                await self._get_config(stub)

    def _describe(self, e: Exception, connection: Connection) -> str:
        where = f"gateway {self._config.host}:{self._config.port}"
        if connection.tls_error:
            return f"{where}: {connection.tls_error}; retrying"
        if isinstance(e, grpc.aio.AioRpcError):
            return f"{where}: {e.code().name}: {e.details()}; retrying"
        return f"{where}: {e}; retrying"

    async def _push_loop(self) -> None:
        while True:
            connection = Connection(self._config, self._context)
            try:
                await self._session(connection)
            except (grpc.aio.AioRpcError, _Failed, OSError) as e:
                self._failure.failed(self._describe(e, connection))
            finally:
                await connection.close()
            await self._timing.sleep(self._backoff)
            self._backoff = min(self._timing.backoff_max, self._backoff * 2)

    async def start(self) -> None:
        if self._config.tls is None:
            log.warning(
                "pushing to %s:%d in plaintext: a real ServiceRadar gateway accepts only mTLS "
                "(pass --serviceradar.cert-dir)",
                self._config.host,
                self._config.port,
            )
        self._tasks = [
            asyncio.create_task(self._sample_loop(), name="serviceradar-sample"),
            asyncio.create_task(self._push_loop(), name="serviceradar-push"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
