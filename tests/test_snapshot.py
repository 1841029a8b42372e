import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.snapshot import (
    CpuSources,
    Deadline,
    Frequency,
    Monotonic,
    Snapshot,
    SourceStatus,
    refresh_instants,
    take_snapshot,
)
from exporter.sources import HeldFiles
from exporter.sources.perf import PerfReading
from tests.helpers import FIXTURES, ROOT

ALL = frozenset({"cpu", "cpufreq", "cpuinfo", "perf", "meminfo"})
NO_PERF = ALL - {"perf"}


class FixedClock:
    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        self.t = wall

    def wall(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t


def readers(root: Path, collectors=NO_PERF, perf=None, perf_error="") -> CpuSources:
    return CpuSources(root / "proc", root / "sys", 100, frozenset(collectors), perf, perf_error)


def test_vm_without_cpufreq_falls_back_to_cpuinfo():
    snap = take_snapshot(None, readers(FIXTURES / "vm-2cpu"), FixedClock())
    assert snap.cpus == (0, 1)
    assert {c: (f.source, f.hertz) for c, f in snap.frequency.items()} == {
        0: ("cpuinfo", pytest.approx(2599.998e6)),
        1: ("cpuinfo", pytest.approx(2599.998e6)),
    }
    assert not snap.statuses["cpufreq"].success
    assert "no cpufreq driver" in snap.statuses["cpufreq"].error
    assert snap.statuses["cpuinfo"].success and snap.statuses["cpu"].success
    assert snap.cpu_usage_ratio == {}  # one sample is no window


def test_cpufreq_wins_and_offline_cpu_is_not_reported():
    snap = take_snapshot(None, readers(FIXTURES / "baremetal-8cpu"), FixedClock())
    assert snap.cpus == (0, 1, 2, 3, 4, 6, 7)
    assert set(snap.frequency) == set(snap.cpus)
    assert all(f.source == "cpufreq" for f in snap.frequency.values())
    assert snap.frequency[0].hertz == 3100412e3
    assert "cpuinfo" not in snap.statuses  # not needed: every online CPU has cpufreq
    assert snap.cpu_guest_seconds[0] == {"guest": 7312.04, "guest_nice": 0.17}


def test_hotplug_never_makes_a_counter_go_backwards():
    snap = None
    history = []
    for step in ("step1", "step2", "step3", "step4"):
        snap = take_snapshot(snap, readers(FIXTURES / "hotplug" / step, {"cpu"}), FixedClock())
        history.append(snap)
    assert [s.cpus for s in history] == [(0, 1, 2, 3), (0, 1, 3), (0, 1, 2, 3), (0, 1, 2, 3)]
    last: dict[tuple[int, str], float] = {}
    for s in history:
        for cpu, modes in s.cpu_seconds.items():
            for mode, value in modes.items():
                assert value >= last.get((cpu, mode), 0.0), (cpu, mode, value)
                last[(cpu, mode)] = value
    # cpu2 came back with idle 0.5 s (raw 50 ticks, below the 100 s it left with) and resumes from 100 s
    assert history[2].cpu_seconds[2]["idle"] == 100.0
    assert history[3].cpu_seconds[2]["idle"] == 100.5
    # cpu0's idle stepped back by 0.1 s and stays put
    assert history[3].cpu_seconds[0]["idle"] == history[2].cpu_seconds[0]["idle"] == 101.0


@pytest.mark.parametrize(
    ("idle_seconds", "exported"),
    [
        ((1000, 1001, 1000.5, 1002), 1002.0),  # a step back is not counted twice: ends equal to the file
        ((1000, 1001, 1000.5, 1000.75), 1001.0),  # below the old maximum: held there
        ((1000, 1000, 1000, 1003), 1003.0),
    ],
    ids=["climbs-past-the-old-maximum", "still-below-it", "no-step-back"],
)
def test_a_step_back_is_held_at_the_maximum_seen(tmp_path, idle_seconds, exported):
    (tmp_path / "proc").mkdir()
    snap = None
    for idle in idle_seconds:
        ticks = round(idle * 100)
        (tmp_path / "proc" / "stat").write_text(f"cpu  10 0 10 {ticks} 0 0 0 0 0 0\ncpu0 10 0 10 {ticks} 0 0 0 0 0 0\n")
        snap = take_snapshot(snap, readers(tmp_path, {"cpu"}), FixedClock())
        assert snap.cpu_seconds[0]["idle"] <= max(idle_seconds)
    assert snap is not None
    assert snap.cpu_seconds[0]["idle"] == exported


def _column_by_column(samples: list[dict[int, tuple[float, ...]]]) -> dict[tuple[int, int], float]:
    """The rule of Monotonic, one (key, column) at a time: the exposed values after ``samples``."""
    raw: dict[tuple[int, int], float] = {}
    exposed: dict[tuple[int, int], float] = {}
    present: frozenset[tuple[int, int]] = frozenset()
    for values in samples:
        flat = {(key, i): v for key, row in values.items() for i, v in enumerate(row)}
        for column, value in flat.items():
            last = raw.get(column)
            if last is None:
                exposed[column] = raw[column] = value
            elif value > last:
                exposed[column] += value - last
                raw[column] = value
            elif column not in present:
                raw[column] = value
        present = frozenset(flat)
    return exposed


_ROWS = st.lists(st.integers(0, 3000).map(lambda ticks: ticks / 100), min_size=1, max_size=4).map(tuple)


@settings(max_examples=2000, deadline=None, database=None)
@given(st.lists(st.dictionaries(st.integers(0, 3), _ROWS), max_size=8))
def test_monotonic_rows_follow_the_rule_column_by_column(samples):
    """Keys coming and going, columns stepping back, rows changing length: each column as the rule says,
    to the last bit (a row whose columns all grew takes the rows' fast path)."""
    counters = Monotonic()
    for values in samples:
        counters = counters.advance(values)
    exposed = {(key, i): v for key, row in counters.exposed.items() for i, v in enumerate(row)}
    assert exposed == _column_by_column(samples)


@st.composite
def _growing_samples(draw):  # type: ignore[no-untyped-def]
    """Samples of the same keys and widths whose columns mostly grow (as /proc/stat's between two ticks), now
    and then one stepping back, one key missing or one row a column shorter: every sample of most hosts."""
    width = draw(st.integers(1, 4))
    keys = draw(st.lists(st.integers(0, 5), min_size=1, max_size=4, unique=True))
    row = {key: tuple(draw(st.integers(0, 3000)) / 100 for _ in range(width)) for key in keys}
    samples = [row]
    for _ in range(draw(st.integers(1, 6))):
        step = draw(st.integers(-30, 300)) if draw(st.booleans()) else 0
        row = {key: tuple(round(v * 100 + draw(st.integers(0, 300)) + step) / 100 for v in r) for key, r in row.items()}
        sample = dict(row)
        change = draw(st.sampled_from(["none", "none", "drop", "shorter"]))
        if change == "drop":
            del sample[draw(st.sampled_from(keys))]
        elif change == "shorter" and width > 1:
            key = draw(st.sampled_from(keys))
            sample[key] = sample[key][:-1]
        samples.append(sample)
    return samples


@settings(max_examples=1000, deadline=None, database=None)
@given(_growing_samples())
def test_monotonic_rows_of_growing_samples_follow_the_rule_column_by_column(samples):
    """The samples that take the every-row fast path (same keys and widths, nothing stepped back), mixed
    with those that do not: each column as the rule says, to the last bit."""
    counters = Monotonic()
    for values in samples:
        counters = counters.advance(values)
        assert counters.present == {key: len(row) for key, row in values.items()}
    exposed = {(key, i): v for key, row in counters.exposed.items() for i, v in enumerate(row)}
    assert exposed == _column_by_column(samples)


def test_usage_ratio_is_busy_share_of_the_window():
    s1 = take_snapshot(None, readers(FIXTURES / "hotplug" / "step1", {"cpu"}), FixedClock())
    s2 = take_snapshot(s1, readers(FIXTURES / "hotplug" / "step2", {"cpu"}), FixedClock())
    # cpu0: +50 user +25 system +50 idle ticks -> 75 / 125 busy
    assert s2.cpu_usage_ratio[0] == pytest.approx(0.6)
    assert 2 not in s2.cpu_usage_ratio  # offline
    s3 = take_snapshot(s2, readers(FIXTURES / "hotplug" / "step3", {"cpu"}), FixedClock())
    assert 2 not in s3.cpu_usage_ratio  # no window yet since it came back
    s4 = take_snapshot(s3, readers(FIXTURES / "hotplug" / "step4", {"cpu"}), FixedClock())
    assert all(0.0 <= r <= 1.0 for r in s4.cpu_usage_ratio.values())
    assert s4.cpu_usage_ratio[2] == pytest.approx(100 / 150)


def _usage_cpu_by_cpu(prev, now):  # type: ignore[no-untyped-def]
    """The usage derive written out for one CPU at a time: busy is every mode but idle and iowait."""
    ratio, busy_seconds = {}, {}
    for cpu, row in now.items():
        if cpu not in prev:
            continue
        total1, total0 = sum(row[:8]), sum(prev[cpu][:8])
        busy1 = total1 - row[3] - (row[4] if len(row) > 4 else 0.0)
        busy0 = total0 - prev[cpu][3] - (prev[cpu][4] if len(prev[cpu]) > 4 else 0.0)
        busy_seconds[cpu] = max(0.0, busy1 - busy0)
        if total1 - total0 > 0:
            ratio[cpu] = min(1.0, busy_seconds[cpu] / (total1 - total0))
    return ratio, busy_seconds


_SECONDS = st.sampled_from([0.0, 0.01, 0.5, 3.0, 1e7, 12345.67])


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.integers(4, 10).flatmap(
        lambda width: st.tuples(
            st.dictionaries(st.integers(0, 6), st.tuples(*[_SECONDS] * width), max_size=6),
            st.dictionaries(st.integers(0, 6), st.tuples(*[_SECONDS] * width), max_size=6),
        )
    ),
    st.booleans(),
)
def test_usage_is_the_busy_share_per_cpu_to_the_last_bit(rows, one_short):
    """Every CPU's ratio and busy seconds as the per-CPU arithmetic gives them: columns stepping back,
    CPUs in one sample only, rows without iowait (4 columns; one such row among longer ones)."""
    from exporter.snapshot import _usage

    prev, now = rows
    if one_short and now:
        now = {**now, min(now): now[min(now)][:4]}
    assert _usage(prev, now) == _usage_cpu_by_cpu(prev, now)


