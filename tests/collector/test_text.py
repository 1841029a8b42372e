"""The direct text writer must write exactly what prometheus_client writes for the same families."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.collector.text import Family, escape_label_value, format_families, format_value, join_pieces

label_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
values = st.one_of(
    st.integers(min_value=0, max_value=2**63),
    st.floats(min_value=0, allow_nan=False),
    st.sampled_from([0.0, 1e6, 123456789.0, 1.5e-7, math.inf]),
)
samples = st.lists(st.tuples(label_values, label_values, values), max_size=6)
families = st.lists(
    st.tuples(st.sampled_from(["counter", "gauge"]), st.text("ab \\\n\"é", max_size=20), samples),
    min_size=1,
    max_size=4,
)


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
    assert text == generate_latest(registry)
    assert openmetrics + b"# EOF\n" == generate_openmetrics(registry)
