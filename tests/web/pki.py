"""Certificates for the web configuration tests: trustme CAs written into a directory beside web.yml."""

from __future__ import annotations

import base64
import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import trustme

from tests.helpers import Exporter, run_exporter, wait_until

USER, PASSWORD = "prometheus", "s3cret pass"


def bcrypt_hash(password: str, cost: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@dataclass
class Pki:
    dir: Path
    ca: trustme.CA
    client_ca: trustme.CA
    other_ca: trustme.CA

    @classmethod
    def make(cls, dir: Path) -> Pki:
        pki = cls(dir, trustme.CA(), trustme.CA(), trustme.CA())
        pki.ca.cert_pem.write_to_path(str(dir / "ca.pem"))
        pki.client_ca.cert_pem.write_to_path(str(dir / "client-ca.pem"))
        pki.write_server("server")
        for name, ca, host in (
            ("client", pki.client_ca, "scraper.example.org"),
            ("stranger", pki.other_ca, "scraper.example.org"),
            ("outsider", pki.other_ca, "outsider.example.org"),
        ):
            cert = ca.issue_cert(host, "127.0.0.2")
            cert.private_key_and_cert_chain_pem.write_to_path(str(dir / f"{name}.pem"))
            cert.cert_chain_pems[0].write_to_path(str(dir / f"{name}.crt"))  # apart, for Prometheus
            cert.private_key_pem.write_to_path(str(dir / f"{name}.key"))
        return pki

    def write_server(self, name: str, *hosts: str) -> bytes:
        """Writes NAME.crt and NAME.key; returns the certificate's DER."""
        cert = self.ca.issue_cert("127.0.0.1", "localhost", *hosts)
        (self.dir / f"{name}.crt").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(self.dir / f"{name}.key"))
        return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())

    def client_context(
        self,
        cert: str | None = None,
        min_version: ssl.TLSVersion | None = None,
        max_version: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.dir / "ca.pem"))
        if cert is not None:
            ctx.load_cert_chain(str(self.dir / f"{cert}.pem"))
        if min_version is not None:
            ctx.minimum_version = min_version
        if max_version is not None:
            ctx.maximum_version = max_version
        return ctx


def https_get(
    url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def peer_certificate(port: int, ctx: ssl.SSLContext) -> bytes:
    """The DER certificate the server presents in a fresh handshake."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(
        raw, server_hostname="127.0.0.1"
    ) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def handshake(port: int, ctx: ssl.SSLContext) -> str:
    """The TLS version of a completed handshake (raises ssl.SSLError or OSError when refused)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(
        raw, server_hostname="127.0.0.1"
    ) as tls:
        # TLS 1.3 delivers a client-certificate refusal after the handshake: a request brings it out.
        tls.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = tls.recv(64)
        if not reply:
            raise ConnectionResetError("closed without a reply")
        version = tls.version()
        assert version is not None
        return version


@contextlib.contextmanager
def run_https_exporter(web_yml: Path, tmp_path: Path, ctx: ssl.SSLContext, *args: str) -> Iterator[Exporter]:
    """The real exporter with --web.config.file, ready over HTTPS (health open, so readiness needs no password)."""
    with run_exporter([f"--web.config.file={web_yml}", *args], tmp_path, ready=False) as exporter:
        exporter.url = f"https://127.0.0.1:{exporter.port}"
        wait_until(
            lambda: exporter.proc.poll() is not None
            or https_get(exporter.url + "/-/ready", ctx, basic(USER, PASSWORD))[0] == 200,
            what="the exporter to become ready over HTTPS",
        )
        assert exporter.proc.poll() is None, exporter.stderr()
        yield exporter
