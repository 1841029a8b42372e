"""The agent never blocks its sampling on the channel: a virtio-like FIFO the host does not read."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import socket
import threading
import time
import tty
from pathlib import Path

from exporter.config import parse_agent_channel
from exporter.guest.agent import Agent, AgentSettings
from exporter.guest.channel import Writer
from exporter.snapshot import CpuSources, SystemClock
from exporter.sources.cgroup import CgroupLimits, read_cgroups
from tests.guest.support import agent_args, process
from tests.helpers import FIXTURES, wait_until

F_SETPIPE_SZ = 1031  # fcntl(2), Linux 2.6.35


def test_rows_dropped_while_the_host_does_not_read_are_reported_in_the_next_row(tmp_path):
    # A FIFO behaves like a virtio-serial port: opening waits for the other side, and a
    # full buffer blocks the writer.
    port = tmp_path / "vport0p1"
    os.mkfifo(port)
    with process(agent_args(f"virtio:{port}", "50ms", "--agent.queue-size=4"), tmp_path / "agent.log") as agent:
        fd = os.open(port, os.O_RDONLY | os.O_NONBLOCK)
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, 4096)
            time.sleep(3)  # the host is not reading: the pipe fills, then the queue
            assert agent.poll() is None
            buf = b""

            def drained_a_drop() -> bool:
                nonlocal buf
                with contextlib.suppress(BlockingIOError):
                    buf += os.read(fd, 65536)
                return any(b'"dropped":0' not in line and b'"row"' in line for line in buf.split(b"\n")[:-1])

            wait_until(drained_a_drop, what="a row that reports drops")
        finally:
            os.close(fd)
    lines = [json.loads(line) for line in buf.split(b"\n")[:-1]]
    assert lines[0]["type"] == "hello"
    rows = [m for m in lines if m["type"] == "row"]
    first_drop = next(r for r in rows if r["dropped"] > 0)
    seen = {r["seq"] for r in rows if r["seq"] < first_drop["seq"]}
    missing = first_drop["seq"] - len(seen)
    assert first_drop["dropped"] == missing > 0


def test_vsock_channel_without_a_host_keeps_retrying_and_stops_cleanly(tmp_path):
    # This machine has no vsock loopback transport: connecting to the host CID fails,
    # which is what an agent sees before the host listens.
    log = tmp_path / "agent.log"
    with process(agent_args("vsock:2:9", "50ms"), log) as agent:
        wait_until(lambda: "cannot open vsock:2:9" in log.read_text(), what="the agent to report the channel")
        assert agent.poll() is None
        agent.terminate()
        assert agent.wait(timeout=10) == 0
    assert log.read_text().count("cannot open vsock:2:9") == 1


def read_lines(conn: socket.socket, count: int) -> list[dict]:  # type: ignore[type-arg]
    buf = b""
    conn.settimeout(15)
    while buf.count(b"\n") < count:
        data = conn.recv(65536)
        assert data, "the agent closed the channel"
        buf += data
    return [json.loads(line) for line in buf.split(b"\n")[:count]]


def listen(path: Path) -> socket.socket:
    """The host's end of a unix channel, as an agent's --agent.channel=unix:PATH expects it."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(15)
    return server


def test_channel_that_goes_away_is_reopened_with_a_new_hello(tmp_path):
    path = tmp_path / "host.sock"
    server = listen(path)
    with process(agent_args(f"unix:{path}", "50ms"), tmp_path / "agent.log"):
        conn, _ = server.accept()
        first = read_lines(conn, 3)
        conn.close()
        server.close()
        path.unlink()
        server = listen(path)  # the host side comes back
        conn, _ = server.accept()
        second = read_lines(conn, 3)
        conn.close()
        server.close()
    assert [m["type"] for m in first] == ["hello", "row", "row"]
    assert second[0]["type"] == "hello" and second[0]["boot_id"] == first[0]["boot_id"]
    # The same agent process: its row numbering goes on.
    assert second[1]["seq"] > first[2]["seq"]


