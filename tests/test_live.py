"""The real sysmon-exporter process on this machine's kernel, and a real Prometheus scraping it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporter.diag import core_pmu
from exporter.sources.cpuinfo import read_cpuinfo
from exporter.sources.stat import read_stat, user_hz
from tests.helpers import (
    FIXTURES,
    ROOT,
    free_port,
    parse_exposition,
    promql,
    require_root,
    run_exporter,
    run_prometheus,
    wait_until,
)

pytestmark = pytest.mark.live

PROC = Path("/proc")


def has_cpu_pmu() -> bool:
    """Whether the kernel registered a core PMU (perf's "cpu", "cpu_core"/"cpu_atom" or armv8_* event source)."""
    return core_pmu(Path("/sys")) is not None


def labels_of(series: dict, key: str) -> set[str]:  # type: ignore[type-arg]
    return {dict(labels)[key] for labels in series}


def test_one_series_per_cpu_frequency_from_cpuinfo_and_usage_in_range(tmp_path):
    cpus = {str(c) for c in read_stat(PROC, user_hz())}
    with run_exporter(["--sampler.interval=100ms"], tmp_path) as exp:
        wait_until(lambda: "sysmon_cpu_usage_ratio" in exp.metrics(), what="a usage window")
        m = parse_exposition(exp.metrics())
    assert labels_of(m["sysmon_cpu_frequency_hertz"], "cpu") == cpus
    assert labels_of(m["sysmon_cpu_usage_ratio"], "cpu") == cpus
    assert all(0.0 <= v <= 1.0 for v in m["sysmon_cpu_usage_ratio"].values())
    modes = {dict(k)["mode"] for k in m["sysmon_cpu_seconds_total"]}
    assert {"user", "system", "idle", "iowait", "steal"} <= modes
    cpufreq_dirs = list(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"))
    sources = {dict(k)["source"] for k in m["sysmon_cpu_frequency_source_info"]}
    if cpufreq_dirs:
        assert sources == {"cpufreq"}
    else:
        mhz = read_cpuinfo(PROC)
        assert sources == {"cpuinfo"}
        for labels, value in m["sysmon_cpu_frequency_hertz"].items():
            assert value == pytest.approx(mhz[int(dict(labels)["cpu"])], rel=1e-5)
        assert m["sysmon_source_success"][(("source", "cpufreq"),)] == 0.0
    assert m["sysmon_source_success"][(("source", "cpu"),)] == 1.0
    assert m["sysmon_source_success"][(("source", "meminfo"),)] == 1.0
    assert m["sysmon_memory_total_bytes"][()] > 0
    assert m["process_resident_memory_bytes"][()] > 0
    assert m["sysmon_last_sample_timestamp_seconds"][()] == pytest.approx(time.time(), abs=5)


def test_perf_counters_match_what_the_kernel_offers(tmp_path):
    """Root: cycles per CPU where the kernel has a core PMU; else perf fails alone with the reason."""
    require_root()
    with run_exporter(["--sampler.interval=100ms"], tmp_path) as exp:
        wait_until(lambda: "sysmon_cpu_usage_ratio" in exp.metrics(), what="a usage window")
        first = parse_exposition(exp.metrics())
        time.sleep(0.3)
        second = parse_exposition(exp.metrics())
        log = exp.stderr()
    if has_cpu_pmu():
        assert second["sysmon_source_success"][(("source", "perf"),)] == 1.0
        for key, value in second["sysmon_cpu_cycles_total"].items():
            assert value > first["sysmon_cpu_cycles_total"][key]
    else:
        assert second["sysmon_source_success"][(("source", "perf"),)] == 0.0
        assert "sysmon_cpu_cycles_total" not in second
        assert log.count("source perf failed: no hardware cycle counter") == 1
        assert second["sysmon_source_success"][(("source", "cpu"),)] == 1.0


def test_perf_refused_to_non_root_says_how_to_enable(tmp_path):
    require_root()  # to drop to nobody
    paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    if paranoid <= 0:
        pytest.skip("kernel.perf_event_paranoid <= 0 lets anyone open CPU-wide counters")
    drop = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        sys.executable,
        "-m",
        "exporter",
    ]
    port_env = {"PYTHONPATH": str(ROOT)}
    from tests.helpers import free_port, http_get

    port = free_port()
    log = tmp_path / "nobody.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*drop, f"--web.listen-address=127.0.0.1:{port}", "--sampler.interval=100ms"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **port_env},
            cwd="/",
        )
    try:
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200, what="ready as nobody")
        time.sleep(0.3)
        body = http_get(f"http://127.0.0.1:{port}/metrics")[1].decode()
    finally:
        proc.terminate()
        proc.wait(5)
    assert 'sysmon_source_success{source="perf"} 0\n' in body
    assert 'sysmon_source_success{source="cpu"} 1\n' in body
    text = log.read_text()
    assert text.count("source perf failed") == 1
    assert "CAP_PERFMON" in text and "perf_event_paranoid" in text


