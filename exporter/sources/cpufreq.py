"""cpufreq sysfs per CPU (Documentation/admin-guide/pm/cpufreq.rst).

``/sys/devices/system/cpu/cpu<N>/cpufreq/`` holds, in kHz:

- ``cpuinfo_avg_freq`` (Linux 6.13+, where the hardware can measure it): the
  average frequency over a recent interval from hardware counters (APERF/MPERF
  on x86, AMU on arm64); node_exporter 1.12 exports it. Read first.
- ``scaling_cur_freq``: what the cpufreq core believes (the last requested
  frequency, or with intel_pstate in active mode an APERF/MPERF average);
  node_exporter's ``node_cpu_scaling_frequency_hertz``.
- ``cpuinfo_cur_freq``: the frequency read back from the hardware, mode 0400
  (root only); node_exporter's ``node_cpu_frequency_hertz``. Read where
  readable, as the hardware's value and as the current frequency where the
  first two are missing.
- ``cpuinfo_min_freq`` / ``cpuinfo_max_freq``, and ``scaling_governor``.

The directory is absent for CPUs without a cpufreq driver (most VMs). A driver
may leave out any of the current-frequency files; the limits and governor are
kept all the same. An offline CPU may keep its policy directory with stale
values, so this reader returns every CPU it finds and the snapshot keeps only
the online ones (/proc/stat lists exactly those).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import HeldFiles, SourceError, read_small

_CPU_DIR = re.compile(r"cpu(\d+)")


# The current-frequency files, best first, with the source name the snapshot exports for each.
CURRENT_FILES = (
    ("cpuinfo_avg_freq", "cpufreq_avg"),
    ("scaling_cur_freq", "cpufreq"),
    ("cpuinfo_cur_freq", "cpufreq_hardware"),
)


@dataclass(frozen=True)
class CpuFreq:
    frequency_hertz: float | None  # from the first of CURRENT_FILES present; None: none is
    min_hertz: float | None
    max_hertz: float | None
    governor: str | None
    source: str = "cpufreq"  # the CURRENT_FILES name of frequency_hertz
    hardware_hertz: float | None = None  # cpuinfo_cur_freq, where readable


_KHZ_DIGITS = 12  # 12 digits of kHz: 1 PHz


def parse_khz(text: str, path: str) -> float:
    value = text.strip()
    if not value.isascii() or not value.isdigit() or len(value) > _KHZ_DIGITS:
        raise SourceError(path, f"{value[:30]!r} is not a kHz integer")
    return int(value) * 1000.0


def _optional(path: str, unreadable_is_missing: bool = False) -> str | None:
    try:
        return read_small(path)
    except FileNotFoundError:
        return None
    except PermissionError:
        if unreadable_is_missing:
            return None
        raise


def _khz(policy: str, name: str, unreadable_is_missing: bool = False) -> float | None:
    text = _optional(policy + name, unreadable_is_missing)
    return None if text is None else parse_khz(text, policy + name)


def read_policy(policy: str) -> CpuFreq | None:
    """One ``cpu<N>/cpufreq/`` directory (path ending in ``/``); None if it does not exist."""
    if not os.path.isdir(policy):
        return None
    hardware = _khz(policy, "cpuinfo_cur_freq", unreadable_is_missing=True)  # 0400: root only
    current: float | None = None
    source = "cpufreq"
    for name, name_source in CURRENT_FILES:
        value = hardware if name == "cpuinfo_cur_freq" else _khz(policy, name)
        if value is not None:
            current, source = value, name_source
            break
    governor = _optional(policy + "scaling_governor")
    return CpuFreq(
        frequency_hertz=current,
        min_hertz=_khz(policy, "cpuinfo_min_freq"),
        max_hertz=_khz(policy, "cpuinfo_max_freq"),
        governor=None if governor is None else governor.strip() or None,
        source=source,
        hardware_hertz=hardware,
    )


def read_cpufreq(sysfs: Path) -> dict[int, CpuFreq]:
    """Every CPU that has a cpufreq directory; empty when there is no cpufreq driver."""
    base = os.path.join(sysfs, "devices", "system", "cpu")
    result: dict[int, CpuFreq] = {}
    for name in os.listdir(base):
        match = _CPU_DIR.fullmatch(name)
        if not match:
            continue
        policy = read_policy(f"{base}/{name}/cpufreq/")
        if policy is not None:
            result[int(match.group(1))] = policy
    return result


_FILE_OF_SOURCE = {name_source: name for name, name_source in CURRENT_FILES}
# More than any kHz value and its newline: sysfs prints an attribute in one go, so the one read of
# read_small (short_read_ends) is all of it, and a longer file is refused.
_KHZ_LIMIT = 31


def _read_khz(path: str) -> float:
    """One open, one read and one close: read_small's single short read (short_read_ends) without the
    layers around it, which added about a third to the syscalls and the parse here (512 reads a sample on
    a 256-CPU host: 3.2 ms against 2.3 ms, the same sitting; 2.6 ms this way)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, _KHZ_LIMIT + 1)
    finally:
        os.close(fd)
    return _khz_of(data, path)


