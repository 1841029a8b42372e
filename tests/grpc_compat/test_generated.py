"""The committed stubs are what `make proto` generates from monitoring.proto and gateway.proto today."""

import subprocess
import sys

import pytest

from tests.helpers import ROOT

GENERATED = ROOT / "exporter" / "grpc_compat" / "_generated"
FILES = tuple(f"{stem}{ext}" for stem in ("monitoring", "gateway") for ext in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))


def test_regenerating_gives_the_committed_files(tmp_path):
    # The Makefile's PROTO_CMD, writing below tmp_path instead of the source tree.
    result = subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc",
            "-Iexporter/grpc_compat/_generated=exporter/grpc_compat",
            f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
            "exporter/grpc_compat/monitoring.proto", "exporter/grpc_compat/gateway.proto",
        ],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in FILES:
        fresh = (tmp_path / "exporter" / "grpc_compat" / "_generated" / name).read_text()
        assert fresh == (GENERATED / name).read_text(), f"{name} is stale; run make proto and commit"


def test_the_makefile_runs_the_same_command():
    makefile = (ROOT / "Makefile").read_text()
    assert "-Iexporter/grpc_compat/_generated=exporter/grpc_compat" in makefile
    assert (
        "--python_out=. --pyi_out=. --grpc_python_out=. exporter/grpc_compat/monitoring.proto "
        "exporter/grpc_compat/gateway.proto" in makefile
    )


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        ("StatusRequest", {"service_name": 1, "service_type": 2, "agent_id": 3, "poller_id": 4, "details": 5,
                           "port": 6}),
        ("StatusResponse", {"available": 1, "message": 2, "service_name": 3, "service_type": 4,
                            "response_time": 5, "agent_id": 6, "poller_id": 7}),
        ("ResultsRequest", {"service_name": 1, "service_type": 2, "agent_id": 3, "poller_id": 4, "details": 5,
                            "last_sequence": 6, "completion_status": 7}),
        ("ResultsResponse", {"available": 1, "data": 2, "service_name": 3, "service_type": 4, "response_time": 5,
                             "agent_id": 6, "poller_id": 7, "timestamp": 8, "current_sequence": 9,
                             "has_new_data": 10, "sweep_completion": 11}),
        ("ResultsChunk", {"data": 1, "is_final": 2, "chunk_index": 3, "total_chunks": 4, "current_sequence": 5,
                          "timestamp": 6}),
        ("SweepCompletionStatus", {"status": 1, "completion_time": 2, "target_sequence": 3, "total_targets": 4,
                                   "completed_targets": 5, "error_message": 6}),
    ],
)  # fmt: skip
def test_wire_numbers(message, fields):
    from exporter.grpc_compat._generated import monitoring_pb2

    descriptor = monitoring_pb2.DESCRIPTOR.message_types_by_name[message]
    assert {f.name: f.number for f in descriptor.fields} == fields
    assert monitoring_pb2.DESCRIPTOR.package == "monitoring"


def test_service_methods():
    from exporter.grpc_compat._generated import monitoring_pb2

    service = monitoring_pb2.DESCRIPTOR.services_by_name["AgentService"]
    assert service.full_name == "monitoring.AgentService"
    methods = {m.name: (m.input_type.name, m.output_type.name, m.server_streaming) for m in service.methods}
    assert methods == {
        "GetStatus": ("StatusRequest", "StatusResponse", False),
        "GetResults": ("ResultsRequest", "ResultsResponse", False),
        "StreamResults": ("ResultsRequest", "ResultsChunk", True),
    }