def test_sigterm_stops_within_a_second_with_exit_0(tmp_path):
    with run_exporter([], tmp_path) as exp:
        start = time.monotonic()
        exp.proc.send_signal(signal.SIGTERM)
        code = exp.proc.wait(timeout=5)
        elapsed = time.monotonic() - start
    assert code == 0
    assert elapsed < 1.0, f"took {elapsed:.2f}s"


def test_bad_flag_stops_start_up_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--sampler.interval=1m"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "sysmon-exporter: --sampler.interval: 1m is outside 50ms..5s; pass a duration between 50ms and 5s"
    ]


def test_prometheus_scrapes_one_frequency_series_per_cpu(tmp_path):
    cpus = {str(c) for c in read_stat(PROC, user_hz())}
    with run_exporter([], tmp_path) as exp, run_prometheus([f"127.0.0.1:{exp.port}"], tmp_path) as prom:
        result = wait_until(lambda: promql(prom, "sysmon_cpu_frequency_hertz"), timeout=30, what="prometheus to scrape")
        up = promql(prom, "up")
        rate = wait_until(
            lambda: promql(prom, "rate(sysmon_cpu_seconds_total{mode='idle'}[5s])"),
            timeout=30,
            what="two scrapes for a rate",
        )
    assert {r["metric"]["cpu"] for r in result} == cpus
    assert all(float(r["value"][1]) > 0 for r in result)
    assert [r["value"][1] for r in up] == ["1"]
    assert {r["metric"]["cpu"] for r in rate} == cpus


def proc_files_open(pid: int | str) -> dict[str, list[int]]:
    """The descriptors ``pid`` holds on files of /proc, by the file each names."""
    held: dict[str, list[int]] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed since the listing
            continue
        if target.startswith("/proc/"):
            held.setdefault(target, []).append(int(fd))
    return held


def expected_held(pid: int | str) -> set[str]:
    """The files of the default sources that run inline on this host (their files on proc and sysfs)."""
    from exporter.snapshot import CpuSources, inline_sources
    from exporter.sources.mountinfo import read_mountinfo

    inline = inline_sources(CpuSources(PROC, Path("/sys"), 100, frozenset()), read_mountinfo(PROC))
    files = {"cpu": "/proc/stat", "meminfo": "/proc/meminfo", "loadavg": "/proc/loadavg", "network": "/proc/net/dev"}
    if not inline & files.keys():
        pytest.skip("/proc is not a proc mount here: every source opens its file at each read")
    # a descriptor on /proc/net/dev names the opener's /proc/<pid>/net/dev (/proc/net is a link to self/net)
    return {path.replace("/proc/net", f"/proc/{pid}/net") for name, path in files.items() if name in inline}


def test_the_exporter_holds_one_descriptor_per_proc_file_across_samples(tmp_path):
    with run_exporter(["--sampler.interval=100ms"], tmp_path) as exp:
        pid = exp.proc.pid
        expected = expected_held(pid)

        def all_held() -> dict[str, list[int]] | None:
            open_now = proc_files_open(pid)
            return open_now if expected <= open_now.keys() else None

        first = wait_until(all_held, what="the proc files to be held")
        stamp = parse_exposition(exp.metrics())["sysmon_last_sample_timestamp_seconds"][()]
        wait_until(
            lambda: parse_exposition(exp.metrics())["sysmon_last_sample_timestamp_seconds"][()] > stamp + 0.25,
            what="a few more samples",
        )
        later = proc_files_open(pid)
    assert {path: first[path] for path in expected} == {path: later[path] for path in expected}
    assert all(len(later[path]) == 1 for path in expected), later


def test_serve_closes_its_held_files_when_it_stops(tmp_path):
    """In this process: the descriptors the inline sources held are closed once serve() returns."""
    import asyncio

    from exporter.app import serve
    from exporter.config import load
    from tests.helpers import free_port

    config = load(
        [
            f"--web.listen-address=127.0.0.1:{free_port()}",
            "--sampler.interval=100ms",
            "--no-collector.perf",
            "--no-collector.syscalls",
            "--no-collector.cgroup",
            "--no-collector.vm",
        ],
        {},
    )
    expected = next(iter(expected_held(os.getpid())))
    before = proc_files_open(os.getpid()).get(expected, [])

    async def run() -> int:
        served = asyncio.create_task(serve(config))
        while len(proc_files_open(os.getpid()).get(expected, [])) <= len(before):
            assert not served.done(), served.result()
            await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # serve's own handler: the way a service manager stops it
        return await asyncio.wait_for(served, 30)

    assert asyncio.run(run()) == 0
    assert proc_files_open(os.getpid()).get(expected, []) == before


