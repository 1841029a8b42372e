"""Composition root: builds readers, sampler, renderer and servers from a Config, and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from functools import partial

from aiohttp import web
from prometheus_client import CollectorRegistry, ProcessCollector

from exporter import __version__
from exporter.collector import Exposition, Renderer, default_collectors
from exporter.config import Config
from exporter.http import Published, make_app
from exporter.sampler import Job, Sampler
from exporter.snapshot import CgroupReaders, Readers, SystemClock, take_cgroup_snapshot, take_snapshot
from exporter.sources.cgroup import CgroupLimits
from exporter.sources.perf import PerfCounters, PerfUnavailable
from exporter.sources.stat import read_stat, user_hz

log = logging.getLogger("exporter")


@contextlib.contextmanager
def open_perf(config: Config) -> Iterator[tuple[PerfCounters | None, str]]:
    """perf counters for every online CPU, or None and the reason; closed on exit."""
    if "perf" not in config.collectors:
        yield None, ""
        return
    try:
        counters = PerfCounters(config.procfs)
    except PerfUnavailable as e:
        yield None, e.strerror or str(e)
        return
    try:
        for cpu in sorted(read_stat(config.procfs, user_hz())):
            counters.open_cpu(cpu)
    except (PerfUnavailable, OSError) as e:
        counters.close()
        yield None, e.strerror or str(e)
        return
    try:
        yield counters, ""
    finally:
        counters.close()


def build_sampler(config: Config, readers: Readers) -> Sampler[Exposition]:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    render = Renderer(default_collectors(__version__), registry)
    clock = SystemClock()
    jobs = [Job("cpu", config.sampler_interval, partial(take_snapshot, readers=readers, clock=clock))]
    if "cgroup" in config.collectors:
        limits = CgroupLimits(
            config.cgroup_max_depth, config.cgroup_include, config.cgroup_exclude, config.cgroup_max_count
        )
        cgroups = CgroupReaders(config.cgroupfs, limits, readers.hz)
        jobs.append(Job("cgroup", config.cgroup_interval, partial(take_cgroup_snapshot, readers=cgroups, clock=clock)))
    return Sampler(jobs, render)


async def serve(config: Config) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with open_perf(config) as (perf, perf_error):
        readers = Readers(config.procfs, config.sysfs, user_hz(), config.collectors, perf, perf_error)
        sampler = build_sampler(config, readers)
        app = make_app(Published(sampler.latest, sampler.rendered), __version__)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, config.listen_host or None, config.listen_port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            log.error(
                "--web.listen-address: cannot listen on %s:%d: %s; pick a free port",
                config.listen_host,
                config.listen_port,
                e.strerror,
            )
            return 1
        await sampler.start()
        log.info(
            "listening on %s:%d, sampling every %gs, collectors: %s",
            config.listen_host or "*",
            config.listen_port,
            config.sampler_interval,
            ", ".join(sorted(config.collectors)),
        )
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            await runner.cleanup()
            await sampler.stop()
    return 0