@pytest.mark.parametrize("width", range(4, 13))
def test_a_rows_columns_are_named_by_mode_in_the_kernels_order(width):
    """Whatever the width (older kernels: 4 to 7 columns; a newer one may print more than 10)."""
    from exporter.snapshot import _by_guest_mode, _by_mode
    from exporter.sources.stat import GUEST_MODES, MODES

    row = tuple(float(i) + 0.5 for i in range(width))
    assert list(_by_mode(row).items()) == list(zip(MODES, row, strict=False))
    if width > len(MODES):  # only such a row has guest time
        assert list(_by_guest_mode(row).items()) == list(zip(GUEST_MODES, row[len(MODES) :], strict=False))


def test_the_cpu_source_parses_each_proc_stat_with_the_last_ones_columns(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "hotplug" / "step1", root)
    r = readers(root, {"cpu"})
    snap = take_snapshot(None, r, FixedClock())
    assert r.stat.columns and r.stat.hz == 100  # kept for the next parse (StatMemo)
    shutil.copyfile(FIXTURES / "hotplug" / "step2" / "proc" / "stat", root / "proc" / "stat")
    snap = take_snapshot(snap, r, FixedClock())
    assert snap == take_snapshot(
        take_snapshot(None, readers(FIXTURES / "hotplug" / "step1", {"cpu"}), FixedClock()),
        readers(FIXTURES / "hotplug" / "step2", {"cpu"}),
        FixedClock(),
    )


