"""The wire codec: AWS JSON 1.1 request bodies in, response bodies out.

``decode_request`` parses and validates a request against the operation's input shape (see
:mod:`openkms.wire.validate`); ``encode_response`` turns a snake_case result into the PascalCase JSON
body of the output shape; the audit helpers (see :mod:`openkms.wire.audit`) give the CloudTrail view.
Encoders, like the decoders, are compiled once per shape and cached.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from openkms.wire import model
from openkms.wire.audit import audit_request_parameters, audit_response_elements
from openkms.wire.naming import to_snake
from openkms.wire.validate import decode

__all__ = [
    "DecodedRequest",
    "audit_request_parameters",
    "audit_response_elements",
    "decode_request",
    "encode_response",
    "to_snake",
]


@dataclass(frozen=True, slots=True)
class DecodedRequest:
    """A validated request: typed snake_case ``params`` and the ``raw`` parsed JSON (PascalCase)."""

    operation: str
    params: dict[str, Any]
    raw: dict[str, Any]


def decode_request(operation: str, body: bytes) -> DecodedRequest:
    """Parse and validate ``body`` for ``operation``.

    Raises SerializationException (not JSON, not an object, wrong JSON kinds, bad base64, too deep or
    too large) or ValidationException (model constraints, AWS's exact message).
    """
    params, raw = decode(operation, body)
    return DecodedRequest(operation, params, raw)


# --- encoding ---------------------------------------------------------------------------------------

Encoder = Callable[[Any], Any]


def _enc_string(value: Any) -> Any:
    if type(value) is str:
        return value
    if isinstance(value, enum.Enum) and isinstance(value.value, str):
        return value.value
    if isinstance(value, str):
        return str.__str__(value)
    raise TypeError(f"expected a str or a str enum, got {type(value).__name__}")


def _enc_integer(value: Any) -> Any:
    if type(value) is int:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"expected an int, got {type(value).__name__}")


def _enc_boolean(value: Any) -> Any:
    if value is True or value is False:
        return value
    raise TypeError(f"expected a bool, got {type(value).__name__}")


def _enc_blob(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return binascii.b2a_base64(value, newline=False).decode("ascii")
    raise TypeError(f"expected bytes, got {type(value).__name__}")


def epoch_seconds(value: Any) -> float | int:
    """Epoch seconds of a timestamp given as int/float epoch seconds or an aware datetime."""
    kind = type(value)
    if kind is float or kind is int:
        seconds: float | int = value
        return seconds
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a result; use an aware (UTC) datetime")
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected epoch seconds or a datetime, got {type(value).__name__}")


def _compile_list(shape: Any) -> Encoder:
    element = _encoder(shape.member)

    def enc(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return [element(item) for item in value if item is not None]

    return enc


def _compile_map(shape: Any) -> Encoder:
    key = _encoder(shape.key)
    item = _encoder(shape.value)

    def enc(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a mapping, got {type(value).__name__}")
        return {key(k): item(v) for k, v in value.items() if v is not None}

    return enc


def _compile_structure(shape: Any) -> Encoder:
    members: dict[str, tuple[str, Encoder]] = {}
    name = shape.name

    def enc(value: Any) -> Any:
        if type(value) is not dict and not isinstance(value, Mapping):
            raise TypeError(f"{name}: expected a mapping, got {type(value).__name__}")
        out: dict[str, Any] = {}
        for snake, item in value.items():
            member = members.get(snake)
            if member is None:
                raise KeyError(f"{name} has no member {snake!r}")
            if item is not None:
                out[member[0]] = member[1](item)
        return out

    _encoders[name] = enc
    for wire, member_shape in shape.members.items():
        members[to_snake(wire)] = (wire, _encoder(member_shape))
    return enc


# Pure memos (this table and _operations below): encoders compiled from the botocore model shipped
# with the package, the same for every runtime and never invalidated.
_encoders: dict[str, Encoder] = {}
_LEAVES: dict[str, Encoder] = {
    "string": _enc_string,
    "integer": _enc_integer,
    "long": _enc_integer,
    "boolean": _enc_boolean,
    "blob": _enc_blob,
    "timestamp": epoch_seconds,
}
_COMPILERS: dict[str, Callable[[Any], Encoder]] = {
    "list": _compile_list,
    "map": _compile_map,
    "structure": _compile_structure,
}


def _encoder(shape: Any) -> Encoder:
    found = _encoders.get(shape.name)
    if found is None:
        leaf = _LEAVES.get(shape.type_name)
        found = leaf if leaf is not None else _COMPILERS[shape.type_name](shape)
        _encoders[shape.name] = found
    return found


def _no_output(value: Any) -> Any:
    """The sentinel encoder of an operation without an output shape."""
    return None


_operations: dict[str, Encoder] = {}
_lock = threading.Lock()  # compile under it; publish an operation's encoder only once complete


def _operation_encoder(operation: str) -> Encoder:
    enc = _operations.get(operation)
    if enc is None:
        shape = model.output_shape(operation)
        with _lock:
            enc = _operations.get(operation)
            if enc is None:
                enc = _no_output if shape is None else _encoder(shape)
                _operations[operation] = enc
    return enc


def encode_response(operation: str, result: Mapping[str, Any] | None) -> bytes:
    """The JSON body answering ``operation`` with the snake_case ``result``.

    ``b""`` for an operation without output or a None/empty result. None values are omitted; bytes
    become base64, timestamps epoch seconds, enums their value. A key the output shape does not have
    raises KeyError (a programming error).
    """
    enc = _operation_encoder(operation)
    if not result:
        return b""
    if enc is _no_output:
        if any(v is not None for v in result.values()):
            raise ValueError(f"{operation} has no output, but a result was given: {sorted(result)}")
        return b""
    return orjson.dumps(enc(result))


def bench_encrypt(rounds: int = 20_000) -> dict[str, float]:
    """Microseconds per call of decode_request/encode_response for a typical Encrypt (a 64-byte
    plaintext and a 2-pair encryption context); ``python -c "from openkms.wire.codec import
    bench_encrypt; print(bench_encrypt())"`` prints it, and the unit tests print it too."""
    body = orjson.dumps(
        {
            "KeyId": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "Plaintext": base64.b64encode(os.urandom(64)).decode(),
            "EncryptionContext": {"purpose": "test", "department": "10103.0"},
        }
    )
    result = {
        "ciphertext_blob": os.urandom(184),
        "key_id": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "encryption_algorithm": "SYMMETRIC_DEFAULT",
    }
    decode_request("Encrypt", body)
    encode_response("Encrypt", result)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    for _ in range(rounds):
        decode_request("Encrypt", body)
    timings["decode_request(Encrypt)"] = (time.perf_counter() - start) / rounds * 1e6
    start = time.perf_counter()
    for _ in range(rounds):
        encode_response("Encrypt", result)
    timings["encode_response(Encrypt)"] = (time.perf_counter() - start) / rounds * 1e6
    return timings
