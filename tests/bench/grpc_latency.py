"""GetStatus latency against the real exporter process: p50/p90/p99 over N calls on one channel.

    .venv/bin/python tests/bench/grpc_latency.py [N] [--mtls]

Starts ``python -m exporter --grpc.listen-address=127.0.0.1:<free port>``
(with ``--mtls``: a sysmon-vm config in mtls mode with trustme certificates),
waits for an available status, then times N GetStatus calls (client-side
wall time, each a full unary round trip over loopback) and prints the
percentiles and the server's own ``response_time``.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import grpc

from exporter.grpc_compat._generated import monitoring_pb2, monitoring_pb2_grpc
from tests.helpers import free_port, run_exporter, wait_until


def mtls_setup(tmp: Path, port: int) -> tuple[list[str], grpc.ChannelCredentials]:
    import trustme

    ca = trustme.CA()
    server, client = ca.issue_cert("localhost"), ca.issue_cert("agent")
    server.cert_chain_pems[0].write_to_path(tmp / "server.pem")
    server.private_key_pem.write_to_path(tmp / "server-key.pem")
    ca.cert_pem.write_to_path(tmp / "root.pem")
    tls = {"cert_file": "server.pem", "key_file": "server-key.pem", "ca_file": "root.pem"}
    config = {"listen_addr": f"127.0.0.1:{port}", "security": {"mode": "mtls", "cert_dir": str(tmp), "tls": tls}}
    (tmp / "sysmon-vm.json").write_text(json.dumps(config))
    creds = grpc.ssl_channel_credentials(
        ca.cert_pem.bytes(), client.private_key_pem.bytes(), client.cert_chain_pems[0].bytes()
    )
    return [f"--sysmon-vm.config={tmp / 'sysmon-vm.json'}"], creds


def main(n: int, mtls: bool) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        args, creds = mtls_setup(tmp, port) if mtls else ([f"--grpc.listen-address=127.0.0.1:{port}"], None)
        with run_exporter(args, tmp):
            measure(port, creds, n)


def measure(port: int, creds: grpc.ChannelCredentials | None, n: int) -> None:
    target = f"127.0.0.1:{port}"
    options = [("grpc.ssl_target_name_override", "localhost")]
    channel = grpc.secure_channel(target, creds, options=options) if creds else grpc.insecure_channel(target)
    with channel:
        stub = monitoring_pb2_grpc.AgentServiceStub(channel)
        request = monitoring_pb2.StatusRequest(service_name="sysmon", service_type="grpc")
        wait_until(lambda: stub.GetStatus(request, timeout=5).available, what="an available status")
        for _ in range(20):  # warm-up
            stub.GetStatus(request)
        client_ns, server_ns = [], []
        for _ in range(n):
            start = time.perf_counter_ns()
            response = stub.GetStatus(request)
            client_ns.append(time.perf_counter_ns() - start)
            server_ns.append(response.response_time)
    q = statistics.quantiles(client_ns, n=100)
    mode = "mTLS" if creds else "plaintext"
    p50, p90, p99 = (q[i] / 1e6 for i in (49, 89, 98))
    print(f"GetStatus over {n} calls ({mode}): p50 {p50:.3f} ms, p90 {p90:.3f} ms, p99 {p99:.3f} ms")
    print(f"server-side response_time p50 {statistics.median(server_ns) / 1e3:.1f} us")


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a.isdigit()]
    main(numbers[0] if numbers else 100, "--mtls" in sys.argv[1:])
