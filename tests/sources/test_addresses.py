import textwrap

import pytest

from exporter.sources import SourceError
from exporter.sources.addresses import parse_if_inet6, pick_source_ip
from exporter.sources.netdevice import Interface

# This machine's /proc/net/if_inet6 (2026-12-01): loopback, a link-local and a ULA on eth0.
IF_INET6 = textwrap.dedent("""\
    00000000000000000000000000000001 01 80 10 80       lo
    fe8000000000000000fc00fffe000001 04 40 20 80     eth0
    fd000000000000000000000000000002 04 40 00 82     eth0
""")


def test_parse():
    addresses = parse_if_inet6(IF_INET6)
    assert [(a.address, a.interface, a.scope) for a in addresses] == [
        ("::1", "lo", 0x10),
        ("fe80::fc:ff:fe00:1", "eth0", 0x20),
        ("fd00::2", "eth0", 0x00),
    ]


@pytest.mark.parametrize("text", ["xyz 01 80 10 80 lo\n", "0" * 32 + " 01 80 zz 80 lo\n"], ids=["short", "not-hex"])
def test_malformed(text):
    with pytest.raises(SourceError):
        parse_if_inet6(text)


LO = Interface("lo", True, True, "127.0.0.1")


@pytest.mark.parametrize(
    ("interfaces", "expected"),
    [
        ([LO, Interface("eth0", True, False, "203.0.113.5"), Interface("eth1", True, False, "10.0.0.2")], "10.0.0.2"),
        ([LO, Interface("eth0", True, False, "203.0.113.5")], "203.0.113.5"),
        ([LO, Interface("eth0", True, False, None)], "fd00::2"),
        ([LO, Interface("eth0", False, False, "10.0.0.2")], ""),
        ([LO], ""),
    ],
    ids=["private-first", "public", "ipv6", "down", "loopback-only"],
)
def test_pick(interfaces, expected):
    assert pick_source_ip(interfaces, parse_if_inet6(IF_INET6)) == expected


def test_tentative_ipv6_is_skipped():
    tentative = parse_if_inet6("20010db8000000000000000000000001 04 40 00 c0     eth0\n")
    assert pick_source_ip([Interface("eth0", True, False, None)], tentative) == ""
