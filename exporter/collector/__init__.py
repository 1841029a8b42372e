"""Snapshot -> metric families, and the renderer that turns them into exposition bytes.

The collectors only translate a Snapshot; they read no files and no clock. The
Renderer runs on the sampler's worker, once per snapshot that a scrape asks
for, so the scrapes after the first only pick cached bytes (text 0.0.4 or
OpenMetrics, gzipped on first demand).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE

from exporter.collector.cgroup import CgroupRenderer
from exporter.collector.cpu import CpuFamilies
from exporter.collector.exposition import ExpositionWriter, Piece
from exporter.collector.filesystem import collect_filesystem
from exporter.collector.guest import GuestRenderer
from exporter.collector.gzipped import EMPTY, Deflated, Deflater, concat, gzip_body, plain_body
from exporter.collector.http import collect_http
from exporter.collector.memory import collect_load, collect_memory
from exporter.collector.network import collect_network
from exporter.collector.self import collect_self
from exporter.collector.syscalls import collect_syscalls
from exporter.collector.vm import render_vm
from exporter.snapshot import Snapshot

# The classic text format Prometheus 2.x asks for; all our names are legacy-valid,
# so the bytes are the same under text format 1.0.0.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# A collector yields prometheus_client families, or Pieces it wrote as text itself (collector/cpu.py).
SnapshotCollectorFn = Callable[[Snapshot], Iterable[Metric | Piece]]


def default_collectors(version: str) -> list[SnapshotCollectorFn]:
    """The collectors of one Renderer (the CPU families keep what its last render wrote)."""
    cpu = CpuFamilies()
    return [
        cpu.cpu,
        cpu.frequency,
        collect_memory,
        collect_load,
        collect_filesystem,
        collect_network,
        collect_syscalls,
        collect_http,
        lambda snap: collect_self(snap, version),
    ]


@dataclass(frozen=True)
class CachedFamilies:
    """Families written straight to text (collector/exposition.py) and rewritten only when ``key(snapshot)`` changes.

    For parts of the snapshot that are large or sampled on their own job
    (cgroups, guests): the other steps reuse their bytes and their compressed
    form. They come first in the exposition, ahead of the
    families from the registry (family order carries no meaning).
    """

    key: Callable[[Snapshot], object]
    render: Callable[[Snapshot], list[Piece]]


def _cgroups(snap: Snapshot) -> object:
    return snap.cgroups


def _guests(snap: Snapshot) -> object:
    return snap.guests


def _vms(snap: Snapshot) -> object:
    return snap.vms


def cached_families() -> tuple[CachedFamilies, ...]:
    """The cached families of one Renderer (the guest renderer counts failures across its snapshots; the
    cgroup renderer keeps the bytes of families that did not change)."""
    return (
        CachedFamilies(_cgroups, CgroupRenderer()),
        CachedFamilies(_guests, GuestRenderer()),
        CachedFamilies(_vms, render_vm),
    )


class Exposition:
    """Rendered bytes of one snapshot, each format a pre-compressed prefix (the cached families) and a tail.

    The plain body is joined and the gzip body built once each, on the first
    scrape that asks for them (or, for the bodies asked of the snapshot before,
    by the Renderer as it renders); the gzip body only compresses the tail.
    """

    def __init__(self, text: tuple[Deflated, bytes], openmetrics: tuple[Deflated, bytes]) -> None:
        self._parts = {False: text, True: openmetrics}
        self._plain: dict[bool, bytes] = {}
        self._gzipped: dict[bool, bytes] = {}

    def body(self, openmetrics: bool, gzipped: bool) -> tuple[bytes, str]:
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        cache = self._gzipped if gzipped else self._plain
        data = cache.get(openmetrics)
        if data is None:
            prefix, tail = self._parts[openmetrics]
            data = gzip_body(prefix, tail) if gzipped else plain_body(prefix, tail)
            cache[openmetrics] = data
        return data, content_type

    def asked(self) -> tuple[tuple[bool, bool], ...]:
        """The (openmetrics, gzipped) bodies built so far: the formats scrapes asked of this snapshot."""
        # tuple() of a dict runs without releasing the GIL: safe while a scrape on the loop adds a body
        return tuple((om, True) for om in tuple(self._gzipped)) + tuple((om, False) for om in tuple(self._plain))


class _SnapshotCollector:
    def __init__(self, collectors: list[SnapshotCollectorFn]) -> None:
        self.collectors = collectors
        self.snapshot: Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        """The families, in the registry's order; a Piece passes through the registry (which only
        iterates) to the ExpositionWriter as it is."""
        if self.snapshot is None:
            return
        for fn in self.collectors:
            yield from cast("Iterable[Metric]", fn(self.snapshot))


class Renderer:
    """Renders snapshots through a private registry; call from one thread at a time (the sampler)."""

    def __init__(
        self,
        collectors: list[SnapshotCollectorFn],
        registry: CollectorRegistry | None = None,
        cached: Sequence[CachedFamilies] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
        self._collector = _SnapshotCollector(collectors)
        self.registry.register(self._collector)
        self._writer = ExpositionWriter()
        self._cached = tuple(cached) if cached is not None else cached_families()
        self._keys: list[object] = [object()] * len(self._cached)
        self._deflated: list[tuple[Deflated, Deflated]] = [(EMPTY, EMPTY)] * len(self._cached)
        self._deflaters = [Deflater() for _ in self._cached]
        self._prefix = (EMPTY, EMPTY)
        self._last: Exposition | None = None  # the last rendering: which bodies its scrapes asked for

    def _cached_prefix(self, snap: Snapshot) -> tuple[Deflated, Deflated]:
        """The cached families' bytes, deflated again only when one of them changed."""
        changed = False
        for i, part in enumerate(self._cached):
            key = part.key(snap)
            if key is not self._keys[i]:
                self._keys[i], deflated = key, self._deflaters[i](part.render(snap))
                if deflated is not self._deflated[i]:  # the same pieces as before give the same prefixes
                    self._deflated[i], changed = deflated, True
        if changed:
            self._prefix = (concat([t for t, _ in self._deflated]), concat([om for _, om in self._deflated]))
        return self._prefix

    def __call__(self, snap: Snapshot) -> Exposition:
        self._collector.snapshot = snap
        try:
            text, openmetrics = self._writer.render(self.registry.collect())
        finally:
            self._collector.snapshot = None
        text_prefix, openmetrics_prefix = self._cached_prefix(snap)
        exposition = Exposition((text_prefix, text), (openmetrics_prefix, openmetrics))
        # The bodies the scrapes asked of the last snapshot are built here, on the render thread, before
        # any scrape of this one asks: gzip of a 256-CPU body is 1.5 ms the event loop would otherwise spend.
        if self._last is not None:
            for openmetrics_asked, gzipped in self._last.asked():
                exposition.body(openmetrics_asked, gzipped)
        self._last = exposition
        return exposition
