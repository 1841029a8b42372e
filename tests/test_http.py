import asyncio
import gzip
import threading
from functools import partial

import pytest

from exporter.collector import Renderer, default_collectors
from exporter.http import Published, make_app, wants_gzip, wants_openmetrics
from exporter.sampler import Job, Sampler
from exporter.snapshot import CpuSources, Snapshot, SystemClock, take_snapshot
from tests.helpers import FIXTURES, parse_exposition

ROOT = FIXTURES / "vm-2cpu"
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def make_sampler():
    readers = CpuSources(ROOT / "proc", ROOT / "sys", 100, frozenset({"cpu", "cpuinfo", "meminfo"}))
    step = partial(take_snapshot, readers=readers, clock=SystemClock())
    return Sampler([Job("cpu", 0.05, step)], Renderer(default_collectors("test")))


@pytest.fixture
async def client(aiohttp_client):
    sampler = make_sampler()
    app = make_app(Published(sampler.latest, sampler.rendered), "test")
    client = await aiohttp_client(app)
    client.sampler = sampler
    yield client
    await sampler.stop()


async def test_not_ready_until_first_snapshot(client):
    assert (await client.get("/-/healthy")).status == 200
    assert (await client.get("/-/ready")).status == 503
    assert (await client.get("/metrics")).status == 503
    await client.sampler.start()
    await asyncio.wait_for(client.sampler.ready.wait(), 5)
    assert (await client.get("/-/ready")).status == 200


async def test_metrics_text_openmetrics_and_gzip(client):
    await client.sampler.start()
    await asyncio.wait_for(client.sampler.ready.wait(), 5)
    plain = await client.get("/metrics")
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await plain.text()
    assert 'sysmon_cpu_frequency_hertz{cpu="1"} 2599998000' in text
    assert "# EOF" not in text

    om = await client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "identity"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    body = await om.text()
    assert body.endswith("# EOF\n")
    assert "sysmon_cpu_seconds_total{" in body

    zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await zipped.read()).startswith(b"# HELP")


async def test_scrapes_between_samples_return_the_same_bytes(client):
    """Nothing is collected on the scrape path: two scrapes of one sample are identical."""
    sampler = client.sampler
    await sampler.start()
    await asyncio.wait_for(sampler.ready.wait(), 5)
    await sampler.stop()  # freeze
    a = await (await client.get("/metrics")).read()
    b = await (await client.get("/metrics")).read()
    assert a == b


async def test_the_first_scrape_of_a_new_snapshot_serves_its_values_in_every_format(aiohttp_client):
    """Rendering waits for a scrape; what that scrape gets is the snapshot it found, in each format and gzip."""
    go = threading.Semaphore(0)
    steps = 0

    def step(previous: Snapshot | None) -> Snapshot:
        nonlocal steps
        if steps:
            go.acquire()  # one more snapshot each time the test lets the worker go
        steps += 1
        return Snapshot(timestamp_seconds=1000.0 + steps)

    sampler = Sampler([Job("cpu", 0.01, step)], Renderer(default_collectors("test")))
    client = await aiohttp_client(make_app(Published(sampler.latest, sampler.rendered), "test"))
    await sampler.start()
    try:
        await asyncio.wait_for(sampler.ready.wait(), 5)
        for n in (1, 2):
            if n == 2:
                go.release()
                while (latest := sampler.latest()) is None or latest.timestamp_seconds < 1002:
                    await asyncio.sleep(0.01)
            assert sampler.renders == n - 1  # nothing rendered this snapshot before the scrape below
            bodies = [
                await (await client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})).text(),
                await (await client.get("/metrics", headers={"Accept-Encoding": "identity"})).text(),
            ]
            for accept in (PROMETHEUS_ACCEPT, "text/plain"):
                zipped = await client.get(
                    "/metrics", headers={"Accept": accept, "Accept-Encoding": "gzip"}, auto_decompress=False
                )
                assert zipped.headers["Content-Encoding"] == "gzip"
                bodies.append(gzip.decompress(await zipped.read()).decode())
            for body in bodies:
                assert parse_exposition(body)["sysmon_last_sample_timestamp_seconds"][()] == 1000 + n
            assert bodies[0].endswith("# EOF\n") and bodies[2].endswith("# EOF\n")
            assert "# EOF" not in bodies[1] and "# EOF" not in bodies[3]
            assert sampler.renders == n  # one render served all four
    finally:
        go.release()
        go.release()
        await sampler.stop()


async def test_landing_page_lists_sources(client):
    await client.sampler.start()
    await asyncio.wait_for(client.sampler.ready.wait(), 5)
    page = await (await client.get("/")).text()
    assert "href=metrics" in page and "meminfo" in page and "version test" in page


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", False),
        ("text/plain", False),
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text; version=1.0.0", True),
        ("application/openmetrics-text;q=0", False),
        ("application/openmetrics-text;Q=0", False),
        ("APPLICATION/OpenMetrics-Text", True),
        ("application/openmetrics-text;q=0.0000", False),  # not a qvalue (3 decimals at most): accepts nothing
        ("application/openmetrics-text;q=0.2, text/plain;q=0.8", False),
        ("text/plain;q=0.2, application/openmetrics-text;q=0.8", True),
        ("text/plain;q=0.5, */*;q=0.9", True),  # text is weighed 0.5; OpenMetrics, through */*, 0.9
        ("application/*;q=0.9, text/plain;q=0.5", True),
        ("application/openmetrics-text;q=2", False),
        ("application/openmetrics-text;q=abc", False),
        (";;,,", False),
    ],
    ids=[
        "none",
        "text",
        "prometheus",
        "openmetrics",
        "refused",
        "refused-upper-q",
        "case-insensitive",
        "refused-bad-qvalue",
        "text-ranked-higher",
        "openmetrics-ranked-higher",
        "wildcard-outweighs-named-text",
        "type-wildcard",
        "q-above-1",
        "q-not-a-number",
        "empty-elements",
    ],
)
def test_openmetrics_negotiation(accept, expected):
    assert wants_openmetrics(accept) is expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", False),
        ("gzip", True),
        ("deflate, gzip;q=1.0, *;q=0.5", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("GZIP", True),
        ("gzip;Q=0", False),
        ("gzip;q=0.0000", False),
        ("gzip;q=0.000", False),
        ("gzip;q=0.3, identity;q=0.9", False),
        ("gzip;q=0.3, identity;q=0", True),
        ("gzip;q=0.3, *;q=0.1", True),
        ("gzip;q=0.3, *;q=0.9", False),
        ("gzip ; q = 0.5", True),
        ("*", False),
    ],
    ids=[
        "none",
        "gzip",
        "prometheus",
        "refused",
        "identity",
        "upper-case",
        "refused-upper-q",
        "refused-bad-qvalue",
        "refused-q-0.000",
        "identity-ranked-higher",
        "identity-refused",
        "wildcard-lower",
        "wildcard-higher",
        "spaces",
        "wildcard-only",
    ],
)
def test_gzip_negotiation(header, expected):
    assert wants_gzip(header) is expected
