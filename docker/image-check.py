"""What docker/image-test.sh checks from inside the running container (--network none):
``podman exec -i NAME /opt/sysmon-exporter/bin/python - CHECK < docker/image-check.py``.

serve     /metrics has CPU, memory, cgroup and filesystem series with those sources
          working, and the gRPC shim answers the health service and GetStatus.
syscalls  /metrics has eBPF syscall counts and the syscalls source working.
"""

import json
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

METRICS = "http://127.0.0.1:9477/metrics"


def scrape_until(want_names, working_sources):
    """Scrape until every name is served and every source succeeds (usage needs two samples),
    or 20 s have passed; returns the last body, its samples and what is still missing."""
    for _ in range(200):
        try:
            body = urllib.request.urlopen(METRICS, timeout=2).read().decode()
        except OSError:
            body = ""
        samples = [s for f in text_string_to_metric_families(body) for s in f.samples]
        names = {s.name for s in samples}
        success = {s.labels["source"]: s.value for s in samples if s.name == "sysmon_source_success"}
        missing = [n for n in want_names if n not in names]
        missing += [f"{s} success" for s in working_sources if success.get(s) != 1]
        if not missing:
            break
        time.sleep(0.1)
    return body, samples, missing


def serve():
    body, samples, missing = scrape_until(
        [
            "sysmon_cpu_frequency_hertz",
            "sysmon_cpu_usage_ratio",
            "sysmon_memory_total_bytes",
            "sysmon_cgroup_cpu_usage_seconds_total",
            "sysmon_cgroup_pressure_cpu_seconds_total",
            "sysmon_filesystem_size_bytes",
        ],
        ["cpu", "meminfo", "cgroup", "filesystem"],
    )
    print(f"image-test: scraped /metrics: {len(body)} bytes, {len(samples)} samples")
    for line in body.splitlines():
        if line.startswith(("sysmon_source_success", "sysmon_cpu_frequency_hertz", "sysmon_build_info")):
            print("  " + line)
    if missing:
        return f"image-test: missing from /metrics: {missing}"

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from exporter.grpc_compat._generated import monitoring_pb2, monitoring_pb2_grpc

    with grpc.insecure_channel("127.0.0.1:50051") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        status = monitoring_pb2_grpc.AgentServiceStub(channel).GetStatus(
            monitoring_pb2.StatusRequest(service_name="sysmon", service_type="grpc"), timeout=5
        )
    # --network none leaves no host IPv4 to report, so GetStatus may answer available=false with why.
    payload = json.loads(status.message)
    detail = f"{len(payload['status']['cpus'])} cpus" if status.available else payload["error"]
    serving = health.status == health_pb2.HealthCheckResponse.SERVING
    print(
        f"image-test: gRPC health {health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}; "
        f"GetStatus available={status.available} {detail}"
    )
    return None if serving else "image-test: the gRPC shim is not serving"


def syscalls():
    _, samples, missing = scrape_until(["sysmon_syscalls_total"], ["syscalls"])
    calls = {s.labels["syscall"]: s.value for s in samples if s.name == "sysmon_syscalls_total"}
    top = sorted(calls.items(), key=lambda kv: -kv[1])[:3]
    print(f"image-test: with CAP_BPF and CAP_PERFMON: {len(calls)} syscalls counted, most: {top}")
    return f"image-test: syscalls collector: missing {missing}" if missing else None


sys.exit({"serve": serve, "syscalls": syscalls}[sys.argv[1]]())
