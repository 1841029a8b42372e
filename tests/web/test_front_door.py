"""The real exporter behind --web.config.file: TLS versions, client certificates, basic auth, headers, reloads.

Clients are Python's own ssl and urllib; the certificates come from trustme.
"""

from __future__ import annotations

import ssl
import textwrap
from pathlib import Path

import pytest

from tests.helpers import http_get, wait_until
from tests.web.pki import (
    PASSWORD,
    USER,
    Pki,
    basic,
    bcrypt_hash,
    handshake,
    https_get,
    peer_certificate,
    run_https_exporter,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ssl.TLSVersion.TLSv1_1 and friends


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    d = tmp_path / "pki"
    d.mkdir()
    return Pki.make(d)


def web_yml(pki: Pki, tls_extra: str = "", rest: str = "") -> Path:
    path = pki.dir / "web.yml"
    path.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        + textwrap.indent(textwrap.dedent(tls_extra), "  ")
        + textwrap.dedent(rest)
    )
    return path


AUTH = f"basic_auth_users:\n  {USER}: '{bcrypt_hash(PASSWORD)}'\n"
HEADERS = (
    "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=63072000\n"
)


def test_basic_auth_over_tls_on_every_endpoint_with_headers(pki: Pki, tmp_path: Path) -> None:
    ctx = pki.client_context()
    with run_https_exporter(web_yml(pki, rest=AUTH + HEADERS), tmp_path, ctx) as exp:
        for path in ("/metrics", "/", "/-/healthy", "/-/ready", "/nowhere"):
            status, _, headers = https_get(exp.url + path, ctx)
            assert status == 401, path
            assert headers["WWW-Authenticate"] == "Basic"
            assert headers["X-Frame-Options"] == "deny"
        assert https_get(exp.url + "/metrics", ctx, basic(USER, "wrong"))[0] == 401
        assert https_get(exp.url + "/metrics", ctx, basic("intruder", PASSWORD))[0] == 401
        status, body, headers = https_get(exp.url + "/metrics", ctx, basic(USER, PASSWORD))
        assert status == 200 and b"sysmon_cpu_seconds_total" in body
        assert headers["Strict-Transport-Security"] == "max-age=63072000"
        assert https_get(exp.url + "/nowhere", ctx, basic(USER, PASSWORD))[2]["X-Frame-Options"] == "deny"
        with pytest.raises(OSError):  # plain HTTP on the TLS port: the handshake fails, the connection closes
            http_get(f"http://127.0.0.1:{exp.port}/metrics")


def test_health_without_auth_opens_only_the_health_endpoints(pki: Pki, tmp_path: Path) -> None:
    ctx = pki.client_context()
    with run_https_exporter(web_yml(pki, rest=AUTH), tmp_path, ctx, "--web.health-without-auth") as exp:
        assert https_get(exp.url + "/-/healthy", ctx)[0] == 200
        assert https_get(exp.url + "/-/ready", ctx)[0] == 200
        assert https_get(exp.url + "/metrics", ctx)[0] == 401
        assert https_get(exp.url + "/", ctx)[0] == 401


def test_min_version_tls13_refuses_a_tls12_client(pki: Pki, tmp_path: Path) -> None:
    ctx = pki.client_context()
    with run_https_exporter(web_yml(pki, "min_version: TLS13\n"), tmp_path, ctx) as exp:
        assert handshake(exp.port, ctx) == "TLSv1.3"
        with pytest.raises(ssl.SSLError):
            handshake(exp.port, pki.client_context(max_version=ssl.TLSVersion.TLSv1_2))


def test_max_version_tls12_refuses_a_tls13_only_client(pki: Pki, tmp_path: Path) -> None:
    ctx = pki.client_context()
    with run_https_exporter(web_yml(pki, "max_version: TLS12\n"), tmp_path, ctx) as exp:
        assert handshake(exp.port, ctx) == "TLSv1.2"
        with pytest.raises(ssl.SSLError):
            handshake(exp.port, pki.client_context(min_version=ssl.TLSVersion.TLSv1_3))


def test_cipher_suites_by_go_name_limit_tls12(pki: Pki, tmp_path: Path) -> None:
    tls = (
        "max_version: TLS12\n"
        "cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n"
    )
    ctx = pki.client_context()
    with run_https_exporter(web_yml(pki, tls), tmp_path, ctx) as exp:
        assert handshake(exp.port, ctx) == "TLSv1.2"
        other = pki.client_context()
        other.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
        with pytest.raises(ssl.SSLError):
            handshake(exp.port, other)


