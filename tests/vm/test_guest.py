"""The real guest (Debian bookworm under QEMU) with the agent and the in-guest exporter as deploy/ runs them."""

from __future__ import annotations

import json

import grpc
import pytest

from exporter.grpc_compat._generated import monitoring_pb2, monitoring_pb2_grpc
from exporter.snapshot import HostIdentity
from tests.grpc_compat.agent import check_payload
from tests.vm.conftest import HostExporter, metrics, series, wait_until
from tests.vm.qemu import GUEST_CPUS, Guest

pytestmark = pytest.mark.live

GUEST_HOST = HostIdentity("sysmon-guest", "10.0.2.15")  # guest/base: /etc/hostname, the user-net address


def guest_cpus(guest: Guest) -> set[str]:
    """The guest's online CPUs as its kernel lists them (/sys/devices/system/cpu/online, e.g. 0-1)."""
    out: set[str] = set()
    for part in guest.command("read /sys/devices/system/cpu/online").split(","):
        low, _, high = part.partition("-")
        out |= {str(n) for n in range(int(low), int(high or low) + 1)}
    return out


def guest_mem_total_bytes(guest: Guest) -> float:
    """MemTotal from the guest's /proc/meminfo, read in the guest by its command port."""
    name, value, unit = guest.command("read /proc/meminfo").split()
    assert (name, unit) == ("MemTotal:", "kB")
    return int(value) * 1024.0


def get_status(guest: Guest) -> monitoring_pb2.StatusResponse:
    with grpc.insecure_channel(f"127.0.0.1:{guest.grpc_port}") as channel:
        stub = monitoring_pb2_grpc.AgentServiceStub(channel)
        return stub.GetStatus(monitoring_pb2.StatusRequest(service_name="sysmon-vm", service_type="grpc"), timeout=30)


def test_host_exporter_shows_the_guests_cpus_memory_and_up(guest_up: Guest, host_exporter: HostExporter) -> None:
    vm = guest_up.name
    cpus = guest_cpus(guest_up)
    assert len(cpus) == GUEST_CPUS
    wait_until(
        lambda: (
            {dict(k)["cpu"] for k in series(host_exporter.metrics(), "sysmon_guest_cpu_seconds_total", vm=vm)} == cpus
        ),
        what=f"the host exporter to show guest CPUs {sorted(cpus)}",
    )
    host = host_exporter.metrics()
    assert series(host, "sysmon_guest_up", vm=vm) == {(("vm", vm),): 1.0}
    mem_total = guest_mem_total_bytes(guest_up)
    assert series(host, "sysmon_guest_memory_total_bytes", vm=vm) == {(("vm", vm),): mem_total}
    inside = metrics(guest_up.metrics_url)
    assert inside["sysmon_memory_total_bytes"][()] == mem_total
    assert {dict(k)["cpu"] for k in inside["sysmon_cpu_seconds_total"]} == cpus
    info = series(host, "sysmon_guest_info", vm=vm)
    assert [dict(k)["hostname"] for k in info] == [GUEST_HOST.hostname]


def test_in_guest_grpc_shim_answers_get_status(guest: Guest) -> None:
    response = wait_until(lambda: (r := get_status(guest)).available and r, what="an available GetStatus")
    assert response.service_name == "sysmon-vm"
    doc = check_payload(response.message, GUEST_HOST)
    assert {str(c["core_id"]) for c in doc["status"]["cpus"]} == guest_cpus(guest)
    assert doc["status"]["memory"]["total_bytes"] == guest_mem_total_bytes(guest)
    assert "/" in {d["mount_point"] for d in doc["status"]["disks"]}
    assert json.loads(response.message)["status"]["host_id"] == GUEST_HOST.hostname


def test_restarted_host_exporter_gets_the_guests_hello_again(guest_up: Guest, host_exporter: HostExporter) -> None:
    vm = guest_up.name
    assert series(host_exporter.metrics(), "sysmon_guest_info", vm=vm), "the first exporter has the hello"
    host_exporter.stop()
    host_exporter.start()
    # The new process knows nothing of the guest: sysmon_guest_info comes back only with a new hello,
    # which the agent sends when the port's host end reconnects.
    info = wait_until(
        lambda: series(host_exporter.metrics(), "sysmon_guest_info", vm=vm),
        what=f"sysmon_guest_info{{vm={vm!r}}} from the restarted host exporter",
    )
    assert [dict(k)["hostname"] for k in info] == [GUEST_HOST.hostname]
    wait_until(
        lambda: series(host_exporter.metrics(), "sysmon_guest_up", vm=vm) == {(("vm", vm),): 1.0},
        what="the agent's rows after the hello",
    )
    connects = series(host_exporter.metrics(), "sysmon_guest_channel_events_total", vm=vm, event="connect")
    assert connects == {(("event", "connect"), ("vm", vm)): 1.0}


@pytest.mark.stops_guest
def test_stopping_the_vm_counts_a_disconnect(guest_up: Guest, host_exporter: HostExporter) -> None:
    vm = guest_up.name
    key = (("event", "disconnect"), ("vm", vm))
    before = series(host_exporter.metrics(), "sysmon_guest_channel_events_total", vm=vm, event="disconnect")
    assert before == {key: 0.0}
    guest_up.stop()
    wait_until(
        lambda: (
            series(host_exporter.metrics(), "sysmon_guest_channel_events_total", vm=vm, event="disconnect")
            == {key: 1.0}
        ),
        what="the host exporter to count the disconnect",
    )
