"""AWS's wording of request errors: SerializationException texts for JSON of the wrong kind and the
``N validation error(s) detected: Value … at '<path>' failed to satisfy constraint: Member must …``
items of ValidationException."""

from __future__ import annotations

from typing import Any

from openkms.errors import SerializationException

CONSTRAINT_SEP = " failed to satisfy constraint: "


def _token(value: Any) -> str:
    if value is None:
        return "NULL_VALUE"
    if value is True or value is False:
        return "BOOLEAN_VALUE"
    if isinstance(value, int | float):
        return "NUMBER_VALUE"
    return "STRING_VALUE"


def wrong_kind(value: Any, target: str) -> SerializationException:
    """The SerializationException for a JSON value of the wrong kind where ``target`` was expected."""
    if isinstance(value, dict):
        return SerializationException("Start of structure or map found where not expected.")
    if isinstance(value, list):
        return SerializationException("Start of list found where not expected")
    article = "an" if target[0] in "AEIOU" else "a"
    return SerializationException(f"{_token(value)} can not be converted to {article} {target}")


def java_text(value: Any) -> str:
    """Java ``toString``-style rendering used when AWS echoes a list or map value."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(java_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={java_text(v)}" for k, v in value.items()) + "}"
    return repr(value) if isinstance(value, float) else str(value)


def constraint_failure(path: str, shown: str | None, constraint: str) -> str:
    """One ``Value … at '<path>' failed to satisfy constraint: Member must <constraint>`` item."""
    if shown is None:
        return f"Value at '{path}'{CONSTRAINT_SEP}Member must {constraint}"
    return f"Value '{shown}' at '{path}'{CONSTRAINT_SEP}Member must {constraint}"


def not_null_failure(path: str) -> str:
    """The item for a missing required member (``null`` unquoted)."""
    return f"Value null at '{path}'{CONSTRAINT_SEP}Member must not be null"


def validation_message(errors: list[str]) -> str:
    """``N validation error(s) detected: e1; e2`` exactly as AWS words it."""
    n = len(errors)
    return f"{n} validation error{'' if n == 1 else 's'} detected: " + "; ".join(errors)


def map_constraints(errors: list[str]) -> str:
    """``[Member must …, …]``: the constraints named by failure items, for AWS's map-key/value message."""
    texts = dict.fromkeys(e.split(CONSTRAINT_SEP, 1)[1] for e in errors)
    return "[" + ", ".join(texts) + "]"
