import textwrap
from pathlib import Path

import pytest

from exporter.sources import SourceError
from exporter.sources.cpuinfo import parse_cpuinfo, require_cpuinfo

X86 = textwrap.dedent("""\
    processor\t: 0
    vendor_id\t: GenuineIntel
    cpu MHz\t\t: 2599.998
    flags\t\t: fpu vme

    processor\t: 1
    vendor_id\t: GenuineIntel
    cpu MHz\t\t: 1200.5
""")

ARM64 = textwrap.dedent("""\
    processor\t: 0
    BogoMIPS\t: 50.00
    Features\t: fp asimd evtstrm
    CPU implementer\t: 0x41

    processor\t: 1
    BogoMIPS\t: 50.00
""")


def test_x86_keyed_by_processor_in_hertz():
    assert parse_cpuinfo(X86) == {0: pytest.approx(2599.998e6), 1: pytest.approx(1200.5e6)}


def test_arm64_has_no_frequency():
    assert parse_cpuinfo(ARM64) == {}


def test_processor_numbers_need_not_be_contiguous():
    text = "processor : 0\ncpu MHz : 1000\n\nprocessor : 6\ncpu MHz : 2000\n"
    assert parse_cpuinfo(text) == {0: 1e9, 6: 2e9}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpu MHz : 1000\n", "before any processor"),
        ("processor : zero\n", "not a number"),
        ("processor : 0\ncpu MHz : fast\n", "not a number"),
    ],
    ids=["mhz-before-processor", "bad-processor", "bad-mhz"],
)
def test_malformed(text, message):
    with pytest.raises(SourceError, match=message):
        parse_cpuinfo(text)


def test_empty_file_has_no_frequency():
    assert parse_cpuinfo("") == {}


ARCH = Path(__file__).resolve().parent.parent / "fixtures" / "cpuinfo"


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("s390x", {c: 5000e6 for c in range(4)}),
        ("ppc64", {c: 3000e6 for c in range(6)}),
        ("loongarch64", {c: 2500e6 for c in range(4)}),
    ],
    ids=["s390x-cpu-MHz-dynamic", "ppc64-clock", "loongarch-CPU-MHz"],
)
def test_each_architecture_states_its_frequency(arch, expected):
    assert parse_cpuinfo((ARCH / arch).read_text()) == expected


@pytest.mark.parametrize("arch", ["arm64", "riscv64"])
def test_arm64_and_riscv_state_none_as_a_one_line_error(tmp_path, arch):
    (tmp_path / "cpuinfo").write_text((ARCH / arch).read_text())
    with pytest.raises(SourceError) as err:
        require_cpuinfo(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path}/cpuinfo: states no frequency")
    assert "arm64 and riscv" in message


def test_s390x_static_is_used_where_dynamic_is_missing():
    text = "cpu number : 0\ncpu MHz static : 4000\n\ncpu number : 1\ncpu MHz static : 4000\ncpu MHz dynamic : 5200\n"
    assert parse_cpuinfo(text) == {0: 4000e6, 1: 5200e6}


def test_a_clock_line_that_is_not_mhz_is_not_a_frequency():
    assert parse_cpuinfo("processor : 0\nclock : fixed\n") == {}


def test_ppc_clock_that_is_not_a_number_names_the_line():
    with pytest.raises(SourceError, match=r"cpuinfo:2: clock 'fastMHz' is not a number"):
        parse_cpuinfo("processor : 0\nclock : fastMHz\n")


def test_an_x86_cpuinfo_without_aperfmperf_states_a_constant_rate():
    from exporter.sources.cpuinfo import parse_cpuinfo_mhz

    assert parse_cpuinfo_mhz(X86).constant  # flags without aperfmperf: cpu_khz, fixed at boot
    assert not parse_cpuinfo_mhz(X86.replace("flags\t\t: fpu vme", "flags\t\t: fpu aperfmperf vme")).constant
    assert not parse_cpuinfo_mhz(ARM64 + "cpu MHz\t: 2000\n").constant  # no flags line: not x86
