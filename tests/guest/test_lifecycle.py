"""Agent and exporter as real processes joined by a relay playing QEMU's chardev: the lifecycle."""

from __future__ import annotations

import signal

from exporter.guest_state import EVENTS
from tests.guest.support import agent_args, events, process, relay, series, value
from tests.helpers import FIXTURES, run_exporter, wait_until

INTERVAL = "200ms"


def exporter_args(pattern: str) -> list[str]:
    return [
        f"--guest.socket={pattern}",
        "--guest.rescan-interval=100ms",
        "--guest.silent-window=700ms",
        "--sampler.interval=100ms",
    ]


def test_series_and_lifecycle_events_in_order(tmp_path):
    vm_dir = tmp_path / "vms" / "web-1"
    vm_dir.mkdir(parents=True)
    host_sock, guest_sock = vm_dir / "agent.sock", tmp_path / "guest.sock"
    with run_exporter(exporter_args(str(tmp_path / "vms" / "{vm}" / "agent.sock")), tmp_path) as exp:
        # The VM's directory is there but QEMU (the relay) has not made the socket yet.
        wait_until(lambda: events(exp, "web-1").get("connect_failed", 0) >= 1, what="connect_failed")
        ev = events(exp, "web-1")
        assert ev.keys() == set(EVENTS), ev  # every event exported from the start, at 0
        assert {event for event, n in ev.items() if n} == {"connect_failed"}
        assert value(exp, "sysmon_guest_up", vm="web-1") == 0
        assert value(exp, "sysmon_guest_channel_up", vm="web-1") == 0

        with relay(host_sock, guest_sock, tmp_path / "relay.log"):
            cgroupfs = FIXTURES / "k8s-node-v2" / "sys" / "fs" / "cgroup"
            cgroups = ("--collector.cgroup", f"--path.cgroupfs={cgroupfs}", "--cgroup.max-depth=1")
            with process(agent_args(f"unix:{guest_sock}", INTERVAL, *cgroups), tmp_path / "agent1.log") as agent:
                wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="web-1") >= 2, what="rows from web-1")
                ev = events(exp, "web-1")
                assert (ev["connect"], ev["first_byte"], ev.get("disconnect", 0), ev.get("silent_window", 0)) == (
                    1,
                    1,
                    0,
                    0,
                ), ev
                assert value(exp, "sysmon_guest_up", vm="web-1") == 1
                cpus = {dict(k)["cpu"] for k in series(exp, "sysmon_guest_cpu_seconds_total", vm="web-1")}
                assert cpus and cpus == {dict(k)["cpu"] for k in series(exp, "sysmon_cpu_seconds_total")}
                assert value(exp, "sysmon_guest_memory_total_bytes", vm="web-1") > 0
                pids = series(exp, "sysmon_guest_cgroup_pids_current", vm="web-1")
                assert {dict(k)["cgroup"]: v for k, v in pids.items()} == {
                    "/init.scope": 1,
                    "/kubepods.slice": 43,
                    "/system.slice": 61,
                }
                info = series(exp, "sysmon_guest_info", vm="web-1")
                assert len(info) == 1 and dict(next(iter(info)))["agent_version"]

                agent.send_signal(signal.SIGSTOP)
                wait_until(lambda: events(exp, "web-1").get("silent_window", 0) == 1, what="silent_window")
                # Connected but silent: the channel is up, the guest is not.
                wait_until(lambda: value(exp, "sysmon_guest_up", vm="web-1") == 0, what="up to drop while silent")
                assert value(exp, "sysmon_guest_channel_up", vm="web-1") == 1
                assert events(exp, "web-1").get("disconnect", 0) == 0

                agent.kill()  # SIGKILL reaches a stopped process
                agent.wait()
                wait_until(lambda: events(exp, "web-1").get("disconnect", 0) == 1, what="disconnect")
                wait_until(lambda: value(exp, "sysmon_guest_up", vm="web-1") == 0, what="up to drop")
                ev = events(exp, "web-1")
                assert (ev["connect"], ev["first_byte"], ev["silent_window"]) == (1, 1, 1), ev
                failed_before_restart = ev["connect_failed"]

            rows = value(exp, "sysmon_guest_rows_total", vm="web-1")
            with process(agent_args(f"unix:{guest_sock}", INTERVAL), tmp_path / "agent2.log"):
                wait_until(lambda: events(exp, "web-1").get("connect", 0) == 2, what="connect again")
                wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="web-1") > rows + 1, what="new rows")
                ev = events(exp, "web-1")
                assert ev["first_byte"] == 2 and ev["disconnect"] == 1 and ev["silent_window"] == 1, ev
                assert ev["connect_failed"] >= failed_before_restart
                assert value(exp, "sysmon_guest_up", vm="web-1") == 1

        # The VM's directory goes away: so do its series.
        for p in (host_sock, vm_dir):
            if p.exists():
                p.unlink() if p.is_socket() else p.rmdir()
        wait_until(lambda: not series(exp, "sysmon_guest_up"), what="web-1 to leave")
