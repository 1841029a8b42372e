"""The process survives stray signals and malformed start-up data."""

from __future__ import annotations

import shutil
import signal

from tests.helpers import FIXTURES, http_get, parse_exposition, run_exporter, wait_until


def test_sighup_sigusr1_sigusr2_and_sigalrm_do_not_stop_the_process(tmp_path):
    with run_exporter(["--no-collector.perf"], tmp_path) as exporter:
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGHUP):
            exporter.proc.send_signal(sig)
            wait_until(lambda s=sig: s.name in exporter.stderr(), what=f"{sig.name} to be logged")
            assert exporter.proc.poll() is None, exporter.stderr()
            assert http_get(exporter.url + "/-/ready")[0] == 200
        assert exporter.stderr().count("SIGHUP: nothing to reload") == 2
        exporter.proc.send_signal(signal.SIGTERM)
        assert exporter.proc.wait(timeout=10) == 0


def test_a_malformed_proc_stat_at_start_up_fails_perf_and_cpu_as_sources(tmp_path):
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "vm-2cpu", root, symlinks=True)
    (root / "proc" / "stat").write_text("cpu  1 2 3 4\ncpuX 1 2 3 4\n")
    args = [f"--path.procfs={root / 'proc'}", f"--path.sysfs={root / 'sys'}", "--collector.perf"]
    with run_exporter(args, tmp_path) as exporter:
        ok = parse_exposition(exporter.metrics())["sysmon_source_success"]
        assert ok[(("source", "perf"),)] == 0 and ok[(("source", "cpu"),)] == 0
        assert ok[(("source", "meminfo"),)] == 1
        assert "unexpected CPU name 'cpuX'" in exporter.stderr()
