"""cpufreq sysfs per CPU (Documentation/admin-guide/pm/cpufreq.rst).

``/sys/devices/system/cpu/cpu<N>/cpufreq/`` holds ``scaling_cur_freq``,
``cpuinfo_min_freq`` and ``cpuinfo_max_freq`` in kHz and ``scaling_governor``.
The directory is absent for CPUs without a cpufreq driver (most VMs). An
offline CPU may keep its policy directory with stale values, so this reader
returns every CPU it finds and the snapshot keeps only the online ones
(/proc/stat lists exactly those). With intel_pstate in active mode
``scaling_cur_freq`` is an APERF/MPERF average rather than a requested P-state.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import SourceError, read_small

_CPU_DIR = re.compile(r"cpu(\d+)")


@dataclass(frozen=True)
class CpuFreq:
    frequency_hertz: float
    min_hertz: float | None
    max_hertz: float | None
    governor: str | None


def parse_khz(text: str, path: str) -> float:
    try:
        return int(text.strip()) * 1000.0
    except ValueError:
        raise SourceError(path, f"{text.strip()!r} is not a kHz integer") from None


def _optional(path: str) -> str | None:
    try:
        return read_small(path)
    except FileNotFoundError:
        return None


def read_cpufreq(sysfs: Path) -> dict[int, CpuFreq]:
    """Every CPU that has a cpufreq directory; empty when there is no cpufreq driver."""
    base = os.path.join(sysfs, "devices", "system", "cpu")
    result: dict[int, CpuFreq] = {}
    for name in os.listdir(base):
        match = _CPU_DIR.fullmatch(name)
        if not match:
            continue
        policy = f"{base}/{name}/cpufreq/"
        cur = _optional(policy + "scaling_cur_freq")
        if cur is None:
            continue
        minimum = _optional(policy + "cpuinfo_min_freq")
        maximum = _optional(policy + "cpuinfo_max_freq")
        governor = _optional(policy + "scaling_governor")
        result[int(match.group(1))] = CpuFreq(
            frequency_hertz=parse_khz(cur, policy + "scaling_cur_freq"),
            min_hertz=None if minimum is None else parse_khz(minimum, policy + "cpuinfo_min_freq"),
            max_hertz=None if maximum is None else parse_khz(maximum, policy + "cpuinfo_max_freq"),
            governor=None if governor is None else governor.strip() or None,
        )
    return result


def require_cpufreq(sysfs: Path) -> dict[int, CpuFreq]:
    """:func:`read_cpufreq`, where no CPU with a cpufreq frequency is an error naming the directory."""
    freqs = read_cpufreq(sysfs)
    if not freqs:
        raise SourceError(
            f"{sysfs}/devices/system/cpu/cpu*/cpufreq", "missing (no cpufreq driver, as in most VMs)"
        )
    return freqs
