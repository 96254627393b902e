"""Request decoding and validation against the operation's input shape.

Turns a request body into typed snake_case parameters and checks every constraint of the model
(required, length, value range, pattern, enum) with AWS's ``ValidationException`` wording. Wrong JSON
kinds, bad base64 and oversized/over-deep bodies fail with ``SerializationException``.

Performance: one converter closure per shape is compiled on first use (per operation, lazily) and
cached; decoding a request only runs those closures, never a reflective walk over the model. Message
texts live in :mod:`openkms.wire.messages`.
"""

from __future__ import annotations

import binascii
import math
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from openkms.errors import SerializationException, ValidationException
from openkms.wire import model
from openkms.wire.messages import (
    CONSTRAINT_SEP,
    constraint_failure,
    java_text,
    map_constraints,
    not_null_failure,
    validation_message,
    wrong_kind,
)
from openkms.wire.naming import lower_first, to_snake

#: Deepest JSON nesting accepted in a request body (the top-level object is depth 1).
MAX_DEPTH = 32
#: Most JSON values (object members and array items, at any depth) accepted in a request body.
MAX_ELEMENTS = 10_000

Errors = list[str]
#: A compiled converter: (JSON value, member path for messages, error sink) -> converted value.
#: Validation failures are appended to the sink; wrong JSON kinds raise SerializationException.
Converter = Callable[[Any, str, Errors], Any]

_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_TYPE_NAMES = {"integer": "Integer", "long": "Long"}
# Bodies this small with this few brackets cannot exceed MAX_DEPTH/MAX_ELEMENTS: skip the walk.
_SMALL_BODY = 2 * MAX_ELEMENTS


def _length_checks(lo: int | None, hi: int | None) -> tuple[int | None, int | None]:
    """Drop bounds that can never fail (min 0)."""
    return (lo if lo else None), hi


# --- leaf converters --------------------------------------------------------------------------------


# Where this service accepts more than the model's pattern (a documented deviation; the message of a
# value refused still quotes AWS's pattern): an XKS proxy endpoint may name a port (``:<port>``) and
# so run anywhere, not only on 443.
PATTERN_DEVIATIONS: dict[str, str] = {
    "XksProxyUriEndpointType": r"^https://[a-zA-Z0-9.-]+(:[0-9]{1,5})?$",
}


def _coerce_string(value: Any) -> str:
    """Scalars where a string is expected are read as their JSON text, as AWS does."""
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return repr(value)
    raise wrong_kind(value, "String")


def _plain_string(value: Any, path: str, errors: Errors) -> Any:
    return value if type(value) is str else _coerce_string(value)


def _compile_string(shape: Any) -> Converter:
    meta = shape.metadata
    lo, hi = _length_checks(meta.get("min"), meta.get("max"))
    pattern: str | None = meta.get("pattern")
    accepted = PATTERN_DEVIATIONS.get(shape.name, pattern)
    regex = re.compile(accepted, re.ASCII) if accepted is not None else None
    enum_values: list[str] = list(shape.enum or [])
    allowed = frozenset(enum_values) if enum_values else None
    sensitive = bool(meta.get("sensitive"))
    if lo is None and hi is None and regex is None and allowed is None:
        return _plain_string
    pattern_text = f"satisfy regular expression pattern: {pattern}"
    enum_text = "satisfy enum value set: [" + ", ".join(enum_values) + "]"

    def conv(value: Any, path: str, errors: Errors) -> Any:
        if type(value) is not str:
            value = _coerce_string(value)
        if allowed is not None and value not in allowed:
            errors.append(constraint_failure(path, None if sensitive else value, enum_text))
        if regex is not None and regex.fullmatch(value) is None:
            errors.append(constraint_failure(path, None if sensitive else value, pattern_text))
        if lo is not None and len(value) < lo:
            errors.append(
                constraint_failure(
                    path, None if sensitive else value, f"have length greater than or equal to {lo}"
                )
            )
        if hi is not None and len(value) > hi:
            errors.append(
                constraint_failure(
                    path, None if sensitive else value, f"have length less than or equal to {hi}"
                )
            )
        return value

    return conv


