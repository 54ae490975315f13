"""SSRF guard: webhook targets must resolve only to global addresses, checked when an endpoint is
saved and again when each connection is made, and the connection goes to the address that was
checked (a DNS answer that changes in between cannot redirect it: no rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from core.errors import InvalidInput

Resolve = Callable[[str, int], Awaitable[list[str]]]


class BlockedTarget(OSError):
    """The target is (or resolves to) an address webhooks may not reach."""


async def system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as exc:  # IDNA refuses the name (a label over 63 characters, ...)
        raise socket.gaierror(socket.EAI_NONAME, f"not a valid host name: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not is_public(str(embedded)):
            return False
    return ip.is_global and not ip.is_multicast


def literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


async def checked_addresses(
    host: str, port: int, *, allow_private: bool, resolve: Resolve = system_resolve
) -> list[str]:
    """Every address `host` resolves to, when all of them may be reached; else BlockedTarget."""
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise BlockedTarget(f"{host} does not resolve") from exc
        if not addresses:
            raise BlockedTarget(f"{host} does not resolve")
    if not allow_private:
        blocked = [a for a in addresses if not is_public(a)]
        if blocked:
            raise BlockedTarget(f"{host} resolves to a non-public address ({blocked[0]})")
    return addresses


async def check_url(
    url: str,
    *,
    live: bool,
    allow_private: bool,
    resolve: Resolve = system_resolve,
    param: str = "url",
) -> str:
    """Validate a webhook URL for saving: scheme, host, credentials, and where it points."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"{param} is not a valid URL: {exc}", param=param) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{param} must be an absolute http(s) URL", param=param)
    if live and parts.scheme != "https":
        raise InvalidInput(f"{param} must use https in live mode", param=param)
    if parts.username or parts.password:
        raise InvalidInput(f"{param} must not carry credentials", param=param)
    default_port = 443 if parts.scheme == "https" else 80
    try:
        await checked_addresses(
            parts.hostname, port or default_port, allow_private=allow_private, resolve=resolve
        )
    except BlockedTarget as exc:
        raise InvalidInput(
            f"{param} is not allowed: {exc}", param=param, code="url_not_allowed"
        ) from exc
    return url


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses non-public answers; aiohttp connects to what it returns."""

    def __init__(self, *, allow_private: bool, resolve: Resolve = system_resolve) -> None:
        self.allow_private = allow_private
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await checked_addresses(
            host, port, allow_private=self.allow_private, resolve=self._resolve
        )
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None
