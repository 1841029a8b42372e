"""``--web.config.file``: the web configuration file of Prometheus exporter-toolkit.

The same YAML and the same meaning as exporter-toolkit's web/tls_config.go and
web/handler.go (docs/web-configuration.md there), so a file written for
node_exporter works here unchanged:

    tls_server_config: {cert_file | cert, key_file | key, client_auth_type, client_ca_file | client_ca,
                        client_allowed_sans, min_version, max_version, cipher_suites, curve_preferences,
                        prefer_server_cipher_suites}
    http_server_config: {http2, headers}
    basic_auth_users: {user: bcrypt hash}

Unknown keys are errors (exporter-toolkit parses with yaml.UnmarshalStrict).
Relative paths resolve against the file's directory. This module only reads
and checks the YAML; certificates and keys are loaded where the TLS context
is built (exporter/web/tls.py), so that a changed file is read again there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.config.flags import ConfigError

OPTION = "--web.config.file"

# crypto/tls client auth policies, as exporter-toolkit names them ("RequireClientCert" is its old alias).
CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
_CLIENT_AUTH_ALIASES = {"": "NoClientCert", "RequireClientCert": "RequireAnyClientCert"}
TLS_VERSIONS = ("TLS10", "TLS11", "TLS12", "TLS13")

# Go's tls.CipherSuites() (the suites crypto/tls calls secure) -> OpenSSL's names. The TLS 1.3 suites are
# accepted and, as in Go, change nothing: TLS 1.3 suites are not configurable.
CIPHER_SUITES: Mapping[str, str | None] = {
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    # RSA key exchange: in tls.CipherSuites() of the Go releases node_exporter 1.x is built with.
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
}
# exporter-toolkit's curve names -> OpenSSL's group names.
CURVES: Mapping[str, str] = {"CurveP256": "P-256", "CurveP384": "P-384", "CurveP521": "P-521", "X25519": "X25519"}

# exporter-toolkit's extraHTTPHeaders: the headers a file may set, and the values allowed where they are an enum.
HEADERS: Mapping[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}

# What golang.org/x/crypto/bcrypt.Cost accepts: $2a$/$2b$/$2y$ (and $2x$), a two-digit cost 4..31, 53 characters.
_BCRYPT = re.compile(r"\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}")

_TOP = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
_TLS_KEYS = (
    "cert",
    "key",
    "client_ca",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "cipher_suites",
    "curve_preferences",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
)
_HTTP_KEYS = ("http2", "headers")


@dataclass(frozen=True)
class TlsServerConfig:
    """``tls_server_config`` with paths made absolute; ``cert``/``key``/``client_ca`` are inline PEM."""

    cert_file: Path | None = None
    cert: str = ""
    key_file: Path | None = None
    key: str = ""
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_ca: str = ""
    client_allowed_sans: tuple[str, ...] | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    curve_preferences: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None)


@dataclass(frozen=True)
class WebFile:
    """One reading of the web configuration file."""

    path: Path
    tls: TlsServerConfig | None = None  # None: plain HTTP
    http2: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    users: Mapping[str, str] = field(default_factory=dict)  # user -> bcrypt hash

    @property
    def files(self) -> tuple[Path, ...]:
        """The file itself and every file it names: what a reload watches."""
        return (self.path, *(self.tls.files if self.tls is not None else ()))


def _error(path: Path, key: str, message: str) -> ConfigError:
    return ConfigError(f"{OPTION} {path}", f"{key}: {message}" if key else message)


def read_web_file(path: Path) -> WebFile:
    """The file parsed and checked; ConfigError names the file, the key and the fix."""
    import yaml  # here, not at the top: a process without --web.config.file never loads it

    try:
        text = path.read_text()
    except OSError as e:
        raise _error(path, "", f"cannot read it ({e.strerror}); pass the path of a web configuration file") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _error(path, "", f"not valid YAML{where}; fix the syntax") from None
    return parse_web_file(raw, path)


def _mapping(path: Path, key: str, value: Any, known: tuple[str, ...]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _error(path, key, f"expected a mapping, not {type(value).__name__}")
    for k in value:
        if k not in known:
            where = f"{key}.{k}" if key else str(k)
            raise _error(path, where, f"unknown key; the keys here are {', '.join(known)}")
    return value


def _string(path: Path, key: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _error(path, key, f"expected a string, not {value!r}")
    return value


def _strings(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _error(path, key, "expected a list of strings")
    return tuple(value)


def _file(path: Path, key: str, value: Any) -> Path | None:
    text = _string(path, key, value)
    return (path.parent / text) if text else None  # an absolute path stays absolute


def _choice(path: Path, key: str, value: str, names: tuple[str, ...] | Mapping[str, Any], what: str) -> str:
    if value not in names:
        raise _error(path, key, f"unknown {what} {value!r}; use one of {', '.join(names)}")
    return value


def parse_web_file(raw: Any, path: Path) -> WebFile:
    top = _mapping(path, "", raw, _TOP)
    if top.get("rate_limit") is not None:
        raise _error(path, "rate_limit", "not supported here; remove it (--web.max-requests bounds concurrent scrapes)")
    tls = _parse_tls(path, _mapping(path, "tls_server_config", top.get("tls_server_config"), _TLS_KEYS))
    http = _mapping(path, "http_server_config", top.get("http_server_config"), _HTTP_KEYS)
    http2 = http.get("http2", True)
    if not isinstance(http2, bool):
        raise _error(path, "http_server_config.http2", f"expected true or false, not {http2!r}")
    return WebFile(
        path=path,
        tls=tls,
        http2=http2,
        headers=_parse_headers(path, http.get("headers")),
        users=_parse_users(path, top.get("basic_auth_users")),
    )


def _parse_tls(path: Path, raw: Mapping[str, Any]) -> TlsServerConfig | None:
    k = "tls_server_config."
    auth = _string(path, k + "client_auth_type", raw.get("client_auth_type"))
    auth = _choice(path, k + "client_auth_type", _CLIENT_AUTH_ALIASES.get(auth, auth), CLIENT_AUTH_TYPES, "policy")
    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        text = _string(path, k + name, raw.get(name)) or default
        versions[name] = _choice(path, k + name, text, TLS_VERSIONS, "TLS version")
    if TLS_VERSIONS.index(versions["min_version"]) > TLS_VERSIONS.index(versions["max_version"]):
        raise _error(path, k + "min_version", "is above max_version; lower min_version or raise max_version")
    suites = _strings(path, k + "cipher_suites", raw.get("cipher_suites"))
    for s in suites:
        _choice(path, k + "cipher_suites", s, CIPHER_SUITES, "cipher suite")
    curves = _strings(path, k + "curve_preferences", raw.get("curve_preferences"))
    for c in curves:
        _choice(path, k + "curve_preferences", c, CURVES, "curve")
    prefer = raw.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise _error(path, k + "prefer_server_cipher_suites", f"expected true or false, not {prefer!r}")
    sans = raw.get("client_allowed_sans")
    tls = TlsServerConfig(
        cert_file=_file(path, k + "cert_file", raw.get("cert_file")),
        cert=_string(path, k + "cert", raw.get("cert")),
        key_file=_file(path, k + "key_file", raw.get("key_file")),
        key=_string(path, k + "key", raw.get("key")),
        client_auth_type=auth,
        client_ca_file=_file(path, k + "client_ca_file", raw.get("client_ca_file")),
        client_ca=_string(path, k + "client_ca", raw.get("client_ca")),
        client_allowed_sans=None if sans is None else _strings(path, k + "client_allowed_sans", sans),
        min_version=versions["min_version"],
        max_version=versions["max_version"],
        cipher_suites=suites,
        curve_preferences=curves,
        prefer_server_cipher_suites=prefer,
    )
    # exporter-toolkit's TLSConfig.IsEnabled: any of these turns TLS on, and then cert and key must be there.
    enabled = any((tls.cert_file, tls.cert, tls.key_file, tls.key, tls.client_ca_file, tls.client_ca)) or bool(
        raw.get("client_auth_type")
    )
    if not enabled:
        return None
    if tls.cert_file is None and not tls.cert:
        raise _error(path, k + "cert_file", "missing one of cert or cert_file; give the server certificate")
    if tls.key_file is None and not tls.key:
        raise _error(path, k + "key_file", "missing one of key or key_file; give the server certificate's key")
    if (tls.client_ca_file is not None or tls.client_ca) and auth == "NoClientCert":
        raise _error(
            path,
            k + "client_auth_type",
            "client CAs are configured without a client auth policy; set client_auth_type "
            "(e.g. RequireAndVerifyClientCert) or remove client_ca_file",
        )
    if tls.client_allowed_sans is not None and auth not in ("RequireAnyClientCert", "RequireAndVerifyClientCert"):
        raise _error(
            path,
            k + "client_allowed_sans",
            "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert",
        )
    return tls


def _parse_headers(path: Path, raw: Any) -> tuple[tuple[str, str], ...]:
    key = "http_server_config.headers"
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise _error(path, key, "expected a mapping of header name to value")
    out = []
    for name, value in raw.items():
        allowed = HEADERS.get(name)
        if allowed is None:
            known = ", ".join(HEADERS)
            raise _error(path, f"{key}.{name}", f"this header can not be configured; the headers are {known}")
        text = value if isinstance(value, str) else str(value) if isinstance(value, int | float) else None
        if text is None:
            raise _error(path, f"{key}.{name}", f"expected a string, not {value!r}")
        if allowed and text not in allowed:
            raise _error(path, f"{key}.{name}", f"invalid value {text!r}; use one of {', '.join(allowed)}")
        if "\n" in text or "\r" in text:
            raise _error(path, f"{key}.{name}", "a header value can not contain a line break")
        out.append((name, text))
    return tuple(out)


def _parse_users(path: Path, raw: Any) -> Mapping[str, str]:
    key = "basic_auth_users"
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _error(path, key, "expected a mapping of user name to bcrypt hash")
    users = {}
    for user, hashed in raw.items():
        if not isinstance(user, str) or not isinstance(hashed, str):
            raise _error(path, f"{key}.{user}", "user names and hashes must be strings")
        m = _BCRYPT.fullmatch(hashed)
        if m is None or not 4 <= int(m.group(1)) <= 31:
            raise _error(
                path,
                f"{key}.{user}",
                "not a bcrypt hash; store a hash, not the password (e.g. htpasswd -nBC 10 USER)",
            )
        users[user] = hashed
    return users
