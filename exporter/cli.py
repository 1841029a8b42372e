"""Entry point: ``sysmon-exporter [flags]`` serves, ``sysmon-exporter syscalls ...`` counts syscalls ad hoc;
``main(argv)`` returns the exit code."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

from exporter import __version__
from exporter.config import SERVE, ConfigError, load

_LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=_LOG_LEVELS[level],
        format="%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


def main(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    if argv[:1] == ["syscalls"]:
        from exporter.syscalls_cmd import main as syscalls_main

        return syscalls_main(argv[1:])
    if "-h" in argv or "--help" in argv:
        print(SERVE.usage())
        return 0
    if "--version" in argv:
        print(f"sysmon-exporter {__version__}")
        return 0
    try:
        config = load(argv, env)
    except ConfigError as e:
        print(f"sysmon-exporter: {e}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)

    import uvloop

    from exporter.app import serve

    return uvloop.run(serve(config))


def console() -> None:
    sys.exit(main(sys.argv[1:]))
