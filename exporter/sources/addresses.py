"""The address an agent reports as ``source_ip``: IPv4 from the netdevice(7) ioctls, IPv6 from /proc/net/if_inet6.

/proc/net/if_inet6 (net/ipv6/addrconf.c if6_seq_show): one line per address,
``<32 hex digits> <ifindex> <prefix len> <scope> <flags> <name>``, all hex;
scope 0x00 is global (IFA_GLOBAL; link-local is 0x20, host 0x10). Tentative
(IFA_F_TENTATIVE 0x40) and DAD-failed (0x08) addresses cannot be used yet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import SourceError, read_small
from exporter.sources.netdevice import Interface, is_global_unicast, read_interfaces

# Go's net.IP.IsPrivate for IPv4 (RFC 1918), which the agent's choice follows; Python's is_private is wider.
PRIVATE_V4 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
IFA_GLOBAL = 0x00
IFA_F_UNUSABLE = 0x40 | 0x08  # tentative, dadfailed


@dataclass(frozen=True)
class Inet6:
    address: str
    interface: str
    scope: int
    flags: int


def parse_if_inet6(text: str, path: str = "/proc/net/if_inet6") -> list[Inet6]:
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6 or len(fields[0]) != 32:
            raise SourceError(path, f"expected 6 columns and a 32-digit address: {line[:60]!r}", lineno)
        try:
            address = str(ipaddress.IPv6Address(bytes.fromhex(fields[0])))
            scope, flags = int(fields[3], 16), int(fields[4], 16)
        except ValueError:
            raise SourceError(path, f"not hexadecimal: {line[:60]!r}", lineno) from None
        out.append(Inet6(address, fields[5], scope, flags))
    return out


def pick_source_ip(interfaces: Iterable[Interface], inet6: Iterable[Inet6]) -> str:
    """The first up, non-loopback address: a private IPv4, else a public IPv4, else a global IPv6, else ""."""
    up = [i for i in interfaces if i.up and not i.loopback]
    ipv4 = [i.ipv4 for i in up if i.ipv4 is not None and is_global_unicast(i.ipv4)]
    for address in ipv4:
        if any(ipaddress.IPv4Address(address) in net for net in PRIVATE_V4):
            return address
    if ipv4:
        return ipv4[0]
    names = {i.name for i in up}
    for a in inet6:
        if a.interface in names and a.scope == IFA_GLOBAL and not a.flags & IFA_F_UNUSABLE:
            return a.address
    return ""


def read_source_ip(procfs: Path) -> str:
    path = procfs / "net" / "if_inet6"
    try:
        inet6 = parse_if_inet6(read_small(str(path)), str(path))
    except FileNotFoundError:  # a kernel without IPv6
        inet6 = []
    return pick_source_ip(read_interfaces(), inet6)
