import os
import re
import shutil
import struct
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.sources import SourceError, dirwatch
from exporter.sources.cgroup import (
    V1_FILES,
    V2_FILES,
    WRITTEN_ONLY,
    BlockDevices,
    CgroupLimits,
    CgroupMemo,
    Found,
    container_identity,
    detect_layout,
    merge_fields,
    parse_blkio,
    parse_flat_keyed,
    parse_io_stat,
    parse_memory_stat,
    parse_pressure,
    parse_single,
    read_cgroups,
    read_found,
    walk,
    walk_hierarchy,
)
from exporter.sources.dirwatch import DirectoryWatch
from tests.helpers import FIXTURES, opened_relative

V2_ROOT = FIXTURES / "k8s-node-v2" / "sys" / "fs" / "cgroup"
V1_ROOT = FIXTURES / "legacy-v1" / "sys" / "fs" / "cgroup"
POD = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod5f0d3c7e_8a6b_4c1e_9d2f_1b3a4c5d6e7f.slice"
APP = POD + "/cri-containerd-0d6a51c2e7b94f0a8c3d2b1e4f5a6978c0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5.scope"
DOCKER = "/docker/4f3e2d1c0b9a88776655443322110fedcba98765432100112233445566778899"

# ---- parsers ----

MEMORY_EVENTS = textwrap.dedent("""\
    low 0
    high 12
    max 3
    oom 2
    oom_kill 2
    oom_group_kill 0
""")


def test_flat_keyed():
    assert parse_flat_keyed(MEMORY_EVENTS, "memory.events") == {
        "low": 0,
        "high": 12,
        "max": 3,
        "oom": 2,
        "oom_kill": 2,
        "oom_group_kill": 0,
    }
    assert parse_flat_keyed("", "pids.events") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max 1\nfoo\n", "memory.events:2: expected '<key> <integer>', got 'foo'"),
        ("max 1 2\n", "memory.events:1: expected '<key> <integer>'"),
        ("max one\n", "memory.events:1: max: 'one' is not an integer"),
        ("max 1\noom 2", "memory.events: truncated"),
        ("max 1.5\n", "not an integer"),
    ],
    ids=["no-value", "extra-column", "not-integer", "truncated", "float"],
)
def test_flat_keyed_is_strict(text, message):
    with pytest.raises(SourceError, match=re.escape(message)):
        parse_flat_keyed(text, "memory.events")


def test_single_value_and_max():
    assert parse_single("536870912\n", "memory.max") == 536870912
    assert parse_single("max\n", "memory.max") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected one value and a newline"),
        ("5368", "expected one value and a newline"),
        ("1\n2\n", "expected one value and a newline"),
        ("lots\n", "'lots' is not an integer or 'max'"),
    ],
    ids=["empty", "truncated", "two-values", "garbage"],
)
def test_single_value_is_strict(text, message):
    with pytest.raises(SourceError, match=re.escape(message)):
        parse_single(text, "memory.max")


PSI = textwrap.dedent("""\
    some avg10=6.50 avg60=1.40 avg300=0.41 total=5935503
    full avg10=0.00 avg60=0.00 avg300=0.00 total=120
""")


def test_pressure_total_in_seconds():
    assert parse_pressure(PSI, "cpu.pressure") == {"some": 5.935503, "full": 0.00012}
    # cpu.pressure before 5.13 has no "full" line
    assert parse_pressure(PSI.splitlines(keepends=True)[0], "cpu.pressure") == {"some": 5.935503}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no 'some' line"),
        ("some avg10=1.00 avg60=0.00 avg300=0.00\n", "expected 'some|full"),
        ("some avg10=1.00 avg60=0.00 avg300=0.00 total=x\n", "'total=x' is not total=<integer>"),
        ("partial avg10=0 avg60=0 avg300=0 total=1\n", "expected 'some|full"),
        (PSI[:-10], "truncated"),
        ("\n", "expected 'some|full"),
    ],
    ids=["empty", "no-total", "bad-total", "bad-kind", "truncated", "blank-line"],
)
def test_pressure_is_strict(text, message):
    with pytest.raises(SourceError, match=re.escape(message)):
        parse_pressure(text, "cpu.pressure")


def test_v2_cpu_stat_in_seconds_with_and_without_bandwidth_fields():
    plain = "usage_usec 73225583\nuser_usec 55040063\nsystem_usec 18185520\nnice_usec 0\n"
    assert V2_FILES["cpu.stat"](plain, "cpu.stat", 100) == {
        "cpu_usage_seconds": 73.225583,
        "cpu_user_seconds": 55.040063,
        "cpu_system_seconds": 18.18552,
    }
    throttled = plain + "nr_periods 120\nnr_throttled 40\nthrottled_usec 19233711\nnr_bursts 0\nburst_usec 0\n"
    fields = V2_FILES["cpu.stat"](throttled, "cpu.stat", 100)
    assert fields["cpu_periods"] == 120 and fields["cpu_throttled_periods"] == 40
    assert fields["cpu_throttled_seconds"] == pytest.approx(19.233711)


