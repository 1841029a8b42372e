"""query-cpus-fast against a real Unix-socket QMP speaker (tests/qmp_speaker.py)."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from exporter.sources import SourceError
from exporter.sources.qmp import parse_cpus_fast, query_vcpu_threads
from tests.qmp_speaker import QmpSpeaker


@pytest.fixture
def speaker(tmp_path):
    made = []

    def make(threads, reply=None):
        s = QmpSpeaker(tmp_path / "qmp.sock", threads, reply)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def test_negotiates_then_queries(speaker):
    s = speaker({0: 4101, 1: 4102})
    assert query_vcpu_threads(str(s.path)) == {0: 4101, 1: 4102}
    assert s.commands == ["qmp_capabilities", "query-cpus-fast"]


def test_one_client_at_a_time_each_query_its_own_connection(speaker):
    s = speaker({0: 7})
    assert query_vcpu_threads(str(s.path)) == {0: 7}
    assert query_vcpu_threads(str(s.path)) == {0: 7}  # the first connection was closed


@pytest.mark.parametrize(
    "reply",
    [
        {"not": "a list"},
        [{"cpu-index": 0}],
        [{"cpu-index": "0", "thread-id": 5}],
        [{"cpu-index": 0, "thread-id": -1}],
        [{"cpu-index": 5000, "thread-id": 5}],
        [{"cpu-index": True, "thread-id": 5}],
        ["x"],
    ],
    ids=["object", "no-thread", "string-index", "negative-tid", "index-too-big", "bool", "not-object"],
)
def test_bad_replies_are_source_errors(speaker, reply):
    s = speaker({}, reply)
    with pytest.raises(SourceError, match="query-cpus-fast"):
        query_vcpu_threads(str(s.path))


def test_missing_socket_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        query_vcpu_threads(str(tmp_path / "none.sock"))
    assert e.value.filename == str(tmp_path / "none.sock")


def _one_shot_server(path, payload: bytes) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        with conn, contextlib.suppress(OSError):  # the client may close first (a reply it refused)
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)
            conn.recv(4096)
        server.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json\n", "not JSON"),
        (b"[1]\n", "not an object"),
        (b'{"hello": 1}\n', "no QMP greeting"),
        (b"", "closed the connection"),
        (b"x" * (1 << 20 + 1), "longer than"),
    ],
    ids=["garbage", "array", "no-greeting", "closed", "endless"],
)
def test_a_socket_that_is_not_qmp_is_refused(tmp_path, payload, message):
    t = _one_shot_server(tmp_path / "q.sock", payload)
    with pytest.raises(SourceError, match=message):
        query_vcpu_threads(str(tmp_path / "q.sock"))
    t.join(timeout=5)


def test_a_silent_socket_times_out(tmp_path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "q.sock"))
    server.listen(1)  # accepted by the kernel, never answered: a QMP busy with another client
    with server, pytest.raises(TimeoutError):
        query_vcpu_threads(str(tmp_path / "q.sock"), timeout=0.2)


def test_an_error_reply_is_a_source_error():
    with pytest.raises(SourceError, match="did not return a list"):
        parse_cpus_fast(None, "/x")
