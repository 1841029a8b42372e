"""The vCPU thread ids of a QEMU VM from its QMP socket: ``query-cpus-fast``.

QMP (docs/interop/qmp-spec.rst): on connect the server sends a greeting
``{"QMP": {"version": ..., "capabilities": [...]}}``; the client leaves
capabilities negotiation with ``{"execute": "qmp_capabilities"}`` (answered
``{"return": {}}``) and may then run commands. Asynchronous events
(``{"event": ...}``) can arrive at any time and are skipped. ``query-cpus-fast``
(QEMU 2.12+) returns one object per vCPU with ``cpu-index`` and ``thread-id``
(the host tid of its thread, qapi/machine.json CpuInfoFast).

A QMP chardev serves one client at a time, so the connection is short: one
query, then closed, under a timeout. Replies longer than :data:`MAX_REPLY`
are refused.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from exporter.sources import SourceError

MAX_REPLY = 1 << 20
TIMEOUT_SECONDS = 1.0


class _Lines:
    def __init__(self, sock: socket.socket, path: str) -> None:
        self.sock, self.path, self.buf = sock, path, b""

    def message(self) -> dict[str, Any]:
        """The next JSON object that is not an asynchronous event."""
        while True:
            while b"\n" not in self.buf:
                if len(self.buf) > MAX_REPLY:
                    raise SourceError(self.path, f"QMP reply longer than {MAX_REPLY} bytes")
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise SourceError(self.path, "QMP closed the connection")
                self.buf += chunk
            line, _, self.buf = self.buf.partition(b"\n")
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                raise SourceError(self.path, f"QMP sent a line that is not JSON: {line[:60]!r}") from None
            if not isinstance(msg, dict):
                raise SourceError(self.path, f"QMP sent {type(msg).__name__}, not an object")
            if "event" not in msg:
                return msg


def _execute(sock: socket.socket, lines: _Lines, command: str) -> Any:
    sock.sendall(json.dumps({"execute": command}).encode() + b"\n")
    reply = lines.message()
    if "error" in reply:
        error = reply["error"]
        desc = error.get("desc", error) if isinstance(error, dict) else error
        raise SourceError(lines.path, f"QMP {command}: {desc}")
    if "return" not in reply:
        raise SourceError(lines.path, f"QMP {command}: no return in {str(reply)[:60]}")
    return reply["return"]


def parse_cpus_fast(value: Any, path: str) -> dict[int, int]:
    """{cpu-index: thread-id} from the return value of query-cpus-fast."""
    if not isinstance(value, list):
        raise SourceError(path, "query-cpus-fast did not return a list")
    out: dict[int, int] = {}
    for cpu in value:
        index = cpu.get("cpu-index") if isinstance(cpu, dict) else None
        tid = cpu.get("thread-id") if isinstance(cpu, dict) else None
        if type(index) is not int or type(tid) is not int or not 0 <= index < 4096 or tid <= 0:
            raise SourceError(path, f"query-cpus-fast entry without an integer cpu-index and thread-id: {cpu!r:.80}")
        out[index] = tid
    return out


def query_vcpu_threads(path: str, timeout: float = TIMEOUT_SECONDS) -> dict[int, int]:
    """{vCPU: tid} from the QMP socket at ``path``; OSError when it cannot be reached, SourceError for bad replies."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as e:
            e.filename = path
            raise
        lines = _Lines(sock, path)
        greeting = lines.message()
        if "QMP" not in greeting:
            raise SourceError(path, f"no QMP greeting: {str(greeting)[:60]}")
        _execute(sock, lines, "qmp_capabilities")
        return parse_cpus_fast(_execute(sock, lines, "query-cpus-fast"), path)
