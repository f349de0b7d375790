"""packaging/k8s/, validated offline: every manifest parses and has what
Kubernetes requires, the objects agree with each other (labels, ports, names),
and with the configuration they carry.  The ConfigMap's egressd.conf and policy
pass `egressd -t`, its rsyslog.conf passes `rsyslogd -N1`, and an egressd
started from that configuration (addresses moved to loopback, paths to a
temporary folder) answers the readiness probe's path and exports the metric
the autoscaler scales on.
"""

import os
import re
import shutil
import subprocess
import time

import pytest
import yaml

from harness.gateway import BINARY, free_port
from harness.util import http_get

K8S = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "packaging", "k8s")


def load_all():
    docs = {}
    for name in sorted(os.listdir(K8S)):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(K8S, name)) as f:
            for d in yaml.safe_load_all(f):
                if d is None:
                    continue
                assert d.get("apiVersion") and d.get("kind"), "%s: apiVersion and kind" % name
                assert d.get("metadata", {}).get("name"), "%s: metadata.name" % name
                docs[d["kind"]] = d
    return docs


@pytest.fixture(scope="module")
def docs():
    return load_all()


def conf_keys(text):
    keys = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, _, v = line.partition(" ")
        keys.setdefault(k, []).append(v.strip())
    return keys


def test_every_object_is_there(docs):
    for kind in ("Deployment", "Service", "ConfigMap", "PodDisruptionBudget",
                 "HorizontalPodAutoscaler"):
        assert kind in docs, "packaging/k8s has no %s" % kind


def test_objects_agree_with_each_other(docs):
    dep, svc, pdb, hpa, cm = (docs[k] for k in ("Deployment", "Service", "PodDisruptionBudget",
                                                 "HorizontalPodAutoscaler", "ConfigMap"))
    labels = dep["spec"]["template"]["metadata"]["labels"]
    sel = dep["spec"]["selector"]["matchLabels"]
    assert all(labels.get(k) == v for k, v in sel.items()), "Deployment selector vs pod labels"
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "Service selector"
    assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", dep["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    # Every ConfigMap volume names this ConfigMap.
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    for v in vols.values():
        if "configMap" in v:
            assert v["configMap"]["name"] == cm["metadata"]["name"]
    # Every mount names a volume.
    for c in dep["spec"]["template"]["spec"]["containers"]:
        for m in c.get("volumeMounts", []):
            assert m["name"] in vols, "%s mounts unknown volume %s" % (c["name"], m["name"])


def egressd_container(dep):
    return [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "egressd"][0]


