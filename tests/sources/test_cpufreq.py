import pytest

from exporter.sources import SourceError
from exporter.sources.cpufreq import read_cpufreq
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
