"""Addresses of the guest channel, and opening them.

Agent side (``--agent.channel``):

- ``virtio:/dev/virtio-ports/<name>``: a virtio-serial port (Documentation/driver-api/
  virtio/virtio.rst; the udev rule in systemd names /dev/virtio-ports/<name> after
  /sys/class/virtio-ports/vport*/name). Plain ``virtio:`` finds the port named
  :data:`DEFAULT_PORT_NAME`. A write blocks while nothing on the host reads the port.
- ``vsock:<cid>:<port>`` or ``vsock:<port>`` (host CID 2), AF_VSOCK (vsock(7)).
- ``unix:<path>``.

Host side (``--guest.listen``): ``unix:<path>`` or ``vsock:<port>``. Firecracker
forwards a guest's vsock connection to port P onto the host unix socket
``<uds_path>_P`` (docs/vsock.md in firecracker-microvm/firecracker), so listening
on ``unix:<uds_path>_P`` receives Firecracker guests.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
from pathlib import Path

from exporter.config import Address

DEFAULT_PORT_NAME = "org.sysmon.agent"
_VM_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_FIRECRACKER_PORT = re.compile(r"_\d+$")


def vm_label(text: str) -> str:
    """A bounded label value from a host-side name (path capture, socket name or CID)."""
    return _VM_NAME.sub("_", text)[:64] or "_"


def vm_of_unix_listener(path: Path) -> str:
    """The VM a unix listener belongs to: its file name without Firecracker's ``_<port>`` and extension."""
    name = _FIRECRACKER_PORT.sub("", path.name)
    return vm_label(name.split(".", 1)[0] or name)


def find_virtio_port(name: str, sysfs: Path, dev: Path) -> Path:
    """/dev/vportNpM for the virtio-serial port called ``name`` (/sys/class/virtio-ports/*/name)."""
    ports = sysfs / "class" / "virtio-ports"
    for entry in sorted(ports.glob("*/name")):
        if entry.read_text().strip() == name:
            return dev / entry.parent.name
    raise FileNotFoundError(2, f"no virtio-serial port named {name}", str(ports))


class Writer:
    """A blocking byte stream to the host: a socket or a character device."""

    def __init__(self, sock: socket.socket | None = None, fd: int | None = None) -> None:
        self._sock, self._fd = sock, fd

    def write(self, data: bytes) -> None:
        if self._sock is not None:
            self._sock.sendall(data)
            return
        assert self._fd is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        elif self._fd is not None:
            os.close(self._fd)


def open_agent_channel(address: Address, sysfs: Path, dev: Path) -> Writer:
    """Open the channel for writing; OSError when it cannot be opened now."""
    if address.kind == "virtio":
        path = address.path or find_virtio_port(DEFAULT_PORT_NAME, sysfs, dev)
        return Writer(fd=os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY))
    if address.kind == "vsock":
        sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        target: tuple[int, int] | str = (address.cid, address.port)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = str(address.path)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return Writer(sock=sock)


def _in_use(path: Path) -> bool:
    """Whether something still accepts on a unix socket path (a stale one refuses)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def listen_socket(address: Address, backlog: int = 64) -> socket.socket:
    """A bound, listening, non-blocking socket; a stale unix socket file (nobody accepting) is replaced."""
    if address.kind == "vsock":
        sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        bind: tuple[int, int] | str = (address.cid, address.port)
    else:
        assert address.path is not None
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(address.path.lstat().st_mode) and not _in_use(address.path):
                address.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        bind = str(address.path)
    try:
        sock.bind(bind)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, e.strerror, str(address)) from None
    sock.setblocking(False)
    return sock
