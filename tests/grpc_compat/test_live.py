"""The real exporter process with the gRPC shim on, polled by a real client as the agent polls it."""

import json
import signal
import socket
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from exporter.grpc_compat._generated import monitoring_pb2, monitoring_pb2_grpc
from exporter.snapshot import HostIdentity
from exporter.sources.netdevice import read_host_ipv4
from tests.grpc_compat.agent import check_payload
from tests.helpers import free_port, parse_exposition, run_exporter, wait_until

pytestmark = pytest.mark.live


def poll(port: int, name: str) -> tuple[bool, bytes]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = monitoring_pb2_grpc.AgentServiceStub(channel)
        request = monitoring_pb2.StatusRequest(service_name=name, service_type="grpc")
        first = stub.GetStatus(request, timeout=5)
        second = stub.GetStatus(request, timeout=5)
        assert second.service_name == name
        return first.available and second.available, second.message


def test_exporter_answers_the_agent_with_this_hosts_data(tmp_path):
    port = free_port()
    with run_exporter([f"--grpc.listen-address=127.0.0.1:{port}", "--sampler.interval=100ms"], tmp_path) as exp:
        wait_until(lambda: poll(port, "sysmon")[0], what="an available status")
        for name in ("sysmon", "sysmon-vm"):
            available, message = poll(port, name)
            assert available
            host = HostIdentity(Path("/proc/sys/kernel/hostname").read_text().strip(), read_host_ipv4())
            doc = check_payload(message, host)
        metrics = parse_exposition(exp.metrics())
        log = exp.stderr()
    cpus = {dict(k)["cpu"] for k in metrics["sysmon_cpu_usage_ratio"]}
    assert {str(c["core_id"]) for c in doc["status"]["cpus"]} == cpus
    assert metrics["sysmon_source_success"][(("source", "host"),)] == 1.0
    assert doc["status"]["memory"]["total_bytes"] == metrics["sysmon_memory_total_bytes"][()]
    sizes = {dict(k)["mountpoint"]: v for k, v in metrics["sysmon_filesystem_size_bytes"].items()}
    assert {d["mount_point"]: d["total_bytes"] for d in doc["status"]["disks"]} == sizes
    assert "/" in sizes
    assert f"serving monitoring.AgentService on 127.0.0.1:{port} (plaintext)" in log


def test_sysmon_vm_config_clamps_with_one_warning(tmp_path):
    port = free_port()
    config = tmp_path / "sysmon-vm.json"
    config.write_text(json.dumps({"listen_addr": f"127.0.0.1:{port}", "sample_interval": "10ms"}))
    with run_exporter([f"--sysmon-vm.config={config}"], tmp_path) as exp:
        wait_until(lambda: poll(port, "sysmon-vm")[0], what="an available status")
        log = exp.stderr()
    assert log.count("sample_interval 10ms is outside 50ms..5s; using 50ms") == 1
    assert "sampling every 0.05s" in log


def test_busy_grpc_port_stops_start_up_with_one_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with run_exporter([f"--grpc.listen-address=127.0.0.1:{port}"], tmp_path, ready=False) as exp:
            assert exp.proc.wait(timeout=15) == 1
            log = exp.stderr()
    assert "--grpc.listen-address: cannot listen on 127.0.0.1:" in log


def mtls_config(tmp_path: Path, port: int) -> tuple[Path, grpc.ChannelCredentials]:
    """A sysmon-vm checker config in mtls mode with test certificates, and an agent's credentials for it."""
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("localhost")
    server.cert_chain_pems[0].write_to_path(tmp_path / "server.pem")
    server.private_key_pem.write_to_path(tmp_path / "server-key.pem")
    ca.cert_pem.write_to_path(tmp_path / "root.pem")
    client = ca.issue_cert("agent")
    config = tmp_path / "sysmon-vm.json"
    tls = {"cert_file": "server.pem", "key_file": "server-key.pem", "ca_file": "root.pem"}
    security = {"mode": "mtls", "cert_dir": str(tmp_path), "server_name": "localhost", "role": "checker", "tls": tls}
    doc = {"listen_addr": f"127.0.0.1:{port}", "sample_interval": "100ms", "security": security}
    config.write_text(json.dumps(doc))
    creds = grpc.ssl_channel_credentials(
        ca.cert_pem.bytes(), client.private_key_pem.bytes(), client.cert_chain_pems[0].bytes()
    )
    return config, creds


