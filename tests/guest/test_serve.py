"""The exporter serving guests to a real Prometheus, and refusing a listener it cannot open."""

from __future__ import annotations

from tests.guest.support import agent_args, process, run_cli, value
from tests.helpers import promql, run_exporter, run_prometheus, wait_until


def test_prometheus_scrapes_and_queries_guest_series(tmp_path):
    uds = tmp_path / "db-9.vsock_9477"
    args = [f"--guest.listen=unix:{uds}", "--sampler.interval=100ms"]
    with run_exporter(args, tmp_path) as exp:
        wait_until(uds.exists, what="the listener")
        with (
            process(agent_args(f"unix:{uds}", "100ms"), tmp_path / "agent.log"),
            run_prometheus([f"127.0.0.1:{exp.port}"], tmp_path, scrape_interval="200ms") as prom,
        ):
            wait_until(lambda: value(exp, "sysmon_guest_rows_total", vm="db-9") >= 2, what="rows")
            query = 'sum by (vm) (rate(sysmon_guest_cpu_seconds_total{vm="db-9"}[2s]))'
            result = wait_until(lambda: promql(prom, query), timeout=30, what="a guest CPU rate in Prometheus")
            assert result[0]["metric"] == {"vm": "db-9"}
            assert float(result[0]["value"][1]) >= 0
            up = promql(prom, "sysmon_guest_up")
            assert [(r["metric"]["vm"], r["value"][1]) for r in up] == [("db-9", "1")]


def test_listener_that_cannot_be_opened_stops_start_up_and_touches_nothing(tmp_path):
    missing = tmp_path / "no-such-dir" / "g.sock"
    regular = tmp_path / "not-a-socket"
    regular.write_text("keep")
    for path in (missing, regular):
        result = run_cli(
            "--web.listen-address=127.0.0.1:0",
            f"--guest.listen=unix:{tmp_path / 'ok.sock'}",
            f"--guest.listen=unix:{path}",
        )
        assert result.returncode == 1
        errors = [line for line in result.stderr.splitlines() if "level=error" in line]
        assert len(errors) == 1 and f"--guest.listen: cannot listen on unix:{path}" in errors[0], result.stderr
    assert regular.read_text() == "keep"
    assert not (tmp_path / "ok.sock").exists()
