"""Configuration layers: defaults < TOML file < SNAKEPIT_PERF_* environment < CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from snakepit_perf import config


def test_defaults_are_the_local_servers_users_expect():
    s = config.load(env={})
    assert (s.api.host, s.api.port) == ("127.0.0.1", 8080)
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert (s.cassandra.hosts, s.cassandra.port) == (["127.0.0.1"], 9042)
    assert s.data_dir == Path.home() / ".snakepit-perf"


def test_layers_override_in_order(tmp_path: Path):
    toml = tmp_path / "perf.toml"
    toml.write_text('data_dir = "~/perf-data"\n[api]\nport = 9000\nhost = "::1"\n'
                    '[kafka]\nbootstrap = "file:1"\n[cassandra]\nhosts = ["a", "b"]\n')
    s = config.load(toml, env={"SNAKEPIT_PERF_API_PORT": "9100",
                               "SNAKEPIT_PERF_KAFKA_BOOTSTRAP": "env:2",
                               "SNAKEPIT_PERF_CASSANDRA_HOSTS": "c, d"},
                    overrides={"api.port": 9200, "api.host": None})
    assert s.api.port == 9200          # flag beats env beats file
    assert s.api.host == "::1"         # unset flag leaves the file's value
    assert s.kafka.bootstrap == "env:2"
    assert s.cassandra.hosts == ["c", "d"]
    assert s.data_dir == Path.home() / "perf-data"


@pytest.mark.parametrize("text, message", [
    ("[api]\nprot = 1\n", "unknown setting 'api.prot'"),
    ("[nope]\nx = 1\n", "unknown setting section 'nope'"),
    ('[api]\nport = "eighty"\n', "'api.port' = 'eighty' is not valid"),
    ("[api\n", "cannot read config file"),
    ('[ingest]\nwal = "maybe"\n', "'ingest.wal' = 'maybe' is not valid: expected true or false"),
    ("[ingest]\nmax_ahead_s = true\n", "a boolean is not a number"),
])
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, message: str):
    toml = tmp_path / "bad.toml"
    toml.write_text(text)
    with pytest.raises(config.ConfigError, match=message.replace("[", r"\[")):
        config.load(toml, env={})


def test_unknown_environment_setting_is_rejected():
    with pytest.raises(config.ConfigError, match="SNAKEPIT_PERF_KAFKA_BOOTSTRAPP"):
        config.load(env={"SNAKEPIT_PERF_KAFKA_BOOTSTRAPP": "x"})


def test_client_variables_are_not_server_settings():
    # `bench run` starts its load command with these set; a `simulate` it starts must still run
    env = {"SNAKEPIT_PERF_URL": "http://h:1", "SNAKEPIT_PERF_KEY": "k", "SNAKEPIT_PERF_RUN": "r",
           "SNAKEPIT_PERF_SCENARIO": "s", "SNAKEPIT_PERF_API_PORT": "9100"}
    assert config.load(None, env=env).api.port == 9100
    with pytest.raises(config.ConfigError, match="unknown setting 'urls'"):
        config.load(None, env={"SNAKEPIT_PERF_URLS": "x"})


def test_switches_read_from_toml_and_environment(tmp_path: Path):
    toml = tmp_path / "perf.toml"
    toml.write_text("[ingest]\nwal = false\n")
    assert config.load(env={}).ingest.wal is True
    assert config.load(toml, env={}).ingest.wal is False
    assert config.load(toml, env={"SNAKEPIT_PERF_INGEST_WAL": "on"}).ingest.wal is True
    assert config.load(env={"SNAKEPIT_PERF_INGEST_WAL": "0"}).ingest.wal is False
