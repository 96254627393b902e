"""Trusted proxies: the client address and scheme of a request, from the connection's peer or — only
when that peer is a trusted proxy (``--trusted-proxies CIDR,…``) — from its forwarding headers.

``X-Forwarded-For`` / ``Forwarded: for=`` are read right to left: every hop that is itself a trusted
proxy is skipped, and the first one that is not is the client (a client cannot forge what a trusted
proxy appended after it). ``X-Forwarded-Proto`` / ``Forwarded: proto=`` give the scheme the client
used with the proxy. From any other peer the headers are ignored: ``aws:SourceIp``,
``aws:SecureTransport``, the audit trail's ``sourceIPAddress`` and the console's Secure cookie come
from the connection itself. Parsing is linear in the header size (bounded by the edge's limits).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOPS = 64  # forwarding hops examined; a longer chain is cut at this many from the right


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs or single addresses, comma-separated within each value; raises ValueError."""
    networks: list[Network] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part:
                networks.append(ipaddress.ip_network(part, strict=False))
    return tuple(networks)


def _address(value: str) -> str | None:
    """The IP address of a forwarded hop (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``"[::1]"``)."""
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


class TrustedProxies:
    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str | None) -> bool:
        if not host or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client_of(self, peer: str, hops: list[str]) -> str:
        """The client address: the rightmost hop that is not a trusted proxy (the leftmost hop when
        every hop is trusted); the peer when no hop is an IP address."""
        client = peer
        for hop in reversed(hops[-MAX_HOPS:]):
            address = _address(hop)
            if address is None:
                break  # "unknown" or an obfuscated identifier: nothing further left can be believed
            client = address
            if not self.trusts(address):
                break
        return client


def _forwarded_pairs(value: str) -> tuple[list[str], list[str]]:
    """The ``for=`` and ``proto=`` values of a ``Forwarded`` header (RFC 7239), in order."""
    fors: list[str] = []
    protos: list[str] = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, sep, v = pair.partition("=")
            if not sep:
                continue
            name = name.strip().lower()
            if name == "for":
                fors.append(v.strip().strip('"'))
            elif name == "proto":
                protos.append(v.strip().strip('"').lower())
    return fors, protos


def apply_forwarding(scope: dict[str, Any], proxies: TrustedProxies) -> None:
    """Rewrite ``scope["client"]`` and ``scope["scheme"]`` from forwarding headers when the peer is a
    trusted proxy; leave them as the connection's otherwise."""
    client = scope.get("client")
    peer: str | None = client[0] if client else None
    if peer is None or not proxies.trusts(peer):
        return
    hops: list[str] = []
    proto: str | None = None
    forwarded_hops: list[str] = []
    forwarded_proto: str | None = None
    for name, raw in scope["headers"]:
        if name == b"x-forwarded-for":
            hops.extend(raw.decode("latin-1").split(","))
        elif name == b"x-forwarded-proto":
            proto = raw.decode("latin-1").split(",")[-1].strip().lower()
        elif name == b"forwarded":
            fors, protos = _forwarded_pairs(raw.decode("latin-1"))
            forwarded_hops.extend(fors)
            if protos:
                forwarded_proto = protos[-1]
    # The standard header wins over the de-facto ones when a proxy sends both.
    if forwarded_hops:
        hops = forwarded_hops
    if forwarded_proto is not None:
        proto = forwarded_proto
    if hops:
        scope["client"] = (proxies.client_of(peer, hops), 0)
    if proto in ("http", "https"):
        scope["scheme"] = proto