def test_v1_files_in_base_units():
    v1_cpu = "nr_periods 38\nnr_throttled 36\nthrottled_time 2804558138\nnr_bursts 0\nburst_time 0\n"
    fields = V1_FILES["cpu.stat"](v1_cpu, "cpu.stat", 100)
    assert fields == {"cpu_periods": 38, "cpu_throttled_periods": 36, "cpu_throttled_seconds": 2.804558138}
    assert V1_FILES["cpuacct.usage"]("730452917\n", "cpuacct.usage", 100) == {"cpu_usage_seconds": 0.730452917}
    assert V1_FILES["cpuacct.stat"]("user 30\nsystem 42\n", "cpuacct.stat", 100) == {
        "cpu_user_seconds": 0.3,
        "cpu_system_seconds": 0.42,
    }
    assert V1_FILES["cpuacct.stat"]("user 30\nsystem 42\n", "cpuacct.stat", 250)["cpu_user_seconds"] == 0.12
    oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
    assert V1_FILES["memory.oom_control"](oom, "memory.oom_control", 100) == {"memory_events": {"oom_kill": 3}}
    # before 4.13 memory.oom_control has no oom_kill line: no event rather than a made-up zero
    assert V1_FILES["memory.oom_control"]("oom_kill_disable 0\nunder_oom 0\n", "memory.oom_control", 100) == {}
    assert V1_FILES["memory.failcnt"]("7\n", "memory.failcnt", 100) == {"memory_events": {"max": 7}}


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("9223372036854771712\n", None),  # PAGE_COUNTER_MAX with 4 KiB pages
        ("9223372036854710272\n", None),  # with 64 KiB pages
        ("268435456\n", 268435456),
    ],
    ids=["unlimited-4k", "unlimited-64k", "256MiB"],
)
def test_v1_memory_limit_sentinel_is_no_limit(text, limit):
    assert V1_FILES["memory.limit_in_bytes"](text, "memory.limit_in_bytes", 100) == {"memory_limit_bytes": limit}


def test_merge_first_hierarchy_wins_and_events_union():
    stats = merge_fields(
        [
            {"cpu_usage_seconds": 1.0, "memory_events": {"max": 4}},
            {"memory_events": {"oom_kill": 1, "max": 9}},
            {"cpu_usage_seconds": 2.0, "cpu_user_seconds": 0.5},
        ]
    )
    assert stats.cpu_usage_seconds == 1.0 and stats.cpu_user_seconds == 0.5
    assert stats.memory_events == {"max": 4, "oom_kill": 1}


# ---- memory breakdown, working set, CPU limit and weight, I/O ----

V2_MEMORY_STAT = textwrap.dedent("""\
    anon 421527552
    file 94371840
    kernel 12582912
    kernel_stack 1572864
    pagetables 2097152
    percpu 786432
    sock 0
    shmem 0
    file_mapped 18874368
    file_dirty 0
    inactive_anon 42147840
    active_anon 379379712
    inactive_file 37748736
    active_file 56623104
    slab 6291456
    pgfault 4831022
    pgmajfault 4831
""")


def test_memory_stat_keeps_only_the_keys_asked_for():
    assert parse_memory_stat(V2_MEMORY_STAT, "memory.stat", frozenset({"anon", "pgmajfault", "absent"})) == {
        "anon": 421527552,
        "pgmajfault": 4831,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("anon 1\nfile\n", "memory.stat:2: expected '<key> <integer>', got 'file'"),
        ("anon 1 2\n", "memory.stat:1: expected '<key> <integer>'"),
        ("anon lots\n", "memory.stat:1: anon: 'lots' is not an integer"),
        ("anon 1\nfile 2", "memory.stat: truncated"),
    ],
    ids=["no-value", "extra-column", "not-integer", "truncated"],
)
def test_memory_stat_malformed_line_fails_the_file(text, message):
    with pytest.raises(SourceError, match=re.escape(message)):
        parse_memory_stat(text, "memory.stat", frozenset({"anon", "file"}))


def test_v2_memory_stat_breakdown_and_working_set():
    fields = V2_FILES["memory.stat"](V2_MEMORY_STAT, "memory.stat", 100)
    stats = merge_fields([{"memory_usage_bytes": 528482304}, fields])
    assert stats.memory_rss_bytes == 421527552 and stats.memory_cache_bytes == 94371840
    assert stats.memory_mapped_file_bytes == 18874368 and stats.memory_kernel_bytes == 12582912
    assert stats.memory_failures == {"pgfault": 4831022, "pgmajfault": 4831}
    assert stats.memory_working_set_bytes == 528482304 - 37748736


def test_working_set_is_floored_at_zero_and_needs_both_files():
    # inactive_file above usage happens (the two are read apart; cAdvisor floors at 0 too)
    assert merge_fields([{"memory_usage_bytes": 4096}, {"raw_inactive_file_bytes": 8192}]).memory_working_set_bytes == 0
    assert merge_fields([{"memory_usage_bytes": 4096}]).memory_working_set_bytes is None
    assert merge_fields([{"raw_inactive_file_bytes": 8192}]).memory_working_set_bytes is None


def test_v2_memory_stat_before_5_18_sums_the_kernel_parts_and_missing_keys_leave_metrics_out():
    old = "anon 4096\nkernel_stack 8192\npagetables 4096\npercpu 4096\nsock 0\nslab 12288\n"
    fields = V2_FILES["memory.stat"](old, "memory.stat", 100)
    assert fields == {"memory_rss_bytes": 4096, "memory_kernel_bytes": 8192 + 4096 + 0 + 12288}
    stats = merge_fields([{"memory_usage_bytes": 65536}, fields])
    assert stats.memory_cache_bytes is None and stats.memory_working_set_bytes is None
    assert stats.memory_failures == {}
    assert V2_FILES["memory.stat"]("anon 4096\nslab 12288\n", "memory.stat", 100) == {"memory_rss_bytes": 4096}


def test_v1_memory_stat_uses_the_hierarchical_totals_and_memsw_gives_swap():
    text = "cache 1\nrss 2\nmapped_file 3\npgfault 4\ninactive_file 5\n" + (
        "total_cache 21094400\ntotal_rss 78368768\ntotal_mapped_file 4194304\ntotal_pgfault 31879\n"
        "total_pgmajfault 2\ntotal_inactive_file 16777216\n"
    )
    fields = V1_FILES["memory.stat"](text, "memory.stat", 100)
    usage = V1_FILES["memory.usage_in_bytes"]("100589568\n", "memory.usage_in_bytes", 100)
    memsw = V1_FILES["memory.memsw.usage_in_bytes"]("109051904\n", "memory.memsw.usage_in_bytes", 100)
    stats = merge_fields([usage, fields, memsw])
    assert (stats.memory_rss_bytes, stats.memory_cache_bytes, stats.memory_mapped_file_bytes) == (
        78368768,
        21094400,
        4194304,
    )
    assert stats.memory_failures == {"pgfault": 31879, "pgmajfault": 2}
    assert stats.memory_working_set_bytes == 100589568 - 16777216
    assert stats.memory_swap_bytes == 109051904 - 100589568


