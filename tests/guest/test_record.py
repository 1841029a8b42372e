"""Recording over the Firecracker vsock path (``<uds>_<port>``, over AF_UNIX), signing and verifying."""

from __future__ import annotations

import json
import os
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


def records(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_recorder_survives_a_row_it_cannot_write_and_counts_it(tmp_path, caplog):
    recorder = Recorder(tmp_path, 1 << 20)
    recorder("vm", {"n": 0, "hostname": "\ud800"}, 10)  # cannot be encoded as UTF-8
    recorder("vm", {"n": 1, "bad": object()}, 10)  # nor as JSON
    recorder("vm", {"n": 2}, 10)
    recorder.close()
    assert records(tmp_path / "vm.jsonl") == [{"n": 2}]
    assert recorder.unrecorded() == {"vm": 2}
    assert caplog.text.count("cannot record vm vm") == 1


def test_links_and_fifos_planted_in_the_record_directory_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("precious\n")
    records_dir = tmp_path / "records"
    records_dir.mkdir()
    (records_dir / "sym.jsonl").symlink_to(outside)
    os.link(outside, records_dir / "hard.jsonl")
    os.mkfifo(records_dir / "fifo.jsonl")
    (records_dir / "rot.jsonl.1").symlink_to(outside)  # rotation renames over the link, not through it
    recorder = Recorder(records_dir, 1000)  # 200 rows of about 10 bytes: one rotation
    for vm in ("sym", "hard", "fifo"):
        recorder(vm, {"vm": vm}, 10)
    for n in range(200):
        recorder("rot", {"n": n}, 10)
    recorder.close()
    assert outside.read_text() == "precious\n"
    assert recorder.unrecorded() == {"sym": 1, "hard": 1, "fifo": 1}
    assert (records_dir / "rot.jsonl.1").is_file() and not (records_dir / "rot.jsonl.1").is_symlink()
    assert (records_dir / "rot.jsonl.2").is_symlink()  # the planted link, moved along as a link
    assert len(records(records_dir / "rot.jsonl")) + len(records(records_dir / "rot.jsonl.1")) == 200


def test_a_record_directory_swapped_for_a_symlink_is_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    given = tmp_path / "given"
    given.symlink_to(tmp_path / "real")  # a symlink given as the directory is used as given
    (tmp_path / "real").mkdir()
    recorder = Recorder(given, 1 << 20)
    recorder("vm", {"n": 0}, 10)
    recorder("late", {"n": 0}, 10)
    wait_until(lambda: (tmp_path / "real" / "late.jsonl").exists(), what="the first rows")
    given.unlink()
    given.symlink_to(elsewhere)  # swapped after start
    (tmp_path / "real").rename(tmp_path / "moved")
    recorder("vm", {"n": 1}, 10)
    recorder("new", {"n": 1}, 10)
    recorder.close()
    assert list(elsewhere.iterdir()) == []
    assert records(tmp_path / "moved" / "vm.jsonl") == [{"n": 0}, {"n": 1}]
    assert records(tmp_path / "moved" / "new.jsonl") == [{"n": 1}]
