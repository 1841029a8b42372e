"""IPv4 addresses of network interfaces through the netdevice(7) ioctls.

``SIOCGIFFLAGS`` and ``SIOCGIFADDR`` on an AF_INET datagram socket, one
interface at a time from ``if_nameindex(3)``: the primary IPv4 address of each
interface (the one ``ip addr`` lists first), in the network namespace of the
process. There is no procfs file with interface addresses in a simple form
(/proc/net/fib_trie is a routing-table dump), hence the ioctls.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.sources import SourceError

# include/uapi/linux/sockios.h and include/uapi/linux/if.h
SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
_IFREQ = struct.Struct("16s16x")  # struct ifreq: ifr_name[IFNAMSIZ], then a 24-byte union on x86_64/arm64

# Container and bridge plumbing, never the host's own address.
SKIPPED_PREFIXES = ("docker", "br-", "veth")


@dataclass(frozen=True)
class Interface:
    name: str
    up: bool
    loopback: bool
    ipv4: str | None


def is_global_unicast(address: str) -> bool:
    """Go's net.IP.IsGlobalUnicast for IPv4: private ranges count, link-local and broadcast do not."""
    ip = ipaddress.IPv4Address(address)
    broadcast = ipaddress.IPv4Address("255.255.255.255")
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip == broadcast)


def pick_host_ipv4(interfaces: Iterable[Interface]) -> str:
    """The first up, non-loopback, global-unicast IPv4 on an interface that is not docker*, br-* or veth*."""
    for iface in interfaces:
        if not iface.up or iface.loopback or iface.ipv4 is None or iface.name.startswith(SKIPPED_PREFIXES):
            continue
        if is_global_unicast(iface.ipv4):
            return iface.ipv4
    raise SourceError("netdevice", "no interface is up with a global-unicast IPv4 address")


def _ioctl(sock: socket.socket, request: int, name: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, _IFREQ.pack(name.encode()[:15]) + bytes(8))


def read_interfaces() -> list[Interface]:
    """Interfaces in index order with their flags and primary IPv4 address (None if they have none)."""
    out: list[Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                flags = struct.unpack_from("H", _ioctl(sock, SIOCGIFFLAGS, name), 16)[0]
            except OSError as e:
                if e.errno == errno.ENODEV:  # went away since if_nameindex
                    continue
                raise
            try:
                # struct sockaddr_in at offset 16: family (2), port (2), address (4)
                ipv4: str | None = socket.inet_ntoa(_ioctl(sock, SIOCGIFADDR, name)[20:24])
            except OSError as e:
                if e.errno not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                    raise
                ipv4 = None
            out.append(Interface(name, bool(flags & IFF_UP), bool(flags & IFF_LOOPBACK), ipv4))
    return out


def read_host_ipv4() -> str:
    return pick_host_ipv4(read_interfaces())