@pytest.mark.parametrize(
    ("text", "cores"),
    [("max 100000\n", None), ("50000 100000\n", 0.5), ("150000 100000\n", 1.5), ("1000 1000\n", 1.0)],
    ids=["max", "half", "one-and-a-half", "short-period"],
)
def test_cpu_max(text, cores):
    assert V2_FILES["cpu.max"](text, "cpu.max", 100) == {"cpu_limit_cores": cores}


@pytest.mark.parametrize("text", ["max\n", "50000 0\n", "fifty 100000\n", "50000 100000"], ids=str)
def test_cpu_max_is_strict(text):
    with pytest.raises(SourceError, match=re.escape("cpu.max")):
        V2_FILES["cpu.max"](text, "cpu.max", 100)


def test_v1_cpu_limit_from_quota_and_period():
    period = V1_FILES["cpu.cfs_period_us"]("100000\n", "cpu.cfs_period_us", 100)
    assert merge_fields([V1_FILES["cpu.cfs_quota_us"]("50000\n", "q", 100), period]).cpu_limit_cores == 0.5
    assert merge_fields([V1_FILES["cpu.cfs_quota_us"]("-1\n", "q", 100), period]).cpu_limit_cores is None


@pytest.mark.parametrize(
    ("shares", "weight"),
    [(1024, 100), (512, 50), (2, 1), (102, 10), (262144, 10000), (10, 1)],
    ids=["default", "half", "min", "rounded", "max", "clamped-low"],
)
def test_v1_cpu_shares_on_the_v2_weight_scale(shares, weight):
    assert V1_FILES["cpu.shares"](f"{shares}\n", "cpu.shares", 100) == {"cpu_weight": weight}


IO_STAT = textwrap.dedent("""\
    259:0 rbytes=1048576000 wbytes=2147483648 rios=25600 wios=52428 dbytes=0 dios=0
    8:0 rbytes=0 wbytes=0 rios=0 wios=0 dbytes=0 dios=0
    253:3 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0 cost.vrate=100.00
""")


def test_io_stat_keeps_bytes_and_operations():
    assert parse_io_stat(IO_STAT, "io.stat")["259:0"] == {
        "read_bytes": 1048576000,
        "write_bytes": 2147483648,
        "reads": 25600,
        "writes": 52428,
    }
    assert parse_io_stat("", "io.stat") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("vda rbytes=1\n", "io.stat:1: expected 'MAJ:MIN key=value ...'"),
        ("../../x rbytes=1\n", "io.stat:1: expected 'MAJ:MIN key=value ...'"),
        ("8:0 rbytes\n", "io.stat:1: expected key=value, got 'rbytes'"),
        ("8:0 rbytes=x\n", "io.stat:1: rbytes: 'x' is not an integer"),
        ("8:0 rbytes=1", "io.stat: truncated"),
    ],
    ids=["name-not-number", "path", "no-value", "not-integer", "truncated"],
)
def test_io_stat_is_strict(text, message):
    with pytest.raises(SourceError, match=re.escape(message)):
        parse_io_stat(text, "io.stat")


BLKIO = (
    "254:0 Read 1163264\n254:0 Write 4194304\n254:0 Sync 5357568\n254:0 Async 0\n254:0 Total 5357568\nTotal 5357568\n"
)


def test_blkio_keeps_read_and_write():
    assert parse_blkio(BLKIO, "b", "read_bytes", "write_bytes") == {
        "254:0": {"read_bytes": 1163264, "write_bytes": 4194304}
    }
    assert parse_blkio("Total 0\n", "b", "reads", "writes") == {}
    with pytest.raises(SourceError, match=re.escape("b:1: expected 'MAJ:MIN <op> <integer>' or 'Total <integer>'")):
        parse_blkio("254:0 Read\n", "b", "reads", "writes")
    with pytest.raises(SourceError, match=re.escape("b:1: Read: 'x' is not an integer")):
        parse_blkio("254:0 Read x\n", "b", "reads", "writes")


def test_v1_io_throttle_counters_else_bfq_per_device():
    throttle = V1_FILES["blkio.throttle.io_service_bytes_recursive"](
        "8:0 Read 0\n8:0 Write 0\n254:0 Read 10\n254:0 Write 20\nTotal 30\n", "t", 100
    )
    throttle_ops = V1_FILES["blkio.throttle.io_serviced_recursive"]("254:0 Read 1\n254:0 Write 2\nTotal 3\n", "t", 100)
    bfq = V1_FILES["blkio.bfq.io_service_bytes_recursive"](
        "8:0 Read 4096\n8:0 Write 0\n254:0 Read 99\nTotal 1\n", "b", 100
    )
    stats = merge_fields([throttle, throttle_ops, bfq])
    assert stats.io == {
        "254:0": {"read_bytes": 10, "write_bytes": 20, "reads": 1, "writes": 2},  # throttle: counting
        "8:0": {"read_bytes": 4096, "write_bytes": 0},  # throttle all zero (no rule on it): BFQ's
    }


