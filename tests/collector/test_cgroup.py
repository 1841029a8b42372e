"""The cgroup families: every value spelled by format_value, whatever its type and size."""

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.collector.cgroup import CgroupRenderer, render_cgroup
from exporter.collector.exposition import Piece, escape_label_value, format_value
from exporter.snapshot import Snapshot
from exporter.sources.cgroup import CgroupStats, CgroupTree

NUMBERS = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, 10**15 - 1, 10**15, -(10**15) + 1, -(10**15), 2**53 + 1, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)


@settings(max_examples=300, deadline=None, database=None)
@given(NUMBERS, NUMBERS)
def test_every_sample_value_is_format_values_spelling(usage, seconds):
    stats = CgroupStats(
        memory_usage_bytes=usage,
        cpu_usage_seconds=seconds,
        memory_events={"oom_kill": usage},
        io={"vda": {"read_bytes": usage, "write_bytes": usage, "reads": usage, "writes": usage}},
        pressure_seconds={"cpu": {"some": seconds}},
    )
    tree = CgroupTree("v2", {"/a": stats}, 0, {})
    text = b"".join(p.samples for p in render_cgroup(Snapshot(cgroups=tree))).decode()
    values = {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in text.splitlines()}
    assert values['sysmon_cgroup_memory_usage_bytes{cgroup="/a"}'] == format_value(usage)
    assert values['sysmon_cgroup_memory_events_total{cgroup="/a",event="oom_kill"}'] == format_value(usage)
    assert values['sysmon_cgroup_io_writes_total{cgroup="/a",device="vda"}'] == format_value(usage)
    assert values['sysmon_cgroup_cpu_usage_seconds_total{cgroup="/a"}'] == format_value(seconds)
    assert values['sysmon_cgroup_pressure_cpu_seconds_total{cgroup="/a",kind="some"}'] == format_value(seconds)


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=12))
def test_event_names_are_escaped_as_label_values(event):
    stats = CgroupStats(memory_events={event: 1})
    pieces = render_cgroup(Snapshot(cgroups=CgroupTree("v2", {"/a": stats}, 0, {})))
    text = b"".join(p.samples for p in pieces if b"memory_events" in p.text_header).decode()
    assert text == f'sysmon_cgroup_memory_events_total{{cgroup="/a",event="{escape_label_value(event)}"}} 1\n'


SMALL = st.one_of(st.none(), st.sampled_from([0, 1, 1.0, 2, 10**15, True, 0.5]))
STATS = st.builds(
    CgroupStats,
    memory_usage_bytes=SMALL,
    memory_limit_bytes=SMALL,
    cpu_usage_seconds=SMALL,
    memory_events=st.dictionaries(st.sampled_from(["max", "oom", "oom_kill"]), st.integers(0, 2), max_size=3),
    pressure_seconds=st.dictionaries(
        st.sampled_from(["cpu", "io"]),
        st.dictionaries(st.sampled_from(["some", "full"]), st.sampled_from([0, 1.5])),
        max_size=2,
    ),
    io=st.dictionaries(
        st.sampled_from(["vda", "sda"]), st.fixed_dictionaries({"reads": st.integers(0, 2)}), max_size=2
    ),
)
TREES = st.dictionaries(st.sampled_from(["/", "/a", "/a/b", "/docker/" + "0" * 64]), STATS, min_size=1).map(
    lambda stats: CgroupTree("v2", dict(sorted(stats.items())), 0, {})
)


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(TREES, min_size=2, max_size=5))
def test_a_renderer_kept_across_snapshots_writes_what_a_fresh_one_writes(trees):
    renderer = CgroupRenderer()
    for tree in trees:
        snap = Snapshot(cgroups=tree)
        assert renderer(snap) == render_cgroup(snap)


@settings(max_examples=200, deadline=None, database=None)
@given(TREES, st.lists(st.tuples(st.integers(0, 2), st.one_of(st.none(), STATS)), min_size=1, max_size=5))
def test_a_renderer_handed_the_same_stats_objects_writes_what_a_fresh_one_writes(tree, steps):
    """The cgroup memo hands on the very same stats objects for unchanged cgroups: a tree of
    the same objects keeps the last pieces, unless its dropped count or one cgroup's stats differ."""
    renderer = CgroupRenderer()
    stats = dict(tree.stats)
    renderer(Snapshot(cgroups=tree))
    for dropped, changed in steps:
        if changed is not None:
            stats[next(iter(stats))] = changed
        snap = Snapshot(cgroups=CgroupTree("v2", dict(stats), dropped, {}))
        assert renderer(snap) == render_cgroup(snap)


def test_a_family_whose_values_did_not_change_keeps_its_bytes():
    renderer = CgroupRenderer()

    def pieces(usage: int) -> dict[bytes, Piece]:
        stats = CgroupStats(memory_usage_bytes=usage, memory_limit_bytes=4096, memory_events={"oom_kill": 1})
        return {p.text_header.split()[2]: p for p in renderer(Snapshot(cgroups=CgroupTree("v2", {"/a": stats}, 0, {})))}

    first, second = pieces(1), pieces(2)
    assert second[b"sysmon_cgroup_memory_limit_bytes"] is first[b"sysmon_cgroup_memory_limit_bytes"]
    assert second[b"sysmon_cgroup_memory_events_total"] is first[b"sysmon_cgroup_memory_events_total"]
    assert second[b"sysmon_cgroup_memory_usage_bytes"] is not first[b"sysmon_cgroup_memory_usage_bytes"]
    assert second[b"sysmon_cgroup_memory_usage_bytes"].samples == b'sysmon_cgroup_memory_usage_bytes{cgroup="/a"} 2\n'
