"""The AWS Query protocol of the IAM and STS APIs: form-encoded requests in, XML responses out.

``decode_query`` reads an ``application/x-www-form-urlencoded`` body (``Action=…&Version=…&UserName=…``,
lists as ``Tags.member.1.Key``, maps as ``X.entry.1.key``) into typed snake_case parameters and checks
them against the operation's input shape in botocore's ``iam``/``sts`` model, failing with AWS's
``ValidationError`` wording. ``encode_result`` writes ``<XResponse><XResult>…</XResult>
<ResponseMetadata>…`` from a snake_case result (timestamps as epoch seconds or datetimes, rendered
ISO-8601; lists as ``<member>`` elements; IAM policy documents URL-encoded as IAM returns them);
``encode_error`` the ``<ErrorResponse>``. ``result_json`` gives the same result as the PascalCase JSON
the AWS CLI prints, and ``audit_request``/``audit_response`` the CloudTrail views (secret access keys and
session tokens are never part of them). ``validate_params`` applies ``decode_query``'s checks to
parameters given as a dict (``openkms admin``), so every path into the IAM operations is held to the
same rules.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import enum
import functools
import json
import re
import sys
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import escape

from openkms.errors import InvalidAction, MissingAction, ServiceError, ValidationError
from openkms.wire.audit import _Compiler
from openkms.wire.messages import constraint_failure, java_text, not_null_failure, validation_message
from openkms.wire.naming import lower_first, to_snake
from openkms.wire.validate import parse_timestamp

if TYPE_CHECKING:
    import botocore.model

SERVICES = ("iam", "sts")
NAMESPACES = {
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
}
#: Members never shown in audit records, whatever the model says of them.
SECRET_MEMBERS = frozenset({"SecretAccessKey", "SessionToken"})
_POLICY_DOCUMENT_SHAPE = "policyDocumentType"


@functools.cache  # pure memos (the models, their operations, the Unicode table, compiled patterns)
def service_model(service: str) -> botocore.model.ServiceModel:
    """botocore's model of ``iam`` or ``sts`` (loaded on first use)."""
    # Late: botocore.model imports botocore.auth and urllib3 (~0.1 s), for the first IAM/STS call or
    # ``openkms admin`` command, not at a server's start.
    import botocore.loaders
    import botocore.model

    loader = botocore.loaders.create_loader()
    return botocore.model.ServiceModel(loader.load_service_model(service, "service-2"), service_name=service)


@functools.cache
def operation_names(service: str) -> frozenset[str]:
    return frozenset(service_model(service).operation_names)


def api_version(service: str) -> str:
    return str(service_model(service).metadata["apiVersion"])


@dataclass(frozen=True, slots=True)
class QueryRequest:
    """A validated Query request: snake_case typed ``params`` and ``raw`` (PascalCase, nested)."""

    service: str
    operation: str
    params: dict[str, Any]
    raw: dict[str, Any]


# --- decoding ---------------------------------------------------------------------------------------


class _Form:
    """The flat form parameters, with prefix lookups: ``has("Tags.member.1")`` when a parameter is
    named so or starts with ``Tags.member.1.`` (a binary search in the sorted names: linear set-up
    whatever the names, however many dots they hold)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.values: dict[str, str] = {}
        for name, value in pairs:
            self.values[name] = value
        self._names = sorted(self.values)

    def has(self, name: str) -> bool:
        if name in self.values:
            return True
        prefix = name + "."
        i = bisect.bisect_left(self._names, prefix)
        return i < len(self._names) and self._names[i].startswith(prefix)


def parse_form(body: bytes) -> dict[str, str]:
    """The form's parameters (the last value of a repeated name wins). Bad UTF-8 is a ValidationError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("The request body is not valid UTF-8.") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def peek_action(body: bytes) -> str:
    """The Action parameter of a form body ("" if absent or unreadable): for audit records of bad requests."""
    try:
        return parse_form(body).get("Action", "")
    except ServiceError:
        return ""


