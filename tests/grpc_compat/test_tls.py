"""mTLS with test CAs: TLS 1.3 only, and a client certificate signed by the client CA is required."""

import asyncio
import logging
import os
import socket
import ssl
import tempfile
from pathlib import Path

import grpc
import pytest
import trustme

from exporter.config import ConfigError, GrpcConfig, TlsFiles
from exporter.grpc_compat._generated import monitoring_pb2, monitoring_pb2_grpc
from exporter.grpc_compat.server import start_server
from exporter.grpc_compat.tls import server_context
from tests.grpc_compat.agent import agent_status_poll, fixture_step


class Pki:
    """A server CA and a separate client CA, as ServiceRadar deployments have them."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.server_ca = trustme.CA()
        self.client_ca = trustme.CA()
        self.other_ca = trustme.CA()
        server = self.server_ca.issue_cert("localhost", "127.0.0.1")
        server.cert_chain_pems[0].write_to_path(tmp_path / "server.pem")
        server.private_key_pem.write_to_path(tmp_path / "server-key.pem")
        self.client_ca.cert_pem.write_to_path(tmp_path / "client-ca.pem")
        self.client = self.client_ca.issue_cert("agent.serviceradar")
        self.stranger = self.other_ca.issue_cert("agent.serviceradar")
        self.files = TlsFiles(tmp_path / "server.pem", tmp_path / "server-key.pem", tmp_path / "client-ca.pem")

    def channel(self, port, leaf=None):
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.server_ca.cert_pem.bytes(),
            private_key=leaf.private_key_pem.bytes() if leaf else None,
            certificate_chain=leaf.cert_chain_pems[0].bytes() if leaf else None,
        )
        options = [("grpc.ssl_target_name_override", "localhost")]
        return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=options)

    def ssl_client(self, maximum):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.server_ca.configure_trust(ctx)
        self.client.configure_cert(ctx)
        ctx.maximum_version = maximum
        ctx.set_alpn_protocols(["h2"])
        return ctx


async def start(pki):
    snap = fixture_step(None)
    return await start_server(GrpcConfig("127.0.0.1", 0, pki.files), lambda: snap)


@pytest.fixture
async def mtls(tmp_path):
    pki = Pki(tmp_path)
    server = await start(pki)
    yield pki, server.port
    await server.stop()


async def status(channel):
    stub = monitoring_pb2_grpc.AgentServiceStub(channel)
    return await stub.GetStatus(monitoring_pb2.StatusRequest(service_name="sysmon", service_type="grpc"), timeout=5)


async def test_client_with_a_good_certificate_is_served(mtls):
    pki, port = mtls
    async with pki.channel(port, pki.client) as channel:
        first, second = await agent_status_poll(channel, "sysmon")
    assert first.service_name == second.service_name == "sysmon"


@pytest.mark.parametrize("who", ["no-certificate", "other-ca"])
async def test_client_without_an_accepted_certificate_is_refused(mtls, who):
    pki, port = mtls
    async with pki.channel(port, None if who == "no-certificate" else pki.stranger) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await status(channel)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def handshake(port, ctx):
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version(), tls.selected_alpn_protocol()


async def test_tls_1_3_is_negotiated_and_1_2_is_refused(mtls):
    pki, port = mtls
    # The same client, certificate and CA: only the version bound differs.
    version, alpn = await asyncio.to_thread(handshake, port, pki.ssl_client(ssl.TLSVersion.TLSv1_3))
    assert (version, alpn) == ("TLSv1.3", "h2")
    # The server aborts the handshake (OpenSSL: "unsupported protocol"); the client sees an alert or EOF.
    with pytest.raises(ssl.SSLError):
        await asyncio.to_thread(handshake, port, pki.ssl_client(ssl.TLSVersion.TLSv1_2))


def test_bad_pem_names_the_file(tmp_path):
    pki = Pki(tmp_path)
    (tmp_path / "client-ca.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"client-ca\.pem"):
        server_context(pki.files)
    (tmp_path / "server-key.pem").write_text("not a key\n")
    with pytest.raises(ConfigError, match=r"server-key\.pem: not a matching PEM certificate and key"):
        server_context(pki.files)


def silent_client(port):
    """Connects and never sends a ClientHello."""
    return socket.create_connection(("127.0.0.1", port), timeout=30)


def idle_client(pki, port):
    """Handshakes with a good certificate, sends the HTTP/2 preface, then neither sends nor reads."""
    tls = pki.ssl_client(ssl.TLSVersion.TLSv1_3).wrap_socket(silent_client(port), server_hostname="localhost")
    tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    return tls


def read_to_eof(sock):
    """True once the server has closed its side (the socket timeout turns a hang into a failure)."""
    while sock.recv(4096):
        pass
    return True


async def test_stalled_clients_do_not_hold_up_others(mtls):
    pki, port = mtls
    with silent_client(port), await asyncio.to_thread(idle_client, pki, port):
        async with pki.channel(port, pki.client) as channel:
            first, second = await agent_status_poll(channel, "sysmon")
    assert first.service_name == second.service_name == "sysmon"


def upstream_sockets():
    """This process's gRPC unix sockets (the listener and one per spliced connection), from /proc/net/unix."""
    prefix = f"sysmon-grpc-{os.getpid()}-"
    return sum(prefix in line for line in Path("/proc/net/unix").read_text().splitlines())


