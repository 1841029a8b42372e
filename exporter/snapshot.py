"""One frozen Snapshot of everything the exporter serves, and the code that takes it.

``take_snapshot`` is synchronous and pure apart from reading the kernel files
its :class:`CpuSources` point at: each source runs on its own, and its outcome is
recorded as a :class:`SourceStatus` (success, duration, error). A failing
source never stops another. Counters are made monotonic here, across samples:
/proc/stat idle and iowait can step backwards on NO_HZ kernels
(kernel/time/tick-sched.c get_cpu_idle_time_us, node_exporter#1686), and a CPU
that goes offline and comes back may restart its counts. Exposed values only
ever grow when a counter passes the highest value it had (so a step back is
never counted twice); the state for offline CPUs is kept so they resume where
they stopped.

Values derived from two consecutive samples (usage ratio, the perf-derived
frequency) are computed here and nowhere else.
"""

from __future__ import annotations

import logging
import operator
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import accumulate, chain
from pathlib import Path
from typing import Any, Protocol, TypeVar

from exporter.catalogue import SOURCES, of_job
from exporter.guest.hoststate import HostState, freshness_limit, is_fresh, read_host_state
from exporter.guest_state import GuestVm
from exporter.sources import HeldFiles, SourceError
from exporter.sources.cgroup import CgroupLimits, CgroupMemo, CgroupTree, read_cgroups
from exporter.sources.cpufreq import CpuFreq, NoCpufreqDriver, read_current, require_cpufreq
from exporter.sources.cpuinfo import require_cpuinfo
from exporter.sources.hostname import read_hostname
from exporter.sources.loadavg import LoadAvg, read_loadavg
from exporter.sources.meminfo import MemInfo, read_meminfo
from exporter.sources.mountinfo import MountInfo, on_kernel_filesystem
from exporter.sources.mounts import Filesystem, MountFilter, StatVfs, read_filesystems
from exporter.sources.net_dev import NetDevice, read_net_dev
from exporter.sources.netdevice import read_host_ipv4
from exporter.sources.perf import PerfReading
from exporter.sources.processes import Process, read_processes
from exporter.sources.stat import GUEST_MODES, MODES, StatMemo, read_stat_rows
from exporter.sources.vm import Discovery, VmReadings

log = logging.getLogger("exporter.snapshot")

T = TypeVar("T")

# A perf-derived frequency needs enough busy time in the window to mean
# anything: /proc/stat has USER_HZ (10 ms) resolution.
MIN_BUSY_SECONDS_FOR_PERF_FREQUENCY = 0.05


