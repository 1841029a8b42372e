"""Pushing to a fake ServiceRadar agent gateway (tests/grpc_compat/fake_gateway.py) over plaintext and mTLS."""

from __future__ import annotations

import asyncio
import json
import logging
import platform

import pytest

from exporter.config.serviceradar import GatewayTls, ServiceRadarConfig, find_cert_files
from exporter.grpc_compat._generated import gateway_pb2
from exporter.grpc_compat.identity import Identity, resolve_identity
from exporter.grpc_compat.push import SOURCE, Pusher, Timing, go_arch
from exporter.snapshot import Frequency, HostIdentity, Snapshot
from exporter.sources.meminfo import MemInfo
from exporter.sources.mounts import Filesystem
from exporter.sources.net_dev import NetDevice
from exporter.sources.processes import Process
from tests.grpc_compat.fake_gateway import FakeGateway, Pki, serve, until
from tests.helpers import free_port

T0 = 1_800_000_000.0


def counters(n: int) -> NetDevice:
    rx = {"bytes": 1000 * n, "packets": 10 * n, "errs": 1, "drop": 2, "fifo": 0, "frame": 0, "compressed": 0,
          "multicast": 0}  # fmt: skip
    tx = {"bytes": 500 * n, "packets": 5 * n, "errs": 3, "drop": 4, "fifo": 0, "colls": 0, "carrier": 0,
          "compressed": 0}  # fmt: skip
    return NetDevice(rx, tx)


class Snapshots:
    """A new snapshot at each call, one second apart: CPU 0 busy a quarter, CPU 1 half of each second."""

    def __init__(self) -> None:
        self.n = 0
        self.taken: list[Snapshot] = []

    def __call__(self) -> Snapshot:
        n = self.n
        self.n += 1
        snap = Snapshot(
            timestamp_seconds=T0 + n + 0.25,
            monotonic_seconds=100.0 + n,
            cpus=(0, 1),
            cpu_seconds={0: {"user": 0.25 * n, "idle": 0.75 * n}, 1: {"system": 0.5 * n, "idle": 0.5 * n}},
            cpu_usage_ratio={0: 0.25, 1: 0.5},
            frequency={0: Frequency(2.6e9, "cpuinfo")},
            memory=MemInfo(8 << 30, 2 << 30, 5 << 30, 1 << 20, 1 << 30, 1 << 20, 0, 0),
            host=HostIdentity("vm-1", "192.0.2.10"),
            filesystems=(Filesystem("/dev/vda", "/", "ext4", False, 4000, 1000, 900, 10, 5),),
            network={"lo": counters(n), "eth0": counters(n), "docker0": counters(n), "veth12": counters(n)},
            processes=(
                Process(1, "init", "sleep", 1.0 + 0.01 * n, 4096, 5, T0 - 100),
                Process(7, "busy", "running", 2.0 + 0.5 * n, 1024, 9, T0 - 50),
            ),
        )
        self.taken.append(snap)
        return snap


class Clock:
    """The pusher's sleeps: heartbeats and back-offs are recorded and pass at once; samples wait for tick()."""

    def __init__(self, events: list[object]) -> None:
        self.events = events
        self.sample_intervals: list[float] = []
        self._ticks: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        self.events.append(("sleep", seconds))
        await asyncio.sleep(0.002)

    async def sample_sleep(self, seconds: float) -> None:
        self.sample_intervals.append(seconds)
        await self._ticks.get()

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self._ticks.put_nowait(None)

    def sleeps(self) -> list[float]:
        return [e[1] for e in self.events if isinstance(e, tuple)]


def disk(path: str) -> Filesystem:
    """statvfs of a SysmonConfig disk path: (size, free) by path."""
    sizes = {"/": (400, 300), "/data": (9, 2), "/srv": (2, 1)}
    if path not in sizes:
        return Filesystem("", path, "", False, error=f"{path}: No such file or directory")
    size, free = sizes[path]
    return Filesystem("", path, "", False, size, free)


def make(port: int, events: list[object], *, tls: GatewayTls | None = None, identity: Identity | None = None,
         server_name: str = "gateway.serviceradar", buffer: int = 60) -> tuple[Pusher, Clock, Snapshots]:  # fmt: skip
    config = ServiceRadarConfig("127.0.0.1", port, server_name, "agent-1", "edge", tls, buffer)
    clock = Clock(events)
    snaps = Snapshots()
    pusher = Pusher(
        config,
        identity or Identity("agent-1", "edge"),
        snaps,
        version="1.2.3",
        statvfs=disk,
        source_ip=lambda: "192.0.2.10",
        timing=Timing(sleep=clock.sleep, sample_sleep=clock.sample_sleep),
    )
    return pusher, clock, snaps