def test_once_the_first_snapshot_is_out_the_freed_heap_goes_back_to_the_kernel(tmp_path):
    with run_exporter(["--log.level=debug", "--sampler.interval=100ms"], tmp_path) as exp:
        wait_until(lambda: "freed heap given back to the kernel" in exp.stderr(), what="the heap to be trimmed")
        stamp = parse_exposition(exp.metrics())["sysmon_last_sample_timestamp_seconds"][()]
        wait_until(
            lambda: parse_exposition(exp.metrics())["sysmon_last_sample_timestamp_seconds"][()] > stamp + 0.35,
            what="a few more samples",
        )
        assert exp.stderr().count("freed heap given back to the kernel") == 1  # once, not at every sample


def _instants_host(tmp_path: Path) -> tuple[Path, Path]:
    """A guest's proc and sys with meminfo, and a node's cgroup tree, to change under a running exporter."""
    host, cgroupfs = tmp_path / "host", tmp_path / "cgroup"
    shutil.copytree(FIXTURES / "vm-2cpu", host)
    shutil.copytree(FIXTURES / "k8s-node-v2" / "sys" / "fs" / "cgroup", cgroupfs)
    return host, cgroupfs


def _instant_sources(host: Path, cgroupfs: Path, *more: str) -> list[str]:
    return [
        f"--path.procfs={host / 'proc'}",
        f"--path.sysfs={host / 'sys'}",
        f"--path.cgroupfs={cgroupfs}",
        "--sampler.interval=100ms",
        "--cgroup.interval=100ms",
        "--collector.disable-defaults",
        "--collector.cpu",
        "--collector.meminfo",
        "--collector.cgroup",
        *more,
    ]


def test_an_unscraped_exporter_reads_meminfo_and_cgroups_again_only_for_the_scrape_that_comes(tmp_path):
    host, cgroupfs = _instants_host(tmp_path)
    meminfo, usage = host / "proc" / "meminfo", cgroupfs / "kubepods.slice" / "memory.current"
    good, good_usage = meminfo.read_text(), usage.read_text()
    with run_exporter(_instant_sources(host, cgroupfs), tmp_path) as exp:
        first = parse_exposition(exp.metrics())
        assert first["sysmon_source_success"][(("source", "meminfo"),)] == 1
        assert first["sysmon_source_success"][(("source", "cgroup"),)] == 1
        meminfo.write_text("MemTotal: a lot\n")
        usage.write_text("a lot\n")
        time.sleep(0.6)  # six ticks of each job, none of which a scrape was expected to see
        assert "source meminfo failed" not in exp.stderr() and "cgroup file failed" not in exp.stderr()
        broken = parse_exposition(exp.metrics())  # this scrape has meminfo read and cgroups walked for it
        assert broken["sysmon_source_success"][(("source", "meminfo"),)] == 0
        assert broken["sysmon_source_success"][(("source", "cgroup"),)] == 0
        assert "source meminfo failed" in exp.stderr() and "cgroup file failed" in exp.stderr()
        meminfo.write_text(good.replace("MemFree:        24101668 kB", "MemFree:        1000 kB"))
        usage.write_text(good_usage)
        time.sleep(0.3)  # past the snapshot just refreshed, which stands for one interval
        mended = parse_exposition(exp.metrics())
    assert mended["sysmon_source_success"][(("source", "meminfo"),)] == 1
    assert mended["sysmon_source_success"][(("source", "cgroup"),)] == 1
    assert first["sysmon_memory_free_bytes"][()] == 24101668 * 1024
    assert mended["sysmon_memory_free_bytes"][()] == 1000 * 1024


def test_a_regularly_scraped_exporter_rests_between_scrapes_and_an_unexpected_scrape_has_proc_stat_read(tmp_path):
    host, cgroupfs = _instants_host(tmp_path)
    stat = host / "proc" / "stat"
    with run_exporter(_instant_sources(host, cgroupfs), tmp_path) as exp:
        for _ in range(4):  # a scraper every second, ten ticks apart: the cadence is known after two
            time.sleep(1.0)
            assert parse_exposition(exp.metrics())["sysmon_source_success"][(("source", "cpu"),)] == 1
        stat.write_text("cpu  not a number\n")
        time.sleep(0.4)  # four ticks, all of them half a scrape away from the next one expected
        assert "source cpu failed" not in exp.stderr()  # /proc/stat was not read: the CPU job rested
        m = parse_exposition(exp.metrics())  # unexpected: the CPU job's whole step runs for it
    assert m["sysmon_source_success"][(("source", "cpu"),)] == 0
    assert "source cpu failed" in exp.stderr()


def test_with_the_grpc_shim_on_every_tick_reads_meminfo_and_cgroups(tmp_path):
    host, cgroupfs = _instants_host(tmp_path)
    args = _instant_sources(host, cgroupfs, f"--grpc.listen-address=127.0.0.1:{free_port()}")
    with run_exporter(args, tmp_path) as exp:
        (host / "proc" / "meminfo").write_text("MemTotal: a lot\n")
        (cgroupfs / "kubepods.slice" / "memory.current").write_text("a lot\n")
        wait_until(
            lambda: "source meminfo failed" in exp.stderr() and "cgroup file failed" in exp.stderr(),
            what="ticks to read meminfo and walk cgroups without a scrape",
        )