def test_usage_ratio_from_a_previous_snapshot_made_without_counters():
    """The window's start is the previous snapshot's cpu_seconds, whether or not it carries the counters."""
    s1 = take_snapshot(None, readers(FIXTURES / "hotplug" / "step1", {"cpu"}), FixedClock())
    by_hand = Snapshot(cpus=s1.cpus, cpu_seconds=s1.cpu_seconds)
    s2 = take_snapshot(by_hand, readers(FIXTURES / "hotplug" / "step2", {"cpu"}), FixedClock())
    assert (
        s2.cpu_usage_ratio
        == take_snapshot(s1, readers(FIXTURES / "hotplug" / "step2", {"cpu"}), FixedClock()).cpu_usage_ratio
    )
    assert s2.cpu_usage_ratio[0] == pytest.approx(0.6)


class FakePerf:
    def __init__(self, per_cpu_cycles: dict[int, list[float]]) -> None:
        self.series = per_cpu_cycles
        self.calls = 0
        self.opened: set[int] = set()

    def open_cpu(self, cpu: int) -> None:
        self.opened.add(cpu)

    def read(self) -> dict[int, PerfReading]:
        i = self.calls
        self.calls += 1
        return {c: PerfReading(v[i], v[i] / 2) for c, v in self.series.items()}


def test_perf_is_last_in_the_chain_and_exposes_cycles(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "hotplug" / "step1", root)
    (root / "proc" / "cpuinfo").write_text("processor : 0\nBogoMIPS : 50\n")  # arm64-like: no cpu MHz
    (root / "sys" / "devices" / "system" / "cpu").mkdir(parents=True)
    perf = FakePerf({0: [0.0, 1.5e9], 1: [0.0, 2.0e9], 2: [0.0, 1e9], 3: [0.0, 1e9]})
    s1 = take_snapshot(None, readers(root, ALL, perf), FixedClock())
    assert s1.frequency == {}
    assert not s1.statuses["cpuinfo"].success
    shutil.copy(FIXTURES / "hotplug" / "step2" / "proc" / "stat", root / "proc" / "stat")
    s2 = take_snapshot(s1, readers(root, ALL, perf), FixedClock())
    # cpu0 was busy 75 ticks = 0.75 s in the window: 1.5e9 cycles / 0.75 s
    assert s2.frequency[0].source == "perf"
    assert s2.frequency[0].hertz == pytest.approx(2e9)
    assert s2.cycles[1] == 2.0e9 and s2.ref_cycles[1] == 1.0e9
    assert 2 not in s2.frequency  # offline
    assert perf.opened == {0, 1, 2, 3}


def test_perf_unavailable_fails_only_perf():
    snap = take_snapshot(None, readers(FIXTURES / "vm-2cpu", ALL, None, "refused: run as root"), FixedClock())
    assert snap.statuses["perf"] == snap.statuses["perf"].__class__(False, 0.0, "refused: run as root")
    assert snap.statuses["cpu"].success and snap.statuses["meminfo"].success


@pytest.mark.parametrize(
    ("damage", "failed", "needle"),
    [
        (lambda root: (root / "proc" / "meminfo").unlink(), "meminfo", "meminfo: missing"),
        (lambda root: (root / "proc" / "meminfo").write_text(""), "meminfo", "MemTotal is missing"),
        (lambda root: (root / "proc" / "stat").write_text("cpu0 1 2\n"), "cpu", "cpu0 has 2 columns"),
        (lambda root: (root / "proc" / "cpuinfo").write_text("cpu MHz : 1\n"), "cpuinfo", "before any processor"),
        (
            lambda root: (
                root / "sys" / "devices" / "system" / "cpu" / "cpu0" / "cpufreq" / "scaling_cur_freq"
            ).write_text("garbage"),
            "cpufreq",
            "scaling_cur_freq",
        ),
        (
            lambda root: (root / "proc" / "stat").write_bytes(
                (root / "proc" / "stat").read_bytes().split(b"cpu3 ")[0] + b"cpu3 1834"
            ),
            "cpu",
            "cpu3 has 1 columns",
        ),
    ],
    ids=["missing", "empty", "malformed", "out-of-order", "garbage", "truncated"],
)
def test_a_bad_source_fails_alone(tmp_path, damage, failed, needle):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "baremetal-8cpu", root)
    for name in ("scaling_cur_freq", "cpuinfo_cur_freq"):  # cpu3 without a cpufreq frequency: cpuinfo is read
        (root / "sys" / "devices" / "system" / "cpu" / "cpu3" / "cpufreq" / name).unlink()
    damage(root)
    snap = take_snapshot(None, readers(root), FixedClock())
    assert not snap.statuses[failed].success
    assert needle in snap.statuses[failed].error
    others = {n: s.success for n, s in snap.statuses.items() if n != failed}
    assert others and all(others.values()), others


