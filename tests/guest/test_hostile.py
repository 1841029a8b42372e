"""Hostile guest rows through the relay, as a real Prometheus scrapes: each is a counted reason, nothing more.

One VM's "guest" is this test writing into the relay's guest end; another VM
runs the real agent through its own relay. The exporter records rows into a
directory where a symlink to a file outside was planted. After every hostile
row the connection is still the first one, later lines are still read, the
other VM keeps updating, promtool parses /metrics, and Prometheus never saw
the target down.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.guest.support import agent_args, events, process, relay, series, value
from tests.helpers import promql, require_binary, run_exporter, run_prometheus, wait_until

HELLO = b'{"v":1,"type":"hello","agent_version":"9","boot_id":"b00t","hostname":"bad-1"}\n'


def row(seq: int, **fields: object) -> dict[str, object]:
    return {
        "v": 1,
        "type": "row",
        "seq": seq,
        "boot_id": "b00t",
        "wall_ns": time.time_ns(),
        "mono_ns": 1,
        "dropped": 0,
        "cpu": {"0": {"user": 1.0 + seq, "idle": 2.0}},
        "mem": {"total_bytes": 1024},
        **fields,
    }


def line(msg: dict[str, object]) -> bytes:
    return json.dumps(msg).encode() + b"\n"


def raw_row(seq: int, key: str, literal: str) -> bytes:
    """A row whose ``key`` holds ``literal`` as written (JSON no encoder would write)."""
    msg = row(seq)
    msg.pop(key, None)
    return line(msg)[:-2] + f',"{key}":{literal}}}\n'.encode()


# (what a guest sent, the reason it must count as)
HOSTILE = [
    (raw_row(1, "dropped", "1" + "0" * 400), "invalid_row"),  # once took every scrape down (up=0)
    (raw_row(2, "dropped", "9" * 4299), "invalid_row"),  # two of these froze every VM's series
    (raw_row(3, "dropped", "9" * 4299), "invalid_row"),
    (b'{"v":1,"type":"hello","agent_version":"9","boot_id":"b00t","hostname":"\\ud800"}\n', "invalid_utf8"),
    (line(row(4, cgroup={"/system.slice\ud800": {"pids_current": 1}})), "invalid_utf8"),
    (line(row(5, cpu={"²": {"user": 1.0}})), "invalid_row"),  # once killed the connection
    (line(row(6, cpu={"0": {"user": 1.8e308 * 10}})), "invalid_row"),  # json.dumps writes Infinity
    (raw_row(7, "mem", '{"total_bytes": 1.8e309}'), "invalid_row"),
    (raw_row(8, "cpu", '{"0": {"user": NaN}}'), "invalid_row"),
    (raw_row(9, "dropped", "-1"), "invalid_row"),
    (raw_row(10, "seq", str(2**64)), "invalid_row"),
    (raw_row(10, "host_lines_rejected", "-1"), "invalid_row"),
    (raw_row(10, "host_lines_rejected", "9" * 4299), "invalid_row"),
]


def counted(exp, vm: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    found = series(exp, "sysmon_guest_malformed_rows_total", vm=vm)
    return {dict(k)["reason"]: v for k, v in found.items() if v}


def test_hostile_rows_are_counted_and_the_target_stays_up(tmp_path):
    promtool = require_binary("promtool")
    vms, records = tmp_path / "vms", tmp_path / "records"
    vms.mkdir()
    records.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    (records / "bad.jsonl").symlink_to(outside)
    (vms / "stray.sock").write_text("not a socket\n")  # matches the pattern, is no VM
    args = [
        f"--guest.socket={vms}/{{vm}}.sock",
        "--guest.rescan-interval=100ms",
        "--guest.silent-window=700ms",
        "--sampler.interval=100ms",
        f"--guest.record={records}",
    ]
    with (
        run_exporter(args, tmp_path) as exp,
        run_prometheus([f"127.0.0.1:{exp.port}"], tmp_path, scrape_interval="200ms") as prom,
        relay(vms / "good.sock", tmp_path / "good-guest.sock", tmp_path / "good-relay.log"),
        process(agent_args(f"unix:{tmp_path / 'good-guest.sock'}", "200ms"), tmp_path / "agent.log") as agent,
        relay(vms / "bad.sock", tmp_path / "bad-guest.sock", tmp_path / "bad-relay.log"),
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as bad,
    ):
        wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="good") >= 1, what="rows from the agent")
        # The rescan that found good.sock also globbed stray.sock.
        assert {dict(k)["vm"] for k in series(exp, "sysmon_guest_channel_up")} <= {"good", "bad"}

        bad.connect(str(tmp_path / "bad-guest.sock"))
        wait_until(lambda: value(exp, "sysmon_guest_channel_up", vm="bad") == 1, what="the relay to connect")
        # A row before any hello is accepted; who the guest is comes with its hello.
        bad.sendall(line(row(0)))
        wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="bad") == 1, what="the row before hello")
        assert value(exp, "sysmon_guest_up", vm="bad") == 1
        assert series(exp, "sysmon_guest_info", vm="bad") == {}

        expected: dict[str, float] = {}
        for hostile, reason in HOSTILE:
            bad.sendall(hostile)
            expected[reason] = expected.get(reason, 0) + 1
            wait_until(lambda: counted(exp, "bad") == expected, what=f"{hostile[:60]!r} counted as {reason}")
        bad.sendall(HELLO + line(row(11)))
        wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="bad") == 2, what="the row after them")
        info = series(exp, "sysmon_guest_info", vm="bad")
        assert [dict(k)["hostname"] for k in info] == ["bad-1"]
        ev = events(exp, "bad")
        assert (ev["connect"], ev["disconnect"]) == (1, 0), ev  # the connection survived every row
        assert value(exp, "sysmon_guest_cpu_seconds_total", vm="bad", mode="user") == 12.0
        assert value(exp, "sysmon_guest_render_failures_total") == 0

        # Recording refused the planted link and counted both rows; the agent's rows were recorded.
        assert value(exp, "sysmon_guest_unrecorded_rows_total", vm="bad") == 2
        assert outside.read_text() == "precious\n"
        wait_until(lambda: (records / "good.jsonl").stat().st_size > 0, what="the agent's rows recorded")

        good_rows = value(exp, "sysmon_guest_rows_total", vm="good")
        wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="good") > good_rows + 2, what="good rows")

        body = exp.metrics()
        check = subprocess.run([promtool, "check", "metrics"], input=body.encode(), capture_output=True, timeout=60)
        assert check.returncode == 0, check.stderr.decode()

        # Prometheus scraped after the last hostile row and never saw the target down.
        wait_until(
            lambda: promql(prom, 'sysmon_guest_rows_total{vm="bad"} == 2'), timeout=30, what="a scrape after them"
        )
        up = promql(prom, 'min_over_time(up{job="sysmon"}[5m])')
        assert [r["value"][1] for r in up] == ["1"], up

        # The agent stopped: the channel stays connected, sysmon_guest_up goes to 0 after the silent window.
        agent.send_signal(signal.SIGSTOP)
        wait_until(lambda: value(exp, "sysmon_guest_up", vm="good") == 0, what="up to drop")
        assert value(exp, "sysmon_guest_channel_up", vm="good") == 1
        agent.send_signal(signal.SIGCONT)
        wait_until(lambda: value(exp, "sysmon_guest_up", vm="good") == 1, what="up again")
    assert Path(outside).read_text() == "precious\n"
