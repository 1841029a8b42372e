"""What both directions of the guest channel share: the protocol's bounds, one strict JSON
decoder and one line splitter.

Rows and hellos go from guest to host (:mod:`exporter.guest.protocol`), host lines
from host to guest (:mod:`exporter.guest.hoststate`); each side checks what it
reads with :func:`decode` and splits its stream with :class:`LineSplitter`, so
the two cannot drift apart in what they accept. Standard library only: the
snapshot reads the host state file through :mod:`exporter.guest.hoststate`,
below the rest of :mod:`exporter.guest` (tests/test_catalogue.py LAYERS).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

VERSION = 1
MAX_CPUS = 4096
# Every number in a line is below this: it fits an int64 (and so a uint64) and a float64 exactly
# enough; 2**63 itself does not fit an int64 once converted from a float.
MAX_NUMBER = 2**63
MAX_HOST_LINE_BYTES = 65536  # a host line, without its newline
_MAX_DIGITS = len(str(MAX_NUMBER))  # longer integer literals are refused before int() parses them
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # json.loads turns these into str surrogates


class BadLine(ValueError):
    """A line the reader drops; ``reason`` names why (each side lists its reasons)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def decode(text: str, error: type[BadLine], invalid: str) -> Any:
    """``text`` as JSON, refusing what a float64 or an int64 cannot hold and lone surrogates.

    Raises ``error`` and nothing else: ``invalid`` for a number out of range,
    ``too_deep``, ``invalid_json`` or ``invalid_utf8``.
    """

    def integer(literal: str) -> int:
        if len(literal.lstrip("-")) > _MAX_DIGITS:  # before int(): parsing a long literal costs quadratic time
            raise error(invalid, f"integer of {len(literal)} digits")
        value = int(literal)
        if not -MAX_NUMBER <= value < MAX_NUMBER:
            raise error(invalid, "integer outside [-2**63, 2**63)")
        return value

    def number(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):  # 1e309 reads as inf
            raise error(invalid, f"number {literal[:24]} is outside the float64 range")
        return value

    def constant(name: str) -> Any:
        raise error(invalid, f"{name} is not a JSON number")

    try:
        msg = json.loads(text, parse_int=integer, parse_float=number, parse_constant=constant)
    except BadLine:
        raise
    except RecursionError:
        raise error("too_deep") from None
    except ValueError as e:
        raise error("invalid_json", str(e)[:80]) from None
    if _SURROGATE_ESCAPE.search(text):  # a pair is one character; a lone half cannot be encoded
        try:
            json.dumps(msg, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise error("invalid_utf8", "a lone surrogate escape") from None
    return msg


TOO_LONG = None  # what LineSplitter yields for a discarded line


class LineSplitter:
    """Splits a byte stream into lines; a line over ``limit`` is discarded up to its newline.

    Holds at most ``limit`` bytes whatever arrives, so a peer that never sends a
    newline costs nothing but reads.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.discarding = False

    def feed(self, chunk: bytes) -> Iterator[bytes | None]:
        """Complete lines (without the newline), and ``TOO_LONG`` once per discarded line."""
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            piece = chunk[start:] if nl < 0 else chunk[start:nl]
            if not self.discarding and len(self.buf) + len(piece) > self.limit:
                self.buf.clear()
                self.discarding = True
                yield TOO_LONG
            if nl < 0:
                if not self.discarding:
                    self.buf += piece
                return
            if not self.discarding:
                yield bytes(self.buf) + piece
            self.buf.clear()
            self.discarding = False
            start = nl + 1
