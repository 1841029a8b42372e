"""Plays QEMU's part of a virtio-serial port for tests: ``python tests/relay.py HOST_SOCK GUEST_SOCK``.

The guest end of the port is a unix socket, GUEST_SOCK, that the agent writes
to (``--agent.channel=unix:GUEST_SOCK``). Once a guest is there, the relay
listens on HOST_SOCK like ``-chardev socket,path=HOST_SOCK,server=on`` for the
host-side reader (the exporter), which is how a VM's socket appears when QEMU
starts it. Bytes flow guest -> host; until a reader connects the relay does not
read from the guest, so the agent's writes block as they do on a port whose
host side is closed. When the guest end closes (the agent was killed) the relay
closes the host connection and removes HOST_SOCK, as when the VM stops, and
waits for the next guest.
"""

from __future__ import annotations

import os
import signal
import socket
import sys


def listen(path: str) -> socket.socket:
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    return s


def main(host_path: str, guest_path: str) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    guest_server = listen(guest_path)
    print("ready", flush=True)
    while True:
        guest, _ = guest_server.accept()
        host_server = listen(host_path)
        host, _ = host_server.accept()
        try:
            while True:
                data = guest.recv(65536)
                if not data:
                    break
                host.sendall(data)
        except OSError:
            pass
        finally:
            guest.close()
            host.close()
            host_server.close()
            os.unlink(host_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
