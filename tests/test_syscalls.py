"""The syscalls collector without the kernel: config, the snapshot step and its failure reporting."""

import logging
from pathlib import Path

import pytest

from exporter.collector.syscalls import collect_syscalls
from exporter.config import ConfigError, load
from exporter.snapshot import Snapshot, SourceStatus, SyscallReaders, take_syscalls
from exporter.syscalls_cmd import delta, format_table, parse_args


class FixedClock:
    def wall(self) -> float:
        return 1_700_000_000.0

    def monotonic(self) -> float:
        return 5.0


class Counts:
    def __init__(self, *reads: dict[int, int] | Exception) -> None:
        self.reads = list(reads)

    def read(self) -> dict[int, int]:
        value = self.reads.pop(0)
        if isinstance(value, Exception):
            raise value
        return value


def test_flags():
    c = load(["--collector.syscalls", "--syscalls.pid=42", "--syscalls.cgroup=/sys/fs/cgroup/unified/app"], {})
    assert "syscalls" in c.collectors
    assert (c.syscalls_pid, c.syscalls_cgroup, c.syscalls_include_self) == (
        42,
        Path("/sys/fs/cgroup/unified/app"),
        False,
    )
    assert load(["--collector.syscalls", "--syscalls.include-self"], {}).syscalls_include_self
    assert "syscalls" not in load([], {}).collectors  # off by default


@pytest.mark.parametrize(
    ("argv", "option", "needle"),
    [
        (["--syscalls.pid=42"], "--syscalls.pid", "add --collector.syscalls"),
        (["--syscalls.include-self"], "--syscalls.include-self", "add --collector.syscalls"),
        (["--collector.syscalls", "--syscalls.pid=-3"], "--syscalls.pid", "positive integer"),
    ],
    ids=["pid-without-collector", "include-self-without-collector", "bad-pid"],
)
def test_bad_flags_name_the_option(argv, option, needle):
    with pytest.raises(ConfigError, match=needle) as e:
        load(argv, {})
    assert e.value.option == option


def test_step_names_counts_and_keeps_other_sources():
    prev = Snapshot(statuses={"cpu": SourceStatus(True, 0.001)})
    snap = take_syscalls(prev, SyscallReaders(Counts({0: 5, 110: 100_000, 1000: 2}), "", "x86_64"), FixedClock())
    assert snap.syscalls == {"getppid": 100_000.0, "read": 5.0, "unknown_1000": 2.0}
    assert snap.statuses["syscalls"].success and snap.statuses["cpu"].success
    [family] = collect_syscalls(snap)
    assert family.name == "sysmon_syscalls"
    assert {s.labels["syscall"]: s.value for s in family.samples if s.name == "sysmon_syscalls_total"} == snap.syscalls


def test_unavailable_fails_the_source_and_logs_once(caplog):
    caplog.set_level(logging.INFO, logger="exporter.snapshot")
    readers = SyscallReaders(None, "bpf(2) refused (Operation not permitted): run as root", "x86_64")
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
    readers = SyscallReaders(Counts({0: 1}, OSError(9, "Bad file descriptor"), {0: 3}), "", "x86_64")
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
    assert lines[4].split() == ["(1", "more)", "1"]
