"""The client's IP address, proxy-aware (docs/events.md#client-ip).

With no trust configured, the first public address of the proxy headers wins (:func:`client_ip`):
right for a machine behind a CDN or a proxy that sets its header, and what Moesif's middlewares
do, but a client can forge any header no proxy in front of it replaces. A deployment that says
what it trusts (``client_ip_header``, ``trusted_proxies``) gets a :class:`TrustedClientIp`, which
no other header can move.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache

_Addr = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Header values come from clients: only short ones are cached, so the caches hold a few MB at
# most whatever the clients send.
_CACHED_CHARS = 256


def parse_ip(text: str) -> _Addr | None:
    """A valid IP from a header token (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``"[::1]"``), or None."""
    if len(text) <= _CACHED_CHARS:
        return _parse_ip_cached(text)
    return _parse_ip(text)


def _parse_ip(text: str) -> _Addr | None:
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


_parse_ip_cached = lru_cache(maxsize=2048)(_parse_ip)


# docs/events.md#client-ip names exactly these: RFC 1918 and RFC 4193 private ranges (ipaddress's is_private
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
        yield from _forwarded_for(value)


def _forwarded_for(value: str) -> Iterator[str]:
    """The ``for=`` tokens of an RFC 7239 ``Forwarded`` value, in order."""
    for element in value.split(","):
        for pair in element.split(";"):
            key, _, token = pair.partition("=")
            if key.strip().lower() == "for":
                yield token


def header_values(headers: Mapping[str, str]) -> tuple[str | None, ...]:
    """The :data:`IP_HEADERS` of a canonical header map, for :func:`client_ip`."""
    return tuple(map(headers.get, IP_HEADERS))  # in C: this runs for every event


def client_ip(values: tuple[str | None, ...], peer: str | None) -> str | None:
    """First public IP from the proxy headers' ``values`` (:func:`header_values`); else their
    first valid IP; else the peer; else None.

    Invalid values are ignored, never shipped. Memoised for short values: a client sends the
    same headers call after call, and formatting an address alone costs a microsecond.
    """
    if any(values):
        total = 0
        for value in values:
            if value:
                total += len(value)
        if total > _CACHED_CHARS:
            return _client_ip(values, peer)
    if peer is not None and len(peer) > _CACHED_CHARS:
        return _client_ip(values, peer)
    return _client_ip_cached(values, peer)


def _client_ip(values: tuple[str | None, ...], peer: str | None) -> str | None:
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


_client_ip_cached = lru_cache(maxsize=2048)(_client_ip)


class TrustedClientIp:
    """The client address as a deployment that names what it trusts reads it.

    ``header`` (canonical name) is the one header believed, as a CDN sets it
    (``Cf-Connecting-Ip``); without it, ``X-Forwarded-For`` (else ``Forwarded``). The header's
    addresses, then the peer, form a chain read right to left: ``hops`` (an int, as Werkzeug's
    ProxyFix ``x_for``) takes the address that many entries from the right end of the header
    (the peer when the header has fewer; 0: the peer always); ``networks`` skips every address
    inside them, from the peer leftwards, and takes the first outside (the leftmost when all
    are inside). A header named alone counts as one hop. Nothing else moves the address.
    """

    __slots__ = ("header", "headers", "hops", "networks")

    def __init__(self, header: str | None, hops: int | None, networks: Sequence[_Network] | None) -> None:
        self.header = header
        self.headers: tuple[str, ...] = (header,) if header else ("X-Forwarded-For", "Forwarded")
        self.hops = 1 if hops is None and networks is None else hops
        self.networks = tuple(networks) if networks is not None else None

    def __call__(self, values: Sequence[str | None], peer: str | None) -> str | None:
        """The client address from the values of :attr:`headers` (in order) and the peer."""
        chain = self._chain(values)
        peer_addr = parse_ip(peer) if peer else None
        if self.networks is None:
            hops = self.hops or 0
            if hops and len(chain) >= hops:
                return str(chain[-hops])
        else:
            networks = self.networks
            full = [*chain, peer_addr] if peer_addr is not None else chain
            for addr in reversed(full):
                if not any(addr.version == net.version and addr in net for net in networks):
                    return str(addr)
            if full:
                return str(full[0])
        return str(peer_addr) if peer_addr is not None else None

    def _chain(self, values: Sequence[str | None]) -> list[_Addr]:
        for name, value in zip(self.headers, values, strict=False):
            if value:
                tokens = _forwarded_for(value) if name == "Forwarded" else value.split(",")
                return [addr for addr in map(parse_ip, tokens) if addr is not None]
        return []


@lru_cache(maxsize=8)
def trusted_client_ip(header: str | None, proxies: int | tuple[str, ...] | None) -> TrustedClientIp | None:
    """The reader for the ``client_ip_header`` and ``trusted_proxies`` options (None when neither
    is set: :func:`client_ip` then)."""
    if header is None and proxies is None:
        return None
    if isinstance(proxies, int):
        return TrustedClientIp(header, proxies, None)
    networks = None if proxies is None else [ipaddress.ip_network(n, strict=False) for n in proxies]
    return TrustedClientIp(header, None, networks)
