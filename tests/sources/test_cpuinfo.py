import textwrap

import pytest

from exporter.sources import SourceError
from exporter.sources.cpuinfo import parse_cpuinfo

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