def _compile_blob(shape: Any) -> Converter:
    lo, hi = _length_checks(shape.metadata.get("min"), shape.metadata.get("max"))
    decode = binascii.a2b_base64

    def conv(value: Any, path: str, errors: Errors) -> Any:
        if type(value) is not str:
            raise wrong_kind(value, "Blob")
        try:
            data = decode(value, strict_mode=True)
        except (binascii.Error, ValueError):
            raise SerializationException(f"Value at '{path}' is not valid base64-encoded data") from None
        # Blob values are never echoed (they are plaintexts, ciphertexts, keys, signatures …).
        if lo is not None and len(data) < lo:
            errors.append(constraint_failure(path, None, f"have length greater than or equal to {lo}"))
        if hi is not None and len(data) > hi:
            errors.append(constraint_failure(path, None, f"have length less than or equal to {hi}"))
        return data

    return conv


def _compile_integer(shape: Any) -> Converter:
    lo: int | None = shape.metadata.get("min")
    hi: int | None = shape.metadata.get("max")
    floor, ceiling = _INT_RANGES[shape.type_name]
    type_name = _TYPE_NAMES[shape.type_name]
    sensitive = bool(shape.metadata.get("sensitive"))

    def conv(value: Any, path: str, errors: Errors) -> Any:
        if type(value) is not int:
            if type(value) is float and value.is_integer():
                value = int(value)
            else:
                raise wrong_kind(value, type_name)
        if value < floor or value > ceiling:
            raise SerializationException(f"NUMBER_VALUE can not be converted to an {type_name}")
        if lo is not None and value < lo:
            errors.append(
                constraint_failure(
                    path, None if sensitive else str(value), f"have value greater than or equal to {lo}"
                )
            )
        if hi is not None and value > hi:
            errors.append(
                constraint_failure(
                    path, None if sensitive else str(value), f"have value less than or equal to {hi}"
                )
            )
        return value

    return conv


def _boolean(value: Any, path: str, errors: Errors) -> Any:
    if value is True or value is False:
        return value
    raise wrong_kind(value, "Boolean")


def parse_timestamp(text: str) -> float:
    """Epoch seconds from a numeric string or an ISO-8601 date-time (no zone = UTC)."""
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
        raise ValueError(text)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _timestamp(value: Any, path: str, errors: Errors) -> Any:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    if kind is str:
        try:
            return parse_timestamp(value)
        except (ValueError, OverflowError):
            raise SerializationException(f"Value at '{path}' is not a valid timestamp") from None
    raise wrong_kind(value, "Timestamp")


# --- containers ------------------------------------------------------------------------------------


def _compile_list(shape: Any) -> Converter:
    element = _shape_converter(shape.member)
    lo, hi = _length_checks(shape.metadata.get("min"), shape.metadata.get("max"))
    sensitive = bool(shape.metadata.get("sensitive"))

    def conv(value: Any, path: str, errors: Errors) -> Any:
        if type(value) is not list:
            raise wrong_kind(value, "List")
        mark = len(errors)
        out = [
            element(item, f"{path}.{i}.member", errors) for i, item in enumerate(value, 1) if item is not None
        ]
        if lo is not None or hi is not None:
            shown = None if sensitive else java_text(value)
            own: Errors = []
            if lo is not None and len(out) < lo:
                own.append(constraint_failure(path, shown, f"have length greater than or equal to {lo}"))
            if hi is not None and len(out) > hi:
                own.append(constraint_failure(path, shown, f"have length less than or equal to {hi}"))
            errors[mark:mark] = own  # the list's own constraints before its elements'
        return out

    return conv


def _compile_map(shape: Any) -> Converter:
    key_conv = _shape_converter(shape.key)
    value_conv = _shape_converter(shape.value)
    lo, hi = _length_checks(shape.metadata.get("min"), shape.metadata.get("max"))
    sensitive = bool(shape.metadata.get("sensitive") or shape.value.metadata.get("sensitive"))
    strings_only = key_conv is _plain_string and value_conv is _plain_string

    def conv(value: Any, path: str, errors: Errors) -> Any:
        if type(value) is not dict:
            raise wrong_kind(value, "Map")
        if strings_only:
            for item in value.values():
                if type(item) is not str:
                    break
            else:
                return dict(value)
        out: dict[str, Any] = {}
        key_errors: Errors = []
        value_errors: Errors = []
        for key, item in value.items():
            if item is None:
                continue
            out[key_conv(key, path, key_errors)] = value_conv(item, path, value_errors)
        shown = None if sensitive else java_text(value)
        if lo is not None and len(out) < lo:
            errors.append(constraint_failure(path, shown, f"have length greater than or equal to {lo}"))
        if hi is not None and len(out) > hi:
            errors.append(constraint_failure(path, shown, f"have length less than or equal to {hi}"))
        prefix = f"Value at '{path}'" if shown is None else f"Value '{shown}' at '{path}'"
        if key_errors:
            errors.append(
                f"{prefix}{CONSTRAINT_SEP}Map keys must satisfy constraint: {map_constraints(key_errors)}"
            )
        if value_errors:
            errors.append(
                f"{prefix}{CONSTRAINT_SEP}Map value must satisfy constraint: {map_constraints(value_errors)}"
            )
        return out

    return conv


