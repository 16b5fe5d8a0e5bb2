from __future__ import annotations

from typing import Any

import pytest

from apimon.config import Config


def test_defaults_and_store_resolution() -> None:
    config = Config.from_options()
    assert config.store_path == "apimon.db" and config.store_is_default
    assert Config.from_options(store="off").store_path is None
    assert Config.from_options(moesif_application_id="app").store_path is None
    assert Config.from_options(moesif_application_id="app", durable=True).store_path == "apimon.db"
    assert Config.from_options(moengage_workspace_id="w").moengage_enabled is False
    assert Config.from_options(moengage_workspace_id="w", moengage_api_key="k").moengage_enabled is True
    assert Config.from_options(moengage_data_center=3).moengage_url == "https://api-03.moengage.com"


def test_env_vars_fill_unset_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIMON_STORE", "/tmp/x.db")
    monkeypatch.setenv("APIMON_ENABLED", "false")
    monkeypatch.setenv("APIMON_MOENGAGE_DATA_CENTER", "2")
    config = Config.from_options()
    assert (config.store, config.enabled, config.moengage_data_center) == ("/tmp/x.db", False, 2)
    assert Config.from_options(store="given.db").store == "given.db"  # an explicit option wins


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sample_rate": 1.5}, "sample_rate must be between 0 and 1"),
        ({"sample_rate": "often"}, "sample_rate must be a number"),
        ({"batch_size": 0}, "batch_size must be between"),
        ({"max_queue": 2.5}, "max_queue must be a whole number"),
        ({"moengage_data_center": 9}, "moengage_data_center must be between 1 and 6"),
        ({"skip": "yes"}, "skip must be callable"),
        ({"durable": "perhaps"}, "durable must be a boolean"),
        ({"redact_headers": "authorization"}, "redact_headers must be a list of strings"),
        ({"moesif_base_url": "ftp://x"}, "moesif_base_url must be an http(s) URL"),
        ({"moesif_application_id": "  "}, "moesif_application_id must be a non-empty string"),
        ({"api_version": 3}, "api_version must be a string or a callable"),
        ({"unknown_option": 1}, "unknown option(s) unknown_option"),
        ({"flush_interval": -1}, "flush_interval must be between"),
        ({"log_body": 1.5}, "log_body must be a boolean"),
    ],
)
def test_clearly_wrong_options_raise_value_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Config.from_options(options)


def test_repr_never_shows_credentials() -> None:
    config = Config.from_options(
        moesif_application_id="secret-app-id", moengage_api_key="secret-key", moengage_workspace_id="ws"
    )
    assert "secret" not in repr(config) and "***" in repr(config)


def test_no_destination_at_all_is_a_clear_error() -> None:
    from apimon.client import Client

    with pytest.raises(ValueError, match="nothing would be recorded"):
        Client(Config.from_options(store="off"))
