"""/proc/cpuinfo frequency per processor, in each architecture's own wording.

- x86 ``cpu MHz`` (arch/x86/kernel/cpu/proc.c show_cpuinfo): the frequency
  measured from APERF/MPERF over the last tick when it can
  (arch/x86/kernel/cpu/aperfmperf.c, since 5.11 via arch_freq_get_on_cpu),
  else cpufreq's value, else the nominal ``cpu_khz``; in VMs without
  APERF/MPERF this is the constant TSC rate.
- s390x ``cpu MHz dynamic`` and ``cpu MHz static`` after ``cpu number``
  (arch/s390/kernel/processor.c show_cpu_mhz, since 4.15): dynamic is taken,
  static where dynamic is missing.
- ppc64 ``clock : 2900.000000MHz`` (arch/powerpc/kernel/setup-common.c
  show_cpuinfo).
- LoongArch ``CPU MHz`` (arch/loongarch/kernel/proc.c show_cpuinfo).
- arm64 and riscv print no frequency at all (arch/arm64/kernel/cpuinfo.c,
  arch/riscv/kernel/cpu.c): :func:`require_cpuinfo` says so as the source's
  error, and the snapshot falls through to perf.

On x86 a ``flags`` line without ``aperfmperf`` means the kernel has no
APERF/MPERF to measure with: without a cpufreq driver, ``cpu MHz`` is then
``cpu_khz``, fixed at boot (:attr:`CpuInfoMhz.constant`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import HeldFiles, SourceError, read_small

# The lines that carry a frequency in MHz, best first where one processor has several.
MHZ_KEYS = {"cpu MHz": 0, "CPU MHz": 0, "cpu MHz dynamic": 0, "clock": 0, "cpu MHz static": 1}
PROCESSOR_KEYS = ("processor", "cpu number")  # "cpu number" on s390x


def _mhz(key: str, value: str, path: str, lineno: int) -> float | None:
    text = value.strip()
    if key == "clock":
        if not text.endswith("MHz"):  # only ppc's "clock" is a frequency
            return None
        text = text.removesuffix("MHz")
    try:
        mhz = float(text)
    except ValueError:
        raise SourceError(path, f"{key} {value.strip()!r} is not a number", lineno) from None
    if not (math.isfinite(mhz) and mhz > 0):  # nan, inf and negative cannot be a clock
        raise SourceError(path, f"{key} {value.strip()!r} is not a frequency", lineno)
    return mhz


@dataclass(frozen=True)
class CpuInfoMhz:
    hertz: dict[int, float]  # keyed by the ``processor`` (or s390x ``cpu number``) each follows
    # x86 without APERF/MPERF (flags without "aperfmperf", as in most VMs): without a cpufreq driver
    # the kernel prints cpu_khz, the rate found at boot, so the file says the same at every read.
    constant: bool = False


def parse_cpuinfo(text: str, path: str = "/proc/cpuinfo") -> dict[int, float]:
    """The frequency in hertz keyed by the ``processor`` (or s390x ``cpu number``) it follows."""
    return parse_cpuinfo_mhz(text, path).hertz


def parse_cpuinfo_mhz(text: str, path: str = "/proc/cpuinfo") -> CpuInfoMhz:
    """:func:`parse_cpuinfo`, and whether the kernel prints a rate that never changes."""
    result: dict[int, float] = {}
    rank: dict[int, int] = {}
    processor: int | None = None
    flags = measured = False
    for lineno, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "flags":
            flags = True
            measured = measured or "aperfmperf" in value.split()
        elif key in PROCESSOR_KEYS:
            try:
                processor = int(value)
            except ValueError:
                raise SourceError(path, f"{key} {value.strip()!r} is not a number", lineno) from None
        elif key in MHZ_KEYS:
            mhz = _mhz(key, value, path, lineno)
            if mhz is None:
                continue
            if processor is None:
                raise SourceError(path, f"{key} before any processor line", lineno)
            if MHZ_KEYS[key] < rank.get(processor, len(MHZ_KEYS)):
                result[processor] = mhz * 1e6
                rank[processor] = MHZ_KEYS[key]
    return CpuInfoMhz(result, flags and not measured)


# x86 prints about 1.5 KiB per CPU (the flags line is most of it): 8,192 CPUs take about 12 MiB.
CPUINFO_LIMIT = 32 << 20


def read_cpuinfo(procfs: Path, held: HeldFiles | None = None) -> dict[int, float]:
    """``held``: read through its descriptor for the file. Printed a processor at a time (a read returns about
    a page), so it is read until an empty read."""
    return _read(procfs, held).hertz


def _read(procfs: Path, held: HeldFiles | None) -> CpuInfoMhz:
    path = str(procfs / "cpuinfo")
    text = read_small(path, CPUINFO_LIMIT) if held is None else held.read(path, CPUINFO_LIMIT)
    return parse_cpuinfo_mhz(text, path)


def require_cpuinfo(procfs: Path, held: HeldFiles | None = None) -> CpuInfoMhz:
    """:func:`read_cpuinfo`, where a file without any frequency is an error."""
    mhz = _read(procfs, held)
    if not mhz.hertz:
        raise SourceError(
            str(procfs / "cpuinfo"),
            "states no frequency (no 'cpu MHz', 'CPU MHz', 'cpu MHz dynamic' or 'clock' line; "
            "arm64 and riscv kernels print none)",
        )
    return mhz