class Clock(Protocol):
    def wall(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class SyscallSource(Protocol):
    """What the snapshot needs of the syscall counters (sources.syscalls.SyscallCounter, or a test double)."""

    def read(self) -> dict[int, int]: ...

    def read_by(self) -> dict[tuple[str, int], int]: ...


@dataclass(frozen=True)
class SyscallSources:
    """The attached syscall counters, or None and why not; ``machine`` picks the name table.

    ``by`` ("comm" or "cgroup") adds that label to the counts for the ``top`` busiest
    values; the rest are summed under ``other``.
    """

    source: SyscallSource | None
    error: str
    machine: str
    by: str | None = None
    top: int = 10


class PerfSource(Protocol):
    """What the snapshot needs of perf counters (sources.perf.PerfCounters, or a test double)."""

    def open_cpu(self, cpu: int) -> None: ...

    def read(self) -> dict[int, PerfReading]: ...


@dataclass(frozen=True)
class SourceStatus:
    success: bool
    duration_seconds: float
    error: str = ""


@dataclass(frozen=True)
class Frequency:
    hertz: float
    source: str  # "cpufreq_avg" | "cpufreq" | "cpufreq_hardware" (CURRENT_FILES) | "host" | "cpuinfo" | "perf"


@dataclass(frozen=True)
class VcpuSample:
    tid: int
    run_seconds: float  # schedstat field 1, cumulative
    wait_seconds: float  # schedstat field 2, cumulative: runnable but not running (the guest's steal)
    host_cpu: int  # stat field 39: the host CPU it last ran on
    frequency: Frequency | None  # the host's frequency of host_cpu in the same snapshot
    cycles: float | None = None  # per-thread perf cycles, where a PMU exists


@dataclass(frozen=True)
class VmSample:
    hypervisor: str  # "qemu" | "firecracker" | "cloud-hypervisor"
    pid: int
    vcpus: Mapping[int, VcpuSample]


class VmSource(Protocol):
    """What the snapshot needs of the VM watch (sources.vm.VmWatch, or a test double)."""

    def idle(self) -> Discovery | None:
        """The published discovery when it holds nothing a read could block on (no VM, no error), else None."""
        ...

    def read(self, now: float, discovery: Discovery | None = None) -> VmReadings: ...


@dataclass(frozen=True)
class Monotonic:
    """Counters that never decrease and never count the same time twice.

    Kept as one row of counters per key (a CPU's /proc/stat columns, its perf
    cycles and ref cycles): each column behaves on its own. ``raw`` holds the
    highest value seen of each column while it stays present, as node_exporter
    does: after a step back (NO_HZ idle/iowait), ``exposed`` grows again only
    once the file climbs past that maximum, so it ends equal to the file. A
    column that was absent in the previous sample (a CPU that went offline)
    restarts from whatever value it returns with: its counts may have restarted
    near zero (kernel/time/tick-sched.c), and it resumes where it stopped.
    """

    raw: Mapping[int, tuple[float, ...]] = field(default_factory=dict)
    exposed: Mapping[int, tuple[float, ...]] = field(default_factory=dict)
    present: Mapping[int, int] = field(default_factory=dict)  # key -> how many columns the last sample had

    def advance(self, values: Mapping[int, tuple[float, ...]]) -> Monotonic:
        keys = list(values)
        widths = list(map(len, values.values()))
        if keys == list(self.raw) == list(self.exposed) and widths == list(map(len, self.raw.values())):
            columns = list(chain.from_iterable(values.values()))
            before = list(chain.from_iterable(self.raw.values()))
            if all(map(operator.ge, columns, before)):
                # The same keys and widths as the last sample and no column stepped back (most samples, where
                # no CPU went offline): the rows' fast path below for every row at once, its arithmetic
                # mapped in C over every column (256 rows of 10: 0.51 ms against 0.65 row by row, here).
                sums = map(operator.add, chain.from_iterable(self.exposed.values()), map(operator.sub, columns, before))
                exposed = dict(zip(keys, _split(list(sums), widths), strict=True))
                return Monotonic(dict(values), exposed, dict(zip(keys, widths, strict=True)))
        raw = dict(self.raw)
        exposed = dict(self.exposed)
        present = self.present
        for key, row in values.items():
            last = raw.get(key)
            if last is None:
                exposed[key] = raw[key] = row
            elif len(row) == len(last) and all(map(operator.ge, row, last)):
                # No column stepped back (every sample but a NO_HZ step back): exposed + (value - last) is
                # what _advance_row adds to a column that grew, and it adds 0.0 to one that did not move;
                # whether the column was present last time matters only to one that stepped back.
                exposed[key] = tuple(map(operator.add, exposed[key], map(operator.sub, row, last)))
                raw[key] = row
            else:
                raw[key], exposed[key] = _advance_row(last, exposed[key], row, present.get(key, 0))
        return Monotonic(raw, exposed, {key: len(row) for key, row in values.items()})


def _split(columns: list[float], widths: list[int]) -> Iterator[tuple[float, ...]]:
    """``columns`` cut into rows of ``widths`` columns each."""
    if widths and widths.count(widths[0]) == len(widths):
        return zip(*[iter(columns)] * widths[0], strict=True)
    ends = list(accumulate(widths))
    return (tuple(columns[end - width : end]) for end, width in zip(ends, widths, strict=True))


def _advance_row(
    raw: tuple[float, ...], exposed: tuple[float, ...], row: tuple[float, ...], present: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """One key's columns advanced, the first ``present`` of them in the previous sample."""
    new_raw, new_exposed = list(raw), list(exposed)
    for i, value in enumerate(row):
        if i >= len(new_raw):
            new_raw.append(value)
            new_exposed.append(value)
        elif value > new_raw[i]:
            new_exposed[i] += value - new_raw[i]
            new_raw[i] = value
        elif i >= present:
            new_raw[i] = value
    return tuple(new_raw), tuple(new_exposed)


@dataclass(frozen=True)
class SyscallBreakdown:
    """Per-label syscall counters kept monotonic while labels come and go (carried between samples).

    The kernel hands over per-(label, syscall) increments since the last read and
    the exact totals per syscall. Up to ``top`` labels hold a slot, first come by
    activity, until idle for ``BREAKDOWN_IDLE_SAMPLES`` samples; everything else
    (and increments the kernel's bounded hash dropped) goes to ``other``, as
    total minus the labelled part, so the labelled series always sum to the totals.
    """

    exposed: Mapping[tuple[str, int], float] = field(default_factory=dict)
    idle: Mapping[str, int] = field(default_factory=dict)  # label holding a slot -> samples without activity
    totals: Mapping[int, int] = field(default_factory=dict)
    debt: Mapping[int, int] = field(default_factory=dict)  # labelled increments not yet in the totals

    def advance(
        self, totals: Mapping[int, int], increments: Mapping[tuple[str, int], int], top: int
    ) -> SyscallBreakdown:
        activity: dict[str, int] = {}
        for (label, _), n in increments.items():
            activity[label] = activity.get(label, 0) + n
        idle = {
            label: 0 if activity.get(label) else count + 1
            for label, count in self.idle.items()
            if activity.get(label) or count + 1 < BREAKDOWN_IDLE_SAMPLES
        }
        for label in sorted(activity, key=lambda lb: (-activity[lb], lb)):
            if len(idle) >= top:
                break
            if label != OTHER_LABEL:
                idle.setdefault(label, 0)
        exposed = {k: v for k, v in self.exposed.items() if k[0] in idle or k[0] == OTHER_LABEL}
        labelled: dict[int, int] = {}
        for (label, nr), n in increments.items():
            if label in idle:
                exposed[(label, nr)] = exposed.get((label, nr), 0.0) + n
                labelled[nr] = labelled.get(nr, 0) + n
        debt: dict[int, int] = {}
        for nr in totals.keys() | labelled.keys() | self.debt.keys():
            rest = totals.get(nr, 0) - self.totals.get(nr, 0) - labelled.get(nr, 0) - self.debt.get(nr, 0)
            if rest > 0:
                exposed[(OTHER_LABEL, nr)] = exposed.get((OTHER_LABEL, nr), 0.0) + rest
            elif rest < 0:
                debt[nr] = -rest
        return SyscallBreakdown(exposed, idle, dict(totals), debt)


@dataclass(frozen=True)
class CpuSources:
    """Where and what the CPU/memory sampling step reads. Roots are explicit; nothing is global."""

    procfs: Path
    sysfs: Path
    hz: int
    collectors: frozenset[str]
    perf: PerfSource | None = None
    perf_error: str = ""  # why perf is None although the collector is enabled
    host_identity: bool = False  # read the hostname and host IPv4 (what the gRPC shim reports)
    rootfs: Path = Path("/")  # where mount points are stat'ed
    statvfs: StatVfs = os.statvfs
    mounts: MountFilter = field(default_factory=MountFilter)  # mount points and filesystem types left out
    host_ipv4: Callable[[], str] = read_host_ipv4  # the address a gRPC payload reports (injected in golden runs)
    processes_wanted: Callable[[], bool] = lambda: True  # the push reads /proc/<pid> only while its config asks
    host_state: Path | None = None  # in a guest, the agent's state file (--path.host-state): the hoststate source
    sampler_interval_seconds: float = 1.0  # a host state older than 3 of these (or of the host's) is stale
    vms: VmSource | None = None  # the VM watch, with the vm source on
    filesystem_interval_seconds: float = 0.0  # filesystems are read at a sample this long after the last read
    # The files of the sources the deadline runs inline, each opened once and read with pread (closed by the app)
    held: HeldFiles = field(default_factory=HeldFiles, compare=False, repr=False)
    stat: StatMemo = field(default_factory=StatMemo, compare=False, repr=False)  # /proc/stat's last columns


@dataclass(frozen=True)
class HostIdentity:
    hostname: str
    ipv4: str


# The values of sysmon_http_connections_closed_total{reason}.
HTTP_CLOSE_REASONS = ("refused", "evicted", "header_timeout")


@dataclass(frozen=True)
class HttpConnections:
    """The /metrics listener's connections: open now, closed by the exporter (by reason), malformed requests."""

    open: int = 0
    closed_total: Mapping[str, int] = field(default_factory=dict)
    bad_requests_total: int = 0


@dataclass(frozen=True)
class CgroupSources:
    """Where and how the cgroup sampling step walks: an explicit cgroupfs root and the walk's bounds.

    ``sysfs`` names block devices; None means the sysfs holding ``cgroupfs`` when that is
    ``<sysfs>/fs/cgroup`` (else devices keep MAJ:MIN)."""

    cgroupfs: Path
    limits: CgroupLimits
    hz: int
    sysfs: Path | None = None
    memo: CgroupMemo = field(default_factory=CgroupMemo, compare=False, repr=False)  # the last cycle's reads


@dataclass(frozen=True)
class Snapshot:
    timestamp_seconds: float = 0.0
    monotonic_seconds: float = 0.0
    cpus: tuple[int, ...] = ()
    cpu_seconds: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    cpu_guest_seconds: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    cpu_usage_ratio: Mapping[int, float] = field(default_factory=dict)
    host_steal_seconds: Mapping[int, float] = field(default_factory=dict)  # the host's view, by guest CPU
    frequency: Mapping[int, Frequency] = field(default_factory=dict)
    cpufreq: Mapping[int, CpuFreq] = field(default_factory=dict)  # limits, governor, hardware value
    cycles: Mapping[int, float] = field(default_factory=dict)
    ref_cycles: Mapping[int, float] = field(default_factory=dict)
    memory: MemInfo | None = None
    load: LoadAvg | None = None
    host: HostIdentity | None = None
    filesystems: tuple[Filesystem, ...] = ()
    network: Mapping[str, NetDevice] = field(default_factory=dict)  # by interface name
    processes: tuple[Process, ...] = ()  # read only for the ServiceRadar push
    syscalls: Mapping[str, float] = field(default_factory=dict)
    syscalls_by_label: str = ""  # "comm" | "cgroup" when the counts carry that label
    syscalls_by: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (label value, syscall)
    cgroups: CgroupTree | None = None
    statuses: Mapping[str, SourceStatus] = field(default_factory=dict)
    skipped_ticks: Mapping[str, int] = field(default_factory=dict)  # by sampler job, set by the sampler
    guests: Mapping[str, GuestVm] = field(default_factory=dict)  # by vm label, from the guest ingest
    vms: Mapping[str, VmSample] = field(default_factory=dict)  # by vm label: VMs this host runs
    http: HttpConnections | None = None  # from the web listener, when there is one
    # Carried from sample to sample; not exposed.
    cpu_counters: Monotonic = field(default_factory=Monotonic)
    perf_counters: Monotonic = field(default_factory=Monotonic)
    syscall_breakdown: SyscallBreakdown = field(default_factory=SyscallBreakdown)
    host_state_stale: bool = False  # the last host state read was too old (logged once when it became so)
    filesystems_read_seconds: float | None = None  # monotonic time of the last filesystem read
    instants_read_seconds: float | None = None  # monotonic time INSTANT_SOURCES were last read
    cpufreq_read_seconds: float | None = None  # monotonic time cpufreq was last read whole (limits, governor)
    cpuinfo_hertz: Mapping[int, float] = field(default_factory=dict)  # /proc/cpuinfo's last reading
    cpuinfo_read_seconds: float | None = None  # monotonic time of that reading, when it states a constant rate
    # source -> monotonic time a read found its files absent (no cpufreq driver, no agent state file)
    absent_since: Mapping[str, float] = field(default_factory=dict)

    def instants_behind(self) -> bool:
        """Whether the instant sources were last read before this snapshot's CPU sample (by a tick that
        kept them: take_snapshot(instants=False))."""
        return self.instants_read_seconds is not None and self.instants_read_seconds < self.monotonic_seconds


def describe(exc: BaseException) -> str:
    """One line for a failed source: what failed and where."""
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename}: missing"
    if isinstance(exc, PermissionError):
        return f"{exc.filename}: permission denied"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.strerror:  # perf and bpf refusals carry their reason and fix here
        return exc.strerror
    if isinstance(exc, SourceError | OSError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


class SourceTimeout(TimeoutError):
    """A source did not return within its deadline (or an earlier read of it has still not returned)."""


class _Call:
    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.value: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as e:  # handed to the waiting caller, which decides
            self.error = e
        finally:
            self.done.set()


class _Worker:
    """One source's thread: runs its calls one at a time, so a hung read blocks only that source."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self.pending: _Call | None = None
        threading.Thread(target=self._loop, name=f"source-{name}", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._calls.get().run()

    def submit(self, fn: Callable[[], object]) -> _Call:
        call = _Call(fn)
        self.pending = call
        self._calls.put(call)
        return call


class Deadline:
    """Runs each source on a thread of its own and waits for it at most ``seconds``.

    A read from a hung FUSE or lxcfs file (or a FIFO) cannot be interrupted, so
    a source that overruns fails with "timed out after Ns" while its read stays
    blocked on its own thread; that source is not started again until the read
    returns (one stuck thread per hung source, never one per tick), and every
    other source keeps its cadence. Daemon threads: a hung read never holds up
    the process's exit.

    Sources named in ``inline`` run on the calling thread instead, with no deadline: those that
    read only files of proc and sysfs (see :func:`inline_sources`), which the kernel answers in
    microseconds and never leaves hanging. The hand-over to a thread and back cost more than such a
    read and parse (about 0.3 ms a source here, 2 context switches each).
    """

    def __init__(self, seconds: float, inline: frozenset[str] = frozenset()) -> None:
        self.seconds = seconds
        self.inline = inline
        self._workers: dict[str, _Worker] = {}

    def call(self, name: str, fn: Callable[[], T], inline: bool = False) -> T:
        """``fn()`` on the source's thread, or with ``inline`` (this call only) on the calling one.

        An inline call still waits its turn: while an earlier read of the source is blocked,
        it fails as a handed-over one would (the source's reads never overlap).
        """
        if name in self.inline:
            return fn()
        worker = self._workers.get(name)
        pending = worker.pending if worker is not None else None
        if pending is not None and not pending.done.is_set():
            raise SourceTimeout(f"timed out after {self.seconds:g}s; not read again until the blocked read returns")
        if inline:
            return fn()
        if worker is None:
            worker = self._workers[name] = _Worker(name)
        call = worker.submit(fn)
        if not call.done.wait(self.seconds):
            raise SourceTimeout(f"timed out after {self.seconds:g}s; not read again until the blocked read returns")
        if call.error is not None:
            raise call.error
        return call.value  # type: ignore[return-value]  # what fn returned


# The files each source that may run inline reads, below its roots. Sources not named here always run
# under the deadline: filesystem (statvfs of NFS or FUSE mounts can hang), processes and vm
# (/proc/<pid>/cmdline and a task's files wait on the process's mmap lock, held by a task stuck in D state;
# vm may ask QMP over a socket), hoststate (a file anywhere), cgroup (cgroupfs can be any mount).
_INLINE_CANDIDATES: Mapping[str, Callable[[CpuSources], tuple[Path, ...]]] = {
    "cpu": lambda r: (r.procfs / "stat",),
    "meminfo": lambda r: (r.procfs / "meminfo",),
    "loadavg": lambda r: (r.procfs / "loadavg",),
    "cpuinfo": lambda r: (r.procfs / "cpuinfo",),
    "network": lambda r: (r.procfs / "net" / "dev",),
    "cpufreq": lambda r: (r.sysfs / "devices" / "system" / "cpu",),
    "host": lambda r: (r.procfs / "sys" / "kernel" / "hostname",),  # and an ioctl on a socket
    "perf": lambda r: (),  # read(2) of perf event descriptors: answered from the counters, never blocks
}


def inline_sources(readers: CpuSources, mounts: list[MountInfo]) -> frozenset[str]:
    """The sources :class:`Deadline` may run on the sampler's own thread: every file each reads is on
    proc or sysfs in ``mounts`` (the exporter's own mount table), not FUSE (lxcfs), a network
    filesystem or a tree of ordinary files standing in for them (fixtures, a FIFO)."""
    out = set()
    for name, paths in _INLINE_CANDIDATES.items():
        if all(on_kernel_filesystem(mounts, os.path.realpath(p)) for p in paths(readers)):
            out.add(name)
    return frozenset(out)


def _within(since: float | None, seconds: float, now: float) -> bool:
    """Whether a read at monotonic ``since`` is less than ``seconds`` old at ``now`` (never one ahead of now)."""
    return since is not None and 0 <= now - since < seconds


class _Run:
    """Runs sources, timing each and recording its status; a failure is contained to its source.

    With a :class:`Deadline`, each source runs on its own thread and fails when it overruns.
    """

    def __init__(self, clock: Clock, deadline: Deadline | None = None) -> None:
        self.clock = clock
        self.deadline = deadline
        self.statuses: dict[str, SourceStatus] = {}

    def __call__(self, name: str, fn: Callable[[], T], inline: bool = False) -> T | None:
        """``fn()``, under the deadline unless ``inline`` (see :meth:`Deadline.call`)."""
        if name not in SOURCES:  # every status names a catalogued source (exporter/catalogue.py)
            raise KeyError(f"source {name!r} is not in the catalogue")
        start = self.clock.monotonic()
        try:
            value = fn() if self.deadline is None else self.deadline.call(name, fn, inline)
        except Exception as exc:  # contained per source: the process never dies from data it reads
            if not isinstance(exc, OSError | SourceError):
                log.debug("source %s raised", name, exc_info=True)
            self.fail(name, describe(exc), self.clock.monotonic() - start)
            return None
        self.statuses[name] = SourceStatus(True, self.clock.monotonic() - start)
        return value

    def held(self, name: str, files: HeldFiles) -> HeldFiles | None:
        """``files`` for a source the deadline runs inline (its files are on proc or sysfs), else None: a
        regular file (a fixture tree, a FIFO, lxcfs) is opened at each read, so one replaced by rename is seen."""
        return files if self.deadline is not None and name in self.deadline.inline else None

    def kept(self, name: str, prev: Snapshot, since: float | None, seconds: float, now: float) -> bool:
        """Whether ``name``'s read at monotonic ``since`` is less than ``seconds`` old at ``now``: it then
        stands for this sample too, and its status in ``prev`` is kept (no read, no new status)."""
        if name not in prev.statuses or not _within(since, seconds, now):
            return False
        self.statuses[name] = prev.statuses[name]
        return True

    def fail(self, name: str, error: str, duration: float = 0.0) -> None:
        if name not in SOURCES:
            raise KeyError(f"source {name!r} is not in the catalogue")
        self.statuses[name] = SourceStatus(False, duration, error)


# A source whose files a read found absent is looked for again this long after, not at every sample:
# a cpufreq driver or the guest agent that appears later is seen within this time.
LOOK_AGAIN_SECONDS = 10.0


class _Absent:
    """The sources a read found absent (no cpufreq driver: a listing and a failed open per CPU; no
    agent state file: a hand-over to the source's thread), looked for again only LOOK_AGAIN_SECONDS
    after; each sample between keeps the status that read gave."""

    def __init__(self, prev: Snapshot, run: _Run, now: float) -> None:
        self.prev, self.run, self.now = prev, run, now
        self.since: dict[str, float] = {}

    def still(self, name: str) -> bool:
        """Whether ``name`` was found absent less than LOOK_AGAIN_SECONDS ago (its status is then kept)."""
        since = self.prev.absent_since.get(name)
        if since is None or not self.run.kept(name, self.prev, since, LOOK_AGAIN_SECONDS, self.now):
            return False
        self.since[name] = since
        return True

    def found(self, name: str) -> None:
        self.since[name] = self.now


def log_transitions(old: Mapping[str, SourceStatus], new: Mapping[str, SourceStatus]) -> None:
    """One line when a source starts failing (or fails differently) and one when it recovers."""
    for name, status in new.items():
        before = old.get(name)
        if not status.success and (before is None or before.success or before.error != status.error):
            log.warning("source %s failed: %s", name, status.error)
        elif status.success and before is not None and not before.success:
            log.info("source %s recovered", name)


def _busy_and_totals(rows: list[tuple[float, ...]]) -> tuple[list[float], list[float]]:
    """Busy and total seconds of each row of /proc/stat columns (MODES, then GUEST_MODES: left out).

    Mapped over every row at once, in C (operator's functions): a function called per row, twice per CPU
    a sample, cost a fifth of the sample's derive on a 256-CPU host. Rows from an older kernel without
    iowait (fewer than 5 columns) take the same arithmetic row by row.
    """
    totals: list[float] = list(map(sum, map(_MODE_COLUMNS, rows)))
    if min(map(len, rows), default=0) > _IOWAIT:
        idle = map(_IDLE_COLUMN, rows)
        return list(map(operator.sub, map(operator.sub, totals, idle), map(_IOWAIT_COLUMN, rows))), totals
    return [t - r[_IDLE] - (r[_IOWAIT] if len(r) > _IOWAIT else 0.0) for t, r in zip(totals, rows, strict=True)], totals


def _usage(
    prev: Mapping[int, tuple[float, ...]], now: Mapping[int, tuple[float, ...]]
) -> tuple[dict[int, float], dict[int, float]]:
    """Busy ratio and busy seconds per CPU over the window between two samples."""
    cpus = [cpu for cpu in now if cpu in prev]
    busy1, total1 = _busy_and_totals([now[cpu] for cpu in cpus])
    busy0, total0 = _busy_and_totals([prev[cpu] for cpu in cpus])
    # max(0.0, d) and min(1.0, share) as conditionals: the same values (NaN too), without a call each
    d_busy = [d if d > 0.0 else 0.0 for d in map(operator.sub, busy1, busy0)]
    ratio: dict[int, float] = {}
    for cpu, busy, d_total in zip(cpus, d_busy, map(operator.sub, total1, total0), strict=True):
        if d_total > 0:
            share = busy / d_total
            ratio[cpu] = share if share < 1.0 else 1.0
    return ratio, dict(zip(cpus, d_busy, strict=True))


def _rows(cpu_seconds: Mapping[int, Mapping[str, float]]) -> dict[int, tuple[float, ...]]:
    """Snapshot.cpu_seconds as rows of MODES (a mode a CPU lacks counts 0, as in a sum without it)."""
    return {cpu: tuple([modes.get(m, 0.0) for m in MODES]) for cpu, modes in cpu_seconds.items()}


def _by_mode(row: tuple[float, ...]) -> dict[str, float]:
    """A row's MODES columns by name. A row of every mode (each kernel since 2.6.11) as a dict display,
    which the compiler builds presized in one step: dict(zip(MODES, row)) cost four times as much here
    (1.8 us against 0.43), for each CPU at each sample."""
    if len(row) < len(MODES):  # an older kernel's: the columns it has
        return dict(zip(MODES, row, strict=False))
    return {
        "user": row[0],
        "nice": row[1],
        "system": row[2],
        "idle": row[3],
        "iowait": row[4],
        "irq": row[5],
        "softirq": row[6],
        "steal": row[7],
    }


def _by_guest_mode(row: tuple[float, ...]) -> dict[str, float]:
    """A row's GUEST_MODES columns (those after MODES) by name, as :func:`_by_mode`."""
    if len(row) < len(MODES) + len(GUEST_MODES):
        return dict(zip(GUEST_MODES, row[len(MODES) :], strict=False))
    return {"guest": row[8], "guest_nice": row[9]}


@dataclass(frozen=True)
class _CpuPart:
    cpus: tuple[int, ...] = ()
    cpu_seconds: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    cpu_guest_seconds: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    cpu_usage_ratio: Mapping[int, float] = field(default_factory=dict)
    busy_seconds: Mapping[int, float] = field(default_factory=dict)
    counters: Monotonic | None = None


def _read_cpu(prev: Snapshot, readers: CpuSources, run: _Run) -> _CpuPart:
    stat: dict[int, tuple[float, ...]] | None = None
    if "cpu" in readers.collectors:
        stat = run(
            "cpu", lambda: read_stat_rows(readers.procfs, readers.hz, run.held("cpu", readers.held), readers.stat)
        )
    if stat is None:
        return _CpuPart()
    online = tuple(sorted(stat))
    counters = prev.cpu_counters.advance(stat)
    exposed = counters.exposed
    seconds: dict[int, dict[str, float]] = {c: {} for c in online}
    guest: dict[int, dict[str, float]] = {}
    for c, row in exposed.items():  # guest in the counters' order, as the CPUs first came
        if c not in seconds:  # offline now: kept in the counters, not exported
            continue
        seconds[c] = _by_mode(row)
        if len(row) > len(MODES):
            guest[c] = _by_guest_mode(row)
    # The previous sample's rows are its counters' (what its cpu_seconds were made of), for its online CPUs
    before = {c: exposed_row for c, exposed_row in prev.cpu_counters.exposed.items() if c in prev.cpu_seconds}
    if len(before) < len(prev.cpu_seconds):  # a snapshot made by hand, without counters
        before = _rows(prev.cpu_seconds)
    ratio, busy_seconds = _usage(before, {c: exposed[c] for c in online})
    return _CpuPart(online, seconds, guest, ratio, busy_seconds, counters)


def _read_host_state(
    prev: Snapshot, readers: CpuSources, run: _Run, absent: _Absent, now: float
) -> tuple[HostState | None, bool]:
    """The agent's state file while fresh (None when off, missing, failed or stale), and whether it is stale.

    A missing file succeeds with nothing: a guest without the agent, or one whose host
    sends no lines, is not broken (as node_exporter's textfile collector treats a
    directory without files). Going stale and fresh again is logged once each.
    """
    if "hoststate" not in readers.collectors:
        return None, False
    path = readers.host_state
    if path is None:
        run.fail("hoststate", "no state file given (CpuSources.host_state; --path.host-state)")
        return None, False
    if absent.still("hoststate"):
        return None, False
    state = run("hoststate", lambda: read_host_state(path))
    if state is None:
        if run.statuses["hoststate"].success:  # no file: no agent here, or no line from the host yet
            absent.found("hoststate")
        return None, False
    if is_fresh(state, now, readers.sampler_interval_seconds):
        if prev.host_state_stale:
            log.info("host state %s is fresh again; its frequencies and steal are used", path)
        return state, False
    if not prev.host_state_stale:
        log.warning(
            "host state %s is stale (received %.0fs ago, not within %gs: 3 intervals); ignored until the "
            "agent writes a newer one: is sysmon-exporter agent running and the host exporter sending?",
            path,
            now - (state.received_wall_seconds or 0.0),
            freshness_limit(state, readers.sampler_interval_seconds),
        )
    return None, True


@dataclass(frozen=True)
class _FrequencyPart:
    frequency: dict[int, Frequency]
    cpufreq: dict[int, CpuFreq]
    cpufreq_read_seconds: float | None
    cpuinfo_hertz: Mapping[int, float]
    cpuinfo_read_seconds: float | None


def _read_frequency(
    prev: Snapshot,
    readers: CpuSources,
    run: _Run,
    absent: _Absent,
    online: tuple[int, ...],
    host: HostState | None,
    now: float,
) -> _FrequencyPart:
    """cpufreq, then the host's view, then /proc/cpuinfo for the CPUs still without one; cpufreq's
    reading and /proc/cpuinfo's, and when each was last read whole.

    cpufreq is read whole (every CPU's directory, limits and governor) every LOOK_AGAIN_SECONDS, when
    the online CPUs change, and when a file the last whole read found is gone; the samples between read
    only each CPU's current frequencies (:func:`read_current`). A /proc/cpuinfo that states a constant
    rate (x86 without APERF/MPERF, as in most VMs) is read again every LOOK_AGAIN_SECONDS, and when the
    online CPUs change; between, its last reading and status stand.
    """
    frequency: dict[int, Frequency] = {}
    freqs: dict[int, CpuFreq] = {}
    read_whole = prev.cpufreq_read_seconds
    if "cpufreq" in readers.collectors and not absent.still("cpufreq"):

        def look() -> dict[int, CpuFreq]:
            nonlocal read_whole
            if prev.cpufreq and prev.cpus == online and _within(prev.cpufreq_read_seconds, LOOK_AGAIN_SECONDS, now):
                try:
                    return read_current(readers.sysfs, prev.cpufreq, run.held("cpufreq", readers.held))
                except (OSError, SourceError) as e:
                    log.debug("cpufreq changed since its last whole read (%s); reading it whole", e)
            read_whole = now
            try:
                return require_cpufreq(readers.sysfs)
            except NoCpufreqDriver:
                absent.found("cpufreq")
                raise

        freqs = run("cpufreq", look) or {}
        before = prev.frequency
        for cpu, f in freqs.items():
            hertz = f.frequency_hertz
            if hertz is not None:
                kept = before.get(cpu)  # the last sample's object where the value holds, as read_current does
                if kept is None or kept.hertz != hertz or kept.source != f.source:
                    kept = Frequency(hertz, f.source)
                frequency[cpu] = kept
    if host is not None:
        # Inside a VM there is rarely a cpufreq driver, and /proc/cpuinfo states the TSC rate.
        for cpu, v in host.vcpus.items():
            if v.frequency_hertz is not None:
                frequency.setdefault(cpu, Frequency(v.frequency_hertz, "host"))
    mhz: Mapping[int, float] = {}
    mhz_read: float | None = None
    if "cpuinfo" in readers.collectors and (not online or not set(online) <= frequency.keys()):
        # With a cpufreq driver the kernel prints cpufreq's value instead: read at every sample then.
        since = prev.cpuinfo_read_seconds if prev.cpus == online and not freqs else None
        if run.kept("cpuinfo", prev, since, LOOK_AGAIN_SECONDS, now):
            mhz, mhz_read = prev.cpuinfo_hertz, since
        else:
            info = run("cpuinfo", lambda: require_cpuinfo(readers.procfs, run.held("cpuinfo", readers.held)))
            if info is not None:
                mhz = info.hertz
                mhz_read = now if info.constant and not freqs else None
        for cpu, hertz in mhz.items():
            frequency.setdefault(cpu, Frequency(hertz, "cpuinfo"))
    return _FrequencyPart(frequency, freqs, read_whole, mhz, mhz_read)


@dataclass(frozen=True)
class _PerfPart:
    cycles: Mapping[int, float]
    ref_cycles: Mapping[int, float]
    counters: Monotonic


def _read_perf(prev: Snapshot, readers: CpuSources, run: _Run, online: tuple[int, ...]) -> _PerfPart | None:
    if "perf" not in readers.collectors:
        return None
    perf = readers.perf
    if perf is None:
        run.fail("perf", readers.perf_error or "perf counters are not open")
        return None

    def read_perf() -> dict[int, PerfReading]:
        for cpu in online:  # CPUs that came online since the last sample
            perf.open_cpu(cpu)
        return perf.read()

    readings = run("perf", read_perf)
    if readings is None:
        return None
    counters = prev.perf_counters.advance(
        {c: (r.cycles,) if r.ref_cycles is None else (r.cycles, r.ref_cycles) for c, r in readings.items()}
    )
    live = set(readings) & set(online) if online else set(readings)
    cycles = {c: row[0] for c, row in counters.exposed.items() if c in live}
    ref = {c: row[1] for c, row in counters.exposed.items() if len(row) > 1 and c in live}
    return _PerfPart(dict(sorted(cycles.items())), dict(sorted(ref.items())), counters)


def _perf_frequency(prev: Snapshot, perf: _PerfPart, busy_seconds: Mapping[int, float]) -> dict[int, Frequency]:
    """Cycles over the window divided by the CPU's busy time in it: the average clock while running."""
    out: dict[int, Frequency] = {}
    for cpu, busy in busy_seconds.items():
        if cpu in perf.cycles and cpu in prev.cycles and busy >= MIN_BUSY_SECONDS_FOR_PERF_FREQUENCY:
            out[cpu] = Frequency((perf.cycles[cpu] - prev.cycles[cpu]) / busy, "perf")
    return out


def _read_vms(readers: CpuSources, run: _Run, frequency: Mapping[int, Frequency], now: float) -> dict[str, VmSample]:
    """Each VM's vCPU threads, with the frequency this snapshot has for the host CPU each last ran on."""
    if "vm" not in readers.collectors:
        return {}
    watch = readers.vms
    if watch is None:
        run.fail("vm", "the VM watch is not running")
        return {}
    idle = watch.idle()
    if idle is not None:  # nothing to read (no VM, no error): no task file that could block, no hand-over
        readings = run("vm", lambda: watch.read(now, idle), inline=True)
    else:
        readings = run("vm", lambda: watch.read(now))
    if readings is None:
        return {}
    if readings.errors:
        more = f" (and {len(readings.errors) - 1} more)" if len(readings.errors) > 1 else ""
        run.fail("vm", readings.errors[0] + more, run.statuses["vm"].duration_seconds)
    return {
        name: VmSample(
            vm.hypervisor,
            vm.pid,
            {
                n: VcpuSample(v.tid, v.run_seconds, v.wait_seconds, v.host_cpu, frequency.get(v.host_cpu), v.cycles)
                for n, v in vm.vcpus.items()
            },
        )
        for name, vm in sorted(readings.vms.items())
    }


# The sources whose values hold at the instant they are read: nothing is derived from two reads of
# them, so a sample no consumer sees need not read them (take_snapshot(instants=False)).
INSTANT_SOURCES = frozenset({"meminfo", "loadavg", "filesystem", "network", "processes", "host"})


def _read_instants(prev: Snapshot, readers: CpuSources, run: _Run, mono: float) -> dict[str, Any]:
    """The instant sources read now (the filesystems at their own interval): Snapshot fields by name."""
    memory = load = None
    if "meminfo" in readers.collectors:
        memory = run("meminfo", lambda: read_meminfo(readers.procfs, run.held("meminfo", readers.held)))
    if "loadavg" in readers.collectors:
        load = run("loadavg", lambda: read_loadavg(readers.procfs, run.held("loadavg", readers.held)))
    filesystems = None
    filesystems_read = prev.filesystems_read_seconds
    if "filesystem" in readers.collectors:
        if run.kept("filesystem", prev, prev.filesystems_read_seconds, readers.filesystem_interval_seconds, mono):
            filesystems = prev.filesystems  # read again once the interval has passed; kept with its status
        else:
            filesystems_read = mono
            filesystems = run(
                "filesystem", lambda: read_filesystems(readers.procfs, readers.rootfs, readers.statvfs, readers.mounts)
            )
    network = None
    if "network" in readers.collectors:
        network = run("network", lambda: read_net_dev(readers.procfs, run.held("network", readers.held)))
    processes = None
    if "processes" in readers.collectors and readers.processes_wanted():
        processes = run("processes", lambda: read_processes(readers.procfs, readers.hz))
    host = None
    if readers.host_identity:
        host = run("host", lambda: HostIdentity(read_hostname(readers.procfs), readers.host_ipv4()))
    return {
        "memory": memory,
        "load": load,
        "host": host,
        "filesystems": filesystems or (),
        "filesystems_read_seconds": filesystems_read,
        "network": network or {},
        "processes": processes or (),
    }


def refresh_instants(
    previous: Snapshot | None, readers: CpuSources, clock: Clock, deadline: Deadline | None = None
) -> Snapshot:
    """The instant sources read now into ``previous``; the windowed values (CPU usage) are kept as they are."""
    prev = previous or Snapshot()
    run = _Run(clock, deadline)
    mono = clock.monotonic()
    instant = _read_instants(prev, readers, run, mono)
    log_transitions(prev.statuses, run.statuses)
    statuses = {**prev.statuses, **run.statuses}
    return replace(prev, instants_read_seconds=mono, statuses=dict(sorted(statuses.items())), **instant)


def take_snapshot(
    previous: Snapshot | None,
    readers: CpuSources,
    clock: Clock,
    deadline: Deadline | None = None,
    instants: bool = True,
) -> Snapshot:
    """Read every enabled CPU and memory source once; keep what other steps own (e.g. cgroups).

    With ``instants`` false, only the sources a window needs are read (/proc/stat and the
    frequency's); the instant sources (``INSTANT_SOURCES``) and their statuses are kept from
    ``previous``, once it has them. The sampler asks for that at a tick whose snapshot no consumer
    is expected to see, and :func:`refresh_instants` reads them for one that comes unexpected.
    """
    prev = previous or Snapshot()
    run = _Run(clock, deadline)
    wall, mono = clock.wall(), clock.monotonic()
    absent = _Absent(prev, run, mono)
    cpu = _read_cpu(prev, readers, run)
    host_state, host_stale = _read_host_state(prev, readers, run, absent, wall)
    freq = _read_frequency(prev, readers, run, absent, cpu.cpus, host_state, mono)
    frequency, cpufreq = freq.frequency, freq.cpufreq
    steal = {c: v.steal_seconds for c, v in host_state.vcpus.items()} if host_state is not None else {}
    perf = _read_perf(prev, readers, run, cpu.cpus)
    if perf is not None:
        for c, f in _perf_frequency(prev, perf, cpu.busy_seconds).items():
            frequency.setdefault(c, f)
    if cpu.cpus:  # a host state naming more vCPUs than this guest has: only the ones it has
        online = frozenset(cpu.cpus)  # `in` a tuple scans it: 0.4 ms a comprehension for 256 CPUs, 0.02 with a set
        frequency = _within_online(frequency, online)
        cpufreq = _within_online(cpufreq, online)
        steal = _within_online(steal, online)
    vms = _read_vms(readers, run, frequency, mono)
    instant: dict[str, Any] = {}
    instants_read = prev.instants_read_seconds
    if instants or instants_read is None:
        instant, instants_read = _read_instants(prev, readers, run, mono), mono
    else:  # kept from prev, with their statuses
        run.statuses.update((name, prev.statuses[name]) for name in INSTANT_SOURCES & prev.statuses.keys())
    statuses = {k: v for k, v in prev.statuses.items() if k not in _CPU_SOURCES}
    statuses.update(run.statuses)
    log_transitions(prev.statuses, run.statuses)
    return replace(
        prev,
        timestamp_seconds=wall,
        monotonic_seconds=mono,
        cpus=cpu.cpus,
        cpu_seconds=cpu.cpu_seconds,
        cpu_guest_seconds=cpu.cpu_guest_seconds,
        cpu_usage_ratio=cpu.cpu_usage_ratio,
        cpu_counters=cpu.counters or prev.cpu_counters,
        host_steal_seconds=steal,
        host_state_stale=host_stale,
        frequency=_by_cpu(frequency),
        cpufreq=_by_cpu(cpufreq),
        cycles=perf.cycles if perf else {},
        ref_cycles=perf.ref_cycles if perf else {},
        perf_counters=perf.counters if perf else prev.perf_counters,
        cpufreq_read_seconds=freq.cpufreq_read_seconds,
        cpuinfo_hertz=freq.cpuinfo_hertz,
        cpuinfo_read_seconds=freq.cpuinfo_read_seconds,
        vms=vms,
        instants_read_seconds=instants_read,
        **instant,
        statuses=dict(sorted(statuses.items())),
        absent_since=absent.since,
    )


def _within_online(values: dict[int, T], online: frozenset[int]) -> dict[int, T]:
    """``values`` of the ``online`` CPUs (``values`` itself when it has no other: every sample but a hotplug)."""
    return values if values.keys() <= online else {c: v for c, v in values.items() if c in online}


def _by_cpu(values: dict[int, T]) -> dict[int, T]:
    """``values`` in CPU order (``values`` itself when it is: read in that order, as they are at most samples)."""
    return values if list(values) == sorted(values) else dict(sorted(values.items()))


def with_guests(previous: Snapshot | None, guests: Callable[[], Mapping[str, GuestVm]]) -> Snapshot:
    """The guest ingest's current state copied into the snapshot; everything else kept."""
    return replace(previous or Snapshot(), guests=guests())


def with_http(previous: Snapshot | None, connections: Callable[[], HttpConnections]) -> Snapshot:
    """The web listener's connection counts copied into the snapshot; everything else kept (the snapshot
    itself when the counts are those it carries: a copy of a Snapshot costs tens of microseconds)."""
    prev = previous or Snapshot()
    http = connections()
    return prev if http == prev.http else replace(prev, http=http)


def take_syscalls(
    previous: Snapshot | None, readers: SyscallSources, clock: Clock, deadline: Deadline | None = None
) -> Snapshot:
    """Sum the per-CPU syscall counts (kept since attach, so already monotonic); keep everything else."""
    # Here, not at the top: the BPF loader (sources.syscalls) is imported only with the syscalls job on.
    from exporter.sources.syscalls import names, syscall_name

    prev = previous or Snapshot()
    run = _Run(clock, deadline)
    read: tuple[dict[int, int], dict[tuple[str, int], int]] | None = None
    source = readers.source
    if source is None:
        run.fail("syscalls", readers.error or "syscall counters are not attached")
    else:
        read = run("syscalls", lambda: (source.read(), source.read_by() if readers.by else {}))
    statuses = {**prev.statuses, **run.statuses}
    log_transitions(prev.statuses, run.statuses)
    if read is None:
        return replace(prev, syscalls={}, syscalls_by={}, statuses=dict(sorted(statuses.items())))
    counts, increments = read
    breakdown = prev.syscall_breakdown
    by: dict[tuple[str, str], float] = {}
    if readers.by:
        breakdown = breakdown.advance(counts, increments, readers.top)
        by = {(label, syscall_name(nr, readers.machine)): v for (label, nr), v in breakdown.exposed.items()}
    named = {name: float(n) for name, n in names(counts, readers.machine).items()}
    return replace(
        prev,
        syscalls=dict(sorted(named.items())),
        syscalls_by_label=readers.by or "",
        syscalls_by=dict(sorted(by.items())),
        syscall_breakdown=breakdown,
        statuses=dict(sorted(statuses.items())),
    )


def take_cgroup_snapshot(
    previous: Snapshot | None, readers: CgroupSources, clock: Clock, deadline: Deadline | None = None
) -> Snapshot:
    """Walk and read every cgroup within the bounds; keep what the CPU step owns.

    A cgroup that vanished during the walk is left out silently. A file that
    cannot be read or parsed is logged once (while it keeps failing) and turns
    ``cgroup`` to failed, naming the first such file; every other file and
    cgroup still counts.
    """
    return read_cgroup_step(readers, clock, deadline)(previous)


def read_cgroup_step(
    readers: CgroupSources, clock: Clock, deadline: Deadline | None = None
) -> Callable[[Snapshot | None], Snapshot]:
    """The walk of :func:`take_cgroup_snapshot`, done now; returns the step that puts it into a snapshot.

    The sampler walks on the job's own thread and runs only the returned step on
    the worker the jobs share, so a slow walk never delays the CPU job.
    """
    run = _Run(clock, deadline)
    tree = run(
        "cgroup", lambda: read_cgroups(readers.cgroupfs, readers.limits, readers.hz, readers.sysfs, readers.memo)
    )

    def step(previous: Snapshot | None) -> Snapshot:
        prev = previous or Snapshot()
        if tree is not None and tree.errors:
            before = prev.cgroups.errors if prev.cgroups is not None else {}
            for path, error in tree.errors.items():
                if before.get(path) != error:
                    log.warning("cgroup file failed: %s", error)
            first = next(iter(tree.errors.values()))
            more = f" (and {len(tree.errors) - 1} more)" if len(tree.errors) > 1 else ""
            run.fail("cgroup", first + more, run.statuses["cgroup"].duration_seconds)
        else:
            log_transitions(prev.statuses, run.statuses)
        if tree is not None:
            _log_dropped(prev.cgroups.dropped if prev.cgroups is not None else 0, tree.dropped, readers.limits)
        statuses = {**prev.statuses, **run.statuses}
        return replace(prev, cgroups=tree, statuses=dict(sorted(statuses.items())))

    return step


def _log_dropped(before: int, now: int, limits: CgroupLimits) -> None:
    if now and not before:
        log.warning(
            "%d cgroups beyond --cgroup.max-count=%d are not exported (the deepest first); "
            "raise --cgroup.max-count or narrow --cgroup.include",
            now,
            limits.max_count,
        )
    elif before and not now:
        log.info("every cgroup is exported again (within --cgroup.max-count=%d)", limits.max_count)


BREAKDOWN_IDLE_SAMPLES = 300  # a label's slot is freed after this many samples without a syscall
OTHER_LABEL = "other"
_CPU_SOURCES = of_job("cpu")
_IDLE, _IOWAIT = MODES.index("idle"), MODES.index("iowait")
_MODE_COLUMNS = operator.itemgetter(slice(len(MODES)))
_IDLE_COLUMN, _IOWAIT_COLUMN = operator.itemgetter(_IDLE), operator.itemgetter(_IOWAIT)


def usage_between(earlier: Snapshot, later: Snapshot) -> dict[int, float]:
    """Busy ratio per CPU over the window between two snapshots (the one computation of usage)."""
    return _usage(_rows(earlier.cpu_seconds), _rows(later.cpu_seconds))[0]
