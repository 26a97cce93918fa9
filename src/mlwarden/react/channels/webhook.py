"""Webhooks: the incident as JSON, or as Alertmanager alerts (``/api/v2/alerts``)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from mlwarden.exceptions import ParameterError
from mlwarden.react.channels.base import Channel, Notification

TIMEOUT = 10.0


def _check_url(url: str, key: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ParameterError(
            f"The {key} channel needs an http(s) URL, e.g. '{key}+https://ops.example/hook'; "
            f"got {url!r}.",
            parameter="channel",
        )
    return url


def _post(url: str, payload: Any) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "mlwarden"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        if response.status >= 300:
            raise OSError(f"{url} answered {response.status}")


class WebhookChannel(Channel, key="webhook"):
    """POST the incident as JSON (``Notification.to_dict``) to a URL.

    Example:
        >>> from mlwarden.react.channels import make_channel
        >>> make_channel("webhook+https://ops.example/hook")
        WebhookChannel('webhook+…')
    """

    example = "webhook+http://127.0.0.1:9/hook"

    def __init__(self, url: str) -> None:
        self.url = _check_url(url, "webhook")

    @classmethod
    def from_target(cls, target: str) -> WebhookChannel:
        return cls(target)

    def send(self, notification: Notification) -> None:
        _post(self.url, notification.to_dict())

    def spec(self) -> str:
        return f"webhook+{self.url}"


class AlertmanagerChannel(Channel, key="alertmanager"):
    """Send each alert of the incident to Prometheus Alertmanager (``POST /api/v2/alerts``).

    Example:
        >>> from mlwarden.react.channels import make_channel
        >>> make_channel("alertmanager+http://alertmanager:9093").url
        'http://alertmanager:9093/api/v2/alerts'
    """

    example = "alertmanager+http://127.0.0.1:9"

    def __init__(self, url: str) -> None:
        url = _check_url(url, "alertmanager").rstrip("/")
        self.url = url if url.endswith("/api/v2/alerts") else url + "/api/v2/alerts"

    @classmethod
    def from_target(cls, target: str) -> AlertmanagerChannel:
        return cls(target)

    def payload(self, notification: Notification) -> list[dict[str, Any]]:
        alerts = notification.alerts or ({"metric": "incident", "column": ""},)
        return [
            {
                "labels": {
                    "alertname": f"mlwarden_{alert['metric']}".replace(".", "_"),
                    "model": notification.model,
                    "version": notification.version,
                    "column": str(alert.get("column", "")),
                    "severity": notification.severity,
                    "incident": str(notification.incident),
                },
                "annotations": {
                    "summary": notification.summary,
                    "description": notification.body(),
                },
                "startsAt": notification.started_at.isoformat(),
                **({"generatorURL": notification.link} if notification.link else {}),
            }
            for alert in alerts
        ]

    def send(self, notification: Notification) -> None:
        _post(self.url, self.payload(notification))

    def spec(self) -> str:
        return f"alertmanager+{self.url}"
