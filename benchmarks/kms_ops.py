"""The KMS operations the benchmark knows, and their setup through boto3.

An operation definition (``OpDef``) names the KMS action, the key it needs
(``KeySetup``: ``KeySpec``/``KeyUsage`` passed to ``CreateKey`` during setup,
or ``None``), an optional ``prepare`` step run once per target (e.g. encrypt
plaintexts so that ``Decrypt`` has ciphertext blobs), and a ``body`` function
that builds the JSON request body for pool entry ``i``.

Adding an operation is one ``_register(OpDef(...))`` call.  Benchmark ids are
the action name, optionally followed by ``:<variant>`` when the same action is
measured on different keys (``Sign:ECC_NIST_P256``, ``Sign:RSA_2048``, ``Sign:ML_DSA_65``).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_OPS = ("CreateKey", "Encrypt", "Decrypt", "GenerateDataKey")


@dataclass(frozen=True)
class KeySetup:
    """The key an operation runs against, created once per target during setup."""

    key_spec: str = "SYMMETRIC_DEFAULT"
    key_usage: str = "ENCRYPT_DECRYPT"


@dataclass(frozen=True)
class OpContext:
    """Setup results handed to ``OpDef.body``."""

    key_id: str | None
    data: tuple[Any, ...]  # what ``OpDef.prepare`` returned, one item per pool entry (or empty)


@dataclass(frozen=True)
class OpDef:
    """One benchmarked operation."""

    name: str  # benchmark id, used with --ops
    action: str  # KMS action: X-Amz-Target TrentService.<action>
    key: KeySetup | None
    body: Callable[[OpContext, int], dict[str, Any]]
    prepare: Callable[[Any, str, int], tuple[Any, ...]] | None = None  # (boto3 client, key id, pool size)
    description: str = ""


OPS: dict[str, OpDef] = {}


def _register(op: OpDef) -> None:
    OPS[op.name] = op


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _key(ctx: OpContext) -> str:
    assert ctx.key_id is not None
    return ctx.key_id


SYMMETRIC = KeySetup()
PLAINTEXT_BYTES = 64


def _encrypt_blobs(client: Any, key_id: str, count: int) -> tuple[Any, ...]:
    blobs = []
    for _ in range(count):
        out = client.encrypt(KeyId=key_id, Plaintext=os.urandom(PLAINTEXT_BYTES))
        blobs.append(out["CiphertextBlob"])
    return tuple(blobs)


_register(
    OpDef(
        name="CreateKey",
        action="CreateKey",
        key=None,
        body=lambda ctx, i: {"Description": f"openkms benchmark key {i}"},
        description="create a SYMMETRIC_DEFAULT key (every request creates a key)",
    )
)
_register(
    OpDef(
        name="DescribeKey",
        action="DescribeKey",
        key=SYMMETRIC,
        body=lambda ctx, i: {"KeyId": _key(ctx)},
        description="key metadata only: request/auth overhead without cryptography",
    )
)
_register(
    OpDef(
        name="Encrypt",
        action="Encrypt",
        key=SYMMETRIC,
        body=lambda ctx, i: {"KeyId": _key(ctx), "Plaintext": _b64(os.urandom(PLAINTEXT_BYTES))},
        description=f"{PLAINTEXT_BYTES}-byte plaintext, SYMMETRIC_DEFAULT key",
    )
)
_register(
    OpDef(
        name="Decrypt",
        action="Decrypt",
        key=SYMMETRIC,
        prepare=_encrypt_blobs,
        body=lambda ctx, i: {"KeyId": _key(ctx), "CiphertextBlob": _b64(ctx.data[i])},
        description=f"ciphertext of a {PLAINTEXT_BYTES}-byte plaintext, SYMMETRIC_DEFAULT key",
    )
)
_register(
    OpDef(
        name="GenerateDataKey",
        action="GenerateDataKey",
        key=SYMMETRIC,
        body=lambda ctx, i: {"KeyId": _key(ctx), "KeySpec": "AES_256"},
        description="AES_256 data key under a SYMMETRIC_DEFAULT key",
    )
)
_register(
    OpDef(
        name="GenerateDataKeyPair:RSA_2048",
        action="GenerateDataKeyPair",
        key=SYMMETRIC,
        body=lambda ctx, i: {"KeyId": _key(ctx), "KeyPairSpec": "RSA_2048"},
        description="RSA_2048 data key pair under a SYMMETRIC_DEFAULT key (RSA key generation)",
    )
)
_register(
    OpDef(
        name="Sign:ECC_NIST_P256",
        action="Sign",
        key=KeySetup("ECC_NIST_P256", "SIGN_VERIFY"),
        body=lambda ctx, i: {
            "KeyId": _key(ctx),
            "Message": _b64(os.urandom(32)),
            "MessageType": "RAW",
            "SigningAlgorithm": "ECDSA_SHA_256",
        },
        description="ECDSA_SHA_256 over a 32-byte message",
    )
)
_register(
    OpDef(
        name="Sign:RSA_2048",
        action="Sign",
        key=KeySetup("RSA_2048", "SIGN_VERIFY"),
        body=lambda ctx, i: {
            "KeyId": _key(ctx),
            "Message": _b64(os.urandom(32)),
            "MessageType": "RAW",
            "SigningAlgorithm": "RSASSA_PKCS1_V1_5_SHA_256",
        },
        description="RSASSA_PKCS1_V1_5_SHA_256 over a 32-byte message",
    )
)
_register(
    OpDef(
        name="Sign:ML_DSA_65",
        action="Sign",
        key=KeySetup("ML_DSA_65", "SIGN_VERIFY"),
        body=lambda ctx, i: {
            "KeyId": _key(ctx),
            "Message": _b64(os.urandom(64)),
            "MessageType": "EXTERNAL_MU",
            "SigningAlgorithm": "ML_DSA_SHAKE_256",
        },
        description="ML_DSA_SHAKE_256 over a 64-byte external mu (peers without ML-DSA answer errors)",
    )
)
_register(
    OpDef(
        name="GenerateMac:HMAC_256",
        action="GenerateMac",
        key=KeySetup("HMAC_256", "GENERATE_VERIFY_MAC"),
        body=lambda ctx, i: {
            "KeyId": _key(ctx),
            "Message": _b64(os.urandom(32)),
            "MacAlgorithm": "HMAC_SHA_256",
        },
        description="HMAC_SHA_256 over a 32-byte message",
    )
)


def resolve_ops(spec: str) -> list[OpDef]:
    """Parse ``--ops``: comma-separated benchmark ids (case-insensitive), or ``all``."""
    if spec.strip().lower() == "all":
        return list(OPS.values())
    by_lower = {name.lower(): op for name, op in OPS.items()}
    ops: list[OpDef] = []
    for raw in spec.split(","):
        name = raw.strip()
        if not name:
            continue
        op = by_lower.get(name.lower())
        if op is None:
            raise ValueError(f"unknown op {name!r}; known: {', '.join(OPS)}")
        if op not in ops:
            ops.append(op)
    if not ops:
        raise ValueError("no ops selected")
    return ops


def boto3_client(service: str, endpoint: str, region: str, access_key: str, secret_key: str) -> Any:
    """A boto3 client for ``service`` (``kms``, ``iam``, ``sts``) at ``endpoint``, used for setup only."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, proxies={}),
    )