async def test_each_spliced_connection_ends_with_its_client(mtls):
    pki, port = mtls
    assert upstream_sockets() == 1  # the listener
    for _ in range(5):
        async with pki.channel(port, pki.client) as channel:
            await status(channel)
    for _ in range(600):
        if upstream_sockets() == 1:
            break
        await asyncio.sleep(0.05)
    assert upstream_sockets() == 1


async def test_stop_ends_every_connection_quietly(tmp_path, caplog):
    pki = Pki(tmp_path)
    server = await start(pki)
    with silent_client(server.port), await asyncio.to_thread(idle_client, pki, server.port) as idle:
        async with pki.channel(server.port, pki.client) as channel:
            await status(channel)  # a live agent connection, still open at stop
            with caplog.at_level(logging.WARNING):
                await server.stop()
                for _ in range(5):  # done-callbacks of the ended connections run on the next iterations
                    await asyncio.sleep(0)
        assert await asyncio.to_thread(read_to_eof, idle)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert upstream_sockets() == 0


async def test_busy_port_is_an_oserror_and_leaves_nothing_behind(mtls):
    pki, port = mtls
    with pytest.raises(OSError):
        await start_server(GrpcConfig("127.0.0.1", port, pki.files), lambda: None)
    assert upstream_sockets() == 1  # only the first server's listener
    assert len(list(Path(tempfile.gettempdir()).glob(f"sysmon-grpc-{os.getpid()}-*"))) == 1


async def test_an_idle_connection_with_a_good_certificate_is_closed_after_the_idle_timeout(tmp_path):
    pki = Pki(tmp_path)
    snap = fixture_step(None)
    server = await start_server(GrpcConfig("127.0.0.1", 0, pki.files, idle_timeout_seconds=1.0), lambda: snap)
    try:
        with await asyncio.to_thread(idle_client, pki, server.port) as idle:
            assert await asyncio.to_thread(read_to_eof, idle)  # the socket's 30 s timeout turns a hang into an error
        async with pki.channel(server.port, pki.client) as channel:  # a new connection is served as before
            await status(channel)
    finally:
        await server.stop()


async def test_socket_dirs_of_processes_that_no_longer_run_are_removed_at_start(tmp_path, monkeypatch):
    import subprocess
    import sys

    base = tmp_path / "run"
    base.mkdir()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(base))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = base / f"sysmon-grpc-{int(dead.stdout)}-abc123"
    stale.mkdir()
    (stale / "agent.sock").write_bytes(b"")
    live = base / f"sysmon-grpc-{os.getppid()}-def456"  # a running process's: kept
    live.mkdir()
    pki = Pki(tmp_path)
    server = await start(pki)
    try:
        assert not stale.exists() and live.exists()
        assert len(list(base.glob(f"sysmon-grpc-{os.getpid()}-*"))) == 1  # ours, under the runtime directory
    finally:
        await server.stop()
    assert list(base.glob(f"sysmon-grpc-{os.getpid()}-*")) == []