def test_unreadable_file_fails_its_source(tmp_path_factory):
    """EACCES for real: as root the read runs in a child that dropped to nobody."""
    base = Path(tempfile.mkdtemp(prefix="sysmon-eacces-"))  # pytest's tmp dirs are 0700 to nobody
    base.chmod(0o755)
    root = base / "host"
    shutil.copytree(FIXTURES / "vm-2cpu", root)
    (root / "proc" / "meminfo").chmod(0)
    script = (
        "import json; from pathlib import Path; from exporter.snapshot import CpuSources, take_snapshot, SystemClock\n"
        f"r = CpuSources(Path({str(root / 'proc')!r}), Path({str(root / 'sys')!r}), 100,"
        " frozenset({'cpu','cpuinfo','meminfo'}))\n"
        "s = take_snapshot(None, r, SystemClock())\n"
        "print(json.dumps({n: [st.success, st.error] for n, st in s.statuses.items()}))\n"
    )
    cmd = [sys.executable, "-c", script]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    out = subprocess.run(
        cmd, capture_output=True, text=True, cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    shutil.rmtree(base)
    statuses = json.loads(out.stdout)
    assert statuses["meminfo"] == [False, f"{root}/proc/meminfo: permission denied"]
    assert statuses["cpu"] == [True, ""] and statuses["cpuinfo"] == [True, ""]


def test_failure_is_logged_once_and_recovery_once(tmp_path, caplog):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "vm-2cpu", root)
    meminfo = (root / "proc" / "meminfo").read_text()
    (root / "proc" / "meminfo").write_text("junk\n")
    caplog.set_level(logging.INFO, logger="exporter.snapshot")
    snap: Snapshot | None = None
    for _ in range(5):
        snap = take_snapshot(snap, readers(root, {"cpu", "meminfo"}), FixedClock())
    (root / "proc" / "meminfo").write_text(meminfo)
    for _ in range(3):
        snap = take_snapshot(snap, readers(root, {"cpu", "meminfo"}), FixedClock())
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"source meminfo failed: {root}/proc/meminfo:1: line has no ':': 'junk'",
        "source meminfo recovered",
    ]


def test_cpufreq_without_a_current_frequency_keeps_limits_and_governor(tmp_path):
    """cpu0: cpuinfo_avg_freq first; cpu1: no current-frequency file, so /proc/cpuinfo, with cpufreq's limits."""
    from prometheus_client.parser import text_string_to_metric_families

    from exporter.collector.cpu import CpuFamilies
    from exporter.collector.exposition import ExpositionWriter

    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "vm-2cpu", root)
    for cpu, files in {
        0: {"cpuinfo_avg_freq": "2400000", "scaling_cur_freq": "1500000"},
        1: {"cpuinfo_min_freq": "800000", "cpuinfo_max_freq": "3900000", "scaling_governor": "schedutil"},
    }.items():
        policy = root / "sys" / "devices" / "system" / "cpu" / f"cpu{cpu}" / "cpufreq"
        policy.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (policy / name).write_text(text + "\n")
    snap = take_snapshot(None, readers(root), FixedClock())
    assert {c: (f.source, f.hertz) for c, f in snap.frequency.items()} == {
        0: ("cpufreq_avg", 2.4e9),
        1: ("cpuinfo", pytest.approx(2599.998e6)),
    }
    text, _ = ExpositionWriter().render(CpuFamilies().frequency(snap))  # some families are written as text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in text_string_to_metric_families(text.decode())
        for s in m.samples
    }
    assert samples[("sysmon_cpu_frequency_source_info", (("cpu", "0"), ("source", "cpufreq_avg")))] == 1
    assert samples[("sysmon_cpu_frequency_source_info", (("cpu", "1"), ("source", "cpuinfo")))] == 1
    assert samples[("sysmon_cpu_frequency_min_hertz", (("cpu", "1"),))] == 800e6
    assert samples[("sysmon_cpu_frequency_max_hertz", (("cpu", "1"),))] == 3900e6
    assert samples[("sysmon_cpu_scaling_governor_info", (("cpu", "1"), ("governor", "schedutil")))] == 1
    assert not any(name == "sysmon_cpu_hardware_frequency_hertz" for name, _ in samples)


