"""The request side of an evaluation: who calls (:class:`Caller`), what they ask (:class:`Request`).

:class:`EvalContext` wraps one (caller, request) pair for the duration of one authorization and
answers condition-key lookups: the request's keys (names case-insensitive, as in AWS) and the
principal-derived global keys (``aws:PrincipalArn``, ``aws:PrincipalAccount``, ``aws:PrincipalTag/*``,
``aws:username``, ``aws:userid``, ``aws:PrincipalType``), which the engine derives from the caller
and which override anything the request context says about them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from openkms.auth.policy.glob import Budget
from openkms.domain.conditions import AMBIGUOUS as AMBIGUOUS
from openkms.domain.conditions import _Ambiguous
from openkms.domain.model import Principal

ConditionValue = str | bool | int | float | datetime | Sequence[str] | _Ambiguous

#: ``Caller.principal_type`` values.
IAM_USER = "IAMUser"
ASSUMED_ROLE = "AssumedRole"
ROOT = "Root"
AWS_SERVICE = "AWSService"

# aws:PrincipalType as AWS spells it for each kind of caller (IAM User Guide, "Principal key values").
_AWS_PRINCIPAL_TYPE = {IAM_USER: "User", ASSUMED_ROLE: "AssumedRole", ROOT: "Account"}


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal of a request.

    ``arn`` is ``arn:aws:iam::A:user/U``, ``arn:aws:sts::A:assumed-role/R/S`` or
    ``arn:aws:iam::A:root``; for ``AWSService`` callers it is the service principal name
    (``logs.amazonaws.com``), which key policies name with ``{"Service": ...}``.
    """

    arn: str
    account_id: str
    principal_type: str
    user_id: str
    user_name: str | None = None
    role_arn: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, principal: Principal) -> Caller:
        """The caller a service principal (``domain.model.Principal``) is to the policy engine."""
        return cls(
            arn=principal.arn,
            account_id=principal.account_id,
            principal_type=principal.identity_type,
            user_id=principal.principal_id,
            user_name=principal.user_name,
            role_arn=principal.role_arn,
            tags=dict(principal.tags),
        )


@dataclass(frozen=True, slots=True)
class Request:
    """One authorization question: may the caller perform ``action`` on ``resource``?"""

    action: str
    resource: str
    resource_account: str | None
    context: Mapping[str, ConditionValue] = field(default_factory=dict)


class Unresolved(Exception):
    """A policy variable named a key that has no single value in this request (statement is void)."""


class Ambiguous(Exception):
    """A condition (or policy variable) named a key whose value is :data:`AMBIGUOUS`."""


def _folded(context: Mapping[str, ConditionValue]) -> dict[str, ConditionValue]:
    """The request's keys by lower-cased name; a name given in two spellings is :data:`AMBIGUOUS`
    (never "the last one wins": the answer may not depend on the order of the request's pairs)."""
    table: dict[str, ConditionValue] = {}
    for name, value in context.items():
        folded = name.lower()
        table[folded] = AMBIGUOUS if folded in table else value
    return table


def as_values(value: object) -> tuple[object, ...]:
    """A request value as a tuple of values; an empty tuple means "no value" (a missing key)."""
    if value is None:
        return ()
    if isinstance(value, str | bool | int | float | datetime | bytes):
        return (value,)
    if isinstance(value, Sequence | frozenset | set):
        return tuple(value)
    return (value,)


def to_text(value: object) -> str:
    """The string form AWS compares for a single request value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def format_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def principal_value(caller: Caller, key: str) -> ConditionValue | None:
    """The value of a principal-derived global condition key (``key`` lower-cased), None if absent."""
    service = caller.principal_type == AWS_SERVICE
    if key == "aws:principalarn":
        return None if service else caller.role_arn or caller.arn
    if key == "aws:principalaccount":
        return None if service else caller.account_id
    if key == "aws:userid":
        return None if service else caller.user_id
    if key == "aws:username":
        return caller.user_name
    if key == "aws:principaltype":
        return _AWS_PRINCIPAL_TYPE.get(caller.principal_type)
    if key == "aws:principalisawsservice":
        return service
    if key == "aws:principalservicename":
        return caller.arn if service else None
    if key.startswith("aws:principaltag/"):
        tag = key[len("aws:principaltag/") :]
        for tag_key, tag_value in caller.tags.items():
            if tag_key.lower() == tag:
                return tag_value
    return None


def _is_principal_key(key: str) -> bool:
    return key.startswith("aws:principal") or key in ("aws:username", "aws:userid")


class EvalContext:
    """One (caller, request) pair being authorized.

    Condition-key lookups are cheap on the common path: a principal-derived key is computed from the
    caller; any other key is first looked up with the spelling the policy used
    and only on a miss in a lower-cased copy of the request context (built once, on first miss).
    """

    __slots__ = ("_request", "action", "budget", "caller", "request", "resource", "role_arn")

    def __init__(self, caller: Caller, request: Request) -> None:
        self.caller = caller
        self.request = request
        self.action = request.action.lower()
        self.resource = request.resource
        self.role_arn = caller.role_arn
        self._request: dict[str, ConditionValue] | None = None
        self.budget = Budget()  # wildcard-matching work this evaluation may still do

    def get(self, key: str, spelled: str | None = None) -> ConditionValue | None:
        """The request's value for the lower-cased condition ``key`` (``spelled`` as in the policy)."""
        if _is_principal_key(key):
            return principal_value(self.caller, key)
        context = self.request.context
        if spelled is not None:
            value = context.get(spelled)
            if value is not None:
                if value is AMBIGUOUS:
                    raise Ambiguous(key)
                return value
        table = self._request
        if table is None:
            table = self._request = _folded(context)
        value = table.get(key)
        if value is AMBIGUOUS:
            raise Ambiguous(key)
        return value

    def values(self, key: str, spelled: str | None = None) -> tuple[object, ...]:
        """The request's values for a condition key; ``()`` when absent or empty."""
        return as_values(self.get(key, spelled))

    def variable(self, key: str, default: str | None) -> str:
        """The value of policy variable ``${key}``; raises :class:`Unresolved` when it has none."""
        value = self.get(key)
        if value is not None:
            values = as_values(value)
            if len(values) == 1:
                return to_text(values[0])
        if default is not None:
            return default
        raise Unresolved(key)
