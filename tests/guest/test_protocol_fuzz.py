"""parse_line against generated lines: it returns a checked Hello or Row, or raises Malformed, nothing else.

Three generators, 10,500 examples in all: raw bytes; any JSON value (huge
integers, NaN/Infinity tokens, lone surrogates, control characters, deep
nesting); and rows whose every field is drawn from those values, so the
checks past the envelope are reached too.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.guest.protocol import MAX_NUMBER, Hello, Malformed, Row, parse_line
from exporter.guest_state import REASONS
from exporter.sources.stat import MODES


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


EDGE_NUMBERS = [0, 1, -1, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**400, -(2**63), 1.8e308, 5e-324, -0.0]
numbers = st.one_of(
    st.sampled_from(EDGE_NUMBERS),
    st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True),
)
# Any code point, lone surrogates included: json.dumps writes those as "\ud800" escapes.
texts = st.one_of(
    st.text(st.characters(codec=None), max_size=12),
    st.sampled_from(["0", "1", "²", "007", "4095", "4096", "-1", "0x1", "/", "/a\x00", "\ud800", "\udfff"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


def check(line: bytes) -> None:
    try:
        msg = parse_line(line)
    except Malformed as e:
        assert e.reason in REASONS, e.reason
        return
    assert isinstance(msg, Hello | Row)
    if isinstance(msg, Hello):
        for text in (msg.hostname, msg.agent_version, msg.boot_id):
            text.encode()
            assert not any(ord(c) < 0x20 or c == "\x7f" for c in text)
        return
    values = [v for modes in msg.cpu_seconds.values() for v in modes.values()]
    values += [*msg.frequency_hertz.values(), *msg.memory_bytes.values()]
    values += [v for stats in msg.cgroups.values() for v in stats.values()]
    values += [msg.wall_seconds, float(msg.seq), float(msg.dropped)]
    for value in values:
        assert isinstance(value, float) and math.isfinite(value) and 0 <= value < MAX_NUMBER, value
    assert all(0 <= c < 4096 for c in [*msg.cpu_seconds, *msg.frequency_hertz])
    for path in msg.cgroups:
        path.encode()
        assert path.startswith("/") and not any(ord(c) < 0x20 or c == "\x7f" for c in path)
    json.dumps(msg.raw, ensure_ascii=False, allow_nan=False).encode()  # what the recorder writes


@fuzz(6000)
@given(st.binary(max_size=300))
def test_any_bytes(line):
    check(line)


@fuzz(2000)
@given(json_values)
def test_any_json_value(value):
    check(dumps(value))


# Row fields: scalars mostly, a container now and then (cheaper to draw than json_values).
fields = st.none() | st.booleans() | numbers | texts | st.lists(numbers, max_size=2)
maps = st.dictionaries(texts | st.sampled_from(MODES), fields, max_size=3)
rows = st.fixed_dictionaries(
    {"v": st.just(1), "type": st.sampled_from(["row", "hello"])},
    optional={
        "seq": fields,
        "dropped": fields,
        "wall_ns": fields,
        "mono_ns": fields,
        "boot_id": fields,
        "hostname": fields,
        "agent_version": fields,
        "cpu": st.dictionaries(texts, maps | fields, max_size=3),
        "freq": st.dictionaries(texts, fields, max_size=3),
        "mem": st.dictionaries(st.sampled_from(["total_bytes", "free_bytes", "x"]), fields, max_size=3),
        "cgroup": st.dictionaries(
            texts.map(lambda t: "/" + t),
            st.dictionaries(st.sampled_from(["cpu_usage_seconds", "pids_current", "x"]), fields, max_size=3) | fields,
            max_size=3,
        ),
    },
)


@fuzz(2500)
@given(rows)
def test_rows_with_any_field_values(row):
    check(dumps(row))