# restated from ServiceRadar v1.2.27 proto/monitoring.proto (carverauto/serviceradar)
@pytest.mark.parametrize(
    ("message", "fields"),
    [
        ("AgentHelloRequest", {"agent_id": 1, "version": 2, "capabilities": 3, "hostname": 4, "os": 5, "arch": 6,
                               "partition": 7, "config_version": 8, "labels": 9, "config_source": 10}),
        ("AgentHelloResponse", {"accepted": 1, "agent_id": 2, "message": 3, "gateway_id": 4, "server_time": 5,
                                "heartbeat_interval_sec": 6, "config_outdated": 7}),
        ("AgentConfigRequest", {"agent_id": 1, "config_version": 2}),
        ("AgentConfigResponse", {"not_modified": 1, "config_version": 2, "config_timestamp": 3,
                                 "heartbeat_interval_sec": 4, "config_poll_interval_sec": 5, "checks": 6,
                                 "config_json": 7, "sysmon_config": 8, "snmp_config": 9, "plugin_config": 11}),
        ("SysmonConfig", {"enabled": 1, "sample_interval": 2, "collect_cpu": 3, "collect_memory": 4,
                          "collect_disk": 5, "collect_network": 6, "collect_processes": 7, "disk_paths": 8,
                          "thresholds": 10, "profile_id": 11, "profile_name": 12, "config_source": 13,
                          "disk_exclude_paths": 14}),
        ("GatewayServiceStatus", {"service_name": 1, "available": 2, "message": 3, "service_type": 4,
                                  "response_time": 5, "agent_id": 6, "gateway_id": 7, "partition": 8, "source": 9,
                                  "kv_store_id": 10}),
        ("GatewayStatusRequest", {"services": 1, "gateway_id": 2, "agent_id": 3, "timestamp": 4, "partition": 5,
                                  "source_ip": 6, "kv_store_id": 7, "config_source": 10, "version": 11,
                                  "hostname": 12, "os": 13, "arch": 14}),
        ("GatewayStatusChunk", {"services": 1, "gateway_id": 2, "agent_id": 3, "timestamp": 4, "partition": 5,
                                "source_ip": 6, "is_final": 7, "chunk_index": 8, "total_chunks": 9,
                                "kv_store_id": 10, "config_source": 13, "version": 14, "hostname": 15, "os": 16,
                                "arch": 17}),
        ("GatewayStatusResponse", {"received": 1}),
    ],
)  # fmt: skip
def test_gateway_wire_numbers(message, fields):
    from exporter.grpc_compat._generated import gateway_pb2

    descriptor = gateway_pb2.DESCRIPTOR.message_types_by_name[message]
    assert {f.name: f.number for f in descriptor.fields} == fields
    assert gateway_pb2.DESCRIPTOR.package == "monitoring"


def test_gateway_service_methods():
    from exporter.grpc_compat._generated import gateway_pb2

    service = gateway_pb2.DESCRIPTOR.services_by_name["AgentGatewayService"]
    assert service.full_name == "monitoring.AgentGatewayService"
    methods = {m.name: (m.input_type.name, m.output_type.name, m.client_streaming) for m in service.methods}
    assert methods == {
        "Hello": ("AgentHelloRequest", "AgentHelloResponse", False),
        "GetConfig": ("AgentConfigRequest", "AgentConfigResponse", False),
        "PushStatus": ("GatewayStatusRequest", "GatewayStatusResponse", False),
        "StreamStatus": ("GatewayStatusChunk", "GatewayStatusResponse", True),
    }


def test_both_files_load_into_one_pool_without_a_repeated_name():
    """Both files declare package monitoring: a message name in both would clash in the default pool."""
    from google.protobuf import descriptor_pool

    from exporter.grpc_compat._generated import gateway_pb2, monitoring_pb2

    legacy = set(monitoring_pb2.DESCRIPTOR.message_types_by_name) | set(monitoring_pb2.DESCRIPTOR.services_by_name)
    gateway = set(gateway_pb2.DESCRIPTOR.message_types_by_name) | set(gateway_pb2.DESCRIPTOR.services_by_name)
    assert legacy & gateway == set()
    pool = descriptor_pool.Default()
    assert pool.FindMessageTypeByName("monitoring.StatusRequest").file.name.endswith("monitoring.proto")
    assert pool.FindMessageTypeByName("monitoring.GatewayStatusChunk").file.name.endswith("gateway.proto")
