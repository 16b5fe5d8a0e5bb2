"""Options: one frozen :class:`Config`, built from keyword arguments and environment variables.

Every public entry point (``apimon.init``, the WSGI/ASGI middlewares, Django's ``settings.APIMON``)
passes its options through :meth:`Config.from_options`, so validation happens once, at start-up,
and a clearly wrong value raises :class:`ValueError` there, never while serving a request.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from apimon.headers import canonical
from apimon.ipaddr import TrustedClientIp, trusted_client_ip

DEFAULT_REDACT_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-csrf-token",
    "x-moesif-application-id",
)
DEFAULT_REDACT_BODY_FIELDS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "authorization",
    "card_number",
    "credit_card",
    "cvv",
    "cvc",
    "ssn",
)

# Query parameters whose values the event's uri never carries (RFC 6750 2.3 puts bearer tokens
# there; presigned URLs put signatures and credentials there).
DEFAULT_REDACT_QUERY_PARAMS: tuple[str, ...] = (
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "auth",
    "session",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
)

Hook = Callable[..., Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """Validated apimon options (README.md#options). Build it with :meth:`from_options`."""

    moesif_application_id: str | None = None
    moesif_base_url: str = "https://api.moesif.net"
    moengage_workspace_id: str | None = None
    moengage_api_key: str | None = None
    moengage_data_center: int = 1
    moengage_base_url: str | None = None
    moengage_event_name: str = "API Call"
    moengage_bulk: bool = False
    moengage_events_per_minute: int = 30_000
    moengage_users_per_minute: int = 10_000
    moengage_rate_window: float = 60.0
    retry_deadline: float = 120.0
    store: str | None = None
    durable: bool = False
    enabled: bool = True
    sample_rate: float = 1.0
    log_body: bool = True
    max_body_bytes: int = 100_000
    redact_headers: frozenset[str] = frozenset(DEFAULT_REDACT_HEADERS)
    redact_body_fields: frozenset[str] = frozenset(DEFAULT_REDACT_BODY_FIELDS)
    redact_query_params: frozenset[str] = frozenset(DEFAULT_REDACT_QUERY_PARAMS)
    skip: Hook | None = None
    # Decided when the call has ended, seeing the response: True leaves it out (``skipped``).
    skip_response: Hook | None = None
    identify_user: Hook | None = None
    identify_company: Hook | None = None
    get_session_token: Hook | None = None
    get_metadata: Hook | None = None
    # The key of the session tokens' HMAC; None: resolved by the Client (see session_key).
    session_secret: str | None = None
    # Without a get_session_token result, the token is the HMAC of the Authorization header or
    # the session cookie; False: no token then.
    session_from_credentials: bool = True
    # Each response gets an X-Moesif-Transaction-Id header, the event's transaction_id (always
    # apimon's own); the event's request headers show it too.
    transaction_id_header: bool = False
    api_version: str | Hook | None = None
    # Where the built-in detection reads the user from (docs/events.md#who-made-the-call): the first of these request
    # headers present (canonical names), and the JWT claim (a dotted path for nested claims).
    user_id_headers: tuple[str, ...] = ("Authorization",)
    user_id_claim: str = "sub"
    # Which proxies the deployment trusts for the client IP (apimon.ipaddr.TrustedClientIp):
    # the one header to believe (canonical name), and a hop count or CIDRs. None: the default.
    client_ip_header: str | None = None
    trusted_proxies: int | tuple[str, ...] | None = None
    # Moesif's governance rules (apimon.governance): None is on when Moesif is (False: off).
    governance: bool | None = None
    # Outgoing calls (apimon.outgoing): instrument the installed HTTP clients at init, and hosts
    # (names, lower case) whose calls are never recorded.
    capture_outgoing: bool = False
    outgoing_skip_hosts: frozenset[str] = frozenset()
    # An outgoing call's own hooks, ``(request, response)`` views as for incoming calls: what they
    # return wins over what the call inherits from the incoming call it was made in.
    skip_outgoing: Hook | None = None
    identify_user_outgoing: Hook | None = None
    identify_company_outgoing: Hook | None = None
    get_session_token_outgoing: Hook | None = None
    get_metadata_outgoing: Hook | None = None
    log_body_outgoing: bool = True
    mask_event: Hook | None = None
    batch_size: int = 100
    max_batch_bytes: int = 5_000_000
    max_batch_events: int = 1_000
    flush_interval: float = 1.0
    max_queue: int = 10_000
    max_queue_bytes: int = 32 * 1024 * 1024
    max_in_flight: int = 16
    # None: on, except in durable mode, where the outbox holds the backlog and every call counts.
    overload_sampling: bool | None = None
    shutdown_timeout: float = 2.0
    store_max_rows: int = 50_000
    store_max_bytes: int = 256 * 1024 * 1024
    outbox_max_bytes: int = 1024**3
    debug: bool = False

    @property
    def moesif_enabled(self) -> bool:
        return bool(self.moesif_application_id)

    @property
    def moengage_enabled(self) -> bool:
        return bool(self.moengage_workspace_id and self.moengage_api_key)

    @property
    def remote_enabled(self) -> bool:
        return self.moesif_enabled or self.moengage_enabled

    @property
    def store_path(self) -> str | None:
        """Where the embedded store lives, or None when it is off (the ``store`` option)."""
        if self.store == "off":
            return None
        if self.store:
            return self.store
        if not self.remote_enabled or self.durable:
            return "apimon.db"
        return None

    @property
    def client_ip(self) -> TrustedClientIp | None:
        """The trusted reader of the client address, or None for the default order."""
        return trusted_client_ip(self.client_ip_header, self.trusted_proxies)

    @property
    def governs(self) -> bool:
        """Whether Moesif's governance rules are fetched and applied (``governance``)."""
        return self.moesif_enabled and self.governance is not False

    @property
    def samples_overload(self) -> bool:
        """Whether a lasting backlog keeps 1 call in N with weight N (``overload_sampling``)."""
        return (not self.durable) if self.overload_sampling is None else self.overload_sampling

    @property
    def store_is_default(self) -> bool:
        return not self.store and not self.remote_enabled

    @property
    def moengage_url(self) -> str:
        if self.moengage_base_url:
            return self.moengage_base_url.rstrip("/")
        return f"https://api-0{self.moengage_data_center}.moengage.com"

    def __repr__(self) -> str:
        # Credentials never appear in reprs or logs.
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr}
        for secret in ("moesif_application_id", "moengage_api_key"):
            if shown.get(secret):
                shown[secret] = "***"
        inner = ", ".join(
            f"{k}={v!r}"
            for k, v in shown.items()
            if k not in ("redact_headers", "redact_body_fields", "redact_query_params", "session_secret")
        )
        return f"Config({inner})"

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Config:
        """Validate ``options`` (keyword arguments or a Django ``APIMON`` dict) and fill in env vars."""
        merged: dict[str, Any] = dict(options or {})
        merged.update(kwargs)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ValueError(f"apimon: unknown option(s) {', '.join(unknown)}")
        for name, env in _ENV.items():
            if merged.get(name) is None and os.environ.get(env, "") != "":
                merged[name] = os.environ[env]
        values: dict[str, Any] = {}
        for name, raw in merged.items():
            if raw is None:
                continue
            values[name] = _coerce(name, raw)
        return cls(**values)


