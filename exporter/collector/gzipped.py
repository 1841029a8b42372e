"""gzip bodies assembled from a pre-compressed prefix and a small fresh tail.

The cgroup families are megabytes of text that change once per cgroup
interval, while the CPU families change every second. Compressing the whole
body on the first gzip scrape of each snapshot cost ~28 ms with 1000 cgroups;
instead the large part is deflated once, in the sampler, when it changes, and
a scrape compresses only the tail.

A raw deflate segment that ends with a sync flush is byte-aligned and, coming
from its own compressor, refers to nothing before it, so segments concatenate
into one valid deflate stream (the technique pigz uses, RFC 1951 3.2.3). The
body is one ordinary gzip member (RFC 1952): header, the segments, an empty
final block, and CRC-32 and length over the whole text, the CRC continued
from the prefix's into the tail.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.collector.exposition import Piece, join_pieces

_LEVEL = 6
# ID1 ID2, CM=deflate, no flags, MTIME 0, XFL 0, OS unknown (255)
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# A final, empty, fixed-Huffman block: BFINAL=1, BTYPE=01, end-of-block (what zlib's Z_FINISH writes here).
_FINAL_BLOCK = b"\x03\x00"


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


@dataclass(frozen=True)
class Deflated:
    """Text with its raw deflate segment (sync-flushed) and CRC-32: the fixed start of a gzip body."""

    data: bytes
    segment: bytes
    crc: int


EMPTY = Deflated(b"", b"", 0)


def deflate_pieces(pieces: Sequence[Piece]) -> tuple[Deflated, Deflated]:
    """Text and OpenMetrics prefixes of the pieces; the sample lines, most of the bytes, are deflated once for both."""
    if not pieces:
        return EMPTY, EMPTY
    text: list[bytes] = []
    openmetrics: list[bytes] = []
    for piece in pieces:
        samples = _deflate(piece.samples)
        text += (_deflate(piece.text_header), samples)
        openmetrics += (_deflate(piece.openmetrics_header), samples)
    text_data, openmetrics_data = join_pieces(pieces)
    return (
        Deflated(text_data, b"".join(text), zlib.crc32(text_data)),
        Deflated(openmetrics_data, b"".join(openmetrics), zlib.crc32(openmetrics_data)),
    )


def concat(parts: Sequence[Deflated]) -> Deflated:
    """One prefix from several, in order (segments concatenate; the CRC is recomputed over the whole text)."""
    if len(parts) == 1:
        return parts[0]
    data = b"".join(p.data for p in parts)
    return Deflated(data, b"".join(p.segment for p in parts), zlib.crc32(data)) if data else EMPTY


def gzip_body(prefix: Deflated, tail: bytes) -> bytes:
    """gzip of ``prefix.data + tail``, compressing only ``tail``."""
    trailer = struct.pack("<II", zlib.crc32(tail, prefix.crc), (len(prefix.data) + len(tail)) & 0xFFFFFFFF)
    return b"".join((_HEADER, prefix.segment, _deflate(tail), _FINAL_BLOCK, trailer))