def test_filesystems_are_read_once_per_interval_and_carried_in_between(tmp_path):
    host = tmp_path / "host"
    shutil.copytree(FIXTURES / "vm-2cpu", host)
    (host / "proc" / "1").mkdir(exist_ok=True)
    (host / "proc" / "1" / "mountinfo").write_text("1 0 254:0 / / rw - ext4 /dev/vda rw\n")
    stats: list[str] = []

    def statvfs(path: str) -> os.statvfs_result:
        stats.append(path)
        blocks = 1000 * len(stats)  # each read sees a new size
        return os.statvfs_result((4096, 4096, blocks, 500, 400, 100, 50, 40, 0, 255))

    r = CpuSources(
        host / "proc",
        host / "sys",
        100,
        frozenset({"cpu", "filesystem"}),
        rootfs=host,
        statvfs=statvfs,
        filesystem_interval_seconds=15.0,
    )
    clock = FixedClock()
    sizes = []
    snap = None
    for step in (0, 1, 14.9, 15, 16, 40):  # seconds since the first sample
        clock.t = 1_700_000_000.0 + step
        snap = take_snapshot(snap, r, clock)
        assert snap.statuses["filesystem"].success and snap.statuses["cpu"].success
        sizes.append(snap.filesystems[0].size_bytes)
    assert len(stats) == 3  # at 0, 15 and 40
    assert sizes == [4096 * 1000] * 3 + [4096 * 2000] * 2 + [4096 * 3000]


def test_a_zero_filesystem_interval_reads_at_every_sample(tmp_path):
    r = CpuSources(
        FIXTURES / "vm-2cpu" / "proc", FIXTURES / "vm-2cpu" / "sys", 100, frozenset({"filesystem"}), rootfs=tmp_path
    )
    clock = FixedClock()
    first = take_snapshot(None, r, clock)
    second = take_snapshot(first, r, clock)
    assert first.filesystems_read_seconds == second.filesystems_read_seconds == clock.t  # read again, same clock
    assert second.statuses["filesystem"] is not first.statuses["filesystem"]


def test_a_missing_cpufreq_driver_is_looked_for_again_only_every_few_seconds(tmp_path):
    from exporter.snapshot import LOOK_AGAIN_SECONDS

    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "vm-2cpu", root)
    clock = FixedClock()
    r = readers(root)
    snap = take_snapshot(None, r, clock)
    missing = snap.statuses["cpufreq"]
    assert not missing.success and "no cpufreq driver" in missing.error
    # a driver registers: cpu0 gains a cpufreq directory
    shutil.copytree(
        FIXTURES / "baremetal-8cpu" / "sys/devices/system/cpu/cpu0/cpufreq",
        root / "sys/devices/system/cpu/cpu0/cpufreq",
    )
    clock.t += LOOK_AGAIN_SECONDS / 2
    snap = take_snapshot(snap, r, clock)
    assert snap.statuses["cpufreq"] == missing  # not looked for yet: the status of the last look is kept
    assert snap.frequency[0].source == "cpuinfo"
    clock.t += LOOK_AGAIN_SECONDS / 2
    snap = take_snapshot(snap, r, clock)
    assert snap.statuses["cpufreq"].success and snap.frequency[0].source == "cpufreq"
    assert "cpufreq" not in snap.absent_since


def _baremetal(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "baremetal-8cpu", root)
    return root, root / "sys/devices/system/cpu/cpu0/cpufreq"


def test_between_whole_cpufreq_reads_only_the_current_frequencies_are_read(tmp_path):
    from exporter.snapshot import LOOK_AGAIN_SECONDS

    root, cpu0 = _baremetal(tmp_path)
    clock = FixedClock()
    r = readers(root)
    snap = take_snapshot(None, r, clock)
    assert snap.cpufreq[0].max_hertz == 3.9e9 and snap.cpufreq[0].governor == "powersave"
    (cpu0 / "scaling_cur_freq").write_text("2000000\n")
    (cpu0 / "cpuinfo_cur_freq").write_text("2100000\n")
    (cpu0 / "cpuinfo_max_freq").write_text("4200000\n")
    (cpu0 / "scaling_governor").write_text("performance\n")
    clock.t += LOOK_AGAIN_SECONDS / 2
    snap = take_snapshot(snap, r, clock)
    assert snap.statuses["cpufreq"].success
    assert snap.frequency[0].hertz == 2.0e9 and snap.cpufreq[0].hardware_hertz == 2.1e9  # read at every sample
    assert snap.cpufreq[0].max_hertz == 3.9e9 and snap.cpufreq[0].governor == "powersave"  # from the last whole read
    clock.t += LOOK_AGAIN_SECONDS / 2
    snap = take_snapshot(snap, r, clock)
    assert snap.cpufreq[0].max_hertz == 4.2e9 and snap.cpufreq[0].governor == "performance"
    assert snap.cpufreq_read_seconds == clock.t


def test_a_frequency_that_holds_between_samples_is_the_last_samples_and_one_that_moved_is_new(tmp_path):
    root, cpu0 = _baremetal(tmp_path)
    clock = FixedClock()
    r = readers(root)
    first = take_snapshot(None, r, clock)
    (cpu0 / "scaling_cur_freq").write_text("2000000\n")
    clock.t += 1
    snap = take_snapshot(first, r, clock)
    assert snap.frequency[0] == Frequency(2.0e9, "cpufreq")
    assert snap.frequency[1] is first.frequency[1] and snap.cpufreq[1] is first.cpufreq[1]
    assert snap.frequency == {**first.frequency, 0: Frequency(2.0e9, "cpufreq")}


def test_a_current_frequency_file_that_goes_away_has_cpufreq_read_whole_in_the_same_sample(tmp_path):
    root, cpu0 = _baremetal(tmp_path)
    clock = FixedClock()
    r = readers(root)
    snap = take_snapshot(None, r, clock)
    assert snap.frequency[0].source == "cpufreq"
    # the driver now offers the hardware's average instead of scaling_cur_freq
    (cpu0 / "scaling_cur_freq").unlink()
    (cpu0 / "cpuinfo_avg_freq").write_text("1500000\n")
    clock.t += 1
    snap = take_snapshot(snap, r, clock)
    assert snap.statuses["cpufreq"].success
    assert (snap.frequency[0].source, snap.frequency[0].hertz) == ("cpufreq_avg", 1.5e9)
    assert snap.cpufreq_read_seconds == clock.t


