"""The syscalls collector without the kernel: config, the snapshot step and its failure reporting."""

import logging
from pathlib import Path

import pytest

from exporter.collector.syscalls import collect_syscalls
from exporter.config import ConfigError, load
from exporter.snapshot import (
    BREAKDOWN_IDLE_SAMPLES,
    Snapshot,
    SourceStatus,
    SyscallBreakdown,
    SyscallSources,
    take_syscalls,
)
from exporter.syscalls_cmd import delta, format_table, parse_args


class FixedClock:
    def wall(self) -> float:
        return 1_700_000_000.0

    def monotonic(self) -> float:
        return 5.0


class Counts:
    def __init__(self, *reads: dict[int, int] | Exception, by: list[dict[tuple[str, int], int]] | None = None) -> None:
        self.reads = list(reads)
        self.by = list(by or [])

    def read(self) -> dict[int, int]:
        value = self.reads.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    def read_by(self) -> dict[tuple[str, int], int]:
        return self.by.pop(0)


def test_flags():
    c = load(["--collector.syscalls", "--syscalls.pid=42", "--syscalls.cgroup=/sys/fs/cgroup/unified/app"], {})
    assert "syscalls" in c.collectors
    assert (c.syscalls.pid, c.syscalls.cgroup, c.syscalls.include_self) == (
        42,
        Path("/sys/fs/cgroup/unified/app"),
        False,
    )
    assert load(["--collector.syscalls", "--syscalls.include-self"], {}).syscalls.include_self
    assert load(["--collector.syscalls", "--syscalls.containers"], {}).syscalls.containers
    assert not load(["--collector.syscalls"], {}).syscalls.containers
    assert "syscalls" not in load([], {}).collectors  # off by default


@pytest.mark.parametrize(
    ("argv", "option", "needle"),
    [
        (["--syscalls.pid=42"], "--syscalls.pid", "add --collector.syscalls"),
        (["--syscalls.include-self"], "--syscalls.include-self", "add --collector.syscalls"),
        (["--syscalls.containers"], "--syscalls.containers", "add --collector.syscalls"),
        (["--collector.syscalls", "--syscalls.pid=-3"], "--syscalls.pid", "positive integer"),
    ],
    ids=["pid-without-collector", "include-self-without-collector", "containers-without-collector", "bad-pid"],
)
def test_bad_flags_name_the_option(argv, option, needle):
    with pytest.raises(ConfigError, match=needle) as e:
        load(argv, {})
    assert e.value.option == option


def test_step_names_counts_and_keeps_other_sources():
    prev = Snapshot(statuses={"cpu": SourceStatus(True, 0.001)})
    snap = take_syscalls(prev, SyscallSources(Counts({0: 5, 110: 100_000, 1000: 2}), "", "x86_64"), FixedClock())
    assert snap.syscalls == {"getppid": 100_000.0, "read": 5.0, "unknown_1000": 2.0}
    assert snap.statuses["syscalls"].success and snap.statuses["cpu"].success
    [family] = collect_syscalls(snap)
    assert family.name == "sysmon_syscalls"
    assert {s.labels["syscall"]: s.value for s in family.samples if s.name == "sysmon_syscalls_total"} == snap.syscalls


def test_unavailable_fails_the_source_and_logs_once(caplog):
    caplog.set_level(logging.INFO, logger="exporter.snapshot")
    readers = SyscallSources(None, "bpf(2) refused (Operation not permitted): run as root", "x86_64")
    snap = None
    for _ in range(3):
        snap = take_syscalls(snap, readers, FixedClock())
    assert snap is not None and not snap.statuses["syscalls"].success
    assert snap.syscalls == {} and list(collect_syscalls(snap)) == []
    assert [r.getMessage() for r in caplog.records] == [
        "source syscalls failed: bpf(2) refused (Operation not permitted): run as root"
    ]


def test_a_failing_read_fails_alone_and_recovers(caplog):
    caplog.set_level(logging.INFO, logger="exporter.snapshot")
    readers = SyscallSources(Counts({0: 1}, OSError(9, "Bad file descriptor"), {0: 3}), "", "x86_64")
    snaps = []
    snap = None
    for _ in range(3):
        snap = take_syscalls(snap, readers, FixedClock())
        snaps.append(snap)
    assert [s.statuses["syscalls"].success for s in snaps] == [True, False, True]
    assert snaps[2].syscalls == {"read": 3.0}
    assert len(caplog.records) == 2 and "recovered" in caplog.records[1].getMessage()


