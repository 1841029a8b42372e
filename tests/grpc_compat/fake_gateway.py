"""A ServiceRadar agent gateway for tests: a real grpc.aio server built from our gateway.proto.

It records every RPC in one event list (with the client's sleeps, so the
order of both can be checked), answers Hello and GetConfig with what a test
sets, and can fail status streams one by one. With mTLS it checks, as the
real gateway does, that each request's agent_id is the client certificate's
CN ``<agent_id>.<partition>.serviceradar``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from exporter.grpc_compat._generated import gateway_pb2, gateway_pb2_grpc


class FakeGateway(gateway_pb2_grpc.AgentGatewayServiceServicer):
    def __init__(self, events: list[Any]) -> None:
        self.events = events
        self.hello = gateway_pb2.AgentHelloResponse(accepted=True, gateway_id="gw-1", heartbeat_interval_sec=1)
        self.config = gateway_pb2.AgentConfigResponse(
            config_version="v1", heartbeat_interval_sec=1, config_poll_interval_sec=86400
        )
        self.faults: list[str] = []  # per status stream, in order: "drop", "unavailable", "not-received"
        self.hellos: list[gateway_pb2.AgentHelloRequest] = []
        self.config_requests: list[gateway_pb2.AgentConfigRequest] = []
        self.streams: list[list[gateway_pb2.GatewayStatusChunk]] = []  # answered received=true
        self.check_cn = False

    async def _check(self, agent_id: str, context: grpc.aio.ServicerContext) -> None:
        if not self.check_cn:
            return
        cn = context.auth_context().get("x509_common_name", [b""])[0].decode()
        if cn.split(".")[0] != agent_id or not cn.endswith(".serviceradar"):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"agent_id {agent_id!r} does not match CN {cn!r}")

    async def Hello(self, request, context):  # type: ignore[no-untyped-def]
        self.events.append("Hello")
        await self._check(request.agent_id, context)
        self.hellos.append(request)
        return self.hello

    async def GetConfig(self, request, context):  # type: ignore[no-untyped-def]
        self.events.append("GetConfig")
        await self._check(request.agent_id, context)
        self.config_requests.append(request)
        if request.config_version == self.config.config_version:
            return gateway_pb2.AgentConfigResponse(not_modified=True)
        return self.config

    async def PushStatus(self, request, context):  # type: ignore[no-untyped-def]
        self.events.append("PushStatus")
        return gateway_pb2.GatewayStatusResponse(received=True)

    async def StreamStatus(self, request_iterator, context):  # type: ignore[no-untyped-def]
        self.events.append("StreamStatus")
        fault = self.faults.pop(0) if self.faults else ""
        received = []
        async for chunk in request_iterator:
            await self._check(chunk.agent_id, context)
            received.append(chunk)
            if fault == "drop":
                await context.abort(grpc.StatusCode.ABORTED, "stream dropped")
        if fault == "unavailable":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "gateway is busy")
        if fault == "not-received":
            return gateway_pb2.GatewayStatusResponse(received=False)
        self.streams.append(received)
        return gateway_pb2.GatewayStatusResponse(received=True)

    def statuses(self) -> list[dict[str, Any]]:
        """The ``status`` of each received sample, in arrival order."""
        return [json.loads(s.message)["status"] for stream in self.streams for c in stream for s in c.services]


@dataclass
class Running:
    server: grpc.aio.Server
    port: int

    async def stop(self) -> None:
        await self.server.stop(None)


async def serve(gateway: FakeGateway, port: int = 0, credentials: grpc.ServerCredentials | None = None) -> Running:
    server = grpc.aio.server()
    gateway_pb2_grpc.add_AgentGatewayServiceServicer_to_server(gateway, server)
    address = f"127.0.0.1:{port}"
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    await server.start()
    return Running(server, bound)


def agent_certificate(ca: trustme.CA, cn: str, uri: str) -> tuple[bytes, bytes]:
    """A client certificate as the gateway's onboarding issues it: CN and a SPIFFE URI SAN, signed by ``ca``."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(8), "big"))
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class Pki:
    """The gateway's CA, a gateway certificate for gateway.serviceradar, and an agent's files in a directory."""

    def __init__(self, root: Path, agent: str = "agent-1", partition: str = "edge") -> None:
        self.ca = trustme.CA()
        self.gateway = self.ca.issue_cert("gateway.serviceradar")
        self.cert_dir = root / "certs"
        self.cert_dir.mkdir()
        cert, key = agent_certificate(
            self.ca, f"{agent}.{partition}.serviceradar", f"spiffe://serviceradar.local/agent/{partition}/{agent}"
        )
        self.write(cert, key, self.ca.cert_pem.bytes())

    def write(self, cert: bytes, key: bytes, ca: bytes, names: tuple[str, str, str] = ("agent.pem", "agent-key.pem",
              "root.pem")) -> None:  # fmt: skip
        for name, data in zip(names, (cert, key, ca), strict=True):
            (self.cert_dir / name).write_bytes(data)

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.gateway.private_key_pem.bytes(), self.gateway.cert_chain_pems[0].bytes())],
            root_certificates=self.ca.cert_pem.bytes(),
            require_client_auth=True,
        )


async def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Waits for ``condition``; the timeout only stops a broken test from hanging."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)
