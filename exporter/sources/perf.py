"""Per-CPU hardware cycle counters through perf_event_open(2).

Opens, for every online CPU, a group of PERF_COUNT_HW_CPU_CYCLES (leader) and
PERF_COUNT_HW_REF_CPU_CYCLES with ``pid=-1, cpu=N`` (all tasks on that CPU;
include/uapi/linux/perf_event.h). The group is scheduled as one unit so both
counts cover the same time; a read(2) of the leader with PERF_FORMAT_GROUP
returns ``nr, time_enabled, time_running, cycles, ref_cycles`` without
blocking. Counters stay open across samples; when the PMU is shared and the
group is multiplexed (time_running < time_enabled) the counts are scaled, as
perf-stat does.

Cycles stop while a CPU is halted, so cycles over a window divided by the busy
time of that window is the average clock while running; ref-cycles count at
the constant TSC rate while unhalted. Architectures without ref-cycles (most
arm64 PMUs) get the cycles counter alone.

Permission: CPU-wide events need CAP_PERFMON (5.8+) or CAP_SYS_ADMIN when
kernel.perf_event_paranoid > 0 (kernel/events/core.c perf_allow_cpu).
ctypes is enough: the attribute struct is written at PERF_ATTR_SIZE_VER0 (64
bytes), which every kernel since 2.6.31 accepts.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import SourceError, read_small
from exporter.sources.libc import syscall

PERF_TYPE_HARDWARE = 0
PERF_COUNT_HW_CPU_CYCLES = 0
PERF_COUNT_HW_REF_CPU_CYCLES = 9
PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0
PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1
PERF_FORMAT_GROUP = 1 << 3
PERF_FLAG_FD_CLOEXEC = 1 << 3
_ATTR_SIZE_VER0 = 64
_SYSCALL = {"x86_64": 298, "aarch64": 241, "i686": 336, "armv7l": 364, "ppc64le": 319, "s390x": 331, "riscv64": 241}
_READ_FORMAT = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING | PERF_FORMAT_GROUP
_THREAD_READ_FORMAT = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING


class PerfUnavailable(OSError):
    """perf counters cannot be opened; the message says why and how to fix it."""


@dataclass(frozen=True)
class PerfReading:
    cycles: float
    ref_cycles: float | None


def _attr(config: int, read_format: int = _READ_FORMAT) -> bytes:
    # type, size, config, sample_period, sample_type, read_format, flag bits
    # (all zero: enabled, counting user, kernel and hypervisor), wakeup_events,
    # bp_type, config1.
    return struct.pack("=IIQQQQQIIQ", PERF_TYPE_HARDWARE, _ATTR_SIZE_VER0, config, 0, 0, read_format, 0, 0, 0, 0)


def _syscall_number() -> int:
    number = _SYSCALL.get(platform.machine())
    if number is None:
        raise PerfUnavailable(errno.ENOSYS, f"perf_event_open: unknown syscall number on {platform.machine()}")
    return number


def _open_event(nr: int, config: int, pid: int, cpu: int, group_fd: int, read_format: int = _READ_FORMAT) -> int:
    attr = ctypes.create_string_buffer(_attr(config, read_format), _ATTR_SIZE_VER0)
    return syscall(nr, ctypes.addressof(attr), pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC)


def _refusal(e: OSError, procfs: Path, what: str, where: str) -> PerfUnavailable | None:
    """The PerfUnavailable (with its fix) for a refused perf_event_open, or None for other errors."""
    if e.errno in (errno.EACCES, errno.EPERM):
        return PerfUnavailable(
            e.errno,
            f"perf_event_open for {what} was refused "
            f"(kernel.perf_event_paranoid={paranoid_level(procfs)}): run as root, "
            "grant CAP_PERFMON as an ambient capability (systemd: AmbientCapabilities=CAP_PERFMON; "
            "a container: uid 0 with --cap-add PERFMON), or set sysctl kernel.perf_event_paranoid=0",
        )
    if e.errno in (errno.ENOENT, errno.EOPNOTSUPP, errno.ENODEV):
        return PerfUnavailable(
            e.errno,
            f"no hardware cycle counter {where} ({e.strerror}); VMs need a virtual PMU (e.g. QEMU -cpu host,pmu=on)",
        )
    return None


def paranoid_level(procfs: Path) -> str:
    try:
        return read_small(procfs / "sys" / "kernel" / "perf_event_paranoid").strip()
    except (OSError, SourceError):
        return "unknown"


class PerfCounters:
    """Cycle and ref-cycle counters per CPU, kept open between reads."""

    def __init__(self, procfs: Path) -> None:
        self._nr = _syscall_number()
        self._procfs = procfs
        self._groups: dict[int, tuple[int, int | None]] = {}
        self._failed: set[int] = set()

    def _open(self, config: int, cpu: int, group_fd: int) -> int:
        return _open_event(self._nr, config, -1, cpu, group_fd)

    def open_cpu(self, cpu: int) -> None:
        """Open the group for one CPU; raises PerfUnavailable with the fix when not permitted."""
        if cpu in self._groups:
            return
        try:
            leader = self._open(PERF_COUNT_HW_CPU_CYCLES, cpu, -1)
        except OSError as e:
            if e.errno == errno.ENODEV:
                self._failed.add(cpu)  # offline CPU: try again when it is back
            refusal = _refusal(e, self._procfs, "CPU-wide cycle counters", f"on CPU {cpu}")
            if refusal is not None:
                raise refusal from None
            raise
        try:
            ref: int | None = self._open(PERF_COUNT_HW_REF_CPU_CYCLES, cpu, leader)
        except OSError:
            ref = None  # arm64 and others have no ref-cycles event
        self._groups[cpu] = (leader, ref)
        self._failed.discard(cpu)

    def read(self) -> dict[int, PerfReading]:
        """Scaled counts for every open CPU; a CPU whose group never ran is left out."""
        result: dict[int, PerfReading] = {}
        for cpu, (leader, ref) in self._groups.items():
            nr = 2 if ref is not None else 1
            data = os.read(leader, 8 * (3 + nr))
            values = struct.unpack(f"={3 + nr}Q", data)
            enabled, running = values[1], values[2]
            if running == 0:
                continue
            scale = enabled / running if running < enabled else 1.0
            result[cpu] = PerfReading(
                cycles=values[3] * scale,
                ref_cycles=values[4] * scale if ref is not None else None,
            )
        return result

    @property
    def cpus(self) -> frozenset[int]:
        return frozenset(self._groups)

    def close(self) -> None:
        for leader, ref in self._groups.values():
            if ref is not None:
                os.close(ref)
            os.close(leader)
        self._groups.clear()


class ThreadCycles:
    """One cycle counter per thread (``pid=TID, cpu=-1``: that thread wherever it runs), kept open between reads.

    For the vCPU threads of VMs (sources/vm.py): a vCPU's cycles over its run
    time is the clock it ran at. Counting another process's thread needs
    ptrace read access to it (root) besides the PMU; a thread's counter is
    opened once, read each sample, and closed when the thread goes.
    """

    def __init__(self, procfs: Path) -> None:
        self._nr = _syscall_number()
        self._procfs = procfs
        self._fds: dict[int, int] = {}

    def open_thread(self, tid: int) -> None:
        """Raises PerfUnavailable (with the fix) when counters are refused or missing, OSError ESRCH when gone."""
        if tid in self._fds:
            return
        try:
            fd = _open_event(self._nr, PERF_COUNT_HW_CPU_CYCLES, tid, -1, -1, _THREAD_READ_FORMAT)
        except OSError as e:
            refusal = _refusal(e, self._procfs, "per-thread cycle counters", "for threads")
            if refusal is not None:
                raise refusal from None
            raise
        self._fds[tid] = fd

    def close_thread(self, tid: int) -> None:
        fd = self._fds.pop(tid, None)
        if fd is not None:
            os.close(fd)

    def read(self) -> dict[int, float]:
        """Scaled cycles per open thread since it was opened; a thread that has not run yet is left out."""
        out: dict[int, float] = {}
        for tid, fd in self._fds.items():
            value, enabled, running = struct.unpack("=3Q", os.read(fd, 24))
            if running:
                out[tid] = value * (enabled / running if running < enabled else 1.0)
        return out

    @property
    def threads(self) -> frozenset[int]:
        return frozenset(self._fds)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
