"""A source whose read never returns fails alone; the sampler keeps its cadence; /-/ready tells staleness."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from exporter.http import Published, make_app
from exporter.sampler import Job, Sampler
from exporter.snapshot import (
    CpuSources,
    Deadline,
    Snapshot,
    SourceTimeout,
    SystemClock,
    inline_sources,
    take_snapshot,
)
from exporter.sources.mountinfo import parse_mountinfo
from tests.helpers import FIXTURES, http_get, nothing_rendered, parse_exposition, run_exporter, wait_until


def fifo_root(tmp_path: Path) -> Path:
    """vm-2cpu's /proc with meminfo replaced by a FIFO nobody writes: open(2) blocks, as on a hung FUSE file."""
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "vm-2cpu", root, symlinks=True)
    (root / "proc" / "meminfo").unlink()
    os.mkfifo(root / "proc" / "meminfo")
    return root


def release(fifo: Path) -> None:
    """Unblocks the reader (a writer opens the FIFO and closes it) and puts the real file in the FIFO's place."""
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # succeeds because a reader is waiting
    try:
        real = fifo.with_name("meminfo.real")
        shutil.copyfile(FIXTURES / "vm-2cpu" / "proc" / "meminfo", real)
        real.rename(fifo)
    finally:
        os.close(fd)


def test_hung_source_fails_alone_and_is_not_read_again_while_blocked(tmp_path):
    root = fifo_root(tmp_path)
    readers = CpuSources(root / "proc", root / "sys", 100, frozenset({"cpu", "meminfo"}))
    deadline = Deadline(0.2)
    before = threading.active_count()
    snap: Snapshot | None = None
    for _ in range(5):
        snap = take_snapshot(snap, readers, SystemClock(), deadline)
        assert snap.statuses["meminfo"].success is False
        assert snap.statuses["meminfo"].error.startswith("timed out after 0.2s")
        assert snap.statuses["cpu"].success is True
    # one thread per source (cpu, meminfo), not one per tick
    assert threading.active_count() - before == 2
    release(root / "proc" / "meminfo")
    # the blocked read returns; the next one reads the file now in its place
    wait_until(
        lambda: take_snapshot(None, readers, SystemClock(), deadline).statuses["meminfo"].success,
        what="meminfo to be read again once its blocked read returned",
    )
    assert threading.active_count() - before == 2


def test_inline_sources_run_on_the_calling_thread_and_the_rest_under_the_deadline(tmp_path):
    root = fifo_root(tmp_path)
    readers = CpuSources(root / "proc", root / "sys", 100, frozenset({"cpu", "meminfo"}))
    deadline = Deadline(0.2, inline=frozenset({"cpu"}))
    threads: dict[str, threading.Thread] = {}

    def where(name: str) -> str:
        threads[name] = threading.current_thread()
        return name

    assert deadline.call("cpu", lambda: where("cpu")) == "cpu"
    assert deadline.call("loadavg", lambda: where("loadavg")) == "loadavg"
    assert threads["cpu"] is threading.current_thread()
    assert threads["loadavg"] is not threading.current_thread()
    # a blocked source still fails by its deadline alone while the inline one is read
    snap = None
    for _ in range(3):
        snap = take_snapshot(snap, readers, SystemClock(), deadline)
        assert snap.statuses["meminfo"].error.startswith("timed out after 0.2s")
        assert snap.statuses["cpu"].success is True
    release(root / "proc" / "meminfo")


HOST_MOUNTS = b"""\
1 0 254:1 / / rw - ext4 /dev/vda rw
2 1 0:20 / /proc rw - proc proc rw
3 1 0:21 / /sys rw - sysfs sysfs rw
4 1 0:22 / /run rw - tmpfs tmpfs rw
"""