@pytest.fixture
async def gateway():
    events: list[object] = []
    fake = FakeGateway(events)
    running = await serve(fake)
    yield fake, running.port, events
    await running.stop()


async def test_the_agents_sequence_and_chunks(gateway, caplog):
    fake, port, events = gateway
    caplog.set_level(logging.INFO, "exporter.serviceradar")
    pusher, clock, snaps = make(port, events)
    await pusher.start()
    try:
        await until(lambda: len(fake.streams) == 1, "the first sample (taken at start)")
        clock.tick(2)
        await until(lambda: len(fake.streams) == 3, "three samples")
    finally:
        await pusher.stop()
    rpcs = [e for e in events if isinstance(e, str)]
    assert rpcs == ["Hello", "GetConfig", "StreamStatus", "StreamStatus", "StreamStatus"]
    hello = fake.hellos[0]
    assert (hello.agent_id, hello.partition, hello.version, list(hello.capabilities)) == (
        "agent-1", "edge", "1.2.3", ["sysmon"]
    )  # fmt: skip
    assert (hello.os, hello.arch, hello.hostname) == ("linux", go_arch(platform.machine()), "vm-1")  # the host source
    assert fake.config_requests[0].agent_id == "agent-1" and fake.config_requests[0].config_version == ""
    for stream, snap in zip(fake.streams, snaps.taken, strict=True):
        assert [(c.chunk_index, c.total_chunks, c.is_final) for c in stream] == [(0, 1, True)]
        chunk = stream[0]
        assert chunk.timestamp == round(snap.timestamp_seconds * 1e9)  # unix nanoseconds of the sample
        assert (chunk.agent_id, chunk.partition, chunk.gateway_id, chunk.source_ip) == (
            "agent-1", "edge", "gw-1", "192.0.2.10"
        )  # fmt: skip
        assert (chunk.version, chunk.hostname, chunk.os) == ("1.2.3", "vm-1", "linux")
        (service,) = chunk.services
        assert (service.service_name, service.service_type, service.source, service.available) == (
            "sysmon", "sysmon", SOURCE, True
        )  # fmt: skip
        assert (service.agent_id, service.gateway_id, service.partition) == ("agent-1", "gw-1", "edge")
        document = json.loads(service.message)
        assert set(document) == {"available", "response_time", "status"} and document["available"] is True
        assert isinstance(document["response_time"], int) and document["response_time"] == service.response_time
    # heartbeats at the gateway's interval between the streams
    assert set(clock.sleeps()) == {1.0}
    assert clock.sample_intervals[0] == 10.0  # until a SysmonConfig says otherwise
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"pushing to 127.0.0.1:{port} in plaintext: a real ServiceRadar gateway accepts only mTLS "
                        "(pass --serviceradar.cert-dir)"]  # fmt: skip
    assert fake.statuses()[1]["timestamp"] == "2027-01-15T08:00:01.25Z"


async def test_config_is_polled_with_its_version_every_poll_interval(gateway):
    fake, port, events = gateway
    fake.config.heartbeat_interval_sec = 10
    fake.config.config_poll_interval_sec = 5  # clamped to 30 s: every third heartbeat
    pusher, _, _ = make(port, events)
    await pusher.start()
    try:
        await until(lambda: len(fake.config_requests) >= 3, "two polls after the first GetConfig")
    finally:
        await pusher.stop()
    assert [r.config_version for r in fake.config_requests[:3]] == ["", "v1", "v1"]
    assert pusher.config_poll_seconds == 30.0 and pusher.heartbeat_seconds == 10.0
    after_first = events[events.index("GetConfig") + 1 :]
    between = after_first[: after_first.index("GetConfig")]
    assert [e for e in between if isinstance(e, tuple)] == [("sleep", 10.0)] * 3


