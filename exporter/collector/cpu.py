"""CPU time, usage and frequency families from a Snapshot."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from itertools import chain

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.collector.exposition import Piece, escape_label_value, format_values, piece
from exporter.snapshot import Snapshot

_VALUES = operator.methodcaller("values")  # of each CPU's modes, mapped in C (a generator was a tenth of a render)

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
    cpus = [cpu for cpu, value in values.items() if value is not None]
    formatted = format_values([value for value in values.values() if value is not None])
    return _written(family, [f'{name}{{cpu="{cpu}"}} {value}\n' for cpu, value in zip(cpus, formatted, strict=True)])


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


# The CPUs and each one's modes, in a family's order: the layout of sysmon_cpu_seconds_total's lines
_Layout = tuple[tuple[int, ...], tuple[tuple[str, ...], ...]]


class CpuFamilies:
    """The CPU families of one Renderer (:meth:`cpu`, :meth:`frequency`), keeping what the last render wrote.

    A per-CPU family whose values are those of the last render is that render's Piece again: cpufreq's
    limits, governors and sources stay put between its whole reads, and so does a constant rate of
    /proc/cpuinfo. The per-mode families' values change at every sample, but their line prefixes
    (``sysmon_cpu_seconds_total{cpu="0",mode="user"} ``, 2,048 on a 256-CPU host) are kept while the CPUs
    and their modes stay the same (every sample but a hotplug). One entry per family name: never larger
    than one exposition.
    """

    def __init__(self) -> None:
        self._pieces: dict[str, tuple[tuple[tuple[int, ...], tuple[object, ...]], Metric | Piece]] = {}
        self._prefixes: dict[str, tuple[_Layout, list[str]]] = {}
        self._formatted: dict[str, tuple[list[float], list[str]]] = {}  # the last values, as written

    def _kept(
        self,
        family: GaugeMetricFamily | CounterMetricFamily,
        values: Mapping[int, object],
        write: Callable[[], Metric | Piece],
    ) -> Metric | Piece:
        key = (tuple(values), tuple(values.values()))  # the items, without a pair each: half the cost
        kept = self._pieces.get(family.name)
        if kept is None or kept[0] != key:  # equal values format alike (format_value: 0.0 and -0.0 are "0")
            kept = self._pieces[family.name] = (key, write())
        return kept[1]

    def _per_cpu(
        self, family: GaugeMetricFamily | CounterMetricFamily, values: Mapping[int, float | None]
    ) -> Metric | Piece:
        return self._kept(family, values, lambda: _per_cpu(family, values))

    def _per_cpu_info(self, family: GaugeMetricFamily, label: str, values: Mapping[int, str | None]) -> Metric | Piece:
        return self._kept(family, values, lambda: _per_cpu_info(family, label, values))

    def _per_cpu_mode(
        self,
        family: CounterMetricFamily,
        values: Mapping[int, Mapping[str, float]],
        rename: Mapping[str, str] | None = None,
    ) -> Metric | Piece:
        name = family.name + "_total"
        # tuple() of each CPU's modes mapped in C: a comprehension of (cpu, modes) pairs was a tenth of a render
        layout = (tuple(values), tuple(map(tuple, values.values())))
        kept = self._prefixes.get(name)
        if kept is None or kept[0] != layout:
            # The labels after cpu's value, written once per mode.
            tails = {
                mode: f'",mode="{_label(rename[mode] if rename else mode)}"}} ' for modes in layout[1] for mode in modes
            }
            # Each prefix after the first starts with the newline that ends the line before it
            kept = self._prefixes[name] = (
                layout,
                [f'\n{name}{{cpu="{cpu}{tails[mode]}' for cpu, modes in zip(*layout, strict=True) for mode in modes],
            )
            if kept[1]:
                kept[1][0] = kept[1][0][1:]
        prefixes = kept[1]
        if not prefixes:
            return family
        numbers = list(chain.from_iterable(map(_VALUES, values.values())))
        formatted = format_values(numbers, self._formatted.get(name))
        self._formatted[name] = (numbers, formatted)
        # prefixes and values interleaved into one join: half the cost of a string per line joined
        parts = [""] * (2 * len(prefixes))
        parts[::2] = prefixes
        parts[1::2] = formatted
        return piece(name, family.type, family.documentation, "".join(parts) + "\n")

    def cpu(self, snap: Snapshot) -> Iterator[Metric | Piece]:
        """sysmon_cpu_seconds_total{cpu="0",mode="user"} 12.3 (and guest time, usage ratio)."""
        if snap.cpu_seconds:
            yield self._per_cpu_mode(
                CounterMetricFamily(
                    "sysmon_cpu_seconds_total",
                    "Seconds each CPU spent in each mode (/proc/stat; guest time is inside user and nice).",
                    labels=["cpu", "mode"],
                ),
                snap.cpu_seconds,
            )
        if snap.cpu_guest_seconds:
            yield self._per_cpu_mode(
                CounterMetricFamily(
                    "sysmon_cpu_guest_seconds_total",
                    "Seconds each CPU spent running guests (/proc/stat guest, guest_nice; already in user, nice).",
                    labels=["cpu", "mode"],
                ),
                snap.cpu_guest_seconds,
                _GUEST_MODE,
            )
        if snap.cpu_usage_ratio:
            yield self._per_cpu(
                GaugeMetricFamily(
                    "sysmon_cpu_usage_ratio",
                    "Busy share (not idle, not iowait) of each CPU over the last sample window, 0 to 1.",
                    labels=["cpu"],
                ),
                snap.cpu_usage_ratio,
            )
        if snap.host_steal_seconds:
            yield self._per_cpu(
                CounterMetricFamily(
                    "sysmon_cpu_host_steal_seconds_total",
                    "Seconds the host kept each vCPU runnable but not running, as the host counts them "
                    "(its schedstat wait time, sent to the agent); set it beside the guest's own steal mode.",
                    labels=["cpu"],
                ),
                snap.host_steal_seconds,
            )

    def frequency(self, snap: Snapshot) -> Iterator[Metric | Piece]:
        """sysmon_cpu_frequency_hertz{cpu="0"} 2.6e9 (with its source, cpufreq limits, perf cycles)."""
        freq = snap.frequency
        if freq:
            yield self._per_cpu(
                GaugeMetricFamily(
                    "sysmon_cpu_frequency_hertz",
                    "Current frequency of each CPU from the first source that has it "
                    "(cpufreq cpuinfo_avg_freq, scaling_cur_freq, cpuinfo_cur_freq; in a guest, the host's; "
                    "/proc/cpuinfo; perf).",
                    labels=["cpu"],
                ),
                {cpu: f.hertz for cpu, f in freq.items()},
            )
            yield self._per_cpu_info(
                GaugeMetricFamily(
                    "sysmon_cpu_frequency_source_info",
                    "Which source sysmon_cpu_frequency_hertz came from for each CPU.",
                    labels=["cpu", "source"],
                ),
                "source",
                {cpu: f.source for cpu, f in freq.items()},
            )
        yield from self._cpufreq(snap)
        if snap.cycles:
            yield self._per_cpu(
                CounterMetricFamily(
                    "sysmon_cpu_cycles_total",
                    "CPU cycles counted by perf on each CPU (stops while halted).",
                    labels=["cpu"],
                ),
                snap.cycles,
            )
        if snap.ref_cycles:
            yield self._per_cpu(
                CounterMetricFamily(
                    "sysmon_cpu_ref_cycles_total",
                    "Reference cycles counted by perf on each CPU (constant TSC rate while not halted).",
                    labels=["cpu"],
                ),
                snap.ref_cycles,
            )

    def _cpufreq(self, snap: Snapshot) -> Iterator[Metric | Piece]:
        """The cpufreq policy of each online CPU, whichever source gave its frequency."""
        policies = snap.cpufreq
        cpus, fs = tuple(policies), tuple(policies.values())
        limits = [
            self._per_cpu(
                GaugeMetricFamily(name, help_text, labels=["cpu"]),
                dict(zip(cpus, map(operator.attrgetter(attr), fs), strict=True)),  # a third of a comprehension's cost
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
        governor = self._per_cpu_info(
            GaugeMetricFamily(
                "sysmon_cpu_scaling_governor_info",
                "The cpufreq scaling governor of each CPU.",
                labels=["cpu", "governor"],
            ),
            "governor",
            dict(zip(cpus, map(operator.attrgetter("governor"), fs), strict=True)),
        )
        yield from (m for m in (*limits, governor) if m.samples)


def _label(value: str) -> str:
    # /proc/stat's column names (user, nice, ..., guest_nice) are identifiers: nothing to escape
    return value if value.isidentifier() else escape_label_value(value)
