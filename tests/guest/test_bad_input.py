"""Guests that send garbage, huge lines, floods, lies about their name or a skewed clock.

The test plays QEMU for each VM (it listens on the chardev socket the exporter
connects to) and writes what a misbehaving guest would. A second, well-behaved
guest runs the real agent through the relay; its series must keep updating.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

from exporter.guest_state import REASONS
from tests.guest.support import agent_args, process, relay, rss_bytes, series, value
from tests.helpers import run_exporter, wait_until

MIB = 1 << 20


class FakeQemu:
    """A chardev socket (server=on) for one VM; ``send`` writes as the guest."""

    def __init__(self, path: Path) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        self.server.settimeout(15)
        self.conn, _ = self.server.accept()

    def send(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


def row(seq: int, wall_ns: int | None = None, **extra: object) -> bytes:
    msg = {
        "v": 1,
        "type": "row",
        "seq": seq,
        "boot_id": "b00t",
        "wall_ns": time.time_ns() if wall_ns is None else wall_ns,
        "mono_ns": 1,
        "dropped": 0,
        "cpu": {"0": {"user": 1.0 + seq, "idle": 2.0}},
        "mem": {"total_bytes": 1024},
        **extra,
    }
    return json.dumps(msg).encode() + b"\n"


def malformed(exp, vm: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Every reason's count; each reason is exported from the start, at 0."""
    counts = {dict(k)["reason"]: v for k, v in series(exp, "sysmon_guest_malformed_rows_total", vm=vm).items()}
    assert counts.keys() == set(REASONS), counts
    return counts


def counted(exp, vm: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {reason: n for reason, n in malformed(exp, vm).items() if n}


def test_bad_guest_touches_only_its_own_series_and_memory_stays_flat(tmp_path, capsys):
    vms = tmp_path / "vms"
    vms.mkdir()
    bad = FakeQemu(vms / "bad.sock")
    args = [
        f"--guest.socket={vms}/{{vm}}.sock",
        "--guest.rescan-interval=100ms",
        "--sampler.interval=100ms",
        "--guest.rate-limit=50",
        "--guest.max-line-bytes=65536",
    ]
    try:
        with run_exporter(args, tmp_path) as exp:
            bad.accept()
            bad.send(b'{"v":1,"type":"hello","agent_version":"9","boot_id":"x","hostname":"good","vm":"good"}\n')
            bad.send(row(0))
            wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="bad") == 1, what="the first bad row")
            rss_start = rss_bytes(exp.proc.pid)

            # 50 MB without a newline, then the newline and a good row.
            chunk = b"x" * MIB
            for _ in range(50):
                bad.send(chunk)
            bad.send(b"\n" + row(1))
            wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="bad") == 2, what="the row after 50 MB")
            assert counted(exp, "bad") == {"too_long": 1}
            rss_after_long = rss_bytes(exp.proc.pid)

            bad.send(b'{"v":1,"type":"row",\n')  # malformed JSON
            bad.send(b'{"v":1,"hostname":"\xff\xfe"}\n')  # invalid UTF-8
            bad.send(b"[" * 60000 + b"]" * 60 + b"\n")  # deeply nested (below the line limit)
            bad.send(b'{"v":7,"type":"row"}\n')
            bad.send(b'{"v":1,"type":"row","seq":"x","wall_ns":1}\n')
            wait_until(lambda: len(counted(exp, "bad")) == 6, what="each reason counted")
            assert counted(exp, "bad") == {
                "too_long": 1,
                "invalid_json": 1,
                "invalid_utf8": 1,
                "too_deep": 1,
                "unsupported_version": 1,
                "invalid_row": 1,
            }

            # A guest clock 30 s ahead.
            bad.send(row(2, wall_ns=time.time_ns() + 30_000_000_000))
            wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="bad") == 3, what="the skewed row")
            assert 29 < value(exp, "sysmon_guest_clock_offset_seconds", vm="bad") < 31

            # A second guest with the real agent; then the first one floods.
            guest_sock = tmp_path / "good-guest.sock"
            with (
                relay(vms / "good.sock", guest_sock, tmp_path / "relay.log"),
                process(agent_args(f"unix:{guest_sock}", "200ms"), tmp_path / "agent.log"),
            ):
                wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="good") >= 1, what="good rows")
                flood_line = row(3, vm="good") * 2000
                stop = threading.Event()

                def flood() -> None:
                    while not stop.is_set():
                        bad.send(flood_line)

                flooder = threading.Thread(target=flood, daemon=True)
                flooder.start()
                try:
                    wait_until(lambda: malformed(exp, "bad").get("rate_limited", 0) > 100_000, what="a flood")
                    good_rows = value(exp, "sysmon_guest_rows_total", vm="good")
                    wait_until(
                        lambda: value(exp, "sysmon_guest_rows_total", vm="good") >= good_rows + 3,
                        what="the good guest to keep updating during the flood",
                    )
                    rss_after_flood = rss_bytes(exp.proc.pid)
                finally:
                    stop.set()
                    flooder.join()
                good = counted(exp, "good")
                assert good == {}, good
                # The flood claimed vm "good": the label stayed the host's name for the socket.
                assert {dict(k)["vm"] for k in series(exp, "sysmon_guest_up")} == {"bad", "good"}
                info = {dict(k)["vm"]: dict(k)["hostname"] for k in series(exp, "sysmon_guest_info")}
                assert info["bad"] == "good" and info["good"] != "good"
            assert exp.proc.poll() is None
    finally:
        bad.close()
    with capsys.disabled():
        print(
            f"\nexporter RSS: start {rss_start / MIB:.1f} MiB, after a 50 MB line {rss_after_long / MIB:.1f} MiB, "
            f"after the flood {rss_after_flood / MIB:.1f} MiB"
        )
    assert rss_after_long - rss_start < 16 * MIB
    assert rss_after_flood - rss_start < 16 * MIB