def _offline(root: Path, cpu: int) -> Callable[[], None]:
    """Takes ``cpu``'s line out of the tree's /proc/stat (offline); returns what puts it back (online)."""
    stat = root / "proc/stat"
    full = stat.read_text()
    stat.write_text("".join(line for line in full.splitlines(keepends=True) if not line.startswith(f"cpu{cpu} ")))

    def online() -> None:
        stat.write_text(full)

    return online


def test_a_cpu_that_comes_online_has_cpufreq_read_whole_in_the_same_sample(tmp_path):
    root, _ = _baremetal(tmp_path)
    online = _offline(root, 7)
    clock = FixedClock()
    r = readers(root)
    snap = take_snapshot(None, r, clock)
    assert 7 not in snap.cpufreq
    (root / "sys/devices/system/cpu/cpu7/cpufreq/cpuinfo_max_freq").write_text("4100000\n")
    online()
    clock.t += 1
    snap = take_snapshot(snap, r, clock)
    assert snap.cpufreq[7].max_hertz == 4.1e9 and snap.frequency[7].source == "cpufreq"
    assert snap.cpufreq_read_seconds == clock.t


def _current_files(root: Path, cpus: Iterable[int]) -> set[str]:
    base = root / "sys/devices/system/cpu"
    return {str(base / f"cpu{c}/cpufreq" / name) for c in cpus for name in ("scaling_cur_freq", "cpuinfo_cur_freq")}


def test_inline_cpufreq_reads_its_current_frequencies_through_held_descriptors(tmp_path):
    """Between whole reads, the two files a CPU is read from are held (the cpufreq files of a sysfs); a
    CPU that goes offline is left out and read again, through the same descriptors, when it is back."""
    root, cpu0 = _baremetal(tmp_path)
    clock = FixedClock()
    r = readers(root, {"cpu", "cpufreq"})
    deadline = Deadline(5.0, inline=frozenset({"cpu", "cpufreq"}))
    try:
        snap = take_snapshot(None, r, clock, deadline)  # a whole read: opened at each read
        assert r.held.paths() == {str(root / "proc/stat")}
        clock.t += 1
        snap = take_snapshot(snap, r, clock, deadline)
        online = (0, 1, 2, 3, 4, 6, 7)
        assert r.held.paths() == {str(root / "proc/stat")} | _current_files(root, online)
        (cpu0 / "scaling_cur_freq").write_text("2000000\n")  # written into the held inode, as sysfs prints anew
        (cpu0 / "cpuinfo_cur_freq").write_text("2100000\n")
        clock.t += 1
        snap = take_snapshot(snap, r, clock, deadline)
        assert snap.statuses["cpufreq"].success and snap.cpufreq_read_seconds == clock.t - 2
        assert snap.frequency[0].hertz == 2.0e9 and snap.cpufreq[0].hardware_hertz == 2.1e9
        back = _offline(root, 7)
        clock.t += 1
        snap = take_snapshot(snap, r, clock, deadline)
        assert 7 not in snap.cpufreq and 7 not in snap.frequency
        (root / "sys/devices/system/cpu/cpu7/cpufreq/scaling_cur_freq").write_text("1700000\n")
        back()
        for _ in range(2):  # read whole as it comes back, then through its held descriptors again
            clock.t += 1
            snap = take_snapshot(snap, r, clock, deadline)
            assert snap.frequency[7] == Frequency(1.7e9, "cpufreq")
        assert snap.cpufreq_read_seconds == clock.t - 1
        assert r.held.paths() == {str(root / "proc/stat")} | _current_files(root, online)
    finally:
        r.held.close()


def test_cpufreq_files_past_the_bound_of_held_files_are_opened_at_each_read(tmp_path):
    root, _ = _baremetal(tmp_path)
    clock = FixedClock()
    r = replace(readers(root, {"cpufreq"}), held=HeldFiles(max_files=3))
    deadline = Deadline(5.0, inline=frozenset({"cpufreq"}))
    try:
        snap = take_snapshot(None, r, clock, deadline)
        clock.t += 1
        snap = take_snapshot(snap, r, clock, deadline)
        assert r.held.paths() == _current_files(root, [0]) | {
            str(root / "sys/devices/system/cpu/cpu1/cpufreq/cpuinfo_cur_freq")
        }
        for cpu in (1, 2):  # replaced by rename: what a held descriptor would not see
            new = tmp_path / "new"
            new.write_text("1234000\n")
            new.rename(root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq")
        clock.t += 1
        snap = take_snapshot(snap, r, clock, deadline)
        assert snap.frequency[1].hertz == snap.frequency[2].hertz == 1.234e9
        assert len(r.held.paths()) == 3
    finally:
        r.held.close()


@pytest.mark.parametrize("aperfmperf", [False, True], ids=["constant-rate", "measured"])
def test_a_cpuinfo_that_states_a_constant_rate_is_read_again_only_every_few_seconds(tmp_path, aperfmperf):
    from exporter.snapshot import LOOK_AGAIN_SECONDS

    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "vm-2cpu", root)  # a guest: no cpufreq, no aperfmperf flag
    cpuinfo = root / "proc/cpuinfo"
    if aperfmperf:
        cpuinfo.write_text(cpuinfo.read_text().replace("\nflags\t\t: fpu ", "\nflags\t\t: aperfmperf fpu "))
    clock = FixedClock()
    r = readers(root)
    snap = take_snapshot(None, r, clock)
    first = snap.statuses["cpuinfo"]
    assert first.success and snap.frequency[0].hertz == pytest.approx(2599.998e6)
    cpuinfo.write_text(cpuinfo.read_text().replace("2599.998", "1800.000"))
    clock.t += LOOK_AGAIN_SECONDS / 2
    snap = take_snapshot(snap, r, clock)
    if aperfmperf:  # the kernel measures: every sample reads
        assert snap.frequency[0].hertz == pytest.approx(1800e6) and snap.statuses["cpuinfo"] is not first
        return
    assert snap.frequency[0].hertz == pytest.approx(2599.998e6) and snap.statuses["cpuinfo"] is first
    clock.t += LOOK_AGAIN_SECONDS / 2
    snap = take_snapshot(snap, r, clock)
    assert snap.frequency[0].hertz == pytest.approx(1800e6) and snap.statuses["cpuinfo"] is not first