_ENV: dict[str, str] = {
    "moesif_application_id": "APIMON_MOESIF_APPLICATION_ID",
    "moesif_base_url": "APIMON_MOESIF_BASE_URL",
    "moengage_workspace_id": "APIMON_MOENGAGE_WORKSPACE_ID",
    "moengage_api_key": "APIMON_MOENGAGE_API_KEY",
    "moengage_data_center": "APIMON_MOENGAGE_DATA_CENTER",
    "moengage_base_url": "APIMON_MOENGAGE_BASE_URL",
    "store": "APIMON_STORE",
    "durable": "APIMON_DURABLE",
    "enabled": "APIMON_ENABLED",
    "debug": "APIMON_DEBUG",
    "capture_outgoing": "APIMON_CAPTURE_OUTGOING",
    "client_ip_header": "APIMON_CLIENT_IP_HEADER",
    "trusted_proxies": "APIMON_TRUSTED_PROXIES",
    "session_secret": "APIMON_SESSION_SECRET",
}

_BOOLS = {
    "moengage_bulk",
    "durable",
    "enabled",
    "log_body",
    "debug",
    "overload_sampling",
    "governance",
    "capture_outgoing",
    "session_from_credentials",
    "transaction_id_header",
    "log_body_outgoing",
}
_HOOKS = {
    "skip",
    "skip_response",
    "identify_user",
    "identify_company",
    "get_session_token",
    "get_metadata",
    "mask_event",
    "skip_outgoing",
    "identify_user_outgoing",
    "identify_company_outgoing",
    "get_session_token_outgoing",
    "get_metadata_outgoing",
}
_POSITIVE_INTS = {
    "max_body_bytes": (0, 1 << 30),
    "batch_size": (1, 10_000),
    "max_batch_bytes": (1024, 50_000_000),
    "max_batch_events": (1, 100_000),
    "max_queue": (1, 10_000_000),
    "max_queue_bytes": (1 << 20, 1 << 40),
    "max_in_flight": (1, 256),
    "moengage_events_per_minute": (1, 10_000_000),
    "moengage_users_per_minute": (1, 10_000_000),
    "store_max_rows": (1, 1 << 40),
    "store_max_bytes": (1 << 16, 1 << 50),
    "outbox_max_bytes": (1 << 16, 1 << 50),
}
_POSITIVE_FLOATS = {
    "flush_interval": (0.01, 3600.0),
    "shutdown_timeout": (0.0, 3600.0),
    "moengage_rate_window": (0.1, 3600.0),
    "retry_deadline": (0.0, 86400.0),
}


