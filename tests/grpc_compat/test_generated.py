"""The committed stubs are what `make proto` generates from monitoring.proto today."""

import subprocess
import sys

import pytest

from tests.helpers import ROOT

GENERATED = ROOT / "exporter" / "grpc_compat" / "_generated"
FILES = ("monitoring_pb2.py", "monitoring_pb2.pyi", "monitoring_pb2_grpc.py")


def test_regenerating_gives_the_committed_files(tmp_path):
    # The Makefile's PROTO_CMD, writing below tmp_path instead of the source tree.
    result = subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc",
            "-Iexporter/grpc_compat/_generated=exporter/grpc_compat",
            f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}",
            "exporter/grpc_compat/monitoring.proto",
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
    assert "--python_out=. --pyi_out=. --grpc_python_out=. exporter/grpc_compat/monitoring.proto" in makefile


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
