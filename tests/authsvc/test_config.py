from __future__ import annotations

import pytest

from authsvc.config import Config

ENV = {"DATABASE_URL": "postgresql://x/y", "PORTCULLIS_ADMIN_TOKEN": "t",
       "PORTCULLIS_CONTEXT_KEYS": "0a1b2c3d:" + "ab" * 32, "PORTCULLIS_GATEWAY_TOKEN": "g"}


def test_settings_come_from_the_environment_with_defaults() -> None:
    config = Config.from_env(ENV)
    assert (config.redis_url, config.decision_ttl, config.key_cache_ttl) == (None, 30, 5.0)
    assert config.max_keys == 1000
    tuned = Config.from_env({**ENV, "REDIS_URL": "redis://h/0", "AUTHSVC_KEY_CACHE_TTL": "0",
                             "AUTHSVC_DEFAULT_RATE_LIMITS": '[{"dimension": "key"}]',
                             "AUTHSVC_MAX_KEYS": "50"})
    assert tuned.redis_url == "redis://h/0" and tuned.key_cache_ttl == 0.0
    assert tuned.max_keys == 50
    assert tuned.default_rate_limits == [{"dimension": "key"}]


@pytest.mark.parametrize("missing", sorted(ENV))
def test_a_missing_required_setting_stops_start_up_naming_it(missing: str) -> None:
    env = {k: v for k, v in ENV.items() if k != missing}
    with pytest.raises(SystemExit, match=missing):
        Config.from_env(env)
