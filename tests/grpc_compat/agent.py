"""What a ServiceRadar agent does with a checker, and what its core accepts of the payload."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc

from exporter.grpc_compat._generated import monitoring_pb2, monitoring_pb2_grpc
from exporter.snapshot import Clock, CpuSources, HostIdentity, Snapshot, SystemClock, take_snapshot
from tests.helpers import FIXTURES

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
VM = FIXTURES / "vm-2cpu"
HOST = HostIdentity("vm", "192.0.2.2")


COLLECTORS = frozenset({"cpu", "cpuinfo", "meminfo"})


def fixture_step(
    previous: Snapshot | None, root: Path = VM, clock: Clock | None = None, host_state: Path | None = None
) -> Snapshot:
    """A sampler step over a fixture host, with a known host identity (and, in a guest, the agent's host state)."""
    collectors = COLLECTORS | {"hoststate"} if host_state is not None else COLLECTORS
    readers = CpuSources(root / "proc", root / "sys", 100, collectors, host_state=host_state)
    return replace(take_snapshot(previous, readers, clock or SystemClock()), host=HOST)


def live_step(previous: Snapshot | None) -> Snapshot:
    """A sampler step over this machine's /proc (counters move, so usage windows exist)."""
    readers = CpuSources(Path("/proc"), Path("/sys"), 100, COLLECTORS)
    return replace(take_snapshot(previous, readers, SystemClock()), host=HOST)


def windowed_snapshot(tmp_path: Path, clock: Clock | None = None, host_state: Path | None = None) -> Snapshot:
    """vm-2cpu, then the same host one second (100 ticks) later: cpu0 25% busy, cpu1 idle."""
    later = tmp_path / "later"
    shutil.copytree(VM, later)
    stat = later / "proc" / "stat"
    stat.write_text(
        stat.read_text()
        .replace("cpu0 1052 0 563 40093 ", "cpu0 1077 0 563 40168 ")
        .replace("cpu1 2177 0 637 38806 ", "cpu1 2177 0 637 38906 ")
    )
    return fixture_step(fixture_step(None, VM, clock, host_state), later, clock, host_state)


async def agent_status_poll(channel: Any, name: str) -> tuple[Any, Any]:
    """Health.Check("") -> GetStatus (health) -> GetStatus (message forwarded), as the agent does."""
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = monitoring_pb2_grpc.AgentServiceStub(channel)
    request = monitoring_pb2.StatusRequest(service_name=name, service_type="grpc")
    return await stub.GetStatus(request), await stub.GetStatus(request)


def is_int(value: Any) -> bool:
    # json.loads turns "1.0" and "1e9" into float: only a plain integer token is an int.
    return type(value) is int


def check_timestamp(value: Any) -> None:
    assert isinstance(value, str) and RFC3339.match(value), value


def check_payload(raw: bytes, host: HostIdentity | None = None) -> dict[str, Any]:
    """Field by field, the types ServiceRadar's core insists on; returns the parsed document."""
    assert b" " not in raw, "compact JSON"
    doc = json.loads(raw)
    assert doc["available"] is True
    assert is_int(doc["response_time"]) and doc["response_time"] > 0
    status = doc["status"]
    check_timestamp(status["timestamp"])
    assert isinstance(status["host_id"], str) and status["host_id"]
    assert str(ipaddress.IPv4Address(status["host_ip"])) == status["host_ip"]
    if host is not None:
        assert (status["host_id"], status["host_ip"]) == (host.hostname, host.ipv4)
    assert status["cpus"], "at least one CPU"
    for n, cpu in enumerate(status["cpus"]):
        assert is_int(cpu["core_id"])
        assert cpu["label"] == f"CPU{cpu['core_id']}"
        assert isinstance(cpu["usage_percent"], int | float) and 0 <= cpu["usage_percent"] <= 100
        assert isinstance(cpu["frequency_hz"], int | float) and cpu["frequency_hz"] > 0
        check_timestamp(cpu["timestamp"])
        assert (cpu["host_id"], cpu["host_ip"]) == (status["host_id"], status["host_ip"])
        assert n == 0 or cpu["core_id"] > status["cpus"][n - 1]["core_id"]
    memory = status["memory"]
    assert is_int(memory["used_bytes"]) and is_int(memory["total_bytes"])
    assert 0 < memory["used_bytes"] <= memory["total_bytes"]
    check_timestamp(memory["timestamp"])
    assert (memory["host_id"], memory["host_ip"]) == (status["host_id"], status["host_ip"])
    for disk in status["disks"]:
        assert isinstance(disk["mount_point"], str) and disk["mount_point"].startswith("/")
        assert is_int(disk["used_bytes"]) and is_int(disk["total_bytes"])
        assert 0 <= disk["used_bytes"] <= disk["total_bytes"]
        check_timestamp(disk["timestamp"])
        assert (disk["host_id"], disk["host_ip"]) == (status["host_id"], status["host_ip"])
    assert status["processes"] == []
    return doc  # type: ignore[no-any-return]