def test_curve_preferences_limit_the_groups(pki: Pki, tmp_path: Path) -> None:
    ctx = pki.client_context()
    with run_https_exporter(web_yml(pki, "curve_preferences: [CurveP384, CurveP521]\n"), tmp_path, ctx) as exp:
        p384 = pki.client_context()
        p384.set_ecdh_curve("secp384r1")
        assert handshake(exp.port, p384) == "TLSv1.3"
        x25519 = pki.client_context()
        x25519.set_ecdh_curve("X25519")
        with pytest.raises(ssl.SSLError):
            handshake(exp.port, x25519)


def test_require_and_verify_client_cert(pki: Pki, tmp_path: Path) -> None:
    tls = "client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: client-ca.pem\n"
    with run_https_exporter(web_yml(pki, tls), tmp_path, pki.client_context("client")) as exp:
        assert handshake(exp.port, pki.client_context("client")) == "TLSv1.3"
        for refused in (pki.client_context(), pki.client_context("stranger")):  # no certificate; the wrong CA's
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                handshake(exp.port, refused)


def test_verify_client_cert_if_given(pki: Pki, tmp_path: Path) -> None:
    tls = "client_auth_type: VerifyClientCertIfGiven\nclient_ca_file: client-ca.pem\n"
    with run_https_exporter(web_yml(pki, tls), tmp_path, pki.client_context()) as exp:
        assert handshake(exp.port, pki.client_context()) == "TLSv1.3"
        assert handshake(exp.port, pki.client_context("client")) == "TLSv1.3"
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            handshake(exp.port, pki.client_context("stranger"))


def test_require_any_client_cert_takes_any_ca_and_allowed_sans_filter(pki: Pki, tmp_path: Path) -> None:
    tls = "client_auth_type: RequireAnyClientCert\nclient_allowed_sans: [scraper.example.org, 10.0.0.1]\n"
    with run_https_exporter(web_yml(pki, tls), tmp_path, pki.client_context("stranger")) as exp:
        # Any CA will do (the stranger's CA is in no file), but a certificate there must be ...
        assert https_get(exp.url + "/metrics", pki.client_context("stranger"))[0] == 200
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            handshake(exp.port, pki.client_context())
        # ... and one of its SANs must be allowed.
        status, body, _ = https_get(exp.url + "/metrics", pki.client_context("outsider"))
        assert status == 403 and b"SAN" in body


def test_certificate_rotation_without_restart(pki: Pki, tmp_path: Path) -> None:
    ctx = pki.client_context()
    with run_https_exporter(web_yml(pki), tmp_path, ctx) as exp:
        first = peer_certificate(exp.port, ctx)
        assert first == ssl.PEM_cert_to_DER_cert((pki.dir / "server.crt").read_text())
        new = pki.write_server("next", "rotated.example.org")
        (pki.dir / "next.crt").replace(pki.dir / "server.crt")
        (pki.dir / "next.key").replace(pki.dir / "server.key")
        assert peer_certificate(exp.port, ctx) == new != first
        assert exp.proc.poll() is None


def test_file_turning_invalid_keeps_the_last_good_config_and_logs_one_line(pki: Pki, tmp_path: Path) -> None:
    ctx = pki.client_context()
    path = web_yml(pki, rest=AUTH)
    with run_https_exporter(path, tmp_path, ctx) as exp:
        good = path.read_text()
        path.write_text(good + "  intruder: plaintext\n")
        for _ in range(3):
            assert https_get(exp.url + "/metrics", ctx, basic(USER, PASSWORD))[0] == 200
            assert https_get(exp.url + "/metrics", ctx, basic("intruder", "plaintext"))[0] == 401
        errors = [line for line in exp.stderr().splitlines() if "keeping the last good web configuration" in line]
        assert len(errors) == 1 and "basic_auth_users.intruder" in errors[0] and str(path) in errors[0]
        # Fixed again, with a second user: the new users apply without a restart.
        path.write_text(good + f"  second: '{bcrypt_hash('two')}'\n")
        assert https_get(exp.url + "/metrics", ctx, basic("second", "two"))[0] == 200
        assert "reloaded the web configuration" in exp.stderr()


def test_broken_certificate_at_runtime_keeps_serving_the_old_one(pki: Pki, tmp_path: Path) -> None:
    ctx = pki.client_context()
    with run_https_exporter(web_yml(pki), tmp_path, ctx) as exp:
        first = peer_certificate(exp.port, ctx)
        (pki.dir / "server.key").write_text("not a key\n")
        assert peer_certificate(exp.port, ctx) == first
        wait_until(lambda: "tls_server_config.key_file" in exp.stderr(), what="the error line")
