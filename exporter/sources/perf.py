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


class PerfUnavailable(OSError):
    """perf counters cannot be opened; the message says why and how to fix it."""


@dataclass(frozen=True)
class PerfReading:
    cycles: float
    ref_cycles: float | None


def _attr(config: int) -> bytes:
    # type, size, config, sample_period, sample_type, read_format, flag bits
    # (all zero: enabled, counting user, kernel and hypervisor), wakeup_events,
    # bp_type, config1.
    return struct.pack("=IIQQQQQIIQ", PERF_TYPE_HARDWARE, _ATTR_SIZE_VER0, config, 0, 0, _READ_FORMAT, 0, 0, 0, 0)


def paranoid_level(procfs: Path) -> str:
    try:
        return read_small(procfs / "sys" / "kernel" / "perf_event_paranoid").strip()
    except (OSError, SourceError):
        return "unknown"


class PerfCounters:
    """Cycle and ref-cycle counters per CPU, kept open between reads."""

    def __init__(self, procfs: Path) -> None:
        number = _SYSCALL.get(platform.machine())
        if number is None:
            raise PerfUnavailable(errno.ENOSYS, f"perf_event_open: unknown syscall number on {platform.machine()}")
        self._nr = number
        self._procfs = procfs
        self._groups: dict[int, tuple[int, int | None]] = {}
        self._failed: set[int] = set()

    def _open(self, config: int, cpu: int, group_fd: int) -> int:
        attr = ctypes.create_string_buffer(_attr(config), _ATTR_SIZE_VER0)
        return syscall(self._nr, ctypes.addressof(attr), -1, cpu, group_fd, PERF_FLAG_FD_CLOEXEC)

    def open_cpu(self, cpu: int) -> None:
        """Open the group for one CPU; raises PerfUnavailable with the fix when not permitted."""
        if cpu in self._groups:
            return
        try:
            leader = self._open(PERF_COUNT_HW_CPU_CYCLES, cpu, -1)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                raise PerfUnavailable(
                    e.errno,
                    "perf_event_open for CPU-wide cycle counters was refused "
                    f"(kernel.perf_event_paranoid={paranoid_level(self._procfs)}): run as root, "
                    "grant CAP_PERFMON as an ambient capability (systemd: AmbientCapabilities=CAP_PERFMON; "
                    "a container: uid 0 with --cap-add PERFMON), or set sysctl kernel.perf_event_paranoid=0",
                ) from None
            if e.errno in (errno.ENOENT, errno.EOPNOTSUPP, errno.ENODEV):
                if e.errno == errno.ENODEV:
                    self._failed.add(cpu)  # offline CPU: try again when it is back
                raise PerfUnavailable(
                    e.errno,
                    f"no hardware cycle counter on CPU {cpu} ({e.strerror}); "
                    "VMs need a virtual PMU (e.g. QEMU -cpu host,pmu=on)",
                ) from None
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
