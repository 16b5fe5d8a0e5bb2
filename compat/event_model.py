"""What a Moesif ``MASK_EVENT_MODEL`` hook is given: the event as an object with Moesif's
``EventModel`` attribute names, over the event dict itself.

``model.request.body``, ``model.response.headers``, ``model.user_id``, ``model.metadata`` read and
write the event in place (a name the event lacks reads as None; setting None removes it). Header
maps are case-insensitive, because Moesif's three middlewares name headers differently
(``X-Secret`` under WSGI, ``x-secret`` under ASGI, ``X-SECRET`` under Django) and hooks are
written for one of them.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any


class HeaderMap(MutableMapping[str, Any]):
    """The event's header dict, read and written by any case of a name."""

    __slots__ = ("_headers",)

    def __init__(self, headers: dict[str, Any]) -> None:
        self._headers = headers

    def _name(self, name: str) -> str | None:
        if name in self._headers:
            return name
        lower = name.lower()
        for key in self._headers:
            if key.lower() == lower:
                return key
        return None

    def __getitem__(self, name: str) -> Any:
        key = self._name(name)
        if key is None:
            raise KeyError(name)
        return self._headers[key]

    def __setitem__(self, name: str, value: Any) -> None:
        key = self._name(name)
        self._headers[name if key is None else key] = value

    def __delitem__(self, name: str) -> None:
        key = self._name(name)
        if key is None:
            raise KeyError(name)
        del self._headers[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def __repr__(self) -> str:
        return f"HeaderMap({self._headers!r})"


class _Part:
    """One dict of the event (the event, its request, its response) seen through attributes."""

    __slots__ = ("_data",)
    _children: dict[str, type[_Part]] = {}

    def __init__(self, data: dict[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        data = self._data
        value = data.get(name)
        if name == "headers":
            if not isinstance(value, dict):
                value = data["headers"] = {}
            return HeaderMap(value)
        child = self._children.get(name)
        if child is not None and isinstance(value, dict):
            return child(value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, _Part):
            value = value._data
        elif isinstance(value, HeaderMap):
            value = dict(value)
        if value is None:
            self._data.pop(name, None)
        else:
            self._data[name] = value

    def __delattr__(self, name: str) -> None:
        self._data.pop(name, None)

    def to_dictionary(self) -> dict[str, Any]:
        """The dict underneath (moesifapi's models have this method)."""
        data: dict[str, Any] = self._data
        return data

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._data!r}>"


class EventRequest(_Part):
    """``time``, ``uri``, ``verb``, ``api_version``, ``ip_address``, ``headers``, ``body``,
    ``transfer_encoding``."""

    __slots__ = ()


class EventResponse(_Part):
    """``time``, ``status``, ``headers``, ``body``, ``transfer_encoding``."""

    __slots__ = ()


class EventModel(_Part):
    """``request``, ``response``, ``user_id``, ``company_id``, ``session_token``, ``metadata``,
    ``direction``, ``weight``, ``blocked_by``, ``tags`` (and apimon's ``transaction_id``)."""

    __slots__ = ()
    _children = {"request": EventRequest, "response": EventResponse}


def unwrap(result: Any, event: dict[str, Any]) -> dict[str, Any] | None:
    """The event dict a hook's result stands for: the model given back (or any model), a dict,
    or None (the event is dropped). Headers a hook set to None are removed."""
    if result is None:
        return None
    data: Any
    if isinstance(result, _Part):
        data = result._data
    elif isinstance(result, dict):
        data = result
    elif hasattr(result, "to_dictionary"):
        data = result.to_dictionary()
    else:
        data = event
    if not isinstance(data, dict):
        data = event
    for part in ("request", "response"):
        section = data.get(part)
        if isinstance(section, dict) and isinstance(section.get("headers"), dict):
            section["headers"] = {k: v for k, v in section["headers"].items() if v is not None}
    masked: dict[str, Any] = data
    return masked
