"""Every class of web configuration error is refused with the file, the key and the fix; good files load."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exporter.config import ConfigError, load
from exporter.config.webfile import read_web_file
from exporter.web.live import load as load_web
from tests.helpers import ROOT
from tests.web.pki import Pki, bcrypt_hash


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki.make(tmp_path_factory.mktemp("pki"))


def write(pki: Pki, text: str, name: str = "web.yml") -> Path:
    path = pki.dir / name
    path.write_text(textwrap.dedent(text))
    return path


TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
HASH = bcrypt_hash("pw")

# (id, file text, key named in the error, a phrase of the fix)
BAD = [
    ("cert-missing-file", "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n", "cert_file", "nope"),
    ("cert-empty-path", "tls_server_config:\n  cert_file: ''\n  key_file: server.key\n", "cert_file", "missing one of"),
    ("cert-invalid", "tls_server_config:\n  cert_file: web.yml\n  key_file: server.key\n", "cert_file", "PEM"),
    ("key-missing-file", "tls_server_config:\n  cert_file: server.crt\n  key_file: nope.key\n", "key_file", "nope.key"),
    ("key-empty-path", "tls_server_config:\n  cert_file: server.crt\n  key_file: ''\n", "key_file", "missing one of"),
    ("key-invalid", "tls_server_config:\n  cert_file: server.crt\n  key_file: ca.pem\n", "key_file", "private key"),
    ("key-of-another-cert", "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n", "key_file", "key"),
    ("client-ca-without-policy", TLS + "  client_ca_file: client-ca.pem\n", "client_auth_type", "client_auth_type"),
    ("client-auth-unknown", TLS + "  client_auth_type: Maybe\n", "client_auth_type", "RequireAndVerifyClientCert"),
    ("client-ca-no-certs", TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n",
     "client_ca_file", "CA"),
    ("sans-without-required-cert", TLS + "  client_auth_type: VerifyClientCertIfGiven\n  client_allowed_sans: [a]\n",
     "client_allowed_sans", "RequireAnyClientCert"),
    ("cipher-invented", TLS + "  cipher_suites: [TLS_RSA_WITH_FAKE_SHA]\n", "cipher_suites", "TLS_ECDHE_RSA"),
    ("cipher-insecure", TLS + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "cipher_suites", "unknown cipher"),
    ("curve-invented", TLS + "  curve_preferences: [CurveP999]\n", "curve_preferences", "X25519"),
    ("tls-version-unknown", TLS + "  min_version: TLS14\n", "min_version", "TLS13"),
    ("tls-versions-inverted", TLS + "  min_version: TLS13\n  max_version: TLS12\n", "min_version", "lower"),
    ("password-not-bcrypt", "basic_auth_users:\n  alice: hunter2\n", "basic_auth_users.alice", "bcrypt"),
    ("password-truncated-hash", f"basic_auth_users:\n  alice: '{HASH[:-3]}'\n", "basic_auth_users.alice", "bcrypt"),
    ("header-not-allowed", "http_server_config:\n  headers:\n    Server: nginx\n", "headers.Server", "can not"),
    ("header-bad-frame-options", "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
     "headers.X-Frame-Options", "deny"),
    ("header-bad-content-type-options", "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
     "headers.X-Content-Type-Options", "nosniff"),
    ("unknown-top-key", "tls_config:\n  cert_file: server.crt\n", "tls_config", "tls_server_config"),
    ("unknown-tls-key", TLS + "  certfile: x\n", "tls_server_config.certfile", "cert_file"),
    ("not-yaml", "tls_server_config: [\n", "", "YAML"),
    ("rate-limit", "rate_limit:\n  burst: 1\n", "rate_limit", "--web.max-requests"),
]


@pytest.mark.parametrize(("text", "key", "fix"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_file_is_refused_naming_file_key_and_fix(pki: Pki, text: str, key: str, fix: str) -> None:
    pki.write_server("other")
    # "other.key" belongs to another certificate: swap it in under a name the file uses.
    path = write(pki, text.replace("other.key", "other-mismatch.key"))
    (pki.dir / "other-mismatch.key").write_bytes((pki.dir / "other.key").read_bytes())
    with pytest.raises(ConfigError) as e:
        load_web(path)
    message = str(e.value)
    assert str(path) in message and key in message and fix in message, message
    assert "\n" not in message


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"web\.yml: cannot read it \(No such file"):
        read_web_file(tmp_path / "web.yml")


def test_good_file_resolves_relative_paths_and_defaults(pki: Pki) -> None:
    path = write(pki, TLS + f"basic_auth_users:\n  alice: '{HASH}'\n" + "http_server_config:\n  headers:\n"
                 "    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n")
    file = read_web_file(path)
    assert file.tls is not None
    assert file.tls.cert_file == pki.dir / "server.crt" and file.tls.key_file == pki.dir / "server.key"
    assert (file.tls.min_version, file.tls.max_version, file.tls.client_auth_type) == ("TLS12", "TLS13", "NoClientCert")
    assert file.tls.prefer_server_cipher_suites and file.http2
    assert dict(file.headers) == {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000"}
    assert file.users == {"alice": HASH}
    active = load_web(path)
    assert active.tls is not None and active.tls.minimum_version.name == "TLSv1_2"


def test_inline_cert_and_key_and_every_curve_and_go_cipher_name(pki: Pki) -> None:
    cert = (pki.dir / "server.crt").read_text()
    key = (pki.dir / "server.key").read_text()
    indent = lambda t: textwrap.indent(t, "    ")  # noqa: E731
    path = write(pki, "tls_server_config:\n  cert: |\n" + indent(cert) + "  key: |\n" + indent(key)
                 + "  curve_preferences: [X25519, CurveP256, CurveP384, CurveP521]\n"
                 + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,"
                 + " TLS_AES_128_GCM_SHA256]\n  client_auth_type: RequireClientCert\n")
    active = load_web(path)
    assert active.file.tls is not None and active.file.tls.client_auth_type == "RequireAnyClientCert"
    assert active.tls is not None
    names = {c["name"] for c in active.tls.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names == {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"}


def test_flag_needs_a_path() -> None:
    with pytest.raises(ConfigError, match=r"--web\.config\.file"):
        load(["--web.config.file="], {})
    assert load(["--web.config.file=/x/web.yml"], {}).web.config_file == Path("/x/web.yml")


def test_bad_file_stops_start_up_with_one_line(pki: Pki) -> None:
    path = write(pki, TLS + "  curve_preferences: [CurveP999]\n", "bad.yml")
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "--web.listen-address=127.0.0.1:0", f"--web.config.file={path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"sysmon-exporter: --web.config.file {path}: tls_server_config.curve_preferences: unknown curve 'CurveP999'; "
        "use one of CurveP256, CurveP384, CurveP521, X25519"
    ]
