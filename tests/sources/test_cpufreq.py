import os
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.sources import SourceError
from exporter.sources.cpufreq import parse_khz, read_cpufreq
from tests.helpers import FIXTURES


def test_reads_every_cpu_with_a_policy_directory():
    freqs = read_cpufreq(FIXTURES / "baremetal-8cpu" / "sys")
    assert sorted(freqs) == list(range(8))  # cpu5 is offline but keeps stale values; the snapshot drops it
    assert freqs[4].frequency_hertz == 3800023e3
    assert (freqs[4].min_hertz, freqs[4].max_hertz, freqs[4].governor) == (800e6, 3900e6, "performance")


def test_no_driver_gives_nothing():
    assert read_cpufreq(FIXTURES / "vm-2cpu" / "sys") == {}


def test_optional_files_may_be_missing(tmp_path):
    policy = tmp_path / "devices/system/cpu/cpu0/cpufreq"
    policy.mkdir(parents=True)
    (policy / "scaling_cur_freq").write_text("1500000\n")
    f = read_cpufreq(tmp_path)[0]
    assert (f.frequency_hertz, f.min_hertz, f.max_hertz, f.governor) == (1.5e9, None, None, None)


@pytest.mark.parametrize("content", ["", "fast\n", "1.5e6\n"], ids=["empty", "word", "float"])
def test_malformed_names_the_file(tmp_path, content):
    policy = tmp_path / "devices/system/cpu/cpu3/cpufreq"
    policy.mkdir(parents=True)
    (policy / "scaling_cur_freq").write_text(content)
    with pytest.raises(SourceError, match="cpu3/cpufreq/scaling_cur_freq"):
        read_cpufreq(tmp_path)


def test_missing_cpu_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_cpufreq(tmp_path)


def _policy(root, cpu: int = 0, **files: str):
    policy = root / f"devices/system/cpu/cpu{cpu}/cpufreq"
    policy.mkdir(parents=True)
    for name, text in files.items():
        (policy / name).write_text(text)
    return policy


@pytest.mark.parametrize(
    ("files", "hertz", "source"),
    [
        (
            {"cpuinfo_avg_freq": "2400000\n", "scaling_cur_freq": "1500000\n", "cpuinfo_cur_freq": "1600000\n"},
            2.4e9,
            "cpufreq_avg",
        ),
        ({"scaling_cur_freq": "1500000\n", "cpuinfo_cur_freq": "1600000\n"}, 1.5e9, "cpufreq"),
        ({"cpuinfo_cur_freq": "1600000\n"}, 1.6e9, "cpufreq_hardware"),
    ],
    ids=["avg-first", "then-scaling", "then-hardware"],
)
def test_current_frequency_comes_from_the_best_file_present(tmp_path, files, hertz, source):
    _policy(tmp_path, **files)
    f = read_cpufreq(tmp_path)[0]
    assert (f.frequency_hertz, f.source) == (hertz, source)
    assert f.hardware_hertz == 1.6e9  # cpuinfo_cur_freq, whichever file won


def test_a_policy_without_scaling_cur_freq_keeps_limits_and_governor(tmp_path):
    _policy(tmp_path, cpuinfo_min_freq="800000\n", cpuinfo_max_freq="3900000\n", scaling_governor="schedutil\n")
    f = read_cpufreq(tmp_path)[0]
    assert f.frequency_hertz is None and f.hardware_hertz is None
    assert (f.min_hertz, f.max_hertz, f.governor) == (800e6, 3900e6, "schedutil")