def test_a_cpu_that_comes_online_has_a_constant_rate_cpuinfo_read_again(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "vm-2cpu", root)
    online = _offline(root, 1)
    clock = FixedClock()
    r = readers(root)
    snap = take_snapshot(None, r, clock)
    assert snap.cpus == (0,) and snap.cpuinfo_read_seconds == clock.t
    online()
    clock.t += 1
    snap = take_snapshot(snap, r, clock)
    assert snap.cpus == (0, 1) and snap.frequency[1].source == "cpuinfo" and snap.cpuinfo_read_seconds == clock.t


def test_a_missing_agent_state_file_is_looked_for_again_only_every_few_seconds(tmp_path):
    from exporter.guest.hoststate import parse_host_line, state_bytes, write_state
    from exporter.snapshot import LOOK_AGAIN_SECONDS

    path = tmp_path / "host.json"
    clock = FixedClock()
    r = CpuSources(
        FIXTURES / "vm-2cpu" / "proc",
        FIXTURES / "vm-2cpu" / "sys",
        100,
        frozenset({"cpu", "cpuinfo", "hoststate"}),
        host_state=path,
    )
    snap = take_snapshot(None, r, clock)
    assert snap.statuses["hoststate"].success and snap.absent_since == {"hoststate": clock.t}
    line = {
        "v": 1,
        "type": "host",
        "host_wall_ns": 1,
        "interval_seconds": 1.0,
        "vcpus": {"0": {"steal_seconds": 2.0, "host_cpu": 0, "frequency_hz": 3.4e9, "frequency_source": "cpufreq"}},
    }
    clock.t += LOOK_AGAIN_SECONDS / 2
    write_state(path, state_bytes(parse_host_line(json.dumps(line).encode()), clock.t))
    snap = take_snapshot(snap, r, clock)
    assert snap.frequency[0].source == "cpuinfo" and snap.host_steal_seconds == {}  # not looked at yet
    clock.t += LOOK_AGAIN_SECONDS / 2
    write_state(path, state_bytes(parse_host_line(json.dumps(line).encode()), clock.t))
    snap = take_snapshot(snap, r, clock)
    assert snap.frequency[0].source == "host" and snap.host_steal_seconds == {0: 2.0}
    assert snap.absent_since == {}


# The sources that read one text file of proc each, by that file below the procfs root.
TEXT_FILES = {"cpu": "stat", "meminfo": "meminfo", "loadavg": "loadavg", "cpuinfo": "cpuinfo", "network": "net/dev"}
TEXT = frozenset(TEXT_FILES)


def text_values(snap: Snapshot) -> tuple[object, ...]:
    return snap.cpus, snap.cpu_seconds, snap.memory, snap.load, snap.frequency, snap.network


def put(root: Path, source: Path, *, in_place: bool) -> None:
    """Every text file of ``source``'s /proc in ``root``: written into the same inode, or renamed over it."""
    for name in TEXT_FILES.values():
        data = (source / "proc" / name).read_bytes()
        path = root / "proc" / name
        if in_place:
            with open(path, "r+b") as f:
                f.write(data)
                f.truncate(len(data))
        else:
            path.with_name("new").write_bytes(data)
            path.with_name("new").rename(path)


def other_host(tmp_path: Path) -> Path:
    """vm-2cpu with baremetal-8cpu's text files and one more byte received on lo."""
    other = tmp_path / "other"
    shutil.copytree(FIXTURES / "vm-2cpu", other)
    for name in ("stat", "meminfo", "loadavg", "cpuinfo"):
        shutil.copyfile(FIXTURES / "baremetal-8cpu" / "proc" / name, other / "proc" / name)
    dev = other / "proc" / "net" / "dev"
    dev.write_text(dev.read_text().replace(" 56079001 ", " 56079002 ", 1))
    return other


