"""Recording over the Firecracker vsock path (``<uds>_<port>``, over AF_UNIX), signing and verifying."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exporter.guest.record import Recorder
from tests.guest.support import agent_args, process, run_cli, value
from tests.helpers import run_exporter, wait_until


def keypair(tmp_path: Path) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / "sign.pem", tmp_path / "sign.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def verify(path: Path, public: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("verify-record", str(path), f"--public-key={public}")


def test_firecracker_socket_record_rotate_sign_verify_and_tamper(tmp_path):
    private, public = keypair(tmp_path)
    records = tmp_path / "records"
    records.mkdir()
    uds = tmp_path / "fc-7.vsock_5000"  # Firecracker: guest vsock port 5000 -> <uds_path>_5000
    args = [
        f"--guest.listen=unix:{uds}",
        f"--guest.record={records}",
        f"--guest.record.sign-key={private}",
        "--guest.record.max-bytes=8192",
        "--sampler.interval=100ms",
    ]
    with run_exporter(args, tmp_path) as exp:
        wait_until(uds.exists, what="the listener")
        with process(agent_args(f"unix:{uds}", "100ms"), tmp_path / "agent.log"):
            wait_until(lambda: (records / "fc-7.jsonl.1").exists(), what="a rotated record file")
            wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="fc-7") >= 3, what="rows for vm fc-7")
    current = records / "fc-7.jsonl"
    for path in (current, records / "fc-7.jsonl.1"):
        assert path.stat().st_size <= 8192
        result = verify(path, public)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "all signatures valid" in result.stdout
    lines = (records / "fc-7.jsonl.1").read_text().splitlines()
    first = json.loads(lines[0])
    assert first["vm"] == "fc-7" and first["row"]["type"] == "row" and first["host_wall_ns"] > 0

    tampered = json.loads(lines[2])
    tampered["row"]["cpu"]["0"]["user"] += 1.0
    lines[2] = json.dumps(tampered)
    bad = tmp_path / "tampered.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    result = verify(bad, public)
    assert result.returncode == 1
    assert f"{bad}:3: signature does not match" in result.stdout

    (tmp_path / "other").mkdir()
    _, other_public = keypair(tmp_path / "other")
    result = verify(current, other_public)
    assert result.returncode == 1
    assert f"{current}:1: signature does not match" in result.stdout


def test_unusable_sign_key_stops_start_up_naming_the_flag(tmp_path):
    key = tmp_path / "not-a-key.pem"
    key.write_text("hello\n")
    (tmp_path / "rec").mkdir()
    result = run_cli(
        f"--guest.listen=unix:{tmp_path / 'g.sock'}",
        f"--guest.record={tmp_path / 'rec'}",
        f"--guest.record.sign-key={key}",
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("sysmon-exporter: --guest.record.sign-key:"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


class HeldSigner:
    """Signs once ``release`` is set: a disk (or signer) that cannot keep up, on demand."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def sign(self, data: bytes) -> bytes:
        self.started.set()
        self.release.wait()
        return b"s"


@pytest.mark.parametrize(
    ("queue_size", "queue_bytes", "size", "kept"),
    [(100, 10_000, 1000, 10), (5, 1 << 20, 1000, 6)],
    ids=["bytes", "rows"],
)
def test_a_recorder_that_cannot_keep_up_holds_a_bounded_queue(tmp_path, queue_size, queue_bytes, size, kept):
    signer = HeldSigner()
    recorder = Recorder(tmp_path, 1 << 20, signer=signer, queue_size=queue_size, queue_bytes=queue_bytes)
    recorder("vm", {"n": 0}, size)  # taken by the writer, which then waits in sign(); its bytes still count
    assert signer.started.wait(15)
    for n in range(1, 30):
        recorder("vm", {"n": n}, size)
    assert recorder.lost == 30 - kept
    signer.release.set()
    recorder.close()
    recorded = [json.loads(line)["n"] for line in (tmp_path / "vm.jsonl").read_text().splitlines()]
    assert recorded == list(range(kept))