def test_io_devices_named_from_sysfs_zeros_and_vanished_left_out(tmp_path):
    for dev, name in (("259:0", "nvme0n1"), ("259:1", "nvme0n1p1"), ("8:0", "sda")):
        (tmp_path / "dev" / "block" / dev).mkdir(parents=True)
        (tmp_path / "dev" / "block" / dev / "uevent").write_text(f"MAJOR=x\nMINOR=y\nDEVNAME={name}\n")
    (tmp_path / "dev" / "block" / "7:0").mkdir()
    (tmp_path / "dev" / "block" / "7:0" / "uevent").write_text("MAJOR=7\nMINOR=0\n")
    devices = BlockDevices(tmp_path)
    text = IO_STAT + "259:1 rbytes=512 wbytes=0 rios=1 wios=0\n7:0 rbytes=1 wbytes=0 rios=1 wios=0\n"
    stats = merge_fields([V2_FILES["io.stat"](text, "io.stat", 100)], devices)
    # sda all zero: omitted; 253:3 not in sysfs (removed): skipped; a partition keeps its name;
    # a uevent without DEVNAME: MAJ:MIN
    assert list(stats.io) == ["7:0", "nvme0n1", "nvme0n1p1"]
    assert stats.io["nvme0n1"]["write_bytes"] == 2147483648
    # without <sysfs>/dev/block nothing tells a removed device: every device keeps MAJ:MIN
    bare = merge_fields([V2_FILES["io.stat"](IO_STAT, "io.stat", 100)], BlockDevices(tmp_path / "none"))
    assert list(bare.io) == ["253:3", "259:0"]


# ---- identity ----


@pytest.mark.parametrize(
    ("path", "identity"),
    [
        (POD, ("5f0d3c7e-8a6b-4c1e-9d2f-1b3a4c5d6e7f", "")),
        (
            APP,
            (
                "5f0d3c7e-8a6b-4c1e-9d2f-1b3a4c5d6e7f",
                "0d6a51c2e7b94f0a8c3d2b1e4f5a6978c0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5",
            ),
        ),
        (
            "/kubepods/burstable/pod5f0d3c7e-8a6b-4c1e-9d2f-1b3a4c5d6e7f/" + "ab" * 32,
            ("5f0d3c7e-8a6b-4c1e-9d2f-1b3a4c5d6e7f", "ab" * 32),
        ),
        (
            "/kubepods.slice/kubepods-pod5f0d3c7e_8a6b_4c1e_9d2f_1b3a4c5d6e7f.slice",
            ("5f0d3c7e-8a6b-4c1e-9d2f-1b3a4c5d6e7f", ""),
        ),
        ("/system.slice/docker-" + "cd" * 32 + ".scope", ("", "cd" * 32)),
        ("/machine.slice/crio-" + "ef" * 32 + ".scope", ("", "ef" * 32)),
        ("/docker/" + "01" * 32, ("", "01" * 32)),
        ("/system.slice/docker.service", None),
        ("/process_api/47716c87ab91aada2af0317b546635c8", None),  # 32 hex: not a container ID
        ("/", None),
    ],
    ids=[
        "systemd-pod",
        "systemd-container",
        "cgroupfs",
        "guaranteed",
        "docker",
        "crio",
        "docker-cgroupfs",
        "service",
        "short-hex",
        "root",
    ],
)
def test_container_identity(path, identity):
    assert container_identity(path) == identity


# ---- layout and walk ----


