"""Entry point: ``sysmon-exporter [flags]`` serves; ``main(argv)`` returns the exit code.

Subcommands: ``agent`` (inside a guest), ``diag`` (what works on this machine),
``verify-record FILE --public-key=FILE`` (check signed guest records),
``syscalls [-p PID] [--cgroup PATH] [-i 5s] [-d 1m]`` (syscall counts ad hoc).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

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
