"""The Helm chart, with no cluster: rendered by the Helm SDK for its defaults and each
ci/*-values.yaml, linted strictly, every object validated against the Kubernetes schemas,
and the properties that matter checked on what it renders."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from exporter.config import SERVE, ConfigError, load
from tests.helpers import ROOT

CHART = ROOT / "helm" / "sysmon-exporter"
KUBERNETES = "1.37.0"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# prometheus-operator kinds: no schema in kubernetes-validate; checked field by field below.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    chart = helm.Chart.load(CHART)
    try:
        manifests = chart.render(values or {}, name="sysmon", namespace="monitoring")
    finally:
        chart.close()
    return [doc for text in manifests.values() for doc in yaml.safe_load_all(text) if doc]


def values_of(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def containers(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = one(objects, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    by_name = {c["name"]: c for c in found}
    assert set(by_name) in ({"sysmon-exporter"}, {"sysmon-exporter", "kube-rbac-proxy"}), by_name.keys()
    return by_name


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return containers(objects)["sysmon-exporter"]


def flag(c: dict[str, Any], name: str) -> str:
    [value] = [a.split("=", 1)[1] for a in c["args"] if a.startswith(f"--{name}=")]
    return value


CASES = [pytest.param({}, id="defaults")] + [pytest.param(values_of(p), id=p.stem) for p in CI_VALUES]


def test_ci_values_exist():
    assert len(CI_VALUES) >= 2


def test_chart_lints_strictly():
    for values in [{}, *(values_of(p) for p in CI_VALUES)]:
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBERNETES}")
        assert report["errors"] == [] and report["messages"] == [], report


@pytest.mark.parametrize("values", CASES)
def test_every_object_validates_against_kubernetes_schemas(values):
    objects = render(values)
    assert objects
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, KUBERNETES, strict=True)
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {str(e).splitlines()[0]}")


@pytest.mark.parametrize("values", CASES)
def test_host_filesystems_are_mounted_read_only_where_the_flags_point(values):
    objects = render(values)
    pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
    c = container(objects)
    volumes = {v["name"]: v for v in pod["volumes"]}
    args = dict(a.removeprefix("--").split("=", 1) for a in c["args"] if "=" in a)
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for flag, host_path in [("path.procfs", "/proc"), ("path.sysfs", "/sys")]:
        mount = mounts[args[flag]]
        assert mount["readOnly"] is True, mount
        assert volumes[mount["name"]]["hostPath"]["path"] == host_path
    assert all(m["readOnly"] for m in c["volumeMounts"]), "every mount is read-only"
    # cgroupfs is read through the sysfs mount (/sys/fs/cgroup on the host).
    assert Path(args["path.cgroupfs"]).relative_to(args["path.sysfs"]) == Path("fs/cgroup")
    # Filesystems are measured below the host's / (or, without it, not at all).
    if "path.rootfs" in args:
        mount = mounts[args["path.rootfs"]]
        assert volumes[mount["name"]]["hostPath"]["path"] == "/"
    else:
        assert "--no-collector.filesystem" in c["args"], "without path.rootfs the container's own mounts are measured"
        assert not any(v["hostPath"]["path"] == "/" for v in volumes.values())


@pytest.mark.parametrize("values", CASES)
def test_the_exporter_accepts_every_flag_the_chart_passes(values, tmp_path):
    objects = render(values)
    args = container(objects)["args"]
    known = {f.name for f in SERVE.flags}

    def name(arg: str) -> str:
        return arg.removeprefix("--").split("=", 1)[0].removeprefix("no-")

    unknown = {name(a) for a in args} - known
    assert not unknown, f"flags the exporter does not have: {unknown}"
    # The checker's JSON is in the Secret mounted where the flag points; here a file stands in for it.
    sysmon_vm = [a for a in args if a.startswith("--sysmon-vm.config=")]
    if sysmon_vm:
        path = Path(sysmon_vm[0].split("=", 1)[1])
        pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mount = next(m for m in container(objects)["volumeMounts"] if path.parent == Path(m["mountPath"]))
        assert volumes[mount["name"]]["secret"]["secretName"] == values["grpc"]["configSecret"]
        standin = tmp_path / path.name
        standin.write_text('{"listen_addr": ":50110", "security": {"mode": "none"}}')
        args = [f"--sysmon-vm.config={standin}" if a in sysmon_vm else a for a in args]
    try:
        config = load(args, {})
    except ConfigError as e:
        pytest.fail(f"the exporter rejects the chart's flags: {e}")
    assert config.roots.procfs == Path(values.get("path", {}).get("procfs", "/host/proc"))
    listen = values.get("grpc", {}).get("listenAddress")
    assert (config.grpc.port if config.grpc else None) == (int(listen.rsplit(":", 1)[1]) if listen else None)


@pytest.mark.parametrize("values", CASES)
def test_ports_agree_between_flag_container_service_and_servicemonitor(values):
    objects = render(values)
    c = container(objects)
    proxy = containers(objects).get("kube-rbac-proxy")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    # With kube-rbac-proxy it owns the metrics port and the exporter is its upstream on loopback.
    if proxy:
        assert "metrics" not in ports
        ports["metrics"] = next(p["containerPort"] for p in proxy["ports"] if p["name"] == "metrics")
        listen = flag(proxy, "secure-listen-address")
        assert flag(proxy, "upstream") == f"http://{flag(c, 'web.listen-address')}/"
    else:
        listen = flag(c, "web.listen-address")
    assert ports["metrics"] == int(listen.rsplit(":", 1)[1])
    grpc = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--grpc.listen-address=")]
    assert ("grpc" in ports) == bool(grpc)
    if grpc:
        assert ports["grpc"] == int(grpc[0].rsplit(":", 1)[1])
    service = one(objects, "Service")
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(service_ports) == set(ports)
    for name, p in service_ports.items():
        assert p["targetPort"] == name and p["port"] == ports[name]
    selector = one(objects, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= selector.items()
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] == ("metrics" if not proxy else ports["metrics"])
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert bool(monitors) == bool(values.get("serviceMonitor", {}).get("enabled"))
    for monitor in monitors:
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]


@pytest.mark.parametrize("values", CASES)
def test_security_context_non_root_read_only_no_capabilities(values):
    objects = render(values)
    pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
    sc = container(objects)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "privileged" not in sc
    assert pod["hostNetwork"] is values.get("hostNetwork", True) and pod["hostPID"] is values.get("hostPID", False)
    added = set()
    if values.get("perf", {}).get("addCapability", False):
        added |= {"PERFMON"}
    if values.get("syscalls", {}).get("addCapabilities", False):
        added |= {"BPF", "PERFMON"}
    if added:
        # uid 0 (the only uid Kubernetes gives added capabilities to) with those alone.
        assert sorted(sc["capabilities"]["add"]) == sorted(added)
        assert sc["runAsUser"] == 0 and sc["runAsNonRoot"] is False
    else:
        assert "add" not in sc["capabilities"]
        assert "runAsUser" not in sc and "runAsNonRoot" not in sc


@pytest.mark.parametrize(
    ("values", "added"),
    [
        ({"perf": {"addCapability": True}}, ["PERFMON"]),
        ({"syscalls": {"addCapabilities": True}, "collector": {"syscalls": True}}, ["BPF", "PERFMON"]),
        ({"perf": {"addCapability": True}, "syscalls": {"addCapabilities": True}}, ["PERFMON", "BPF"]),
    ],
    ids=["perf", "syscalls", "both"],
)
def test_perf_and_syscalls_add_only_their_capabilities(values, added):
    sc = container(render(values))["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"], "add": added}
    assert sc["runAsUser"] == 0 and sc["runAsNonRoot"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False


def test_values_map_to_flags():
    c = container(
        render(
            {
                "sampler": {"interval": "250ms"},
                "log": {"level": "warn"},
                "collector": {"perf": False, "meminfo": True},
                "extraArgs": ["--no-collector.cpufreq"],
            }
        )
    )
    assert c["args"][-5:] == [
        "--sampler.interval=250ms",
        "--log.level=warn",
        "--collector.meminfo",
        "--no-collector.perf",
        "--no-collector.cpufreq",
    ]


def test_a_listen_address_without_port_fails_rendering():
    with pytest.raises(helm.HelmError, match="has no port"):
        render({"web": {"listenAddress": "localhost"}})


def test_a_grpc_config_secret_without_a_grpc_port_fails_rendering():
    with pytest.raises(helm.HelmError, match=re.escape("grpc.configSecret needs grpc.listenAddress")):
        render({"grpc": {"configSecret": "sysmon-vm-mtls"}})


def test_optional_objects_are_off_by_default():
    kinds = sorted(o["kind"] for o in render())
    assert kinds == ["DaemonSet", "Service", "ServiceAccount"]


def test_prometheus_rule_carries_dashboards_rules_yaml():
    rule = one(render({"prometheusRule": {"enabled": True}}), "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((ROOT / "dashboards" / "rules.yaml").read_text())


def test_dashboard_configmaps_carry_each_dashboard_for_the_grafana_sidecar():
    objects = render({"dashboards": {"enabled": True, "folder": "sysmon"}})
    maps = [o for o in objects if o["kind"] == "ConfigMap"]
    dashboards = sorted((ROOT / "dashboards").glob("*.json"))
    assert len(maps) == len(dashboards)
    by_file = {key: (m, text) for m in maps for key, text in m["data"].items()}
    for path in dashboards:
        configmap, text = by_file[path.name]
        assert json.loads(text) == json.loads(path.read_text())
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert configmap["metadata"]["annotations"]["grafana_folder"] == "sysmon"


@pytest.mark.parametrize(
    "values",
    [
        {"hostNetworking": True},
        {"serviceMonitor": {"intervall": "10s"}},
        {"image": {"digest": "latest"}},
        {"webConfig": {"enable": True}},
        {"podSecurityContext": {"runAsUser": 1}},
        {"kubeRBACProxy": {"enabled": True, "portName": "http"}},
        {"kubeRBACProxy": {"image": {"sha": "sha256:" + "ab" * 32}}},
        {"rbac": {"create": True, "pspEnabled": True}},
    ],
    ids=["top-level", "nested", "bad-digest", "web-config-typo", "old-name", "proxy-typo", "proxy-sha-prefix", "psp"],
)
def test_schema_refuses_values_that_would_do_nothing(values):
    with pytest.raises(helm.HelmError, match="schema"):
        render(values)


def test_node_agent_defaults_as_the_community_chart():
    pod = one(render(), "DaemonSet")["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["hostNetwork"] is True and pod["hostPID"] is False
    assert pod["tolerations"] == [{"operator": "Exists"}]


def test_pass_through_values_land_where_the_community_chart_puts_them():
    values = {
        "nodeSelector": {"pool": "a"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
        "podLabels": {"team": "x"},
        "podAnnotations": {"a": "b"},
        "imagePullSecrets": [{"name": "creds"}],
        "image": {"repository": "r/sysmon", "digest": "sha256:" + "ab" * 32},
        "updateStrategy": {"type": "OnDelete"},
        "resources": {"limits": {"memory": "64Mi"}},
        "securityContext": {"runAsUser": 1000},
        "containerSecurityContext": {"readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "extraVolumes": [{"name": "x", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "x", "mountPath": "/x", "readOnly": True}],
        "service": {"annotations": {"s": "t"}},
        "hostNetwork": False,
        "priorityClassName": "",
    }
    objects = render(values)
    ds = one(objects, "DaemonSet")
    pod = ds["spec"]["template"]
    c = container(objects)
    # Maps merge with the chart's defaults, as Helm merges values.
    assert pod["spec"]["nodeSelector"]["pool"] == "a" and "nodeAffinity" in pod["spec"]["affinity"]
    assert pod["metadata"]["labels"]["team"] == "x" and pod["metadata"]["annotations"] == {"a": "b"}
    assert pod["spec"]["imagePullSecrets"] == [{"name": "creds"}]
    assert c["image"] == "r/sysmon@sha256:" + "ab" * 32
    assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}
    assert c["resources"]["limits"] == {"memory": "64Mi"}
    assert pod["spec"]["securityContext"]["runAsUser"] == 1000
    assert c["securityContext"].items() >= {"readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}.items()
    assert c["env"] == [{"name": "TZ", "value": "UTC"}]
    assert {"name": "x", "emptyDir": {}} in pod["spec"]["volumes"]
    assert {"name": "x", "mountPath": "/x", "readOnly": True} in c["volumeMounts"]
    assert one(objects, "Service")["metadata"]["annotations"] == {"s": "t"}
    assert pod["spec"]["hostNetwork"] is False and "priorityClassName" not in pod["spec"]


def test_service_monitor_values():
    monitor = one(
        render(
            {
                "serviceMonitor": {
                    "enabled": True,
                    "jobLabel": "app",
                    "interval": "15s",
                    "scrapeTimeout": "5s",
                    "relabelings": [{"targetLabel": "a", "replacement": "b"}],
                    "metricRelabelings": [{"action": "drop", "regex": "x_.*", "sourceLabels": ["__name__"]}],
                }
            }
        ),
        "ServiceMonitor",
    )
    assert monitor["spec"]["jobLabel"] == "app"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["interval"], endpoint["scrapeTimeout"], endpoint["scheme"]) == ("15s", "5s", "http")
    assert endpoint["relabelings"][0]["targetLabel"] == "node"  # the chart's own first, then the user's
    assert endpoint["relabelings"][1:] == [{"targetLabel": "a", "replacement": "b"}]
    assert endpoint["metricRelabelings"] == [{"action": "drop", "regex": "x_.*", "sourceLabels": ["__name__"]}]


def test_network_policy_admits_only_the_ports():
    policy = one(render({"networkPolicy": {"enabled": True}, "grpc": {"listenAddress": ":50051"}}), "NetworkPolicy")
    (rule,) = policy["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == ["metrics", "grpc"] and "from" not in rule
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_web_config_renders_a_secret_the_exporter_loads_and_https_scrapes(tmp_path):
    import trustme

    from exporter.web.live import load as load_web_config
    from tests.web.pki import bcrypt_hash

    ca = trustme.CA()
    cert = ca.issue_cert("sysmon-exporter")
    values = {
        "webConfig": {
            "enabled": True,
            "config": {
                "tls_server_config": {"cert_file": "tls.crt", "key_file": "tls.key", "min_version": "TLS13"},
                "basic_auth_users": {"prometheus": bcrypt_hash("pw")},
            },
            "files": {
                "tls.crt": cert.cert_chain_pems[0].bytes().decode(),
                "tls.key": cert.private_key_pem.bytes().decode(),
            },
        },
        "serviceMonitor": {
            "enabled": True,
            "tlsConfig": {"ca": {"secret": {"name": "ca", "key": "ca.crt"}}, "serverName": "sysmon-exporter"},
            "basicAuth": {"username": {"name": "s", "key": "u"}, "password": {"name": "s", "key": "p"}},
        },
    }
    objects = render(values)
    secret = one(objects, "Secret")
    pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
    c = container(objects)
    # Mounted where the flag points, from that Secret.
    flag = next(a for a in c["args"] if a.startswith("--web.config.file="))
    path = Path(flag.split("=", 1)[1])
    mount = next(m for m in c["volumeMounts"] if Path(m["mountPath"]) == path.parent)
    assert mount["readOnly"] is True
    assert {v["name"]: v for v in pod["volumes"]}[mount["name"]]["secret"]["secretName"] == secret["metadata"]["name"]
    assert "--web.health-without-auth" in c["args"]
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTPS" == c["livenessProbe"]["httpGet"]["scheme"]
    # What the Secret holds is a web configuration the exporter accepts, certificates included.
    for name, content in secret["stringData"].items():
        (tmp_path / name).write_text(content)
    active = load_web_config(tmp_path / path.name)
    assert active.tls is not None and active.tls.minimum_version.name == "TLSv1_3"
    assert set(active.file.users) == {"prometheus"}
    (endpoint,) = one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == values["serviceMonitor"]["tlsConfig"]
    assert endpoint["basicAuth"] == values["serviceMonitor"]["basicAuth"]


def test_web_config_without_content_fails_rendering():
    with pytest.raises(helm.HelmError, match=re.escape("webConfig.enabled needs webConfig.config")):
        render({"webConfig": {"enabled": True}})


PROXY = {"kubeRBACProxy": {"enabled": True}, "serviceMonitor": {"enabled": True}}
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SECURE = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_kube_rbac_proxy_serves_the_port_and_the_exporter_listens_on_loopback_only():
    objects = render({**PROXY, "web": {"listenAddress": "[::]:9100"}})
    c, proxy = container(objects), containers(objects)["kube-rbac-proxy"]
    config = load(c["args"], {})
    assert config.web.listen_addresses == (("127.0.0.1", 9478),)
    assert flag(proxy, "secure-listen-address") == "[::]:9100"
    assert flag(proxy, "upstream") == "http://127.0.0.1:9478/"
    assert proxy["image"] == "quay.io/brancz/kube-rbac-proxy:v0.20.2"
    assert [(p["name"], p["containerPort"]) for p in proxy["ports"]] == [("metrics", 9100), ("http-healthz", 9479)]
    assert flag(proxy, "proxy-endpoints-port") == "9479"
    assert proxy["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-healthz", "scheme": "HTTPS"}
    # The exporter's probes go through the proxy, on exactly the paths it lets pass unauthenticated.
    probe_paths = set()
    for probe in ("livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert (get["port"], get["scheme"]) == (9100, "HTTPS") and "host" not in get
        probe_paths.add(get["path"])
    assert set(flag(proxy, "ignore-paths").split(",")) == probe_paths == {"/-/healthy", "/-/ready"}
    assert proxy["securityContext"] == SECURE


def test_kube_rbac_proxy_authorizes_against_the_service_with_rbac_for_its_reviews():
    objects = render(PROXY)
    pod = one(objects, "DaemonSet")["spec"]["template"]["spec"]
    proxy = containers(objects)["kube-rbac-proxy"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in proxy["volumeMounts"]}
    # The authorization config: the ConfigMap mounted where --config-file points.
    config_path = Path(flag(proxy, "config-file"))
    configmap = one(objects, "ConfigMap")
    assert volumes[mounts[str(config_path.parent)]["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
    service = one(objects, "Service")["metadata"]
    attributes = yaml.safe_load(configmap["data"][config_path.name])["authorization"]["resourceAttributes"]
    assert attributes == {
        "namespace": service["namespace"],
        "apiVersion": "v1",
        "resource": "services",
        "subresource": service["name"],
        "name": service["name"],
    }
    # Its token is mounted in the proxy alone; the pod (and so the exporter) gets none.
    assert pod["automountServiceAccountToken"] is False
    token = volumes[mounts[TOKEN_DIR]["name"]]["projected"]["sources"]
    assert {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}} in token
    assert not any(m["mountPath"] == TOKEN_DIR for m in container(objects)["volumeMounts"])
    # The reviews it makes, granted to the pod's service account.
    role, binding = one(objects, "ClusterRole"), one(objects, "ClusterRoleBinding")
    assert sorted((r["apiGroups"], r["resources"], r["verbs"]) for r in role["rules"]) == [
        (["authentication.k8s.io"], ["tokenreviews"], ["create"]),
        (["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": service["namespace"]}
    ]
    assert pod["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]


def test_kube_rbac_proxy_with_an_existing_service_account_and_no_rbac():
    objects = render({**PROXY, "rbac": {"create": False}, "serviceAccount": {"create": False, "name": "scraped"}})
    kinds = {o["kind"] for o in objects}
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds and "ServiceAccount" not in kinds
    assert one(objects, "DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"] == "scraped"
    binding = one(render({**PROXY, "serviceAccount": {"create": False, "name": "scraped"}}), "ClusterRoleBinding")
    assert binding["subjects"][0]["name"] == "scraped"


def test_rbac_objects_only_come_with_the_proxy():
    kinds = {o["kind"] for o in render({"rbac": {"create": True}})}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "ConfigMap"}


def test_kube_rbac_proxy_service_monitor_scrapes_https_with_the_prometheus_token():
    (endpoint,) = one(render(PROXY), "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["bearerTokenFile"] == f"{TOKEN_DIR}/token"
    assert endpoint["tlsConfig"] == {"insecureSkipVerify": True}
    # A CA and token of the user's own replace the defaults.
    tls = {"ca": {"secret": {"name": "proxy-ca", "key": "ca.crt"}}, "serverName": "sysmon"}
    values = {**PROXY, "serviceMonitor": {"enabled": True, "tlsConfig": tls, "bearerTokenFile": "/etc/token"}}
    (endpoint,) = one(render(values), "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["tlsConfig"], endpoint["bearerTokenFile"]) == (tls, "/etc/token")
    (plain,) = one(render({"serviceMonitor": {"enabled": True}}), "ServiceMonitor")["spec"]["endpoints"]
    assert plain["scheme"] == "http" and "bearerTokenFile" not in plain and "tlsConfig" not in plain


def test_kube_rbac_proxy_values_land_where_the_community_chart_puts_them():
    values = {
        "kubeRBACProxy": {
            "enabled": True,
            "image": {
                "registry": "r.example",
                "repository": "krp",
                "tag": "v1",
                "sha": "cd" * 32,
                "pullPolicy": "Always",
            },
            "extraArgs": ["--upstream=http://127.0.0.1:9478/x/", "--v=2"],
            "env": {"GOMAXPROCS": "1"},
            "port": 19478,
            "proxyEndpointsPort": 19479,
            "resources": {"limits": {"memory": "32Mi"}},
            "containerSecurityContext": {"runAsUser": 1000},
            "extraVolumeMounts": [{"name": "tls", "mountPath": "/tls", "readOnly": True}],
        },
        "extraVolumes": [{"name": "tls", "secret": {"secretName": "proxy-tls"}}],
    }
    objects = render(values)
    c, proxy = container(objects), containers(objects)["kube-rbac-proxy"]
    assert proxy["image"] == "r.example/krp:v1@sha256:" + "cd" * 32 and proxy["imagePullPolicy"] == "Always"
    # After the chart's flags, so the last (the user's) wins.
    assert proxy["args"][-2:] == ["--upstream=http://127.0.0.1:9478/x/", "--v=2"]
    assert proxy["env"] == [{"name": "GOMAXPROCS", "value": "1"}]
    assert flag(c, "web.listen-address") == "127.0.0.1:19478"
    assert "--upstream=http://127.0.0.1:19478/" in proxy["args"]
    assert "--proxy-endpoints-port=19479" in proxy["args"]
    assert proxy["resources"] == {"limits": {"memory": "32Mi"}}
    # Maps merge with the chart's defaults, as Helm merges values.
    assert proxy["securityContext"] == {**values["kubeRBACProxy"]["containerSecurityContext"], **SECURE}
    assert {"name": "tls", "mountPath": "/tls", "readOnly": True} in proxy["volumeMounts"]
    assert not any(m["name"] == "tls" for m in c["volumeMounts"])


def test_kube_rbac_proxy_and_web_config_together_fail_rendering():
    with pytest.raises(helm.HelmError, match=re.escape("kubeRBACProxy.enabled and webConfig.enabled")):
        render({**PROXY, "webConfig": {"enabled": True, "existingSecret": "web"}})
