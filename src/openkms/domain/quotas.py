"""Request quotas: AWS KMS's quota groups (which operations share a requests-per-second budget per
account and Region), the group of a request, AWS's published default values (the ``aws-default``
profile), and the parsing of a quotas document (TOML or JSON). Each operation's budget and its own
default are written in its record (``quota``, ``default_quota`` in ``domain/operations.py``).

A document names groups or single operations with requests per second::

    processes = 2                 # processes sharing the database (each enforces 1/processes)
    [quotas]
    cryptographic_symmetric = 10000
    CreateKey = 5

Cryptographic operations share one budget per key type (symmetric and HMAC keys, RSA, ECC, ML-DSA),
as AWS's do; GenerateDataKeyPair(+WithoutPlaintext) has a budget per key pair spec; every other
operation has its own.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openkms.domain.operations import OPERATIONS, Quota

THROTTLING_MESSAGE = (
    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
)

SYMMETRIC = "cryptographic_symmetric"
RSA = "cryptographic_rsa"
ECC = "cryptographic_ecc"
ML_DSA = "cryptographic_ml_dsa"
CRYPTO_GROUPS = (SYMMETRIC, RSA, ECC, ML_DSA)

# Operations whose budget is the cryptographic one of their key's type, and those whose budget is
# their key pair spec's (the records' ``quota`` in domain/operations.py).
BY_KEY_TYPE = frozenset(name for name, facts in OPERATIONS.items() if facts.quota is Quota.KEY_TYPE)
KEY_PAIR_OPERATIONS = frozenset(
    name for name, facts in OPERATIONS.items() if facts.quota is Quota.KEY_PAIR_SPEC
)

# AWS's default request quotas (requests per second per account and Region), from AWS KMS's quotas page:
# the shared budgets here, each operation's own budget in its record (``default_quota``).
AWS_DEFAULT: dict[str, float] = {
    SYMMETRIC: 10_000,
    RSA: 1_000,
    ECC: 1_000,
    ML_DSA: 1_000,
    "GenerateDataKeyPair:ECC": 100,
    "GenerateDataKeyPair:RSA_2048": 20,
    "GenerateDataKeyPair:RSA_3072": 4,
    "GenerateDataKeyPair:RSA_4096": 1,
    "GenerateDataKeyPair:SM2": 25,
    **{name: facts.default_quota for name, facts in OPERATIONS.items() if facts.default_quota is not None},
}
# The symmetric budget is larger in some Regions.
AWS_SYMMETRIC_BY_REGION: dict[str, float] = {
    **dict.fromkeys(
        ("us-east-2", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "eu-central-1", "eu-west-2"),
        20_000,
    ),
    **dict.fromkeys(("us-east-1", "us-west-2", "eu-west-1"), 100_000),
}
GROUP_NAMES = frozenset(AWS_DEFAULT) | {f"GenerateDataKeyPair:{s}" for s in ("ECC", "RSA_2048")}


def crypto_group(key_spec: str) -> str:
    """The cryptographic budget of a key of ``key_spec`` (HMAC keys share the symmetric one)."""
    if key_spec.startswith("RSA_"):
        return RSA
    if key_spec.startswith("ECC_") or key_spec == "SM2":
        return ECC
    if key_spec.startswith("ML_DSA_"):
        return ML_DSA
    return SYMMETRIC


def key_pair_group(key_pair_spec: str) -> str:
    if key_pair_spec.startswith("ECC_"):
        return "GenerateDataKeyPair:ECC"
    return f"GenerateDataKeyPair:{key_pair_spec}"


def operation_group(operation: str, params: Mapping[str, Any]) -> str | None:
    """The budget an operation is charged to before it runs; None for the operations charged once
    their key is known (:data:`BY_KEY_TYPE`)."""
    if operation in BY_KEY_TYPE:
        return None
    if operation in KEY_PAIR_OPERATIONS:
        return key_pair_group(str(params.get("key_pair_spec", "")))
    return operation


class QuotaDocumentError(ValueError):
    pass


@dataclass(frozen=True)
class QuotaTable:
    """Requests per second by group name (per account and Region) for this whole service."""

    rates: dict[str, float] = field(default_factory=dict)
    by_region: dict[str, dict[str, float]] = field(default_factory=dict)
    processes: int = 1

    def rate(self, group: str, region: str) -> float | None:
        regional = self.by_region.get(group)
        if regional is not None and region in regional:
            return regional[region]
        return self.rates.get(group)


def aws_default(processes: int = 1) -> QuotaTable:
    return QuotaTable(dict(AWS_DEFAULT), {SYMMETRIC: dict(AWS_SYMMETRIC_BY_REGION)}, processes)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 10_000_000:
        raise QuotaDocumentError(f"quota {name!r} must be a number of requests per second in (0, 1e7]")
    return float(value)


def parse_quotas(text: str, processes: int | None = None) -> QuotaTable:
    """A quotas document (TOML, or JSON when it starts with ``{``); raises QuotaDocumentError."""
    try:
        doc = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise QuotaDocumentError(f"not a TOML or JSON document: {exc}") from None
    if not isinstance(doc, dict):
        raise QuotaDocumentError("a quotas document is a table")
    unknown = set(doc) - {"quotas", "processes", "profile"}
    if unknown:
        raise QuotaDocumentError(f"unknown entries: {', '.join(sorted(unknown))}")
    count = doc.get("processes", 1) if processes is None else processes
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1024:
        raise QuotaDocumentError("processes must be an integer from 1 to 1024")
    base = aws_default(count) if doc.get("profile") == "aws-default" else QuotaTable(processes=count)
    if doc.get("profile") not in (None, "aws-default"):
        raise QuotaDocumentError("the only profile is aws-default")
    quotas = doc.get("quotas", {})
    if not isinstance(quotas, dict):
        raise QuotaDocumentError("[quotas] is a table of group or operation names")
    rates = dict(base.rates)
    by_region = {k: dict(v) for k, v in base.by_region.items()}
    for name, value in quotas.items():
        if name not in GROUP_NAMES and not name.startswith("GenerateDataKeyPair:"):
            raise QuotaDocumentError(f"unknown quota group or operation {name!r}")
        rates[name] = _number(name, value)
        by_region.pop(name, None)
    return QuotaTable(rates, by_region, count)
