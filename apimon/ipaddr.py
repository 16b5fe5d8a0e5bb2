"""The client's IP address, proxy-aware (CONTRACT 2.2 ``ip_address``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from functools import lru_cache

_Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> _Addr | None:
    """A valid IP from a header token (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``"[::1]"``), or None."""
    token = text.strip().strip('"').strip()
    if not token or len(token) > 64:
        return None
    if token.startswith("["):
        end = token.find("]")
        if end < 0:
            return None
        token = token[1:end]
    elif token.count(":") == 1:
        token = token.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(token)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


# CONTRACT 2.2 names exactly these: RFC 1918 and RFC 4193 private ranges (ipaddress's is_private
# is wider: it also covers documentation and other special-purpose blocks, which are kept here).
_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))


def _is_public(addr: _Addr) -> bool:
    if addr.is_loopback or addr.is_link_local or addr.is_unspecified:
        return False
    return not any(addr.version == net.version and addr in net for net in _PRIVATE)


#: The request headers a client address is read from, in this order (canonical names). CDNs
#: set their header at the edge from the connection they accepted, replacing whatever the client
#: sent, so it comes first; X-Forwarded-For is read left to right (the client first, then each
#: proxy), then the single-address headers of other proxies and load balancers, then RFC 7239's
#: Forwarded (``for=``). The first public address wins; if there is none, the first valid one;
#: if none is valid, the peer.
IP_HEADERS: tuple[str, ...] = (
    "Cf-Connecting-Ip",  # Cloudflare
    "True-Client-Ip",  # Akamai, Cloudflare Enterprise
    "Fastly-Client-Ip",  # Fastly
    "X-Forwarded-For",
    "X-Real-Ip",  # nginx
    "X-Client-Ip",  # Amazon EC2, Heroku and others
    "X-Cluster-Client-Ip",  # Rackspace, Riverbed Stingray
    "Forwarded",
)
_FORWARDED = len(IP_HEADERS) - 1


def _candidates(values: tuple[str | None, ...]) -> Iterator[str]:
    for at, value in enumerate(values):
        if not value:
            continue
        if at != _FORWARDED:
            yield from value.split(",")
            continue
        for element in value.split(","):
            for pair in element.split(";"):
                key, _, token = pair.partition("=")
                if key.strip().lower() == "for":
                    yield token


def header_values(headers: Mapping[str, str]) -> tuple[str | None, ...]:
    """The :data:`IP_HEADERS` of a canonical header map, for :func:`client_ip`."""
    return tuple(map(headers.get, IP_HEADERS))  # in C: this runs for every event


@lru_cache(maxsize=4096)
def client_ip(values: tuple[str | None, ...], peer: str | None) -> str | None:
    """First public IP from the proxy headers' ``values`` (:func:`header_values`); else their
    first valid IP; else the peer; else None.

    Invalid values are ignored, never shipped. Memoised: a client sends the same headers call
    after call, and formatting an address alone costs a microsecond.
    """
    first_valid: _Addr | None = None
    for token in _candidates(values):
        addr = parse_ip(token)
        if addr is None:
            continue
        if _is_public(addr):
            return str(addr)
        if first_valid is None:
            first_valid = addr
    if first_valid is not None:
        return str(first_valid)
    peer_addr = parse_ip(peer) if peer else None
    return str(peer_addr) if peer_addr is not None else None
