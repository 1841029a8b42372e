"""CPU time, usage and frequency families from a Snapshot."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.snapshot import Snapshot

# node_exporter's labels for the two guest columns of /proc/stat.
_GUEST_MODE = {"guest": "user", "guest_nice": "nice"}


def collect_cpu(snap: Snapshot) -> Iterator[Metric]:
    """sysmon_cpu_seconds_total{cpu="0",mode="user"} 12.3 (and guest time, usage ratio)."""
    if snap.cpu_seconds:
        seconds = CounterMetricFamily(
            "sysmon_cpu_seconds_total",
            "Seconds each CPU spent in each mode (/proc/stat; guest time is inside user and nice).",
            labels=["cpu", "mode"],
        )
        for cpu, modes in snap.cpu_seconds.items():
            for mode, value in modes.items():
                seconds.add_metric([str(cpu), mode], value)
        yield seconds
    if snap.cpu_guest_seconds:
        guest = CounterMetricFamily(
            "sysmon_cpu_guest_seconds_total",
            "Seconds each CPU spent running guests (/proc/stat guest, guest_nice; already in user, nice).",
            labels=["cpu", "mode"],
        )
        for cpu, modes in snap.cpu_guest_seconds.items():
            for mode, value in modes.items():
                guest.add_metric([str(cpu), _GUEST_MODE[mode]], value)
        yield guest
    if snap.cpu_usage_ratio:
        usage = GaugeMetricFamily(
            "sysmon_cpu_usage_ratio",
            "Busy share (not idle, not iowait) of each CPU over the last sample window, 0 to 1.",
            labels=["cpu"],
        )
        for cpu, ratio in snap.cpu_usage_ratio.items():
            usage.add_metric([str(cpu)], ratio)
        yield usage


def collect_frequency(snap: Snapshot) -> Iterator[Metric]:
    """sysmon_cpu_frequency_hertz{cpu="0"} 2.6e9 (with its source, cpufreq limits, perf cycles)."""
    if snap.frequency:
        hertz = GaugeMetricFamily(
            "sysmon_cpu_frequency_hertz",
            "Current frequency of each CPU from the first source that has it (cpufreq, cpuinfo, perf).",
            labels=["cpu"],
        )
        source = GaugeMetricFamily(
            "sysmon_cpu_frequency_source_info",
            "Which source sysmon_cpu_frequency_hertz came from for each CPU.",
            labels=["cpu", "source"],
        )
        minimum = GaugeMetricFamily(
            "sysmon_cpu_frequency_min_hertz",
            "Lowest frequency the CPU supports (cpufreq cpuinfo_min_freq).",
            labels=["cpu"],
        )
        maximum = GaugeMetricFamily(
            "sysmon_cpu_frequency_max_hertz",
            "Highest frequency the CPU supports (cpufreq cpuinfo_max_freq).",
            labels=["cpu"],
        )
        governor = GaugeMetricFamily(
            "sysmon_cpu_scaling_governor_info",
            "The cpufreq scaling governor of each CPU.",
            labels=["cpu", "governor"],
        )
        for cpu, f in snap.frequency.items():
            label = str(cpu)
            hertz.add_metric([label], f.hertz)
            source.add_metric([label, f.source], 1)
            if f.min_hertz is not None:
                minimum.add_metric([label], f.min_hertz)
            if f.max_hertz is not None:
                maximum.add_metric([label], f.max_hertz)
            if f.governor is not None:
                governor.add_metric([label, f.governor], 1)
        yield from (m for m in (hertz, source, minimum, maximum, governor) if m.samples)
    if snap.cycles:
        cycles = CounterMetricFamily(
            "sysmon_cpu_cycles_total",
            "CPU cycles counted by perf on each CPU (stops while halted).",
            labels=["cpu"],
        )
        for cpu, value in snap.cycles.items():
            cycles.add_metric([str(cpu)], value)
        yield cycles
    if snap.ref_cycles:
        ref = CounterMetricFamily(
            "sysmon_cpu_ref_cycles_total",
            "Reference cycles counted by perf on each CPU (constant TSC rate while not halted).",
            labels=["cpu"],
        )
        for cpu, value in snap.ref_cycles.items():
            ref.add_metric([str(cpu)], value)
        yield ref
