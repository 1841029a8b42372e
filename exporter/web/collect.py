"""``collect[]`` query parameters: one scrape asks for some sources only, as node_exporter's filtered handler.

``/metrics?collect[]=cpu&collect[]=meminfo`` serves the families those
sources feed (``Source.families`` in the catalogue) and their
``sysmon_source_success`` / ``sysmon_source_duration_seconds`` samples, cut
from the exposition the sampler already rendered: nothing is collected on the
scrape path. The cut body (and its gzip) is kept per exposition and set of
names, so repeated scrapes with one filter cost a dictionary lookup. An
unknown name is 400, as node_exporter answers.
"""

from __future__ import annotations

import fnmatch
import gzip
import re

from aiohttp import web

from exporter.catalogue import SOURCES
from exporter.collector import Exposition
from exporter.http import PUBLISHED, wants_gzip, wants_openmetrics
from exporter.web.auth import Handler, Middleware

COLLECTABLE = tuple(name for name, s in SOURCES.items() if s.families)
_PER_SOURCE = ("sysmon_source_success", "sysmon_source_duration_seconds")
_MAX_FILTERS = 32  # distinct filter sets kept per exposition; past it bodies are cut but not kept
_SOURCE_LABEL = re.compile(r'source="([^"]*)"')


def _family(block: str) -> str:
    """The family name of a block that starts with ``# HELP name``."""
    return block[len("# HELP ") :].split(" ", 1)[0]


def cut(body: bytes, names: frozenset[str]) -> bytes:
    """The families of ``names`` (and their per-source samples) from a text or OpenMetrics exposition."""
    patterns = [p for n in names for p in SOURCES[n].families]
    text = body.decode()
    eof = text.endswith("# EOF\n")
    if eof:
        text = text[: -len("# EOF\n")]
    blocks = re.split(r"(?m)^(?=# HELP )", text)
    out = []
    for block in blocks:
        if not block:
            continue
        family = _family(block)
        candidates = (family, family + "_total")  # OpenMetrics names counters without _total
        if any(fnmatch.fnmatchcase(c, p) for c in candidates for p in patterns):
            out.append(block)
        elif family in _PER_SOURCE:
            lines = block.splitlines(keepends=True)
            kept = [
                line
                for line in lines
                if line.startswith("#") or ((m := _SOURCE_LABEL.search(line)) is not None and m.group(1) in names)
            ]
            if len(kept) > sum(1 for line in kept if line.startswith("#")):
                out.append("".join(kept))
    return ("".join(out) + ("# EOF\n" if eof else "")).encode()


class FilteredBodies:
    """Cut bodies of the latest exposition, by (names, OpenMetrics, gzip)."""

    def __init__(self) -> None:
        self._of: Exposition | None = None
        self._bodies: dict[tuple[frozenset[str], bool, bool], tuple[bytes, str]] = {}

    def get(self, exposition: Exposition, names: frozenset[str], openmetrics: bool, gzipped: bool) -> tuple[bytes, str]:
        if exposition is not self._of:
            self._of, self._bodies = exposition, {}
        key = (names, openmetrics, gzipped)
        found = self._bodies.get(key)
        if found is not None:
            return found
        body, content_type = exposition.body(openmetrics, False)
        filtered = cut(body, names)
        if gzipped:
            filtered = gzip.compress(filtered, compresslevel=6, mtime=0)
        if len(self._bodies) < _MAX_FILTERS * 4:
            self._bodies[key] = (filtered, content_type)
        return filtered, content_type


def middleware(telemetry_path: str) -> Middleware:
    bodies = FilteredBodies()

    @web.middleware
    async def collect_filter(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != telemetry_path or "collect[]" not in request.query:
            return await handler(request)
        names = frozenset(request.query.getall("collect[]"))
        unknown = sorted(names - set(COLLECTABLE))
        if unknown:
            text = f"unknown collector {', '.join(unknown)} in collect[]; use {', '.join(COLLECTABLE)}\n"
            return web.Response(status=400, text=text)
        exposition = await request.app[PUBLISHED].rendered()
        if exposition is None:
            return web.Response(status=503, text="no sample taken yet\n")
        gzipped = wants_gzip(request.headers.get("Accept-Encoding", ""))
        body, content_type = bodies.get(
            exposition, names, wants_openmetrics(request.headers.get("Accept", "")), gzipped
        )
        headers = {"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    return collect_filter
