"""Guest records as signed CloudEvents: the canonical form, the recorder, verify-record, guest-sent events."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from exporter.guest import cloudevent
from exporter.guest.protocol import GuestEvent, Malformed, parse_line
from exporter.guest.record import Recorder, verify_file
from exporter.guest_state import REASONS
from tests.guest.support import agent_args, process, relay, series, value
from tests.guest.test_record import keypair, verify
from tests.helpers import run_exporter, wait_until

SAFE = 2**53 - 1
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-SAFE, SAFE) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_the_canonical_form_is_rfc8785_wherever_rfc8785_has_one(value: Any) -> None:
    assert cloudevent.jcs(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("number", "text"),
    [  # RFC 8785 appendix B and section 3.2.2.3
        (0.0, "0"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (333333333.3333333, "333333333.3333333"),
        (9007199254740992.0, "9007199254740992"),
        (295147905179352830000.0, "295147905179352830000"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (0.000001, "0.000001"),
        (-1.5, "-1.5"),
    ],
    ids=lambda v: str(v),
)
def test_numbers_are_written_as_ecmascript_writes_them(number: float, text: str) -> None:
    assert cloudevent.jcs(number).decode() == text


def test_integers_beyond_ijson_stay_exact_so_a_signature_covers_their_low_digits() -> None:
    assert cloudevent.jcs({"wall_ns": 1700000000000000123}) == b'{"wall_ns":1700000000000000123}'
    assert cloudevent.jcs(1700000000000000123) != cloudevent.jcs(1700000000000000124)


def row(seq: int) -> dict[str, Any]:
    return {
        "v": 1,
        "type": "row",
        "seq": seq,
        "boot_id": "b00t",
        "wall_ns": 1700000000123456789 + seq,
        "mono_ns": 5_000_000_000 + seq,
        "cpu": {"0": {"user": 1.5, "idle": 2.25}},
        "mem": {"total_bytes": 1024},
        "dropped": 0,
    }


def entry(key: str, value: Any, n: int = 0) -> dict[str, Any]:
    return {"vm": "vm-1", "host_wall_ns": 1800000000987654321 + n, "host_mono_ns": 7_000_000_000 + n, key: value}


GUEST_EVENT = {
    "specversion": "1.0",
    "id": "e-1",
    "source": "/guest/app",
    "type": "com.example.app.started",
    "time": "2026-12-01T10:00:00.5+01:00",
    "subject": "app",
    "appversion": "3",
    "data": {"pid": 42},
}


def record_all(directory: Path, key: Ed25519PrivateKey | None) -> list[bytes]:
    recorder = Recorder(directory, 1 << 20, signer=key, fmt="cloudevents", host="host-a")
    recorder("vm-1", entry("hello", {"v": 1, "type": "hello", "hostname": "web-1"}), 100)
    recorder("vm-1", entry("lifecycle", "connect", 1), 100)
    recorder("vm-1", entry("row", row(7), 2), 100)
    recorder("vm-1", entry("cloudevent", GUEST_EVENT, 3), 100)
    recorder.close()
    assert recorder.unrecorded() == {}
    return (directory / "vm-1.jsonl").read_bytes().splitlines()


def test_recorded_events_parse_with_the_cloudevents_sdk(tmp_path: Path) -> None:
    lines = record_all(tmp_path, Ed25519PrivateKey.generate())
    events = [JSONFormat().read(None, line) for line in lines]
    assert all(isinstance(e, CloudEvent) for e in events)
    assert [e.get_type() for e in events] == [
        cloudevent.HELLO_TYPE,
        cloudevent.LIFECYCLE_TYPE,
        cloudevent.ROW_TYPE,
        "com.example.app.started",
    ]
    assert {e.get_source() for e in events} == {"sysmon-exporter://host-a/vm/vm-1"}
    assert len({e.get_id() for e in events}) == 4
    assert all(e.get_specversion() == "1.0" for e in events)
    hello, lifecycle, row_event, guest = events
    assert hello.get_data() == {"v": 1, "type": "hello", "hostname": "web-1"}
    assert lifecycle.get_data() == {"event": "connect"}
    assert row_event.get_data() == row(7)
    assert row_event.get_datacontenttype() == "application/json"
    assert row_event.get_time().isoformat() == "2027-01-15T08:00:00.987654+00:00"
    assert row_event.get_extension("hostmonons") == "7000000002"
    assert row_event.get_extension("guesttime") == "2023-11-14T22:13:20.123456796Z"
    assert row_event.get_extension("guestmonons") == "5000000007"
    assert guest.get_data() == {"pid": 42}
    assert guest.get_time().isoformat() == "2027-01-15T08:00:00.987654+00:00"  # re-stamped by the host
    assert guest.get_extension("guesttime") == GUEST_EVENT["time"]
    assert guest.get_extension("guestid") == "e-1" and guest.get_extension("guestsource") == "/guest/app"
    assert guest.get_subject() == "app" and guest.get_extension("appversion") == "3"
    assert all(isinstance(e.get_extension(cloudevent.SIG), str) for e in events)
    assert all(line == cloudevent.jcs(json.loads(line)) for line in lines)  # written in canonical form


def test_unsigned_events_carry_no_signature(tmp_path: Path) -> None:
    lines = record_all(tmp_path, None)
    assert all(cloudevent.SIG not in json.loads(line) for line in lines)


def public_pem(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_every_single_byte_changed_in_a_signed_event_is_caught_and_the_event_named(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    lines = record_all(tmp_path, key)
    good = tmp_path / "good.jsonl"
    good.write_bytes(b"\n".join(lines) + b"\n")
    assert verify_file(good, public_pem(key)).bad_line is None
    target = 2  # the row event, 0-based
    line = lines[target]
    event_id = json.loads(line)["id"]
    bad = tmp_path / "bad.jsonl"
    named = 0
    for i in range(len(line)):
        replacement = b"0" if line[i : i + 1] != b"0" else b"1"
        tampered = line[:i] + replacement + line[i + 1 :]
        bad.write_bytes(b"\n".join([*lines[:target], tampered, *lines[target + 1 :]]) + b"\n")
        verdict = verify_file(bad, public_pem(key))
        assert verdict.bad_line == target + 1, (i, tampered)
        if b'"id":"' + event_id.encode() + b'"' in tampered:  # still JSON with the same id, or not JSON
            assert verdict.event_id in (event_id, ""), (i, tampered)
            named += verdict.event_id == event_id
    assert named > len(line) // 2  # the signature, the data and most attributes: the event is named


def test_verify_record_names_the_first_bad_event(tmp_path: Path) -> None:
    private, public = keypair(tmp_path)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(private.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    (tmp_path / "rec").mkdir()
    lines = record_all(tmp_path / "rec", key)
    result = verify(tmp_path / "rec" / "vm-1.jsonl", public)
    assert result.returncode == 0 and "4 lines, all signatures valid" in result.stdout, result.stdout
    event = json.loads(lines[3])
    event["data"]["pid"] = 43
    lines[3] = cloudevent.jcs(event)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(lines) + b"\n")
    result = verify(bad, public)
    assert result.returncode == 1
    assert result.stdout.strip() == f"{bad}:4: signature does not match the line (event {event['id']})"


def guest_line(**changes: Any) -> bytes:
    msg = {**GUEST_EVENT, **changes}
    return json.dumps({k: v for k, v in msg.items() if v is not None}).encode()


def test_a_guest_event_is_parsed_as_one() -> None:
    msg = parse_line(guest_line())
    assert isinstance(msg, GuestEvent) and msg.raw == GUEST_EVENT


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (guest_line(specversion="0.3"), "unsupported_version"),
        (guest_line(source=None), "invalid_cloudevent"),
        (guest_line(id=""), "invalid_cloudevent"),
        (guest_line(type=7), "invalid_cloudevent"),
        (guest_line(type="io.sysmon.guest.row.v1"), "invalid_cloudevent"),
        (guest_line(sysmonsig="AAAA"), "invalid_cloudevent"),
        (guest_line(guesttime="2026-01-01T00:00:00Z"), "invalid_cloudevent"),
        (guest_line(time="yesterday"), "invalid_cloudevent"),
        (guest_line(time="2026-12-01T10:00:00"), "invalid_cloudevent"),
        (guest_line(Upper="x"), "invalid_cloudevent"),
        (guest_line(subject="a\nb"), "invalid_cloudevent"),
        (guest_line(subject="x" * 2000), "invalid_cloudevent"),
        (guest_line(data_base64="AAAA"), "invalid_cloudevent"),
        (guest_line(extension={"nested": 1}), "invalid_cloudevent"),
        (json.dumps({**GUEST_EVENT, **{f"x{i}": "v" for i in range(40)}}).encode(), "invalid_cloudevent"),
    ],
    ids=[
        "specversion-0.3",
        "no-source",
        "empty-id",
        "type-not-string",
        "host-type",
        "host-signature",
        "host-extension",
        "time-not-rfc3339",
        "time-without-offset",
        "extension-name",
        "control-character",
        "long-attribute",
        "data-and-data-base64",
        "extension-object",
        "too-many-attributes",
    ],
)
def test_malformed_guest_events_are_refused_by_reason(line: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as e:
        parse_line(line)
    assert e.value.reason == reason


def malformed(exp: Any, vm: str) -> dict[str, float]:
    """The reasons counted for ``vm`` (each reason is exported, at 0 at first, once the VM is known)."""
    counts = {dict(k)["reason"]: v for k, v in series(exp, "sysmon_guest_malformed_rows_total", vm=vm).items()}
    assert counts.keys() in (set(REASONS), set()), counts
    return {r: n for r, n in counts.items() if n}


def test_agent_rows_and_guest_sent_events_through_the_relay_are_recorded_as_signed_cloudevents(tmp_path):
    private, public = keypair(tmp_path)
    records, vms = tmp_path / "records", tmp_path / "vms"
    records.mkdir()
    vms.mkdir()
    args = [
        f"--guest.socket={vms}/{{vm}}.sock",
        "--guest.rescan-interval=100ms",
        "--sampler.interval=100ms",
        f"--guest.record={records}",
        "--guest.record.format=cloudevents",
        f"--guest.record.sign-key={private}",
    ]
    good = [guest_line(id=f"e-{n}", data={"n": n}) + b"\n" for n in range(3)]
    bad = [guest_line(source=None) + b"\n", guest_line(specversion="2.0") + b"\n", b'{"specversion":"1.0"\n']
    with run_exporter(args, tmp_path) as exp:
        with (
            relay(vms / "agent.sock", tmp_path / "agent-guest.sock", tmp_path / "relay-agent.log"),
            process(agent_args(f"unix:{tmp_path / 'agent-guest.sock'}", "100ms"), tmp_path / "agent.log"),
        ):
            wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="agent") >= 3, what="agent rows")
        guest_sock = tmp_path / "app-guest.sock"
        with (
            relay(vms / "app.sock", guest_sock, tmp_path / "relay-app.log"),
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as guest,
        ):
            guest.connect(str(guest_sock))
            guest.sendall(b"".join([good[0], *bad, good[1], good[2]]))
            wait_until(lambda: sum(malformed(exp, "app").values()) == 3, what="the malformed events counted")
            assert malformed(exp, "app") == {"invalid_cloudevent": 1, "unsupported_version": 1, "invalid_json": 1}
            wait_until(lambda: len(lines_of(records / "app.jsonl")) >= 5, what="the guest's events recorded")
            assert value(exp, "sysmon_guest_rows_total", vm="app") == 0  # no series from guest events
            assert series(exp, "sysmon_guest_cpu_seconds_total", vm="app") == {}
    for vm in ("agent", "app"):
        result = verify(records / f"{vm}.jsonl", public)
        assert result.returncode == 0, result.stdout + result.stderr
    agent_events = [JSONFormat().read(None, line) for line in lines_of(records / "agent.jsonl")]
    types = [e.get_type() for e in agent_events]
    assert types[:3] == [cloudevent.LIFECYCLE_TYPE, cloudevent.LIFECYCLE_TYPE, cloudevent.HELLO_TYPE]
    assert [e.get_data()["event"] for e in agent_events[:2]] == ["connect", "first_byte"]
    assert types.count(cloudevent.ROW_TYPE) >= 3
    assert agent_events[-1].get_data() == {"event": "disconnect"}
    app_events = [JSONFormat().read(None, line) for line in lines_of(records / "app.jsonl")]
    guest_events = [e for e in app_events if e.get_type() == GUEST_EVENT["type"]]
    assert [e.get_extension("guestid") for e in guest_events] == ["e-0", "e-1", "e-2"]
    assert [e.get_data() for e in guest_events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {e.get_source() for e in app_events} == {f"sysmon-exporter://{socket.gethostname()}/vm/app"}


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


def test_a_signature_with_changed_unused_base64_bits_is_caught(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    lines = record_all(tmp_path, key)
    event = json.loads(lines[0])
    sig = event[cloudevent.SIG]
    assert sig.endswith("==")  # 64 bytes: the last character before the padding has 4 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    event[cloudevent.SIG] = sig[:-3] + alphabet[alphabet.index(sig[-3]) ^ 1] + "=="
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(cloudevent.jcs(event) + b"\n")
    verdict = verify_file(bad, public_pem(key))
    assert (verdict.bad_line, verdict.reason) == (1, "not a signed record line")


def test_jsonl_records_rows_and_guest_events_but_not_hellos_or_channel_events(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, 1 << 20)
    recorder("vm-1", entry("hello", {"v": 1, "type": "hello"}), 100)
    recorder("vm-1", entry("lifecycle", "connect", 1), 100)
    recorder("vm-1", entry("row", row(7), 2), 100)
    recorder("vm-1", entry("cloudevent", GUEST_EVENT, 3), 100)
    recorder.close()
    lines = [json.loads(line) for line in (tmp_path / "vm-1.jsonl").read_bytes().splitlines()]
    assert lines == [entry("row", row(7), 2), entry("cloudevent", GUEST_EVENT, 3)]
