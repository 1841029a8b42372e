"""Snapshot -> metric families, and the renderer that turns them into exposition bytes.

The collectors only translate a Snapshot; they read no files and no clock. The
Renderer runs in the sampler, once per sample, so a scrape only picks cached
bytes (text 0.0.4 or OpenMetrics, gzipped on first demand).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE,
)
from prometheus_client.openmetrics.exposition import (
    generate_latest as generate_openmetrics,
)

from exporter.collector.cgroup import render_cgroup
from exporter.collector.cpu import collect_cpu, collect_frequency
from exporter.collector.memory import collect_memory
from exporter.collector.self import collect_self
from exporter.snapshot import Snapshot

# The classic text format Prometheus 2.x asks for; all our names are legacy-valid,
# so the bytes are the same under text format 1.0.0.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

SnapshotCollectorFn = Callable[[Snapshot], Iterable[Metric]]


def default_collectors(version: str) -> list[SnapshotCollectorFn]:
    return [
        collect_cpu,
        collect_frequency,
        collect_memory,
        lambda snap: collect_self(snap, version),
    ]


@dataclass(frozen=True)
class CachedFamilies:
    """Families written straight to text (collector/text.py) and rewritten only when ``key(snapshot)`` changes.

    For parts of the snapshot that are large and sampled on their own, slower
    interval (cgroups): the CPU step, every second, reuses their bytes.
    """

    key: Callable[[Snapshot], object]
    render: Callable[[Snapshot], tuple[bytes, bytes]]


def _cgroups(snap: Snapshot) -> object:
    return snap.cgroups


CACHED_FAMILIES: tuple[CachedFamilies, ...] = (CachedFamilies(_cgroups, render_cgroup),)

_EOF = b"# EOF\n"


class Exposition:
    """Rendered bytes of one snapshot; gzip happens once, on the first scrape that asks for it."""

    def __init__(self, text: bytes, openmetrics: bytes) -> None:
        self._plain = {False: text, True: openmetrics}
        self._gzipped: dict[bool, bytes] = {}

    def body(self, openmetrics: bool, gzipped: bool) -> tuple[bytes, str]:
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        if not gzipped:
            return self._plain[openmetrics], content_type
        data = self._gzipped.get(openmetrics)
        if data is None:
            data = gzip.compress(self._plain[openmetrics], compresslevel=6, mtime=0)
            self._gzipped[openmetrics] = data
        return data, content_type


class _SnapshotCollector:
    def __init__(self, collectors: list[SnapshotCollectorFn]) -> None:
        self.collectors = collectors
        self.snapshot: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        if self.snapshot is None:
            return
        for fn in self.collectors:
            yield from fn(self.snapshot)


class Renderer:
    """Renders snapshots through a private registry; call from one thread at a time (the sampler)."""

    def __init__(
        self,
        collectors: list[SnapshotCollectorFn],
        registry: CollectorRegistry | None = None,
        cached: Sequence[CachedFamilies] = CACHED_FAMILIES,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
        self._collector = _SnapshotCollector(collectors)
        self.registry.register(self._collector)
        self._cached = tuple(cached)
        self._cache: list[tuple[object, tuple[bytes, bytes]] | None] = [None] * len(self._cached)

    def _cached_bytes(self, snap: Snapshot) -> tuple[bytes, bytes]:
        texts, oms = [], []
        for i, part in enumerate(self._cached):
            key = part.key(snap)
            entry = self._cache[i]
            if entry is None or entry[0] is not key:
                entry = (key, part.render(snap))
                self._cache[i] = entry
            texts.append(entry[1][0])
            oms.append(entry[1][1])
        return b"".join(texts), b"".join(oms)

    def __call__(self, snap: Snapshot) -> Exposition:
        self._collector.snapshot = snap
        try:
            text = generate_latest(self.registry)
            openmetrics = generate_openmetrics(self.registry)  # type: ignore[no-untyped-call]
        finally:
            self._collector.snapshot = None
        extra_text, extra_om = self._cached_bytes(snap)
        return Exposition(text + extra_text, openmetrics.removesuffix(_EOF) + extra_om + _EOF)
