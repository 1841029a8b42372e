"""Debian's Prometheus scrapes the exporter over HTTPS with basic_auth and tls_config, and with a client
certificate, as it would scrape node_exporter behind the same web configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import parse_exposition, promql, run_prometheus, wait_until
from tests.web.pki import PASSWORD, USER, Pki, basic, bcrypt_hash, https_get, run_https_exporter


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    d = tmp_path / "pki"
    d.mkdir()
    return Pki.make(d)


def subdir(tmp_path: Path, name: str) -> Path:
    (tmp_path / name).mkdir()
    return tmp_path / name


def up(base: str) -> str | None:
    result = promql(base, 'up{job="sysmon"}')
    return result[0]["value"][1] if result else None


def scrape_job(pki: Pki, password: str | None = None, client_cert: bool = False) -> str:
    job = f"    scheme: https\n    tls_config:\n      ca_file: {pki.dir / 'ca.pem'}\n"
    if client_cert:
        job += f"      cert_file: {pki.dir / 'client.crt'}\n      key_file: {pki.dir / 'client.key'}\n"
    if password is not None:
        job += f"    basic_auth:\n      username: {USER}\n      password: '{password}'\n"
    return job


def test_prometheus_scrapes_over_https_with_basic_auth(pki: Pki, tmp_path: Path) -> None:
    web = pki.dir / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  {USER}: '{bcrypt_hash(PASSWORD, cost=10)}'\n"
    )
    ctx = pki.client_context()
    with run_https_exporter(web, tmp_path, ctx) as exp:
        target = f"127.0.0.1:{exp.port}"
        with run_prometheus([target], subdir(tmp_path, "good"), job_extra=scrape_job(pki, PASSWORD)) as prom:
            wait_until(lambda: up(prom) == "1", timeout=30, what="up == 1 over HTTPS with basic auth")
            wait_until(
                lambda: promql(prom, 'sysmon_cpu_seconds_total{job="sysmon"}'), timeout=30, what="a scraped series"
            )
        with run_prometheus([target], subdir(tmp_path, "bad"), job_extra=scrape_job(pki, "wrong")) as prom:
            wait_until(lambda: up(prom) == "0", timeout=30, what="up == 0 with a wrong password")

        def refused() -> float:
            status, body, _ = https_get(exp.url + "/metrics", ctx, basic(USER, PASSWORD))
            assert status == 200
            counts = parse_exposition(body.decode())["sysmon_http_requests_total"]
            return counts.get((("code", "401"), ("handler", "/metrics")), 0)

        wait_until(refused, what="Prometheus's refused scrapes counted as 401")


def test_prometheus_scrapes_with_a_client_certificate(pki: Pki, tmp_path: Path) -> None:
    web = pki.dir / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.pem\n"
    )
    with run_https_exporter(web, tmp_path, pki.client_context("client")) as exp:
        target = f"127.0.0.1:{exp.port}"
        with run_prometheus([target], subdir(tmp_path, "cert"), job_extra=scrape_job(pki, client_cert=True)) as prom:
            wait_until(lambda: up(prom) == "1", timeout=30, what="up == 1 with a client certificate")
        with run_prometheus([target], subdir(tmp_path, "nocert"), job_extra=scrape_job(pki)) as prom:
            wait_until(lambda: up(prom) == "0", timeout=30, what="up == 0 without a client certificate")
