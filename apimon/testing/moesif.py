"""A fake Moesif collector that validates every request against the Moesif API reference."""

from __future__ import annotations

from typing import Any

import orjson

from apimon.testing._server import FakeServer, Recorded, Reply
from apimon.testing._validate import Invalid, moesif_event, moesif_profile, need

MAX_BATCH_BYTES = 12 * 1024 * 1024


_TARGETS = {
    f"/v1/{kind}{batch}": kind for kind in ("events", "users", "companies", "subscriptions") for batch in ("/batch", "")
}


class FakeMoesif(FakeServer):
    """``POST /v1/events/batch``, ``/v1/users/batch``, ``/v1/companies/batch`` and ``GET /v1/config``
    on 127.0.0.1. Usage::

        with FakeMoesif(application_id="test-app") as moesif:
            apimon.init(moesif_application_id="test-app", moesif_base_url=moesif.url)
            ...
            assert moesif.events[0]["request"]["verb"] == "GET"

    A wrong ``X-Moesif-Application-Id`` gets 401, a malformed body 400 (the reason in
    ``.rejections``), a batch over 12 MB 413. Set ``.config`` to change what ``/v1/config`` returns
    (``user_rules`` / ``company_rules`` there are the governance cohorts) and ``.rules`` for
    ``/v1/rules`` (governance rules); :meth:`change_config` also moves the config ETag, as Moesif
    does, so a client refetches both. ``FakeMoesif(latency=0.05)`` answers each request 50 ms late,
    as a collector that far away.

    ``lenient=True`` keeps what fails validation too, the reasons in ``.deviations`` (to record
    what another client sends, e.g. Moesif's own middlewares, next to apimon). The single-item
    endpoints (``/v1/events``, ``/v1/users``, ``/v1/companies``, ``/v1/subscriptions``) take one
    object each.
    """

    def __init__(self, application_id: str = "apimon-test-app", latency: float = 0.0, lenient: bool = False) -> None:
        super().__init__(latency)
        self.application_id = application_id
        self.lenient = lenient
        self.deviations: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.users: list[dict[str, Any]] = []
        self.companies: list[dict[str, Any]] = []
        self.subscriptions: list[dict[str, Any]] = []
        self.rejections: list[str] = []
        self.config: dict[str, Any] = {"sample_rate": 100, "user_sample_rate": {}, "company_sample_rate": {}}
        self.config_etag = "etag-1"
        self.rules: list[Any] = []

    def change_config(self, config: dict[str, Any] | None = None, rules: list[Any] | None = None) -> None:
        """New config and/or rules, and a new ``X-Moesif-Config-ETag`` on the answers that follow."""
        if config is not None:
            self.config = config
        if rules is not None:
            self.rules = rules
        self.config_etag = f"etag-{int(self.config_etag.rpartition('-')[2]) + 1}"

    @property
    def transaction_ids(self) -> set[str]:
        return {e["transaction_id"] for e in self.events if "transaction_id" in e}

    def handle(self, request: Recorded) -> Reply:
        etag = {"X-Moesif-Config-ETag": self.config_etag}
        if request.header("x-moesif-application-id") != self.application_id:
            return Reply(401, b'{"error": "Unauthorized - Your X-Moesif-Application-Id header is incorrect"}')
        if request.method == "GET" and request.path == "/v1/config":
            return Reply(200, orjson.dumps(self.config), etag)
        if request.method == "GET" and request.path == "/v1/rules":
            return Reply(200, orjson.dumps(self.rules), etag)
        kind = _TARGETS.get(request.path)
        if request.method != "POST" or kind is None:
            return Reply(404, b'{"error": "Not Found"}')
        try:
            need(
                (request.header("content-type") or "").startswith("application/json"),
                "Content-Type must be application/json",
            )
            if len(request.body) > MAX_BATCH_BYTES:
                return Reply(413, b'{"error": "The maximum batch size is 12MB"}')
            try:
                items = orjson.loads(request.body)
            except orjson.JSONDecodeError:
                raise Invalid("the body is not valid JSON") from None
            if not request.path.endswith("/batch"):
                need(isinstance(items, dict), "the body must be a JSON object")
                items = [items]
            need(isinstance(items, list), "the body must be a JSON array")
            for i, item in enumerate(items):
                try:
                    if kind == "events":
                        moesif_event(item, i)
                    else:
                        moesif_profile(item, i, kind)
                except Invalid as exc:
                    if not self.lenient:
                        raise
                    self.deviations.append(str(exc))
        except Invalid as exc:
            self.rejections.append(str(exc))
            return Reply(400, orjson.dumps({"error": str(exc)}))
        getattr(self, kind).extend(items)
        return Reply(201 if kind == "events" else 200, b"{}", etag)
