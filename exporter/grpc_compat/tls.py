"""mTLS for the AgentService listener: TLS 1.3 only, a client certificate signed by the client CA required.

grpcio (1.85) cannot bound the TLS version of a server (grpc/grpc#37305; its
server credentials accept TLS 1.2 and 1.3), so TLS is terminated here with
Python's ssl module, where ``minimum_version`` is set, and each connection is
spliced to the gRPC server, which listens in plaintext on a unix socket in a
private (0700) directory that only this user can reach. ALPN offers ``h2``
as gRPC clients require.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from pathlib import Path

from exporter.config import SYSMON_VM_OPTION, ConfigError, TlsFiles

log = logging.getLogger("exporter.grpc")

_CHUNK = 64 * 1024


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The server's SSLContext; a bad PEM stops start-up with one line naming the file."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])
    load_pems(ctx, files.cert_file, files.key_file, files.client_ca_file, SYSMON_VM_OPTION)
    return ctx


def load_pems(ctx: ssl.SSLContext, cert: Path, key: Path, ca: Path, option: str) -> None:
    """Our certificate and key, and the CA the peer's must chain to; a bad PEM is a ConfigError naming ``option``."""
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(option, f"{cert} / {key}: not a matching PEM certificate and key: {e}") from None
    try:
        ctx.load_verify_locations(cafile=ca)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(option, f"{ca}: not a PEM CA certificate: {e}") from None


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, active: list[float] | None = None
) -> None:
    """Copies until EOF or an error, stamping ``active[0]`` (if given) with the loop time of each chunk."""
    loop = asyncio.get_running_loop()
    try:
        while data := await reader.read(_CHUNK):
            if active is not None:
                active[0] = loop.time()
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        writer.close()


async def _idle(active: list[float], timeout: float) -> None:
    """Returns once ``active[0]`` is ``timeout`` seconds old."""
    loop = asyncio.get_running_loop()
    while (left := active[0] + timeout - loop.time()) > 0:
        await asyncio.sleep(left)


class TlsTerminator:
    """Accepts TLS on host:port and splices each connection to the unix socket at ``upstream``.

    A connection that carries no byte either way for ``idle_timeout`` seconds is
    closed: a client with a valid certificate cannot hold a descriptor forever.
    """

    def __init__(self, context: ssl.SSLContext, upstream: str, idle_timeout: float = 300.0) -> None:
        self._context = context
        self._upstream = upstream
        self._idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_unix_connection(self._upstream)
            except OSError as e:
                log.warning("gRPC upstream %s unreachable: %s", self._upstream, e.strerror)
                client_writer.close()
                return
            active = [asyncio.get_running_loop().time()]
            pipes = {
                asyncio.create_task(_pipe(client_reader, up_writer, active)),
                asyncio.create_task(_pipe(up_reader, client_writer, active)),
            }
            idle = asyncio.create_task(_idle(active, self._idle_timeout))
            try:
                done, _ = await asyncio.wait({*pipes, idle}, return_when=asyncio.FIRST_COMPLETED)
                if idle in done:  # no traffic for idle_timeout: end both sides; the pipes then stop
                    client_writer.close()
                    up_writer.close()
                await asyncio.wait(pipes)
            finally:
                for task in (*pipes, idle):
                    task.cancel()
        except asyncio.CancelledError:
            # stop() ended the connection. Returning, not re-raising: before Python 3.13 the
            # start_server done-callback calls task.exception() on a cancelled task, which logs
            # "Exception in callback ..." with a traceback for every connection open at shutdown.
            pass
        finally:
            self._connections.discard(task)

    async def start(self, host: str, port: int) -> int:
        """Listens and returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(
            self._handle, host or None, port, ssl=self._context, reuse_address=True, ssl_handshake_timeout=10
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            await close_server(self._server, self._connections)
            self._server = None


async def close_server(server: asyncio.Server, connections: set[asyncio.Task[None]]) -> None:
    """Stops listening and ends the connections still being spliced."""
    server.close()
    for task in list(connections):
        task.cancel()
    with contextlib.suppress(Exception):
        await asyncio.gather(*connections, return_exceptions=True)
    await server.wait_closed()
