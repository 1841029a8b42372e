"""The catalogue of sources: one entry per source, and everything else derived from it.

Each :class:`Source` says what the exporter can read: its name (the
``sysmon_source_success{source}`` label and the ``--[no-]collector.<name>``
flag), whether it is on by default here and in the guest agent, which sampler
job reads it, and ``probe``, which runs its real reader once below explicit
roots (``sysmon-exporter diag`` calls it, so a source cannot exist without a
check). The flags (config/collectors.py), the status names the snapshot may
record, the sampler's jobs (app.py), the diag checks, the golden-file runs and
the README's source list (tests) all come from :data:`SOURCES`.

This module is imported by the config package, which may use only the
standard library; so the readers are imported inside each probe, when diag
runs it, and importing the catalogue costs nothing.

Adding a source: a reader module under ``exporter/sources/``, an entry here, a
``run("<name>", ...)`` in the snapshot step of its job, a collector function,
and its fixture, golden lines and README row.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from exporter.sources import SourceError

# The sampler's jobs: each runs on its own interval (see app.build_sampler).
JOBS = ("cpu", "cgroup", "syscalls")


# Where a guest's agent keeps the host's latest line and the exporter in that guest reads it.
HOST_STATE = Path("/run/sysmon/host.json")


@dataclass(frozen=True)
class Roots:
    """Where the kernel's files are: the host's own, or bind mounts of them in a container or a fixture tree."""

    procfs: Path = Path("/proc")
    sysfs: Path = Path("/sys")
    cgroupfs: Path = Path("/sys/fs/cgroup")
    rootfs: Path = Path("/")
    dev: Path = Path("/dev")
    host_state: Path = HOST_STATE  # the agent's state file (exporter.guest.hoststate), in a guest

    @classmethod
    def under(cls, root: Path) -> Roots:
        """The layout of a host below ``root``: ``root/proc``, ``root/sys``, ... (fixture trees)."""
        return cls(
            root / "proc",
            root / "sys",
            root / "sys" / "fs" / "cgroup",
            root,
            root / "dev",
            root / HOST_STATE.relative_to("/"),
        )


@dataclass(frozen=True)
class Source:
    name: str
    help: str  # one line: the flag's help and the README's source list
    probe: Callable[[Roots], str]  # reads once with default settings; returns a one-line summary or raises
    job: str = "cpu"
    default: bool = True
    flag: bool = True  # False: turned on by a feature, not by --collector.<name>
    feature: str = ""  # with flag=False: what turns it on (the README's default column says "with <feature>")
    agent: bool | None = None  # default in the guest agent; None: the agent does not read it
    fix: str = ""  # what to do when the probe fails
    replay: bool = True  # reads only files below its roots, so a fixture tree replays it (golden files)
    families: tuple[str, ...] = ()  # the metric families it feeds (fnmatch patterns): what collect[]=<name> serves


def _cpu(roots: Roots) -> str:
    from exporter.sources.stat import read_stat, user_hz

    return f"{len(read_stat(roots.procfs, user_hz()))} CPUs in {roots.procfs}/stat"


def _cpufreq(roots: Roots) -> str:
    from exporter.sources.cpufreq import require_cpufreq

    return f"{len(require_cpufreq(roots.sysfs))} CPUs with a cpufreq frequency"


def _cpuinfo(roots: Roots) -> str:
    from exporter.sources.cpuinfo import require_cpuinfo

    return f"{len(require_cpuinfo(roots.procfs).hertz)} CPUs with a frequency in {roots.procfs}/cpuinfo"


def _perf(roots: Roots) -> str:
    from exporter.sources.perf import PerfCounters
    from exporter.sources.stat import read_stat, user_hz

    counters = PerfCounters(roots.procfs)
    try:
        cpus = sorted(read_stat(roots.procfs, user_hz()))
        for cpu in cpus:
            counters.open_cpu(cpu)
        counters.read()
    finally:
        counters.close()
    return f"cycle counters open on {len(cpus)} CPUs"


def _hoststate(roots: Roots) -> str:
    from exporter.guest.hoststate import read_host_state

    state = read_host_state(roots.host_state)
    if state is None:
        return f"{roots.host_state}: absent (no agent here, or no line from the host yet); nothing to use"
    return f"{roots.host_state}: the host's view of {len(state.vcpus)} vCPUs"


def _meminfo(roots: Roots) -> str:
    from exporter.sources.meminfo import read_meminfo

    return f"{roots.procfs}/meminfo: MemTotal {read_meminfo(roots.procfs).total_bytes / 2**20:.0f} MiB"


def _loadavg(roots: Roots) -> str:
    from exporter.sources.loadavg import read_loadavg

    load = read_loadavg(roots.procfs)
    return f"{roots.procfs}/loadavg: {load.load1} {load.load5} {load.load15}"


def _filesystem(roots: Roots) -> str:
    from exporter.sources.mounts import read_filesystems

    return f"{len(read_filesystems(roots.procfs, roots.rootfs, os.statvfs))} filesystems below {roots.rootfs}"


def _host(roots: Roots) -> str:
    from exporter.sources.hostname import read_hostname
    from exporter.sources.netdevice import read_host_ipv4

    return f"{read_hostname(roots.procfs)}, {read_host_ipv4()}"


def _network(roots: Roots) -> str:
    from exporter.sources.net_dev import read_net_dev

    return f"{len(read_net_dev(roots.procfs))} interfaces in {roots.procfs}/net/dev"


def _processes(roots: Roots) -> str:
    from exporter.sources.processes import read_processes
    from exporter.sources.stat import user_hz

    return f"{len(read_processes(roots.procfs, user_hz()))} processes below {roots.procfs}"


def _vm(roots: Roots) -> str:
    from exporter.sources.vm import VmWatch

    found = VmWatch(roots.procfs).discover()
    return f"{len(found)} VMs with {sum(len(v.vcpus) for v in found)} vCPU threads below {roots.procfs}"


def _cgroup(roots: Roots) -> str:
    from exporter.sources.cgroup import CgroupLimits, read_cgroups
    from exporter.sources.stat import user_hz

    tree = read_cgroups(roots.cgroupfs, CgroupLimits(), user_hz())
    if tree.errors:
        path, error = next(iter(tree.errors.items()))
        raise SourceError(path, error.removeprefix(f"{path}: "))
    return f"{tree.layout}: {len(tree.stats)} cgroups below {roots.cgroupfs}"


def _syscalls(roots: Roots) -> str:
    from exporter.sources.syscalls import Filter, SyscallCounter

    SyscallCounter(roots.procfs, roots.sysfs, Filter()).close()  # load and attach once: the only sure test
    return "eBPF counters load and attach"


SOURCES: Mapping[str, Source] = MappingProxyType(
    {
        s.name: s
        for s in (
            Source(
                "cpu",
                "per-CPU time in each mode (/proc/stat)",
                _cpu,
                agent=True,
                families=("sysmon_cpu_seconds_total", "sysmon_cpu_guest_seconds_total", "sysmon_cpu_usage_ratio"),
            ),
            Source(
                "cpufreq",
                "per-CPU frequency from the cpufreq driver (sysfs)",
                _cpufreq,
                agent=True,
                families=(
                    "sysmon_cpu_frequency_*",
                    "sysmon_cpu_hardware_frequency_hertz",
                    "sysmon_cpu_scaling_governor_info",
                ),
                fix="on bare metal load a cpufreq driver (intel_pstate, amd-pstate, acpi-cpufreq); "
                "in a VM nothing to do: the frequency comes from /proc/cpuinfo",
            ),
            Source(
                "hoststate",
                "in a guest: each vCPU's host frequency and steal, from the agent's state file",
                _hoststate,
                families=(
                    "sysmon_cpu_frequency_hertz",
                    "sysmon_cpu_frequency_source_info",
                    "sysmon_cpu_host_steal_seconds_total",
                ),
                fix="the file is sysmon-exporter agent's (--agent.host-state): point --path.host-state at the one "
                "the agent in this guest writes, or remove what else is there",
            ),
            Source(
                "cpuinfo",
                "per-CPU frequency from /proc/cpuinfo where cpufreq has none",
                _cpuinfo,
                agent=True,
                families=("sysmon_cpu_frequency_hertz", "sysmon_cpu_frequency_source_info"),
                fix="pass --path.procfs pointing at a mounted procfs",
            ),
            Source(
                "perf",
                "cycles and reference cycles per CPU (perf_event_open), the frequency where neither file has one",
                _perf,
                replay=False,
                families=("sysmon_cpu_cycles_total", "sysmon_cpu_ref_cycles_total", "sysmon_cpu_frequency_hertz"),
                fix="run as root, grant CAP_PERFMON as an ambient capability (systemd: "
                "AmbientCapabilities=CAP_PERFMON; a container: uid 0 with --cap-add PERFMON), or sysctl "
                "kernel.perf_event_paranoid=0; without a core PMU (most VMs) turn off --collector.perf",
            ),
            Source(
                "meminfo",
                "memory and swap (/proc/meminfo)",
                _meminfo,
                agent=True,
                families=("sysmon_memory_*",),
                fix="pass --path.procfs pointing at a mounted procfs",
            ),
            Source(
                "loadavg",
                "load averages over 1, 5 and 15 minutes (/proc/loadavg)",
                _loadavg,
                families=("sysmon_load1", "sysmon_load5", "sysmon_load15"),
                fix="pass --path.procfs pointing at a mounted procfs",
            ),
            Source(
                "filesystem",
                "size and free space of each mounted filesystem (statvfs of /proc/1/mountinfo's mount points)",
                _filesystem,
                replay=False,
                families=("sysmon_filesystem_*",),
                fix="pass --path.procfs and --path.rootfs (the host's / mounted read-only)",
            ),
            Source(
                "host",
                "hostname and host IPv4 (ServiceRadar's payload)",
                _host,
                flag=False,
                feature="the gRPC shim or --serviceradar.gateway",
                default=False,
                replay=False,
                fix="pass --path.procfs pointing at a mounted procfs",
            ),
            Source(
                "network",
                "traffic counters of each network interface (/proc/net/dev)",
                _network,
                families=("sysmon_network_*",),
                fix="pass --path.procfs pointing at a mounted procfs (the host's network namespace: --network=host)",
            ),
            Source(
                "processes",
                "each process's CPU time, resident memory and state (/proc/<pid>/stat, status); pushed, not exported",
                _processes,
                flag=False,
                feature="--serviceradar.gateway",
                default=False,
                fix="pass --path.procfs pointing at a mounted procfs (the host's pid namespace: --pid=host)",
            ),
            Source(
                "vm",
                "QEMU, Firecracker and cloud-hypervisor VMs: each vCPU thread's run and wait time, "
                "host CPU and its frequency (/proc/<pid>/task/<tid>/schedstat, stat)",
                _vm,
                # QMP sockets (--vm.qmp-socket) and per-thread perf counters are outside the roots;
                # the kvm-host golden scenario replays the procfs part.
                replay=False,
                families=("sysmon_vm_*",),
                fix="pass --path.procfs pointing at the host's procfs "
                "(a container: the host's /proc mounted, or --pid=host)",
            ),
            Source(
                "cgroup",
                "memory, CPU, pids and pressure of every cgroup (v2, hybrid and v1)",
                _cgroup,
                job="cgroup",
                agent=False,
                families=("sysmon_cgroup_*",),
                fix="mount cgroupfs (mount -t cgroup2 none /sys/fs/cgroup) or pass --path.cgroupfs",
            ),
            Source(
                "syscalls",
                "system calls per syscall from eBPF (root, or CAP_BPF + CAP_PERFMON)",
                _syscalls,
                job="syscalls",
                default=False,
                replay=False,
                families=("sysmon_syscalls_*",),
                fix="run as root, or grant CAP_BPF and CAP_PERFMON",
            ),
        )
    }
)


def collector_defaults(agent: bool = False) -> dict[str, bool]:
    """The ``--[no-]collector.<name>`` flags and their defaults, for the exporter or the guest agent."""
    if agent:
        return {s.name: s.agent for s in SOURCES.values() if s.flag and s.agent is not None}
    return {s.name: s.default for s in SOURCES.values() if s.flag}


def of_job(job: str) -> frozenset[str]:
    return frozenset(s.name for s in SOURCES.values() if s.job == job)
