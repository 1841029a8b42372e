"""--guest.listen sockets keep accepting after the exporter runs out of file descriptors."""

from __future__ import annotations

import json
import os
import resource
import socket
import time

from tests.guest.support import value
from tests.helpers import run_exporter, wait_until

VMS = 12


def row() -> bytes:
    msg = {"v": 1, "type": "row", "seq": 0, "boot_id": "b", "wall_ns": time.time_ns(), "cpu": {"0": {"user": 1.0}}}
    return json.dumps(msg).encode() + b"\n"


def test_listeners_survive_running_out_of_file_descriptors(tmp_path):
    paths = [tmp_path / f"fc-{i}.vsock_5000" for i in range(VMS)]
    args = [*(f"--guest.listen=unix:{p}" for p in paths), "--guest.rescan-interval=100ms", "--no-collector.cgroup"]
    with run_exporter(args, tmp_path) as exp:
        pid = exp.proc.pid
        # Room for two more descriptors: most of the guests below cannot be accepted.
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (len(os.listdir(f"/proc/{pid}/fd")) + 2, hard))
        first = []
        for p in paths:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(str(p))  # queued in the listener's backlog even when accept fails
            first.append(c)
        wait_until(lambda: "cannot accept" in exp.log.read_text(), what="accept to fail")
        for c in first:
            c.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        again = []
        try:
            for p in paths:
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.connect(str(p))
                c.sendall(row())
                again.append(c)
            for i in range(VMS):
                wait_until(lambda i=i: value(exp, "sysmon_guest_rows_total", vm=f"fc-{i}") >= 1, what=f"fc-{i} rows")
        finally:
            for c in again:
                c.close()
        assert exp.proc.poll() is None
        assert exp.log.read_text().count("cannot accept") == 1, exp.log.read_text()
