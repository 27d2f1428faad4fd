"""Decide which IP addresses the media fetcher may connect to.

A media URL comes from whoever submits a broadcast, so without a policy the
fetcher is a request-forgery tool against this host and its network: cloud
metadata services, link-local and loopback services. The policy is pure (no
I/O); the fetcher applies it to every address it is about to connect to.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Final

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_LOOPBACK: Final[tuple[IPNetwork, ...]] = (ip_network("127.0.0.0/8"), ip_network("::1/128"))
_IPV4_MAPPED: Final = IPv6Network("::ffff:0:0/96")

# Order matters only for the reason reported: specific entries (metadata) come before
# the ranges containing them (link-local). Loopback is handled separately because
# ``allow_loopback`` exempts it; everything here is refused unless ``allow`` covers it.
_DEFAULT_DENY: Final[tuple[tuple[IPNetwork, str], ...]] = (
    (ip_network("169.254.169.254/32"), "cloud metadata"),  # AWS, GCP, Azure, OpenStack...
    (ip_network("fd00:ec2::254/128"), "cloud metadata"),  # AWS over IPv6
    (ip_network("100.100.100.200/32"), "cloud metadata"),  # Alibaba Cloud
    (ip_network("169.254.0.0/16"), "link-local"),
    (ip_network("fe80::/10"), "link-local"),
    (ip_network("0.0.0.0/8"), "unspecified"),  # connecting to 0.x reaches this host on Linux
    (ip_network("::/128"), "unspecified"),
    (ip_network("224.0.0.0/4"), "multicast"),
    (ip_network("ff00::/8"), "multicast"),
    (ip_network("240.0.0.0/4"), "reserved"),  # includes 255.255.255.255 (broadcast)
    # IPv6 space IANA reserves or has not assigned for unicast (the same list as
    # ipaddress.IPv6Address.is_reserved, spelled out so it cannot drift between Python
    # versions, plus the deprecated site-local fec0::/10). ::/8 also covers the deprecated
    # IPv4-compatible ::a.b.c.d and NAT64's 64:ff9b::/96.
    *(
        (ip_network(block), "reserved")
        for block in (
            "::/8 100::/8 200::/7 400::/6 800::/5 1000::/4 4000::/3 6000::/3 8000::/3"
            " a000::/3 c000::/3 e000::/4 f000::/5 f800::/6 fe00::/9 fec0::/10"
        ).split()
    ),
)


class AddressDenied(Exception):
    """The policy refuses an address; ``reason`` is a short category such as "link-local"."""

    def __init__(self, address: IPAddress, reason: str) -> None:
        super().__init__(f"{address} is refused ({reason})")
        self.address = address
        self.reason = reason


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses may be connected to.

    Precedence: an explicit ``deny`` entry always refuses; otherwise an ``allow`` entry
    always permits; otherwise loopback is refused unless ``allow_loopback``, and the
    built-in list (metadata, link-local, unspecified, multicast, reserved) is refused.
    Everything else, private ranges included, is permitted (add them to ``deny`` to
    refuse them). IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) are judged as the
    IPv4 address they reach.
    """

    deny: tuple[IPNetwork, ...] = ()
    allow: tuple[IPNetwork, ...] = ()
    allow_loopback: bool = False

    def __post_init__(self) -> None:
        for network in (*self.deny, *self.allow):
            if not isinstance(network, IPv4Network | IPv6Network):
                raise TypeError(f"expected an IPv4Network or IPv6Network, got {network!r}")
            _refuse_mapped_network(network)

    def check(self, address: IPAddress) -> None:
        """Return if ``address`` may be connected to, else raise :class:`AddressDenied`."""
        target = _unmapped(address)
        if any(target in network for network in self.deny):
            raise AddressDenied(address, "explicitly denied")
        if any(target in network for network in self.allow):
            return
        if any(target in network for network in _LOOPBACK):
            if self.allow_loopback:
                return
            raise AddressDenied(address, "loopback")
        for network, reason in _DEFAULT_DENY:
            if target in network:
                raise AddressDenied(address, reason)


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Parse a comma-separated setting such as ``"10.0.0.0/8, 192.0.2.7, fd00::/8"``.

    A bare address means just that address; empty entries are ignored. Raises
    :class:`ValueError` naming the first bad entry.
    """
    networks: list[IPNetwork] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            # strict: "10.0.0.1/8" is more likely a typo than a wish for 10.0.0.0/8.
            network = ip_network(entry, strict=True)
            _refuse_mapped_network(network)
        except ValueError as exc:
            raise ValueError(f"invalid network {entry!r} in address list: {exc}") from None
        networks.append(network)
    return tuple(networks)


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _refuse_mapped_network(network: IPNetwork) -> None:
    # Mapped addresses are judged as IPv4, so a network inside ::ffff:0:0/96 would never
    # match anything; failing loudly beats a deny entry that silently does nothing.
    if isinstance(network, IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        raise ValueError(f"{network} is IPv4-mapped; write it as an IPv4 network instead")
