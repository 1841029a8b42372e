"""The web configuration file as it is now: re-read when it or a file it names changes.

exporter-toolkit reads the file on every request and every TLS handshake. Here
each request and handshake only stats the files (the file, its certificate,
key and client CA): a change of any of them reads the file and the
certificates again. A reading that fails keeps the last good configuration and
logs one line; start-up with a bad file raises ConfigError instead.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.config.flags import ConfigError
from exporter.config.webfile import OPTION, WebFile, read_web_file
from exporter.web.tls import build_context

log = logging.getLogger("exporter.web")

Stamp = tuple[tuple[int, int, int] | None, ...]


@dataclass(frozen=True)
class Active:
    """One good reading: the parsed file and the TLS context built from it (None: plain HTTP)."""

    file: WebFile
    tls: ssl.SSLContext | None


def load(path: Path) -> Active:
    file = read_web_file(path)
    return Active(file, build_context(file.tls, path) if file.tls is not None else None)


def _stamp(paths: tuple[Path, ...], stat: Callable[[Path], os.stat_result]) -> Stamp:
    out: list[tuple[int, int, int] | None] = []
    for p in paths:
        try:
            st = stat(p)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


class LiveWebFile:
    """``current()`` is the last good reading of the file, re-read after any watched file changed."""

    def __init__(self, path: Path, stat: Callable[[Path], os.stat_result] = os.stat) -> None:
        self._path, self._stat = path, stat
        self._active = load(path)  # ConfigError: start-up stops
        self._watch = self._active.file.files
        self._stamp = _stamp(self._watch, stat)

    def current(self) -> Active:
        stamp = _stamp(self._watch, self._stat)
        if stamp == self._stamp:
            return self._active
        watch = self._active.file.files
        try:
            file = read_web_file(self._path)
            watch = tuple(dict.fromkeys(watch + file.files))  # a fixed path is noticed even if this reading fails
            if (file.tls is None) != (self._active.tls is None):
                raise ConfigError(f"{OPTION} {self._path}", "turning TLS on or off needs a restart")
            active = Active(file, build_context(file.tls, self._path) if file.tls is not None else None)
        except ConfigError as e:
            log.error("%s; keeping the last good web configuration", e)
            active = self._active
        else:
            log.info("reloaded the web configuration from %s", self._path)
            watch = active.file.files
        self._active, self._watch = active, watch
        self._stamp = _stamp(watch, self._stat)
        return active

    def tls(self) -> ssl.SSLContext:
        """The context for the next handshake (only called when the listener speaks TLS)."""
        ctx = self.current().tls
        assert ctx is not None, "a TLS listener has a TLS context"
        return ctx