def test_a_socket_dir_left_by_sigkill_is_removed_at_the_next_start(tmp_path):
    port = free_port()
    config, _ = mtls_config(tmp_path, port)
    base = tmp_path / "run"
    base.mkdir()
    env = {"RUNTIME_DIRECTORY": str(base)}
    with run_exporter([f"--sysmon-vm.config={config}"], tmp_path, env=env) as exp:
        left = list(base.glob(f"sysmon-grpc-{exp.proc.pid}-*"))
        assert len(left) == 1
        exp.proc.send_signal(signal.SIGKILL)
        exp.proc.wait()
    assert left[0].exists()
    with run_exporter([f"--sysmon-vm.config={config}"], tmp_path, env=env) as exp:
        assert not left[0].exists()
        assert len(list(base.glob("sysmon-grpc-*"))) == 1
        assert f"removed {left[0]}, left by process" in exp.stderr()


def test_mtls_from_the_checkers_config(tmp_path):
    port = free_port()
    config, creds = mtls_config(tmp_path, port)

    def poll_tls() -> bool:
        options = [("grpc.ssl_target_name_override", "localhost")]
        with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=options) as channel:
            stub = monitoring_pb2_grpc.AgentServiceStub(channel)
            request = monitoring_pb2.StatusRequest(service_name="sysmon", service_type="grpc")
            response = stub.GetStatus(request, timeout=5)
            return response.available and bool(check_payload(response.message))

    with run_exporter([f"--sysmon-vm.config={config}"], tmp_path) as exp:
        wait_until(poll_tls, what="an available status over mTLS")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as plain, pytest.raises(grpc.RpcError):
            monitoring_pb2_grpc.AgentServiceStub(plain).GetStatus(monitoring_pb2.StatusRequest(), timeout=5)
        log = exp.stderr()
    assert f"serving monitoring.AgentService on 127.0.0.1:{port} (mTLS, TLS 1.3)" in log


def test_without_grpcio_start_up_names_the_flag_and_the_extra(tmp_path):
    # A module named grpc that fails to import, ahead of site-packages, stands in for a missing grpcio.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "grpc.py").write_text("raise ModuleNotFoundError(\"No module named 'grpc'\", name='grpc')\n")
    env = {"PYTHONPATH": str(shadow)}
    with run_exporter([f"--grpc.listen-address=127.0.0.1:{free_port()}"], tmp_path, ready=False, env=env) as exp:
        assert exp.proc.wait(timeout=15) == 2
        log = exp.stderr()
    assert log == (
        "sysmon-exporter: --grpc.listen-address: the gRPC shim needs grpc; pip install 'sysmon-exporter[grpc]'\n"
    )


def test_bad_pem_stops_start_up_with_one_line_naming_the_file(tmp_path):
    for name in ("server.pem", "server-key.pem", "root.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    tls = {"cert_file": "server.pem", "key_file": "server-key.pem", "ca_file": "root.pem"}
    config = tmp_path / "sysmon-vm.json"
    security = {"mode": "mtls", "cert_dir": str(tmp_path), "tls": tls}
    doc = {"listen_addr": f"127.0.0.1:{free_port()}", "security": security}
    config.write_text(json.dumps(doc))
    with run_exporter([f"--sysmon-vm.config={config}"], tmp_path, ready=False) as exp:
        assert exp.proc.wait(timeout=15) == 2
        errors = [line for line in exp.stderr().splitlines() if "level=error" in line]
    assert len(errors) == 1
    assert f"{tmp_path / 'server-key.pem'}: not a matching PEM certificate and key" in errors[0]


def test_no_poll_after_start_is_answered_unavailable(tmp_path):
    """Polled as soon as the port is open, before a usage window exists: held until it does, never available=false."""
    port = free_port()
    with run_exporter([f"--grpc.listen-address=127.0.0.1:{port}", "--sampler.interval=1s"], tmp_path, ready=False):
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, what="the port")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = monitoring_pb2_grpc.AgentServiceStub(channel)
            request = monitoring_pb2.StatusRequest(service_name="sysmon", service_type="grpc")
            answers = [stub.GetStatus(request, timeout=10) for _ in range(3)]
    assert [a.available for a in answers] == [True, True, True], [a.message for a in answers]
    check_payload(answers[0].message)
