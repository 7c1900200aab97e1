"""The client's address behind a reverse proxy, taken from X-Forwarded-For only when the request
came from a proxy we trust (FORWARDED_ALLOW_IPS), and only when it is a well-formed IP address.

Any client can send X-Forwarded-For; believing it from anyone would let a guesser rotate its
address past the failed-authentication limiter, or name someone else's address to get it blocked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def trusted_networks(allowed: Iterable[str]) -> tuple[Network, ...] | None:
    """None means every peer ('*'), as gunicorn's own FORWARDED_ALLOW_IPS reads it."""
    names = [name.strip() for name in allowed if name.strip()]
    if "*" in names:
        return None
    return tuple(ipaddress.ip_network(name, strict=False) for name in names)


def is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class TrustedProxies:
    """WSGI middleware: for a request from a trusted proxy, the client address `hops` entries
    from the right of X-Forwarded-For (each proxy appends the peer it saw) and the scheme from
    X-Forwarded-Proto; for anyone else, the connection's own address, whatever headers it sent."""

    def __init__(self, app: WsgiApp, hops: int, allowed: Iterable[str]) -> None:
        self._app = app
        self._hops = hops
        self._networks = trusted_networks(allowed)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self._from_trusted_proxy(environ.get("REMOTE_ADDR", "")):
            client = _from_right(environ.get("HTTP_X_FORWARDED_FOR", ""), self._hops)
            if client is not None and is_ip_address(client):
                environ["REMOTE_ADDR"] = client
            scheme = _from_right(environ.get("HTTP_X_FORWARDED_PROTO", ""), self._hops)
            if scheme in ("http", "https"):
                environ["wsgi.url_scheme"] = scheme
        return self._app(environ, start_response)

    def _from_trusted_proxy(self, peer: str) -> bool:
        if self._networks is None:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)


def _from_right(header: str, hops: int) -> str | None:
    values = [value.strip() for value in header.split(",") if value.strip()]
    return values[-hops] if len(values) >= hops else None
