"""Condition operators: parsing a Condition block once, evaluating it per request.

AWS semantics implemented here (IAM User Guide, "Condition operators", "Conditions with multiple
context keys or values", "Creating a condition with set operators"):

* operators in a block, and keys under one operator, are ANDed; the values listed for one key are
  ORed, and for a negated operator (``StringNotEquals``, ``NotIpAddress``, ...) NORed - a negated
  operator is the negation of its positive form;
* a key absent from the request makes a positive operator false and a negated operator true;
  ``...IfExists`` makes any operator true when the key is absent; ``Null`` tests absence itself;
* ``ForAnyValue:`` is true when some request value satisfies the operator (false for a missing or
  empty key); ``ForAllValues:`` when every request value does (true for a missing or empty key);
  without a set qualifier a multi-valued key behaves like ``ForAnyValue`` for positive operators;
* condition key names are case-insensitive; values are case-sensitive except for the
  ``...IgnoreCase`` operators and ``Bool``;
* policy variables are substituted in String, Arn and Bool values (Version 2012-10-17 only).
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from openkms.auth.policy.context import EvalContext, to_text
from openkms.auth.policy.variables import Pattern, Template, make_pattern, parse_template

ANY_VALUE: Final = "ForAnyValue"
ALL_VALUES: Final = "ForAllValues"

# Operator base names (lower-cased) -> (family, negated).
_OPERATORS: dict[str, tuple[str, bool]] = {
    "stringequals": ("StringEquals", False),
    "stringnotequals": ("StringEquals", True),
    "stringequalsignorecase": ("StringEqualsIgnoreCase", False),
    "stringnotequalsignorecase": ("StringEqualsIgnoreCase", True),
    "stringlike": ("StringLike", False),
    "stringnotlike": ("StringLike", True),
    "numericequals": ("NumericEquals", False),
    "numericnotequals": ("NumericEquals", True),
    "numericlessthan": ("NumericLessThan", False),
    "numericlessthanequals": ("NumericLessThanEquals", False),
    "numericgreaterthan": ("NumericGreaterThan", False),
    "numericgreaterthanequals": ("NumericGreaterThanEquals", False),
    "dateequals": ("DateEquals", False),
    "datenotequals": ("DateEquals", True),
    "datelessthan": ("DateLessThan", False),
    "datelessthanequals": ("DateLessThanEquals", False),
    "dategreaterthan": ("DateGreaterThan", False),
    "dategreaterthanequals": ("DateGreaterThanEquals", False),
    "bool": ("Bool", False),
    "binaryequals": ("BinaryEquals", False),
    "ipaddress": ("IpAddress", False),
    "notipaddress": ("IpAddress", True),
    "arnequals": ("ArnLike", False),
    "arnlike": ("ArnLike", False),
    "arnnotequals": ("ArnLike", True),
    "arnnotlike": ("ArnLike", True),
    "null": ("Null", False),
}

PolicyScalar = str | bool | int | float


@dataclass(frozen=True, slots=True)
class Operator:
    """A parsed operator name such as ``ForAllValues:StringNotLikeIfExists``."""

    family: str
    negated: bool
    if_exists: bool
    qualifier: str | None  # ANY_VALUE, ALL_VALUES or None


def parse_operator(name: str) -> Operator | None:
    """The operator for ``name`` (case-insensitive), or None when AWS has no such operator."""
    qualifier: str | None = None
    lowered = name.lower()
    if lowered.startswith("foranyvalue:"):
        qualifier, lowered = ANY_VALUE, lowered[len("foranyvalue:") :]
    elif lowered.startswith("forallvalues:"):
        qualifier, lowered = ALL_VALUES, lowered[len("forallvalues:") :]
    if_exists = lowered.endswith("ifexists")
    if if_exists:
        lowered = lowered[: -len("ifexists")]
    entry = _OPERATORS.get(lowered)
    if entry is None:
        return None
    family, negated = entry
    if family == "Null" and (if_exists or qualifier is not None):
        return None
    return Operator(family, negated, if_exists, qualifier)


# --------------------------------------------------------------------------- value conversions


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
    except (ValueError, OverflowError):  # an integer too large for a double (stored documents)
        return None
    return None


_EPOCH = re.compile(r"-?\d+(\.\d+)?\Z")
_YEAR_MONTH = re.compile(r"(\d{4})-(\d{2})\Z")


def parse_date(value: object) -> datetime | None:
    """A policy or request date: W3C ISO 8601 (``2020-01``, ``2020-01-01``, ``...T00:00:00Z``) or epoch
    seconds. A string of digits is epoch seconds (so the W3C year-only form is not supported)."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if _EPOCH.match(text):
            return _from_epoch(float(text))
        if m := _YEAR_MONTH.match(text):
            return datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _from_epoch(seconds: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None


def _address(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(value, str):
        return None
    return _parse_address(value)


@functools.lru_cache(maxsize=4096)  # pure memo of a pure function
def _parse_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parsed once per distinct address (aws:SourceIp repeats across a client's requests)."""
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _binary(value: object) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def policy_text(value: PolicyScalar) -> str:
    """A policy condition value as the text AWS compares (JSON true -> ``"true"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- matchers

# A matcher answers "does this one request value satisfy the positive operator against any policy
# value?"; it may raise Unresolved (policy variable without a value).
Matcher = Callable[[object, EvalContext], bool]


def _string_equals(templates: Sequence[Template], fold: bool) -> Matcher:
    static = [t.static for t in templates]
    if all(s is not None for s in static):
        choices = frozenset((s or "").lower() if fold else (s or "") for s in static)
        if fold:
            return lambda value, ctx: to_text(value).lower() in choices
        return lambda value, ctx: to_text(value) in choices

    def match(value: object, ctx: EvalContext) -> bool:
        text = to_text(value)
        if fold:
            text = text.lower()
            return any(t.render(ctx).lower() == text for t in templates)
        return any(t.render(ctx) == text for t in templates)

    return match


def _like(patterns: Sequence[Pattern]) -> Matcher:
    return lambda value, ctx: any(p.matches(to_text(value), ctx) for p in patterns)


def _numeric(family: str, values: Sequence[PolicyScalar]) -> Matcher:
    numbers = [n for n in (_number(v) for v in values) if n is not None]
    compare = _COMPARISONS[family.removeprefix("Numeric")]

    def match(value: object, ctx: EvalContext) -> bool:
        number = _number(value)
        return number is not None and any(compare(number, n) for n in numbers)

    return match


def _date(family: str, values: Sequence[PolicyScalar]) -> Matcher:
    dates = [d for d in (parse_date(v) for v in values) if d is not None]
    compare = _COMPARISONS[family.removeprefix("Date")]

    def match(value: object, ctx: EvalContext) -> bool:
        date = parse_date(value)
        return date is not None and any(compare(date, d) for d in dates)

    return match


def _bool(templates: Sequence[Template]) -> Matcher:
    return _string_equals(templates, True)


def _binary_equals(values: Sequence[PolicyScalar]) -> Matcher:
    blobs = frozenset(b for b in (_binary(policy_text(v)) for v in values) if b is not None)
    return lambda value, ctx: _binary(value) in blobs


def _ip(values: Sequence[PolicyScalar]) -> Matcher:
    networks = [n for n in (_network(policy_text(v)) for v in values) if n is not None]

    def match(value: object, ctx: EvalContext) -> bool:
        address = _address(value)
        return address is not None and any(
            address.version == net.version and address in net for net in networks
        )

    return match


_COMPARISONS: dict[str, Callable[[object, object], bool]] = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,  # type: ignore[operator]
    "LessThanEquals": lambda a, b: a <= b,  # type: ignore[operator]
    "GreaterThan": lambda a, b: a > b,  # type: ignore[operator]
    "GreaterThanEquals": lambda a, b: a >= b,  # type: ignore[operator]
}


def make_matcher(family: str, values: Sequence[PolicyScalar], *, variables: bool) -> Matcher:
    """Build the positive matcher of ``family`` for the policy ``values`` of one condition key."""
    if family in ("StringEquals", "StringEqualsIgnoreCase"):
        templates = [parse_template(policy_text(v), variables=variables) for v in values]
        return _string_equals(templates, family == "StringEqualsIgnoreCase")
    if family == "StringLike":
        return _like(
            [make_pattern(parse_template(policy_text(v), variables=variables), arn=False) for v in values]
        )
    if family == "ArnLike":
        return _like(
            [make_pattern(parse_template(policy_text(v), variables=variables), arn=True) for v in values]
        )
    if family.startswith("Numeric"):
        return _numeric(family, values)
    if family.startswith("Date"):
        return _date(family, values)
    if family == "Bool":
        return _bool([parse_template(policy_text(v), variables=variables) for v in values])
    if family == "BinaryEquals":
        return _binary_equals(values)
    if family == "IpAddress":
        return _ip(values)
    raise ValueError(family)  # pragma: no cover - parse_operator admits only the families above


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class Condition:
    """One (operator, condition key) pair of a Condition block."""

    operator: Operator
    key: str  # lower-cased
    spelled: str  # as written in the policy (fast exact-case lookup)
    matcher: Matcher | None  # None for Null
    null_values: frozenset[bool]  # Null: the policy's true/false values

    def evaluate(self, ctx: EvalContext) -> bool:
        """Whether the request satisfies this condition; may raise ``Unresolved``."""
        op = self.operator
        values = ctx.values(self.key, self.spelled)
        if self.matcher is None:  # Null: true means "the key is absent"
            return (not values) in self.null_values
        if not values:
            if op.if_exists or op.qualifier == ALL_VALUES:
                return True
            if op.qualifier == ANY_VALUE:
                return False
            return op.negated
        matcher = self.matcher
        if op.qualifier == ALL_VALUES:
            return all(matcher(v, ctx) != op.negated for v in values)
        if op.qualifier == ANY_VALUE:
            return any(matcher(v, ctx) != op.negated for v in values)
        return any(matcher(v, ctx) for v in values) != op.negated


def make_condition(
    operator: Operator, key: str, values: Sequence[PolicyScalar], *, variables: bool
) -> Condition:
    if operator.family == "Null":
        nulls = frozenset(
            policy_text(v).lower() == "true" for v in values if policy_text(v).lower() in ("true", "false")
        )
        return Condition(operator, key.lower(), key, None, nulls)
    return Condition(
        operator, key.lower(), key, make_matcher(operator.family, values, variables=variables), frozenset()
    )
