"""apimon.compat's shared parts: Moesif's settings read into apimon's options, the event-model
view a MASK_EVENT_MODEL hook gets, the deleting masks, and profiles as Moesif's models give them."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest
from apimon.compat.event_model import EventModel, unwrap
from apimon.compat.profiles import _fields, _time
from apimon.compat.settings import delete_headers, delete_keys, options_from, require_application_id

from apimon.config import Config


def test_every_plain_setting_maps_to_an_option() -> None:
    settings = {
        "APPLICATION_ID": "app-id",
        "LOCAL_MOESIF_BASEURL": "http://127.0.0.1:1",
        "BASE_URI": "http://127.0.0.1:2",
        "LOG_BODY": "false",
        "LOG_BODY_OUTGOING": False,
        "API_VERSION": "v3",
        "AUTHORIZATION_HEADER_NAME": "X-Api-Key, Authorization",
        "AUTHORIZATION_USER_ID_FIELD": "user.id",
        "DEBUG": False,
        "BATCH_SIZE": 25,
        "EVENT_QUEUE_SIZE": 1_000_000_000,
        "EVENT_BATCH_TIMEOUT": 2,
        "EVENT_WORKER_COUNT": 4,
        "CAPTURE_OUTGOING_REQUESTS": False,
        "DISABLED_TRANSACTION_ID": False,
        "max_body_bytes": 5000,
    }
    config = Config.from_options(options_from(settings, {}))
    assert config.moesif_application_id == "app-id" and config.moesif_base_url == "http://127.0.0.1:2"
    assert config.log_body is False and config.log_body_outgoing is False and config.api_version == "v3"
    assert config.user_id_headers == ("X-Api-Key", "Authorization") and config.user_id_claim == "user.id"
    assert (config.batch_size, config.max_queue, config.flush_interval) == (25, 10_000_000, 2.0)
    assert config.transaction_id_header is True and config.session_from_credentials is False
    assert config.max_body_bytes == 5000  # an apimon option name passes through


def test_transaction_id_flags_of_each_middleware() -> None:
    for key in ("DISABLED_TRANSACTION_ID", "DISABLE_TRANSACTION_ID"):
        options = options_from({"APPLICATION_ID": "a", key: True}, {})
        assert options["transaction_id_header"] is False


def test_unknown_settings_are_logged_once_never_an_error(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="apimon.compat"):
        options_from({"APPLICATION_ID": "a", "NOT_A_MOESIF_SETTING_X": 1}, {})
        options_from({"APPLICATION_ID": "a", "NOT_A_MOESIF_SETTING_X": 2}, {})
    assert sum("NOT_A_MOESIF_SETTING_X" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("settings", [None, {}, {"APPLICATION_ID": ""}, "APPLICATION_ID"])
def test_a_missing_application_id_raises_as_moesif_does(settings: Any) -> None:
    with pytest.raises(ValueError, match="Moesif"):
        require_application_id(settings)


def event() -> dict[str, Any]:
    return {
        "request": {"uri": "http://h/x", "headers": {"X-Secret": "s", "Accept": "*/*"}, "body": {"card": "4111"}},
        "response": {"status": 200, "headers": {"Content-Type": "application/json"}},
        "user_id": "u",
    }


def test_the_event_model_writes_the_event_in_place() -> None:
    data = event()
    model = EventModel(data)
    model.request.headers["x-secret"] = "****"  # any case finds the event's name
    model.request.body["card"] = "****"
    del model.response.headers["CONTENT-TYPE"]
    model.request.headers["X-New"] = "1"
    model.company_id = "acme"
    model.user_id = None
    model.metadata = {"a": 1}
    assert model.response.body is None and model.weight is None
    assert unwrap(model, data) is data
    assert data["request"]["headers"] == {"X-Secret": "****", "Accept": "*/*", "X-New": "1"}
    assert data["request"]["body"] == {"card": "****"} and data["response"]["headers"] == {}
    assert data["company_id"] == "acme" and "user_id" not in data and data["metadata"] == {"a": 1}
    assert "X-SECRET" in model.request.headers and model.request.headers.get("accept") == "*/*"


def test_unwrap_drops_none_and_null_headers() -> None:
    data = event()
    assert unwrap(None, data) is None
    EventModel(data).request.headers["X-Secret"] = None
    assert "X-Secret" not in unwrap(EventModel(data), data)["request"]["headers"]  # type: ignore[index]


def test_deleting_masks_at_any_depth_and_any_case() -> None:
    body = {"internal": 1, "keep": [{"internal": {"x": 1}, "k": 2}], "deep": {"deeper": {"internal": 3}}}
    delete_keys(body, ["internal"])
    assert body == {"keep": [{"k": 2}], "deep": {"deeper": {}}}
    headers = {"X-Api-Token": "t", "Accept": "*/*"}
    delete_headers(headers, ["x-api-token"])
    assert headers == {"Accept": "*/*"}


def test_profiles_as_moesif_takes_them() -> None:
    class UserModel:
        def __init__(self) -> None:
            self.user_id = "u"
            self.company_id = "c"

    assert _fields('{"user_id": "u"}') == {"user_id": "u"}
    assert _fields(UserModel()) == {"user_id": "u", "company_id": "c"}
    assert _fields("not json") is None and _fields(42) is None
    assert _time(dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)) == "2026-12-07T10:00:00.000Z"


def test_an_async_mask_runs_on_the_flusher_thread() -> None:
    async def mask(model: Any) -> Any:
        await asyncio.sleep(0)
        model.request.headers["X-Secret"] = "****"
        return model

    mask_event = options_from({"APPLICATION_ID": "a", "MASK_EVENT_MODEL": mask}, {})["mask_event"]
    masked = mask_event(event())
    assert masked["request"]["headers"]["X-Secret"] == "****"


def test_a_mask_that_raises_leaves_the_event_as_moesif_does() -> None:
    def mask(model: Any) -> Any:
        model.request.headers["X-Secret"] = "****"
        raise KeyError("password")

    mask_event = options_from({"APPLICATION_ID": "a", "MASK_EVENT_MODEL": mask}, {})["mask_event"]
    masked = mask_event(event())
    assert masked is not None and masked["request"]["headers"]["X-Secret"] == "****"
