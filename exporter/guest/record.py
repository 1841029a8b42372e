"""Recording re-stamped guest rows to ``<dir>/<vm>.jsonl``, optionally signed, and checking them.

``--guest.record.format=jsonl`` (the default): each line is one JSON object:
``vm``, ``host_wall_ns``, ``host_mono_ns``, the guest's ``row`` (or
``cloudevent``, an event the guest sent itself) as received, and with a
signing key ``sig``: the base64 Ed25519 signature (RFC 8032) over the
canonical JSON (sorted keys, compact separators, UTF-8) of the same object
without ``sig``. Hellos and channel events are not in this format.

``--guest.record.format=cloudevents``: each line is one CloudEvents 1.0 event
in structured JSON mode, for every row, hello, guest-sent event and channel
event (cloudevent.py says which attributes), written in its canonical form;
with a signing key the ``sysmonsig`` extension carries the signature over
:func:`exporter.guest.cloudevent.canonical` (RFC 8785 JCS of the event without
``sysmonsig``). This needs the ``cloudevents`` package (the ``cloudevents``
extra). :func:`verify_file` checks either kind of line. A file that reaches
``max_bytes`` is renamed to ``<vm>.jsonl.1`` (older ones shift up to ``.<keep>``)
and a new one is started. Keys are PEM (``openssl genpkey -algorithm ed25519``).
Signing needs the ``cryptography`` package (the ``sign`` extra).

The directory is opened once, when recording starts (a symlink given as the
directory is followed then, as given), and every file is opened and renamed
relative to that descriptor with ``O_NOFOLLOW``: replacing the directory or
planting a symlink, hard link or FIFO in it never redirects a record. Such a
file is refused, logged once and its rows counted as unrecorded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import queue
import socket
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from exporter.config import ConfigError
from exporter.guest import cloudevent
from exporter.guest.protocol import canonical_json

log = logging.getLogger("exporter.guest.record")

SIGN_KEY_FLAG = "--guest.record.sign-key"


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes: ...


def _crypto_missing(option: str) -> ConfigError:
    return ConfigError(option, "needs the cryptography package; pip install 'sysmon-exporter[sign]'")


def load_private_key(path: Path) -> Signer:
    """An Ed25519 private key from a PEM file; ConfigError naming the flag when it cannot be used."""
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
    except ImportError:
        raise _crypto_missing(SIGN_KEY_FLAG) from None
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as e:
        raise ConfigError(SIGN_KEY_FLAG, f"{path}: {e.strerror}; pass a readable PEM file") from None
    except (ValueError, TypeError) as e:
        raise ConfigError(SIGN_KEY_FLAG, f"{path}: not an unencrypted PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            SIGN_KEY_FLAG, f"{path}: not an Ed25519 key; make one with openssl genpkey -algorithm ed25519"
        )
    return key


@dataclass(frozen=True)
class Verdict:
    lines: int
    bad_line: int | None = None
    reason: str = ""
    event_id: str = ""  # the bad line's CloudEvents id, when it has one


def _check_line(record: Any, key: Any) -> None:
    """Raise InvalidSignature, or ValueError/KeyError/TypeError for a line that is no signed record."""
    if not isinstance(record, dict):
        raise TypeError("not an object")
    if "specversion" in record:
        key.verify(_signature(record[cloudevent.SIG]), cloudevent.canonical(record))
    else:
        key.verify(_signature(record.pop("sig")), canonical_json(record))


def _signature(text: Any) -> bytes:
    sig = base64.b64decode(text, validate=True)
    if base64.b64encode(sig).decode() != text:  # b64decode ignores the unused bits of the last character
        raise ValueError("not the canonical base64 of a signature")
    return sig


def verify_file(path: Path, public_key_pem: bytes) -> Verdict:
    """Check every line's signature; the first bad line's number (1-based) and why."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:
        raise _crypto_missing("--public-key") from None
    try:
        key = load_pem_public_key(public_key_pem)
    except ValueError as e:
        raise ConfigError("--public-key", f"not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("--public-key", "not an Ed25519 public key")
    count = 0
    with path.open("rb") as f:
        for count, raw in enumerate(f, 1):
            record: Any = None
            try:
                record = json.loads(raw)
                _check_line(record, key)
            except InvalidSignature:
                return Verdict(count, count, "signature does not match the line", _event_id(record))
            except (ValueError, KeyError, TypeError, AttributeError):
                return Verdict(count, count, "not a signed record line", _event_id(record))
    return Verdict(count)


def _event_id(record: Any) -> str:
    event_id = record.get("id") if isinstance(record, dict) and "specversion" in record else None
    return event_id[: cloudevent.MAX_ATTRIBUTE_TEXT] if isinstance(event_id, str) else ""


class Recorder:
    """Appends records per VM on its own thread, so the event loop never waits on the disk.

    Records wait in a queue bounded both in rows and in the bytes of the lines
    they came from (a parsed row takes several times its line in memory, and
    guests choose how long their lines are); when the disk cannot keep up the
    newest are not recorded, counted in ``lost`` and logged once. A row that
    cannot be written (the file is refused or the disk fails, or the row
    cannot be encoded) is logged once per VM; the thread goes on with the next.
    Both count in :meth:`unrecorded`. One open file per VM (bounded by
    --guest.max-vms).
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        keep: int = 5,
        signer: Signer | None = None,
        queue_size: int = 4096,
        queue_bytes: int = 8 << 20,
        fmt: str = "jsonl",
        host: str | None = None,
    ) -> None:
        self.directory, self.max_bytes, self.keep, self.signer = directory, max_bytes, keep, signer
        self.fmt, self.host = fmt, host if host is not None else socket.gethostname()
        if fmt == "cloudevents":
            try:
                import cloudevents  # noqa: F401
            except ImportError:
                raise ConfigError("--guest.record.format", cloudevent.sdk_missing()) from None
        self.lost = 0
        try:
            self._dir = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise ConfigError("--guest.record", f"{directory}: {e.strerror}; pass a writable directory") from None
        self._unrecorded: dict[str, int] = {}
        self._files: dict[str, IO[bytes]] = {}
        self._failing: set[str] = set()
        self._queue: queue.Queue[tuple[str, dict[str, Any], int] | None] = queue.Queue(queue_size)
        self._queue_bytes = queue_bytes
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="guest-record", daemon=True)
        self._thread.start()

    def __call__(self, vm: str, record: dict[str, Any], size: int) -> None:
        """Queue ``record`` for ``vm``; ``size`` is the length of the line it was parsed from."""
        if self.fmt == "jsonl" and ("hello" in record or "lifecycle" in record):
            return  # not in this format
        with self._lock:  # only the writer thread takes from the queue, so a queue not full takes this row
            fits = self._queued_bytes + size <= self._queue_bytes and not self._queue.full()
            if fits:
                self._queue.put_nowait((vm, record, size))
                self._queued_bytes += size
        if not fits:
            self.lost += 1
            self._not_written(vm)
            if self.lost == 1:
                log.warning("recording in %s cannot keep up; rows are not being recorded", self.directory)

    def unrecorded(self) -> Mapping[str, int]:
        """Rows per VM that were queued for recording but not written, or not queued."""
        with self._lock:
            return dict(self._unrecorded)

    def _not_written(self, vm: str) -> None:
        with self._lock:
            self._unrecorded[vm] = self._unrecorded.get(vm, 0) + 1

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            vm, record, size = item
            try:
                written = self._write(vm, record)
            except Exception as e:  # whatever a row holds, the next one is still recorded
                written = False
                self._fail(vm, f"{type(e).__name__}: {e}")
            if not written:
                self._not_written(vm)
            with self._lock:
                self._queued_bytes -= size
        for f in self._files.values():
            with contextlib.suppress(OSError):
                f.close()
        self._files.clear()
        os.close(self._dir)

    def _fail(self, vm: str, why: str) -> None:
        broken = self._files.pop(vm, None)
        if broken is not None:
            with contextlib.suppress(OSError):
                broken.close()
        if vm not in self._failing:
            log.warning("cannot record vm %s in %s: %s", vm, self.directory, why)
            self._failing.add(vm)

    def _open(self, name: str) -> IO[bytes]:
        """``name`` in the record directory for appending; never through a link, never anything but a file."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, 0o640, dir_fd=self._dir)  # O_NONBLOCK: a planted FIFO does not block the open
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise OSError(0, f"{name} is not a regular file with one link; refusing to append to it")
            return open(fd, "ab")
        except BaseException:
            os.close(fd)
            raise

    def _line(self, record: dict[str, Any]) -> bytes:
        if self.fmt == "cloudevents":
            event = cloudevent.from_entry(record, self.host)
            if self.signer is not None:
                event[cloudevent.SIG] = base64.b64encode(self.signer.sign(cloudevent.canonical(event))).decode()
            return cloudevent.jcs(event) + b"\n"
        if self.signer is not None:
            record = {**record, "sig": base64.b64encode(self.signer.sign(canonical_json(record))).decode()}
        return canonical_json(record) + b"\n"

    def _write(self, vm: str, record: dict[str, Any]) -> bool:
        line = self._line(record)
        try:
            f = self._files.get(vm)
            if f is None:
                f = self._files[vm] = self._open(f"{vm}.jsonl")
            if f.tell() and f.tell() + len(line) > self.max_bytes:
                f = self._rotate(vm, f)
            f.write(line)
            f.flush()
        except OSError as e:
            self._fail(vm, e.strerror or str(e))
            return False
        self._failing.discard(vm)
        return True

    def _rotate(self, vm: str, f: IO[bytes]) -> IO[bytes]:
        f.close()
        del self._files[vm]
        base = f"{vm}.jsonl"
        for n in range(self.keep - 1, 0, -1):  # rename() moves a planted link itself, never its target
            with contextlib.suppress(FileNotFoundError):
                os.rename(f"{base}.{n}", f"{base}.{n + 1}", src_dir_fd=self._dir, dst_dir_fd=self._dir)
        os.rename(base, f"{base}.1", src_dir_fd=self._dir, dst_dir_fd=self._dir)
        new = self._files[vm] = self._open(base)
        return new

    def close(self) -> None:
        """Write what is queued, then close the files."""
        self._queue.put(None)
        self._thread.join()
