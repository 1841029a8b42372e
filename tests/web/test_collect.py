"""collect[]: families of the named sources cut from the exposition the sampler rendered."""

from __future__ import annotations

import asyncio
import fnmatch
import gzip
from functools import partial

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from exporter.catalogue import SOURCES
from exporter.collector import Renderer, default_collectors
from exporter.http import Published, make_app
from exporter.sampler import Job, Sampler
from exporter.snapshot import CpuSources, SystemClock, take_snapshot
from exporter.web.collect import COLLECTABLE, FilteredBodies
from exporter.web.collect import middleware as collect_middleware
from tests.helpers import FIXTURES, GOLDEN, parse_exposition

ROOT = FIXTURES / "vm-2cpu"
# The exporter's own families and the guests' (not sources of this host): collect[] leaves them out.
SELF = ("sysmon_source_*", "sysmon_build_info", "sysmon_last_sample_timestamp_seconds", "sysmon_http_*")
SELF += ("sysmon_guest_*", "sysmon_sampler_*")


def golden_families() -> set[str]:
    import re

    return {n for p in GOLDEN.glob("*.prom") for n in re.findall(r"^# TYPE (\S+) ", p.read_text(), re.MULTILINE)}


def test_every_source_family_belongs_to_a_source_and_every_pattern_to_a_family():
    families = golden_families()
    patterns = {p for s in SOURCES.values() for p in s.families}
    orphans = {f for f in families if not any(fnmatch.fnmatchcase(f, p) for p in patterns | set(SELF))}
    assert orphans == set()
    unused = {p for p in patterns if not any(fnmatch.fnmatchcase(f, p) for f in families)}
    assert unused == set()


@pytest.fixture
async def client(aiohttp_client):  # type: ignore[no-untyped-def]
    readers = CpuSources(ROOT / "proc", ROOT / "sys", 100, frozenset({"cpu", "cpuinfo", "meminfo"}))
    sampler = Sampler([Job("cpu", 0.05, partial(take_snapshot, readers=readers, clock=SystemClock()))],
                      Renderer(default_collectors("test")))
    app = make_app(Published(sampler.latest, sampler.rendered), "test", (collect_middleware("/metrics"),))
    c = await aiohttp_client(app)
    await sampler.start()
    await asyncio.wait_for(sampler.ready.wait(), 5)
    await sampler.stop()  # one sample, frozen
    yield c


async def test_collect_serves_only_the_named_sources(client):  # type: ignore[no-untyped-def]
    full = parse_exposition(await (await client.get("/metrics")).text())
    resp = await client.get("/metrics?collect[]=meminfo&collect[]=cpu")
    assert resp.status == 200
    got = parse_exposition(await resp.text())
    assert "sysmon_memory_total_bytes" in got and "sysmon_cpu_seconds_total" in got
    assert "sysmon_cpu_frequency_hertz" not in got and "sysmon_build_info" not in got
    assert {dict(k)["source"] for k in got["sysmon_source_success"]} == {"cpu", "meminfo"}
    assert got["sysmon_memory_total_bytes"] == full["sysmon_memory_total_bytes"]
    only_freq = parse_exposition(await (await client.get("/metrics?collect[]=cpuinfo")).text())
    assert set(only_freq) == {
        "sysmon_cpu_frequency_hertz",
        "sysmon_cpu_frequency_source_info",
        "sysmon_source_success",
        "sysmon_source_duration_seconds",
    }


async def test_collect_in_openmetrics_and_gzip(client):  # type: ignore[no-untyped-def]
    accept = {"Accept": "application/openmetrics-text;version=1.0.0", "Accept-Encoding": "gzip"}
    resp = await client.get("/metrics?collect[]=cpu", headers=accept, auto_decompress=False)
    assert resp.headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(await resp.read()).decode()
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    names = {f.name for f in parse_openmetrics(text)}
    assert {"sysmon_cpu_seconds", "sysmon_source_success"} <= names
    # The usage ratio needs two samples, the guest time a kernel that counts it: either may be absent.
    assert names - {"sysmon_cpu_usage_ratio", "sysmon_cpu_guest_seconds"} == {
        "sysmon_cpu_seconds",
        "sysmon_source_success",
        "sysmon_source_duration_seconds",
    }


async def test_unknown_collector_is_400(client):  # type: ignore[no-untyped-def]
    resp = await client.get("/metrics?collect[]=cpu&collect[]=nope")
    assert resp.status == 400
    text = await resp.text()
    assert "nope" in text and all(n in text for n in COLLECTABLE)


def test_cut_bodies_are_kept_per_exposition_and_filter():
    readers = CpuSources(ROOT / "proc", ROOT / "sys", 100, frozenset({"cpu", "cpuinfo", "meminfo"}))
    render = Renderer(default_collectors("test"))
    first = render(take_snapshot(None, readers, SystemClock()))
    bodies = FilteredBodies()
    a = bodies.get(first, frozenset({"cpu"}), False, False)
    assert bodies.get(first, frozenset({"cpu"}), False, False)[0] is a[0]  # kept, not cut again
    assert bodies.get(first, frozenset({"meminfo"}), False, False)[0] != a[0]
    second = render(take_snapshot(None, readers, SystemClock()))
    assert bodies.get(second, frozenset({"cpu"}), False, False)[0] is not a[0]  # a new sample, cut anew
