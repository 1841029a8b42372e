"""The in-guest exporter's ``hoststate`` source, through the real HTTP app: fresh, stale, missing,
malformed and other-CPU-count state files written the way the agent writes them."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from functools import partial
from pathlib import Path

import pytest

from exporter.collector import Renderer, default_collectors
from exporter.guest.hoststate import parse_host_line, state_bytes, write_state
from exporter.http import Published, make_app
from exporter.sampler import Job, Sampler
from exporter.snapshot import CpuSources, take_snapshot
from tests.helpers import FIXTURES, parse_exposition

VM = FIXTURES / "vm-2cpu"  # 2 CPUs, no cpufreq, /proc/cpuinfo 2599.998 MHz
NOW = 1_700_000_000.0
SAMPLER_INTERVAL = 0.05


class Clock:
    """A fixed wall clock (the state file's age is measured against it); a real monotonic one.

    ``walls`` counts the samples taken."""

    def __init__(self) -> None:
        self.walls = 0

    def wall(self) -> float:
        self.walls += 1
        return NOW

    def monotonic(self) -> float:
        return time.monotonic()


def write_host_state(path: Path, received: float, vcpus: dict[str, dict[str, object]]) -> None:
    """A state file as the agent writes it after this host line."""
    msg = {"v": 1, "type": "host", "host_wall_ns": 1_699_999_999_000_000_000, "interval_seconds": 1.0, "vcpus": vcpus}
    write_state(path, state_bytes(parse_host_line(json.dumps(msg).encode()), received))


def vcpu(hertz: float | None, steal: float, host_cpu: int = 0) -> dict[str, object]:
    out: dict[str, object] = {"steal_seconds": steal, "host_cpu": host_cpu}
    if hertz is not None:
        out |= {"frequency_hz": hertz, "frequency_source": "cpufreq"}
    return out


@pytest.fixture
async def serve(aiohttp_client):  # type: ignore[no-untyped-def]
    started = []

    async def start(path: Path, clock: Clock | None = None):  # type: ignore[no-untyped-def]
        readers = CpuSources(
            VM / "proc",
            VM / "sys",
            100,
            frozenset({"cpu", "cpufreq", "hoststate", "cpuinfo", "meminfo"}),
            host_state=path,
            sampler_interval_seconds=SAMPLER_INTERVAL,
        )
        step = partial(take_snapshot, readers=readers, clock=clock or Clock())
        sampler = Sampler([Job("cpu", SAMPLER_INTERVAL, step)], Renderer(default_collectors("test")))
        started.append(sampler)
        client = await aiohttp_client(make_app(Published(sampler.latest, sampler.rendered), "test"))
        await sampler.start()
        await asyncio.wait_for(sampler.ready.wait(), 5)
        return client

    yield start
    for sampler in started:
        await sampler.stop()


async def metrics(client) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:  # type: ignore[no-untyped-def]
    response = await client.get("/metrics")
    assert response.status == 200
    return parse_exposition(await response.text())  # type: ignore[no-any-return]


def by_cpu(samples: dict[tuple[tuple[str, str], ...], float]) -> dict[str, float]:
    return {dict(labels)["cpu"]: v for labels, v in samples.items()}


def sources(found: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> dict[str, str]:
    return {dict(k)["cpu"]: dict(k)["source"] for k in found["sysmon_cpu_frequency_source_info"]}


def success(found: dict[str, dict[tuple[tuple[str, str], ...], float]], source: str) -> float:
    return found["sysmon_source_success"][(("source", source),)]


async def test_a_fresh_state_gives_the_hosts_frequency_and_steal(serve, tmp_path):
    path = tmp_path / "host.json"
    write_host_state(path, NOW - 1.0, {"0": vcpu(3.4e9, 12.5, 5), "1": vcpu(2.9e9, 3.25, 2)})
    found = await metrics(await serve(path))
    assert by_cpu(found["sysmon_cpu_frequency_hertz"]) == {"0": 3.4e9, "1": 2.9e9}
    assert sources(found) == {"0": "host", "1": "host"}
    assert by_cpu(found["sysmon_cpu_host_steal_seconds_total"]) == {"0": 12.5, "1": 3.25}
    assert success(found, "hoststate") == 1
    assert (("source", "cpuinfo"),) not in found["sysmon_source_success"]  # every CPU had a frequency already


async def test_a_vcpu_without_a_host_frequency_falls_back_to_cpuinfo(serve, tmp_path):
    path = tmp_path / "host.json"
    write_host_state(path, NOW - 1.0, {"0": vcpu(3.4e9, 1.0), "1": vcpu(None, 2.0)})
    found = await metrics(await serve(path))
    assert by_cpu(found["sysmon_cpu_frequency_hertz"]) == {"0": 3.4e9, "1": 2599998000.0}
    assert sources(found) == {"0": "host", "1": "cpuinfo"}
    assert by_cpu(found["sysmon_cpu_host_steal_seconds_total"]) == {"0": 1.0, "1": 2.0}


async def test_a_state_for_more_vcpus_uses_only_the_guests_cpus(serve, tmp_path):
    path = tmp_path / "host.json"
    write_host_state(path, NOW - 1.0, {str(n): vcpu(3.0e9 + n, float(n)) for n in range(8)})
    found = await metrics(await serve(path))
    assert by_cpu(found["sysmon_cpu_frequency_hertz"]) == {"0": 3.0e9, "1": 3.0e9 + 1}
    assert by_cpu(found["sysmon_cpu_host_steal_seconds_total"]) == {"0": 0.0, "1": 1.0}


async def test_a_state_for_fewer_vcpus_leaves_the_others_to_cpuinfo(serve, tmp_path):
    path = tmp_path / "host.json"
    write_host_state(path, NOW - 1.0, {"1": vcpu(3.1e9, 4.0)})
    found = await metrics(await serve(path))
    assert sources(found) == {"0": "cpuinfo", "1": "host"}
    assert by_cpu(found["sysmon_cpu_host_steal_seconds_total"]) == {"1": 4.0}


async def test_a_stale_state_is_ignored_with_one_log_line(serve, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="exporter.snapshot")
    path = tmp_path / "host.json"
    write_host_state(path, NOW - 3.0, {"0": vcpu(3.4e9, 1.0), "1": vcpu(3.4e9, 1.0)})  # 3 host intervals: stale
    clock = Clock()
    client = await serve(path, clock)
    walls = clock.walls
    while clock.walls < walls + 5:  # several samples, each finding the file stale
        await asyncio.sleep(SAMPLER_INTERVAL)
    found = await metrics(client)
    assert sources(found) == {"0": "cpuinfo", "1": "cpuinfo"}
    assert "sysmon_cpu_host_steal_seconds_total" not in found
    assert success(found, "hoststate") == 1  # read and sound, only old
    assert caplog.text.count("is stale") == 1, caplog.text

    write_host_state(path, NOW - 0.5, {"0": vcpu(3.4e9, 1.0), "1": vcpu(3.4e9, 1.0)})  # the agent writes again
    for _ in range(200):
        if "fresh again" in caplog.text:
            break
        await asyncio.sleep(SAMPLER_INTERVAL)
    assert caplog.text.count("fresh again") == 1
    for _ in range(200):  # the sample that logged it is published once rendered
        if sources(await metrics(client)) == {"0": "host", "1": "host"}:
            break
        await asyncio.sleep(SAMPLER_INTERVAL)
    assert sources(await metrics(client)) == {"0": "host", "1": "host"}


async def test_a_missing_state_file_is_success_with_nothing(serve, tmp_path):
    found = await metrics(await serve(tmp_path / "run" / "sysmon" / "host.json"))
    assert success(found, "hoststate") == 1
    assert sources(found) == {"0": "cpuinfo", "1": "cpuinfo"}
    assert "sysmon_cpu_host_steal_seconds_total" not in found


@pytest.mark.parametrize(
    "content",
    [b"", b'{"v":1,"type":"host"', b'{"v":2,"type":"host","host_wall_ns":1,"interval_seconds":1,"vcpus":{}}\n'],
    ids=["empty", "truncated", "wrong-version"],
)
async def test_a_bad_state_file_fails_the_source_alone_with_one_log_line(serve, tmp_path, caplog, content):
    caplog.set_level(logging.WARNING, logger="exporter.snapshot")
    path = tmp_path / "host.json"
    path.write_bytes(content)
    found = await metrics(await serve(path))
    assert success(found, "hoststate") == 0
    assert success(found, "cpu") == 1 and success(found, "cpuinfo") == 1
    assert sources(found) == {"0": "cpuinfo", "1": "cpuinfo"}
    lines = [r.getMessage() for r in caplog.records if "hoststate" in r.getMessage()]
    assert len(lines) == 1 and str(path) in lines[0], lines


async def test_a_directory_in_place_of_the_state_file_fails_the_source(serve, tmp_path):
    path = tmp_path / "host.json"
    path.mkdir()
    found = await metrics(await serve(path))
    assert success(found, "hoststate") == 0
