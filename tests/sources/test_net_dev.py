import textwrap

import pytest

from exporter.sources import SourceError
from exporter.sources.net_dev import parse_net_dev, read_net_dev
from tests.helpers import FIXTURES

HEADER = textwrap.dedent("""\
    Inter-|   Receive                                                |  Transmit
     face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
""")  # noqa: E501


def test_columns_by_name():
    line = "  eth0: 1172118618   26382    1    2    3     4          5         6  1102943   11219    7    8    9    10      11         12"  # noqa: E501
    text = HEADER + line + "\n"
    dev = parse_net_dev(text)["eth0"]
    assert dev.receive == {"bytes": 1172118618, "packets": 26382, "errs": 1, "drop": 2, "fifo": 3, "frame": 4,
                           "compressed": 5, "multicast": 6}  # fmt: skip
    assert dev.transmit == {"bytes": 1102943, "packets": 11219, "errs": 7, "drop": 8, "fifo": 9, "colls": 10,
                            "carrier": 11, "compressed": 12}  # fmt: skip


def test_a_long_name_runs_into_the_first_counter():
    text = HEADER + "veth1234567890:123 4 0 0 0 0 0 0 5 6 0 0 0 0 0 0\n"
    dev = parse_net_dev(text)["veth1234567890"]
    assert dev.receive["bytes"] == 123 and dev.transmit["bytes"] == 5


def test_extra_columns_are_ignored():
    text = HEADER + "  eth0: " + " ".join(str(i) for i in range(18)) + "\n"
    assert parse_net_dev(text)["eth0"].transmit["compressed"] == 15


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "two header lines"),
        (HEADER + "  eth0: 1 2 3\n", "3 columns, expected 16"),
        (HEADER + "  eth0: " + " ".join(["x"] * 16) + "\n", "not an integer"),
        (HEADER + "garbage line\n", "no interface name"),
    ],
    ids=["empty", "truncated", "not-integer", "no-colon"],
)
def test_malformed(text, message):
    with pytest.raises(SourceError, match=message):
        parse_net_dev(text)


def test_header_only_is_no_interfaces():
    assert parse_net_dev(HEADER) == {}


def test_fixture_host():
    devices = read_net_dev(FIXTURES / "vm-2cpu" / "proc")
    assert list(devices) == ["lo", "ifb0", "ifb1", "eth0"]
    assert devices["lo"].receive["bytes"] == devices["lo"].transmit["bytes"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_net_dev(tmp_path)
