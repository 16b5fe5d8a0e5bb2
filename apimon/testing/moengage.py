"""A fake MoEngage Data API that validates every request against the MoEngage seed document."""

from __future__ import annotations

import base64
import calendar
import secrets
import threading
import time
from functools import lru_cache
from typing import Any

import orjson

from apimon.testing._server import FakeServer, Recorded, Reply
from apimon.testing._validate import MOE_TIME, Invalid, moengage_attributes, need

PLATFORMS = {"ANDROID", "iOS", "web", "unknown"}


@lru_cache(maxsize=4096)
def _epoch(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def _fail(status: int, kind: str, message: str) -> Reply:
    body = {"status": "fail", "error": {"type": kind, "message": message, "request_id": secrets.token_hex(4)}}
    return Reply(status, orjson.dumps(body))


class FakeMoEngage(FakeServer):
    """``/v1/event/{id}``, ``/v1/customer/{id}`` and ``/v1/transition/{id}`` on 127.0.0.1. Usage::

        with FakeMoEngage(workspace_id="WS1", api_key="key") as moe:
            apimon.init(moengage_workspace_id="WS1", moengage_api_key="key", moengage_base_url=moe.url)

    Answers as MoEngage's API reference says: 401 for bad Basic auth, 409 when ``MOE-APPKEY`` and the credentials
    disagree, 400 ``{"status": "fail", ...}`` for malformed bodies, 413 over 128 KB, and 429 with
    ``x-ratelimit-*`` once ``event_limit`` events (or ``user_limit`` users) arrived in the window.
    """

    max_body_bytes = 128 * 1024

    def __init__(
        self,
        workspace_id: str = "APIMONTEST",
        api_key: str = "test-api-key",
        event_limit: int = 30_000,
        user_limit: int = 10_000,
        window: float = 60.0,
        latency: float = 0.0,
    ) -> None:
        super().__init__(latency)
        self.workspace_id = workspace_id
        self.api_key = api_key
        self.event_limit = event_limit
        self.user_limit = user_limit
        self.window = window
        self.events: list[dict[str, Any]] = []  # one per action, with its customer_id
        self.users: list[dict[str, Any]] = []
        self.rejections: list[str] = []
        self.largest_body = 0
        self._counts = {"event": 0, "user": 0}
        self._window_start = time.monotonic()
        self._rate_lock = threading.Lock()

    def _rate(self, kind: str, n: int) -> tuple[bool, dict[str, str]]:
        with self._rate_lock:
            now = time.monotonic()
            if now - self._window_start >= self.window:
                self._window_start, self._counts = now, {"event": 0, "user": 0}
            limit = self.event_limit if kind == "event" else self.user_limit
            allowed = self._counts[kind] + n <= limit
            if allowed:
                self._counts[kind] += n
            reset = max(0, int(self.window - (now - self._window_start) + 0.999))
            headers = {
                "x-ratelimit-limit": f"{limit}; w={int(self.window)}",
                "x-ratelimit-remaining": str(max(0, limit - self._counts[kind])),
                "x-ratelimit-reset": str(reset),
            }
            return allowed, headers

    def handle(self, request: Recorded) -> Reply:
        self.largest_body = max(self.largest_body, len(request.raw_body))
        expected = "Basic " + base64.b64encode(f"{self.workspace_id}:{self.api_key}".encode()).decode()
        auth = request.header("authorization")
        if not auth:
            return _fail(401, "Authentication Required", "Authentication Header Required")
        if auth != expected:
            return _fail(
                401, "Authentication required", "App Secret key mismatch. Please login to the dashboard to verify key"
            )
        if request.header("moe-appkey") != self.workspace_id:
            return _fail(409, "Authentication Mismatch", "App key mismatch in params and authentication")
        if not (request.header("content-type") or "").startswith("application/json"):
            return _fail(400, "Missing header value", "The Content-Type Header is required")
        parts = request.path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 3 or parts[0] != "v1":
            return Reply(404, b'{"status": "fail", "error": {"message": "Not Found"}}')
        if parts[2] != self.workspace_id:
            return _fail(400, "InvalidParams", "Given app_id is invalid.")
        if not request.body:
            return _fail(400, "Empty request body", "A valid JSON document is required")
        try:
            payload = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return _fail(
                400,
                "Malformed JSON",
                "Could not decode the request body. The JSON was incorrect or not encoded as UTF-8.",
            )
        try:
            need(isinstance(payload, dict), "A valid JSON document is required.")
            if parts[1] == "event":
                return self._events(payload)
            if parts[1] == "customer":
                return self._customer(payload)
            if parts[1] == "transition":
                return self._bulk(payload)
        except Invalid as exc:
            self.rejections.append(str(exc))
            return _fail(400, "MissingAttributeError", str(exc))
        return Reply(404, b'{"status": "fail", "error": {"message": "Not Found"}}')

    def _success(self, headers: dict[str, str]) -> Reply:
        body = {
            "status": "success",
            "message": "Your request has been accepted and will be processed soon.",
            "request_id": secrets.token_hex(4),
        }
        return Reply(200, orjson.dumps(body), headers)

    def _check_event(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        need(payload.get("type") == "event", 'type must be "event"')
        need(
            isinstance(payload.get("customer_id"), str) and payload["customer_id"] != "",
            "customer_id is expected to be string",
        )
        actions = payload.get("actions")
        if not isinstance(actions, list) or not actions:
            raise Invalid("actions is expected to be a non-empty list")
        now = time.time()
        out = []
        for i, action in enumerate(actions):
            where = f"actions[{i}]"
            need(isinstance(action, dict), f"{where} is expected to be an object")
            name = action.get("action")
            need(isinstance(name, str) and name != "" and not name.startswith("moe_"), f"{where}.action is invalid")
            need(len(name) <= 200, f"{where}.action is longer than 200 characters")
            moengage_attributes(action.get("attributes", {}), f"{where}.attributes")
            need(action.get("platform", "unknown") in PLATFORMS, f"{where}.platform is invalid")
            current = action.get("current_time")
            need(
                isinstance(current, str) and bool(MOE_TIME.match(current)),
                f"{where}.current_time must be YYYY-MM-DDTHH:mm:ssZ, got {current!r}",
            )
            when = _epoch(current)
            need(when <= now + 60, f"{where}.current_time is in the future")
            offset = action.get("user_timezone_offset", 0)
            need(isinstance(offset, int) and -54000 <= offset <= 54000, f"{where}.user_timezone_offset is invalid")
            out.append({**action, "customer_id": payload["customer_id"]})
        return out

    def _events(self, payload: dict[str, Any]) -> Reply:
        actions = self._check_event(payload)
        allowed, headers = self._rate("event", len(actions))
        if not allowed:
            reply = _fail(429, "Rate Limit Exceeded", "Rate Limits for User / Event exceeded")
            reply.headers.update(headers)
            return reply
        self.events.extend(actions)
        return self._success(headers)

    def _check_customer(self, payload: dict[str, Any]) -> None:
        need(payload.get("type") == "customer", 'type must be "customer"')
        need(
            isinstance(payload.get("customer_id"), str) and payload["customer_id"] != "",
            "customer_id is expected to be string",
        )
        attributes = payload.get("attributes", {})
        need(isinstance(attributes, dict), "attributes is expected to be an object")
        for key in attributes:
            need(not key.startswith("moe_"), f"attributes: {key!r} uses the reserved moe_ prefix")

    def _customer(self, payload: dict[str, Any]) -> Reply:
        self._check_customer(payload)
        allowed, headers = self._rate("user", 1)
        if not allowed:
            reply = _fail(429, "Rate Limit Exceeded", "Rate Limits for User / Event exceeded")
            reply.headers.update(headers)
            return reply
        self.users.append(payload)
        return self._success(headers)

    def _bulk(self, payload: dict[str, Any]) -> Reply:
        need(payload.get("type") == "transition", 'type must be "transition"')
        elements = payload.get("elements")
        if not isinstance(elements, list):
            raise Invalid("elements is expected to be a list")
        # Bulk Import answers 200 whatever happens to each element (seed: errors show on the dashboard).
        for element in elements:
            try:
                need(isinstance(element, dict), "element is expected to be an object")
                if element.get("type") == "customer":
                    self._check_customer(element)
                    self.users.append(element)
                else:
                    self.events.extend(self._check_event(element))
            except Invalid as exc:
                self.rejections.append(str(exc))
        return self._success({})