def decode_query(service: str, body: bytes) -> QueryRequest:
    """Parse and validate a Query request body for ``service`` ("iam" or "sts")."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("The request body is not valid UTF-8.") from None
    form = _Form(parse_qsl(text, keep_blank_values=True))
    action = form.values.get("Action")
    if not action:
        raise MissingAction("Missing Action")
    version = form.values.get("Version") or api_version(service)
    if action not in operation_names(service) or version != api_version(service):
        raise InvalidAction(f"Could not find operation {action} for version {version}")
    return _decode(service, action, form)


def validate_params(service: str, operation: str, params: Mapping[str, Any]) -> QueryRequest:
    """Check an operation's snake_case parameters (``None`` meaning absent) exactly as
    :func:`decode_query` checks a request carrying them: the same typing, constraints and
    ``ValidationError`` messages, for callers that do not come over HTTP (``openkms admin``).

    The parameters are written as the form a Query client would send (lists as
    ``Tags.member.1.Key``, booleans as ``true``/``false``) and read back by the decoder. A name that is
    not a member of the operation's input is a programming error (``TypeError``).
    """
    if operation not in operation_names(service):
        raise InvalidAction(f"Could not find operation {operation} for version {api_version(service)}")
    shape = service_model(service).operation_model(operation).input_shape
    members = {to_snake(member): member for member in shape.members} if shape is not None else {}
    unknown = sorted(set(params) - set(members))
    if unknown:
        raise TypeError(f"{operation} has no parameter {', '.join(unknown)}")
    pairs: list[tuple[str, str]] = []
    if shape is not None:
        _write_structure(shape, "", params, pairs)
    return _decode(service, operation, _Form(pairs))


def _decode(service: str, operation: str, form: _Form) -> QueryRequest:
    shape = service_model(service).operation_model(operation).input_shape
    if shape is None:
        return QueryRequest(service, operation, {}, {})
    errors: list[str] = []
    params, raw = _read_structure(shape, "", form, "", errors)
    if errors:
        raise ValidationError(validation_message(errors))
    return QueryRequest(service, operation, params, raw)


def _name(shape: Any, default: str) -> str:
    return str(shape.serialization.get("name", default))


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _read_structure(shape: Any, prefix: str, form: _Form, path: str, errors: list[str]) -> tuple[Any, Any]:
    params: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    required = set(shape.required_members)
    for member, member_shape in shape.members.items():
        key = _join(prefix, _name(member_shape, member))
        member_path = _join(path, lower_first(member))
        if not form.has(key):
            if member in required:
                errors.append(not_null_failure(member_path))
            continue
        value, raw_value = _read(member_shape, key, form, member_path, errors)
        params[to_snake(member)] = value
        raw[member] = raw_value
    return params, raw


def _read(shape: Any, key: str, form: _Form, path: str, errors: list[str]) -> tuple[Any, Any]:
    kind = shape.type_name
    if kind == "structure":
        return _read_structure(shape, key, form, path, errors)
    if kind == "list":
        return _read_list(shape, key, form, path, errors)
    if kind == "map":
        return _read_map(shape, key, form, path, errors)
    text = form.values.get(key, "")
    value = _scalar(shape, text, path, errors)
    return value, value


def _read_list(shape: Any, key: str, form: _Form, path: str, errors: list[str]) -> tuple[Any, Any]:
    params: list[Any] = []
    raw: list[Any] = []
    flattened = bool(shape.serialization.get("flattened"))
    i = 1
    while True:
        item_key = f"{key}.{i}" if flattened else f"{key}.{_name(shape.member, 'member')}.{i}"
        if not form.has(item_key):
            break
        value, raw_value = _read(shape.member, item_key, form, f"{path}.{i}.member", errors)
        params.append(value)
        raw.append(raw_value)
        i += 1
    _check_length(shape, raw, path, errors, len(raw))
    return params, raw


def _read_map(shape: Any, key: str, form: _Form, path: str, errors: list[str]) -> tuple[Any, Any]:
    out: dict[str, Any] = {}
    key_name, value_name = _name(shape.key, "key"), _name(shape.value, "value")
    flattened = bool(shape.serialization.get("flattened"))
    i = 1
    while True:
        entry = f"{key}.{i}" if flattened else f"{key}.entry.{i}"
        if not form.has(entry):
            break
        k = form.values.get(f"{entry}.{key_name}", "")
        value, _ = _read(shape.value, f"{entry}.{value_name}", form, path, errors)
        out[k] = value
        i += 1
    _check_length(shape, out, path, errors, len(out))
    return out, dict(out)


def _check_length(shape: Any, value: Any, path: str, errors: list[str], n: int) -> None:
    lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
    shown = None if shape.metadata.get("sensitive") else java_text(value)
    if lo and n < lo:
        errors.append(constraint_failure(path, shown, f"have length greater than or equal to {lo}"))
    if hi is not None and n > hi:
        errors.append(constraint_failure(path, shown, f"have length less than or equal to {hi}"))


def _write_structure(shape: Any, prefix: str, value: Mapping[str, Any], out: list[tuple[str, str]]) -> None:
    for member, member_shape in shape.members.items():
        item = value.get(to_snake(member))
        if item is not None:
            _write(member_shape, _join(prefix, _name(member_shape, member)), item, out)


def _write(shape: Any, key: str, value: Any, out: list[tuple[str, str]]) -> None:
    """A typed value as the form parameters botocore's Query serializer sends for it."""
    kind = shape.type_name
    flattened = bool(shape.serialization.get("flattened"))
    if kind == "structure":
        _write_structure(shape, key, value, out)
    elif kind == "list":
        if not value:
            out.append((key, ""))
        for i, element in enumerate(value, 1):
            item_key = f"{key}.{i}" if flattened else f"{key}.{_name(shape.member, 'member')}.{i}"
            _write(shape.member, item_key, element, out)
    elif kind == "map":
        key_name, value_name = _name(shape.key, "key"), _name(shape.value, "value")
        for i, (k, v) in enumerate(value.items(), 1):
            entry = f"{key}.{i}" if flattened else f"{key}.entry.{i}"
            out.append((f"{entry}.{key_name}", str(k)))
            _write(shape.value, f"{entry}.{value_name}", v, out)
    elif kind == "timestamp":
        out.append((key, iso8601(value)))
    elif kind == "blob":
        out.append((key, base64.b64encode(value).decode()))
    else:
        out.append((key, _text(value)))