def test_inline_sources_are_those_reading_only_proc_and_sysfs_files(tmp_path):
    host = CpuSources(Path("/proc"), Path("/sys"), 100, frozenset())
    mounts = parse_mountinfo(HOST_MOUNTS)
    everything = {"cpu", "meminfo", "loadavg", "cpuinfo", "network", "cpufreq", "host", "perf"}
    assert inline_sources(host, mounts) == everything
    # never the sources that can wait on a process, a socket or any filesystem
    assert not inline_sources(host, mounts) & {"filesystem", "processes", "vm", "hoststate", "cgroup"}
    lxcfs = parse_mountinfo(HOST_MOUNTS + b"5 2 0:23 /proc/meminfo /proc/meminfo rw - fuse.lxcfs lxcfs rw\n")
    assert inline_sources(host, lxcfs) == everything - {"meminfo"}
    # a fixture tree of ordinary files (where a FIFO may stand in for a hung file): only perf, with no files
    root = fifo_root(tmp_path)
    fixture = CpuSources(root / "proc", root / "sys", 100, frozenset())
    assert inline_sources(fixture, parse_mountinfo(HOST_MOUNTS)) == {"perf"}
    # no mount table: nothing but perf (which reads no files)
    assert inline_sources(host, []) == {"perf"}


def test_fifo_meminfo_in_the_real_process_fails_meminfo_and_cpu_keeps_sampling(tmp_path):
    root = fifo_root(tmp_path)
    args = [
        f"--path.procfs={root / 'proc'}",
        f"--path.sysfs={root / 'sys'}",
        "--sampler.interval=100ms",
        "--sampler.source-timeout=300ms",
        "--no-collector.perf",
        "--no-collector.filesystem",
        "--no-collector.cgroup",
        "--no-collector.syscalls",
    ]
    with run_exporter(args, tmp_path) as exporter:

        def meminfo_timed_out() -> dict[str, dict[tuple[tuple[str, str], ...], float]] | None:
            series = parse_exposition(exporter.metrics())
            ok = series["sysmon_source_success"]
            return series if ok[(("source", "meminfo"),)] == 0 and ok[(("source", "cpu"),)] == 1 else None

        first = wait_until(meminfo_timed_out, what="meminfo to fail by its deadline")
        stamp = first["sysmon_last_sample_timestamp_seconds"][()]
        # samples go on while the read stays blocked
        wait_until(
            lambda: parse_exposition(exporter.metrics())["sysmon_last_sample_timestamp_seconds"][()] > stamp + 0.5,
            what="the sampler to keep sampling",
        )
        assert http_get(exporter.url + "/-/ready")[0] == 200
        assert parse_exposition(exporter.metrics())["sysmon_source_success"][(("source", "meminfo"),)] == 0
        assert "source meminfo failed: timed out after 0.3s" in exporter.stderr()
        assert exporter.stderr().count("source meminfo failed") == 1  # one line, not one per tick


async def test_ready_is_503_with_the_reason_when_a_job_stops_sampling(aiohttp_client):
    unblock = threading.Event()
    calls = []

    def step(previous: Snapshot | None) -> Snapshot:
        calls.append(time.monotonic())
        if len(calls) > 1:
            unblock.wait()
        return Snapshot(timestamp_seconds=len(calls))

    sampler: Sampler[Snapshot] = Sampler([Job("cpu", 0.05, step)], lambda snap: snap)
    client = await aiohttp_client(make_app(Published(sampler.latest, nothing_rendered, sampler.stale), "test"))
    await sampler.start()
    try:

        async def ready() -> tuple[int, str]:
            resp = await client.get("/-/ready")
            return resp.status, await resp.text()

        await asyncio.wait_for(sampler.ready.wait(), 10)
        while (answer := await ready())[0] == 200:
            await asyncio.sleep(0.02)
        status, text = answer
        assert status == 503
        assert "job cpu has had no good sample for" in text and "(interval 0.05s)" in text
        unblock.set()
        while (await ready())[0] != 200:
            await asyncio.sleep(0.02)
    finally:
        unblock.set()
        await sampler.stop()


def test_an_inline_call_runs_on_the_calling_thread_but_not_while_an_earlier_read_is_blocked():
    deadline = Deadline(0.2)
    before = threading.active_count()
    assert deadline.call("vm", threading.current_thread, inline=True) is threading.current_thread()
    assert threading.active_count() == before  # no thread of its own for a source only read inline
    hold = threading.Event()
    try:
        with pytest.raises(SourceTimeout):
            deadline.call("vm", hold.wait)
        ran: list[bool] = []
        with pytest.raises(SourceTimeout, match="not read again until the blocked read returns"):
            deadline.call("vm", lambda: ran.append(True), inline=True)
        assert ran == []  # never beside the blocked read
    finally:
        hold.set()
