"""The server TLS context from ``tls_server_config``, as exporter-toolkit's ConfigToTLSConfig builds Go's.

Python's ``ssl`` has no API for two things crypto/tls does: a list of
groups (``curve_preferences``; ``set_ecdh_curve`` takes one) and asking for a
client certificate without verifying it (``RequestClientCert``,
``RequireAnyClientCert``). Both are one OpenSSL call on the context's
``SSL_CTX``, made here through ctypes on the OpenSSL that ``_ssl`` is linked
to: ``SSL_CTX_set1_groups_list`` (a macro over ``SSL_CTX_ctrl``) and
``SSL_CTX_set_verify`` with a callback that accepts every chain.
"""

from __future__ import annotations

import ctypes
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from exporter.config.flags import ConfigError
from exporter.config.webfile import CIPHER_SUITES, CURVES, OPTION, TlsServerConfig

_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_SSL_CTRL_SET_GROUPS_LIST = 92  # openssl/ssl.h
_SSL_VERIFY_PEER = 0x01
_SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 0x02
_VERIFY_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_ACCEPT_ANY = _VERIFY_CB(lambda ok, store: 1)


def _libssl() -> ctypes.CDLL:
    lib = ctypes.CDLL(ssl._ssl.__file__)  # type: ignore[attr-defined]  # resolves libssl's symbols through _ssl
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CB]
    lib.SSL_CTX_set_verify.restype = None
    return lib


def _ssl_ctx(context: ssl.SSLContext) -> int:
    """The SSL_CTX pointer: CPython's PySSLContext is ``{PyObject_HEAD; SSL_CTX *ctx; ...}``."""
    head = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    pointer = ctypes.c_void_p.from_address(id(context) + head).value
    if not pointer:
        raise OSError("no SSL_CTX behind this SSLContext")
    return pointer


def _error(path: Path, key: str, message: str) -> ConfigError:
    return ConfigError(f"{OPTION} {path}", f"tls_server_config.{key}: {message}")


def _pem(path: Path, key: str, file: Path | None, inline: str, what: str) -> str:
    if file is None:
        return inline
    try:
        return file.read_text()
    except OSError as e:
        raise _error(path, key, f"cannot read {file} ({e.strerror}); fix the path to the {what}") from None
    except UnicodeDecodeError:
        raise _error(path, key, f"{file} is not PEM text; give a PEM {what}") from None


def build_context(tls: TlsServerConfig, path: Path) -> ssl.SSLContext:
    """A server context for ``tls``, certificates and keys read now; ConfigError names the key at fault."""
    cert = _pem(path, "cert_file", tls.cert_file, tls.cert, "certificate")
    key = _pem(path, "key_file", tls.key_file, tls.key, "private key")
    try:  # parse the certificate alone first, so that an error says which of the two is wrong
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=cert)
    except (ssl.SSLError, ValueError):
        raise _error(path, "cert_file", "not a PEM certificate; give the server certificate in PEM") from None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[tls.min_version]
    ctx.maximum_version = _VERSIONS[tls.max_version]
    # load_cert_chain reads only files: hand it the PEM through a private temporary file.
    with tempfile.NamedTemporaryFile("w", prefix="sysmon-tls-", suffix=".pem") as pem:
        pem.write(cert.rstrip("\n") + "\n" + key)
        pem.flush()
        try:
            ctx.load_cert_chain(pem.name)
        except ssl.SSLError as e:
            raise _error(
                path,
                "key_file",
                f"cannot load the key ({e.reason or e}); give the PEM private key of the certificate",
            ) from None
    ca = _pem(path, "client_ca_file", tls.client_ca_file, tls.client_ca, "client CA")
    if ca:
        try:
            ctx.load_verify_locations(cadata=ca)
        except (ssl.SSLError, ValueError) as e:
            raise _error(path, "client_ca_file", f"no CA certificate in it ({e}); give PEM CA certificates") from None
    _client_auth(ctx, tls.client_auth_type, bool(ca))
    openssl = [CIPHER_SUITES[s] for s in tls.cipher_suites]
    tls12 = [name for name in openssl if name is not None]
    if tls12:
        ctx.set_ciphers(":".join(tls12))
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.curve_preferences:
        groups = ":".join(CURVES[c] for c in tls.curve_preferences).encode()
        if _libssl().SSL_CTX_ctrl(_ssl_ctx(ctx), _SSL_CTRL_SET_GROUPS_LIST, 0, groups) != 1:
            raise _error(path, "curve_preferences", "this OpenSSL refused the list; remove curves it lacks")
    ctx.set_alpn_protocols(["http/1.1"])  # aiohttp speaks HTTP/1.1 only, whatever http2 says
    return ctx


def _client_auth(ctx: ssl.SSLContext, policy: str, have_ca: bool) -> None:
    if policy == "NoClientCert":
        ctx.verify_mode = ssl.CERT_NONE
    elif policy == "VerifyClientCertIfGiven":
        ctx.verify_mode = ssl.CERT_OPTIONAL
    elif policy == "RequireAndVerifyClientCert":
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:  # RequestClientCert, RequireAnyClientCert: ask, take any certificate, verify none
        mode = _SSL_VERIFY_PEER | (_SSL_VERIFY_FAIL_IF_NO_PEER_CERT if policy == "RequireAnyClientCert" else 0)
        _libssl().SSL_CTX_set_verify(_ssl_ctx(ctx), mode, _ACCEPT_ANY)
        return
    if ctx.verify_mode != ssl.CERT_NONE and not have_ca:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Go verifies against the system roots without client CAs


class ReloadingContext(ssl.SSLContext):
    """An SSLContext whose every new connection uses the context ``current()`` returns.

    asyncio and uvloop wrap each accepted connection with ``context.wrap_bio``;
    routing that call lets certificates, keys and the TLS settings change on
    disk without a restart, as exporter-toolkit's GetConfigForClient does.
    """

    current: Callable[[], ssl.SSLContext]  # set by make_reloading

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self.current().wrap_bio(incoming, outgoing, server_side, server_hostname, session)


def make_reloading(current: Callable[[], ssl.SSLContext]) -> ReloadingContext:
    ctx = ReloadingContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.current = current
    return ctx
