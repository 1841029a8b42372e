"""Host lines (host -> guest) and the state file: what is accepted, what is refused and why."""

from __future__ import annotations

import json
import os
import stat

import pytest

from exporter.guest.hoststate import (
    BadHostLine,
    HostState,
    HostVcpu,
    is_fresh,
    parse_host_line,
    read_host_state,
    state_bytes,
    write_state,
)
from exporter.guest.lines import MAX_CPUS, MAX_HOST_LINE_BYTES, TOO_LONG, LineSplitter
from exporter.sources import SourceError

LINE = (
    b'{"v":1,"type":"host","host_wall_ns":1700000000000000000,"interval_seconds":1.0,'
    b'"vcpus":{"0":{"frequency_hz":2600000000.0,"frequency_source":"cpuinfo","steal_seconds":12.5,"host_cpu":1},'
    b'"1":{"steal_seconds":3.25,"host_cpu":0}}}'
)


def host_line(**vcpus: dict[str, object]) -> bytes:
    msg = {"v": 1, "type": "host", "host_wall_ns": 1, "interval_seconds": 1.0, "vcpus": vcpus}
    return json.dumps(msg).encode()


def test_a_host_line_gives_each_vcpus_frequency_steal_and_host_cpu():
    state = parse_host_line(LINE)
    assert state == HostState(
        host_wall_ns=1_700_000_000_000_000_000,
        interval_seconds=1.0,
        vcpus={0: HostVcpu(12.5, 1, 2.6e9, "cpuinfo"), 1: HostVcpu(3.25, 0)},
    )
    assert state.received_wall_seconds is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"", "invalid_json"),
        (LINE[:-7], "invalid_json"),
        (b"\xff" + LINE, "invalid_utf8"),
        (b"[1]", "invalid_host_line"),
        (LINE.replace(b'"v":1', b'"v":2'), "unsupported_version"),
        (LINE.replace(b'"v":1,', b""), "unsupported_version"),
        (LINE.replace(b'"type":"host"', b'"type":"row"'), "invalid_host_line"),
        (LINE.replace(b"2600000000.0", b"NaN"), "invalid_host_line"),
        (LINE.replace(b"2600000000.0", b"1e999"), "invalid_host_line"),
        (LINE.replace(b"12.5", b"-12.5"), "invalid_host_line"),
        (LINE.replace(b"12.5", b"9223372036854775296"), "invalid_host_line"),
        (LINE.replace(b'"host_cpu":1', b'"host_cpu":-1'), "invalid_host_line"),
        (LINE.replace(b'"host_cpu":1', b'"host_cpu":1.5'), "invalid_host_line"),
        (LINE.replace(b"12.5", b'"12.5"'), "invalid_host_line"),
        (LINE.replace(b"12.5", b"true"), "invalid_host_line"),
        (LINE.replace(b'"steal_seconds":12.5,', b""), "invalid_host_line"),
        (LINE.replace(b'"cpuinfo"', b'"guess"'), "invalid_host_line"),
        (LINE.replace(b'"frequency_source":"cpuinfo",', b""), "invalid_host_line"),
        (LINE.replace(b'"frequency_hz":2600000000.0,', b""), "invalid_host_line"),
        (LINE.replace(b'"1":{', b'"01":{'), "invalid_host_line"),
        (LINE.replace(b'"1":{', b'"4096":{'), "invalid_host_line"),
        (LINE.replace(b'"1":{', b'"x":{'), "invalid_host_line"),
        (LINE.replace(b'"interval_seconds":1.0', b'"interval_seconds":0'), "invalid_host_line"),
        (LINE.replace(b'"interval_seconds":1.0', b'"interval_seconds":7200'), "invalid_host_line"),
        (LINE.replace(b'"host_wall_ns":1700000000000000000', b'"host_wall_ns":-1'), "invalid_host_line"),
        (LINE.replace(b'"vcpus":{', b'"vcpus":[{').replace(b"}}}", b"}}]}"), "invalid_host_line"),
        (b"[" * 100_000 + b"]" * 100_000, "too_long"),
        (b"[" * 30_000 + b"]" * 30_000, "too_deep"),
    ],
    ids=[
        "empty",
        "truncated",
        "not-utf8",
        "not-an-object",
        "wrong-version",
        "no-version",
        "a-row",
        "nan",
        "infinite",
        "negative-steal",
        "rounds-up-to-2**63",
        "negative-host-cpu",
        "fractional-host-cpu",
        "steal-as-string",
        "steal-as-bool",
        "no-steal",
        "unknown-frequency-source",
        "frequency-without-source",
        "source-without-frequency",
        "leading-zero-cpu",
        "cpu-beyond-max",
        "cpu-not-a-number",
        "zero-interval",
        "interval-too-long",
        "negative-host-time",
        "vcpus-not-an-object",
        "oversized",
        "too-deep",
    ],
)
def test_a_bad_host_line_is_refused_with_its_reason(line, reason):
    with pytest.raises(BadHostLine) as info:
        parse_host_line(line)
    assert info.value.reason == reason


def test_more_vcpus_than_max_cpus_is_refused():
    vcpus = {str(n): {"steal_seconds": 0, "host_cpu": 0} for n in range(MAX_CPUS + 1)}
    line = json.dumps({"v": 1, "type": "host", "host_wall_ns": 1, "interval_seconds": 1, "vcpus": vcpus}).encode()
    with pytest.raises(BadHostLine, match=f"more than {MAX_CPUS} vcpus"):
        parse_host_line(line, max_bytes=len(line))


