"""The dashboard's guard, a pure ASGI middleware: security headers on every response, a Host
check against DNS rebinding while bound to loopback, and the access token when one is set.

Usage::

    app = Guard(app, token="s3cret", loopback=True)

The token is accepted as ``Authorization: Bearer <token>``, as a cookie set by the guard, or
once as ``?token=<token>`` (the URL ``apimon serve`` prints), which answers with the cookie and a
redirect to the same URL without the token, so it does not stay in the address bar or history.
"""

from __future__ import annotations

import hashlib
import hmac
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
COOKIE = "apimon_ui"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def host_of(header: str) -> str:
    """The host part of a Host header (``[::1]:8765`` -> ``::1``), lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """Wraps the dashboard app; see the module docstring."""

    def __init__(self, app: ASGIApp, token: str | None = None, loopback: bool = True) -> None:
        self.app = app
        self.token = token
        self.loopback = loopback
        # The cookie holds a digest of the token, not the token itself.
        self._cookie = hashlib.sha256(b"apimon-ui:" + token.encode()).hexdigest() if token else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.loopback and host_of(headers.get("host", "")) not in LOOPBACK_HOSTS:
            # A page on another site that resolves its name to 127.0.0.1 must not read captured traffic.
            await _plain(send_with_headers, 421, "apimon dashboard: unexpected Host header")
            return
        if self.token and not self._authorised(headers):
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
            given = query.pop("token", None)
            if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
                location = local_path(scope.get("root_path", ""), scope["path"])
                location += f"?{urlencode(query)}" if query else ""
                cookie = f"{COOKIE}={self._cookie}; HttpOnly; SameSite=Strict; Path=/"
                extra = [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode())]
                await _plain(send_with_headers, 303, "", extra)
                return
            await _plain(send_with_headers, 401, "apimon dashboard: open the URL that `apimon serve` printed\n")
            return
        await self.app(scope, receive, send_with_headers)

    def _authorised(self, headers: dict[str, str]) -> bool:
        assert self.token
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), self.token.encode()):
            return True
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is just not a valid one
            return False
        morsel = jar.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self._cookie.encode())


def local_path(root_path: str, path: str) -> str:
    """A redirect target on this server whatever the request path holds: one leading ``/``
    (``//host/x`` and ``/\\host`` would leave the site), the rest percent-encoded."""
    rest = path.lstrip("/\\")
    return root_path.rstrip("/") + "/" + quote(rest, safe="/:@!$&'()*+,;=-._~%")


async def _plain(send: Any, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
