"""Composition root: builds readers, sampler, renderer and servers from a Config, and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import resource
import signal
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter import __version__
from exporter.catalogue import JOBS, of_job
from exporter.collector import Exposition, Renderer, default_collectors
from exporter.config import Config, ConfigError, GuestConfig
from exporter.http import ConnectionLimits, Connections, Published, make_app
from exporter.sampler import Chore, Job, Sampler, Step
from exporter.snapshot import (
    CgroupSources,
    Clock,
    CpuSources,
    Deadline,
    Snapshot,
    SyscallSources,
    SystemClock,
    describe,
    inline_sources,
    read_cgroup_step,
    refresh_instants,
    take_cgroup_snapshot,
    take_snapshot,
    take_syscalls,
    with_guests,
    with_http,
)
from exporter.sources import HeldFiles, SourceError
from exporter.sources.cgroup import CgroupLimits, CgroupMemo
from exporter.sources.dirwatch import watch_budget
from exporter.sources.libc import release_free_heap
from exporter.sources.mountinfo import MountInfo, read_mountinfo
from exporter.sources.mounts import MountFilter
from exporter.sources.perf import PerfCounters, PerfUnavailable, ThreadCycles
from exporter.sources.qmp import query_vcpu_threads
from exporter.sources.stat import read_stat, user_hz
from exporter.sources.vm import QmpQuery, VmWatch
from exporter.web import (
    collect_filter,
    describe_listeners,
    exporter_registry,
    instrument,
    open_front_door,
    start_sites,
)

# The guest ingest and recorder, the syscall counters (a BPF loader) and the gRPC shim are imported
# where their features are turned on, so a process without them does not load them (tests/test_app_imports.py).
if TYPE_CHECKING:
    from exporter.grpc_compat.push import Pusher
    from exporter.guest.ingest import Ingest
    from exporter.guest.record import Recorder

log = logging.getLogger("exporter")

# Descriptors kept free for the sources (each read opens one; the cgroup walk one per level; the inline
# sources hold one per file) and the gRPC shim, whatever the web clients hold.
FD_RESERVE = 128
VM_HELD_FILES = 4096  # the vm source's held vCPU files: 2,048 vCPU threads read with one pread each per file
# The inline sources' held files (HeldFiles): the proc files and two cpufreq files per CPU of a 1,000-CPU host
HELD_FILES = 2048


@contextlib.contextmanager
def open_perf(config: Config) -> Iterator[tuple[PerfCounters | None, str]]:
    """perf counters for every online CPU, or None and the reason; closed on exit."""
    if "perf" not in config.collectors:
        yield None, ""
        return
    try:
        counters = PerfCounters(config.roots.procfs)
    except PerfUnavailable as e:
        yield None, e.strerror or str(e)
        return
    try:
        for cpu in sorted(read_stat(config.roots.procfs, user_hz())):
            counters.open_cpu(cpu)
    except (OSError, SourceError) as e:  # a malformed /proc/stat fails perf as a source, never start-up
        counters.close()
        yield None, e.strerror if isinstance(e, OSError) and e.strerror else describe(e)
        return
    try:
        yield counters, ""
    finally:
        counters.close()


@contextlib.contextmanager
def open_vms(config: Config) -> Iterator[VmWatch | None]:
    """The VM watch (with per-vCPU cycle counters while perf is on and the kernel allows them); closed on exit."""
    if "vm" not in config.collectors:
        yield None
        return
    qmp: QmpQuery | None = None
    pattern = config.vm.qmp_socket
    if pattern:
        qmp = lambda vm: query_vcpu_threads(pattern.replace("{vm}", vm))  # noqa: E731
    cycles = None
    if "perf" in config.collectors:
        with contextlib.suppress(PerfUnavailable):
            cycles = ThreadCycles(config.roots.procfs)
    # Discovery in the background: the sampler's vm-discovery chore (build_sampler) runs it.
    watch = VmWatch(
        config.roots.procfs,
        config.vm.rescan_seconds,
        config.vm.max_count,
        qmp,
        cycles,
        background=True,
        held_files=vm_held_files(),
    )
    try:
        yield watch
    finally:
        watch.close()


# Signals whose default action would end the process; a stray kill -HUP, -USR1, -USR2 or -ALRM must not.
IGNORED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)


def _ignored(sig: signal.Signals) -> None:
    if sig == signal.SIGHUP:
        # Prometheus components re-read their configuration on SIGHUP; every setting here
        # (flags, --sysmon-vm.config and its TLS files) is read once at start.
        log.info("SIGHUP: nothing to reload; flags and --sysmon-vm.config (with its TLS files) apply at restart")
    else:
        log.info("%s ignored", sig.name)


def build_recorder(guest: GuestConfig) -> Recorder | None:
    """The row recorder for --guest.record; ConfigError when the signing key cannot be used."""
    if guest.record_dir is None:
        return None
    from exporter.guest.record import Recorder, load_private_key

    signer = load_private_key(guest.sign_key) if guest.sign_key is not None else None
    return Recorder(guest.record_dir, guest.record_max_bytes, signer=signer, fmt=guest.record_format)


def build_ingest(guest: GuestConfig, clock: Clock, recorder: Recorder | None) -> Ingest | None:
    if not guest.enabled:
        return None
    from exporter.guest.ingest import Ingest

    return Ingest(guest, clock, recorder)


@contextlib.contextmanager
def open_syscalls(config: Config) -> Iterator[SyscallSources | None]:
    """The syscall counters attached with the configured filters (or the reason they are not); closed on exit."""
    if "syscalls" not in config.collectors:
        yield None
        return
    from exporter.sources.bpf import BpfUnavailable
    from exporter.sources.syscalls import Filter, SyscallCounter

    machine = platform.machine()
    filt = Filter(
        pid=config.syscalls.pid,
        cgroup=config.syscalls.cgroup,
        exclude_self=not config.syscalls.include_self,
        by=config.syscalls.by,
        containers=config.syscalls.containers,
    )
    try:
        counter = SyscallCounter(config.roots.procfs, config.roots.sysfs, filt)
    except (BpfUnavailable, SourceError, OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, BpfUnavailable) and e.strerror else describe(e)
        yield SyscallSources(None, reason, machine, config.syscalls.by, config.syscalls.top)
        return
    try:
        yield SyscallSources(counter, "", machine, config.syscalls.by, config.syscalls.top)
    finally:
        counter.close()


def _descriptor_limit() -> int:
    """The soft RLIMIT_NOFILE, raised to the hard limit first, as Go programs do at start (RLIM_INFINITY if so)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def vm_held_files() -> int:
    """vCPU files (two per vCPU thread) the vm source may hold open: VM_HELD_FILES, at most a quarter of the limit."""
    return _a_quarter_at_most(VM_HELD_FILES)


