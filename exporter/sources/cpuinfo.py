"""/proc/cpuinfo ``cpu MHz`` per processor (arch/x86/kernel/cpu/proc.c show_cpuinfo).

On x86 the kernel reports the frequency measured from APERF/MPERF over the
last tick when it can (arch/x86/kernel/cpu/aperfmperf.c, since 5.11 via
arch_freq_get_on_cpu), else cpufreq's value, else the nominal ``cpu_khz``; in
VMs without APERF/MPERF this is the constant TSC rate. Many arm64 and s390
kernels print no ``cpu MHz`` at all: such a file yields an empty result, and
the snapshot falls through to the next frequency source.
"""

from __future__ import annotations

from pathlib import Path

from exporter.sources import SourceError, read_small


def parse_cpuinfo(text: str, path: str = "/proc/cpuinfo") -> dict[int, float]:
    """``cpu MHz`` in hertz keyed by the ``processor`` number it follows."""
    result: dict[int, float] = {}
    processor: int | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "processor":
            try:
                processor = int(value)
            except ValueError:
                raise SourceError(path, f"processor {value.strip()!r} is not a number", lineno) from None
        elif key == "cpu MHz":
            if processor is None:
                raise SourceError(path, "cpu MHz before any processor line", lineno)
            try:
                mhz = float(value)
            except ValueError:
                raise SourceError(path, f"cpu MHz {value.strip()!r} is not a number", lineno) from None
            result[processor] = mhz * 1e6
    return result


def read_cpuinfo(procfs: Path) -> dict[int, float]:
    path = str(procfs / "cpuinfo")
    return parse_cpuinfo(read_small(path), path)


def require_cpuinfo(procfs: Path) -> dict[int, float]:
    """:func:`read_cpuinfo`, where a file without any frequency is an error."""
    mhz = read_cpuinfo(procfs)
    if not mhz:
        raise SourceError(str(procfs / "cpuinfo"), "no 'cpu MHz' lines")
    return mhz
