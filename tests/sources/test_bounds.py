"""Values no kernel writes (beyond 64 bits, NaN, negative clocks) fail their file alone, with a SourceError."""

from __future__ import annotations

import shutil

import pytest

from exporter.sources import SourceError
from exporter.sources.cgroup import CgroupLimits, parse_flat_keyed, parse_single, read_cgroups
from exporter.sources.cpufreq import parse_khz
from exporter.sources.cpuinfo import parse_cpuinfo
from tests.helpers import FIXTURES

HUGE = "9" * 400


@pytest.mark.parametrize("mhz", ["nan", "inf", "-2600.000", "0"], ids=["nan", "inf", "negative", "zero"])
def test_cpuinfo_frequency_that_cannot_be_a_clock_is_refused(mhz):
    with pytest.raises(SourceError, match="is not a frequency"):
        parse_cpuinfo(f"processor\t: 0\ncpu MHz\t\t: {mhz}\n")


@pytest.mark.parametrize(
    "text", [HUGE, "-1", "1_000", "\uff12\uff16"], ids=["400-digits", "negative", "underscore", "wide"]
)
def test_cpufreq_khz_is_plain_digits_within_bounds(text):
    with pytest.raises(SourceError, match="is not a kHz integer"):
        parse_khz(text + "\n", "/sys/x/scaling_cur_freq")


def test_cgroup_parsers_refuse_values_beyond_64_bits():
    with pytest.raises(SourceError, match="beyond 64 bits"):
        parse_single(HUGE + "\n", "/c/memory.current")
    with pytest.raises(SourceError, match="usage_usec: a 400-digit value is beyond 64 bits"):
        parse_flat_keyed(f"usage_usec {HUGE}\n", "/c/cpu.stat")
    assert parse_single(f"{2**63 - 1}\n", "/c/memory.max") == 2**63 - 1  # v1's "unlimited"


def test_one_huge_cgroup_file_fails_that_file_and_the_rest_still_count(tmp_path):
    root = tmp_path / "cgroup"
    shutil.copytree(FIXTURES / "k8s-node-v2" / "sys" / "fs" / "cgroup", root)
    bad = root / "system.slice" / "containerd.service" / "cpu.stat"
    bad.write_text(f"usage_usec {HUGE}\nuser_usec 1\nsystem_usec 1\n")
    tree = read_cgroups(root, CgroupLimits(), 100)
    assert list(tree.errors) == [str(bad)]
    assert "/system.slice/containerd.service" in tree.stats  # its other files still count
    assert len(tree.stats) > 5


def test_a_large_host_is_within_the_read_bounds_and_a_runaway_file_is_not(tmp_path):
    from exporter.sources.cpuinfo import read_cpuinfo
    from exporter.sources.stat import read_stat

    # 8,192 CPUs as x86 prints them: cpuinfo with a 1.4 KiB flags line per CPU (about 12 MiB) and /proc/stat.
    flags = "flags\t\t: " + " ".join(f"flag{i}" for i in range(200)) + "\n"
    cpus = range(8192)
    (tmp_path / "cpuinfo").write_text("".join(f"processor\t: {c}\ncpu MHz\t\t: 2600.000\n{flags}\n" for c in cpus))
    stat = "".join(f"cpu{c} 1 2 3 4 5 6 7 0 0 0\n" for c in cpus)
    (tmp_path / "stat").write_text("cpu 1 2 3 4 5 6 7 0 0 0\n" + stat + "intr " + " 0" * 100_000 + "\nbtime 1\n")
    assert len(read_cpuinfo(tmp_path)) == 8192 and len(read_stat(tmp_path, 100)) == 8192
    (tmp_path / "stat").write_text("cpu0 1 2 3 4 5 6 7 0 0 0\n" * 400_000)  # 10 MiB: no kernel writes this
    with pytest.raises(SourceError, match="larger than"):
        read_stat(tmp_path, 100)