async def test_sysmon_config_is_applied(gateway, caplog):
    fake, port, events = gateway
    fake.config.sysmon_config.CopyFrom(
        gateway_pb2.SysmonConfig(
            enabled=True, sample_interval="30s", collect_cpu=False, collect_memory=False, collect_disk=True,
            collect_network=False, collect_processes=True, disk_paths=["/", "/data", "/srv", "/gone"],
            disk_exclude_paths=["/srv"],
        )
    )  # fmt: skip
    pusher, clock, _ = make(port, events)
    await pusher.start()
    try:
        await until(lambda: len(fake.streams) == 1, "the sample taken at start, with the default settings")
        clock.tick()
        await until(lambda: len(fake.streams) == 2, "a sample with the gateway's settings")
    finally:
        await pusher.stop()
    first, second = fake.statuses()
    assert first["cpus"] and "network" in first and first["processes"] == []
    assert clock.sample_intervals[-1] == 30.0
    assert second["cpus"] == [] and second["memory"] == {"used_bytes": 0, "total_bytes": 0}
    assert "network" not in second
    assert second["disks"] == [
        {"mount_point": "/", "used_bytes": 100, "total_bytes": 400},
        {"mount_point": "/data", "used_bytes": 7, "total_bytes": 9},
    ]
    assert [p["name"] for p in second["processes"]] == ["busy", "init"]  # by CPU
    gone = [r.getMessage() for r in caplog.records if "/gone" in r.getMessage()]
    assert gone == ["SysmonConfig disk path /gone: /gone: No such file or directory; not reported"]


async def test_sysmon_turned_off_pushes_nothing_and_says_so_once(gateway, caplog):
    fake, port, events = gateway
    fake.config.sysmon_config.CopyFrom(gateway_pb2.SysmonConfig(enabled=False))
    fake.config.config_poll_interval_sec = 30
    fake.config.heartbeat_interval_sec = 10
    pusher, clock, _ = make(port, events)
    await pusher.start()
    try:
        await until(lambda: len(fake.config_requests) >= 3, "config polls while off")
        clock.tick(3)
        await until(lambda: len(fake.config_requests) >= 5, "more polls after the ticks")
    finally:
        await pusher.stop()
    assert "StreamStatus" not in events
    # the sample taken at start, before the config arrived, stays buffered: sysmon is off
    assert len(pusher.buffer) <= 1
    off = [r for r in caplog.records if "turned sysmon off" in r.getMessage()]
    assert len(off) == 1


async def test_a_refusing_gateway_is_retried_with_backoff_and_logged_once(gateway, caplog):
    fake, port, events = gateway
    fake.hello = gateway_pb2.AgentHelloResponse(accepted=False, message="unknown agent agent-1")
    pusher, clock, _ = make(port, events)
    await pusher.start()
    try:
        await until(lambda: len(fake.hellos) >= 8, "eight Hellos")
    finally:
        await pusher.stop()
    assert set(e for e in events if isinstance(e, str)) == {"Hello"}
    assert clock.sleeps()[:7] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused == [f"gateway 127.0.0.1:{port}: the gateway refused agent agent-1: unknown agent agent-1; retrying"]


@pytest.mark.parametrize("faults", [["drop"], ["unavailable"], ["not-received"], ["drop", "unavailable"]])
async def test_a_failed_stream_reconnects_and_sends_the_sample_again(gateway, faults):
    fake, port, events = gateway
    fake.faults = list(faults)
    pusher, clock, snaps = make(port, events)
    await pusher.start()
    try:
        await until(lambda: len(fake.streams) == 1, "the first sample, after the failures")
        clock.tick(2)
        await until(lambda: len(fake.streams) == 3, "two more")
        # The gateway holds the stream before it answers; the pusher counts a sample once the answer is in.
        await until(lambda: pusher.sent == 3, "the third answer")
    finally:
        await pusher.stop()
    assert [s[0].timestamp for s in fake.streams] == [round(s.timestamp_seconds * 1e9) for s in snaps.taken]
    rpcs = [e for e in events if isinstance(e, str)]
    assert rpcs[: 3 * (len(faults) + 1)] == ["Hello", "GetConfig", "StreamStatus"] * (len(faults) + 1)
    assert clock.sleeps()[: len(faults)] == [5.0] * len(faults)  # each failure follows a good session: 5 s again
    assert pusher.sent == 3


