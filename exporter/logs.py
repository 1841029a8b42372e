"""Log lines as Prometheus components write them: logfmt (``--log.format=logfmt``) or one JSON object a line.

logfmt (https://brandur.org/logfmt, go-logfmt's rules): ``key=value`` pairs,
a value quoted when it is empty or holds a space, ``=``, ``"`` or a control
character, with ``\\"``, ``\\\\`` and ``\\n`` escaped inside the quotes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error"}
_NEEDS_QUOTES = re.compile(r'[\s="\x00-\x1f\x7f]')


def _level(record: logging.LogRecord) -> str:
    return _NAMES.get(record.levelno, "error" if record.levelno > logging.ERROR else "debug")


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, str]:
    ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    out = {"ts": ts, "level": _level(record), "logger": record.name, "msg": record.getMessage()}
    if record.exc_info:
        out["err"] = formatter.formatException(record.exc_info)
    return out


def logfmt_value(value: str) -> str:
    if value and not _NEEDS_QUOTES.search(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped.replace(chr(9), chr(92) + "t")}"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={logfmt_value(v)}" for k, v in _fields(record, self).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), ensure_ascii=False)


def setup_logging(level: str, format: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