def test_layouts(tmp_path):
    assert detect_layout(V2_ROOT).name == "v2"
    v1 = detect_layout(V1_ROOT)
    assert v1.name == "v1"
    # cpu and cpuacct are symlinks to cpu,cpuacct; systemd has no controller we read
    assert [h.path.name for h in v1.hierarchies] == ["blkio", "cpu,cpuacct", "memory", "pids"]
    hybrid = tmp_path / "hybrid"
    shutil.copytree(V1_ROOT, hybrid, symlinks=True)
    shutil.copytree(V2_ROOT, hybrid / "unified")
    layout = detect_layout(hybrid)
    assert layout.name == "hybrid"
    assert [(h.version, h.path.name) for h in layout.hierarchies][-1] == (2, "unified")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no cgroup2 mount and no v1"):
        detect_layout(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        detect_layout(tmp_path / "absent")


def test_v2_tree_is_read_in_base_units():
    tree = read_cgroups(V2_ROOT, CgroupLimits(), 100)
    assert tree.layout == "v2" and tree.errors == {} and tree.dropped == 0
    assert len(tree.stats) == 14
    app = tree.stats[APP]
    assert app.memory_events["oom_kill"] == 2 and app.memory_limit_bytes == 536870912
    assert app.cpu_throttled_seconds == pytest.approx(19.233711)
    assert app.pressure_seconds["memory"] == {"some": 0.901992, "full": 0.450996}
    root = tree.stats["/"]
    assert root.memory_usage_bytes is None and root.pids_current is None and root.cpu_usage_seconds == 861.523417
    assert tree.stats["/init.scope"].memory_limit_bytes is None  # memory.max "max"
    assert app.memory_working_set_bytes == 487260160 and app.memory_high_bytes == 483183820
    assert app.memory_swap_bytes == 8388608 and app.cpu_limit_cores == 1.5 and app.cpu_weight == 20
    # 253:3 is in io.stat but not in the fixture's sysfs (a removed volume); sda's line is all zero
    assert list(app.io) == ["nvme0n1"] and app.io["nvme0n1"]["reads"] == 25600
    assert list(root.io) == ["nvme0n1"] and root.memory_working_set_bytes is None  # no memory.current
    assert tree.stats["/init.scope"].cpu_limit_cores is None and tree.stats["/init.scope"].memory_high_bytes is None


def test_v1_tree_is_the_union_of_its_hierarchies():
    tree = read_cgroups(V1_ROOT, CgroupLimits(), 100)
    assert tree.layout == "v1" and tree.errors == {}
    c = tree.stats[DOCKER]
    assert c.memory_limit_bytes == 268435456 and c.memory_events == {"max": 0, "oom_kill": 0}
    assert c.cpu_usage_seconds == 0.867180716 and c.cpu_user_seconds == 0.21 and c.cpu_throttled_periods == 43
    assert c.pids_limit == 64
    assert tree.stats["/"].memory_limit_bytes is None  # the unlimited sentinel
    # made by make.sh: 64 MiB touched, 16 MiB of page cache (inactive), 4 MiB written with O_DIRECT
    assert c.memory_rss_bytes is not None and c.memory_rss_bytes >= 64 << 20
    assert c.memory_working_set_bytes == c.memory_usage_bytes - (16 << 20)
    assert c.cpu_limit_cores == 0.2 and c.cpu_weight == 50 and tree.stats["/docker"].cpu_limit_cores is None
    assert c.io["vda"]["write_bytes"] == 4 << 20 and c.io["vda"]["writes"] > 0


def test_hybrid_v1_wins_and_v2_fills_in(tmp_path):
    root = tmp_path / "cg"
    shutil.copytree(V1_ROOT, root, symlinks=True)
    unified = root / "unified"
    (unified / "docker" / DOCKER.rsplit("/", 1)[1]).mkdir(parents=True)
    (unified / "cgroup.controllers").write_text("hugetlb\n")
    (unified / DOCKER.lstrip("/") / "cpu.stat").write_text("usage_usec 9000000\nuser_usec 1\nsystem_usec 2\n")
    (unified / DOCKER.lstrip("/") / "io.pressure").write_text(PSI)
    (unified / "only-v2").mkdir()
    (unified / "only-v2" / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
    tree = read_cgroups(root, CgroupLimits(), 100)
    assert tree.layout == "hybrid"
    c = tree.stats[DOCKER]
    assert c.cpu_usage_seconds == 0.867180716  # cpuacct, not the v2 core stats
    assert c.pressure_seconds["io"]["some"] == 5.935503  # only v2 has it
    assert tree.stats["/only-v2"].cpu_usage_seconds == 1.5


def paths(limits: CgroupLimits, root: Path = V2_ROOT) -> list[str]:
    return [f.path for f in walk(detect_layout(root), limits).found]


def test_max_depth_include_exclude():
    assert paths(CgroupLimits(max_depth=0)) == ["/"]
    assert paths(CgroupLimits(max_depth=1)) == ["/", "/init.scope", "/kubepods.slice", "/system.slice"]
    assert paths(CgroupLimits(include=re.compile(r"\.service$"))) == [
        "/system.slice/containerd.service",
        "/system.slice/kubelet.service",
    ]
    kept = paths(CgroupLimits(exclude=re.compile(r"^/kubepods")))
    assert kept == [
        "/",
        "/init.scope",
        "/system.slice",
        "/system.slice/containerd.service",
        "/system.slice/kubelet.service",
    ]


def test_max_count_drops_the_deepest():
    walked = walk(detect_layout(V2_ROOT), CgroupLimits(max_count=6))
    assert walked.dropped == 14 - 6
    assert [f.path for f in walked.found] == [
        "/",
        "/init.scope",
        "/kubepods.slice",
        "/kubepods.slice/kubepods-besteffort.slice",
        "/kubepods.slice/kubepods-burstable.slice",
        "/system.slice",
    ]


def test_cgroup_removed_between_walk_and_read_is_skipped_silently(tmp_path):
    root = tmp_path / "cg"
    shutil.copytree(V2_ROOT, root)
    layout = detect_layout(root)
    walked = walk(layout, CgroupLimits())
    shutil.rmtree(root / "system.slice" / "kubelet.service")
    errors: dict[str, str] = {}
    stats = read_found(walked.found, 100, errors)
    assert errors == {}
    assert "/system.slice/kubelet.service" not in stats
    assert len(stats) == 13 and stats["/system.slice/containerd.service"].pids_limit == 19083


def test_cgroup_removed_while_the_walk_lists_its_parent_is_skipped_silently(tmp_path):
    root = tmp_path / "cg"
    shutil.copytree(V2_ROOT, root)
    errors: dict[str, str] = {}
    seen = []
    for cgroup, _, _, _ in walk_hierarchy(detect_layout(root).hierarchies[0], 6, errors):
        seen.append(cgroup)
        if cgroup == "/system.slice":  # listed, its children not yet: one of them goes now
            shutil.rmtree(root / "system.slice" / "kubelet.service")
    assert errors == {}
    assert "/system.slice/containerd.service" in seen and "/system.slice/kubelet.service" not in seen
    assert len(seen) == 13


def test_garbage_file_fails_that_file_only(tmp_path):
    root = tmp_path / "cg"
    shutil.copytree(V2_ROOT, root)
    (root / APP.lstrip("/") / "memory.events").write_text("oom_kill lots\n")
    tree = read_cgroups(root, CgroupLimits(), 100)
    bad = f"{root}{APP}/memory.events"
    assert tree.errors == {bad: f"{bad}:1: oom_kill: 'lots' is not an integer"}
    assert tree.stats[APP].memory_events == {} and tree.stats[APP].memory_usage_bytes == 528482304
    assert tree.stats[POD].memory_events["oom_kill"] == 2 and len(tree.stats) == 14


def test_malformed_memory_stat_and_io_stat_fail_that_file_for_that_cgroup_only(tmp_path):
    root = tmp_path / "cg"
    shutil.copytree(V2_ROOT, root)
    (root / APP.lstrip("/") / "memory.stat").write_text("anon 1\nfile\n")
    (root / POD.lstrip("/") / "io.stat").write_text("259:0 rbytes=lots\n")
    tree = read_cgroups(root, CgroupLimits(), 100, V2_ROOT.parent.parent)
    stat, io = f"{root}{APP}/memory.stat", f"{root}{POD}/io.stat"
    assert tree.errors == {
        stat: f"{stat}:2: expected '<key> <integer>', got 'file'",
        io: f"{io}:1: rbytes: 'lots' is not an integer",
    }
    app, pod = tree.stats[APP], tree.stats[POD]
    assert app.memory_working_set_bytes is None and app.memory_rss_bytes is None and app.io
    assert app.memory_usage_bytes == 528482304 and pod.io == {} and pod.memory_working_set_bytes is not None
    assert tree.stats[POD.rsplit("/", 1)[0]].io["nvme0n1"]["reads"] == 25631


def test_devices_are_named_from_the_sysfs_holding_the_cgroupfs_else_keep_maj_min(tmp_path):
    assert list(read_cgroups(V2_ROOT, CgroupLimits(), 100).stats[APP].io) == ["nvme0n1"]  # <fixture>/sys/fs/cgroup
    elsewhere = tmp_path / "cg"
    shutil.copytree(V2_ROOT, elsewhere)
    assert list(read_cgroups(elsewhere, CgroupLimits(), 100).stats[APP].io) == ["253:3", "259:0"]
    given = read_cgroups(elsewhere, CgroupLimits(), 100, V2_ROOT.parent.parent)
    assert list(given.stats[APP].io) == ["nvme0n1"]


def _counting(monkeypatch, table, name):
    calls = []
    parse = table[name]

    def counted(text, path, hz):
        calls.append(path)
        return parse(text, path, hz)

    monkeypatch.setitem(table, name, counted)
    return calls


def test_memo_parses_only_cgroups_whose_files_changed(tmp_path, monkeypatch):
    root = tmp_path / "sys" / "fs" / "cgroup"
    shutil.copytree(V2_ROOT.parent.parent.parent, tmp_path, dirs_exist_ok=True)
    memo = CgroupMemo()
    first = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    stat_calls = _counting(monkeypatch, V2_FILES, "memory.stat")
    current_calls = _counting(monkeypatch, V2_FILES, "memory.current")
    again = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert stat_calls == [] and current_calls == []
    assert again.stats == first.stats and all(again.stats[p] is first.stats[p] for p in first.stats)

    app = root / APP.lstrip("/")
    (app / "memory.current").write_text("600000000\n")
    moved = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert current_calls == [f"{app}/memory.current"] and stat_calls == [f"{app}/memory.stat"]
    assert moved.stats[APP].memory_usage_bytes == 600000000
    assert moved.stats[APP].memory_working_set_bytes == 600000000 - first.stats[APP].memory_usage_bytes + (
        first.stats[APP].memory_working_set_bytes
    )
    assert moved.stats[APP] is not first.stats[APP] and moved.stats[POD] is first.stats[POD]
    assert moved == read_cgroups(root, CgroupLimits(), 100)  # what reading afresh gives


def test_memo_walk_lists_anew_a_directory_whose_names_changed(tmp_path):
    # the memo keeps each directory's listing, taken again for the same names alone: a file or a
    # cgroup that comes or goes must show, as it does when the tree is walked afresh
    root = tmp_path / "cg"
    shutil.copytree(V2_ROOT, root)
    app = root / APP.lstrip("/")
    (app / "memory.high").unlink()
    memo = CgroupMemo()
    first = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert first.stats[APP].memory_high_bytes is None and first.stats[APP].pids_current is not None
    (app / "memory.high").write_text("1000\n")
    (app / "pids.current").unlink()
    (app / "sidecar.scope").mkdir()
    (app / "sidecar.scope" / "pids.current").write_text("3\n")
    shutil.rmtree(root / "system.slice" / "kubelet.service")
    again = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert again == read_cgroups(root, CgroupLimits(), 100)  # what walking afresh gives
    assert again.stats[APP].memory_high_bytes == 1000 and again.stats[APP].pids_current is None
    assert again.stats[APP + "/sidecar.scope"].pids_current == 3
    assert "/system.slice/kubelet.service" not in again.stats
    assert set(memo.listings) == {f"{root}{path}" if path != "/" else str(root) for path in again.stats}


def test_memo_keeps_stats_only_for_the_same_files(tmp_path):
    for name in ("memory.max", "memory.high"):
        (tmp_path / name).write_text("1000\n")
    memo = CgroupMemo()
    limit = read_found([Found("/x", ((str(tmp_path), 2, ("memory.max",)),))], 100, {}, memo=memo)
    high = read_found([Found("/x", ((str(tmp_path), 2, ("memory.high",)),))], 100, {}, memo=memo)
    assert limit["/x"].memory_limit_bytes == 1000 and limit["/x"].memory_high_bytes is None
    assert high["/x"].memory_high_bytes == 1000 and high["/x"].memory_limit_bytes is None


def test_memo_does_not_keep_a_device_name_sysfs_no_longer_gives(tmp_path):
    shutil.copytree(V2_ROOT.parent.parent.parent, tmp_path, dirs_exist_ok=True)
    root = tmp_path / "sys" / "fs" / "cgroup"
    memo = CgroupMemo()
    assert list(read_cgroups(root, CgroupLimits(), 100, memo=memo).stats[APP].io) == ["nvme0n1"]
    (tmp_path / "sys" / "dev" / "block" / "259:0" / "uevent").write_text("MAJOR=259\nMINOR=0\nDEVNAME=nvme1n1\n")
    assert list(read_cgroups(root, CgroupLimits(), 100, memo=memo).stats[APP].io) == ["nvme1n1"]
    shutil.rmtree(tmp_path / "sys" / "dev" / "block" / "259:0")
    assert read_cgroups(root, CgroupLimits(), 100, memo=memo).stats[APP].io == {}


def test_memo_reads_a_file_whole_that_grew_past_its_last_size(tmp_path):
    # the memo's next read of a file asks for its last size and a little more: one that grew by
    # more still reads whole, its kept keys last
    shutil.copytree(V2_ROOT.parent.parent.parent, tmp_path, dirs_exist_ok=True)
    root = tmp_path / "sys" / "fs" / "cgroup"
    memo = CgroupMemo()
    read_cgroups(root, CgroupLimits(), 100, memo=memo)
    stat = root / APP.lstrip("/") / "memory.stat"
    text = stat.read_text()
    stat.write_text("".join(f"unkept_{n} {n}\n" for n in range(40)) + text.replace("anon ", "anon 1"))
    current = root / APP.lstrip("/") / "memory.current"
    current.write_text(current.read_text().strip() + "0\n")  # a digit more: within the slack
    grown = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert grown.errors == {} and grown == read_cgroups(root, CgroupLimits(), 100)
    assert str(grown.stats[APP].memory_rss_bytes).startswith("1")


def test_memo_never_holds_a_file_that_failed(tmp_path):
    root = tmp_path / "cg"
    shutil.copytree(V2_ROOT, root)
    memo = CgroupMemo()
    events = root / APP.lstrip("/") / "memory.events"
    good = events.read_text()
    events.write_text("oom_kill lots\n")
    for _ in range(2):  # a file that keeps failing fails every cycle, not just the first
        tree = read_cgroups(root, CgroupLimits(), 100, memo=memo)
        assert list(tree.errors) == [str(events)] and tree.stats[APP].memory_events == {}
    events.write_text(good)
    tree = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert tree.errors == {} and tree.stats[APP].memory_events["oom_kill"] == 2
    assert set(memo.cgroups) == set(tree.stats)
    limit = root / APP.lstrip("/") / "pids.max"  # and from good to bad (its last file): no last stats kept
    assert tree.stats[APP].pids_limit is not None
    limit.write_text("lots\n")
    tree = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert list(tree.errors) == [str(limit)] and tree.stats[APP].pids_limit is None
    assert APP not in memo.cgroups
    limit.write_text("4096\n")
    shutil.rmtree(root / "system.slice" / "kubelet.service")  # a cgroup gone leaves the memo with it
    tree = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert "/system.slice/kubelet.service" not in memo.cgroups and set(memo.cgroups) == set(tree.stats)


def test_memory_stat_form_of_keys_not_kept_is_checked_but_their_values_are_not_parsed():
    # the fast path (whole file well-formed) and the line-by-line one agree
    text = "anon 4096\nweird_key 12abc\nfile 8192\n"
    assert parse_memory_stat(text, "memory.stat", frozenset({"anon", "file"})) == {"anon": 4096, "file": 8192}
    assert parse_memory_stat(text.replace("12abc", "12"), "memory.stat", frozenset({"anon", "file"})) == {
        "anon": 4096,
        "file": 8192,
    }
    with pytest.raises(SourceError, match=re.escape("memory.stat:2: weird_key: '12abc' is not an integer")):
        parse_memory_stat(text, "memory.stat", frozenset({"weird_key"}))


# ---- the kernel's form and everything else parse alike ----
# The parsers take a whole-file regex path for text in the form the kernel writes and a
# line-by-line path for the rest; these compare both with a plain reading of the same lines.

KEYS = st.sampled_from(["usage_usec", "nr_periods", "oom_kill", "max", "low", "core_sched.force_idle_usec", "x1"])
VALUES = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # 20 digits: the line-by-line path
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(KEYS, VALUES), max_size=12))
def test_flat_keyed_reads_every_line_whatever_path(rows):
    text = "".join(f"{key} {value}\n" for key, value in rows)
    assert parse_flat_keyed(text, "cpu.stat") == {key: value for key, value in rows}


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(st.integers(min_value=0, max_value=2**64 - 1), st.just(None)))
def test_single_reads_every_value_whatever_path(value):
    assert parse_single("max\n" if value is None else f"{value}\n", "pids.max") == value