# Java's Unicode category classes (``\p{L}``, ``\p{Lu}``…), which the IAM and STS models use in the
# patterns of tag keys and values; Python's ``re`` has none.
_CATEGORY_CLASS = re.compile(r"\\p\{([A-Z][a-z]?)\}")


@functools.cache
def _categories() -> dict[str, list[tuple[int, int]]]:
    """The code points of each Unicode general category, as ranges (one pass over the code space)."""
    table: dict[str, list[tuple[int, int]]] = {}
    start, current = 0, unicodedata.category("\x00")
    for code in range(1, sys.maxunicode + 2):
        category = unicodedata.category(chr(code)) if code <= sys.maxunicode else ""
        if category != current:
            table.setdefault(current, []).append((start, code - 1))
            start, current = code, category
    return table


def _category_ranges(category: str) -> str:
    """A general category (``Lu``) or major class (``L``) as the ranges of a character class."""
    return "".join(
        f"\\U{first:08x}-\\U{last:08x}"
        for name, spans in _categories().items()
        if name.startswith(category)
        for first, last in spans
    )


@functools.lru_cache(maxsize=512)
def _pattern(pattern: str) -> re.Pattern[str] | None:
    # \p{X} inside a character class becomes the category's ranges (every such pattern of the models
    # is a character class).
    translated = _CATEGORY_CLASS.sub(lambda m: _category_ranges(m.group(1)), pattern)
    try:
        return re.compile(translated, re.ASCII)
    except re.error:  # a Java-only construct: not checked here
        return None