def test_cpuinfo_cur_freq_unreadable_to_a_user_is_left_out():
    """mode 0400 as the kernel makes it; read by nobody in a child, as root bypasses the mode."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from tests.helpers import ROOT, require_root

    require_root()
    base = Path(tempfile.mkdtemp(prefix="sysmon-cpufreq-"))
    try:
        base.chmod(0o755)
        policy = _policy(base, scaling_cur_freq="1500000\n", cpuinfo_cur_freq="1600000\n")
        for p in [policy, *policy.parents]:
            if p == base.parent:
                break
            p.chmod(0o755)
        (policy / "scaling_cur_freq").chmod(0o444)
        (policy / "cpuinfo_cur_freq").chmod(0o400)
        script = (
            "from pathlib import Path; from exporter.sources.cpufreq import read_cpufreq\n"
            f"f = read_cpufreq(Path({str(base)!r}))[0]\n"
            "print(f.frequency_hertz, f.source, f.hardware_hertz)\n"
        )
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", script]
        out = subprocess.run(
            cmd, capture_output=True, text=True, cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
    finally:
        shutil.rmtree(base)
    assert out.stdout.split() == ["1500000000.0", "cpufreq", "None"]


_CURRENT = {
    "scaling_cur_freq": "1500000\n",
    "cpuinfo_cur_freq": "1600000\n",
    "cpuinfo_max_freq": "3900000\n",
    "scaling_governor": "powersave\n",
}


def test_read_current_reads_the_current_frequencies_and_keeps_the_rest(tmp_path):
    from exporter.sources.cpufreq import read_current

    policy = _policy(tmp_path, **_CURRENT)
    known = read_cpufreq(tmp_path)
    (policy / "scaling_cur_freq").write_text("2500000\n")
    (policy / "cpuinfo_cur_freq").write_text("2600000\n")
    (policy / "cpuinfo_max_freq").write_text("4000000\n")
    f = read_current(tmp_path, known)[0]
    assert (f.frequency_hertz, f.source, f.hardware_hertz) == (2.5e9, "cpufreq", 2.6e9)
    assert (f.max_hertz, f.governor) == (3.9e9, "powersave")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda p: (p / "scaling_cur_freq").unlink(), FileNotFoundError),
        # a value whose first 32 bytes alone would parse: more than one read is never a kHz value
        (lambda p: (p / "cpuinfo_cur_freq").write_text("2600000" + " " * 30 + "9\n"), SourceError),
        (lambda p: (p / "scaling_cur_freq").write_text("fast\n"), SourceError),
    ],
    ids=["gone", "too-long", "malformed"],
)
def test_read_current_raises_when_a_file_it_reads_changed(tmp_path, change, error):
    from exporter.sources.cpufreq import read_current

    policy = _policy(tmp_path, **_CURRENT)
    known = read_cpufreq(tmp_path)
    change(policy)
    with pytest.raises(error, match="cpu0/cpufreq/"):
        read_current(tmp_path, known)


# Digits, ASCII space, the spaces only str.strip removes (\x1c, U+0085), non-ASCII digits, bytes not UTF-8
_KHZ_PARTS = [b"8", b"0", b"1234567", b"9" * 13, b" ", b"\n", b"\t", b"\x1c", b"\xc2\x85", b"\xc2\xb2", b"-", b"\xff"]


@settings(max_examples=500, deadline=None, database=None)
@given(st.lists(st.sampled_from(_KHZ_PARTS), max_size=8).map(b"".join))
def test_a_current_frequency_read_is_parse_khz_of_the_file(content):
    """read_current's own read of a kHz file says what parse_khz says of its text (value or error)."""
    from exporter.sources import read_small
    from exporter.sources.cpufreq import _read_khz

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "scaling_cur_freq")
        with open(path, "wb") as f:
            f.write(content)

        def outcome(read):  # type: ignore[no-untyped-def]
            try:
                return read()
            except SourceError as e:
                return str(e)

        expected = outcome(lambda: parse_khz(read_small(path, 31, short_read_ends=True), path))
        assert outcome(lambda: _read_khz(path)) == expected


def test_read_current_through_held_files_reads_what_it_reads_opening_each_file(tmp_path):
    from exporter.sources import HeldFiles
    from exporter.sources.cpufreq import read_current

    policy = _policy(tmp_path, **_CURRENT)
    known = read_cpufreq(tmp_path)
    held = HeldFiles()
    try:
        assert read_current(tmp_path, known, held) == read_current(tmp_path, known)
        assert held.paths() == {str(policy / "scaling_cur_freq"), str(policy / "cpuinfo_cur_freq")}
        (policy / "scaling_cur_freq").write_text("2500000\n")  # into the held inode
        assert read_current(tmp_path, known, held)[0].frequency_hertz == 2.5e9
        (policy / "cpuinfo_cur_freq").write_text("fast\n")
        with pytest.raises(SourceError, match="cpu0/cpufreq/cpuinfo_cur_freq"):
            read_current(tmp_path, known, held)
    finally:
        held.close()


def test_read_current_gives_the_known_policy_again_while_its_frequencies_hold(tmp_path):
    from exporter.sources.cpufreq import read_current

    policy = _policy(tmp_path, **_CURRENT)
    known = read_cpufreq(tmp_path)
    assert read_current(tmp_path, known)[0] is known[0]
    (policy / "cpuinfo_cur_freq").write_text("1700000\n")  # only the hardware's value moved
    f = read_current(tmp_path, known)[0]
    assert (f.frequency_hertz, f.hardware_hertz, f.max_hertz, f.governor) == (1.5e9, 1.7e9, 3.9e9, "powersave")
    (policy / "cpuinfo_cur_freq").write_text("1600000\n")
    (policy / "scaling_cur_freq").write_text("1400000\n")  # only the current one
    f = read_current(tmp_path, known)[0]
    assert (f.frequency_hertz, f.hardware_hertz, f.source) == (1.4e9, 1.6e9, "cpufreq")