COUNTER = st.integers(min_value=0, max_value=2**64 - 1)
EXTRA = st.lists(st.sampled_from(["dbytes=0", "dios=7", "cost.vrate=100.00", "depth=max", "avg_lat=12"]), max_size=3)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["8:0", "259:0", "253:3"]), st.tuples(COUNTER, COUNTER, COUNTER, COUNTER), EXTRA),
        max_size=4,
    ),
    st.booleans(),
)
def test_io_stat_reads_every_line_whatever_path(rows, reordered):
    keys = ("rbytes", "wbytes", "rios", "wios")
    lines = []
    for dev, counters, extra in rows:
        fields = [f"{k}={v}" for k, v in zip(keys, counters, strict=True)]
        lines.append(" ".join([dev, *(fields[::-1] if reordered else fields), *extra]) + "\n")
    expected = {
        dev: dict(zip(("read_bytes", "write_bytes", "reads", "writes"), counters, strict=True))
        for dev, counters, _ in rows
    }
    assert parse_io_stat("".join(lines), "io.stat") == expected


PSI_LINE = st.builds(
    "{} avg10={:.2f} avg60={:.2f} avg300={:.2f} total={}\n".format,
    st.sampled_from(["some", "full"]),
    *[st.floats(min_value=0, max_value=100)] * 3,
    st.integers(min_value=0, max_value=10**20),
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(PSI_LINE, min_size=1, max_size=3))
def test_pressure_reads_every_line_whatever_path(lines):
    text = "".join(lines)
    expected = {line.split()[0]: int(line.split("total=")[1]) / 1e6 for line in lines}
    if "some" not in expected:
        with pytest.raises(SourceError, match="no 'some' line"):
            parse_pressure(text, "cpu.pressure")
    else:
        assert parse_pressure(text, "cpu.pressure") == expected


