"""parse_host_line against generated lines: a checked HostState or BadHostLine, nothing else; and what it
accepts survives the state file's re-encoding unchanged."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from exporter.guest.hoststate import (
    FREQUENCY_SOURCES,
    REASONS,
    STATE_MAX_BYTES,
    BadHostLine,
    parse_host_line,
    state_bytes,
)
from exporter.guest.lines import MAX_CPUS, MAX_NUMBER
from tests.guest.test_protocol_fuzz import dumps, fuzz, json_values, numbers, texts


def check(line: bytes) -> None:
    try:
        state = parse_host_line(line)
    except BadHostLine as e:
        assert e.reason in REASONS, e.reason
        return
    assert isinstance(state.host_wall_ns, int) and 0 <= state.host_wall_ns < MAX_NUMBER
    assert math.isfinite(state.interval_seconds) and state.interval_seconds > 0
    for cpu, v in state.vcpus.items():
        assert 0 <= cpu < MAX_CPUS
        assert math.isfinite(v.steal_seconds) and 0 <= v.steal_seconds < MAX_NUMBER
        assert isinstance(v.host_cpu, int) and 0 <= v.host_cpu < MAX_NUMBER
        assert (v.frequency_hertz is None) == (v.frequency_source is None)
        assert v.frequency_source is None or v.frequency_source in FREQUENCY_SOURCES
    kept = state_bytes(state, 1.0)
    assert len(kept) <= STATE_MAX_BYTES
    again = parse_host_line(kept.rstrip(b"\n"), STATE_MAX_BYTES)
    assert (again.vcpus, again.interval_seconds, again.host_wall_ns) == (
        state.vcpus,
        state.interval_seconds,
        state.host_wall_ns,
    )
    assert again.received_wall_seconds == 1.0


@fuzz(2000)
@given(st.binary(max_size=200))
def test_any_bytes(line: bytes) -> None:
    check(line)


@fuzz(2000)
@given(json_values)
def test_any_json_value(value: Any) -> None:
    check(dumps(value))


fields = st.one_of(numbers, texts, st.none(), st.booleans(), st.sampled_from(FREQUENCY_SOURCES))
vcpus = st.dictionaries(
    texts,
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {},
            optional={
                "frequency_hz": fields,
                "frequency_source": fields,
                "steal_seconds": fields,
                "host_cpu": fields,
            },
        ),
    ),
    max_size=4,
)


@fuzz(4000)
@given(
    st.fixed_dictionaries(
        {"v": st.sampled_from([1, 1, 1, 2, "1", None]), "type": st.sampled_from(["host", "host", "row", 1])},
        optional={"host_wall_ns": fields, "interval_seconds": fields, "vcpus": vcpus, "received_wall_ns": fields},
    )
)
def test_host_lines_with_any_fields(msg: dict[str, Any]) -> None:
    check(dumps(msg))


finite = st.one_of(st.integers(0, 2**53), st.floats(0, 2.0**63, exclude_max=True, allow_nan=False))
valid_vcpu = st.fixed_dictionaries(
    {"steal_seconds": finite, "host_cpu": st.integers(0, 2**63 - 1)},
    optional={"frequency": st.tuples(finite, st.sampled_from(FREQUENCY_SOURCES))},
)


@fuzz(1000)
@given(
    st.dictionaries(st.integers(0, MAX_CPUS - 1).map(str), valid_vcpu, max_size=64),
    st.floats(0.001, 3600.0),
    st.integers(0, 2**63 - 1),
)
def test_valid_host_lines_are_accepted_and_kept_exactly(vcpus: dict[str, Any], interval: float, wall: int) -> None:
    for v in vcpus.values():
        if "frequency" in v:
            v["frequency_hz"], v["frequency_source"] = v.pop("frequency")
    line = dumps({"v": 1, "type": "host", "host_wall_ns": wall, "interval_seconds": interval, "vcpus": vcpus})
    state = parse_host_line(line)
    assert {str(c) for c in state.vcpus} == set(vcpus)
    assert all(state.vcpus[int(k)].steal_seconds == float(v["steal_seconds"]) for k, v in vcpus.items())
    check(line)