def test_inline_sources_read_through_held_descriptors_and_the_others_open_each_time(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "vm-2cpu", root)
    other = other_host(tmp_path)
    vm = text_values(take_snapshot(None, readers(root, TEXT), FixedClock()))
    other_values = text_values(take_snapshot(None, readers(other, TEXT), FixedClock()))
    assert all(a != b for a, b in zip(vm, other_values, strict=True))  # each source tells the two trees apart
    inline = readers(root, TEXT)
    held = Deadline(5.0, inline=TEXT)
    opened = Deadline(5.0, inline=frozenset({"perf"}))  # what inline_sources makes of a tree of ordinary files
    try:
        assert text_values(take_snapshot(None, inline, FixedClock(), held)) == vm
        assert inline.held.paths() == {str(root / "proc" / name) for name in TEXT_FILES.values()}
        # held: read again from offset 0, so content written into the same file is seen
        put(root, other, in_place=True)
        assert text_values(take_snapshot(None, inline, FixedClock(), held)) == other_values
        # a file replaced by rename: the held descriptors read the inodes they opened; opened-per-read sources
        # (why only proc files are held) read the new ones
        put(root, FIXTURES / "vm-2cpu", in_place=False)
        assert text_values(take_snapshot(None, inline, FixedClock(), held)) == other_values
        assert text_values(take_snapshot(None, inline, FixedClock(), opened)) == vm
        assert text_values(take_snapshot(None, inline, FixedClock())) == vm
    finally:
        inline.held.close()
    assert inline.held.paths() == frozenset()
    assert text_values(take_snapshot(None, inline, FixedClock(), held)) == vm  # opened again after close
    inline.held.close()


def test_an_inline_source_that_cannot_be_read_names_its_file_and_recovers(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "vm-2cpu", root)
    stat = root / "proc" / "stat"
    data = stat.read_bytes()
    stat.unlink()
    stat.mkdir()  # opens, and every read of it fails
    inline = readers(root, {"cpu", "meminfo"})
    deadline = Deadline(5.0, inline=frozenset({"cpu", "meminfo"}))
    try:
        snap = take_snapshot(None, inline, FixedClock(), deadline)
        assert snap.statuses["cpu"] == SourceStatus(False, 0.0, f"{stat}: Is a directory")
        assert snap.statuses["meminfo"].success
        stat.rmdir()
        stat.write_bytes(data)
        snap = take_snapshot(snap, inline, FixedClock(), deadline)
        assert snap.statuses["cpu"].success and snap.cpus == (0, 1)
    finally:
        inline.held.close()


def test_with_http_copies_the_snapshot_only_when_the_counts_changed():
    from exporter.snapshot import HttpConnections, with_http

    counts = HttpConnections(open=1, bad_requests_total=3)
    snap = with_http(Snapshot(timestamp_seconds=5.0), lambda: counts)
    assert snap.http == counts and snap.timestamp_seconds == 5.0
    assert with_http(snap, lambda: HttpConnections(open=1, bad_requests_total=3)) is snap
    more = with_http(snap, lambda: HttpConnections(open=2, bad_requests_total=3))
    assert more.http == HttpConnections(open=2, bad_requests_total=3) and snap.http == counts


def _instants_host(tmp_path: Path) -> tuple[Path, CpuSources]:
    host = tmp_path / "host"
    shutil.copytree(FIXTURES / "vm-2cpu", host)
    return host, readers(host, {"cpu", "meminfo", "loadavg", "network"})


def _busier(host: Path) -> None:
    """Ten more ticks of user time on cpu0 (and in the total), as a second later."""
    stat = host / "proc" / "stat"
    lines = stat.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines[:2]):
        name, user, rest = line.split(maxsplit=2)
        lines[i] = f"{name} {int(user) + 10} {rest}"
    stat.write_text("".join(lines))


def test_a_tick_that_keeps_the_instant_sources_reads_only_what_the_window_needs(tmp_path):
    host, r = _instants_host(tmp_path)
    clock = FixedClock()
    first = take_snapshot(None, r, clock, instants=False)  # nothing to keep yet: everything is read
    assert first.memory is not None and first.load is not None and first.network
    assert first.instants_read_seconds == clock.t and not first.instants_behind()

    meminfo = host / "proc" / "meminfo"
    meminfo.write_text(meminfo.read_text().replace("MemFree:        24101668 kB", "MemFree:        1000 kB"))
    (host / "proc" / "loadavg").write_text("this is not a load average\n")  # would fail loadavg if read
    _busier(host)
    clock.t += 1
    kept = take_snapshot(first, r, clock, instants=False)
    assert kept.cpu_seconds != first.cpu_seconds and kept.monotonic_seconds == clock.t  # /proc/stat was read
    assert kept.memory is first.memory and kept.load is first.load and kept.network is first.network
    for name in ("meminfo", "loadavg", "network"):
        assert kept.statuses[name] is first.statuses[name]
    assert kept.instants_read_seconds == first.instants_read_seconds and kept.instants_behind()

    clock.t += 0.25
    fresh = refresh_instants(kept, r, clock)
    assert fresh.memory is not None and fresh.memory.free_bytes == 1000 * 1024
    assert fresh.load is None and not fresh.statuses["loadavg"].success  # read, and its failure recorded
    assert fresh.statuses["meminfo"].success and fresh.statuses["network"].success
    assert fresh.cpu_seconds is kept.cpu_seconds and fresh.monotonic_seconds == kept.monotonic_seconds
    assert fresh.instants_read_seconds == clock.t and not fresh.instants_behind()

    clock.t += 0.75
    whole = take_snapshot(fresh, r, clock)  # instants=True, the default: every source is read
    assert whole.instants_read_seconds == clock.t and not whole.instants_behind()
    assert whole.memory is not None and whole.memory.free_bytes == 1000 * 1024
