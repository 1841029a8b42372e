"""CPU time, usage and frequency families from a Snapshot."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.collector.exposition import Piece, escape_label_value, format_value, piece
from exporter.snapshot import Snapshot

# node_exporter's labels for the two guest columns of /proc/stat.
_GUEST_MODE = {"guest": "user", "guest_nice": "nice"}


def _written(family: GaugeMetricFamily | CounterMetricFamily, lines: list[str]) -> Metric | Piece:
    """The family's samples written straight to text (a Piece, which the registry and ExpositionWriter pass
    through): per-CPU families are most of a large host's samples, and prometheus_client's Sample tuples
    and label dicts cost several times the line. ``family`` itself (no samples) when there is no line."""
    if not lines:
        return family
    name = family.name + "_total" if family.type == "counter" else family.name
    return piece(name, family.type, family.documentation, "".join(lines))


def _per_cpu(family: GaugeMetricFamily | CounterMetricFamily, values: Mapping[int, float | None]) -> Metric | Piece:
    name = family.name + "_total" if family.type == "counter" else family.name
    return _written(
        family, [f'{name}{{cpu="{cpu}"}} {format_value(value)}\n' for cpu, value in values.items() if value is not None]
    )


def _per_cpu_mode(
    family: CounterMetricFamily, values: Mapping[int, Mapping[str, float]], rename: Mapping[str, str] | None = None
) -> Metric | Piece:
    name = family.name + "_total"
    # The labels after cpu's value, written once per mode.
    modes_seen = {mode for modes in values.values() for mode in modes}
    tails = {mode: f'",mode="{_label(rename[mode] if rename else mode)}"}} ' for mode in modes_seen}
    return _written(
        family,
        [
            f'{name}{{cpu="{cpu}{tails[mode]}{format_value(value)}\n'
            for cpu, modes in values.items()
            for mode, value in modes.items()
        ],
    )


def _per_cpu_info(family: GaugeMetricFamily, label: str, values: Mapping[int, str | None]) -> Metric | Piece:
    """An info family with one series of value 1 per CPU that has a value: {cpu="0",<label>="<value>"}."""
    return _written(
        family,
        [
            f'{family.name}{{cpu="{cpu}",{label}="{escape_label_value(value)}"}} 1\n'
            for cpu, value in values.items()
            if value is not None
        ],
    )


def _label(value: str) -> str:
    # /proc/stat's column names (user, nice, ..., guest_nice) are identifiers: nothing to escape
    return value if value.isidentifier() else escape_label_value(value)


def collect_cpu(snap: Snapshot) -> Iterator[Metric | Piece]:
    """sysmon_cpu_seconds_total{cpu="0",mode="user"} 12.3 (and guest time, usage ratio)."""
    if snap.cpu_seconds:
        yield _per_cpu_mode(
            CounterMetricFamily(
                "sysmon_cpu_seconds_total",
                "Seconds each CPU spent in each mode (/proc/stat; guest time is inside user and nice).",
                labels=["cpu", "mode"],
            ),
            snap.cpu_seconds,
        )
    if snap.cpu_guest_seconds:
        yield _per_cpu_mode(
            CounterMetricFamily(
                "sysmon_cpu_guest_seconds_total",
                "Seconds each CPU spent running guests (/proc/stat guest, guest_nice; already in user, nice).",
                labels=["cpu", "mode"],
            ),
            snap.cpu_guest_seconds,
            _GUEST_MODE,
        )
    if snap.cpu_usage_ratio:
        yield _per_cpu(
            GaugeMetricFamily(
                "sysmon_cpu_usage_ratio",
                "Busy share (not idle, not iowait) of each CPU over the last sample window, 0 to 1.",
                labels=["cpu"],
            ),
            snap.cpu_usage_ratio,
        )
    if snap.host_steal_seconds:
        yield _per_cpu(
            CounterMetricFamily(
                "sysmon_cpu_host_steal_seconds_total",
                "Seconds the host kept each vCPU runnable but not running, as the host counts them "
                "(its schedstat wait time, sent to the agent); set it beside the guest's own steal mode.",
                labels=["cpu"],
            ),
            snap.host_steal_seconds,
        )


def collect_frequency(snap: Snapshot) -> Iterator[Metric | Piece]:
    """sysmon_cpu_frequency_hertz{cpu="0"} 2.6e9 (with its source, cpufreq limits, perf cycles)."""
    freq = snap.frequency
    if freq:
        yield _per_cpu(
            GaugeMetricFamily(
                "sysmon_cpu_frequency_hertz",
                "Current frequency of each CPU from the first source that has it "
                "(cpufreq cpuinfo_avg_freq, scaling_cur_freq, cpuinfo_cur_freq; in a guest, the host's; "
                "/proc/cpuinfo; perf).",
                labels=["cpu"],
            ),
            {cpu: f.hertz for cpu, f in freq.items()},
        )
        yield _per_cpu_info(
            GaugeMetricFamily(
                "sysmon_cpu_frequency_source_info",
                "Which source sysmon_cpu_frequency_hertz came from for each CPU.",
                labels=["cpu", "source"],
            ),
            "source",
            {cpu: f.source for cpu, f in freq.items()},
        )
    yield from _cpufreq(snap)
    if snap.cycles:
        yield _per_cpu(
            CounterMetricFamily(
                "sysmon_cpu_cycles_total",
                "CPU cycles counted by perf on each CPU (stops while halted).",
                labels=["cpu"],
            ),
            snap.cycles,
        )
    if snap.ref_cycles:
        yield _per_cpu(
            CounterMetricFamily(
                "sysmon_cpu_ref_cycles_total",
                "Reference cycles counted by perf on each CPU (constant TSC rate while not halted).",
                labels=["cpu"],
            ),
            snap.ref_cycles,
        )


def _cpufreq(snap: Snapshot) -> Iterator[Metric | Piece]:
    """The cpufreq policy of each online CPU, whichever source gave its frequency."""
    policies = snap.cpufreq
    limits = [
        _per_cpu(
            GaugeMetricFamily(name, help_text, labels=["cpu"]), {cpu: getattr(f, attr) for cpu, f in policies.items()}
        )
        for name, help_text, attr in (
            (
                "sysmon_cpu_hardware_frequency_hertz",
                "Frequency read back from the hardware (cpufreq cpuinfo_cur_freq; readable by root only).",
                "hardware_hertz",
            ),
            (
                "sysmon_cpu_frequency_min_hertz",
                "Lowest frequency the CPU supports (cpufreq cpuinfo_min_freq).",
                "min_hertz",
            ),
            (
                "sysmon_cpu_frequency_max_hertz",
                "Highest frequency the CPU supports (cpufreq cpuinfo_max_freq).",
                "max_hertz",
            ),
        )
    ]
    governor = _per_cpu_info(
        GaugeMetricFamily(
            "sysmon_cpu_scaling_governor_info", "The cpufreq scaling governor of each CPU.", labels=["cpu", "governor"]
        ),
        "governor",
        {cpu: f.governor for cpu, f in policies.items()},
    )
    yield from (m for m in (*limits, governor) if m.samples)