def _scalar(shape: Any, text: str, path: str, errors: list[str]) -> Any:
    kind = shape.type_name
    meta = shape.metadata
    sensitive = bool(meta.get("sensitive"))
    if kind == "string":
        shown = None if sensitive else text
        if shape.enum and text not in shape.enum:
            errors.append(
                constraint_failure(path, shown, "satisfy enum value set: [" + ", ".join(shape.enum) + "]")
            )
        pattern = meta.get("pattern")
        regex = _pattern(pattern) if pattern is not None else None
        if regex is not None and regex.fullmatch(text) is None:
            errors.append(constraint_failure(path, shown, f"satisfy regular expression pattern: {pattern}"))
        lo, hi = meta.get("min"), meta.get("max")
        if lo and len(text) < lo:
            errors.append(constraint_failure(path, shown, f"have length greater than or equal to {lo}"))
        if hi is not None and len(text) > hi:
            errors.append(constraint_failure(path, shown, f"have length less than or equal to {hi}"))
        return text
    if kind in ("integer", "long"):
        try:
            number = int(text)
        except ValueError:
            errors.append(
                f"Value '{text}' at '{path}' is not a valid {'Integer' if kind == 'integer' else 'Long'}"
            )
            return None
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and number < lo:
            errors.append(constraint_failure(path, str(number), f"have value greater than or equal to {lo}"))
        if hi is not None and number > hi:
            errors.append(constraint_failure(path, str(number), f"have value less than or equal to {hi}"))
        return number
    if kind == "boolean":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            errors.append(f"Value '{text}' at '{path}' is not a valid Boolean")
        return lowered == "true"
    if kind == "timestamp":
        try:
            return parse_timestamp(text)
        except (ValueError, OverflowError):
            errors.append(f"Value '{text}' at '{path}' is not a valid timestamp")
            return None
    if kind == "blob":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            errors.append(f"Value at '{path}' is not valid base64-encoded data")
            return None
    return text


# --- encoding ---------------------------------------------------------------------------------------


# Characters XML 1.0 cannot carry, even as character references: the C0 controls but tab, LF and CR,
# lone surrogates, U+FFFE and U+FFFF. Echoed input (an error message quoting a value) may hold them.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escape(text: str) -> str:
    """Text as XML character data: markup escaped, characters XML cannot carry as U+FFFD."""
    return escape(_NOT_XML.sub("\ufffd", text))


