"""Channel addresses, the vsock listener set-up, VM names from the host side, pattern expansion."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from exporter.config import VMADDR_CID_ANY, Address, parse_agent_channel, parse_guest_listen
from exporter.guest.channel import find_virtio_port, listen_socket, vm_of_unix_listener
from exporter.guest.ingest import expand_pattern
from exporter.guest_state import vm_label


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("virtio:", Address("virtio")),
        ("virtio:/dev/virtio-ports/x", Address("virtio", Path("/dev/virtio-ports/x"))),
        ("vsock:9477", Address("vsock", cid=2, port=9477)),
        ("vsock:2:1024", Address("vsock", cid=2, port=1024)),
        ("vsock:3:4294967295", Address("vsock", cid=3, port=4294967295)),
        ("unix:/run/a.sock", Address("unix", Path("/run/a.sock"))),
    ],
    ids=["virtio-default", "virtio-path", "vsock-port", "vsock-cid-port", "vsock-max", "unix"],
)
def test_agent_channel(text, address):
    assert parse_agent_channel(text) == address


@pytest.mark.parametrize(
    "text",
    ["", "virtio", "vsock:", "vsock:x:1", "vsock:2:0", "vsock:2:4294967296", "vsock:2:-1", "unix:", "tcp:1.2.3.4:5"],
)
def test_bad_agent_channel(text):
    with pytest.raises(ValueError):
        parse_agent_channel(text)


def test_listen_addresses():
    assert parse_guest_listen("vsock:5000") == Address("vsock", cid=VMADDR_CID_ANY, port=5000)
    assert parse_guest_listen("unix:/run/fc.vsock_5000") == Address("unix", Path("/run/fc.vsock_5000"))
    for bad in ("vsock:2:5000", "vsock:", "virtio:", "unix:"):
        with pytest.raises(ValueError):
            parse_guest_listen(bad)


@pytest.mark.live
def test_vsock_listener_binds_any_cid(tmp_path):
    if not hasattr(socket, "AF_VSOCK"):
        pytest.skip("no AF_VSOCK in this Python")
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close()
    except OSError as e:
        pytest.skip(f"AF_VSOCK sockets unavailable: {e.strerror}")
    # An unprivileged high port that is free for vsock on this machine.
    for port in range(50000 + __import__("os").getpid() % 10000, 70000):
        try:
            sock = listen_socket(parse_guest_listen(f"vsock:{port}"))
        except OSError as e:
            assert "vsock:" in str(e.filename)
            continue
        break
    try:
        assert sock.family == socket.AF_VSOCK and not sock.getblocking()
        assert sock.getsockname() == (VMADDR_CID_ANY, port)
    finally:
        sock.close()


def test_unix_listener_replaces_a_stale_socket_but_not_a_live_one_or_a_file(tmp_path):
    path = tmp_path / "fc.vsock_5000"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    listen_socket(Address("unix", path)).close()
    live = listen_socket(Address("unix", path))
    try:
        with pytest.raises(OSError):
            listen_socket(Address("unix", path))  # in use: not taken over
    finally:
        live.close()
    other = tmp_path / "regular"
    other.write_text("keep me")
    with pytest.raises(OSError) as e:
        listen_socket(Address("unix", other))
    assert e.value.filename == f"unix:{other}"
    assert other.read_text() == "keep me"


@pytest.mark.parametrize(
    ("path", "vm"),
    [
        ("/srv/fc/web-1.vsock_5000", "web-1"),
        ("/srv/fc/web-1.vsock", "web-1"),
        ("/run/sysmon/agent.sock", "agent"),
        ("/x/odd name$_12", "odd_name_"),
    ],
)
def test_vm_of_unix_listener(path, vm):
    assert vm_of_unix_listener(Path(path)) == vm


def test_vm_label_is_bounded():
    assert vm_label("a" * 500) == "a" * 64
    assert vm_label('x"}\n') == "x___"


def bound_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


def test_pattern_vm_in_a_directory_exists_before_its_socket(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "agent.sock").touch()
    (tmp_path / "notes.txt").touch()  # a stray file where VM directories are is no VM
    assert expand_pattern(f"{tmp_path}/{{vm}}/agent.sock") == {
        "a": tmp_path / "a" / "agent.sock",
        "b": tmp_path / "b" / "agent.sock",
    }


def test_pattern_vm_in_a_file_name_matches_only_sockets(tmp_path):
    socks = [bound_socket(tmp_path / name) for name in ("qemu-web.sock", "qemu-db.sock", "other.sock")]
    (tmp_path / "qemu-stray.sock").touch()  # a plain file
    (tmp_path / "qemu-dir.sock").mkdir()
    (tmp_path / "qemu-dangling.sock").symlink_to(tmp_path / "nowhere")
    (tmp_path / "qemu-link.sock").symlink_to(tmp_path / "qemu-web.sock")  # a link to a socket is one
    try:
        assert expand_pattern(f"{tmp_path}/qemu-{{vm}}.sock") == {
            "web": tmp_path / "qemu-web.sock",
            "db": tmp_path / "qemu-db.sock",
            "link": tmp_path / "qemu-link.sock",
        }
        assert expand_pattern(f"{tmp_path}/qemu-*.sock") == {
            "qemu-web": tmp_path / "qemu-web.sock",
            "qemu-db": tmp_path / "qemu-db.sock",
            "qemu-link": tmp_path / "qemu-link.sock",
        }
    finally:
        for sock in socks:
            sock.close()


def test_literal_pattern_is_always_tried(tmp_path):
    assert expand_pattern(f"{tmp_path}/vm7.sock") == {"vm7": tmp_path / "vm7.sock"}


def test_find_virtio_port(tmp_path):
    ports = tmp_path / "sys" / "class" / "virtio-ports"
    for vport, name in (("vport0p1", "org.qemu.guest_agent.0"), ("vport0p2", "org.sysmon.agent")):
        (ports / vport).mkdir(parents=True)
        (ports / vport / "name").write_text(name + "\n")
    assert find_virtio_port("org.sysmon.agent", tmp_path / "sys", tmp_path / "dev") == tmp_path / "dev" / "vport0p2"
    with pytest.raises(FileNotFoundError):
        find_virtio_port("org.example.none", tmp_path / "sys", tmp_path / "dev")