def test_command_options_and_interval_output():
    opts = parse_args(["-p", "7", "-i", "500ms", "-d", "1m", "--json"])
    assert (opts.pid, opts.interval, opts.duration, opts.json, opts.top) == (7, 0.5, 60.0, True, 20)
    assert delta({"read": 10, "write": 3, "close": 5}, {"read": 4, "write": 3}) == {"read": 6, "close": 5}
    table = format_table({"read": 6, "close": 5, "futex": 1}, 2.0, 2, 0.0)
    lines = table.splitlines()
    assert lines[0].endswith("12 syscalls in 2.0s")
    assert lines[2].split() == ["read", "6", "3.0"] and lines[3].split() == ["close", "5", "2.5"]
    assert lines[4].split() == ["(1", "more)", "1", "0.5"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["-d", "-5"], "argument -d/--duration: -5 is outside 50ms..604800s"),
        (["-d", "0"], "argument -d/--duration: 0 is outside"),
        (["-i", "1h1s"], "argument -i/--interval: 1h1s is outside 50ms..3600s"),
        (["-n", "0"], "argument -n/--top: 0 is outside 1..1000"),
    ],
    ids=["negative-duration", "zero-duration", "long-interval", "no-rows"],
)
def test_command_bad_values_name_the_flag(argv, needle):
    with pytest.raises(ConfigError) as e:
        parse_args(argv)
    assert str(e.value).startswith("sysmon-exporter syscalls: ") and needle in str(e.value)


def test_flags_for_the_breakdown():
    c = load(["--collector.syscalls", "--syscalls.by=cgroup", "--syscalls.top=3"], {})
    assert (c.syscalls.by, c.syscalls.top) == ("cgroup", 3)
    with pytest.raises(ConfigError, match="not one of comm, cgroup"):
        load(["--collector.syscalls", "--syscalls.by=pid"], {})
    with pytest.raises(ConfigError, match=r"1\.\.1000"):
        load(["--collector.syscalls", "--syscalls.top=0"], {})


def test_breakdown_keeps_the_top_labels_and_sums_to_the_totals():
    b = SyscallBreakdown().advance({0: 100, 1: 10}, {("a", 0): 50, ("b", 0): 30, ("c", 0): 15, ("a", 1): 10}, top=2)
    assert b.exposed == {("a", 0): 50, ("a", 1): 10, ("b", 0): 30, ("other", 0): 20}
    # "c" became busier, but slots are kept while their labels are active: counters never go backwards.
    b2 = b.advance({0: 200, 1: 10}, {("a", 0): 1, ("b", 0): 1, ("c", 0): 90}, top=2)
    assert b2.exposed == {("a", 0): 51, ("a", 1): 10, ("b", 0): 31, ("other", 0): 118}
    assert sum(b2.exposed.values()) == 210


def test_breakdown_increments_ahead_of_the_totals_are_not_counted_twice():
    # The per-label read saw 5 calls that the totals read (just before) had not.
    b = SyscallBreakdown().advance({0: 10}, {("a", 0): 15}, top=5)
    assert b.exposed == {("a", 0): 15} and b.debt == {0: 5}
    b2 = b.advance({0: 30}, {("a", 0): 3}, top=5)
    assert b2.exposed == {("a", 0): 18, ("other", 0): 12}
    assert sum(b2.exposed.values()) == 30


def test_breakdown_frees_the_slot_of_an_idle_label():
    b = SyscallBreakdown().advance({0: 1}, {("gone", 0): 1}, top=1)
    for _ in range(BREAKDOWN_IDLE_SAMPLES - 1):
        b = b.advance({0: 1}, {}, top=1)
    assert "gone" in b.idle
    b = b.advance({0: 2}, {("new", 0): 1}, top=1)
    assert b.idle == {"new": 0} and ("gone", 0) not in b.exposed and b.exposed[("new", 0)] == 1


def test_step_with_a_breakdown_labels_the_family():
    readers = SyscallSources(Counts({110: 7, 0: 3}, by=[{("sh", 110): 7, ("cat", 0): 1}]), "", "x86_64", "comm", 1)
    snap = take_syscalls(None, readers, FixedClock())
    assert snap.syscalls_by == {("other", "read"): 3.0, ("sh", "getppid"): 7.0}
    [family] = collect_syscalls(snap)
    samples = {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == "sysmon_syscalls_total"}
    assert samples == {
        (("comm", "other"), ("syscall", "read")): 3.0,
        (("comm", "sh"), ("syscall", "getppid")): 7.0,
    }


def test_command_help_lists_the_flags(capsys):
    from exporter.cli import main

    assert main(["syscalls", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sysmon-exporter syscalls")
    for flag in ("-p PID", "--cgroup CGROUP", "-i INTERVAL", "-d DURATION", "--json"):
        assert flag in out
