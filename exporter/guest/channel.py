"""Addresses of the guest channel, and opening them.

Agent side (``--agent.channel``):

- ``virtio:/dev/virtio-ports/<name>``: a virtio-serial port (Documentation/driver-api/
  virtio/virtio.rst; the udev rule in systemd names /dev/virtio-ports/<name> after
  /sys/class/virtio-ports/vport*/name). Plain ``virtio:`` finds the port named
  :data:`DEFAULT_PORT_NAME`. While no host reader is connected, poll() reports
  POLLHUP and a write would block; once one is, POLLOUT (port_fops_poll and
  will_write_block in drivers/char/virtio_console.c). The port stays open
  across host reconnects, so the agent watches for that transition itself.
- ``vsock:<cid>:<port>`` or ``vsock:<port>`` (host CID 2), AF_VSOCK (vsock(7)).
- ``unix:<path>``.

Host side (``--guest.listen``): ``unix:<path>`` or ``vsock:<port>``. Firecracker
forwards a guest's vsock connection to port P onto the host unix socket
``<uds_path>_P`` (docs/vsock.md in firecracker-microvm/firecracker), so listening
on ``unix:<uds_path>_P`` receives Firecracker guests.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import socket
import stat
from pathlib import Path

from exporter.config import Address
from exporter.guest_state import vm_label

DEFAULT_PORT_NAME = "org.sysmon.agent"
_FIRECRACKER_PORT = re.compile(r"_\d+$")


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


class HostGone(OSError):
    """The host side of a port went away during a write; ``partial`` when part of the data was written."""

    def __init__(self, partial: bool) -> None:
        super().__init__("the host side of the port closed")
        self.partial = partial


class Writer:
    """A byte stream to the host: a socket (blocking) or a character device (non-blocking, polled).

    It is read too (the host's lines come back on the same port or socket), except a
    descriptor opened write-only (``readable=False``: a FIFO standing in for a port).
    """

    def __init__(self, sock: socket.socket | None = None, fd: int | None = None, readable: bool = True) -> None:
        self._sock, self._fd = sock, fd
        self.readable = readable
        if fd is not None:
            os.set_blocking(fd, False)  # a write never waits for a host that is not there

    def _poll(self, timeout_ms: int) -> int:
        assert self._fd is not None
        poller = select.poll()
        poller.register(self._fd, select.POLLOUT)
        events = 0
        for _, ev in poller.poll(timeout_ms):
            events |= ev
        return events

    def host_connected(self) -> bool:
        """False while poll() reports POLLHUP on the device (no host reader); a socket is always True."""
        return self._fd is None or not self._poll(0) & select.POLLHUP

    def write(self, data: bytes) -> None:
        """Write all of ``data``; :class:`HostGone` when a device's host side goes away meanwhile."""
        if self._sock is not None:
            self._sock.sendall(data)
            return
        assert self._fd is not None
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
                continue
            except BlockingIOError:
                events = self._poll(200)
            except OSError:  # a pty, say, fails writes with EIO while its other side is closed
                events = self._poll(0)
                if not events & select.POLLHUP:
                    raise
            if events & select.POLLHUP:
                raise HostGone(partial=len(view) < len(data))

    def read(self, timeout_ms: int) -> bytes | None:
        """What the host sent, after waiting up to ``timeout_ms`` for it: b"" when nothing came,
        None while no host is there (a port's POLLHUP, a pty's EIO, a socket's end or reset).

        Never blocks past the timeout, so it can run beside :meth:`write` on another thread.
        """
        fd = self._sock.fileno() if self._sock is not None else self._fd
        assert fd is not None and self.readable
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        events = 0
        for _, ev in poller.poll(timeout_ms):
            events |= ev
        if not events:
            return b""
        if not events & select.POLLIN:
            return None  # POLLHUP without data: no host reader on the port
        try:
            data = self._sock.recv(65536, socket.MSG_DONTWAIT) if self._sock is not None else os.read(fd, 65536)
        except BlockingIOError:
            return b""
        except ConnectionError:  # the host reset the socket: the writer finds out too, and reconnects
            return None
        except OSError as e:
            if e.errno == errno.EIO:  # a pty master whose other side is closed
                return None
            raise
        return data or None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        elif self._fd is not None:
            os.close(self._fd)


def open_agent_channel(address: Address, sysfs: Path, dev: Path) -> Writer:
    """Open the channel for writing (and reading the host's lines); OSError when it cannot be opened now."""
    if address.kind == "virtio":
        path = address.path or find_virtio_port(DEFAULT_PORT_NAME, sysfs, dev)
        # A port takes one open at a time (-EBUSY, port_fops_open), so the host's lines are read
        # from the descriptor the rows go out on. Anything but a character device (a FIFO in
        # tests) is opened write-only: read back, a FIFO would return the agent's own rows.
        readable = stat.S_ISCHR(os.stat(path).st_mode)
        mode = os.O_RDWR if readable else os.O_WRONLY
        return Writer(fd=os.open(path, mode | os.O_CLOEXEC | os.O_NOCTTY), readable=readable)
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