def test_cgroups_when_enabled_are_in_every_row(tmp_path):
    path = tmp_path / "host.sock"
    server = listen(path)
    cgroupfs = FIXTURES / "k8s-node-v2" / "sys" / "fs" / "cgroup"
    extra = ("--collector.cgroup", f"--path.cgroupfs={cgroupfs}", "--cgroup.max-depth=1")
    with process(agent_args(f"unix:{path}", "50ms", *extra), tmp_path / "agent.log"):
        conn, _ = server.accept()
        hello, row = read_lines(conn, 2)
        conn.close()
    server.close()
    assert "cgroup" in hello["capabilities"]
    tree = read_cgroups(cgroupfs, CgroupLimits(max_depth=1), 100)
    assert set(row["cgroup"]) == set(tree.stats) == {"/", "/init.scope", "/kubepods.slice", "/system.slice"}
    assert row["cgroup"]["/system.slice"] == {
        "cpu_usage_seconds": tree.stats["/system.slice"].cpu_usage_seconds,
        "memory_usage_bytes": tree.stats["/system.slice"].memory_usage_bytes,
        "pids_current": tree.stats["/system.slice"].pids_current,
    }


def test_no_cgroups_unless_enabled(tmp_path):
    path = tmp_path / "host.sock"
    server = listen(path)
    with process(agent_args(f"unix:{path}", "50ms"), tmp_path / "agent.log"):
        conn, _ = server.accept()
        hello, row = read_lines(conn, 2)
        conn.close()
    server.close()
    assert "cgroup" not in hello["capabilities"] and "cgroup" not in row


def test_a_host_that_accepts_and_closes_gets_backoff_and_one_log_line(tmp_path):
    # Such a host (one at --guest.max-vms, say) lets every connect succeed and every
    # write fail; the agent must neither reconnect in a tight loop nor log each time.
    path = tmp_path / "host.sock"
    server = listen(path)
    accepted = 0
    log = tmp_path / "agent.log"
    with process(agent_args(f"unix:{path}", "50ms", "--no-collector.cpufreq"), log):
        while accepted < 6:
            conn, _ = server.accept()
            conn.close()
            accepted += 1
    server.close()
    warnings = [line for line in log.read_text().splitlines() if "level=warn" in line]
    assert 1 <= len(warnings) <= 2, warnings  # Broken pipe, perhaps Connection reset by peer
    assert all("retrying with backoff" in line for line in warnings), warnings


def read_pty_lines(fd: int, count: int) -> list[dict]:  # type: ignore[type-arg]
    buf = b""

    def enough() -> bool:
        nonlocal buf
        with contextlib.suppress(BlockingIOError):
            buf += os.read(fd, 65536)
        return buf.count(b"\n") >= count

    wait_until(enough, what=f"{count} lines from the agent")
    return [json.loads(line) for line in buf.split(b"\n")[:count]]


def open_host_side(name: str) -> int:
    fd = os.open(name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)  # bytes as written: no echo, no line editing
    return fd


def test_a_port_whose_host_reader_comes_back_gets_a_new_hello(tmp_path, caplog):
    # A pty plays the virtio-serial port: the agent holds the master, which poll()s as
    # POLLHUP while the slave (the host's reader) is closed and POLLOUT once it is
    # reopened, without the agent's descriptor closing -- what virtio_console does.
    master, slave = os.openpty()
    name = os.ttyname(slave)
    os.close(slave)
    host = open_host_side(name)
    root = FIXTURES / "vm-2cpu"
    settings = AgentSettings(
        channel=parse_agent_channel(f"virtio:{name}"),
        interval_seconds=0.05,
        queue_size=16,
        readers=CpuSources(root / "proc", root / "sys", 100, frozenset({"cpu"})),
        dev=tmp_path,
        version="test",
    )
    stop = threading.Event()
    agent = Agent(settings, SystemClock(), stop, open_channel=lambda: Writer(fd=master))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        first = read_pty_lines(host, 3)
        assert [m["type"] for m in first] == ["hello", "row", "row"]

        caplog.set_level(logging.INFO, logger="exporter.agent")
        os.close(host)  # the exporter stops: no reader on the host side
        poller = select.poll()
        poller.register(master, select.POLLOUT)
        assert poller.poll(0)[0][1] & select.POLLHUP
        wait_until(lambda: "(POLLHUP); waiting for one" in caplog.text, what="the agent to see POLLHUP")
        host = open_host_side(name)  # the exporter is back
        assert not poller.poll(0)[0][1] & select.POLLHUP
        lines = read_pty_lines(host, 3)
        hello = next(i for i, m in enumerate(lines) if m["type"] == "hello")
        assert lines[hello]["boot_id"] == first[0]["boot_id"]
        assert all(m["type"] == "row" for m in lines[hello + 1 :])
        # Nothing reached the new reader before its hello but the tail of a row that was
        # being written when the host left (at most one line).
        assert hello <= 1
    finally:
        stop.set()
        thread.join(timeout=10)
        os.close(host)
    assert not thread.is_alive()
