import gzip
import shutil
import subprocess
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.collector import Renderer, default_collectors
from exporter.collector.exposition import Piece, join_pieces
from exporter.collector.gzipped import EMPTY, Deflater, concat, deflate_pieces, gzip_body, plain_body
from exporter.snapshot import CgroupSources, CpuSources, take_cgroup_snapshot, take_snapshot
from exporter.sources.cgroup import CgroupLimits
from tests.helpers import FIXTURES

data = st.binary(max_size=2048) | st.text(alphabet='# sysmon_{}="/.\n0123456789', max_size=20000).map(str.encode)
pieces = st.lists(st.builds(Piece, data, data, data), max_size=4)


def single_member(body: bytes) -> bytes:
    """Decompress strictly: exactly one gzip member, nothing after it."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(body)
    assert d.eof and d.unused_data == b""
    return out


@settings(max_examples=200, deadline=None)
@given(pieces, data)
def test_pieces_and_tail_make_one_valid_gzip_member_per_format(prefix_pieces, tail):
    text, openmetrics = deflate_pieces(prefix_pieces)
    expected_text, expected_openmetrics = join_pieces(prefix_pieces)
    assert plain_body(text, tail) == expected_text + tail
    assert plain_body(openmetrics, tail) == expected_openmetrics + tail
    assert single_member(gzip_body(text, tail)) == expected_text + tail
    assert gzip.decompress(gzip_body(openmetrics, tail)) == expected_openmetrics + tail


@settings(max_examples=100, deadline=None)
@given(st.lists(pieces, max_size=3), data)
def test_prefixes_of_several_parts_concatenate(parts, tail):
    texts = [deflate_pieces(p)[0] for p in parts]
    expected = b"".join(join_pieces(p)[0] for p in parts)
    assert single_member(gzip_body(concat(texts), tail)) == expected + tail
    assert plain_body(concat(texts), tail) == expected + tail


def test_both_formats_keep_one_copy_of_the_sample_lines():
    pieces = [Piece(b"# HELP a t\n", b"# HELP a o\n", b"a 1\n" * 1000), Piece(b"# b t\n", b"# b o\n", b"b 2\n")]
    text, openmetrics = deflate_pieces(pieces)
    for i, p in enumerate(pieces):
        # the sample bytes and their compressed segment are the same objects in both prefixes
        assert text.chunks[2 * i + 1] is openmetrics.chunks[2 * i + 1] is p.samples
        assert text.segments[2 * i + 1] is openmetrics.segments[2 * i + 1]
        assert text.chunks[2 * i] is p.text_header and openmetrics.chunks[2 * i] is p.openmetrics_header


def test_empty_prefix():
    assert deflate_pieces([]) == (EMPTY, EMPTY)
    assert concat([]) == EMPTY
    assert single_member(gzip_body(EMPTY, b"# EOF\n")) == b"# EOF\n"
    assert single_member(gzip_body(EMPTY, b"")) == b""


class Clock:
    def wall(self) -> float:
        return 1.0

    def monotonic(self) -> float:
        return 1.0


def test_exposition_gzip_is_what_gunzip_reads():
    cpu = CpuSources(FIXTURES / "vm-2cpu" / "proc", FIXTURES / "vm-2cpu" / "sys", 100, frozenset({"cpu", "meminfo"}))
    cgroups = CgroupSources(FIXTURES / "k8s-node-v2" / "sys" / "fs" / "cgroup", CgroupLimits(), 100)
    snap = take_snapshot(take_cgroup_snapshot(None, cgroups, Clock()), cpu, Clock())
    exposition = Renderer(default_collectors("t"))(snap)
    gunzip = shutil.which("gzip")
    assert gunzip is not None
    for openmetrics in (False, True):
        plain = exposition.body(openmetrics, False)[0]
        assert b"sysmon_cgroup_memory_events_total" in plain and b"sysmon_cpu_seconds_total" in plain
        zipped = exposition.body(openmetrics, True)[0]
        assert single_member(zipped) == plain
        out = subprocess.run([gunzip, "-d", "-c"], input=zipped, capture_output=True, check=True)
        assert out.stdout == plain


def test_the_bodies_asked_of_one_snapshot_are_built_for_the_next_as_it_is_rendered(monkeypatch):
    import exporter.collector as collector

    cpu = CpuSources(FIXTURES / "vm-2cpu" / "proc", FIXTURES / "vm-2cpu" / "sys", 100, frozenset({"cpu", "meminfo"}))
    render = Renderer(default_collectors("t"))
    first = render(take_snapshot(None, cpu, Clock()))
    assert first.asked() == ()  # nothing asked of the snapshot before it
    first.body(True, True)  # Prometheus: OpenMetrics, gzip
    second = render(take_snapshot(None, cpu, Clock()))
    assert second.asked() == ((True, True),)  # built by the render, before any scrape of it
    built = []
    monkeypatch.setattr(collector, "gzip_body", lambda *a: built.append(a) or b"")
    body, _ = second.body(True, True)
    assert built == [] and single_member(body) == second.body(True, False)[0]  # the scrape only picks it up
    assert set(second.asked()) == {(True, True), (True, False)}


@settings(max_examples=100, deadline=None)
@given(st.lists(pieces, min_size=1, max_size=4))
def test_a_deflater_gives_the_bytes_deflate_pieces_gives_render_after_render(renders):
    deflater = Deflater()
    for rendered in renders:
        assert deflater(rendered) == deflate_pieces(rendered)


def test_a_family_whose_lines_did_not_change_keeps_its_compressed_segment():
    same = Piece(b"# HELP a t\n", b"# HELP a o\n", b'a{cgroup="/x"} 1\n' * 1000)
    deflater = Deflater()
    first, _ = deflater([same, Piece(b"# HELP b t\n", b"# HELP b o\n", b"b 1\n")])
    # equal bytes, another object: what the next render of an unchanged family gives
    second, _ = deflater(
        [
            Piece(same.text_header, same.openmetrics_header, bytes(bytearray(same.samples))),
            Piece(b"# HELP b t\n", b"# HELP b o\n", b"b 2\n"),
        ]
    )
    assert second.segments[1] is first.segments[1]  # a's sample lines: not compressed again
    assert second.segments[3] is not first.segments[3]  # b's changed
    assert single_member(gzip_body(second, b"")) == b"".join(second.chunks)


def test_the_very_same_pieces_give_the_very_same_prefixes_and_any_other_list_its_own():
    a = Piece(b"# HELP a t\n", b"# HELP a o\n", b"a 1\n")
    b = Piece(b"# HELP b t\n", b"# HELP b o\n", b"b 1\n")
    deflater = Deflater()
    first = deflater([a, b])
    assert deflater([a, b]) is first  # a cgroup tree none of whose values changed
    for other in ([b, a], [a], [a, b, b], [a, Piece(b.text_header, b.openmetrics_header, b"b 2\n")]):
        assert deflater(other) == deflate_pieces(other)
        assert deflater(list(other)) == deflate_pieces(other)
    assert deflater([a, b]) == first
