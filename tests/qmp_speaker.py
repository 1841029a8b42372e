"""A QMP server on a Unix socket, speaking QEMU's protocol (docs/interop/qmp-spec.rst) for the vm source's tests.

Greeting, capabilities negotiation (commands before ``qmp_capabilities`` are
refused with ``CommandNotFound``, as QEMU's monitor/qmp.c does), then
``query-cpus-fast`` answered with the thread ids it was given, in QEMU 8.2's
reply shape; an asynchronous event is sent before each reply, as QEMU may. One
client at a time, like a QEMU ``-qmp unix:PATH,server=on`` chardev.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

GREETING = {
    "QMP": {
        "version": {"qemu": {"micro": 0, "minor": 2, "major": 8}, "package": "Debian 1:8.2+dfsg-1"},
        "capabilities": ["oob"],
    }
}
EVENT = {"timestamp": {"seconds": 1700000000, "microseconds": 1}, "event": "RTC_CHANGE", "data": {"offset": 0}}


class QmpSpeaker:
    def __init__(self, path: Path, threads: Mapping[int, int], reply: Any = None) -> None:
        """``threads``: {cpu-index: thread-id}; ``reply`` replaces query-cpus-fast's return value when given."""
        self.path, self.threads, self.reply = path, dict(threads), reply
        self.commands: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _send(self, conn: socket.socket, msg: Any) -> None:
        conn.sendall(json.dumps(msg).encode() + b"\r\n")  # QEMU ends its lines with CRLF

    def _answer(self, command: str, negotiated: bool) -> Any:
        if not negotiated and command != "qmp_capabilities":
            desc = "Expecting capabilities negotiation with 'qmp_capabilities'"
            return {"error": {"class": "CommandNotFound", "desc": desc}}
        if command == "qmp_capabilities":
            return {"return": {}}
        if command == "query-cpus-fast":
            if self.reply is not None:
                return {"return": self.reply}
            cpus = [
                {
                    "thread-id": tid,
                    "props": {"core-id": 0, "thread-id": 0, "socket-id": n},
                    "qom-path": f"/machine/unattached/device[{n}]",
                    "cpu-index": n,
                    "target": "x86_64",
                }
                for n, tid in sorted(self.threads.items())
            ]
            return {"return": cpus}
        return {"error": {"class": "CommandNotFound", "desc": f"The command {command} has not been found"}}

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self._send(conn, GREETING)
                negotiated = False
                buf = b""
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                    while b"\n" in buf:
                        line, _, buf = buf.partition(b"\n")
                        command = json.loads(line)["execute"]
                        self.commands.append(command)
                        answer = self._answer(command, negotiated)
                        negotiated = negotiated or command == "qmp_capabilities"
                        self._send(conn, EVENT)
                        self._send(conn, answer)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (closing alone does not, on Linux)
        self.sock.close()
        self._thread.join(timeout=5)
