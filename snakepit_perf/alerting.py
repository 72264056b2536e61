"""Alerting as the configuration asks: outputs, rule overrides and the deploy judge (shared by
`run`, `worker` and `api`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from api.deploys import DeployJudge, DeployWindows
from api.recommendations import Recommender
from api.services import Services
from models.alerts import AlertEngine, Rule, rule_from_dict
from models.kafka_alerts import KafkaAlertPublisher
from models.outputs import AlertmanagerOutput, Output, WebhookOutput
from snakepit_perf.config import ConfigError, Settings


def alert_engine(settings: Settings) -> AlertEngine:
    return AlertEngine(overrides=load_rules(settings.alerts.rules_file))


def load_rules(path: str) -> tuple[Rule, ...]:
    """``[[rule]]`` tables, e.g. ``signal = "p99_s"``, ``pool = "gpu"``, ``static_above = 2.0``,
    ``for_minutes = 3``; anything left out comes from the default rule of that signal."""
    if not path:
        return ()
    try:
        tables = tomllib.loads(Path(path).read_text()).get("rule", [])
        return tuple(rule_from_dict(t) for t in tables)
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"alerts.rules_file {path}: {exc}") from exc


def deploy_judge(services: Services, settings: Settings,
                 publisher: KafkaAlertPublisher | None) -> DeployJudge:
    """The deploy judge of this process, publishing where its alerts go on Kafka."""
    return DeployJudge(services, DeployWindows(**vars(settings.deploys)),
                       publisher.publish if publisher is not None else None)


def recommender(services: Services, settings: Settings,
                publisher: KafkaAlertPublisher | None) -> Recommender:
    """Recommendations of this process; rollbacks are published where its alerts go."""
    return Recommender(services, settings.recommend,
                       publisher.publish if publisher is not None else None)


def kafka_publisher(settings: Settings) -> KafkaAlertPublisher:
    return KafkaAlertPublisher(settings.kafka.bootstrap, settings.kafka.alerts_topic)


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