def _coerce(name: str, raw: Any) -> Any:
    if name in _BOOLS:
        return _to_bool(name, raw)
    if name in _HOOKS:
        if not callable(raw):
            raise ValueError(f"apimon: option {name} must be callable, got {type(raw).__name__}")
        return raw
    if name == "api_version":
        if not (isinstance(raw, str) or callable(raw)):
            raise ValueError("apimon: option api_version must be a string or a callable")
        return raw
    if name == "user_id_headers":
        # A list of names, or one string with names separated by commas (as Moesif's
        # AUTHORIZATION_HEADER_NAME takes them).
        names = raw.split(",") if isinstance(raw, str) else raw
        if not all(isinstance(x, str) for x in names) or not [x for x in names if x.strip()]:
            raise ValueError(f"apimon: option {name} must name at least one header")
        return tuple(canonical(x.strip()) for x in names if x.strip())
    if name == "client_ip_header":
        if not isinstance(raw, str) or not _TOKEN.fullmatch(raw.strip()):
            raise ValueError(f"apimon: option {name} must be a header name, got {raw!r}")
        return canonical(raw.strip())
    if name == "trusted_proxies":
        return _trusted_proxies(raw)
    if name == "outgoing_skip_hosts":
        hosts = raw.split(",") if isinstance(raw, str) else raw
        if not all(isinstance(x, str) for x in hosts):
            raise ValueError(f"apimon: option {name} must be a list of host names")
        return frozenset(x.strip().lower() for x in hosts if x.strip())
    if name in ("redact_headers", "redact_body_fields", "redact_query_params"):
        if isinstance(raw, str) or not all(isinstance(x, str) for x in raw):
            raise ValueError(f"apimon: option {name} must be a list of strings")
        return frozenset(x.lower() for x in raw)
    if name in _POSITIVE_INTS:
        lo, hi = _POSITIVE_INTS[name]
        return _to_number(name, raw, int, lo, hi)
    if name in _POSITIVE_FLOATS:
        lo_f, hi_f = _POSITIVE_FLOATS[name]
        return _to_number(name, raw, float, lo_f, hi_f)
    if name == "sample_rate":
        return _to_number(name, raw, float, 0.0, 1.0)
    if name == "moengage_data_center":
        return _to_number(name, raw, int, 1, 6)
    if name in ("moesif_base_url", "moengage_base_url"):
        url = str(raw).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"apimon: option {name} must be an http(s) URL, got {raw!r}")
        return url
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"apimon: option {name} must be a non-empty string")
    return raw.strip()


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _trusted_proxies(raw: Any) -> int | tuple[str, ...]:
    """A hop count (an int, or a string of digits from the environment), or CIDRs (a list, or one
    string separated by commas), each checked here so that a typo fails at start-up."""
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, int) and not isinstance(raw, bool):
        return int(_to_number("trusted_proxies", raw, int, 0, 64))
    items = raw.split(",") if isinstance(raw, str) else raw
    if isinstance(items, bytes) or not isinstance(items, list | tuple | set | frozenset):
        raise ValueError("apimon: option trusted_proxies must be a hop count or a list of networks")
    networks = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        if text == "":
            continue
        try:
            networks.append(str(ipaddress.ip_network(text, strict=False)))
        except (TypeError, ValueError):
            raise ValueError(f"apimon: option trusted_proxies: {item!r} is not an IP network") from None
    if not networks:
        raise ValueError("apimon: option trusted_proxies names no network")
    return tuple(networks)


def _to_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"apimon: option {name} must be a boolean, got {raw!r}")


def _to_number(name: str, raw: Any, kind: type[int] | type[float], lo: float, hi: float) -> Any:
    if isinstance(raw, bool):
        raise ValueError(f"apimon: option {name} must be a number, got {raw!r}")
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"apimon: option {name} must be a number, got {raw!r}") from None
    if kind is int and isinstance(raw, float) and raw != value:
        raise ValueError(f"apimon: option {name} must be a whole number, got {raw!r}")
    if not lo <= value <= hi:
        raise ValueError(f"apimon: option {name} must be between {lo:g} and {hi:g}, got {raw!r}")
    return value
