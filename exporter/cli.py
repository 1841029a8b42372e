"""Entry point: ``sysmon-exporter [flags]`` serves; ``main(argv)`` returns the exit code.

Subcommands: ``agent`` (inside a guest), ``diag`` (what works on this machine),
``verify-record FILE --public-key=FILE`` (check signed guest records),
``syscalls [-p PID] [--cgroup PATH] [-i 5s] [-d 1m]`` (syscall counts ad hoc).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence

from exporter import __version__
from exporter.config import SERVE, ConfigError, FlagSet, load


def setup_logging(level: str, format: str = "logfmt") -> None:
    from exporter.logs import setup_logging as setup

    setup(level, format)


def version_text() -> str:
    """Version, Python and build lines, as Prometheus components print them."""
    import importlib.metadata
    import platform
    import ssl

    def dist(name: str) -> str:
        try:
            return f"{name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            return f"{name} missing"

    libraries = ", ".join(dist(n) for n in ("aiohttp", "prometheus-client", "uvloop", "bcrypt", "PyYAML"))
    return "\n".join(
        [
            f"sysmon-exporter, version {__version__}",
            f"  python: {platform.python_version()} ({platform.python_implementation()})",
            f"  platform: {platform.system().lower()}/{platform.machine()}",
            f"  build: {libraries}, {ssl.OPENSSL_VERSION}",
        ]
    )


# Read by libraries at their import; set while the server's modules are imported, then as they were.
# aiohttp's client builds two TLS contexts at import (aiohttp/connector.py, _SSL_CONTEXT_VERIFIED and
# _UNVERIFIED) and each loads the system CA bundle (144 certificates on Debian 12): about 2 MiB of RSS
# the exporter never uses, as it makes no aiohttp client request. OpenSSL reads SSL_CERT_FILE when the
# contexts load their default paths; an empty file gives them no certificates. frozenlist's C++
# extension maps libstdc++ (about 1 MiB); aiohttp keeps only an app's middlewares, signals and cleanup
# contexts in FrozenLists, built at start-up (a response only asks whether on_response_prepare is empty),
# so the pure-Python FrozenList does as well. A TLS listener's context is built after the import, from
# the web configuration file's own certificates.
_SERVER_IMPORT_ENVIRONMENT = {"SSL_CERT_FILE": os.devnull, "FROZENLIST_NO_EXTENSIONS": "1"}


@contextlib.contextmanager
def _server_only_imports() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in _SERVER_IMPORT_ENVIRONMENT}
    os.environ.update(_SERVER_IMPORT_ENVIRONMENT)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def _serve(argv: Sequence[str], env: Mapping[str, str]) -> int:
    config = load(argv, env)
    if config.grpc is not None:
        try:
            import exporter.grpc_compat.server
        except ImportError as e:
            raise ConfigError(
                "--grpc.listen-address", f"the gRPC shim needs {e.name}; pip install 'sysmon-exporter[grpc]'"
            ) from None
    if config.serviceradar is not None:
        try:
            import exporter.grpc_compat.push  # noqa: F401

            if config.serviceradar.tls is not None:
                import cryptography  # noqa: F401  (the certificate's CN)
        except ImportError as e:
            raise ConfigError(
                "--serviceradar.gateway", f"the gateway push needs {e.name}; pip install 'sysmon-exporter[grpc]'"
            ) from None
    setup_logging(config.log_level, config.log_format)
    for warning in config.warnings:
        logging.getLogger("exporter").warning("%s", warning)

    import signal

    from exporter.sources.libc import limit_malloc_arenas

    limit_malloc_arenas(1)  # before any thread starts (see limit_malloc_arenas)
    with _server_only_imports():
        import uvloop

        from exporter.app import IGNORED_SIGNALS, serve

    for sig in IGNORED_SIGNALS:  # until serve() installs its handlers
        signal.signal(sig, signal.SIG_IGN)

    return uvloop.run(serve(config))


def _agent(argv: Sequence[str], env: Mapping[str, str]) -> int:
    from exporter.guest.run import run_agent

    return run_agent(argv, env, setup_logging)


def _diag(argv: Sequence[str], env: Mapping[str, str]) -> int:
    from exporter.diag import run_diag

    return run_diag(argv, env)


def _verify(argv: Sequence[str], env: Mapping[str, str]) -> int:
    from exporter.guest.run import run_verify

    return run_verify(argv, env)


def _flagsets() -> dict[str, tuple[FlagSet, Callable[[Sequence[str], Mapping[str, str]], int]]]:
    from exporter.config import AGENT, DIAG, VERIFY

    return {"agent": (AGENT, _agent), "diag": (DIAG, _diag), "verify-record": (VERIFY, _verify)}


def main(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    if argv[:1] == ["syscalls"]:  # short flags in the spirit of the tools it replaces; its own parser
        from exporter.syscalls_cmd import main as syscalls_main

        return syscalls_main(argv[1:])
    commands = _flagsets()
    flags, command = commands.get("", (SERVE, _serve))
    if argv and argv[0] in commands:
        flags, command = commands[argv[0]]
        argv = argv[1:]
    if "-h" in argv or "--help" in argv:
        print(flags.usage())
        return 0
    if "--version" in argv:
        print(version_text())
        return 0
    try:
        return command(argv, env)
    except ConfigError as e:
        print(f"sysmon-exporter: {e}", file=sys.stderr)
        return 2


def console() -> None:
    try:
        code = main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``sysmon-exporter --help | head``): nothing more to say. Point stdout at
        # /dev/null so the interpreter's own flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