def test_a_line_of_exactly_the_limit_is_read_and_one_byte_more_is_not():
    base = host_line(**{"0": {"steal_seconds": 1, "host_cpu": 0}})
    padded = base[:-1] + b" " * (MAX_HOST_LINE_BYTES - len(base)) + b"}"
    assert len(padded) == MAX_HOST_LINE_BYTES
    assert parse_host_line(padded).vcpus[0].steal_seconds == 1.0
    with pytest.raises(BadHostLine) as info:
        parse_host_line(padded[:-1] + b" }")
    assert info.value.reason == "too_long"


def test_the_splitter_yields_whole_lines_across_reads_and_skips_an_oversized_one():
    splitter = LineSplitter(MAX_HOST_LINE_BYTES)  # the agent's splitter of host lines
    assert list(splitter.feed(b'{"a":1}\n{"b"')) == [b'{"a":1}']
    assert list(splitter.feed(b":2}\n")) == [b'{"b":2}']
    # A line that never ends within the limit is dropped up to its newline, counted once.
    assert list(splitter.feed(b"x" * (MAX_HOST_LINE_BYTES + 1))) == [TOO_LONG]
    assert list(splitter.feed(b"y" * 1000)) == []
    assert list(splitter.feed(b"tail\nnext\n")) == [b"next"]
    # One that arrives whole but too long is counted too.
    assert list(splitter.feed(b"z" * (MAX_HOST_LINE_BYTES + 1) + b"\nok\n")) == [TOO_LONG, b"ok"]


def test_the_state_file_is_written_atomically_with_mode_0644_and_read_back(tmp_path):
    path = tmp_path / "run" / "sysmon" / "host.json"  # the directory does not exist yet
    old = os.umask(0o077)
    try:
        write_state(path, state_bytes(parse_host_line(LINE), 1_700_000_001.5))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["host.json"]  # no temporary file left
    state = read_host_state(path)
    assert state is not None
    assert state.received_wall_seconds == 1_700_000_001.5
    assert state.vcpus == parse_host_line(LINE).vcpus


def test_a_state_file_that_cannot_be_written_leaves_the_old_one(tmp_path):
    path = tmp_path / "host.json"
    write_state(path, state_bytes(parse_host_line(LINE), 1.0))
    before = path.read_bytes()
    (tmp_path / f".host.json.{os.getpid()}.tmp").mkdir()  # the temporary file cannot be created, even by root
    with pytest.raises(IsADirectoryError):
        write_state(path, state_bytes(parse_host_line(LINE), 2.0))
    assert path.read_bytes() == before


def test_writing_where_the_directory_is_a_file_fails_with_oserror(tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(OSError):
        write_state(tmp_path / "run" / "host.json", b"{}\n")


def test_a_re_encoded_line_of_the_maximum_size_still_reads_back(tmp_path):
    # Short numbers written long ("1e9" -> 1000000000.0) must not push the file past its bound.
    vcpu = b'{"frequency_hz":1e9,"frequency_source":"perf","steal_seconds":1e9,"host_cpu":0}'
    n = (MAX_HOST_LINE_BYTES - 100) // (len(vcpu) + 7)
    parts = [b'"%d":' % i + vcpu for i in range(n)]
    line = b'{"v":1,"type":"host","host_wall_ns":1,"interval_seconds":1,"vcpus":{' + b",".join(parts) + b"}}"
    assert len(line) <= MAX_HOST_LINE_BYTES
    path = tmp_path / "host.json"
    write_state(path, state_bytes(parse_host_line(line), 5.0))
    assert path.stat().st_size > MAX_HOST_LINE_BYTES
    state = read_host_state(path)
    assert state is not None and len(state.vcpus) == n


def test_a_missing_state_file_is_no_state_and_a_bad_one_is_an_error(tmp_path):
    assert read_host_state(tmp_path / "absent" / "host.json") is None
    bad = tmp_path / "host.json"
    bad.write_bytes(b'{"v":1,"type":"host"')
    with pytest.raises(SourceError, match="not a host line"):
        read_host_state(bad)
    bad.write_bytes(LINE + b"\n")  # a host line the agent did not write: no receive time
    with pytest.raises(SourceError, match="received_wall_ns"):
        read_host_state(bad)
    with pytest.raises(IsADirectoryError):
        read_host_state(tmp_path)


@pytest.mark.parametrize(
    ("received", "now", "sampler", "fresh"),
    [
        (100.0, 102.9, 1.0, True),  # within 3 of the host's 1 s interval
        (100.0, 103.0, 1.0, False),
        (100.0, 114.0, 5.0, True),  # this sampler's 5 s interval is the longer one
        (100.0, 115.0, 5.0, False),
        (100.0, 97.5, 1.0, True),  # a little ahead: clocks read at different moments
        (100.0, 90.0, 1.0, False),  # far ahead: the clock stepped back
    ],
    ids=["fresh", "stale", "sampler-longer-fresh", "sampler-longer-stale", "slightly-ahead", "far-ahead"],
)
def test_freshness_is_three_of_the_longer_interval(received, now, sampler, fresh):
    state = HostState(1.0, 1.0, {}, received_wall_seconds=received)
    assert is_fresh(state, now, sampler) is fresh


def test_a_nested_hosts_own_host_frequency_is_a_known_source():
    state = parse_host_line(LINE.replace(b'"cpuinfo"', b'"host"'))
    assert state.vcpus[0].frequency_source == "host"