# ---- limits read only where something was written (exporter.sources.dirwatch) ----


def test_limits_are_read_again_only_where_something_was_written(tmp_path, monkeypatch):
    root = tmp_path / "cg"
    shutil.copytree(V2_ROOT, root)
    memo = CgroupMemo()
    first = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert memo.watch is not None  # tmp_path is on a local filesystem
    cgroups = len(first.stats)
    opened = opened_relative(monkeypatch)
    again = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    files = [name for made in memo.cgroups.values() for _, _, names in made[0] for name in names]
    assert again == first and WRITTEN_ONLY & set(files)
    assert sorted(opened) == sorted(name for name in files if name not in WRITTEN_ONLY)
    opened.clear()
    app = root / APP.lstrip("/")
    (app / "memory.max").write_text("2147483648\n")
    (app / "cpu.max").write_text("50000 100000\n")
    moved = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert moved.stats[APP].memory_limit_bytes == 2147483648 and moved.stats[APP].cpu_limit_cores == 0.5
    assert sorted(n for n in opened if n in WRITTEN_ONLY) == sorted(
        WRITTEN_ONLY & {p.name for p in app.iterdir()}
    )  # the written cgroup's limits, all of them, and no other's
    assert moved == read_cgroups(root, CgroupLimits(), 100)  # what reading afresh gives
    assert len(moved.stats) == cgroups


