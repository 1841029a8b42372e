"""Host lines from the host end of a channel, through a real agent process and its state file, to a real
in-guest exporter's /metrics: the frequency the host sent, with source="host", and the host's steal."""

from __future__ import annotations

import json
import threading

from tests.guest.support import agent_args, process, series
from tests.guest.test_agent import listen
from tests.helpers import FIXTURES, run_exporter, wait_until

VM = FIXTURES / "vm-2cpu"  # the guest the exporter reads: 2 CPUs, no cpufreq


def host_line(steal: float) -> bytes:
    vcpus = {
        "0": {"frequency_hz": 3.3e9, "frequency_source": "cpufreq", "steal_seconds": steal, "host_cpu": 1},
        "1": {"frequency_hz": 3.1e9, "frequency_source": "cpufreq", "steal_seconds": steal / 4, "host_cpu": 0},
    }
    msg = {"v": 1, "type": "host", "host_wall_ns": 1, "interval_seconds": 1.0, "vcpus": vcpus}
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def test_the_hosts_frequency_reaches_the_guests_metrics(tmp_path):
    path = tmp_path / "host.sock"
    state = tmp_path / "run" / "host.json"
    server = listen(path)
    stop = threading.Event()
    with process(agent_args(f"unix:{path}", "200ms", f"--agent.host-state={state}"), tmp_path / "agent.log"):
        conn, _ = server.accept()

        def send() -> None:  # the host: one line per (shortened) interval, never reading the rows
            steal = 0.0
            while not stop.is_set():
                steal += 0.5
                conn.sendall(host_line(steal))
                stop.wait(0.2)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            args = [f"--path.procfs={VM / 'proc'}", f"--path.sysfs={VM / 'sys'}", f"--path.host-state={state}"]
            with run_exporter([*args, "--no-collector.perf", "--no-collector.cgroup"], tmp_path) as exp:

                def host_sourced() -> bool:
                    return bool(series(exp, "sysmon_cpu_frequency_source_info", cpu="0", source="host")) and bool(
                        series(exp, "sysmon_cpu_frequency_source_info", cpu="1", source="host")
                    )

                wait_until(host_sourced, what='source="host" for both CPUs')
                freq = {dict(k)["cpu"]: v for k, v in series(exp, "sysmon_cpu_frequency_hertz").items()}
                first = series(exp, "sysmon_cpu_host_steal_seconds_total", cpu="0")
                wait_until(
                    lambda: series(exp, "sysmon_cpu_host_steal_seconds_total", cpu="0") != first,
                    what="the host's steal to advance",
                )
                assert series(exp, "sysmon_source_success", source="hoststate") == {(("source", "hoststate"),): 1.0}
        finally:
            stop.set()
            sender.join(timeout=5)
            conn.close()
    server.close()
    assert freq == {"0": 3.3e9, "1": 3.1e9}
    assert next(iter(first.values())) > 0
