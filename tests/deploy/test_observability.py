"""The Grafana dashboard and the Prometheus config: they query metrics that something really exports, and
Prometheus scrapes every process on the port it listens on."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from kernel.kafka import DLQ_TOPIC, all_topics
from tests.deploy.facts import DEPLOY, REPO, registry_ports

DASHBOARDS = sorted((DEPLOY / "grafana/dashboards").glob("*.json"))
# Series kafka-exporter (compose's `kafka-exporter` service) exports that the dashboard uses.
KAFKA_EXPORTER_METRICS = frozenset({"kafka_topic_partition_current_offset", "kafka_topic_partition_oldest_offset",
                                    "kafka_consumergroup_lag"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _exported_metric_names() -> set[str]:
    """Names of the Prometheus metrics the Python processes define (prometheus_client Counter/Gauge/Histogram)."""
    names = set()
    for path in [*REPO.glob("kernel/**/*.py"), *REPO.glob("workers/**/*.py"), *REPO.glob("subgraphs/**/*.py")]:
        names |= set(re.findall(r'(?:Counter|Gauge|Histogram|Summary)\(\s*"([a-z_:][a-z0-9_:]*)"', path.read_text()))
    return names


def _expressions(dashboard: Path) -> list[str]:
    panels = json.loads(dashboard.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_there_is_a_dashboard():
    assert DASHBOARDS


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_only_metrics_that_are_exported(dashboard):
    exported = _exported_metric_names()
    for expr in _expressions(dashboard):
        for metric in re.findall(r"\b((?:nexuscart|kafka)_[a-z0-9_]+)\b", expr):
            if metric.startswith("kafka_"):
                assert metric in KAFKA_EXPORTER_METRICS, expr
                continue
            base = next((metric.removesuffix(s) for s in HISTOGRAM_SUFFIXES if metric.endswith(s)), metric)
            # prometheus_client exposes a Counter "x_total" from the name "x_total" or "x".
            assert {base, base.removesuffix("_total")} & exported, f"{metric} is not exported by any process"


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_shows_request_rate_p99_saga_stages_and_dlq_depth(dashboard):
    exprs = _expressions(dashboard)
    assert any("rate(nexuscart_http_requests_total" in e for e in exprs)
    assert any("histogram_quantile(0.99" in e for e in exprs)
    assert any(f'topic="{DLQ_TOPIC}"' in e for e in exprs)
    saga = [e for e in exprs if "topic=~" in e]
    assert saga
    for expr in saga:
        # PromQL regexes are anchored RE2; the dashboard JSON holds them with PromQL's string escaping.
        regex = re.search(r'topic=~"([^"]+)"', expr).group(1).replace("\\\\", "\\")
        matched = {t for t in all_topics() if re.fullmatch(regex, t)}
        assert {"order.placed", "inventory.reserved", "payment.successful", "order.paid", "order.cancelled"} <= matched
        assert DLQ_TOPIC not in matched


def test_prometheus_scrapes_every_process_where_it_listens():
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    expected = {f"{name}:{port}" for name, port in registry_ports().items()}
    expected |= {f"worker:{compose['worker']['environment']['WORKER_HEALTH_PORT']}",
                 f"relay:{compose['relay']['environment']['RELAY_HEALTH_PORT']}",
                 f"router:{compose['router']['environment']['ROUTER_PORT']}", "kafka-exporter:9308"}
    assert targets == expected