def test_a_cgroup_made_again_under_its_name_has_its_limits_read_without_any_event(tmp_path):
    # cgroupfs raises no event for a watched cgroup's rmdir: here no event comes at all, and the
    # cgroup made again is told from the old by its directory's inode and change time
    root = tmp_path / "cg"
    shutil.copytree(V2_ROOT, root)
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    wds = iter(range(1, 1000))
    memo = CgroupMemo()
    memo.watch = DirectoryWatch(read_end, add=lambda fd, path, mask: next(wds))
    memo.watch._remove = lambda fd, wd: 0
    memo.watching = (str(root),)
    try:
        for _ in range(2):
            assert read_cgroups(root, CgroupLimits(), 100, memo=memo).stats[APP].cpu_limit_cores == 1.5
        app = root / APP.lstrip("/")
        kept = tmp_path / "kept"
        shutil.copytree(app, kept)
        shutil.rmtree(app)
        (kept / "cpu.max").write_text("25000 100000\n")
        shutil.copytree(kept, app)
        again = read_cgroups(root, CgroupLimits(), 100, memo=memo)
        assert again.stats[APP].cpu_limit_cores == 0.25
        assert again == read_cgroups(root, CgroupLimits(), 100)
    finally:
        os.close(write_end)
        memo.watch.close()


def test_limits_on_a_filesystem_not_watched_are_read_every_cycle(tmp_path, monkeypatch):
    root = tmp_path / "cg"
    shutil.copytree(V2_ROOT, root)
    monkeypatch.setattr(dirwatch, "filesystem_type", lambda path: 0x6969)  # NFS_SUPER_MAGIC
    memo = CgroupMemo()
    read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert memo.watch is None
    opened = opened_relative(monkeypatch)
    read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert "cpu.max" in opened and "memory.max" in opened


class SilentWatch:
    """A DirectoryWatch given no events but those sent by hand (cgroupfs sends none for what
    its kernel side adds or removes), its descriptors handed out by path."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wds: dict[bytes, int] = {}
        self.watch = DirectoryWatch(self.read_end, add=self.add)
        self.watch._remove = lambda fd, wd: 0

    def add(self, fd: int, path: bytes, mask: int) -> int:
        return self.wds.setdefault(path, len(self.wds) + 1)

    def event(self, directory: Path) -> None:
        os.write(self.write_end, struct.pack("iIII", self.wds[os.fsencode(directory)], dirwatch.IN_MODIFY, 0, 0))

    def close(self) -> None:
        os.close(self.write_end)
        self.watch.close()


@pytest.fixture
def silent(tmp_path):
    root = tmp_path / "cg"
    shutil.copytree(V2_ROOT, root)
    s = SilentWatch()
    memo = CgroupMemo()
    memo.watch, memo.watching = s.watch, (str(root),)
    yield root, memo, s
    s.close()


def test_a_listing_is_taken_again_only_after_an_event_in_it_or_its_parent(silent, monkeypatch):
    root, memo, watch = silent
    first = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    listed: list[str] = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listed.append(path) or real(path))
    assert read_cgroups(root, CgroupLimits(), 100, memo=memo) == first
    assert listed == [str(root)]  # the hierarchy's root alone, which has no parent to vouch for it
    app = root / APP.lstrip("/")
    (app / "sidecar.scope").mkdir()  # no event comes: not seen
    (app / "sidecar.scope" / "pids.current").write_text("3\n")
    assert APP + "/sidecar.scope" not in read_cgroups(root, CgroupLimits(), 100, memo=memo).stats
    watch.event(app.parent)  # the pod's cgroup.subtree_control written: its children are listed again
    listed.clear()
    tree = read_cgroups(root, CgroupLimits(), 100, memo=memo)
    assert tree.stats[APP + "/sidecar.scope"].pids_current == 3 and str(app) in listed
    assert tree == read_cgroups(root, CgroupLimits(), 100)


def test_every_listing_is_taken_again_every_so_often(silent):
    root, memo, _ = silent
    read_cgroups(root, CgroupLimits(), 100, memo=memo)
    (root / APP.lstrip("/") / "sidecar.scope").mkdir()
    seen = [APP + "/sidecar.scope" in read_cgroups(root, CgroupLimits(), 100, memo=memo).stats for _ in range(12)]
    assert seen == [False] * 11 + [True]  # RELIST_EVERY


def test_a_file_gone_from_a_listing_taken_as_unchanged_is_left_out_and_listed_again(silent):
    root, memo, _ = silent
    read_cgroups(root, CgroupLimits(), 100, memo=memo)
    read_cgroups(root, CgroupLimits(), 100, memo=memo)
    (root / APP.lstrip("/") / "memory.stat").unlink()  # its controller moved to another hierarchy: no event
    for _ in range(2):
        tree = read_cgroups(root, CgroupLimits(), 100, memo=memo)
        assert tree.errors == {} and tree == read_cgroups(root, CgroupLimits(), 100)
        assert tree.stats[APP].memory_rss_bytes is None
