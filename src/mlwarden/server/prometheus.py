"""``/metrics``: the newest value of every metric of every model version, for Prometheus.

Each mlwarden metric becomes gauges labelled by model, version, metric, column and segment:
its value, its alert bounds, whether it is outside them, and when its window ended — so a
Grafana panel can chart any metric with its band, and an alert rule can fire on
``mlwarden_metric_alert == 1``. Logged rows that depart from their version's logging contract
are counted by ``mlwarden_contract_rows_total``, labelled by model, version, the kind of batch
(``rows`` or ``labels``), the finding's kind and its column: an alert rule on its ``increase``
fires while rows arrive without the score the version was registered with.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> from mlwarden.store.metadata import MetricValue, Store
    >>> store = Store("sqlite://")
    >>> store.migrate()
    >>> _ = store.create_model("m"), store.create_version("m", "1")
    >>> t = datetime(2024, 5, 1, tzinfo=UTC)
    >>> w = store.upsert_window("m", "1", t, t + timedelta(hours=1), n_rows=10)
    >>> _ = store.write_metrics(w.id, [MetricValue("null_rate", 0.2, upper=0.01, column="x")])
    >>> for line in exposition(store).decode().splitlines():
    ...     if line.startswith("mlwarden_metric_alert{"):
    ...         print(line)
    mlwarden_metric_alert{column="x",metric="null_rate",model="m",segment="",version="1"} 1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlwarden.store.metadata import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABELS = ["model", "version", "metric", "column", "segment"]
_CONTRACT_LABELS = ["model", "version", "batch", "kind", "column"]


class _StoreCollector:
    """Reads the newest metrics from the store at every scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        latest = self.store.latest_metrics()
        families = {
            "value": GaugeMetricFamily(
                "mlwarden_metric_value", "Newest value of an mlwarden metric.", labels=_LABELS
            ),
            "lower": GaugeMetricFamily(
                "mlwarden_metric_lower", "Lower alert bound of the metric.", labels=_LABELS
            ),
            "upper": GaugeMetricFamily(
                "mlwarden_metric_upper", "Upper alert bound of the metric.", labels=_LABELS
            ),
            "alert": GaugeMetricFamily(
                "mlwarden_metric_alert", "1 when the metric is outside its bounds.", labels=_LABELS
            ),
            "window_end": GaugeMetricFamily(
                "mlwarden_metric_window_end_seconds",
                "End of the window the value belongs to (Unix time).",
                labels=_LABELS,
            ),
        }
        for row in latest.iter_rows(named=True):
            labels = [
                str(row[k] or "") for k in ("model", "version", "metric", "column", "segment")
            ]
            for key in ("value", "lower", "upper"):
                if row[key] is not None:
                    families[key].add_metric(labels, float(row[key]))
            families["alert"].add_metric(labels, 1.0 if row["alert"] else 0.0)
            families["window_end"].add_metric(labels, row["window_end"].timestamp())
        yield from families.values()
        contract = CounterMetricFamily(
            "mlwarden_contract_rows",
            "Logged rows (or labels) that departed from their version's logging contract.",
            labels=_CONTRACT_LABELS,
        )
        for finding in self.store.contract_findings(None, open_only=False):
            labels = [finding.model, finding.version, finding.batch, finding.kind, finding.column]
            contract.add_metric(labels, float(finding.rows_total))
        yield contract


def exposition(store: Store) -> bytes:
    """The Prometheus text exposition of the store's newest metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StoreCollector(store))
    return generate_latest(registry)
