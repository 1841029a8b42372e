import textwrap

import pytest

from exporter.sources import SourceError
from exporter.sources.pid_stat import PidStat, parse_pid_stat, read_descendants, read_pid_stat


@pytest.mark.parametrize(
    ("text", "ppid"),
    [
        ("1234 (bash) S 1 1234 1234 0 -1 4194560 1 0 0 0\n", 1),
        ("77 (a) b (c)) R 42 77 77 0 -1\n", 42),
        ("9 (kworker/0:1-events) I 2 0 0 0 -1\n", 2),
    ],
    ids=["plain", "parens-and-spaces-in-comm", "kernel-thread"],
)
def test_parse_ppid(text, ppid):
    assert parse_pid_stat(text).ppid == ppid


def test_parse_pid_stat_fields():
    assert parse_pid_stat("77 (a) b (c)) R 42 77 77 0 -1\n") == PidStat(77, "a) b (c)", "R", 42)


@pytest.mark.parametrize(
    "text",
    ["", "1234 (bash", "1234 (bash) S", "x (bash) S 1 0\n", "1234 (bash) S ppid 0\n", "1234 bash S 1 0\n"],
    ids=["empty", "truncated-in-comm", "truncated-before-ppid", "pid-not-a-number", "ppid-not-a-number", "no-parens"],
)
def test_malformed_stat_is_a_source_error_naming_the_file(text):
    with pytest.raises(SourceError, match=r"^/proc/7/stat: "):
        parse_pid_stat(text, "/proc/7/stat")


def test_read_pid_stat(tmp_path):
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "stat").write_text(textwrap.dedent("5 (sh) S 1 5 5 0 -1\n"))
    assert read_pid_stat(tmp_path, 5) == PidStat(5, "sh", "S", 1)


def test_descendants_follow_the_tree_and_skip_other_branches(tmp_path):
    tree = {1: 0, 10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20}
    for pid, ppid in tree.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (p{pid}) S {ppid} 0 0\n")
    (tmp_path / "30").mkdir()  # exited between listing and reading: no stat
    (tmp_path / "self").mkdir()
    assert read_descendants(tmp_path, 10) == {11, 12, 13}
    assert read_descendants(tmp_path, 12) == set()


def test_descendants_skip_an_unparsable_stat(tmp_path):
    for pid, text in {10: "10 (a) S 1 0\n", 11: "11 (b) S 10 0\n", 12: "12 (c"}.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(text)
    assert read_descendants(tmp_path, 10) == {11}


@pytest.mark.parametrize(("flags", "kernel"), [("2129984", True), ("4194560", False)], ids=["kthreadd", "a-shell"])
def test_is_kernel_thread_reads_pf_kthread_from_field_9(tmp_path, flags, kernel):
    from exporter.sources.pid_stat import is_kernel_thread

    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "stat").write_text(f"2 (kthreadd) S 0 0 0 0 -1 {flags} 0 0 0 0 0 0 0 0 20 0 1 0 10\n")
    assert is_kernel_thread(tmp_path, 2) is kernel


def test_is_kernel_thread_refuses_a_flags_field_that_is_not_a_number(tmp_path):
    from exporter.sources.pid_stat import is_kernel_thread

    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "stat").write_text("2 (kthreadd) S 0 0 0 0 -1 -5 0\n")
    with pytest.raises(SourceError, match="2/stat: field 9"):
        is_kernel_thread(tmp_path, 2)
