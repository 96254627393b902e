"""The edge's pure parts: forwarded-header parsing (trusted peers only, rightmost untrusted hop,
IPv6 and ports, RFC 7239 quoting) and the quota table (groups, AWS's defaults, documents)."""

from __future__ import annotations

from typing import Any

import pytest

from openkms.domain.quotas import (
    ECC,
    ML_DSA,
    RSA,
    SYMMETRIC,
    QuotaDocumentError,
    aws_default,
    crypto_group,
    operation_group,
    parse_quotas,
)
from openkms.server.proxies import TrustedProxies, apply_forwarding, parse_networks

PROXIES = TrustedProxies(parse_networks(["10.0.0.0/8,127.0.0.1", "fd00::/8"]))


def scope(peer: str, *headers: tuple[str, str], scheme: str = "http") -> dict[str, Any]:
    return {
        "client": (peer, 5555),
        "scheme": scheme,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }


@pytest.mark.parametrize(
    ("peer", "headers", "client", "scheme"),
    [
        # Untrusted peers: headers ignored.
        (
            "192.0.2.1",
            [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")],
            "192.0.2.1",
            "http",
        ),
        ("192.0.2.1", [("Forwarded", "for=203.0.113.7;proto=https")], "192.0.2.1", "http"),
        # Trusted peers: the rightmost untrusted hop.
        ("127.0.0.1", [("X-Forwarded-For", "203.0.113.7")], "203.0.113.7", "http"),
        ("127.0.0.1", [("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.2.3.4")], "203.0.113.7", "http"),
        (
            "127.0.0.1",
            [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.7")],
            "203.0.113.7",
            "http",
        ),
        ("10.9.9.9", [("X-Forwarded-Proto", "https")], "10.9.9.9", "https"),
        ("10.9.9.9", [("X-Forwarded-Proto", "javascript")], "10.9.9.9", "http"),
        (
            "127.0.0.1",
            [("Forwarded", 'for="[2001:db8::1]:4711";proto=https, for=10.1.1.1')],
            "2001:db8::1",
            "https",
        ),
        ("127.0.0.1", [("Forwarded", "for=203.0.113.7:80")], "203.0.113.7", "http"),
        ("fd00::1", [("X-Forwarded-For", "2001:db8::5")], "2001:db8::5", "http"),
        # An unparseable hop stops the walk: nothing left of it is believed.
        ("127.0.0.1", [("X-Forwarded-For", "203.0.113.7, unknown, 10.1.1.1")], "10.1.1.1", "http"),
        ("127.0.0.1", [("X-Forwarded-For", "")], "127.0.0.1", "http"),
        # Forwarded wins over X-Forwarded-* when both are sent.
        (
            "127.0.0.1",
            [("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=203.0.113.7")],
            "203.0.113.7",
            "http",
        ),
    ],
)
def test_forwarding(peer: str, headers: list[tuple[str, str]], client: str, scheme: str) -> None:
    s = scope(peer, *headers)
    apply_forwarding(s, PROXIES)
    assert s["client"][0] == client
    assert s["scheme"] == scheme


def test_no_proxies_trust_nothing() -> None:
    nobody = TrustedProxies(())
    assert not nobody.trusts("127.0.0.1")
    s = scope("127.0.0.1", ("X-Forwarded-For", "203.0.113.7"))
    apply_forwarding(s, nobody)
    assert s["client"][0] == "127.0.0.1"


def test_long_chains_are_cut() -> None:
    chain = ", ".join(["10.0.0.1"] * 100_000)
    s = scope("127.0.0.1", ("X-Forwarded-For", chain))
    apply_forwarding(s, PROXIES)
    assert s["client"][0] == "10.0.0.1"


@pytest.mark.parametrize(
    ("spec", "group"),
    [
        ("SYMMETRIC_DEFAULT", SYMMETRIC),
        ("HMAC_256", SYMMETRIC),
        ("RSA_4096", RSA),
        ("ECC_NIST_P256", ECC),
        ("ECC_SECG_P256K1", ECC),
        ("ECC_NIST_EDWARDS25519", ECC),
        ("ML_DSA_65", ML_DSA),
    ],
)
def test_crypto_groups(spec: str, group: str) -> None:
    assert crypto_group(spec) == group


def test_operation_groups() -> None:
    assert operation_group("Encrypt", {}) is None  # charged once the key is known
    assert (
        operation_group("GenerateDataKeyPair", {"key_pair_spec": "ECC_NIST_P384"})
        == "GenerateDataKeyPair:ECC"
    )
    assert operation_group("GenerateDataKeyPairWithoutPlaintext", {"key_pair_spec": "RSA_4096"}) == (
        "GenerateDataKeyPair:RSA_4096"
    )
    assert operation_group("CreateKey", {}) == "CreateKey"


def test_aws_default_values() -> None:
    table = aws_default()
    assert table.rate(SYMMETRIC, "us-east-1") == 100_000
    assert table.rate(SYMMETRIC, "eu-central-1") == 20_000
    assert table.rate(SYMMETRIC, "sa-east-1") == 10_000
    assert table.rate("GetParametersForImport", "us-east-1") == 1
    assert table.rate("CreateKey", "us-east-1") == 5


def test_documents() -> None:
    table = parse_quotas('profile = "aws-default"\nprocesses = 3\n[quotas]\ncryptographic_symmetric = 50\n')
    assert table.processes == 3
    assert table.rate(SYMMETRIC, "us-east-1") == 50  # overrides the regional default too
    assert table.rate("CreateKey", "us-east-1") == 5
    assert parse_quotas('{"quotas": {"CreateKey": 2.5}}').rate("CreateKey", "x") == 2.5
    for bad in (
        "processes = 0",
        'profile = "fast"',
        "[quotas]\nCreateKey = true",
        "[quotas]\nCreateKey = 1e9",
    ):
        with pytest.raises(QuotaDocumentError):
            parse_quotas(bad)
