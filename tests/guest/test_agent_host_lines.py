"""The agent reads the host's lines from its channel and keeps the latest in the state file."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from exporter.config import parse_agent_channel
from exporter.guest.agent import Agent, AgentSettings
from exporter.guest.channel import Writer
from exporter.guest.hoststate import read_host_state
from exporter.guest.lines import MAX_HOST_LINE_BYTES
from exporter.snapshot import CpuSources, SystemClock
from tests.guest.support import agent_args, process
from tests.guest.test_agent import listen
from tests.helpers import FIXTURES, wait_until

VM = FIXTURES / "vm-2cpu"


def host_line(steal: float, freq: float = 2.6e9) -> bytes:
    vcpus = {
        "0": {"frequency_hz": freq, "frequency_source": "cpufreq", "steal_seconds": steal, "host_cpu": 3},
        "1": {"steal_seconds": steal / 2, "host_cpu": 0},
    }
    msg = {"v": 1, "type": "host", "host_wall_ns": 1_700_000_000_000_000_000, "interval_seconds": 1.0, "vcpus": vcpus}
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


class Rows:
    """The lines an agent wrote on a host connection, read as they come."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buf = b""
        conn.settimeout(15)

    def next_row(self) -> dict:  # type: ignore[type-arg]
        while True:
            while b"\n" not in self.buf:
                data = self.conn.recv(65536)
                assert data, "the agent closed the channel"
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if msg["type"] == "row":
                return msg  # type: ignore[no-any-return]


def test_the_latest_valid_host_line_reaches_the_state_file_and_bad_ones_are_counted(tmp_path):
    path = tmp_path / "host.sock"
    state = tmp_path / "run" / "sysmon" / "host.json"  # its directory is created by the agent
    server = listen(path)
    log = tmp_path / "agent.log"
    with process(agent_args(f"unix:{path}", "50ms", f"--agent.host-state={state}"), log):
        conn, _ = server.accept()
        rows = Rows(conn)
        assert rows.next_row()["host_lines_rejected"] == 0
        conn.sendall(b'{"v":1,"type":"host"\n')  # truncated
        conn.sendall(host_line(float("nan")))  # json.dumps writes NaN, which no JSON parser should take
        conn.sendall(b"x" * (MAX_HOST_LINE_BYTES + 1) + b"\n")  # oversized
        conn.sendall(host_line(10.0) + host_line(12.5, 2.8e9))  # two good ones at once: the last is kept
        wait_until(lambda: rows.next_row()["host_lines_rejected"] == 3, what="a row counting 3 rejected host lines")
        kept = wait_until(lambda: read_host_state(state), what="the state file")
        conn.close()
    server.close()
    assert stat.S_IMODE(state.stat().st_mode) == 0o644
    assert kept.vcpus[0].frequency_hertz == 2.8e9 and kept.vcpus[0].frequency_source == "cpufreq"
    assert kept.vcpus[0].steal_seconds == 12.5 and kept.vcpus[1].steal_seconds == 6.25
    assert kept.vcpus[0].host_cpu == 3 and kept.vcpus[1].frequency_hertz is None
    assert kept.received_wall_seconds is not None
    warnings = [line for line in log.read_text().splitlines() if "host line dropped" in line]
    assert len(warnings) == 3, warnings  # the first of each reason: invalid_json, invalid_host_line, too_long


def test_a_state_file_that_cannot_be_written_is_logged_once_and_rows_go_on(tmp_path):
    path = tmp_path / "host.sock"
    (tmp_path / "run").write_text("a file where the directory should be")
    server = listen(path)
    log = tmp_path / "agent.log"
    with process(agent_args(f"unix:{path}", "50ms", f"--agent.host-state={tmp_path}/run/host.json"), log) as agent:
        conn, _ = server.accept()
        rows = Rows(conn)
        for n in range(5):
            conn.sendall(host_line(float(n)))
            rows.next_row()
        wait_until(lambda: "cannot write the host state" in log.read_text(), what="the agent to log the failure")
        first = rows.next_row()["seq"]
        assert rows.next_row()["seq"] > first
        assert agent.poll() is None
        conn.close()
    server.close()
    assert log.read_text().count("cannot write the host state") == 1


@contextlib.contextmanager
def running(agent: Agent) -> Iterator[None]:
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        agent.stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def in_process_agent(tmp_path: Path, agent_end: socket.socket, state: Path) -> Agent:
    settings = AgentSettings(
        channel=parse_agent_channel(f"unix:{tmp_path}/unused.sock"),
        interval_seconds=0.05,
        queue_size=16,
        readers=CpuSources(VM / "proc", VM / "sys", 100, frozenset({"cpu"})),
        dev=tmp_path,
        version="test",
        host_state=state,
    )
    return Agent(settings, SystemClock(), threading.Event(), open_channel=lambda: Writer(sock=agent_end))


def test_a_state_write_that_never_returns_does_not_stall_the_rows(tmp_path):
    # The agent's temporary file is a FIFO nobody reads: opening it for writing blocks in
    # the kernel, as a write to a hung filesystem would. Rows must keep coming.
    host_end, agent_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    state = tmp_path / "host.json"
    fifo = tmp_path / f".host.json.{os.getpid()}.tmp"
    os.mkfifo(fifo)
    agent = in_process_agent(tmp_path, agent_end, state)
    with running(agent):
        rows = Rows(host_end)
        rows.next_row()
        host_end.sendall(host_line(1.0))
        wait_until(lambda: agent.host_lines.accepted == 1, what="the agent to take the host line")
        seq = rows.next_row()["seq"]
        later = [rows.next_row()["seq"] for _ in range(10)]  # while the state write is stuck
        assert later == list(range(seq + 1, seq + 11))
        # Now let the write through: what went into the FIFO is the state the agent kept.
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            data = wait_until(lambda: os.read(fd, 65536), what="the stuck state write to go on")
        finally:
            os.close(fd)
    host_end.close()
    assert json.loads(data)["vcpus"]["0"]["steal_seconds"] == 1.0


def steal_in(state: Path) -> float | None:
    kept = read_host_state(state)
    return None if kept is None else kept.vcpus[0].steal_seconds


def test_host_lines_are_read_while_the_host_does_not_read_rows(tmp_path):
    # A host that writes its lines but never reads: the agent's writer blocks on a full
    # socket buffer, and the reader keeps the state file current all the same.
    host_end, agent_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    agent_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    state = tmp_path / "host.json"
    agent = in_process_agent(tmp_path, agent_end, state)
    with running(agent):

        def writer_blocked() -> bool:
            # The writer is blocked once the queue stops draining: rows pile up and are dropped.
            return agent.outbox.dropped > 0

        wait_until(writer_blocked, what="the agent's writer to block on the unread channel")
        for n in range(3):
            host_end.sendall(host_line(float(n)))
            wait_until(lambda n=n: steal_in(state) == n, what=f"host line {n} in the state file")
    host_end.close()


def test_reading_a_channel_never_waits_past_its_timeout_and_says_when_the_host_is_gone():
    host_end, agent_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    writer = Writer(sock=agent_end)
    assert writer.read(0) == b""  # nothing sent yet
    host_end.sendall(b"line\n")
    assert writer.read(1000) == b"line\n"
    writer.write(b"a row the host never reads\n")
    host_end.close()  # with unread data: the agent's end is reset
    assert writer.read(1000) is None
    writer.close()

    master, slave = os.openpty()  # a port whose host reader is gone: POLLHUP, or EIO on read
    os.close(slave)
    pty = Writer(fd=master)
    assert pty.read(1000) is None
    pty.close()
