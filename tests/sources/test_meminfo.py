import textwrap

import pytest

from exporter.sources import SourceError
from exporter.sources.meminfo import parse_meminfo

TEXT = textwrap.dedent("""\
    MemTotal:       1000 kB
    MemFree:         400 kB
    MemAvailable:    700 kB
    Buffers:          10 kB
    Cached:          200 kB
    SwapTotal:        64 kB
    SwapFree:         32 kB
    SReclaimable:     50 kB
    HugePages_Total:       0
""")


def test_kib_to_bytes_and_used():
    mem = parse_meminfo(TEXT)
    assert mem.total_bytes == 1000 * 1024
    assert mem.available_bytes == 700 * 1024
    assert mem.swap_free_bytes == 32 * 1024
    assert mem.used_bytes == (1000 - 400 - 10 - 200 - 50) * 1024


def test_pre_3_14_kernel_has_no_memavailable():
    old = "\n".join(line for line in TEXT.splitlines() if not line.startswith("MemAvailable"))
    assert parse_meminfo(old).available_bytes is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "MemTotal is missing"),
        ("MemTotal: 1000 kB\nMemFree: 4", "Buffers is missing"),
        ("MemTotal: lots kB\n", "not an unsigned 64-bit integer"),
        ("MemTotal: 1 MB\n", "unexpected value"),
        ("garbage\n", "no ':'"),
        ("MemTotal: -4 kB\n", "not an unsigned 64-bit integer"),
        ("MemTotal: 1_000 kB\n", "not an unsigned 64-bit integer"),
        ("MemTotal: \u0663 kB\n", "not an unsigned 64-bit integer"),
        (f"MemTotal: {2**64} kB\n", "not an unsigned 64-bit integer"),
        ("MemTotal: 1" + "0" * 400 + " kB\n", "not an unsigned 64-bit integer"),
    ],
    ids=[
        "empty",
        "truncated",
        "not-integer",
        "unknown-unit",
        "no-colon",
        "negative",
        "underscore",
        "arabic-indic-digit",
        "beyond-64-bits",
        "401-digits",
    ],
)
def test_malformed(text, message):
    with pytest.raises(SourceError, match=message):
        parse_meminfo(text)


def test_a_value_of_a_key_not_used_is_not_parsed():
    # a kernel that prints a key in a new way does not take the memory figures down
    mem = parse_meminfo(TEXT + "Percpu:   lots MB\nHugepagesize: -2048 kB\n")
    assert mem == parse_meminfo(TEXT)
    with pytest.raises(SourceError, match="no ':'"):
        parse_meminfo(TEXT + "garbage\n")  # every line is still Key: value