def _khz_of(data: bytes, path: str) -> float:
    if len(data) > _KHZ_LIMIT:
        raise SourceError(path, f"larger than {_KHZ_LIMIT} bytes")
    digits = data.strip()
    if digits.isdigit() and len(digits) <= _KHZ_DIGITS:  # ASCII digits: what parse_khz accepts, as it reads it
        return int(digits) * 1000.0
    return parse_khz(data.decode("utf-8", "replace"), path)  # its error (or a value str.strip finds more space around)


def read_current(sysfs: Path, known: Mapping[int, CpuFreq], held: HeldFiles | None = None) -> dict[int, CpuFreq]:
    """The CPUs of ``known`` (an earlier :func:`read_cpufreq`) with only their current frequencies read
    again: the file each took its frequency from and ``cpuinfo_cur_freq`` where it was readable. The
    limits and governor are ``known``'s (they change only when a driver or an administrator sets them).

    Two reads a CPU instead of a directory check and six opens. Raises (OSError or SourceError) when
    one of those files is gone or unreadable: the policy changed, and it must be read whole again.

    ``held``: each file read with one pread through a descriptor it holds (HeldFiles.read_attribute),
    instead of an open, a read and a close: on sysfs, 512 files took 2.7 ms opened each time and 0.45 ms
    through held descriptors here (a sysfs attribute of this host's, read 512 times, the same sitting).
    Only for a sysfs (the snapshot passes it where cpufreq runs inline): a file of a fixture tree
    replaced by rename or removed would go on being read through the descriptor of the old one.
    """
    base = os.path.join(sysfs, "devices", "system", "cpu")
    read_khz = _read_khz
    if held is not None:
        attribute = held.read_attribute
        read_khz = lambda path: _khz_of(attribute(path, _KHZ_LIMIT + 1), path)  # noqa: E731
    result: dict[int, CpuFreq] = {}
    for cpu, known_freq in known.items():
        policy = f"{base}/cpu{cpu}/cpufreq/"
        hardware = None
        if known_freq.hardware_hertz is not None:
            hardware = read_khz(policy + "cpuinfo_cur_freq")
        source = known_freq.source
        current = None
        if source == "cpufreq_hardware":
            current = hardware
        elif known_freq.frequency_hertz is not None:
            current = read_khz(policy + _FILE_OF_SOURCE[source])
        if current == known_freq.frequency_hertz and hardware == known_freq.hardware_hertz:
            # Frozen: the same values are ``known``'s object again. A frozen dataclass of six fields costs
            # 2-3 us to build here (one object.__setattr__ a field), 256 times a sample: a frequency that
            # holds between two samples (a fixed P-state, an idle CPU) costs two comparisons instead.
            result[cpu] = known_freq
        else:  # the constructor with its fields in order, not dataclasses.replace (three times the cost)
            result[cpu] = CpuFreq(
                current, known_freq.min_hertz, known_freq.max_hertz, known_freq.governor, source, hardware
            )
    return result


class NoCpufreqDriver(SourceError):
    """No CPU has a cpufreq directory: no cpufreq driver is loaded."""


def require_cpufreq(sysfs: Path) -> dict[int, CpuFreq]:
    """:func:`read_cpufreq`, where no CPU with a cpufreq directory is an error naming the directory."""
    freqs = read_cpufreq(sysfs)
    if not freqs:
        raise NoCpufreqDriver(f"{sysfs}/devices/system/cpu/cpu*/cpufreq", "missing (no cpufreq driver, as in most VMs)")
    return freqs
