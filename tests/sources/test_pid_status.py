import textwrap

import pytest

from exporter.sources import SourceError
from exporter.sources.pid_status import PidStatus, parse_pid_status, read_pid_status

# The head of /proc/<pid>/status of a thread on Linux 6.18 (Pid differs from Tgid).
THREAD = textwrap.dedent(
    """\
    Name:\tpython3
    Umask:\t0022
    State:\tS (sleeping)
    Tgid:\t4000
    Ngid:\t0
    Pid:\t4242
    PPid:\t1
    """
)


def test_parse_pid_status_ids():
    assert parse_pid_status(THREAD) == PidStatus(tgid=4000, pid=4242)


def test_extra_and_unknown_keys_are_ignored():
    assert parse_pid_status(THREAD + "NewKey:\tvalue with: colons\n") == PidStatus(tgid=4000, pid=4242)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no Tgid line"),
        ("Name:\tpython3\nUmask:\t0022\n", "no Tgid line"),
        ("Name:\tpython3\nTgid:\t4000\n", "no Pid line"),
        ("Tgid:\tfour\nPid:\t4242\n", r":1: Tgid: 'four' is not a number"),
        ("Tgid:\t4000\ngarbage\n", r":2: not a 'Key: value' line"),
    ],
    ids=["empty", "truncated-before-tgid", "truncated-before-pid", "tgid-not-a-number", "not-key-value"],
)
def test_malformed_status_is_a_source_error_naming_the_file(text, message):
    with pytest.raises(SourceError, match=r"^/proc/7/status") as e:
        parse_pid_status(text, "/proc/7/status")
    assert e.match(message)


def test_read_pid_status(tmp_path):
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "status").write_text(THREAD)
    assert read_pid_status(tmp_path, 4242).tgid == 4000
