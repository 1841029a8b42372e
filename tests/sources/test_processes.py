import textwrap

import pytest

from exporter.sources import SourceError
from exporter.sources.processes import parse_btime, parse_pid_status_rss, parse_process_stat, read_processes
from tests.helpers import FIXTURES

STAT = "1 (process_api) S 0 0 0 0 -1 4194560 26027 3537464 0 559 154 641 28771 7296 10 -10 16 0 26 51691520 3854 18446744073709551615 1 1 0 0 0 0 0 4096 1256 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"  # noqa: E501


def test_stat_fields_after_the_command():
    stat = parse_process_stat(STAT, 100)
    assert stat.comm == "process_api" and stat.state == "S"
    assert stat.cpu_seconds == pytest.approx((154 + 641) / 100)
    assert stat.start_ticks == 26


def test_a_command_with_spaces_and_parentheses():
    stat = parse_process_stat(STAT.replace("(process_api)", "(a) b (c)"), 100)
    assert stat.comm == "a) b (c" and stat.state == "S" and stat.start_ticks == 26


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no parenthesised"),
        ("1 (x) S 0 0 0", "need at least 22"),
        (STAT.replace(" 154 641 ", " x 641 "), "not an integer"),
    ],
    ids=["empty", "truncated", "not-integer"],
)
def test_malformed_stat(text, message):
    with pytest.raises(SourceError, match=message):
        parse_process_stat(text, 100)


def test_rss_in_bytes_and_zero_for_kernel_threads():
    assert parse_pid_status_rss("Name:\tx\nVmRSS:\t   15476 kB\n") == 15476 * 1024
    assert parse_pid_status_rss("Name:\tkthreadd\nThreads:\t1\n") == 0
    with pytest.raises(SourceError, match="VmRSS"):
        parse_pid_status_rss("VmRSS: 12 MB\n")


def test_btime():
    assert parse_btime(textwrap.dedent("cpu 1 2 3 4\nbtime 1795306063\nprocesses 9\n")) == 1795306063
    with pytest.raises(SourceError, match="btime"):
        parse_btime("cpu 1 2 3 4\n")


def test_fixture_host():
    procs = read_processes(FIXTURES / "vm-2cpu" / "proc", 100)
    assert [(p.pid, p.name, p.state) for p in procs] == [(1, "process_api", "sleep"), (2, "kthreadd", "sleep")]
    assert procs[0].rss_bytes == 15476 * 1024 and procs[1].rss_bytes == 0
    assert procs[0].start_time_seconds == 1795306063 + 0.26


def test_a_process_that_exits_while_listed_is_skipped(tmp_path):
    (tmp_path / "stat").write_text("btime 100\n")
    (tmp_path / "7").mkdir()  # its files are gone: exited between the listing and the read
    (tmp_path / "8").mkdir()
    (tmp_path / "8" / "stat").write_text(STAT.replace("1 (", "8 ("))
    (tmp_path / "8" / "status").write_text("VmRSS:\t4 kB\n")
    assert [p.pid for p in read_processes(tmp_path, 100)] == [8]


def test_an_unreadable_file_fails(tmp_path):
    (tmp_path / "stat").write_text("btime 100\n")
    (tmp_path / "8").mkdir()
    (tmp_path / "8" / "stat").mkdir()  # reading a directory: EISDIR, not a vanished process
    with pytest.raises(IsADirectoryError):
        read_processes(tmp_path, 100)
