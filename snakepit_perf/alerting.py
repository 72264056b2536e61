"""The alert outputs the configuration asks for (shared by `run` and `worker`)."""

from __future__ import annotations

from models.outputs import AlertmanagerOutput, Output, WebhookOutput
from snakepit_perf.config import ConfigError, Settings


def alert_outputs(settings: Settings) -> list[Output]:
    a = settings.alerts
    outputs: list[Output] = []
    if a.alertmanager_url:
        outputs.append(AlertmanagerOutput(a.alertmanager_url))
    if a.webhook_urls and not a.webhook_secret:
        raise ConfigError("alerts.webhook_urls needs alerts.webhook_secret: receivers check "
                          "each notification's HMAC signature with it")
    outputs += [WebhookOutput(url, a.webhook_secret) for url in a.webhook_urls]
    return outputs
