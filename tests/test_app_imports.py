"""Features that are off cost no imports: grpc, the guest ingest and recorder, the syscall counters' BPF loader."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.helpers import FIXTURES, ROOT, free_port

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
)

# Serves with the default collectors on a fixture host until /-/ready answers, then stops itself and
# prints which of the modules it loaded.
SERVE = textwrap.dedent(
    """\
    import json, os, signal, sys, threading, time, urllib.request
    from exporter.cli import main

    port, root, modules = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])

    def stop_when_ready():
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_ready, daemon=True).start()
    code = main([f"--web.listen-address=127.0.0.1:{port}", f"--path.procfs={root}/proc", f"--path.sysfs={root}/sys"])
    print(json.dumps({"code": code, "loaded": sorted(m for m in modules if m in sys.modules)}))
    """
)


def loaded_by(code: str, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
    return result


def test_importing_the_app_loads_no_feature_module():
    check = "import json, sys\nimport exporter.app, exporter.cli\n"
    check += f"print(json.dumps({{'loaded': sorted(m for m in {list(FEATURE_MODULES)!r} if m in sys.modules)}}))"
    assert loaded_by(check) == {"loaded": []}


def test_serving_with_default_flags_loads_no_feature_module():
    result = loaded_by(SERVE, str(free_port()), str(FIXTURES / "vm-2cpu"), json.dumps(FEATURE_MODULES))
    assert result == {"code": 0, "loaded": []}


def test_the_check_sees_a_feature_module_when_its_feature_is_on():
    """The same check with --collector.syscalls: the BPF loader is imported (so the tests above can fail)."""
    code = SERVE.replace('f"--path.sysfs={root}/sys"]', 'f"--path.sysfs={root}/sys", "--collector.syscalls"]')
    assert code != SERVE
    result = loaded_by(code, str(free_port()), str(FIXTURES / "vm-2cpu"), json.dumps(FEATURE_MODULES))
    assert "exporter.sources.syscalls" in result["loaded"]  # type: ignore[operator]
