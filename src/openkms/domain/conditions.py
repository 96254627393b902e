"""The condition keys a KMS request's parameters set (``kms:EncryptionAlgorithm``,
``kms:EncryptionContext:<key>``, ``aws:RequestTag/<key>``…), with AWS's defaults for omitted parameters.
Which parameter sets which key is written in each operation's record (``domain/operations.py``).

Pure: the request context computes them when it learns the request's parameters
(``RequestContext.set_request``), and authorization (``service/kms/authz.py``) reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openkms.domain.operations import OPERATIONS


class _Ambiguous:
    """The type of :data:`AMBIGUOUS`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "AMBIGUOUS"


#: The value of a condition key whose name the request gives more than once in spellings that differ
#: only in case (an encryption context ``{"A": "1", "a": "2"}``): which value ``kms:EncryptionContext:a``
#: means is ambiguous. A condition on such a key never lets an Allow statement apply and always lets
#: a Deny statement apply (see the policy engine), whatever the order of the pairs.
AMBIGUOUS = _Ambiguous()


def encryption_context_conditions(context: Mapping[str, str] | None) -> dict[str, Any]:
    """kms:EncryptionContext:<key> and kms:EncryptionContextKeys for a request's encryption context.
    Condition key names are matched without regard to case, so keys of the context that differ only
    in case (``{"A": "1", "a": "2"}``) make ``kms:EncryptionContext:a`` ambiguous: every spelling of
    it is AMBIGUOUS, which no Allow statement's condition accepts and every Deny statement's does,
    whatever the order of the pairs."""
    conditions: dict[str, Any] = {}
    first: dict[str, str] = {}
    for key, value in (context or {}).items():
        spelling = first.setdefault(key.lower(), key)
        if spelling != key:
            conditions[f"kms:EncryptionContext:{spelling}"] = AMBIGUOUS
            conditions[f"kms:EncryptionContext:{key}"] = AMBIGUOUS
        else:
            conditions[f"kms:EncryptionContext:{key}"] = value
    conditions["kms:EncryptionContextKeys"] = list(context or {})
    return conditions


def request_conditions(operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The condition keys a request's parameters set (defaults apply to omitted parameters, as in AWS):
    those its operation's record names (``conditions``, ``context_conditions``, ``tag_conditions`` in
    ``domain/operations.py``); none for an unknown operation."""
    conditions: dict[str, Any] = {}
    facts = OPERATIONS.get(operation)
    if facts is None:
        return conditions
    for name, key, default in facts.conditions:
        value = None if name is None else params.get(name)
        if value is None:
            value = default
        if value is not None:
            conditions[key] = value
    if facts.context_conditions is not None:
        # ReEncrypt's is the source's (kms:ReEncryptOnSameKey is set by ReEncrypt once it knows both keys).
        conditions.update(encryption_context_conditions(params.get(facts.context_conditions)))
    if facts.tag_conditions:
        tags = params.get("tags")
        if tags:
            for tag in tags:
                conditions[f"aws:RequestTag/{tag['tag_key']}"] = tag["tag_value"]
            conditions["aws:TagKeys"] = [tag["tag_key"] for tag in tags]
        if params.get("tag_keys"):
            conditions["aws:TagKeys"] = list(params["tag_keys"])
    return conditions
