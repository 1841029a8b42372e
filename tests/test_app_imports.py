"""Features that are off cost no imports: grpc, the guest ingest and recorder, the syscall counters' BPF loader,
the web configuration file's YAML and bcrypt, and importlib.metadata (only --version needs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.helpers import FIXTURES, ROOT, free_port
from tests.web.pki import PASSWORD, USER, basic, bcrypt_hash

# Loaded only by the feature that needs them (--grpc.listen-address / --serviceradar.*, --guest.listen,
# --guest.record, --collector.syscalls).
FEATURE_MODULES = (
    "grpc",
    "exporter.grpc_compat",
    "exporter.guest.ingest",
    "exporter.guest.record",
    "exporter.guest.downlink",
    "exporter.sources.syscalls",
    "exporter.sources.bpf",
    # --web.config.file (yaml) and its basic_auth_users (bcrypt); --version (importlib.metadata, with the
    # email and zipfile modules it loads): about 2 MiB of RSS between them.
    "yaml",
    "bcrypt",
    "importlib.metadata",
)

# Serves with the default collectors on a fixture host and the given extra flags until /-/ready answers
# (asked with the given headers), then stops itself and prints the answer and which of the modules it loaded.
SERVE = textwrap.dedent(
    """\
    import json, os, signal, sys, threading, time, urllib.request
    from exporter.cli import main

    port, root = int(sys.argv[1]), sys.argv[2]
    modules, flags, headers = (json.loads(a) for a in sys.argv[3:6])
    ready = []

    def stop_when_ready():
        request = urllib.request.Request(f"http://127.0.0.1:{port}/-/ready", headers=headers)
        for _ in range(600):
            try:
                with urllib.request.urlopen(request, timeout=1) as response:
                    ready.append(response.status)
                    break
            except OSError:
                time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    def malloc_heaps():  # glibc's arenas, from malloc_info(3)
        import ctypes

        libc, buf, size = ctypes.CDLL(None), ctypes.c_char_p(), ctypes.c_size_t()
        libc.open_memstream.restype = ctypes.c_void_p
        stream = ctypes.c_void_p(libc.open_memstream(ctypes.byref(buf), ctypes.byref(size)))
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        return buf.value.decode().count("<heap nr=")

    threading.Thread(target=stop_when_ready, daemon=True).start()
    argv = [f"--web.listen-address=127.0.0.1:{port}", f"--path.procfs={root}/proc", f"--path.sysfs={root}/sys"]
    code = main(argv + flags)
    result = {"code": code, "ready": ready, "loaded": sorted(m for m in modules if m in sys.modules)}
    if len(sys.argv) > 6:  # more to report: a Python expression evaluated after main returned
        result.update(eval(sys.argv[6]))
    print(json.dumps(result))
    """
)


def loaded_by(code: str, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True, env=env
    )
    result: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
    return result


def test_importing_the_app_loads_no_feature_module():
    check = "import json, sys\nimport exporter.app, exporter.cli\n"
    check += f"print(json.dumps({{'loaded': sorted(m for m in {list(FEATURE_MODULES)!r} if m in sys.modules)}}))"
    assert loaded_by(check) == {"loaded": []}


def serve(*flags: str, headers: dict[str, str] | None = None) -> dict[str, object]:
    root = str(FIXTURES / "vm-2cpu")
    return loaded_by(
        SERVE, str(free_port()), root, json.dumps(FEATURE_MODULES), json.dumps(flags), json.dumps(headers or {})
    )


def test_serving_with_default_flags_loads_no_feature_module():
    assert serve() == {"code": 0, "ready": [200], "loaded": []}


def test_the_check_sees_a_feature_module_when_its_feature_is_on():
    """The same check with --collector.syscalls: the BPF loader is imported (so the tests above can fail)."""
    result = serve("--collector.syscalls")
    assert "exporter.sources.syscalls" in result["loaded"]  # type: ignore[operator]


def test_a_web_configuration_file_with_users_loads_yaml_and_bcrypt_and_they_work(tmp_path):
    """yaml reads the file and bcrypt checks the password of the request that finds the exporter ready
    (TLS, headers and reloads: tests/web/test_front_door.py)."""
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  {USER}: '{bcrypt_hash(PASSWORD)}'\n")
    result = serve(f"--web.config.file={path}", headers=basic(USER, PASSWORD))
    assert result == {"code": 0, "ready": [200], "loaded": ["bcrypt", "yaml"]}


def test_a_web_configuration_file_without_users_loads_yaml_only(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    assert serve(f"--web.config.file={path}") == {"code": 0, "ready": [200], "loaded": ["yaml"]}


# What the served process reports of aiohttp's client TLS contexts, frozenlist, the environment and malloc.
SERVER_REPORT = (
    "{'client_ca_certs': [getattr(sys.modules['aiohttp.connector'], f'_SSL_CONTEXT_{c}').cert_store_stats()['x509']"
    " for c in ('VERIFIED', 'UNVERIFIED')],"
    " 'frozenlist': sys.modules['frozenlist'].FrozenList.__module__,"
    " 'environ': {n: os.environ.get(n) for n in ('SSL_CERT_FILE', 'FROZENLIST_NO_EXTENSIONS')},"
    " 'malloc_heaps': malloc_heaps()}"
)


def unset_import_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "FROZENLIST_NO_EXTENSIONS")}


def serve_reporting(environ: dict[str, str]) -> dict[str, object]:
    root = str(FIXTURES / "vm-2cpu")
    args = (str(free_port()), root, json.dumps(FEATURE_MODULES), "[]", "{}", SERVER_REPORT)
    return loaded_by(SERVE, *args, env=unset_import_environment() | environ)


def test_serving_imports_aiohttp_without_its_client_ca_bundle_and_frozenlist_extension():
    """The server never makes an aiohttp client request: its two client contexts load no CA certificate
    (about 2 MiB) and frozenlist is the pure-Python one (no libstdc++, about 1 MiB); the environment the
    imports saw is put back (TLS on /metrics: tests/web/test_front_door.py)."""
    result = serve_reporting({})
    assert result["client_ca_certs"] == [0, 0]
    assert result["frozenlist"] == "frozenlist"
    assert result["environ"] == {"SSL_CERT_FILE": None, "FROZENLIST_NO_EXTENSIONS": None}
    assert result["ready"] == [200]


def test_the_environment_set_before_start_is_kept():
    environ = {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "FROZENLIST_NO_EXTENSIONS": ""}
    assert serve_reporting(environ)["environ"] == environ


def test_aiohttp_imported_by_itself_loads_the_ca_bundle_and_the_extension():
    """The same report outside the server (so the test above can fail)."""
    report = SERVER_REPORT.replace(", 'malloc_heaps': malloc_heaps()", "")
    check = "import json, os, sys\nimport aiohttp\n" + f"print(json.dumps({report}))"
    result = loaded_by(check, env=unset_import_environment())
    assert min(result["client_ca_certs"]) > 0  # type: ignore[call-overload]
    assert result["frozenlist"] == "frozenlist._frozenlist"


def test_the_served_process_keeps_one_malloc_arena():
    """glibc's M_ARENA_MAX is 1 before the sampler's, the renderer's and libuv's threads start: they share
    the main arena instead of keeping one each (about 0.3 MiB). The check's own thread starts before main()
    and may have made a second one (its first malloc can come before or after the limit)."""
    assert serve_reporting({})["malloc_heaps"] <= 2
