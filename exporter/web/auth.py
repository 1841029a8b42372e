"""Basic auth, client SAN checks and response headers from the web configuration file.

As exporter-toolkit's web/handler.go: every response carries the configured
headers; with ``basic_auth_users`` a request needs a user and a password whose
bcrypt hash matches, else 401 with ``WWW-Authenticate: Basic``. An unknown user
is checked against a fixed hash, so timing does not tell which users exist.

bcrypt costs tens of milliseconds by design, so a verified password is kept
(per user, as a SHA-256 digest compared in constant time with the next one) and
a scrape pays bcrypt only once per user and hash. bcrypt runs in a thread, one
at a time, so a client sending wrong passwords slows only other first logins,
never the event loop or the sampler.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from exporter.web.live import LiveWebFile

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

# bcrypt of a password nobody has (cost 10): checked for unknown users so they take as long as known ones.
_DECOY = b"$2b$10$aW23HsL.3/dNtvzmek1x4Og/tVsiXBRaDYKDIFh9ayV399KFGED2i"


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic ...`` header, or None."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def bcrypt_checkpw(password: bytes, hashed: bytes) -> bool:
    """bcrypt.checkpw, imported by the first password checked: a process without basic_auth_users never loads it."""
    import bcrypt

    return bcrypt.checkpw(password, hashed)


class Verifier:
    """Checks passwords against bcrypt hashes, remembering the last verified password of each user."""

    def __init__(self, checkpw: Callable[[bytes, bytes], bool] = bcrypt_checkpw) -> None:
        self._checkpw = checkpw
        self._verified: dict[str, tuple[str, bytes]] = {}  # user -> (hash, SHA-256 of the password)
        self._lock = asyncio.Lock()

    async def check(self, users: Mapping[str, str], user: str, password: str) -> bool:
        hashed = users.get(user)
        digest = hashlib.sha256(password.encode()).digest()
        known = self._verified.get(user)
        if hashed is not None and known is not None and known[0] == hashed and hmac.compare_digest(known[1], digest):
            return True
        target = hashed.encode() if hashed is not None else _DECOY
        async with self._lock:
            ok = await asyncio.to_thread(self._checkpw, password.encode(), target)
        if ok and hashed is not None:
            self._verified[user] = (hashed, digest)
            return True
        return False


def _sans(peercert: object) -> set[str]:
    """The SAN values of a peer certificate as crypto/tls lists them (DNS, email, IP, URI)."""
    out: set[str] = set()
    if not isinstance(peercert, dict):
        return out
    for kind, value in peercert.get("subjectAltName", ()):
        if kind == "IP Address":
            try:
                value = str(ipaddress.ip_address(value.strip()))
            except ValueError:
                continue
        out.add(value)
    return out


def middleware(live: LiveWebFile, open_paths: frozenset[str]) -> Middleware:
    """The aiohttp middleware enforcing the file on every path; ``open_paths`` skip basic auth."""
    verifier = Verifier()

    @web.middleware
    async def front_door(request: web.Request, handler: Handler) -> web.StreamResponse:
        file = live.current().file
        headers = dict(file.headers)
        allowed = file.tls.client_allowed_sans if file.tls is not None else None
        if allowed is not None:
            peer = request.transport.get_extra_info("peercert") if request.transport is not None else None
            if not _sans(peer) & set(allowed):
                text = "the client certificate has none of the allowed SANs\n"
                return web.Response(status=403, text=text, headers=headers)
        if file.users and request.path not in open_paths:
            creds = basic_credentials(request.headers.get("Authorization", ""))
            if creds is None or not await verifier.check(file.users, *creds):
                headers["WWW-Authenticate"] = "Basic"
                return web.Response(status=401, text="Unauthorized\n", headers=headers)
        try:
            response = await handler(request)
        except web.HTTPException as e:
            e.headers.update(headers)
            raise
        response.headers.update(headers)
        return response

    return front_door
