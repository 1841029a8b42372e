"""The host line (guest/downlink.py) and the ingest writing it into each guest channel without ever waiting."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from exporter.config import GuestConfig
from exporter.guest.downlink import host_line, host_lines
from exporter.guest.hoststate import parse_host_line
from exporter.guest.ingest import Ingest
from exporter.guest.lines import MAX_HOST_LINE_BYTES
from exporter.snapshot import Frequency, Snapshot, VcpuSample, VmSample
from tests.guest.test_ingest import StepClock

VM = VmSample(
    "qemu",
    4242,
    {
        0: VcpuSample(4245, 100.0, 12.5, 1, Frequency(2.6e9, "cpuinfo")),
        1: VcpuSample(4246, 50.0, 0.25, 0, None),
    },
)


def test_the_host_line_as_the_protocol_writes_it():
    assert host_line(1_700_000_000.0, 1.0, VM) == (
        b'{"v":1,"type":"host","host_wall_ns":1700000000000000000,"interval_seconds":1.0,'
        b'"vcpus":{"0":{"frequency_hz":2600000000.0,"frequency_source":"cpuinfo","steal_seconds":12.5,"host_cpu":1},'
        b'"1":{"steal_seconds":0.25,"host_cpu":0}}}\n'
    )


def test_what_the_host_sends_the_guest_reads_back():
    """The host's builder and the agent's parser: one line, both ends."""
    state = parse_host_line(host_line(1_700_000_000.0, 1.0, VM).rstrip(b"\n"))
    assert state.host_wall_ns == 1_700_000_000_000_000_000 and state.interval_seconds == 1.0
    read = {c: (v.frequency_hertz, v.frequency_source, v.steal_seconds, v.host_cpu) for c, v in state.vcpus.items()}
    assert read == {
        c: (
            None if s.frequency is None else s.frequency.hertz,
            None if s.frequency is None else s.frequency.source,
            s.wait_seconds,
            s.host_cpu,
        )
        for c, s in VM.vcpus.items()
    }


def test_a_huge_vm_keeps_its_line_under_the_bound_lowest_vcpus_first():
    big = VmSample(
        "qemu", 1, {n: VcpuSample(n, 1.0, 123.456789, n % 256, Frequency(2.6e9, "cpufreq_avg")) for n in range(4096)}
    )
    line = host_line(1_700_000_000.0, 1.0, big)
    assert len(line) <= MAX_HOST_LINE_BYTES and line.endswith(b"}\n") and line.count(b"\n") == 1
    vcpus = json.loads(line)["vcpus"]
    assert 400 < len(vcpus) < 4096
    assert len(parse_host_line(line.rstrip(b"\n")).vcpus) == len(vcpus)  # the guest takes the cut line whole
    assert list(vcpus) == [str(n) for n in range(len(vcpus))]


def test_host_lines_only_for_vms_with_known_vcpus():
    snap = Snapshot(timestamp_seconds=1_700_000_000.0, vms={"web-1": VM, "db-2": VmSample("qemu", 7, {})})
    assert host_lines(snap, 0.5) == {"web-1": host_line(1_700_000_000.0, 0.5, VM)}


class Qemu:
    """The host end of a VM's chardev as QEMU makes it: a listening unix socket at the pattern's path."""

    def __init__(self, path) -> None:
        path.parent.mkdir(parents=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.server.setblocking(False)
        self.conn: socket.socket | None = None

    async def accept(self) -> socket.socket:
        conn, _ = await asyncio.get_running_loop().sock_accept(self.server)
        conn.setblocking(False)
        self.conn = conn
        return conn

    def drain(self) -> bytes:
        """Everything the guest side can read now."""
        assert self.conn is not None
        out = b""
        while True:
            try:
                chunk = self.conn.recv(1 << 20)
            except BlockingIOError:
                return out
            if not chunk:
                return out
            out += chunk

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


@pytest.fixture
async def channel(tmp_path):
    """An ingest connected to web-1's chardev socket (--guest.socket), and that socket's QEMU end."""
    vm = "web-1"
    qemu = Qemu(tmp_path / "vms" / vm / "agent.sock")
    ingest = Ingest(GuestConfig(patterns=(str(tmp_path / "vms" / "{vm}" / "agent.sock"),)), StepClock())
    await ingest.start()
    try:
        await asyncio.wait_for(qemu.accept(), 15)
        for _ in range(500):
            if ingest.view().get(vm) is not None and ingest.view()[vm].channel_up:
                break
            await asyncio.sleep(0.01)
        assert ingest.view()[vm].channel_up
        yield ingest, qemu
    finally:
        await ingest.stop()
        qemu.close()


async def test_host_lines_reach_the_channel_whole_and_are_counted(channel):
    ingest, qemu = channel
    line = host_line(1_700_000_000.0, 1.0, VM)
    for _ in range(3):
        ingest.send_host_lines({"web-1": line, "not-connected": line})
    await asyncio.sleep(0)
    assert qemu.drain() == line * 3
    view = ingest.view()
    assert (view["web-1"].host_lines_sent_total, view["web-1"].host_lines_dropped_total) == (3, 0)
    assert "not-connected" not in view


async def test_a_guest_that_does_not_read_costs_dropped_lines_never_a_cut_line(channel):
    ingest, qemu = channel
    line = b'{"v":1,"type":"host","pad":"' + b"x" * 40_009 + b'"}\n'  # no divisor of a socket buffer
    for _ in range(100):  # nobody reads: the socket's buffer fills, then every send would block
        ingest.send_host_lines({"web-1": line})
    view = ingest.view()["web-1"]
    assert view.host_lines_dropped_total > 0
    assert view.host_lines_sent_total + view.host_lines_dropped_total <= 100
    data = qemu.drain()
    assert len(data) % len(line) != 0  # the socket took part of a line (AF_UNIX streams send what fits)
    ingest.send_host_lines({"web-1": line})  # finishes a line the socket took only part of, then this one
    data += qemu.drain()
    after = ingest.view()["web-1"]
    assert data == line * after.host_lines_sent_total  # whole lines only
    assert after.host_lines_sent_total + after.host_lines_dropped_total == 101
    assert after.host_lines_sent_total > view.host_lines_sent_total


async def test_a_line_over_the_channels_bound_is_dropped(channel):
    ingest, qemu = channel
    ingest.send_host_lines({"web-1": b"x" * 70_000 + b"\n"})
    view = ingest.view()["web-1"]
    assert (view.host_lines_sent_total, view.host_lines_dropped_total) == (0, 1)
    assert qemu.drain() == b""


async def test_a_closed_channel_is_sent_nothing(channel):
    ingest, qemu = channel
    assert qemu.conn is not None
    qemu.conn.close()  # QEMU went away
    for _ in range(500):
        if not ingest.view()["web-1"].channel_up:
            break
        await asyncio.sleep(0.01)
    ingest.send_host_lines({"web-1": b"{}\n"})
    view = ingest.view()["web-1"]
    assert not view.channel_up and view.host_lines_sent_total == 0


@pytest.mark.parametrize("vcpus", [0, 1])
def test_host_lines_of_a_snapshot_without_vms_are_empty(vcpus):
    snap = Snapshot(vms={"a": VmSample("qemu", 1, dict(list(VM.vcpus.items())[:vcpus]))})
    assert bool(host_lines(snap, 1.0)) == bool(vcpus)
