"""``update_user``, ``update_company`` and the rest, taking Moesif's profiles whole.

A profile is a dict, a JSON string, or a model object (moesifapi's ``UserModel`` and the like,
read through ``to_dictionary()`` or its attributes). Every field Moesif's models take reaches
``/v1/users``, ``/v1/companies`` or ``/v1/subscriptions`` as it was given; a profile without its
id is refused with a logged error, as Moesif's middlewares do, never an exception into the app.
The updates are queued and shipped by the flusher, not sent inside the call.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

import apimon
from apimon.event import iso_ms

logger = logging.getLogger("apimon.compat")

_USER = ("user_id", "company_id", "modified_time", "ip_address", "session_token", "user_agent_string", "metadata")
_COMPANY = ("company_id", "company_domain", "modified_time", "ip_address", "session_token", "metadata")
_SUBSCRIPTION = ("subscription_id", "company_id", "current_period_start", "current_period_end", "status", "metadata")


def _fields(profile: Any) -> dict[str, Any] | None:
    if isinstance(profile, str | bytes):
        try:
            profile = orjson.loads(profile)
        except orjson.JSONDecodeError:
            return None
    if isinstance(profile, dict):
        return profile
    to_dictionary = getattr(profile, "to_dictionary", None)
    if callable(to_dictionary):
        data = to_dictionary()
        return data if isinstance(data, dict) else None
    attributes = getattr(profile, "__dict__", None)
    return dict(attributes) if isinstance(attributes, dict) else None


def _time(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return iso_ms(value.timestamp())
    return value


def _campaign(value: Any) -> Any:
    if value is None or isinstance(value, dict):
        return value
    return _fields(value)


def _send(kind: str, key: str, names: tuple[str, ...], profile: Any, update: Callable[..., bool]) -> bool:
    fields = _fields(profile)
    if not fields or not fields.get(key):
        logger.error("apimon.compat: to update a %s, a %s field is required", kind, key)
        return False
    chosen = {name: fields[name] for name in names if fields.get(name) is not None}
    for name in ("modified_time", "current_period_start", "current_period_end"):
        if name in chosen:
            chosen[name] = _time(chosen[name])
    if kind != "subscription" and fields.get("campaign") is not None:
        chosen["campaign"] = _campaign(fields["campaign"])
    try:
        return update(**chosen)
    except (TypeError, ValueError):
        logger.error("apimon.compat: the %s profile could not be read", kind, exc_info=True)
        return False


class ProfileMethods:
    """The profile methods every compat middleware has (Moesif's middlewares have them too)."""

    def update_user(self, user_profile: Any) -> bool:
        return _send("user", "user_id", _USER, user_profile, apimon.update_user)

    def update_users_batch(self, user_profiles: Iterable[Any]) -> bool:
        return all([self.update_user(p) for p in _listed(user_profiles)])

    def update_company(self, company_profile: Any) -> bool:
        return _send("company", "company_id", _COMPANY, company_profile, apimon.update_company)

    def update_companies_batch(self, companies_profiles: Iterable[Any]) -> bool:
        return all([self.update_company(p) for p in _listed(companies_profiles)])


class SubscriptionMethods:
    """moesifdjango's subscription methods."""

    def update_subscription(self, subscription: Any) -> bool:
        return _send("subscription", "subscription_id", _SUBSCRIPTION, subscription, apimon.update_subscription)

    def update_subscriptions_batch(self, subscriptions: Iterable[Any]) -> bool:
        return all([self.update_subscription(p) for p in _listed(subscriptions)])


def _listed(profiles: Any) -> list[Any]:
    if isinstance(profiles, str | bytes):
        try:
            profiles = orjson.loads(profiles)
        except orjson.JSONDecodeError:
            logger.error("apimon.compat: the batch is not valid JSON")
            return []
    return list(profiles) if isinstance(profiles, list | tuple) else []
