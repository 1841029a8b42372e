"""IPv4 addresses of network interfaces through the netdevice(7) ioctls.

``SIOCGIFFLAGS`` and ``SIOCGIFADDR`` on an AF_INET datagram socket, one
interface at a time from ``if_nameindex(3)``: the primary IPv4 address of each
interface (the one ``ip addr`` lists first), in the network namespace of the
process. There is no procfs file with interface addresses in a simple form
(/proc/net/fib_trie is a routing-table dump), hence the ioctls.

:func:`read_host_ipv4` picks the address as ServiceRadar's Go sysmon-vm
checker does (pkg/checker/sysmonvm/service.go localIP): the first qualifying
interface address, else the local address a UDP "dial" to 8.8.8.8:80 would
use (a connect(2) on a datagram socket: no packet is sent), else
``"unknown"``. It never fails: the poller overwrites ``host_ip`` anyway, and
the Go checker answers ``available=true`` on an IPv6-only host.
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# include/uapi/linux/sockios.h and include/uapi/linux/if.h
SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
_IFREQ = struct.Struct("16s16x")  # struct ifreq: ifr_name[IFNAMSIZ], then a 24-byte union on x86_64/arm64

# Container and bridge plumbing, never the host's own address (the Go checker's lists).
SKIPPED_PREFIXES = ("docker", "br-", "veth")
DOCKER_NETWORKS = tuple(ipaddress.IPv4Network(n) for n in ("172.17.0.0/16", "172.18.0.0/16", "172.19.0.0/16"))
DIAL_TARGET = ("8.8.8.8", 80)
UNKNOWN = "unknown"


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


def pick_host_ipv4(interfaces: Iterable[Interface]) -> str | None:
    """The first up, non-loopback, global-unicast IPv4 outside Docker's default networks, on an
    interface that is not docker*, br-* or veth*; None if there is none (IPv6-only, or only bridges)."""
    for iface in interfaces:
        if not iface.up or iface.loopback or iface.ipv4 is None or iface.name.lower().startswith(SKIPPED_PREFIXES):
            continue
        if is_global_unicast(iface.ipv4) and not any(
            ipaddress.IPv4Address(iface.ipv4) in net for net in DOCKER_NETWORKS
        ):
            return iface.ipv4
    return None


def udp_source_ipv4(target: tuple[str, int] = DIAL_TARGET) -> str | None:
    """The local IPv4 the kernel would send from to ``target`` (Go's net.Dial("udp", ...)); None without a route."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(target)
            return str(sock.getsockname()[0])
    except OSError:
        return None


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


def read_host_ipv4(
    interfaces: Callable[[], list[Interface]] = read_interfaces,
    dial: Callable[[], str | None] = udp_source_ipv4,
) -> str:
    """The host's IPv4 for ServiceRadar's ``host_ip``: an interface's, else the UDP dial's, else "unknown"."""
    try:
        picked = pick_host_ipv4(interfaces())
    except OSError:  # the Go checker treats a failed interface listing as no address
        picked = None
    return picked or dial() or UNKNOWN
