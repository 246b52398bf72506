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
