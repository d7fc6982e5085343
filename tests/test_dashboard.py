"""docs/grafana-dashboard.json queries only metrics kimibot exports, by the names Prometheus sees."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def test_every_dashboard_query_names_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bkimibot_\w+", expr)}
    assert used and used <= exported_names(), sorted(used - exported_names())
    # Every figure an operator is promised is on the dashboard.
    assert {"kimibot_answers_total", "kimibot_platform_rate_limited_total", "kimibot_cost_usd_total",
            "kimibot_budget_wait_seconds_bucket", "kimibot_questions_waiting"} <= used
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