def _compile_structure(shape: Any) -> Converter:
    required = set(shape.required_members)
    members: list[tuple[str, str, str, Converter, bool]] = []

    def conv(value: Any, path: str, errors: Errors) -> Any:
        if type(value) is not dict:
            raise wrong_kind(value, "Structure")
        prefix = path + "." if path else ""
        out: dict[str, Any] = {}
        for wire, snake, camel, member, is_required in members:
            item = value.get(wire)
            if item is None:
                if is_required:
                    errors.append(not_null_failure(prefix + camel))
                continue
            out[snake] = member(item, prefix + camel, errors)
        return out

    # Registered before the members are compiled so that a recursive shape refers to itself.
    _compiled[shape.name] = conv
    for wire, member_shape in shape.members.items():
        members.append(
            (wire, to_snake(wire), lower_first(wire), _shape_converter(member_shape), wire in required)
        )
    if len({m[1] for m in members}) != len(members):
        raise RuntimeError(f"snake_case member names collide in shape {shape.name}")
    return conv


# Pure memos (this table and _operations): converters compiled from the botocore model shipped with
# the package, the same for every runtime and never invalidated.
_compiled: dict[str, Converter] = {}
_SCALARS: dict[str, Converter] = {"boolean": _boolean, "timestamp": _timestamp}
_COMPILERS: dict[str, Callable[[Any], Converter]] = {
    "string": _compile_string,
    "blob": _compile_blob,
    "integer": _compile_integer,
    "long": _compile_integer,
    "list": _compile_list,
    "map": _compile_map,
    "structure": _compile_structure,
}


def _shape_converter(shape: Any) -> Converter:
    """The cached converter/validator of a botocore shape (compiled on first use, under _lock)."""
    found = _compiled.get(shape.name)
    if found is not None:
        return found
    scalar = _SCALARS.get(shape.type_name)
    conv = scalar if scalar is not None else _COMPILERS[shape.type_name](shape)
    _compiled[shape.name] = conv
    return conv


def _no_input(value: Any, path: str, errors: Errors) -> Any:
    return {}


_operations: dict[str, Converter] = {}
# Compilation happens under this lock and an operation's converter is published only once complete,
# so a concurrent first request never sees a half-built structure converter.
_lock = threading.Lock()


def operation_converter(operation: str) -> Converter:
    """The converter of an operation's input (UnknownOperationException for an unknown name)."""
    conv = _operations.get(operation)
    if conv is None:
        shape = model.input_shape(operation)
        with _lock:
            conv = _operations.get(operation)
            if conv is None:
                conv = _no_input if shape is None else _shape_converter(shape)
                _operations[operation] = conv
    return conv


# --- body -------------------------------------------------------------------------------------------


def _check_bounds(document: dict[str, Any]) -> None:
    count = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SerializationException(f"Request body is nested more than {MAX_DEPTH} levels deep")
        for child in node.values() if type(node) is dict else node:
            count += 1
            if count > MAX_ELEMENTS:
                raise SerializationException(f"Request body has more than {MAX_ELEMENTS} elements")
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))


def parse_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object (empty body = ``{}``), within MAX_DEPTH/MAX_ELEMENTS."""
    if not body or body.isspace():
        return {}
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SerializationException("Unable to parse request body as JSON") from None
    if type(document) is not dict:
        raise wrong_kind(document, "Structure")
    if len(body) > _SMALL_BODY or body.count(b"{") + body.count(b"[") > MAX_DEPTH:
        _check_bounds(document)
    return document


def decode(operation: str, body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, raw)``: typed snake_case parameters and the parsed body, or the AWS error."""
    conv = operation_converter(operation)
    raw = parse_body(body)
    errors: Errors = []
    params: dict[str, Any] = conv(raw, "", errors)
    if errors:
        raise ValidationException(validation_message(errors))
    return params, raw
