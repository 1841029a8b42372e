"""Families written straight to text must say what prometheus_client writes for the same families.

Sample values are spelled exactly (``25276063744`` where prometheus_client
writes ``2.5276063744e+10``), so the comparison is on what both formats'
parsers read: names, types, HELP, labels and values, and every other byte.
"""

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from exporter.collector.exposition import Family, escape_label_value, format_families, format_value, join_pieces

label_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
values = st.one_of(
    st.integers(min_value=0, max_value=2**63),
    st.floats(min_value=0, allow_nan=False),
    st.sampled_from([0.0, 1e6, 123456789.0, 1.5e-7, math.inf]),
)
samples = st.lists(st.tuples(label_values, label_values, values), max_size=6, unique_by=lambda t: (t[0], t[1]))
families = st.lists(
    st.tuples(st.sampled_from(["counter", "gauge"]), st.text('ab \\\n"é', max_size=20), samples),
    min_size=1,
    max_size=4,
)


def _families(parsed):  # type: ignore[no-untyped-def]
    # values as float64, as Prometheus reads them
    return [
        (f.name, f.type, f.documentation, [(s.name, sorted(s.labels.items()), float(s.value)) for s in f.samples])
        for f in parsed
    ]


def parsed_text(data: bytes):  # type: ignore[no-untyped-def]
    return _families(text_string_to_metric_families(data.decode()))


def parsed_openmetrics(data: bytes):  # type: ignore[no-untyped-def]
    return _families(openmetrics_families(data.decode()))


def headers(data: bytes) -> list[bytes]:
    return [line for line in data.splitlines() if line.startswith(b"# HELP") or line.startswith(b"# TYPE")]


class _Static:
    def __init__(self, metrics):  # type: ignore[no-untyped-def]
        self.metrics = metrics

    def collect(self):  # type: ignore[no-untyped-def]
        return self.metrics


@settings(max_examples=200, deadline=None)
@given(families)
def test_same_bytes_as_prometheus_client(specs):
    ours = []
    theirs = []
    for i, (kind, help_text, rows) in enumerate(specs):
        name = f"sysmon_test_{i}_total" if kind == "counter" else f"sysmon_test_{i}"
        cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        reference = cls(name, help_text, labels=["cgroup", "event"])
        family = Family(name, kind, help_text)
        for cgroup, event, value in rows:
            reference.add_metric([cgroup, event], value)
            labels = f'cgroup="{escape_label_value(cgroup)}",event="{escape_label_value(event)}"'
            family.lines.append(f"{name}{{{labels}}} {format_value(value)}\n")
        theirs.append(reference)
        ours.append(family)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static([m for m in theirs if m.samples]))
    text, openmetrics = join_pieces(format_families(ours))
    assert parsed_text(text) == parsed_text(generate_latest(registry))
    assert parsed_openmetrics(openmetrics + b"# EOF\n") == parsed_openmetrics(generate_openmetrics(registry))
    # headers are the same bytes; only the spelling of values may differ
    assert headers(text) == headers(generate_latest(registry))
    assert headers(openmetrics) == headers(generate_openmetrics(registry))


cpu_modes = st.dictionaries(
    st.integers(min_value=0, max_value=4096),
    st.dictionaries(st.one_of(st.sampled_from(["user", "nice", "guest_nice"]), label_values), values, max_size=4),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(cpu_modes, st.dictionaries(st.integers(min_value=0, max_value=4096), values, max_size=4))
def test_cpu_families_written_as_text_are_what_the_writer_makes_of_prometheus_client_families(modes, usage):
    """CpuFamilies.cpu writes its per-CPU families straight to text: the bytes of ExpositionWriter on the
    prometheus_client families they replace, whatever the mode names and values."""
    from exporter.collector.cpu import CpuFamilies
    from exporter.collector.exposition import ExpositionWriter
    from exporter.snapshot import Snapshot

    seconds = CounterMetricFamily("sysmon_cpu_seconds_total", "", labels=["cpu", "mode"])
    for cpu, by_mode in modes.items():
        for mode, value in by_mode.items():
            seconds.add_metric([str(cpu), mode], value)
    ratio = GaugeMetricFamily("sysmon_cpu_usage_ratio", "", labels=["cpu"])
    for cpu, value in usage.items():
        ratio.add_metric([str(cpu)], value)
    expected = {p.text_header.split()[2]: p.samples for p in ExpositionWriter().pieces([seconds, ratio])}
    written = ExpositionWriter().pieces(CpuFamilies().cpu(Snapshot(cpu_seconds=modes, cpu_usage_ratio=usage)))
    assert {p.text_header.split()[2]: p.samples for p in written} == expected


number_lists = st.lists(
    st.one_of(
        values, st.floats(), st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([-0.0, 0.0, 1, 1.0])
    ),
    max_size=8,
)


@settings(max_examples=500, deadline=None)
@given(number_lists, st.one_of(st.none(), number_lists))
def test_format_values_is_format_value_of_each_whatever_came_before(numbers, earlier):
    from exporter.collector.exposition import format_values

    before = None if earlier is None else (earlier, [format_value(v) for v in earlier])
    assert format_values(numbers, before) == [format_value(v) for v in numbers]


frequencies = st.dictionaries(
    st.integers(min_value=0, max_value=8),
    st.tuples(st.sampled_from([1.5e9, 2.6e9, 0.0]), st.sampled_from(["cpufreq", "cpuinfo", 'o"dd'])),
    max_size=4,
)


guest_modes = st.dictionaries(
    st.integers(min_value=0, max_value=8), st.dictionaries(st.sampled_from(["guest", "guest_nice"]), values), max_size=3
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(cpu_modes, guest_modes, frequencies), min_size=1, max_size=5))
def test_cpu_families_of_one_renderer_are_what_a_fresh_one_writes(steps):
    """CpuFamilies keeps prefixes, strings and Pieces from its last render: each render of a sequence (CPUs,
    modes, values and sources changing or not) is what nothing kept would write."""
    from exporter.collector.cpu import CpuFamilies
    from exporter.collector.exposition import ExpositionWriter
    from exporter.snapshot import Frequency, Snapshot

    kept = CpuFamilies()
    for seconds, guest, freq in steps:
        snap = Snapshot(
            cpu_seconds=seconds,
            cpu_guest_seconds=guest,
            cpu_usage_ratio={cpu: 0.5 for cpu in seconds},
            frequency={cpu: Frequency(hertz, source) for cpu, (hertz, source) in freq.items()},
        )
        for method in ("cpu", "frequency"):
            got = ExpositionWriter().render(getattr(kept, method)(snap))
            assert got == ExpositionWriter().render(getattr(CpuFamilies(), method)(snap))
