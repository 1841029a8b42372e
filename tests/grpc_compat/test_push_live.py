"""The real exporter process pushing this machine's samples to a fake gateway (tests/grpc_compat/fake_gateway.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.grpc_compat._generated import gateway_pb2
from exporter.grpc_compat.status import skipped_interface
from exporter.sources.net_dev import read_net_dev
from tests.grpc_compat.fake_gateway import FakeGateway, Pki, Running, serve
from tests.grpc_compat.test_status import SAMPLE, check
from tests.helpers import parse_exposition, run_exporter, wait_until

pytestmark = pytest.mark.live


@contextlib.contextmanager
def gateway_thread(fake: FakeGateway, pki: Pki | None = None) -> Iterator[Running]:
    """The fake gateway on its own event loop, so the test can block on the exporter process."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    credentials = pki.server_credentials() if pki is not None else None
    running = asyncio.run_coroutine_threadsafe(serve(fake, credentials=credentials), loop).result(10)
    try:
        yield running
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def full_config(fake: FakeGateway, processes: bool = True) -> None:
    fake.config.sysmon_config.CopyFrom(
        gateway_pb2.SysmonConfig(
            enabled=True, sample_interval="200ms", collect_cpu=True, collect_memory=True, collect_disk=True,
            collect_network=True, collect_processes=processes,
        )
    )  # fmt: skip


def test_this_machine_pushed_in_plaintext(tmp_path):
    fake = FakeGateway([])
    full_config(fake)
    with gateway_thread(fake) as gw:
        args = [f"--serviceradar.gateway=127.0.0.1:{gw.port}", "--serviceradar.agent-id=live-1"]
        args.append("--sampler.interval=100ms")
        with run_exporter(args, tmp_path) as exp:
            wait_until(lambda: len(fake.streams) >= 3, timeout=60, what="three pushed samples")
            metrics = parse_exposition(exp.metrics())
            proc_pid = exp.proc.pid
            log = exp.stderr()
    status = fake.statuses()[-1]
    check(status, SAMPLE)
    assert status["host_id"] == Path("/proc/sys/kernel/hostname").read_text().strip()
    assert (status["agent_id"], status["partition"]) == ("live-1", "default")
    assert len(status["cpus"]) == len(metrics["sysmon_cpu_usage_ratio"])
    real = list(read_net_dev(Path("/proc")))
    assert [n["interface"] for n in status["network"]] == [n for n in real if not skipped_interface(n)]
    assert "lo" in real and "lo" not in {n["interface"] for n in status["network"]}
    assert proc_pid in {p["pid"] for p in status["processes"]}  # the exporter sees itself
    assert metrics["sysmon_source_success"][(("source", "processes"),)] == 1
    assert metrics["sysmon_source_success"][(("source", "network"),)] == 1
    assert (("device", "lo"),) in metrics["sysmon_network_receive_bytes_total"]  # /metrics keeps every interface
    assert log.count("in plaintext: a real ServiceRadar gateway accepts only mTLS") == 1


def test_this_machine_pushed_over_mtls(tmp_path):
    pki = Pki(tmp_path, agent="live-2", partition="lab")
    fake = FakeGateway([])
    fake.check_cn = True
    full_config(fake, processes=False)
    with gateway_thread(fake, pki) as gw:
        args = [f"--serviceradar.gateway=127.0.0.1:{gw.port}", f"--serviceradar.cert-dir={pki.cert_dir}",
                "--serviceradar.server-name=gateway.serviceradar"]  # fmt: skip
        with run_exporter(args, tmp_path) as exp:
            wait_until(lambda: len(fake.streams) >= 2, timeout=60, what="samples over mTLS")
            log = exp.stderr()
            metrics = parse_exposition(exp.metrics())
    assert (fake.hellos[0].agent_id, fake.hellos[0].partition) == ("live-2", "lab")
    assert "plaintext" not in log
    assert fake.statuses()[-1]["processes"] == []
    assert (("source", "processes"),) not in metrics["sysmon_source_success"]  # not read while not asked for


def test_a_bad_certificate_directory_stops_start_up_with_one_line(tmp_path):
    with run_exporter(
        ["--serviceradar.gateway=127.0.0.1:1", f"--serviceradar.cert-dir={tmp_path}"], tmp_path, ready=False
    ) as exp:
        assert exp.proc.wait(timeout=30) == 2
    lines = [line for line in exp.stderr().splitlines() if line.strip()]
    assert len(lines) == 1 and "--serviceradar.cert-dir" in lines[0] and "component.pem" in lines[0]


def test_without_grpcio_start_up_names_the_flag_and_the_extra(tmp_path):
    # A module named grpc that fails to import, ahead of site-packages, stands in for a missing grpcio.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "grpc.py").write_text("raise ModuleNotFoundError(\"No module named 'grpc'\", name='grpc')\n")
    args = ["--serviceradar.gateway=127.0.0.1:1", "--serviceradar.agent-id=a"]
    with run_exporter(args, tmp_path, ready=False, env={"PYTHONPATH": str(shadow)}) as exp:
        assert exp.proc.wait(timeout=15) == 2
        log = exp.stderr()
    assert log == (
        "sysmon-exporter: --serviceradar.gateway: the gateway push needs grpc; pip install 'sysmon-exporter[grpc]'\n"
    )
