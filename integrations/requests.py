"""Outgoing calls made with requests.

Patch-free, per session::

    from apimon.integrations.requests import ApimonAdapter
    session = requests.Session()
    session.mount("https://", ApimonAdapter())
    session.mount("http://", ApimonAdapter())

``capture_outgoing=True`` records requests' calls through urllib3 instead
(:mod:`apimon.integrations.urllib3`), whose pools requests uses; a call the adapter records is not
recorded there again. Each request requests sends is one event: a followed redirect is one per hop.
``stream=True`` keeps streaming: the body is teed as the app reads it (``iter_content``,
``raw.read``), never ahead, and the event ends when it has been read or the response is closed.
"""

from __future__ import annotations

from typing import Any

try:
    import requests
    from requests.adapters import HTTPAdapter
except ImportError as exc:  # pragma: no cover - exercised only without requests
    raise ImportError("apimon.integrations.requests needs requests: pip install requests") from exc

from apimon.integrations.urllib3 import instrument as instrument_urllib3
from apimon.integrations.urllib3 import tee_response
from apimon.integrations.urllib3 import uninstrument as uninstrument_urllib3

from apimon import outgoing
from apimon.outgoing import OutgoingCall


class ApimonAdapter(HTTPAdapter):
    """requests' ``HTTPAdapter`` that records every request it sends (same options)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        outgoing.activate()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        call = OutgoingCall.start(request.method or "GET", request.url or "", request.headers.items())
        if call is None:
            return super().send(request, *args, **kwargs)
        body = request.body
        if isinstance(body, bytes | str):
            call.request_body(body)
        try:
            response = super().send(request, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        try:
            tee_response(response.raw, call)
        except Exception:
            call.finish(complete=False)
        return response


def instrument() -> bool:
    """Record the calls of every requests session (through urllib3, which requests uses)."""
    return instrument_urllib3()


def uninstrument() -> None:
    uninstrument_urllib3()
