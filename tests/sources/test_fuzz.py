"""Every parser under hypothesis: it returns a value that can be true, or raises SourceError, nothing else.

``make test`` runs SYSMON_FUZZ_EXAMPLES (10,000) examples per parser on short
texts; ``make fuzz`` runs 1,000,000. Inputs mix random text with the shapes of
the real files (keys, columns, numbers in every form ``int()`` and ``float()``
accept: signs, underscores, non-ASCII digits, 400 digits, nan, inf).

Not here: parse_mounts (sources/mounts.py), parse_flat_keyed, parse_single and
parse_pressure (sources/cgroup.py), and parse_khz (sources/cpufreq.py).
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.sources import SourceError
from exporter.sources.bpf import parse_btf_struct_offsets, parse_possible_cpus
from exporter.sources.cpuinfo import parse_cpuinfo
from exporter.sources.hostname import parse_hostname
from exporter.sources.meminfo import parse_meminfo
from exporter.sources.mountinfo import parse_mountinfo
from exporter.sources.pid_stat import parse_pid_stat
from exporter.sources.pid_status import parse_pid_status
from exporter.sources.stat import _rows_line_by_line, parse_stat, parse_stat_rows
from exporter.sources.syscalls import cgroup2_level

EXAMPLES = int(os.environ.get("SYSMON_FUZZ_EXAMPLES", "10000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))

# Numbers in every form int() and float() take, and ones the kernel never prints.
NUMBERS = ["0", "1", "42", "-1", "+7", "1_000", "\u00b2", "\u0663", "1.5", "1e400", "nan", "inf", "-inf", "0x10"]
NUMBERS += ["9" * 20, str(2**64), "1" + "0" * 400, "2" * 5000]
SEPARATORS = [" ", "  ", "\t", ":", ": ", ",", "-", "(", ")", "\n", "\n", "\n", "\x85", "\u2028", "\r", "\x00"]
ODD = ["\u00e9", "\ud800", "\ufffd", "\x1b", "'", '"', "\\", "\u202e", "\U0001f600"]


def shaped(keys: list[str]) -> st.SearchStrategy[str]:
    """Texts of up to 24 tokens: the file's keys, numbers in odd forms, separators, odd characters.

    One byte string drawn per example (then mapped to tokens) keeps generation cheap, so
    10,000 examples take seconds; hypothesis shrinks the bytes, so failures stay small.
    """
    table = keys + NUMBERS + SEPARATORS + ODD
    return st.binary(max_size=24).map(lambda b: "".join(table[x % len(table)] for x in b))


def check(parse, text):  # type: ignore[no-untyped-def]
    try:
        return parse(text)
    except SourceError:
        return None


@FUZZ
@given(shaped(["cpu", "cpu0", "cpu1", "cpu12", "cpu ", "intr", "ctxt", "cpu\u00b2"]))
def test_parse_stat(text):
    cpus = check(lambda t: parse_stat(t, 100), text)
    for times in (cpus or {}).values():
        for value in (*times.seconds.values(), *times.guest_seconds.values()):
            assert math.isfinite(value) and value >= 0


def _outcome(parse, text):  # type: ignore[no-untyped-def]
    try:
        return parse(text)
    except SourceError as e:
        return str(e)


# /proc/stat texts of a few CPU lines, mostly well formed: every check of the parse has a line to fail on.
_STAT_NAMES = st.sampled_from(["cpu0", "cpu1", "cpu2", "cpu01", "cpu", "cpu ", "cpux", "cpu\u00b2", "intr"])
_STAT_COLUMNS = st.lists(st.sampled_from(["0", "1", "250", "99999"] * 10 + NUMBERS), max_size=12)
_STAT_TEXTS = st.lists(
    st.tuples(_STAT_NAMES, _STAT_COLUMNS, st.sampled_from([" ", "  ", "\t"])), min_size=0, max_size=5
).map(lambda lines: "".join(f"{name}{sep}{sep.join(columns)}\n" for name, columns, sep in lines))


@FUZZ
@given(st.one_of(_STAT_TEXTS, shaped(["cpu", "cpu0", "cpu1", "cpu12", "cpu ", "intr", "ctxt", "cpu\u00b2"])))
def test_parse_stat_rows_checked_at_once_agree_with_line_by_line(text):
    """The checks made over every line at once accept exactly what the line-by-line checks accept, with the
    same rows, and leave the error to them."""
    assert _outcome(lambda t: parse_stat_rows(t, 100, "/x/stat"), text) == _outcome(
        lambda t: _rows_line_by_line(t, 100, "/x/stat"), text
    )


@FUZZ
@given(shaped(["MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SReclaimable", "SwapTotal", "kB"]))
def test_parse_meminfo(text):
    mem = check(parse_meminfo, text)
    if mem is not None:
        for value in (mem.total_bytes, mem.free_bytes, mem.buffers_bytes, mem.cached_bytes, mem.used_bytes):
            assert 0 <= value < 2**75 and math.isfinite(float(value))


@FUZZ
@given(shaped(["host", "web-1", "a.b"]))
def test_parse_hostname(text):
    name = check(parse_hostname, text)
    assert name is None or (name and name.isprintable() and not any(c.isspace() for c in name))


@FUZZ
@given(shaped(["processor", "cpu MHz", "model name", "flags"]))
def test_parse_cpuinfo(text):
    check(parse_cpuinfo, text)


@FUZZ
@given(shaped(["1", "(bash)", "(a) b)", ")", "(", "S", "R"]))
def test_parse_pid_stat(text):
    stat = check(parse_pid_stat, text)
    ppid = None if stat is None else stat.ppid
    assert ppid is None or 0 <= ppid < 10**10


@FUZZ
@given(shaped(["Tgid:", "Tgid", "Pid:", "Name:"]))
def test_parse_pid_status(text):
    status = check(parse_pid_status, text)
    tgid = None if status is None else status.tgid
    assert tgid is None or 0 <= tgid < 10**10


@FUZZ
@given(shaped(["0", "0-1", "0-3,8-11", "3-1", "-", ","]))
def test_parse_possible_cpus(text):
    n = check(parse_possible_cpus, text)
    assert n is None or n >= 1


MOUNTINFO = ["36 25 0:31 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw", "/sys/fs/cgroup", "/sys/fs/cgroup/a", "/a"]


@FUZZ
@given(shaped([*MOUNTINFO, " - cgroup2 ", " - ", "cgroup2", "/", "rw", "0:31"]))
def test_parse_mountinfo_and_cgroup2_level(text):
    level = check(lambda t: cgroup2_level(parse_mountinfo(t), Path("/sys/fs/cgroup/a/b")), text)
    assert level is None or level >= 0


_KINDS = (1, 2, 3, 4, 4, 4, 5, 6, 7, 19, 20, 30)
_STRINGS = b"\0task_struct\0pid\0tgid\0\xff\xfe\0"
_NAMES = (0, 0, 1, 13, 17, 22, 40)  # none (anonymous), task_struct, pid, tgid, not UTF-8, out of range


def _btf_from(raw: bytes) -> bytes:
    """A BTF blob from drawn bytes: byte 0 shapes the header, each further 4 bytes a type record.

    A record byte picks its kind (structs and unions often), name (task_struct, pid,
    tgid, anonymous, bad), member count, and each member a name, a small type id (so
    anonymous members nest, and sometimes in a cycle) and an offset; the header's
    lengths are sometimes off, to truncate.
    """
    shape, data = (raw[0], raw[1:]) if raw else (0, b"")
    body = b""
    for i in range(0, len(data) - 3, 4):
        kind_byte, name_byte, vlen_byte, member_byte = data[i : i + 4]
        kind, vlen = _KINDS[kind_byte % len(_KINDS)], vlen_byte % 4
        info = (kind << 24) | vlen | (member_byte & 0x80) << 24  # bit 31: kind_flag (bitfield offsets)
        body += struct.pack("<III", _NAMES[name_byte % len(_NAMES)], info, 8)
        trailer_words = {1: 1, 3: 3, 6: vlen * 2}.get(kind, vlen * 3 if kind in (4, 5) else 0)
        for j in range(trailer_words // 3 if kind in (4, 5) else 0):
            body += struct.pack("<III", _NAMES[(member_byte >> j) % len(_NAMES)], (member_byte + j) % 6, 32 * j)
        if kind not in (4, 5):
            body += b"\0" * 4 * trailer_words
    type_len = len(body) + (shape % 5) - 2 if shape % 3 == 0 else len(body)
    magic = 0 if shape == 255 else 0xEB9F
    header = struct.pack("<HBBIIIII", magic, 1, 0, 24, 0, max(0, type_len), len(body), len(_STRINGS))
    return (header + body + _STRINGS)[: None if shape % 7 else max(0, 24 + len(body) - shape % 13)]


@FUZZ
@given(st.binary(max_size=64).map(_btf_from))
def test_parse_btf_struct_offsets(blob):
    offsets = check(lambda b: parse_btf_struct_offsets(b, "task_struct", ["pid", "tgid"]), blob)
    assert offsets is None or set(offsets) == {"pid", "tgid"}
