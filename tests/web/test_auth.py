"""Basic-auth parsing and the verified-password cache (bcrypt is injected to count its calls)."""

from __future__ import annotations

import base64

import pytest

from exporter.web.auth import Verifier, basic_credentials, bcrypt_checkpw
from tests.web.pki import bcrypt_hash


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Basic " + base64.b64encode(b"alice:pa:ss").decode(), ("alice", "pa:ss")),
        ("basic " + base64.b64encode(b"bob:").decode(), ("bob", "")),
        ("Basic " + base64.b64encode(b"nocolon").decode(), None),
        ("Basic !!!notbase64", None),
        ("Bearer abc", None),
        ("", None),
    ],
    ids=["password-with-colon", "empty-password", "no-colon", "bad-base64", "other-scheme", "absent"],
)
def test_basic_credentials(header: str, expected: tuple[str, str] | None) -> None:
    assert basic_credentials(header) == expected


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls += 1
        return bcrypt_checkpw(password, hashed)  # the default, which imports bcrypt on its first call


async def test_a_verified_password_is_checked_by_bcrypt_once() -> None:
    users = {"alice": bcrypt_hash("right")}
    checkpw = Counting()
    verifier = Verifier(checkpw)
    assert await verifier.check(users, "alice", "right")
    assert await verifier.check(users, "alice", "right")
    assert checkpw.calls == 1
    assert not await verifier.check(users, "alice", "wrong")  # a different password goes to bcrypt again
    assert checkpw.calls == 2
    assert await verifier.check(users, "alice", "right")
    assert checkpw.calls == 2


async def test_unknown_users_pay_bcrypt_and_fail() -> None:
    checkpw = Counting()
    verifier = Verifier(checkpw)
    assert not await verifier.check({"alice": bcrypt_hash("x")}, "mallory", "x")
    assert checkpw.calls == 1


async def test_a_changed_hash_drops_the_remembered_password() -> None:
    checkpw = Counting()
    verifier = Verifier(checkpw)
    assert await verifier.check({"alice": bcrypt_hash("old")}, "alice", "old")
    assert not await verifier.check({"alice": bcrypt_hash("new")}, "alice", "old")
    assert checkpw.calls == 2