def test_ports_and_probes_match_the_configuration(docs):
    dep, svc, cm = docs["Deployment"], docs["Service"], docs["ConfigMap"]
    keys = conf_keys(cm["data"]["egressd.conf"])
    c = egressd_container(dep)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    listen_ports = {int(v.split()[0].rsplit(":", 1)[1]) for v in keys["listen"]}
    metrics_port = int(keys["metrics_listen"][0].rsplit(":", 1)[1])
    assert ports["proxy"] in listen_ports
    assert ports["metrics"] == metrics_port
    probe = c["readinessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and ports[probe["port"]] == metrics_port
    live = c["livenessProbe"]["httpGet"]
    assert live["path"] != "/healthz", "liveness on /healthz would restart a draining pod"
    for p in svc["spec"]["ports"]:
        assert p["targetPort"] in ports and ports[p["targetPort"]] in listen_ports
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert int(ann["prometheus.io/port"]) == metrics_port


def test_termination_covers_prestop_and_the_drain(docs):
    dep, cm = docs["Deployment"], docs["ConfigMap"]
    keys = conf_keys(cm["data"]["egressd.conf"])
    grace = int(keys["shutdown_grace"][0])
    c = egressd_container(dep)
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert os.path.basename(cmd[0]) == "sleep"
    pre = int(cmd[1])
    assert pre >= 5, "preStop too short for the endpoints to converge"
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > pre + grace


def test_pods_run_unprivileged(docs):
    spec = docs["Deployment"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert "memory" in c["resources"]["limits"], c["name"]


def test_writable_paths_are_volumes_shared_where_needed(docs):
    dep, cm = docs["Deployment"], docs["ConfigMap"]
    keys = conf_keys(cm["data"]["egressd.conf"])
    mounts = {c["name"]: {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
              for c in dep["spec"]["template"]["spec"]["containers"]}

    def volume_of(container, path):
        best = None
        for mp, vol in mounts[container].items():
            if path == mp or path.startswith(mp.rstrip("/") + "/"):
                if best is None or len(mp) > len(best[0]):
                    best = (mp, vol)
        return best and best[1]

    audit_dir = os.path.dirname(keys["audit_syslog_socket"][0])
    admin_dir = os.path.dirname(keys["admin_socket"][0])
    assert volume_of("egressd", audit_dir) == volume_of("audit-relay", audit_dir) is not None
    assert volume_of("egressd", admin_dir) == volume_of("policy-reload", admin_dir) is not None
    assert "/run/egressd-audit/log" in cm["data"]["rsyslog.conf"] or \
        keys["audit_syslog_socket"][0] in cm["data"]["rsyslog.conf"]
    spool = re.search(r'workDirectory="([^"]+)"', cm["data"]["rsyslog.conf"]).group(1)
    assert volume_of("audit-relay", spool) is not None, "rsyslog's spool is not on a volume"


@pytest.fixture
def local_copy(docs, tmp_path):
    """The ConfigMap's files with /run and /var paths moved under tmp_path and
    the listeners on loopback ports."""
    cm = docs["ConfigMap"]["data"]
    proxy, metrics = free_port(), free_port()
    conf = cm["egressd.conf"]
    conf = re.sub(r"(?m)^listen\s+\S+", "listen 127.0.0.1:%d" % proxy, conf)
    conf = re.sub(r"(?m)^metrics_listen\s+\S+", "metrics_listen 127.0.0.1:%d" % metrics, conf)
    conf = conf.replace("/run/", str(tmp_path) + "/run/")
    rs = cm["rsyslog.conf"].replace("/run/", str(tmp_path) + "/run/") \
                           .replace("/var/spool/rsyslog", str(tmp_path) + "/spool")
    for d in ("run/egressd", "run/egressd-audit", "spool"):
        os.makedirs(tmp_path / d, exist_ok=True)
    (tmp_path / "egressd.conf").write_text(conf)
    (tmp_path / "policy.rules").write_text(cm["policy.rules"])
    (tmp_path / "rsyslog.conf").write_text(rs)
    return tmp_path, proxy, metrics


def test_configmap_passes_egressd_t(local_copy):
    d, _, _ = local_copy
    r = subprocess.run([BINARY, "-t", "-c", str(d / "egressd.conf")], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("rsyslogd") is None, reason="rsyslog not installed")
def test_configmap_rsyslog_conf_is_valid(local_copy):
    d, _, _ = local_copy
    r = subprocess.run(["rsyslogd", "-N1", "-f", str(d / "rsyslog.conf")], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_started_from_the_configmap_it_serves_the_probe_and_the_hpa_metric(docs, local_copy):
    d, proxy, metrics = local_copy
    hpa_metric = docs["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["pods"]["metric"]["name"]
    log = open(d / "stderr.log", "wb")
    p = subprocess.Popen([BINARY, "-c", str(d / "egressd.conf")], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log, cwd=str(d))
    try:
        deadline = time.monotonic() + 10
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                body = {path: get(metrics, path) for path in ("/healthz", "/metrics")}
            except OSError:
                time.sleep(0.1)
        assert body is not None, (d / "stderr.log").read_text()
        assert body["/healthz"].startswith(b"HTTP/1.1 200")
        assert re.search(rb"(?m)^%s " % hpa_metric.encode(), body["/metrics"]), \
            "/metrics has no %s" % hpa_metric
    finally:
        p.terminate()
        p.wait(timeout=10)
        log.close()


def get(port, path):
    status, body = http_get(port, path, timeout=2)
    return ("HTTP/1.1 %d" % status).encode() + b"\r\n\r\n" + body
