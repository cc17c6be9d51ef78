"""Settings layer defaults < TOML < env < flags, and bad values name the setting and source."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.config import ConfigError, load_settings


def test_layers_override_in_order(tmp_path: Path) -> None:
    toml = tmp_path / "newsrec.toml"
    toml.write_text('[newsrec]\nport = 6000\nnamespace = "site"\nkeep_versions = 5\n')
    env = {"NEWSREC_PORT": "7000", "NEWSREC_REDIS_URL": "redis://r:6379/1", "HOME": "/x"}
    settings = load_settings(toml, env=env, overrides={"port": 8000, "namespace": None})
    assert settings.port == 8000  # flag beats env beats TOML
    assert settings.namespace == "site"  # a flag that was not given changes nothing
    assert settings.keep_versions == 5
    assert settings.redis_url == "redis://r:6379/1"
    assert load_settings(env={}).port == 50051
    assert load_settings(env={"NEWSREC_CONFIG": str(toml)}).port == 6000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEWSREC_PORT": "http"}, "environment: setting 'port' got 'http'"),
        ({"NEWSREC_PORT": "70000"}, "port must be 0-65535"),
        ({"NEWSREC_KEEP_VERSIONS": "0"}, "keep_versions must be at least 1"),
        ({"NEWSREC_NAMESPACE": "a b"}, "namespace 'a b'"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env)


def test_bad_toml_is_named(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("portt = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown setting 'portt'"):
        load_settings(toml, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})
