"""Inside a guest, ServiceRadar's ``frequency_hz`` is the host's frequency once the agent keeps a fresh host state."""

from __future__ import annotations

import json

import grpc

from exporter.config import GrpcConfig
from exporter.grpc_compat._generated import monitoring_pb2, monitoring_pb2_grpc
from exporter.grpc_compat.server import start_server
from exporter.guest.hoststate import parse_host_line, state_bytes, write_state
from exporter.snapshot import Snapshot
from tests.grpc_compat.agent import check_payload, windowed_snapshot

NOW = 1_700_000_000.0


class FixedClock:
    def wall(self) -> float:
        return NOW

    def monotonic(self) -> float:
        return 100.0


async def get_status(snap: Snapshot) -> dict:  # type: ignore[type-arg]
    server = await start_server(GrpcConfig("127.0.0.1", 0), lambda: snap)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = monitoring_pb2_grpc.AgentServiceStub(channel)
            request = monitoring_pb2.StatusRequest(service_name="sysmon-vm", service_type="grpc")
            response = await stub.GetStatus(request)
    finally:
        await server.stop()
    assert response.available
    return check_payload(response.message)


async def test_get_status_reports_the_hosts_frequency(tmp_path):
    path = tmp_path / "host.json"
    line = {
        "v": 1,
        "type": "host",
        "host_wall_ns": 1_699_999_999_000_000_000,
        "interval_seconds": 1.0,
        "vcpus": {
            "0": {"frequency_hz": 3.4e9, "frequency_source": "cpufreq", "steal_seconds": 1.5, "host_cpu": 5},
            "1": {"steal_seconds": 0.5, "host_cpu": 2},
        },
    }
    write_state(path, state_bytes(parse_host_line(json.dumps(line).encode()), NOW - 1.0))
    cpus = {
        c["core_id"]: c for c in (await get_status(windowed_snapshot(tmp_path, FixedClock(), path)))["status"]["cpus"]
    }
    assert (cpus[0]["frequency_hz"], cpus[0]["frequency_source"]) == (3.4e9, "host")
    assert (cpus[1]["frequency_hz"], cpus[1]["frequency_source"]) == (2599998000.0, "cpuinfo")


async def test_get_status_without_a_host_state_reports_cpuinfo(tmp_path):
    cpus = (await get_status(windowed_snapshot(tmp_path, FixedClock(), tmp_path / "absent.json")))["status"]["cpus"]
    assert [(c["frequency_hz"], c["frequency_source"]) for c in cpus] == [(2599998000.0, "cpuinfo")] * 2