def held_files() -> int:
    """Kernel files the inline sources may hold open (HeldFiles): HELD_FILES, at most a quarter of the limit;
    those past it are opened at each read."""
    return _a_quarter_at_most(HELD_FILES)


def _a_quarter_at_most(files: int) -> int:
    soft = _descriptor_limit()
    return files if soft == resource.RLIM_INFINITY else min(files, soft // 4)


def connection_cap(config: Config) -> int:
    """--web.max-connections, lowered (with a warning) to leave FD_RESERVE descriptors (and one per guest and VM) free.

    Raises the soft RLIMIT_NOFILE to the hard limit first, as Go programs do at start.
    """
    soft = _descriptor_limit()
    if soft == resource.RLIM_INFINITY:
        return config.web.max_connections
    reserve = FD_RESERVE + len(os.listdir("/proc/self/fd")) + (config.guest.max_vms if config.guest.enabled else 0)
    if "cpufreq" in config.collectors:  # its two held files per CPU (the proc files are in FD_RESERVE)
        reserve += min(held_files(), 2 * (os.cpu_count() or 1))
    if "vm" in config.collectors:
        # a task directory per VM, and the vCPU files it may hold (those already open are in /proc/self/fd)
        reserve += config.vm.max_count + vm_held_files()
    room = max(1, soft - reserve)
    if room < config.web.max_connections:
        log.warning(
            "--web.max-connections=%d lowered to %d: the descriptor limit is %d and %d are kept for the sources; "
            "raise LimitNOFILE (ulimit -n)",
            config.web.max_connections,
            room,
            soft,
            reserve,
        )
        return room
    return config.web.max_connections


def own_mounts(config: Config) -> list[MountInfo]:
    """The exporter's own mount table (its namespace's), or none when it cannot be read: every source then
    runs under the deadline."""
    try:
        return read_mountinfo(config.roots.procfs)
    except (OSError, SourceError) as e:
        log.debug("no mount table (%s): every source runs on a thread of its own", describe(e))
        return []


def _reads_latest(config: Config) -> bool:
    """Whether the gRPC shim or the ServiceRadar push is on: they read the latest snapshot (and the host's
    identity) at times of their callers', which the sampler does not follow as it follows scrapes."""
    return config.grpc is not None or config.serviceradar is not None


def _with_http(step: Step, connections: Connections) -> Step:
    view = connections.view
    return lambda prev: with_http(step(prev), view)


def build_sampler(
    config: Config,
    readers: CpuSources,
    ingest: Ingest | None = None,
    syscalls: SyscallSources | None = None,
    registry: CollectorRegistry | None = None,
    connections: Connections | None = None,
) -> Sampler[Exposition]:
    if registry is None:
        registry = exporter_registry(config.web)
    render = Renderer(default_collectors(__version__), registry)
    clock = SystemClock()
    interval = config.sampler.interval_seconds
    # Every source that could hang runs under this deadline on a thread of its own (a hung read fails
    # only its source); those reading only proc and sysfs files run on the sampler's thread.
    deadline = Deadline(config.sampler.source_timeout_seconds, inline_sources(readers, own_mounts(config)))

    scrapes_only = not _reads_latest(config)

    def cpu() -> Job:
        step: Step = partial(take_snapshot, readers=readers, clock=clock, deadline=deadline)
        light: Step | None = None
        refresh: Step | None = None
        if scrapes_only:
            # Only scrapes read the snapshot: a tick no scrape is expected to see reads only what CPU
            # usage's window needs, and an unexpected scrape has the rest read as it comes. The gRPC
            # shim and the push read the latest snapshot at times the sampler does not track.
            light = partial(take_snapshot, readers=readers, clock=clock, deadline=deadline, instants=False)
            refresh = partial(refresh_instants, readers=readers, clock=clock, deadline=deadline)
        if connections is not None and not config.web.disable_exporter_metrics:
            # The listener's counts ride on the CPU job's samples (a job of their own would render twice as often).
            step = _with_http(step, connections)
            if light is not None:
                light = _with_http(light, connections)
        # The guest ingest sends each tick's host lines (the VMs' frequencies) down its channels: with it on,
        # every tick runs, light or whole.
        return Job("cpu", interval, step, light=light, refresh=refresh, pause_unseen=scrapes_only and ingest is None)

    def cgroup() -> Job:
        c = config.cgroup
        limits = CgroupLimits(c.max_depth, c.include, c.exclude, c.max_count)
        memo = CgroupMemo(watch_budget(config.roots.procfs))
        cgroups = CgroupSources(config.roots.cgroupfs, limits, readers.hz, config.roots.sysfs, memo)
        step = partial(take_cgroup_snapshot, readers=cgroups, clock=clock, deadline=deadline)
        walk = partial(read_cgroup_step, readers=cgroups, clock=clock, deadline=deadline)
        # Only scrapes read cgroups without the gRPC shim and the push (see cpu()): a cycle no scrape is
        # expected to see is skipped, and a scrape that finds the last one older than the interval has it run.
        return Job("cgroup", c.interval_seconds, step, prepare=walk, skip_unseen=scrapes_only)

    def syscall_job() -> Job:
        attached = syscalls or SyscallSources(None, "syscall counters are not attached", platform.machine())
        return Job("syscalls", interval, partial(take_syscalls, readers=attached, clock=clock, deadline=deadline))

    # One job per catalogue job with an enabled source; the CPU job also stamps every sample.
    make = {"cpu": cpu, "cgroup": cgroup, "syscalls": syscall_job}
    jobs = [make[job]() for job in JOBS if job == "cpu" or of_job(job) & config.collectors]
    if ingest is not None:
        from exporter.guest.downlink import host_lines

        # The ingest's state reaches HTTP only through the snapshot, like every other source; the host
        # lines go down each channel from the latest snapshot first, so their counts are in this one.
        def guest_step(prev: Snapshot | None) -> Snapshot:
            if prev is not None and prev.vms:
                ingest.send_host_lines(host_lines(prev, interval))
            return with_guests(prev, ingest.view)

        jobs.append(Job("guest", interval, guest_step))
    chores = []
    if isinstance(readers.vms, VmWatch) and readers.vms.background:
        # Every process's comm is read at each discovery: on a thread of its own, so no sample carries it.
        # Only scrapes read the snapshot (see cpu()): a discovery no scrape's sample would read is skipped.
        unseen = scrapes_only and ingest is None  # the ingest sends each tick's host lines, VMs and all
        chores.append(Chore("vm-discovery", readers.vms.rescan_seconds, readers.vms.rescan, skip_unseen=unseen))
    return Sampler(jobs, render, chores)


async def start_ingest(ingest: Ingest) -> bool:
    try:
        await ingest.start()
    except OSError as e:
        log.error("--guest.listen: cannot listen on %s: %s; check the path or port", e.filename or "", e.strerror)
        return False
    return True


def build_pusher(config: Config, latest: Callable[[], Snapshot | None]) -> Pusher | None:
    """The ServiceRadar gateway push, or None; ConfigError for a certificate that cannot be used."""
    if config.serviceradar is None:
        return None
    from exporter.grpc_compat.identity import resolve_identity
    from exporter.grpc_compat.push import Pusher
    from exporter.sources.addresses import read_source_ip
    from exporter.sources.mounts import Mount, stat_filesystem

    return Pusher(
        config.serviceradar,
        resolve_identity(config.serviceradar),
        latest,
        version=__version__,
        statvfs=lambda path: stat_filesystem(Mount("", path, "", False), config.roots.rootfs),
        source_ip=partial(read_source_ip, config.roots.procfs),
    )


async def serve(config: Config) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for sig in IGNORED_SIGNALS:
        loop.add_signal_handler(sig, _ignored, sig)
    recorder = build_recorder(config.guest)  # a ConfigError stops start-up with one line
    ingest = build_ingest(config.guest, SystemClock(), recorder)
    try:
        if ingest is not None and not await start_ingest(ingest):
            return 1
        return await _serve(config, stop, ingest)
    finally:
        if ingest is not None:
            await ingest.stop()
        if recorder is not None:
            recorder.close()


async def _release_after(ready: asyncio.Event) -> None:
    await ready.wait()
    if release_free_heap():
        log.debug("start-up's freed heap given back to the kernel (malloc_trim)")


async def _serve(config: Config, stop: asyncio.Event, ingest: Ingest | None) -> int:
    front = open_front_door(config.web)  # a bad --web.config.file stops start-up with one line
    with (
        open_perf(config) as (perf, perf_error),
        open_syscalls(config) as syscalls,
        open_vms(config) as vms,
        contextlib.closing(HeldFiles(held_files())) as held,  # closed after the sampler stopped, in the finally below
    ):
        readers = CpuSources(
            config.roots.procfs,
            config.roots.sysfs,
            user_hz(),
            config.collectors,
            perf,
            perf_error,
            host_identity=_reads_latest(config),
            rootfs=config.roots.rootfs,
            mounts=MountFilter(config.filesystem.mount_points_exclude, config.filesystem.fs_types_exclude),
            host_state=config.roots.host_state,
            sampler_interval_seconds=config.sampler.interval_seconds,
            vms=vms,
            filesystem_interval_seconds=config.filesystem.interval_seconds,
            held=held,
        )
        pushing: list[Pusher] = []
        if config.serviceradar is not None:  # processes are read while the gateway's SysmonConfig asks for them
            readers = replace(
                readers,
                collectors=readers.collectors | {"processes"},
                processes_wanted=lambda: any(p.settings.processes for p in pushing),
            )
        registry = exporter_registry(config.web)
        w = config.web
        connections = Connections(
            ConnectionLimits(connection_cap(config), w.read_header_timeout_seconds, w.idle_timeout_seconds)
        )
        sampler = build_sampler(config, readers, ingest, syscalls, registry, connections)
        try:
            pusher = build_pusher(config, sampler.latest)
        except ConfigError as e:
            log.error("%s", e)
            return 2
        if pusher is not None:
            pushing.append(pusher)
        counted, limited = instrument(config.web, registry)
        middlewares = (counted, *front.middlewares, limited, collect_filter(config.web))
        published = Published(sampler.latest, sampler.rendered, sampler.stale)
        app = make_app(published, __version__, middlewares, config.web.telemetry_path)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await start_sites(runner, config.web, front.ssl_context, connections)
        except OSError as e:
            await runner.cleanup()
            log.error("%s", e.strerror)
            return 1
        grpc_server = None
        if config.grpc is not None:
            from exporter.grpc_compat.server import start_server

            try:
                # the first usage window needs two samples: the first, then one interval (plus its cost)
                hold = 2 * config.sampler.interval_seconds + 1.0
                grpc_server = await start_server(config.grpc, sampler.latest, hold)
            except (OSError, ConfigError) as e:
                await runner.cleanup()
                if isinstance(e, ConfigError):
                    log.error("%s", e)
                    return 2
                log.error("--grpc.listen-address: %s; pick a free port", e.strerror or e)
                return 1
            log.info(
                "serving monitoring.AgentService on %s:%d (%s)",
                config.grpc.host or "*",
                grpc_server.port,
                "mTLS, TLS 1.3" if config.grpc.tls else "plaintext",
            )
        await sampler.start()
        # Once the first snapshot is out, start-up's freed memory goes back to the kernel (release_free_heap).
        trimmed = asyncio.create_task(_release_after(sampler.ready))
        if pusher is not None:
            await pusher.start()
        log.info(
            "listening on %s, sampling every %gs, collectors: %s",
            describe_listeners(config.web, front.scheme),
            config.sampler.interval_seconds,
            ", ".join(sorted(config.collectors)),
        )
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            trimmed.cancel()
            if pusher is not None:
                await pusher.stop()
            if grpc_server is not None:
                await grpc_server.stop()
            await runner.cleanup()
            await sampler.stop()
    return 0
