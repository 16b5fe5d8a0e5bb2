"""The Django middleware in-process, through Django's own WSGI and ASGI handlers (test Client
and AsyncClient), with a real settings module, auth, sessions and an SQLite database."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest
from apimon.integrations.django import _header_pairs, _options
from django.http import HttpResponse, HttpResponseBase
from django.test import AsyncClient, Client

import apimon
from apimon.client import Client as ApimonClient
from apimon.config import Config
from tests.conftest import ListSink

# Closing a response sends request_finished, which touches the database connection.
pytestmark = pytest.mark.django_db


@pytest.fixture
def sink() -> Iterator[ListSink]:
    sink = ListSink()
    apimon._client = ApimonClient(Config.from_options(_options()), sinks=[sink])
    yield sink


def events(sink: ListSink) -> list[dict[str, Any]]:
    assert apimon.flush(5.0)
    return sink.events


def content(response: HttpResponseBase) -> bytes:
    if response.streaming:
        data = b"".join(response.streaming_content)  # type: ignore[attr-defined]
        response.close()  # what the server does when it is done
        return data
    return response.content  # type: ignore[attr-defined, no-any-return]


def test_request_body_read_by_the_view(sink: ListSink) -> None:
    response = Client().post("/body", data=b'{"a": 1, "token": "t"}', content_type="application/json")
    assert content(response) == b'}"t" :"nekot" ,1 :"a"{'
    [event] = events(sink)
    assert event["request"]["body"] == {"a": 1, "token": "[REDACTED]"}
    assert event["response"]["body"] == '}"t" :"nekot" ,1 :"a"{'
    assert event["request"]["api_version"] == "2.0"


def test_post_form_and_uploads_still_work(sink: ListSink) -> None:
    response = Client().post("/post", data="name=ann&password=pw", content_type="application/x-www-form-urlencoded")
    assert response.json() == {"post": {"name": "ann", "password": "pw"}}
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("notes.txt", b"file body", content_type="text/plain")
    response = Client().post("/upload", data={"title": "t", "doc": upload})
    assert response.json() == {"files": {"doc": "file body"}, "post": {"title": "t"}}
    form, multipart = events(sink)
    assert form["request"]["body"] == "name=ann&password=[REDACTED]"
    assert multipart["request"]["body"] == {
        "title": "t",
        "doc": {"filename": "notes.txt", "content_type": "text/plain", "size": 9},
    }


def test_raw_stream_reads_and_unread_bodies(sink: ListSink) -> None:
    response = Client().post("/stream-read", data=b"abcdefgh", content_type="text/plain")
    assert content(response) == b"abc|def|gh"
    response = Client().post("/ignore", data=b"never read", content_type="text/plain")
    assert content(response) == b"ignored"
    read, ignored = events(sink)
    assert read["request"]["body"] == "abcdefgh"
    assert ignored["request"]["body"] == "never read"


def test_streaming_and_file_responses_are_teed_not_consumed(sink: ListSink) -> None:
    assert content(Client().get("/streaming")) == b"one,two"
    assert content(Client().get("/file")) == b"file contents" * 3
    streaming, file = events(sink)
    assert streaming["response"]["body"] == "one,two"
    assert file["response"]["transfer_encoding"] == "base64"


def test_streaming_response_a_test_never_reads_is_an_event_when_released(sink: ListSink) -> None:
    # Django's test client closes a streaming response only once its content is consumed; a test
    # that checks the status alone drops it unread and unclosed. The client's own wrapper makes
    # the response a reference cycle, so it is freed (and its call recorded) by the collector.
    response = Client().get("/streaming")
    assert response.status_code == 200
    assert apimon.stats()["unfinished"] == 1 and events(sink) == []
    del response
    gc.collect()
    [event] = events(sink)
    assert event["response"]["status"] == 200 and "body" not in event["response"]
    assert event["metadata"]["apimon"] == {"route": "/streaming", "incomplete": "released"}
    stats = apimon.stats()
    assert (stats["captured"], stats["unfinished"], stats["internal_errors"]) == (1, 0, 0)


def test_async_streaming_and_async_view_under_asgi(sink: ListSink) -> None:
    async def main() -> tuple[bytes, Any]:
        client = AsyncClient()
        streamed = await client.get("/async-streaming")
        chunks = [chunk async for chunk in streamed.streaming_content]
        streamed.close()
        view = await client.get("/async-view", headers={"X-Company": "acme"})
        return b"".join(chunks), view.json()

    data, body = asyncio.run(main())
    assert data == b"async-one,async-two" and body == {"async": True}
    streamed, view = events(sink)
    assert streamed["response"]["body"] == "async-one,async-two"
    assert view["response"]["body"] == {"async": True} and view["company_id"] == "acme"


def test_authenticated_user_only_when_already_loaded(sink: ListSink, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user(username="ann", password="pw")
    client = Client()
    client.force_login(user)
    assert client.get("/whoami").json() == {"authenticated": True}
    assert content(client.get("/ignore")) == b"ignored"
    whoami, ignored = events(sink)
    assert whoami["user_id"] == str(user.pk)
    # The view never touched request.user: apimon does not load it (no query on its behalf).
    assert "user_id" not in ignored
    # The session cookie identifies the session, hashed.
    assert whoami["session_token"].startswith("sha256:") and ignored["session_token"] == whoami["session_token"]


def test_route_template_from_the_resolver(sink: ListSink) -> None:
    assert Client().get("/api/v1/items/7").json() == {"pk": 7}
    [event] = events(sink)
    assert event["metadata"]["apimon"]["route"] == "/api/v1/items/<int:pk>"


def test_view_exception_is_a_500_event(sink: ListSink) -> None:
    response = Client(raise_request_exception=False).get("/boom")
    assert response.status_code == 500
    [event] = events(sink)
    assert event["response"]["status"] == 500


def test_bad_settings_are_clear_errors(settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    settings.APIMON = ["not", "a", "dict"]
    with pytest.raises(ImproperlyConfigured, match="must be a dict"):
        _options()
    settings.APIMON = {"skip": "no.such.module.hook"}
    with pytest.raises(ImproperlyConfigured, match="cannot import"):
        _options()
    settings.APIMON = {"sample_rate": 7}
    with pytest.raises(ValueError, match="sample_rate"):
        Config.from_options(_options())


def test_response_header_pairs_keep_the_apps_names_and_fall_back_to_items() -> None:
    response = HttpResponse(b"{}", content_type="application/json")
    response["X-Request-ID"] = "r-1"
    response["x-other"] = "o"
    assert _header_pairs(response) == list(response.items())
    assert ("X-Request-ID", "r-1") in _header_pairs(response)

    class Plain:
        """A response whose headers are not Django's ResponseHeaders: only items() is used."""

        headers = {"X-A": "1"}

        def items(self) -> list[tuple[str, str]]:
            return [("X-A", "1"), ("X-B", "2")]

    assert _header_pairs(Plain()) == [("X-A", "1"), ("X-B", "2")]  # type: ignore[arg-type]


def test_the_body_a_view_left_unread_is_still_there_for_a_later_reader(sink: ListSink) -> None:
    data = b"left for later\nsecond line"
    response = Client().post("/ignore", data=data, content_type="text/plain")
    content(response)
    # Django's test payload cannot seek back: what apimon read for the event is served again.
    assert response.wsgi_request.read() == data
    [event] = events(sink)
    assert event["request"]["body"] == data.decode()
