"""The sysmon ``status`` sample: exactly the keys and JSON types of ServiceRadar's Go structs (pkg/sysmon)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from exporter.grpc_compat.identity import Identity
from exporter.grpc_compat.status import Disk, SysmonSettings, build_status, service_message, skipped_interface
from exporter.snapshot import CpuSources, HostIdentity, take_snapshot
from exporter.sources.processes import Process
from tests.grpc_compat.test_push import Snapshots
from tests.helpers import FIXTURES

# Go field types as the JSON they accept: int (no fraction), float, str; a trailing "?" marks omitempty.
CPU = {"core_id": int, "label": str, "cluster?": str, "usage_percent": float, "frequency_hz?": float}
DISK = {"mount_point": str, "used_bytes": int, "total_bytes": int}
MEMORY = {"used_bytes": int, "total_bytes": int, "swap_used_bytes?": int, "swap_total_bytes?": int}
NETWORK = {k: int for k in ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "errors_in", "errors_out",
                            "drops_in", "drops_out")} | {"interface": str}  # fmt: skip
PROCESS = {"pid": int, "name": str, "cpu_usage": float, "memory_usage": int, "status": str, "start_time": str}
SAMPLE = {"timestamp": str, "host_id": str, "host_ip": str, "partition": str, "agent_id": str,
          "cpus": [CPU], "clusters?": list, "disks": [DISK], "memory": MEMORY, "network?": [NETWORK],
          "processes": [PROCESS]}  # fmt: skip


def check(value, schema, where="status"):  # type: ignore[no-untyped-def]
    """What a strict Go decoder (DisallowUnknownFields) would say: unknown keys, missing keys, wrong types."""
    if isinstance(schema, dict):
        assert isinstance(value, dict), where
        keys = {k.rstrip("?") for k in schema}
        assert set(value) <= keys, f"{where}: unknown keys {set(value) - keys}"
        for key, sub in schema.items():
            name = key.rstrip("?")
            if name not in value:
                assert key.endswith("?"), f"{where}.{name} is missing"
                continue
            check(value[name], sub, f"{where}.{name}")
    elif isinstance(schema, list):
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            if schema and schema[0] is not list:
                check(item, schema[0], f"{where}[{i}]")
    elif schema is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), where
    else:
        assert type(value) is schema, f"{where}: {type(value).__name__}, not {schema.__name__}"


ID = Identity("agent-1", "edge")
DISKS = [Disk("/", 3000, 4000)]


def test_every_section_typed_as_the_go_structs():
    snaps = Snapshots()
    prev, snap = snaps(), snaps()
    status = build_status(prev, snap, SysmonSettings(processes=True), ID, DISKS)
    check(json.loads(json.dumps(status)), SAMPLE)
    assert status["timestamp"] == "2027-01-15T08:00:01.25Z"
    assert (status["host_id"], status["host_ip"], status["agent_id"], status["partition"]) == (
        "vm-1", "192.0.2.10", "agent-1", "edge"
    )  # fmt: skip
    assert status["cpus"] == [
        {"core_id": 0, "label": "CPU0", "usage_percent": 25.0, "frequency_hz": 2.6e9},
        {"core_id": 1, "label": "CPU1", "usage_percent": 50.0},  # no frequency known: omitted
    ]
    assert status["memory"] == {"used_bytes": (8 << 30) - (2 << 30) - (1 << 20) - (1 << 30) - (1 << 20),
                                "total_bytes": 8 << 30}  # no swap: no swap keys  # fmt: skip
    assert [n["interface"] for n in status["network"]] == ["eth0"]  # lo, docker0, veth12 skipped
    assert status["network"][0]["bytes_recv"] == 1000 and status["network"][0]["drops_out"] == 4
    busy, init = status["processes"]
    assert busy["name"] == "busy" and busy["cpu_usage"] == pytest.approx(50.0)  # 0.5 s of CPU in a 1 s window
    assert init["cpu_usage"] == pytest.approx(1.0) and init["start_time"] == "2027-01-15T07:58:20Z"
    assert (busy["status"], busy["memory_usage"], busy["pid"]) == ("running", 1024, 7)


def test_usage_is_over_the_window_between_the_two_samples():
    snaps = Snapshots()
    first = snaps()
    for _ in range(9):
        snaps()
    later = snaps()
    later = replace(later, cpu_seconds={0: {"user": 0.25 * 10 + 10.0, "idle": 0.75 * 10}, 1: later.cpu_seconds[1]})
    status = build_status(first, later, SysmonSettings(), ID, DISKS)
    assert status["cpus"][0]["usage_percent"] == pytest.approx(12.5 / 20 * 100)


def test_swap_and_host_ip_fallbacks():
    snap = Snapshots()()
    mem = replace(snap.memory, swap_total_bytes=2048, swap_free_bytes=512)
    status = build_status(None, replace(snap, memory=mem, host=HostIdentity("vm-1", "")), SysmonSettings(), ID, [])
    assert status["memory"]["swap_used_bytes"] == 1536 and status["memory"]["swap_total_bytes"] == 2048
    assert status["host_ip"] == "unknown"
    assert build_status(None, replace(snap, host=None), SysmonSettings(), ID, [], "198.51.100.4")["host_ip"] == (
        "198.51.100.4"
    )


def test_sections_off():
    snap = Snapshots()()
    off = SysmonSettings(cpu=False, memory=False, disk=False, network=False, processes=False)
    status = build_status(None, snap, off, ID, DISKS)
    assert (status["cpus"], status["disks"], status["processes"]) == ([], [], [])
    assert status["memory"] == {"used_bytes": 0, "total_bytes": 0} and "network" not in status
    check(status, SAMPLE)


def test_a_pid_reused_in_the_window_counts_from_its_start():
    snaps = Snapshots()
    prev, snap = snaps(), snaps()
    reused = Process(7, "new", "running", 3.0, 10, 999, snap.timestamp_seconds - 6.0)
    status = build_status(prev, replace(snap, processes=(reused,)), SysmonSettings(processes=True), ID, [])
    assert status["processes"][0]["cpu_usage"] == pytest.approx(50.0)  # 3 s of CPU in its 6 s of life


@pytest.mark.parametrize(
    ("name", "skipped"),
    [("lo", True), ("docker0", True), ("br-1a2b", True), ("veth9", True), ("virbr0", True), ("vnet3", True),
     ("tun0", True), ("tap1", True), ("eth0", False), ("ens3", False), ("wlan0", False), ("ifb0", False)],
)  # fmt: skip
def test_interfaces_skipped_as_serviceradar_skips_them(name, skipped):
    assert skipped_interface(name) is skipped


def test_the_message_wraps_the_status():
    document = json.loads(service_message({"a": 1}, 1234))
    assert document == {"available": True, "response_time": 1234, "status": {"a": 1}}


def test_from_the_fixture_host():
    """The vm-2cpu tree read by the real snapshot: network from its /proc/net/dev, processes from /proc/1 and /2."""

    class Clock:
        def __init__(self) -> None:
            self.t = 0.0

        def wall(self) -> float:
            return 1_700_000_000.0 + self.t

        def monotonic(self) -> float:
            return self.t

    root = FIXTURES / "vm-2cpu"
    readers = CpuSources(root / "proc", root / "sys", 100, frozenset({"cpu", "cpuinfo", "meminfo", "network",
                      "processes"}), host_identity=True, host_ipv4=lambda: "192.0.2.10")  # fmt: skip
    clock = Clock()
    first = take_snapshot(None, readers, clock)
    clock.t = 1.0
    snap = take_snapshot(first, readers, clock)
    assert all(s.success for s in snap.statuses.values()), snap.statuses
    status = build_status(first, snap, SysmonSettings(processes=True), ID, [])
    check(status, SAMPLE)
    assert [n["interface"] for n in status["network"]] == ["ifb0", "ifb1", "eth0"]
    assert [p["name"] for p in status["processes"]] == ["process_api", "kthreadd"]  # by memory at equal CPU
    assert status["host_id"] == "vm"


def test_processes_are_read_only_while_the_push_wants_them():
    root = FIXTURES / "vm-2cpu"
    wanted = [False]
    readers = CpuSources(root / "proc", root / "sys", 100, frozenset({"cpu", "processes"}),
                      processes_wanted=lambda: wanted[0])  # fmt: skip
    clock = FixedClock()
    snap = take_snapshot(None, readers, clock)
    assert snap.processes == () and "processes" not in snap.statuses
    wanted[0] = True
    snap = take_snapshot(snap, readers, clock)
    assert [p.pid for p in snap.processes] == [1, 2] and snap.statuses["processes"].success


class FixedClock:
    def wall(self) -> float:
        return 1_700_000_000.0

    def monotonic(self) -> float:
        return 1.0
