"""deploy/: the alert rules and the Grafana dashboard use only metrics that exist; every metric is documented."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from holt_core.metrics import EventMetrics

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "holt-alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "holt-dashboard.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
NAME = re.compile(r"\b(holt_[a-z_]+)\b")
REQUIRED_ALERTS = {"HoltWorkflowFailureRateHigh", "HoltClaimStuck", "HoltComponentUnhealthy",
                   "HoltHumanWaitPastDeadline", "HoltAuditVerifyFailing"}


def families() -> dict[str, str]:
    """Family name -> type, as the exporter registers them."""
    metrics = EventMetrics("orchestrator", "inst")
    return {family.name: family.type for family in metrics.registry.collect()}


def sample_names() -> set[str]:
    out: set[str] = set()
    for name, kind in families().items():
        if kind == "counter":
            out |= {f"{name}_total", f"{name}_created"}
        elif kind == "histogram":
            out |= {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
        else:
            out.add(name)
    return out


def test_alert_rules_are_well_formed_and_use_existing_metrics() -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert REQUIRED_ALERTS <= {rule["alert"] for rule in rules}
    known = sample_names()
    runbooks = OPERATIONS_DOC.read_text().lower()
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        used = set(NAME.findall(rule["expr"]))
        assert used and used <= known, (rule["alert"], used - known)
        assert rule["expr"].count("(") == rule["expr"].count(")")
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert f"### {anchor}" in runbooks, f"no runbook heading for {rule['alert']} in docs/operations.md"


def test_dashboard_panels_use_existing_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    known = sample_names()
    assert dash["uid"] and dash["panels"]
    ids = [panel["id"] for panel in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(NAME.findall(target["expr"]))
            assert used and used <= known, (panel["title"], used - known)


def test_every_metric_is_documented() -> None:
    text = METRICS_DOC.read_text()
    for name in families():
        assert f"`{name}`" in text, f"{name} is not documented in docs/metrics.md"


K8S = ROOT / "deploy" / "kubernetes"


def test_kubernetes_manifests_probe_health_and_read_redis_from_a_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = [doc for name in kustomization["resources"] for doc in yaml.safe_load_all((K8S / name).read_text())]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert "holt-orchestrator" in deployments and any(n.startswith("holt-pup-") for n in deployments)
    orchestrator = deployments["holt-orchestrator"]["spec"]
    assert orchestrator["replicas"] == 1 and orchestrator["strategy"]["type"] == "Recreate"
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        [container] = spec["template"]["spec"]["containers"]
        assert container["command"][:2] in (["holt", "orchestrator"], ["holt", "pup"]), name
        env = {e["name"]: e for e in container["env"]}
        assert env["HOLT_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "holt-redis", "key": "url"}
        assert env["HOLT_HEALTH_BIND"]["value"] == "0.0.0.0"
        port = int(env["HOLT_HEALTH_PORT"]["value"])
        assert container["ports"] == [{"name": "health", "containerPort": port}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
        annotations = spec["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"
        claim = spec["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        assert any(d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == claim for d in docs)
    secrets = list(yaml.safe_load_all((K8S / "secret.example.yaml").read_text()))
    assert {s["metadata"]["name"] for s in secrets} == {"holt-redis", "holt-audit"}