def iso8601(value: Any) -> str:
    """A timestamp (epoch seconds or datetime) as IAM/STS render it: ``2024-05-01T12:00:00Z``."""
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo is not None else value
    else:
        moment = datetime.fromtimestamp(float(value), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def _xml(shape: Any, value: Any, out: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a mapping for {shape.name}, got {type(value).__name__}")
        for member, member_shape in shape.members.items():
            item = value.get(to_snake(member))
            if item is None:
                continue
            name = _name(member_shape, member)
            if member_shape.type_name == "list" and member_shape.serialization.get("flattened"):
                for element in item:
                    out.append(f"<{name}>")
                    _xml(member_shape.member, element, out)
                    out.append(f"</{name}>")
                continue
            out.append(f"<{name}>")
            _xml(member_shape, item, out)
            out.append(f"</{name}>")
    elif kind == "list":
        element_name = _name(shape.member, "member")
        for element in value:
            out.append(f"<{element_name}>")
            _xml(shape.member, element, out)
            out.append(f"</{element_name}>")
    elif kind == "map":
        for k, v in value.items():
            out.append("<entry><key>" + _escape(_text(k)) + "</key><value>")
            _xml(shape.value, v, out)
            out.append("</value></entry>")
    elif kind == "timestamp":
        out.append(iso8601(value))
    elif kind == "blob":
        out.append(base64.b64encode(value).decode())
    elif shape.name == _POLICY_DOCUMENT_SHAPE:
        out.append(_escape(quote(_text(value), safe="")))
    else:
        out.append(_escape(_text(value)))


def encode_result(service: str, operation: str, result: Mapping[str, Any] | None, request_id: str) -> bytes:
    """The XML response of a successful call."""
    op = service_model(service).operation_model(operation)
    out = [f'<{operation}Response xmlns="{NAMESPACES[service]}">']
    shape = op.output_shape
    if shape is not None:
        wrapper = shape.serialization.get("resultWrapper", f"{operation}Result")
        out.append(f"<{wrapper}>")
        _xml(shape, result or {}, out)
        out.append(f"</{wrapper}>")
    out.append(f"<ResponseMetadata><RequestId>{_escape(request_id)}</RequestId></ResponseMetadata>")
    out.append(f"</{operation}Response>")
    return "".join(out).encode("utf-8")


def encode_error(service: str, code: str, message: str, request_id: str, *, sender: bool = True) -> bytes:
    return (
        f'<ErrorResponse xmlns="{NAMESPACES.get(service, NAMESPACES["iam"])}"><Error>'
        f"<Type>{'Sender' if sender else 'Receiver'}</Type><Code>{_escape(code)}</Code>"
        f"<Message>{_escape(message)}</Message></Error><RequestId>{_escape(request_id)}</RequestId>"
        "</ErrorResponse>"
    ).encode()


def _json(shape: Any, value: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        out: dict[str, Any] = {}
        for member, member_shape in shape.members.items():
            item = value.get(to_snake(member))
            if item is not None:
                out[member] = _json(member_shape, item)
        return out
    if kind == "list":
        return [_json(shape.member, item) for item in value]
    if kind == "map":
        return {k: _json(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return iso8601(value)
    if shape.name == _POLICY_DOCUMENT_SHAPE:
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, enum.Enum):
        return value.value
    return value


def result_json(service: str, operation: str, result: Mapping[str, Any] | None) -> dict[str, Any]:
    """The result as the AWS CLI prints it (PascalCase members, ISO-8601 times, documents as JSON)."""
    shape = service_model(service).operation_model(operation).output_shape
    if shape is None or not result:
        return {}
    converted: dict[str, Any] = _json(shape, result)
    return converted


# --- audit ------------------------------------------------------------------------------------------

# Pure memo: auditors compiled from the botocore models shipped with the package (as wire/audit.py).
_compilers: dict[tuple[str, bool], _Compiler] = {}
_lock = threading.Lock()


def _auditor(service: str, operation: str, *, request: bool) -> Any:
    if operation not in operation_names(service):
        return None
    op = service_model(service).operation_model(operation)
    shape = op.input_shape if request else op.output_shape
    if shape is None:
        return None
    with _lock:
        compiler = _compilers.get((service, request))
        if compiler is None:
            compiler = _compilers[(service, request)] = _Compiler(snake_keys=not request)
        return compiler.shape(shape)


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k[:1].upper() + k[1:] not in SECRET_MEMBERS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def audit_request(service: str, operation: str, raw: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """CloudTrail ``requestParameters`` (lower camelCase members, secrets dropped), or None."""
    auditor = _auditor(service, operation, request=True) if raw else None
    if auditor is None:
        return None
    logged = _strip(auditor(raw))
    return logged or None


def audit_response(service: str, operation: str, result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """CloudTrail ``responseElements`` of a snake_case result (secrets dropped), or None."""
    auditor = _auditor(service, operation, request=False) if result else None
    if auditor is None:
        return None
    logged = _strip(auditor(result))
    return logged or None
