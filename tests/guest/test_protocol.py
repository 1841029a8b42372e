"""Parsing guest lines: every way a line can be wrong maps to one bounded reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exporter.config import GUEST_MAX_CGROUPS
from exporter.guest.protocol import (
    MAX_CGROUP_PATH,
    MAX_TEXT,
    Hello,
    Malformed,
    Row,
    canonical_json,
    hello_line,
    parse_line,
    row_from_snapshot,
)
from exporter.snapshot import CgroupSources, CpuSources, take_cgroup_snapshot, take_snapshot
from exporter.sources.cgroup import CgroupLimits
from tests.helpers import FIXTURES

GOOD_ROW = {"v": 1, "type": "row", "seq": 3, "boot_id": "b", "wall_ns": 1_700_000_000_000_000_000, "mono_ns": 5}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"v":1,', "invalid_json"),
        (b"", "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, "too_deep"),
        (b"[1,2]", "invalid_row"),
        (b'{"type":"row"}', "unsupported_version"),
        (b'{"v":2,"type":"row"}', "unsupported_version"),
        (b'{"v":1,"type":"bye"}', "invalid_row"),
        (json.dumps({**GOOD_ROW, "seq": "3"}).encode(), "invalid_row"),
        (json.dumps({**GOOD_ROW, "wall_ns": None}).encode(), "invalid_row"),
        (json.dumps({**GOOD_ROW, "cpu": {"x": {}}}).encode(), "invalid_row"),
        (json.dumps({**GOOD_ROW, "cpu": {"999999": {}}}).encode(), "invalid_row"),
        (json.dumps({**GOOD_ROW, "cpu": {"0": {"user": -1}}}).encode(), "invalid_row"),
        (json.dumps({**GOOD_ROW, "cpu": {"0": {"user": True}}}).encode(), "invalid_row"),
        (json.dumps({**GOOD_ROW, "mem": []}).encode(), "invalid_row"),
        (b'{"v":1,"type":"hello","hostname":5}', "invalid_row"),
        (json.dumps({**GOOD_ROW, "cgroup": {"system.slice": {}}}).encode(), "invalid_row"),
        (json.dumps({**GOOD_ROW, "cgroup": {"/" + "a" * MAX_CGROUP_PATH: {}}}).encode(), "invalid_row"),
        (
            json.dumps({**GOOD_ROW, "cgroup": {f"/{i}": {} for i in range(GUEST_MAX_CGROUPS + 1)}}).encode(),
            "invalid_row",
        ),
        (json.dumps({**GOOD_ROW, "cgroup": {"/": {"pids_current": "7"}}}).encode(), "invalid_row"),
        (json.dumps({**GOOD_ROW, "cgroup": {"/": 7}}).encode(), "invalid_row"),
    ],
    ids=[
        "utf8",
        "truncated",
        "empty",
        "nested",
        "not-object",
        "no-version",
        "future-version",
        "unknown-type",
        "seq-string",
        "wall-null",
        "cpu-name",
        "cpu-huge",
        "negative",
        "bool",
        "mem-list",
        "hello-types",
        "cgroup-relative",
        "cgroup-long",
        "cgroup-many",
        "cgroup-string",
        "cgroup-not-object",
    ],
)
def test_malformed_reason(line, reason):
    with pytest.raises(Malformed) as e:
        parse_line(line)
    assert e.value.reason == reason


def test_only_known_modes_and_memory_fields_become_series():
    line = json.dumps(
        {
            **GOOD_ROW,
            "cpu": {"1": {"user": 2.5, "made_up_mode": 1.0}},
            "mem": {"total_bytes": 10, "evil_bytes": 3},
            "vm": "someone-else",
        }
    ).encode()
    row = parse_line(line)
    assert isinstance(row, Row)
    assert row.cpu_seconds == {1: {"user": 2.5}}
    assert row.memory_bytes == {"total_bytes": 10.0}
    assert row.wall_seconds == 1_700_000_000.0


def test_hello_text_is_cut_to_a_bounded_length():
    hello = parse_line(hello_line("1" * 1000, "b", "h" * 1000, ["cpu"]).rstrip(b"\n"))
    assert isinstance(hello, Hello)
    assert len(hello.hostname) == MAX_TEXT and len(hello.agent_version) == MAX_TEXT


class FixedClock:
    def wall(self) -> float:
        return 1_700_000_000.5

    def monotonic(self) -> float:
        return 42.0


def test_a_row_from_the_exporters_own_snapshot_round_trips():
    root = FIXTURES / "vm-2cpu"
    readers = CpuSources(root / "proc", root / "sys", 100, frozenset({"cpu", "cpuinfo", "meminfo"}))
    snap = take_snapshot(None, readers, FixedClock())
    msg = {**row_from_snapshot(snap, 0, "boot"), "dropped": 4}
    row = parse_line(canonical_json(msg))
    assert isinstance(row, Row)
    assert row.cpu_seconds == snap.cpu_seconds
    assert row.frequency_hertz == {c: f.hertz for c, f in snap.frequency.items()}
    assert snap.memory is not None and row.memory_bytes["used_bytes"] == snap.memory.used_bytes
    assert (row.dropped, row.wall_seconds, msg["mono_ns"]) == (4, 1_700_000_000.5, 42_000_000_000)


def test_a_row_carries_cgroups_only_when_they_were_sampled():
    root = FIXTURES / "vm-2cpu"
    readers = CpuSources(root / "proc", root / "sys", 100, frozenset({"cpu"}))
    snap = take_snapshot(None, readers, FixedClock())
    assert "cgroup" not in row_from_snapshot(snap, 0, "boot")
    cgroupfs = FIXTURES / "k8s-node-v2" / "sys" / "fs" / "cgroup"
    snap = take_cgroup_snapshot(snap, CgroupSources(cgroupfs, CgroupLimits(), 100), FixedClock())
    assert snap.cgroups is not None
    row = parse_line(canonical_json({**row_from_snapshot(snap, 1, "boot"), "dropped": 0}))
    assert isinstance(row, Row)
    assert row.cgroups.keys() == snap.cgroups.stats.keys()
    for path, stats in snap.cgroups.stats.items():
        want = {
            k: float(v)
            for k in ("cpu_usage_seconds", "memory_usage_bytes", "pids_current")
            if (v := getattr(stats, k)) is not None
        }
        assert row.cgroups[path] == want, path
    pod = next(p for p in row.cgroups if p.endswith(".scope") and "burstable" in p)
    assert set(row.cgroups[pod]) == {"cpu_usage_seconds", "memory_usage_bytes", "pids_current"}


def test_unknown_cgroup_fields_do_not_become_series():
    row = parse_line(json.dumps({**GOOD_ROW, "cgroup": {"/a": {"pids_current": 3, "evil": 1}}}).encode())
    assert isinstance(row, Row) and row.cgroups == {"/a": {"pids_current": 3.0}}


def test_canonical_json_is_sorted_and_compact():
    assert canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]}) == '{"a":[1,{"c":null,"d":"é"}],"b":1}'.encode()


def test_readme_example_line_parses():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    examples = [line for line in readme.splitlines() if line.startswith('{"v":1,"type":"row"')]
    assert examples, "README shows one protocol row"
    assert isinstance(parse_line(examples[0].encode()), Row)
