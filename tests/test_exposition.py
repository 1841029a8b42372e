"""The exposition writer against prometheus_client's own renderer, on the same families."""

import math
import subprocess

import pytest
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.collector.exposition import ExpositionWriter, format_value


class Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


def families():
    c = CounterMetricFamily("demo_seconds_total", 'Help with "quotes", a \\ and\na newline.', labels=["path", "mode"])
    c.add_metric(['/kubepods.slice/a"b', "user"], 12.5)
    c.add_metric(["/back\\slash\nnewline", "idle"], 3)
    g = GaugeMetricFamily("demo_ratio", "A gauge.", labels=["cpu"])
    g.add_metric(["0"], 0.1 + 0.2)
    g.add_metric(["1"], math.inf)
    g.add_metric(["2"], 1e-7)
    g.add_metric(["3"], 2599998000.0)
    empty = GaugeMetricFamily("demo_empty", "No samples.", labels=["x"])
    return [c, g, empty, GaugeMetricFamily("demo_bytes", "Unlabelled.", value=123456789012)]


def registry():
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Families(families()))
    return reg


def as_set(parsed):
    return {(s.name, tuple(sorted(s.labels.items())), s.value) for f in parsed for s in f.samples}, {
        (f.name, f.type, f.documentation) for f in parsed if f.samples
    }


def test_text_parses_to_what_prometheus_client_renders():
    text, _ = ExpositionWriter().render(registry().collect())
    assert as_set(parse_text(text.decode())) == as_set(parse_text(generate_latest(registry()).decode()))


def test_openmetrics_parses_to_what_prometheus_client_renders():
    _, om = ExpositionWriter().render(registry().collect())
    assert om.endswith(b"# EOF\n")
    theirs = generate_openmetrics(registry()).decode()
    assert as_set(parse_openmetrics(om.decode())) == as_set(parse_openmetrics(theirs))


def test_process_collector_families_render_in_both_formats():
    reg = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=reg)
    text, om = ExpositionWriter().render(reg.collect())
    names = {f.name for f in parse_openmetrics(om.decode())}
    assert {"process_cpu_seconds", "process_resident_memory_bytes"} <= names
    assert b"# TYPE process_cpu_seconds_total counter" in text


def test_label_prefixes_are_reused_and_forgotten():
    writer = ExpositionWriter()
    writer.render(registry().collect())
    assert writer.cached_prefixes == 7
    writer.render(iter(families()[1:]))  # the counter's two label sets are gone
    assert writer.cached_prefixes == 5


@pytest.mark.parametrize(
    ("value", "text"),
    [(1, "1"), (2.0, "2"), (0.5, "0.5"), (math.nan, "NaN"), (-math.inf, "-Inf"), (1e20, "1e+20"), (2.5e-7, "2.5e-07")],
)
def test_values(value, text):
    assert format_value(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (10**400, "+Inf"),  # an integer float64 cannot hold: Go's ParseFloat refuses its 401 digits
        (-(10**400), "-Inf"),
        (2**63, "9.223372036854776e+18"),
        (10**15, "1000000000000000.0"),
        (True, "1"),
    ],
    ids=["huge-int", "huge-negative-int", "int64-overflow", "1e15", "bool"],
)
def test_every_value_is_a_float64_token(value, text):
    assert format_value(value) == text


HOSTILE_VALUES = [10**400, -(10**400), 10**4299, 2**64, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308]


def test_promtool_parses_every_value_from_either_writer(tmp_path):
    from exporter.collector.exposition import Family, format_families, join_pieces
    from tests.helpers import require_binary

    promtool = require_binary("promtool")
    g = GaugeMetricFamily("demo_value", "Hostile values.", labels=["n"])
    for n, value in enumerate(HOSTILE_VALUES):
        g.add_metric([str(n)], value)
    registry_text, _ = ExpositionWriter().render(iter([g]))
    lines = [f'demo_direct{{n="{n}"}} {format_value(v)}\n' for n, v in enumerate(HOSTILE_VALUES)]
    direct_text, _ = join_pieces(format_families([Family("demo_direct", "gauge", "Hostile values.", lines)]))
    for text in (registry_text, direct_text):
        result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr.decode() + text.decode()


def test_histograms_render_as_prometheus_client_renders_them():
    from prometheus_client import Histogram

    def hist_registry():
        reg = CollectorRegistry(auto_describe=False)
        h = Histogram("sysmon_http_request_duration_seconds", "Time.", ["handler"], registry=reg)
        for v in (0.0004, 0.02, 3.0, 20.0):
            h.labels("/metrics").observe(v)
        return reg

    text, om = ExpositionWriter().render(hist_registry().collect())
    theirs_text = generate_latest(hist_registry()).decode()
    theirs_om = generate_openmetrics(hist_registry()).decode()
    mine_text, mine_om = as_set(parse_text(text.decode())), as_set(parse_openmetrics(om.decode()))
    # _created carries the time of each registry's creation: compare the rest.
    drop = lambda s: ({x for x in s[0] if not x[0].endswith("_created")}, s[1])  # noqa: E731
    assert drop(mine_text) == drop(as_set(parse_text(theirs_text)))
    assert drop(mine_om) == drop(as_set(parse_openmetrics(theirs_om)))
    assert b'sysmon_http_request_duration_seconds_bucket{handler="/metrics",le="+Inf"} 4\n' in text
