"""A real grpc.aio server on port 0 and a real client doing what the ServiceRadar agent does."""

import asyncio
import json
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from exporter.collector import Renderer, default_collectors
from exporter.config import GrpcConfig
from exporter.grpc_compat._generated import monitoring_pb2, monitoring_pb2_grpc
from exporter.grpc_compat.server import HEALTH_SERVICES, start_server
from exporter.sampler import Job, Sampler
from tests.grpc_compat.agent import HOST, agent_status_poll, check_payload, live_step


def make_sampler():
    return Sampler([Job("cpu", 0.05, live_step)], Renderer(default_collectors("test")))


async def wait_for_window(sampler):
    await sampler.start()
    for _ in range(200):
        snap = sampler.latest()
        if snap is not None and snap.cpu_usage_ratio:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no usage window after 10s")


@pytest.fixture
async def served():
    sampler = make_sampler()
    server = await start_server(GrpcConfig("127.0.0.1", 0), sampler.latest)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    yield sampler, channel
    await channel.close()
    await server.stop()
    await sampler.stop()


@pytest.mark.parametrize("name", ["sysmon", "sysmon-vm"])
async def test_agent_status_poll(served, name):
    sampler, channel = served
    await wait_for_window(sampler)
    first, second = await agent_status_poll(channel, name)
    for response in (first, second):
        assert response.available
        assert (response.service_name, response.service_type) == (name, "grpc")
        assert response.response_time > 0
        doc = check_payload(response.message, HOST)
        assert doc["response_time"] <= response.response_time
    assert {c["core_id"] for c in json.loads(second.message)["status"]["cpus"]} == set(sampler.latest().cpus)


@pytest.mark.parametrize("name", ["sysmon", "sysmon-vm"])
async def test_get_results_sequence_advances(served, name):
    sampler, channel = served
    await wait_for_window(sampler)
    stub = monitoring_pb2_grpc.AgentServiceStub(channel)
    request = monitoring_pb2.ResultsRequest(service_name=name, service_type="grpc")
    sequences = []
    for _ in range(3):
        before = time.time_ns()
        response = await stub.GetResults(request)
        assert response.available and response.has_new_data
        assert (response.service_name, response.service_type) == (name, "grpc")
        assert before <= response.timestamp <= time.time_ns()
        check_payload(response.data, HOST)
        sequences.append(response.current_sequence)
    assert sequences == ["1", "2", "3"]


async def test_health_serves_every_name_the_agent_may_ask(served):
    _, channel = served
    stub = health_pb2_grpc.HealthStub(channel)
    for name in HEALTH_SERVICES:
        response = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Check(health_pb2.HealthCheckRequest(service="other"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_before_the_first_snapshot(served):
    _, channel = served  # the sampler is not started
    stub = monitoring_pb2_grpc.AgentServiceStub(channel)
    status = await stub.GetStatus(monitoring_pb2.StatusRequest(service_name="sysmon", service_type="grpc"))
    assert not status.available
    doc = json.loads(status.message)
    assert doc["available"] is False and doc["error"] == "waiting for the first sample"
    assert type(doc["response_time"]) is int and doc["response_time"] > 0
    results = await stub.GetResults(monitoring_pb2.ResultsRequest(service_name="sysmon", service_type="grpc"))
    assert not results.available and json.loads(results.data)["available"] is False


async def test_stream_results_is_unimplemented(served):
    _, channel = served
    stub = monitoring_pb2_grpc.AgentServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in stub.StreamResults(monitoring_pb2.ResultsRequest(service_name="sysmon")):
            pass
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_busy_port_is_an_oserror():
    sampler = make_sampler()
    first = await start_server(GrpcConfig("127.0.0.1", 0), sampler.latest)
    try:
        with pytest.raises(OSError):
            await start_server(GrpcConfig("127.0.0.1", first.port), sampler.latest)
    finally:
        await first.stop()


class Warming:
    """latest() as the sampler gives it after start: nothing, then one sample (no window), then a window."""

    def __init__(self, tmp_path, polls_before_window: int) -> None:
        from tests.grpc_compat.agent import fixture_step, windowed_snapshot

        self.steps = [None, fixture_step(None), windowed_snapshot(tmp_path)]
        self.polls_before_window = polls_before_window
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls > self.polls_before_window:
            return self.steps[2]
        return self.steps[min(1, self.calls // 2)]


async def test_calls_before_the_first_window_are_held_until_it_exists(tmp_path):
    latest = Warming(tmp_path, polls_before_window=5)
    server = await start_server(GrpcConfig("127.0.0.1", 0), latest, hold_seconds=30.0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            first, second = await agent_status_poll(channel, "sysmon")
            stub = monitoring_pb2_grpc.AgentServiceStub(channel)
            results = await stub.GetResults(monitoring_pb2.ResultsRequest(service_name="sysmon", service_type="grpc"))
    finally:
        await server.stop()
    assert first.available and second.available and results.available
    assert latest.calls == 5 + 1 + 2  # held through five unavailable snapshots; later calls read once each
    check_payload(first.message, HOST)


async def test_the_hold_is_bounded_and_happens_once(tmp_path):
    latest = Warming(tmp_path, polls_before_window=10**9)  # never a window
    server = await start_server(GrpcConfig("127.0.0.1", 0), latest, hold_seconds=0.2)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = monitoring_pb2_grpc.AgentServiceStub(channel)
            request = monitoring_pb2.StatusRequest(service_name="sysmon", service_type="grpc")
            held = await stub.GetStatus(request)
            calls = latest.calls
            after = await stub.GetStatus(request)
    finally:
        await server.stop()
    assert not held.available and "usage needs a window" in json.loads(held.message)["error"]
    assert calls > 1  # it was held, polling latest()
    assert not after.available and latest.calls == calls + 1  # past the bound: answered at once
