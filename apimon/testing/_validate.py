"""Strict checks of request bodies against Moesif's and MoEngage's API references; a failure names the field."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:?\d\d)?$")
MOE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class Invalid(ValueError):
    """The request does not follow the vendor's contract."""


def need(cond: bool, message: str) -> None:
    if not cond:
        raise Invalid(message)


def string(obj: dict[str, Any], key: str, where: str, required: bool = True) -> None:
    if key not in obj or (obj[key] is None and not required):
        # An optional field may be absent or null (Moesif's own SDKs send nulls).
        need(key in obj or not required, f"{where}.{key} is required")
        return
    need(isinstance(obj[key], str), f"{where}.{key} must be a string")
    need(obj[key] != "", f"{where}.{key} must not be an empty string (leave it out)")


def iso_time(obj: dict[str, Any], key: str, where: str, required: bool = True) -> None:
    string(obj, key, where, required)
    if obj.get(key) is not None:
        need(bool(ISO_MS.match(obj[key])), f"{where}.{key} is not ISO 8601: {obj[key]!r}")


def header_map(value: Any, where: str) -> None:
    need(isinstance(value, dict), f"{where} must be a map")
    for k, v in value.items():
        need(isinstance(k, str) and isinstance(v, str), f"{where} must map strings to strings ({k!r})")


def body(section: dict[str, Any], where: str) -> None:
    if section.get("transfer_encoding") is not None:
        need(section["transfer_encoding"] == "base64", f"{where}.transfer_encoding can only be base64")
        need(isinstance(section.get("body"), str), f"{where}.body must be a base64 string")
        try:
            base64.b64decode(section["body"], validate=True)
        except binascii.Error:
            raise Invalid(f"{where}.body is not valid base64") from None
    if section.get("body") is not None:
        need(section["body"] != "", f"{where}.body must not be an empty string (leave it out)")


def moesif_event(event: Any, i: int) -> None:
    where = f"events[{i}]"
    need(isinstance(event, dict), f"{where} must be an object")
    request = event.get("request")
    need(isinstance(request, dict), f"{where}.request is required")
    iso_time(request, "time", f"{where}.request")
    string(request, "uri", f"{where}.request")
    need(request["uri"].startswith(("http://", "https://")), f"{where}.request.uri must be a full URI")
    string(request, "verb", f"{where}.request")
    need(request["verb"] == request["verb"].upper(), f"{where}.request.verb must be upper case")
    string(request, "api_version", f"{where}.request", required=False)
    string(request, "ip_address", f"{where}.request", required=False)
    header_map(request.get("headers"), f"{where}.request.headers")
    body(request, f"{where}.request")
    response = event.get("response")
    if response is not None:
        need(isinstance(response, dict), f"{where}.response must be an object")
        iso_time(response, "time", f"{where}.response")
        need(isinstance(response.get("status"), int), f"{where}.response.status must be a number")
        header_map(response.get("headers"), f"{where}.response.headers")
        body(response, f"{where}.response")
    for key in ("user_id", "company_id", "session_token", "transaction_id", "direction", "blocked_by"):
        string(event, key, where, required=False)
    if event.get("transaction_id") is not None:
        need(len(event["transaction_id"]) == 36, f"{where}.transaction_id must be a 36-char UUID")
    if event.get("metadata") is not None:
        need(isinstance(event["metadata"], dict), f"{where}.metadata must be an object")
    if event.get("weight") is not None:
        need(isinstance(event["weight"], int) and event["weight"] >= 1, f"{where}.weight must be a positive integer")


#: Moesif's profile models (moesifapi's UserModel, CompanyModel, SubscriptionModel): the id and
#: the other fields each takes, and which of those are objects.
_PROFILES = {
    "users": ("user_id", {"company_id", "session_token", "ip_address", "user_agent_string"}),
    "companies": ("company_id", {"company_domain", "session_token", "ip_address"}),
    "subscriptions": ("subscription_id", {"company_id", "status", "current_period_start", "current_period_end"}),
}
_CAMPAIGN = {
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "referrer",
    "referring_domain",
    "gclid",
}


def moesif_profile(item: Any, i: int, kind: str) -> None:
    key, strings = _PROFILES[kind]
    where = f"{kind}[{i}]"
    need(isinstance(item, dict), f"{where} must be an object")
    string(item, key, where)
    if kind == "subscriptions":
        string(item, "company_id", where)
    iso_time(item, "modified_time", where, required=False)
    known = {key, "modified_time", "metadata", *strings, *(("campaign",) if kind != "subscriptions" else ())}
    unknown = sorted(set(item) - known)
    need(not unknown, f"{where} has fields Moesif does not take: {unknown}")
    for name in strings & set(item):
        # An optional field may be null (Moesif's own SDKs send every field their models have).
        need(item[name] is None or isinstance(item[name], str), f"{where}.{name} must be a string")
    if item.get("metadata") is not None:
        need(isinstance(item["metadata"], dict), f"{where}.metadata must be an object")
    if item.get("campaign") is not None:
        campaign = item["campaign"]
        need(isinstance(campaign, dict), f"{where}.campaign must be an object")
        need(set(campaign) <= _CAMPAIGN, f"{where}.campaign has unknown fields {sorted(set(campaign) - _CAMPAIGN)}")


def moengage_attributes(attrs: Any, where: str, max_count: int = 100) -> None:
    need(isinstance(attrs, dict), f"{where} must be an object")
    need(len(attrs) <= max_count, f"{where} has {len(attrs)} attributes (at most {max_count})")
    for k, v in attrs.items():
        need(isinstance(k, str) and not k.startswith("moe_"), f"{where}: {k!r} uses the reserved moe_ prefix")
        need(isinstance(v, str | int | float | bool), f"{where}.{k} must be a string, number or boolean")
        if isinstance(v, str):
            need(len(v) <= 512, f"{where}.{k} is longer than 512 characters")
