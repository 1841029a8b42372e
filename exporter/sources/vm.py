"""Virtual machines on this host, seen as processes: QEMU, Firecracker and cloud-hypervisor, and their vCPU threads.

Each vCPU of a KVM (or TCG) guest is a thread of the VM's process, so the host's
procfs says how long it ran, how long it waited for a CPU (the guest's steal)
and where it last ran (proc(5)):

- ``/proc/<pid>/comm`` and ``cmdline`` tell the hypervisor and the VM's name;
- ``/proc/<pid>/task/<tid>/comm`` is the thread's name (prctl(PR_SET_NAME),
  at most 15 bytes: TASK_COMM_LEN);
- ``/proc/<pid>/task/<tid>/schedstat``: ``run_ns wait_ns timeslices``, time
  on a CPU and time runnable on a runqueue, in nanoseconds
  (Documentation/scheduler/sched-stats.rst, "/proc/<pid>/schedstat"; all
  zero without CONFIG_SCHED_INFO, which every distribution kernel sets);
- ``/proc/<pid>/task/<tid>/stat`` field 39, ``processor``: the CPU it last
  ran on (split by sources/pid_stat.py).

vCPU threads are known by name: QEMU calls them ``CPU <n>/KVM`` or
``CPU <n>/TCG`` (system/cpus.c, ``"CPU %d/%s"`` with the accelerator's name),
but only when started with ``-name ...,debug-threads=on`` (libvirt always
passes it); Firecracker ``fc_vcpu <n>`` (src/vmm/src/vstate/vcpu); cloud-hypervisor
``vcpu<n>`` (vmm/src/cpu.rs). Other threads (I/O, workers, the API) are
ignored. For a QEMU without thread names, the vCPU thread ids come from its QMP
socket (``query-cpus-fast``, sources/qmp.py) when one is given.

The VM's name is QEMU's ``-name guest=NAME,...`` (or ``-name NAME``),
Firecracker's ``--id NAME``, cloud-hypervisor's ``--name NAME`` or its
``--api-socket`` file's name; else ``pid-<pid>``. It becomes a label through
:func:`exporter.guest_state.vm_label`, as the guest channel's ``{vm}`` does.

A process or thread that exits between the listing and a read is left out
silently (ENOENT, ESRCH); a file that exists but is malformed is an error of
its own, and the other VMs are still read.

Discovery costs a read of every process's ``comm`` (about 4 us a process with
the listing, on this 2-vCPU machine: 8 ms on a host of 2,000), which no listing diff can save: exec changes comm
but neither the pid nor the ``/proc/<pid>`` directory (fs/exec.c
__set_task_comm), and libvirt forks, sets up the child and only then execs
QEMU, as a wrapper script's ``exec qemu-system-...`` does, so a process first
seen as something else may be a VM at the next look. Kernel threads are the
exception: they never exec (and kworkers rename themselves all the time), so
one found once (PF_KTHREAD in ``stat``, looked at only for a process with an
empty ``cmdline``) is not read again while its ``/proc/<pid>`` stays (59 of the
69 processes of the guest this was measured on). With ``background`` it
runs off the samples: :meth:`VmWatch.rescan` on a thread of its own publishes
an immutable :class:`Discovery`, and each sample reads only the vCPU threads
of the latest one.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from exporter.guest_state import vm_label
from exporter.sources import SourceError, read_small, read_small_bytes
from exporter.sources.perf import PerfUnavailable
from exporter.sources.pid_stat import is_kernel_thread, parse_pid_number, parse_pid_stat

log = logging.getLogger("exporter.sources.vm")

HYPERVISORS = ("qemu", "firecracker", "cloud-hypervisor")
MAX_VCPUS = 4096  # as many as a guest row may carry (guest/protocol.py MAX_CPUS)
_GONE = (errno.ENOENT, errno.ESRCH)
_CMDLINE_LIMIT = 1 << 20  # ARG_MAX-sized command lines (libvirt's QEMU command lines are ~10 KiB)
_THREAD = {
    "qemu": re.compile(r"CPU (\d{1,4})/(?:KVM|TCG)\Z"),
    "firecracker": re.compile(r"fc_vcpu (\d{1,4})\Z"),
    "cloud-hypervisor": re.compile(r"vcpu(\d{1,4})\Z"),
}
STAT_PROCESSOR = 39  # proc(5): "(39) processor %d"


def hypervisor_of(comm: str, argv0: str) -> str | None:
    """The hypervisor a process runs, from its command name or the basename of argv[0]."""
    for name in (comm, os.path.basename(argv0)):
        if name.startswith(("qemu-system-", "qemu-kvm")):
            return "qemu"
        if name == "firecracker":
            return "firecracker"
        if name.startswith("cloud-hyperviso"):  # "cloud-hypervisor" is 16 bytes: comm keeps 15
            return "cloud-hypervisor"
    return None


def parse_cmdline(data: bytes) -> tuple[str, ...]:
    """/proc/<pid>/cmdline: arguments separated (and usually ended) by NUL; empty for kernel threads."""
    if not data:
        return ()
    return tuple(a.decode("utf-8", "replace") for a in data.rstrip(b"\0").split(b"\0"))


def _option(argv: Sequence[str], *names: str) -> str | None:
    """The value of ``-opt VALUE``, ``--opt VALUE`` or ``--opt=VALUE`` (the last one given wins, as QEMU's do)."""
    value = None
    for i, arg in enumerate(argv[1:], 1):
        key, eq, inline = arg.partition("=")
        if key in names and eq:
            value = inline
        elif arg in names and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def _qemu_keyvals(text: str) -> list[str]:
    """QEMU's ``a=b,c=d`` option syntax, where ``,,`` is a literal comma (util/qemu-option.c)."""
    parts = re.split(r"(?<!,),(?!,)", text)
    return [p.replace(",,", ",") for p in parts]


def qemu_name(argv: Sequence[str]) -> str | None:
    """The guest name of ``-name guest=NAME,...`` or ``-name NAME,...`` (``guest`` is the implied key)."""
    value = _option(argv, "-name", "--name")
    if value is None:
        return None
    name = None
    for i, part in enumerate(_qemu_keyvals(value)):
        key, eq, val = part.partition("=")
        if not eq and i == 0:
            name = part
        elif key == "guest":
            name = val
    return name or None


def vm_name(hypervisor: str, argv: Sequence[str], pid: int) -> str:
    """The VM's label (see the module docstring)."""
    name: str | None = None
    if hypervisor == "qemu":
        name = qemu_name(argv)
    elif hypervisor == "firecracker":
        name = _option(argv, "--id")
    else:
        name = _option(argv, "--name")
        socket = _option(argv, "--api-socket")
        if not name and socket:
            path = next((p[5:] for p in socket.split(",") if p.startswith("path=")), socket)
            name = Path(path).stem if "=" not in path else None
    return vm_label(name) if name else f"pid-{pid}"


def vcpu_of_thread(hypervisor: str, comm: str) -> int | None:
    """The vCPU number a thread's name says it runs, or None for any other thread."""
    m = _THREAD[hypervisor].match(comm)
    if m is None or int(m.group(1)) >= MAX_VCPUS:
        return None
    return int(m.group(1))


def parse_schedstat(text: str, path: str = "/proc/<pid>/task/<tid>/schedstat") -> tuple[float, float]:
    """Seconds on a CPU and seconds waiting on a runqueue, from ``run_ns wait_ns timeslices``."""
    fields = text.split()
    if len(fields) < 2 or not fields[0].isdigit() or not fields[1].isdigit():
        raise SourceError(path, f"expected 'run_ns wait_ns timeslices', got {text[:60]!r}")
    return int(fields[0]) / 1e9, int(fields[1]) / 1e9


def parse_last_cpu(text: str, path: str = "/proc/<pid>/task/<tid>/stat") -> int:
    """Field 39 of a task's stat line: the CPU it last ran on.

    Split only as far as field 39 (fields are counted after the command name's
    last ``)``, as sources/pid_stat.py does): every sample parses one line per vCPU.
    """
    _, paren, rest = text.partition(" (")
    _, close, tail = rest.rpartition(")")
    index = STAT_PROCESSOR - 3  # fields[0] is field 3
    fields = tail.split(None, index + 1)
    if not paren or not close or len(fields) <= index:
        raise SourceError(path, f"{len(fields) + 2} fields after the command name, need at least {STAT_PROCESSOR}")
    value = fields[index]
    if value.isascii() and value.isdigit() and len(value) <= 10:  # parse_pid_number's test, without a regex
        return int(value)
    return parse_pid_number(value, path, "processor")  # raises, naming the field


@dataclass(frozen=True)
class VmProcess:
    """One VM as discovery found it: its vCPU threads by vCPU number (empty where they cannot be told apart)."""

    name: str
    hypervisor: str
    pid: int
    vcpus: Mapping[int, int] = field(default_factory=dict)  # vCPU -> tid
    why_no_vcpus: str = ""


@dataclass(frozen=True)
class Discovery:
    """What one discovery found, published whole: the samples after it read these VMs (or fail with ``error``)."""

    vms: tuple[VmProcess, ...] = ()
    error: OSError | SourceError | None = None


@dataclass(frozen=True)
class VcpuReading:
    tid: int
    run_seconds: float
    wait_seconds: float
    host_cpu: int
    cycles: float | None = None


@dataclass(frozen=True)
class VmReading:
    hypervisor: str
    pid: int
    vcpus: Mapping[int, VcpuReading]


@dataclass(frozen=True)
class VmReadings:
    """One sample of every VM; ``errors`` names files that exist but could not be used (the rest is still read)."""

    vms: Mapping[str, VmReading]
    errors: tuple[str, ...] = ()


class ThreadCounter(Protocol):
    """Per-thread cycle counters (sources.perf.ThreadCycles, or a test double)."""

    def open_thread(self, tid: int) -> None: ...

    def close_thread(self, tid: int) -> None: ...

    def read(self) -> dict[int, float]: ...

    def close(self) -> None: ...


QmpQuery = Callable[[str], dict[int, int]]  # vm name -> {vCPU: tid}; raises OSError or SourceError


def _gone(e: OSError) -> bool:
    return e.errno in _GONE


def _read_text(path: str, dir_fd: int | None = None) -> str:
    return read_small(path, short_read_ends=True, dir_fd=dir_fd)


_TASK_READ = 4096  # a task's stat line is about 350 bytes, its schedstat about 30


def _read_task_file(path: str, dir_fd: int | None) -> str:
    """A task file read at each sample: one open and one read; one that fills the read goes to the bounded reader."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        data = os.read(fd, _TASK_READ)
    finally:
        os.close(fd)
    if len(data) < _TASK_READ:
        return data.decode("utf-8", "replace")
    return _read_text(path, dir_fd)


def _pread_task_file(fd: int, path: str, dir_fd: int | None) -> str:
    """A held task file (VmWatch._hold) read afresh from offset 0; one that fills the read goes to read_small."""
    data = os.pread(fd, _TASK_READ, 0)
    if len(data) < _TASK_READ:
        return data.decode("utf-8", "replace")
    return _read_text(path, dir_fd)


def _read_comm(procfs: Path, pid: int, proc: int) -> str:
    """/proc/<pid>/comm, opened below ``proc``, a descriptor of procfs: one open, one read, one close."""
    try:
        return _read_task_file(f"{pid}/comm", proc).rstrip("\n")
    except OSError as e:
        if e.filename is not None:  # the open's error names the path relative to procfs; a read's names none
            e.filename = f"{procfs}/{pid}/comm"
        raise


def _start_ticks(procfs: Path, pid: int) -> str:
    """Field 22 of /proc/<pid>/stat, the start time: with the pid, it names one process (pids are reused)."""
    path = f"{procfs}/{pid}/stat"
    fields = parse_pid_stat(_read_text(path), path).fields
    if len(fields) < 20:
        raise SourceError(path, f"{len(fields) + 2} fields, need at least 22")
    return fields[19]


def _task_ids(procfs: Path, pid: int) -> frozenset[int]:
    return frozenset(int(e.name) for e in os.scandir(f"{procfs}/{pid}/task") if e.name.isdigit())


def _threads(procfs: Path, pid: int, hypervisor: str) -> dict[int, int]:
    """{vCPU: tid} from the thread names of one process."""
    out: dict[int, int] = {}
    task = f"{procfs}/{pid}/task"
    for entry in os.scandir(task):
        if not entry.name.isdigit():
            continue
        try:
            comm = _read_text(f"{task}/{entry.name}/comm").rstrip("\n")
        except OSError as e:
            if _gone(e):
                continue
            raise
        vcpu = vcpu_of_thread(hypervisor, comm)
        if vcpu is not None:
            out[vcpu] = int(entry.name)
    return out


class VmWatch:
    """Finds VMs every ``rescan_seconds`` and reads their vCPU threads at every sample.

    Holds what it found between samples, and the per-thread cycle counters: each
    opened once when its thread is found, kept open, closed when the thread goes.

    Without ``background``, :meth:`read` discovers when ``rescan_seconds`` have
    passed (or a VM went), before it reads. With ``background``, only
    :meth:`rescan` discovers, on a thread of its own (the sampler's
    ``vm-discovery`` chore, every ``rescan_seconds``), and :meth:`read` takes the
    latest published :class:`Discovery`: a sample never carries a discovery, and
    a VM that went is left out until the next one. The two threads share nothing
    else: discovery's caches are touched only by :meth:`rescan` and
    :meth:`discover`, the descriptors and counters only by :meth:`read`; one
    :meth:`read` at a time, one :meth:`rescan` at a time.
    """

    def __init__(
        self,
        procfs: Path,
        rescan_seconds: float = 5.0,
        max_count: int = 256,
        qmp: QmpQuery | None = None,
        cycles: ThreadCounter | None = None,
        background: bool = False,
        held_files: int = 0,
    ) -> None:
        self.procfs = procfs
        self.background = background
        self.held_files = held_files
        self.rescan_seconds = rescan_seconds
        self.max_count = max_count
        self.qmp = qmp
        self.cycles = cycles
        self.cycles_error = ""  # why there are no per-vCPU cycles, once the first open was refused
        self.found: tuple[VmProcess, ...] = ()  # the VMs read() reads (those of the Discovery it last took)
        self._published: Discovery | None = None  # replaced whole by each discovery, never changed
        self._taken: Discovery | None = None  # the Discovery read() last synced its descriptors to
        self._next_scan: float | None = None
        # pid -> inode of its /proc directory and comm (None: a kernel thread), of processes that run no hypervisor
        self._not_vms: dict[int, tuple[int, str | None]] = {}
        # pid -> (comm, start time), its tids, what was found
        self._seen: dict[int, tuple[tuple[str, str], frozenset[int], VmProcess]] = {}
        self._still_not_vms: dict[int, tuple[int, str | None]] = {}  # what the scan under way confirmed or learnt
        self._still_seen: dict[int, tuple[tuple[str, str], frozenset[int], VmProcess]] = {}
        self._told: dict[int, str] = {}  # pid -> the last reason logged for its missing vCPUs
        self._dropped_told = False
        self._counted: set[int] = set()  # tids with an open cycle counter
        self._tasks: dict[int, int] = {}  # pid -> descriptor of /proc/<pid>/task: each read opens "<tid>/stat"
        self._held: dict[int, dict[int, tuple[int, int]]] = {}  # pid -> tid -> its schedstat and stat, held open

    # --- discovery ---

    def _find(self, pid: int, inode: int, room: bool, proc: int) -> VmProcess | bool:
        """The VM process ``pid`` runs; False for any other process, True for one beyond ``room``.

        Only comm is read again for a process already known: exec changes it
        (fs/exec.c __set_task_comm), and it is one small read. A process known to
        run no hypervisor, in the same ``/proc/<pid>`` directory (``inode``: a
        reused pid is a new directory) with the same comm, still runs none. A
        known VM with the same start time and threads is what it was (its
        command line is not read again, its QMP not asked again). A kernel thread
        in the same directory is not read at all.
        """
        known = self._not_vms.get(pid)
        if known == (inode, None):
            self._still_not_vms[pid] = (inode, None)
            return False
        comm = _read_comm(self.procfs, pid, proc)
        if known == (inode, comm):
            self._still_not_vms[pid] = (inode, comm)
            return False
        base = f"{self.procfs}/{pid}"
        seen = self._seen.get(pid)
        identity = (comm, _start_ticks(self.procfs, pid)) if seen is not None else None
        if seen is not None and seen[0] == identity:
            tids = _task_ids(self.procfs, pid)
            if seen[1] == tids and (seen[2].vcpus or self.qmp is None):
                self._still_seen[pid] = seen
                return seen[2] if room else True
        argv = parse_cmdline(read_small_bytes(f"{base}/cmdline", _CMDLINE_LIMIT))
        hypervisor = hypervisor_of(comm, argv[0] if argv else "")
        if hypervisor is None:
            kernel = not argv and is_kernel_thread(self.procfs, pid)  # no mm, no command line
            self._still_not_vms[pid] = (inode, None if kernel else comm)
            return False
        if not room:
            return True
        tids = _task_ids(self.procfs, pid)
        vm = self._vm(pid, hypervisor, argv)
        self._still_seen[pid] = ((comm, _start_ticks(self.procfs, pid)), tids, vm)
        return vm

    def _vm(self, pid: int, hypervisor: str, argv: tuple[str, ...]) -> VmProcess:
        name = vm_name(hypervisor, argv, pid)
        vcpus = _threads(self.procfs, pid, hypervisor)
        why = ""
        if not vcpus and hypervisor == "qemu":
            if self.qmp is None:
                why = (
                    "its vCPU threads have no names (start QEMU with -name NAME,debug-threads=on) "
                    "and no --vm.qmp-socket is given"
                )
            else:
                try:
                    vcpus = {c: t for c, t in self.qmp(name).items() if os.path.isdir(f"{self.procfs}/{pid}/task/{t}")}
                    if not vcpus:
                        why = "QMP query-cpus-fast named no thread of this process"
                except (OSError, SourceError) as e:
                    why = f"its vCPU threads have no names and QMP failed: {e}"
        elif not vcpus:
            why = "no thread is named as a vCPU"
        return VmProcess(name, hypervisor, pid, vcpus, why)

    def discover(self) -> tuple[VmProcess, ...]:
        """Every VM process below procfs now, at most ``max_count`` (lowest pids first)."""
        # d_ino of a /proc listing is the pid directory's inode number (fs/proc/base.c proc_fill_cache),
        # got with the listing: no stat per process
        pids = sorted((int(e.name), e.inode()) for e in os.scandir(self.procfs) if e.name.isdigit())
        self._still_not_vms = {}
        self._still_seen = {}
        found: list[VmProcess] = []
        dropped = 0
        proc = os.open(self.procfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for pid, inode in pids:
                try:
                    vm = self._find(pid, inode, len(found) < self.max_count, proc)
                    if vm is True:
                        dropped += 1
                    elif vm:
                        found.append(vm)
                except OSError as e:
                    if _gone(e):
                        continue  # exited while scanning
                    if e.filename is None:  # a read() error (EISDIR, EIO) names no file: name the process
                        e.filename = f"{self.procfs}/{pid}"
                    raise
        except BaseException:
            self._not_vms.update(self._still_not_vms)  # a failed scan forgets nothing (pids that went: at the next)
            self._seen.update(self._still_seen)
            raise
        finally:
            os.close(proc)
        self._not_vms, self._seen = self._still_not_vms, self._still_seen  # what this scan confirmed or learnt
        self._log_discovery(found, dropped)
        return tuple(found)

    def rescan(self) -> Discovery:
        """Discovers and publishes the result for the samples that follow; a failure is published as their error."""
        try:
            published = Discovery(self.discover())
        except (OSError, SourceError) as e:
            published = Discovery(error=e)
        self._published = published
        return published

    def _log_discovery(self, found: list[VmProcess], dropped: int) -> None:
        told = {}
        for vm in found:
            if vm.why_no_vcpus and self._told.get(vm.pid) != vm.why_no_vcpus:
                log.warning(
                    "vm %s (%s pid %d): only VM-level series: %s", vm.name, vm.hypervisor, vm.pid, vm.why_no_vcpus
                )
            if vm.why_no_vcpus:
                told[vm.pid] = vm.why_no_vcpus
        self._told = told
        if dropped and not self._dropped_told:
            log.warning(
                "%d VMs beyond --vm.max-count=%d are not exported; raise --vm.max-count", dropped, self.max_count
            )
        self._dropped_told = bool(dropped)

    # --- sampling ---

    def _sync_counters(self) -> None:
        if self.cycles is None:
            return
        live = {tid for vm in self.found for tid in vm.vcpus.values()}
        for tid in self._counted - live:
            self.cycles.close_thread(tid)
        self._counted &= live
        for tid in sorted(live - self._counted):
            try:
                self.cycles.open_thread(tid)
            except PerfUnavailable as e:
                self.cycles_error = e.strerror or str(e)
                log.info("no per-vCPU cycle counters: %s", self.cycles_error)
                self.cycles.close()
                self.cycles = None
                self._counted.clear()
                return
            except OSError as e:
                if not _gone(e):
                    raise
                continue  # the thread went between discovery and open
            self._counted.add(tid)

    def _sync_tasks(self) -> None:
        """A directory descriptor per VM's task directory, opened at discovery, closed when the VM goes.

        Bound to that process: after it exits, opening through it fails with ENOENT
        even if the pid is reused, and the path walk is two components, not five.
        """
        wanted = {vm.pid for vm in self.found if vm.vcpus}
        for pid in set(self._tasks) - wanted:
            self._forget(pid)
        for pid in wanted - set(self._tasks):
            try:
                self._tasks[pid] = os.open(f"{self.procfs}/{pid}/task", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                if not _gone(e):
                    raise
        self._hold()

    def _hold(self) -> None:
        """Up to ``held_files`` vCPU files (schedstat and stat) held open, lowest pids first, each read with pread.

        A /proc seq_file read at offset 0 is generated afresh (fs/seq_file.c
        seq_read_iter: "if request is to read from zero offset, reset iterator"),
        so a held descriptor costs one pread per sample instead of an open, a read
        and a close (on this kernel, 6.18: about 3 us a file against 11). It is
        bound to its thread: once that exits, pread fails with ESRCH, as an open
        of a reused tid never could. Not for a fixture tree, where an unlinked
        file's descriptor keeps reading the old content: ``held_files=0`` there.
        A file that cannot be held is read the ordinary way, which reports it.
        """
        room = self.held_files
        for vm in self.found:
            held = self._held.setdefault(vm.pid, {})
            tids = set(vm.vcpus.values())
            for tid in set(held) - tids:
                for fd in held.pop(tid):
                    os.close(fd)
            room -= 2 * len(held)
            task = self._tasks.get(vm.pid)
            for tid in sorted(tids - set(held)):
                if task is None or room < 2:
                    break
                try:
                    schedstat = os.open(f"{tid}/schedstat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=task)
                except OSError:
                    continue
                try:
                    stat = os.open(f"{tid}/stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=task)
                except OSError:
                    os.close(schedstat)
                    continue
                held[tid] = (schedstat, stat)
                room -= 2
            if not held:
                del self._held[vm.pid]

    def _forget(self, pid: int) -> None:
        """Closes what is held for a VM that went (its pid may come back as another process)."""
        fd = self._tasks.pop(pid, None)
        if fd is not None:
            os.close(fd)
        for fds in self._held.pop(pid, {}).values():
            for held in fds:
                os.close(held)

    def _read_vm(self, vm: VmProcess, cycles: Mapping[int, float], errors: list[str]) -> VmReading | None:
        vcpus: dict[int, VcpuReading] = {}
        task = self._tasks.get(vm.pid)
        if task is None and vm.vcpus:
            return None  # gone before its directory could be opened
        held = self._held.get(vm.pid, {})
        for vcpu, tid in sorted(vm.vcpus.items()):
            where = f"{self.procfs}/{vm.pid}/task/{tid}"
            name = "schedstat"
            fds = held.get(tid)
            try:
                if fds is None:
                    schedstat = _read_task_file(f"{tid}/schedstat", task)
                    name = "stat"
                    stat = _read_task_file(f"{tid}/stat", task)
                else:
                    schedstat = _pread_task_file(fds[0], f"{tid}/schedstat", task)
                    name = "stat"
                    stat = _pread_task_file(fds[1], f"{tid}/stat", task)
                run, wait = parse_schedstat(schedstat, f"{where}/schedstat")
                cpu = parse_last_cpu(stat, f"{where}/stat")
            except OSError as e:
                if _gone(e):
                    return None  # the VM (or this vCPU) exited mid-read: left out, found again or not at the rescan
                e.filename = f"{where}/{name}"
                raise
            except SourceError as e:
                errors.append(str(e))
                continue
            vcpus[vcpu] = VcpuReading(tid, run, wait, cpu, cycles.get(tid))
        return VmReading(vm.hypervisor, vm.pid, vcpus)

    def idle(self) -> Discovery | None:
        """With ``background``, the latest published discovery if it found no VM and no error, else None.

        A read of it opens no file, so it cannot block; the caller passes it to :meth:`read`, which
        then reads that one even if a rescan has published another since (one with VMs to read).
        """
        published = self._published
        if not self.background or published is None or published.vms or published.error is not None:
            return None
        return published

    def read(self, now: float, discovery: Discovery | None = None) -> VmReadings:
        """One sample of every VM found; without ``background``, rediscovers first when due or a VM went.

        With ``background``, reads ``discovery`` if given (one :meth:`idle` returned), else the latest published.
        """
        if not self.background and (self._next_scan is None or now >= self._next_scan):
            self._published = Discovery(self.discover())
            self._next_scan = now + self.rescan_seconds
        published = discovery if discovery is not None and self.background else self._published
        if published is None:
            return VmReadings({})  # the first discovery has not finished
        if published.error is not None:
            raise published.error.with_traceback(None)  # the same object at each sample: no growing traceback
        if published is not self._taken:
            self._taken = published
            self.found = published.vms
            self._sync_tasks()
        self._sync_counters()
        cycles = self.cycles.read() if self.cycles is not None else {}
        errors: list[str] = []
        out: dict[str, VmReading] = {}
        for vm in self.found:
            reading = self._read_vm(vm, cycles, errors)
            if reading is None:
                self._next_scan = now  # look again at the next sample (in the background: at the next rescan)
                self._forget(vm.pid)
                continue
            out.setdefault(vm.name, reading)  # two processes claiming one name: the lower pid keeps it
        return VmReadings(out, tuple(errors))

    def close(self) -> None:
        for pid in list(self._tasks):
            self._forget(pid)
        if self.cycles is not None:
            self.cycles.close()
            self._counted.clear()