class TargetSetup:
    """Creates keys and request bodies on one target with boto3 (outside any timed window)."""

    def __init__(self, endpoint: str, region: str, access_key: str, secret_key: str) -> None:
        self.client = boto3_client("kms", endpoint, region, access_key, secret_key)
        self._keys: dict[KeySetup, str] = {}

    def key_for(self, setup: KeySetup) -> str:
        if setup not in self._keys:
            meta = self.client.create_key(
                KeySpec=setup.key_spec,
                KeyUsage=setup.key_usage,
                Description=f"openkms benchmark {setup.key_spec}/{setup.key_usage}",
            )["KeyMetadata"]
            self._keys[setup] = meta["KeyId"]
        return self._keys[setup]

    def bodies(self, op: OpDef, pool_size: int) -> tuple[bytes, ...]:
        """Return ``pool_size`` JSON request bodies for ``op`` (creating its key if needed)."""
        key_id = self.key_for(op.key) if op.key is not None else None
        return self.bodies_for_key(op, key_id, pool_size)

    def bodies_for_key(self, op: OpDef, key_id: str | None, pool_size: int) -> tuple[bytes, ...]:
        """Return ``pool_size`` JSON request bodies for ``op`` against a key the caller created."""
        data: tuple[Any, ...] = ()
        if op.prepare is not None:
            assert key_id is not None
            data = op.prepare(self.client, key_id, pool_size)
        ctx = OpContext(key_id, data)
        return tuple(json.dumps(op.body(ctx, i), separators=(",", ":")).encode() for i in range(pool_size))
