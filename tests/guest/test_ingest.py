"""The ingest in-process: line splitting across reads, bounds, the rate limit and listener set-up."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket

import pytest

from exporter.config import GuestConfig, parse_guest_listen
from exporter.guest.ingest import Ingest
from exporter.guest.lines import TOO_LONG, LineSplitter


class StepClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now


def row(seq: int) -> bytes:
    msg = {"v": 1, "type": "row", "seq": seq, "boot_id": "b", "wall_ns": 1, "cpu": {"0": {"user": float(seq)}}}
    return json.dumps(msg).encode() + b"\n"


def test_lines_split_across_reads_and_overlong_lines_discarded_to_their_newline():
    ingest = Ingest(GuestConfig(max_line_bytes=1024, rate_limit=1000), StepClock())
    data = row(0) + b"y" * 5000 + b"\n" + row(1) + b"z" * 3000
    ingest.feed("a", data)
    vm = ingest.view()["a"]
    assert (vm.rows_total, dict(vm.malformed_rows_total)) == (2, {"too_long": 2})
    assert vm.cpu_seconds == {0: {"user": 1.0}}


def test_rate_limit_per_vm_refills_with_time():
    clock = StepClock()
    ingest = Ingest(GuestConfig(rate_limit=5, rate_burst=5), clock)
    ingest.feed("a", b"".join(row(i) for i in range(20)))
    ingest.feed("b", row(0))
    view = ingest.view()
    assert view["a"].rows_total == 5 and view["a"].malformed_rows_total == {"rate_limited": 15}
    assert view["b"].rows_total == 1 and view["b"].malformed_rows_total == {}
    clock.now += 1.0
    ingest.feed("a", row(30))
    assert ingest.view()["a"].rows_total == 6


def test_an_agents_backlog_fits_in_the_burst_then_the_rate_applies():
    """After the host comes back an agent sends its queue (120 rows by default) at once."""
    clock = StepClock()
    ingest = Ingest(GuestConfig(rate_limit=10), clock)
    ingest.feed("a", b"".join(row(i) for i in range(121)))
    assert ingest.view()["a"].rows_total == 121 and ingest.view()["a"].malformed_rows_total == {}
    ingest.feed("a", b"".join(row(i) for i in range(121, 400)))
    assert ingest.view()["a"].rows_total == 256  # the burst is spent ...
    assert ingest.view()["a"].malformed_rows_total == {"rate_limited": 400 - 256}
    clock.now += 1.0
    ingest.feed("a", b"".join(row(i) for i in range(400, 420)))
    assert ingest.view()["a"].rows_total == 256 + 10  # ... and refills at the rate


def test_dropped_rows_accumulate_across_agent_restarts():
    ingest = Ingest(GuestConfig(rate_limit=100), StepClock())

    def dropped_row(seq: int, dropped: int) -> bytes:
        return json.dumps({"v": 1, "type": "row", "seq": seq, "wall_ns": 1, "dropped": dropped}).encode() + b"\n"

    ingest.feed("a", dropped_row(10, 2) + dropped_row(11, 5) + dropped_row(0, 1) + dropped_row(1, 1))
    assert ingest.view()["a"].dropped_rows_total == 6


def test_host_lines_the_guest_rejected_accumulate_across_agent_restarts():
    ingest = Ingest(GuestConfig(rate_limit=100), StepClock())

    def rejected_row(seq: int, rejected: int) -> bytes:
        msg = {"v": 1, "type": "row", "seq": seq, "wall_ns": 1, "host_lines_rejected": rejected}
        return json.dumps(msg).encode() + b"\n"

    ingest.feed("a", rejected_row(10, 2) + rejected_row(11, 5) + rejected_row(0, 1) + rejected_row(1, 4))
    ingest.feed("b", row(0))  # an agent that does not say: none
    view = ingest.view()
    assert (view["a"].host_lines_rejected_total, view["b"].host_lines_rejected_total) == (9, 0)


@pytest.mark.parametrize(
    "literal",
    ["-1", "1.5", '"3"', "true", "1" + "0" * 400, "9" * 4299, "null"],
    ids=["negative", "fraction", "string", "bool", "huge", "too-many-digits", "null"],
)
def test_a_garbage_rejected_count_drops_the_row_and_counts_it(literal):
    ingest = Ingest(GuestConfig(rate_limit=100), StepClock())
    good = json.dumps({"v": 1, "type": "row", "seq": 1, "wall_ns": 1, "host_lines_rejected": 3}).encode()
    bad = good.replace(b'"host_lines_rejected": 3', b'"host_lines_rejected": ' + literal.encode()).replace(
        b'"seq": 1', b'"seq": 2'
    )
    assert bad != good
    ingest.feed("a", good + b"\n" + bad + b"\n")
    ingest.feed("b", row(0))
    view = ingest.view()
    assert (view["a"].rows_total, view["a"].host_lines_rejected_total) == (1, 3)
    assert view["a"].malformed_rows_total == {"invalid_row": 1}
    assert (view["b"].rows_total, view["b"].malformed_rows_total) == (1, {})


def test_max_vms_bounds_the_state():
    ingest = Ingest(GuestConfig(max_vms=2), StepClock())
    for vm in ("a", "b", "c"):
        ingest.feed(vm, row(0))
    assert set(ingest.view()) == {"a", "b"}


async def test_unix_listener_accepts_and_names_the_vm_after_the_socket(tmp_path):
    path = tmp_path / "fc-3.vsock_5000"
    ingest = Ingest(GuestConfig(listens=(parse_guest_listen(f"unix:{path}"),), rate_limit=100), StepClock())
    await ingest.start()
    try:
        _, writer = await asyncio.open_unix_connection(str(path))
        writer.write(row(0))
        await writer.drain()
        for _ in range(200):
            if ingest.view().get("fc-3") and ingest.view()["fc-3"].rows_total:
                break
            await asyncio.sleep(0.01)
        assert ingest.view()["fc-3"].up and ingest.view()["fc-3"].rows_total == 1
        writer.close()
    finally:
        await ingest.stop()
    assert not path.exists()


async def test_a_vm_has_one_connection_at_a_time_the_newest_wins(tmp_path):
    # A guest that opens many connections (each with a partial line buffered) must not
    # hold a read buffer per connection: each new one closes the one before.
    path = tmp_path / "fc-4.vsock_5000"
    ingest = Ingest(GuestConfig(listens=(parse_guest_listen(f"unix:{path}"),), rate_limit=100), StepClock())
    await ingest.start()
    conns = []
    try:
        for _ in range(20):
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b"x" * 1000)  # no newline: the host buffers it
            await writer.drain()
            conns.append((reader, writer))
        for reader, _ in conns[:-1]:
            assert await asyncio.wait_for(reader.read(), 15) == b""  # closed by the host
        last = conns[-1][1]
        last.write(b"\n" + row(0))
        await last.drain()
        for _ in range(500):
            vm = ingest.view()["fc-4"]
            if vm.rows_total and vm.channel_events_total.get("disconnect") == 19:
                break
            await asyncio.sleep(0.01)
        vm = ingest.view()["fc-4"]
        assert vm.up and vm.rows_total == 1
        events = vm.channel_events_total
        assert (events["connect"], events["disconnect"]) == (20, 19), events
        assert vm.malformed_rows_total == {"invalid_json": 1}  # the partial line on the connection that stayed
    finally:
        for _, writer in conns:
            writer.close()
        await ingest.stop()


async def test_a_connector_out_of_descriptors_counts_connect_failed_and_keeps_trying(tmp_path):
    (tmp_path / "vms" / "q-1").mkdir(parents=True)
    pattern = f"{tmp_path}/vms/{{vm}}/agent.sock"
    ingest = Ingest(GuestConfig(patterns=(pattern,), rescan_seconds=0.05), StepClock())
    ingest.rescan()  # once (its connector starts on the next await): the connector itself has to keep trying
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)  # a new descriptor takes the lowest free number
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # socket() now fails with EMFILE

    def failed() -> int:
        vm = ingest.view().get("q-1")
        return vm.channel_events_total.get("connect_failed", 0) if vm else 0

    try:
        for _ in range(500):
            if failed() >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        await ingest.stop()
    assert failed() >= 3


@pytest.mark.live
async def test_vsock_listener_starts_and_stops():
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close()
    except OSError as e:
        pytest.skip(f"AF_VSOCK sockets unavailable: {e.strerror}")
    port = 40000 + os.getpid() % 20000
    ingest = Ingest(GuestConfig(listens=(parse_guest_listen(f"vsock:{port}"),)), StepClock())
    await ingest.start()
    try:
        assert ingest.view() == {}
    finally:
        await ingest.stop()


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 10_000], ids=lambda n: f"chunk{n}")
def test_line_splitter_is_independent_of_read_sizes(chunk):
    data = b"a\n" + b"b" * 20 + b"\n\nccc\n" + b"d" * 17 + b"\n" + b"e" * 40 + b"\nf\npartial"
    lines = LineSplitter(16)
    out = [x for i in range(0, len(data), chunk) for x in lines.feed(data[i : i + chunk])]
    assert out == [b"a", TOO_LONG, b"", b"ccc", TOO_LONG, TOO_LONG, b"f"]
    assert bytes(lines.buf) == b"partial"
