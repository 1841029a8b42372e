import ipaddress
from pathlib import Path

import pytest

from exporter.sources import SourceError
from exporter.sources.netdevice import Interface, is_global_unicast, pick_host_ipv4, read_interfaces

LO = Interface("lo", True, True, "127.0.0.1")


@pytest.mark.parametrize(
    ("interfaces", "expected"),
    [
        ([LO, Interface("eth0", True, False, "192.0.2.2")], "192.0.2.2"),
        ([LO, Interface("docker0", True, False, "172.17.0.1"), Interface("ens3", True, False, "10.0.0.5")], "10.0.0.5"),
        ([Interface("br-1a2b", True, False, "172.18.0.1"), Interface("veth9", True, False, "10.1.1.1"),
          Interface("eth1", True, False, "198.51.100.4")], "198.51.100.4"),
        ([Interface("eth0", False, False, "192.0.2.2"), Interface("eth1", True, False, "192.0.2.3")], "192.0.2.3"),
        ([Interface("eth0", True, False, "169.254.1.1"), Interface("eth1", True, False, "192.0.2.3")], "192.0.2.3"),
        ([Interface("eth0", True, False, None), Interface("wg0", True, False, "100.64.0.2")], "100.64.0.2"),
    ],
    ids=["first-up", "skip-docker", "skip-bridge-and-veth", "skip-down", "skip-link-local", "skip-no-address"],
)
def test_pick_host_ipv4(interfaces, expected):
    assert pick_host_ipv4(interfaces) == expected


def test_no_candidate_is_a_source_error():
    with pytest.raises(SourceError, match="no interface is up"):
        pick_host_ipv4([LO, Interface("docker0", True, False, "172.17.0.1")])


@pytest.mark.parametrize(
    ("address", "is_global"),
    [("10.0.0.1", True), ("192.0.2.1", True), ("127.0.0.1", False), ("169.254.0.1", False),
     ("224.0.0.1", False), ("0.0.0.0", False), ("255.255.255.255", False)],
)
def test_global_unicast_as_go_counts_it(address, is_global):
    assert is_global_unicast(address) is is_global


@pytest.mark.live
def test_this_machines_interfaces():
    """Every interface in /sys/class/net is listed, lo with 127.0.0.1 and the loopback flag."""
    interfaces = read_interfaces()
    names = {i.name for i in interfaces}
    assert names == {p.name for p in Path("/sys/class/net").iterdir()}
    lo = next(i for i in interfaces if i.name == "lo")
    assert lo.loopback and lo.up and lo.ipv4 == "127.0.0.1"
    for iface in interfaces:
        if iface.ipv4 is not None:
            ipaddress.IPv4Address(iface.ipv4)
        up = int(Path(f"/sys/class/net/{iface.name}/flags").read_text(), 16) & 1
        assert iface.up == bool(up)
