"""The client address: the default order, the trusted readers a deployment configures, and the
caches that hold only short values."""

from __future__ import annotations

import pytest

from apimon.config import Config
from apimon.ipaddr import TrustedClientIp, client_ip, trusted_client_ip


def trusted(**options: object) -> TrustedClientIp:
    reader = Config.from_options(**options).client_ip
    assert reader is not None
    return reader


def read(reader: TrustedClientIp, headers: dict[str, str], peer: str | None = "10.0.0.2") -> str | None:
    return reader(tuple(headers.get(name) for name in reader.headers), peer)


def test_no_trust_configured_keeps_the_default_order() -> None:
    assert Config.from_options().client_ip is None
    assert trusted_client_ip(None, None) is None


@pytest.mark.parametrize(
    ("options", "headers", "peer", "expected"),
    [
        # Cloudflare: its header is believed, the others never are.
        ({"client_ip_header": "cf-connecting-ip"}, {"Cf-Connecting-Ip": "198.51.100.1"}, "10.0.0.2", "198.51.100.1"),
        (
            {"client_ip_header": "CF-Connecting-IP"},
            {"Fastly-Client-Ip": "8.8.8.8", "X-Forwarded-For": "8.8.4.4"},
            "10.0.0.2",
            "10.0.0.2",
        ),
        # Cloudflare, believed only from its own networks.
        (
            {"client_ip_header": "CF-Connecting-IP", "trusted_proxies": ["173.245.48.0/20"]},
            {"Cf-Connecting-Ip": "198.51.100.1"},
            "173.245.48.9",
            "198.51.100.1",
        ),
        (
            {"client_ip_header": "CF-Connecting-IP", "trusted_proxies": ["173.245.48.0/20"]},
            {"Cf-Connecting-Ip": "198.51.100.1"},
            "203.0.113.66",
            "203.0.113.66",
        ),
        # One proxy in front (nginx, an ALB): the last X-Forwarded-For entry is what it saw.
        ({"trusted_proxies": 1}, {"X-Forwarded-For": "8.8.8.8, 203.0.113.9"}, "10.0.0.2", "203.0.113.9"),
        ({"trusted_proxies": "2"}, {"X-Forwarded-For": "8.8.8.8, 203.0.113.9, 10.1.1.1"}, "10.0.0.2", "203.0.113.9"),
        ({"trusted_proxies": 2}, {"X-Forwarded-For": "203.0.113.9"}, "10.0.0.2", "10.0.0.2"),  # too few entries
        ({"trusted_proxies": 0}, {"X-Forwarded-For": "203.0.113.9"}, "10.0.0.2", "10.0.0.2"),
        ({"trusted_proxies": 1}, {"Forwarded": 'for=8.8.8.8, for="[2001:db8::7]:443"'}, None, "2001:db8::7"),
        ({"trusted_proxies": 1}, {"Cf-Connecting-Ip": "8.8.8.8"}, "10.0.0.2", "10.0.0.2"),
        # CIDRs: right to left past every trusted hop.
        (
            {"trusted_proxies": "10.0.0.0/8, 192.168.0.0/16"},
            {"X-Forwarded-For": "8.8.8.8, 203.0.113.9, 192.168.1.1"},
            "10.0.0.2",
            "203.0.113.9",
        ),
        ({"trusted_proxies": ["10.0.0.0/8"]}, {"X-Forwarded-For": "203.0.113.9"}, "198.51.100.3", "198.51.100.3"),
        ({"trusted_proxies": ["10.0.0.0/8"]}, {"X-Forwarded-For": "10.3.3.3, garbage"}, "10.0.0.2", "10.3.3.3"),
    ],
)
def test_trusted_readers(options: dict[str, object], headers: dict[str, str], peer: str | None, expected: str) -> None:
    assert read(trusted(**options), headers, peer) == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trusted_proxies": "10.0.0.0/33"}, "not an IP network"),
        ({"trusted_proxies": -1}, "between"),
        ({"trusted_proxies": True}, "hop count or a list"),
        ({"trusted_proxies": ""}, "names no network"),
        ({"client_ip_header": "bad header"}, "header name"),
    ],
)
def test_trust_options_are_checked_at_start_up(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Config.from_options(**options)


def test_the_environment_sets_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIMON_TRUSTED_PROXIES", "127.0.0.1, ::1")
    monkeypatch.setenv("APIMON_CLIENT_IP_HEADER", "x-real-ip")
    config = Config.from_options()
    assert config.trusted_proxies == ("127.0.0.1/32", "::1/128")
    assert config.client_ip_header == "X-Real-Ip"


def test_long_values_are_answered_as_short_ones_are() -> None:
    # Long values skip the caches (tests/reliability/test_attacks.py measures the memory).
    long_value = "x" * 5000 + ", 203.0.113.9"
    values = (None, None, None, long_value, None, None, None, None)
    assert client_ip(values, "10.0.0.1") == "203.0.113.9"
    assert client_ip(values, "10.0.0.1" + " " * 300) == "203.0.113.9"
    assert client_ip((None,) * 8, " 10.0.0.1" + " " * 300) == "10.0.0.1"