async def test_samples_taken_while_the_gateway_is_down_arrive_once_each_in_order(caplog):
    caplog.set_level(logging.INFO, "exporter.serviceradar")
    port = free_port()
    events: list[object] = []
    pusher, clock, snaps = make(port, events)
    await pusher.start()
    running = None
    try:
        await until(lambda: len(clock.sleeps()) >= 7, "back-offs while the gateway is down")
        clock.tick(4)
        await until(lambda: len(pusher.buffer) == 5, "five samples buffered")
        fake = FakeGateway(events)
        running = await serve(fake, port)
        await until(lambda: len(fake.streams) == 5, "the buffered samples")
    finally:
        await pusher.stop()
        if running is not None:
            await running.stop()
    assert clock.sleeps()[:7] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    assert [s[0].timestamp for s in fake.streams] == [round(s.timestamp_seconds * 1e9) for s in snaps.taken]
    down = [r for r in caplog.records if r.levelno == logging.WARNING and "UNAVAILABLE" in r.getMessage()]
    assert len(down) == 1
    assert any("again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


async def test_the_buffer_drops_the_oldest_and_counts_them():
    port = free_port()
    events: list[object] = []
    pusher, clock, snaps = make(port, events, buffer=3)
    await pusher.start()
    running = None
    try:
        clock.tick(4)
        await until(lambda: snaps.n == 5, "five samples")
        fake = FakeGateway(events)
        running = await serve(fake, port)
        await until(lambda: len(fake.streams) == 3, "the three kept")
    finally:
        await pusher.stop()
        if running is not None:
            await running.stop()
    assert pusher.dropped == 2
    assert [s[0].timestamp for s in fake.streams] == [round(s.timestamp_seconds * 1e9) for s in snaps.taken[2:]]


# --- mTLS ---------------------------------------------------------------------------------------


async def _mtls(tmp_path, pki: Pki, server_name: str = "gateway.serviceradar"):  # type: ignore[no-untyped-def]
    events: list[object] = []
    fake = FakeGateway(events)
    fake.check_cn = True
    running = await serve(fake, credentials=pki.server_credentials())
    tls = find_cert_files(pki.cert_dir)
    config = ServiceRadarConfig("127.0.0.1", running.port, server_name, "", "", tls, 60)
    pusher, clock, _ = make(running.port, events, tls=tls, identity=resolve_identity(config),
                                server_name=server_name)  # fmt: skip
    return fake, running, pusher, clock


async def test_mtls_with_the_certificate_cn_as_identity(tmp_path, caplog):
    pki = Pki(tmp_path, agent="edge-7", partition="site-a")
    fake, running, pusher, _ = await _mtls(tmp_path, pki)
    await pusher.start()
    try:
        await until(lambda: len(fake.streams) == 1, "a sample over mTLS")
    finally:
        await pusher.stop()
        await running.stop()
    assert (fake.hellos[0].agent_id, fake.hellos[0].partition) == ("edge-7", "site-a")
    status = fake.statuses()[0]
    assert (status["agent_id"], status["partition"]) == ("edge-7", "site-a")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_the_edge_onboarding_bundle_names(tmp_path):
    pki = Pki(tmp_path)
    for name in ("agent.pem", "agent-key.pem", "root.pem"):
        (pki.cert_dir / name).rename(pki.cert_dir / name.replace("agent", "component").replace("root", "ca-chain"))
    fake, running, pusher, _ = await _mtls(tmp_path, pki)
    await pusher.start()
    try:
        await until(lambda: len(fake.streams) == 1, "a sample with the bundle's files")
    finally:
        await pusher.stop()
        await running.stop()


@pytest.mark.parametrize(
    ("problem", "reason"),
    [("wrong-ca", "certificate verify failed: unable to get local issuer certificate"),
     ("wrong-name", "Hostname mismatch, certificate is not valid for 'other.serviceradar'")],
)  # fmt: skip
async def test_an_unverified_gateway_gets_nothing_and_one_log_line(tmp_path, caplog, problem, reason):
    pki = Pki(tmp_path)
    if problem == "wrong-ca":
        import trustme

        (pki.cert_dir / "root.pem").write_bytes(trustme.CA().cert_pem.bytes())
    fake, running, pusher, clock = await _mtls(
        tmp_path, pki, "other.serviceradar" if problem == "wrong-name" else "gateway.serviceradar"
    )
    await pusher.start()
    try:
        await until(lambda: len(clock.sleeps()) >= 4, "four attempts")
    finally:
        await pusher.stop()
        await running.stop()
    assert fake.hellos == [] and fake.streams == []
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, lines
    assert reason in lines[0] and "TLS to 127.0.0.1" in lines[0]


async def test_a_gateway_offering_only_tls_1_2_is_refused(tmp_path, caplog):
    """TLS 1.3 minimum: a plain TLS listener capped at 1.2, with a valid certificate, gets no byte of gRPC."""
    import ssl

    pki = Pki(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    pki.gateway.configure_cert(server_ctx)
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(100))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    tls = find_cert_files(pki.cert_dir)
    pusher, clock, _ = make(port, [], tls=tls)
    await pusher.start()
    try:
        await until(lambda: len(clock.sleeps()) >= 3, "three attempts")
    finally:
        await pusher.stop()
        server.close()
    assert not any(received)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "TLS to 127.0.0.1" in lines[0] and "does not offer TLS 1.3" in lines[0], lines
