"""Robustness: bad input gets a clear AWS error, never a 500 and never a hang.

For every operation of botocore's KMS model, request bodies are generated with a seeded
``random.Random`` (``OPENKMS_FUZZ_SEED``, ``OPENKMS_FUZZ_CASES`` per operation) at three levels of
disorder: a well-formed request (a template for the operations whose interesting code lies deep, the
input shape filled with plausible values for the others), the same with one defect, or anything goes.
Plausible values are keys of every type and state by id, ARN and alias, real ciphertexts, signatures,
MACs, grant tokens, import tokens, markers and policies, and mangled versions of them; defects are model
boundaries (empty, max, max+1, out-of-range numbers, long lists, big maps), wrong JSON kinds, nulls and
unknown members. Raw requests come first: invalid JSON, deep nesting, oversize and non-UTF-8 bodies,
wrong headers, broken Authorization headers, and the requests that once got a 500, with their answer.

Every request is SigV4-signed with the credentials of a fresh account (so destructive calls touch only
the test's own keys; the operations that change the set-up keys run last) and POSTed over one keep-alive
connection. Each answer must come within ``TIMEOUT`` seconds with a status below 500, and be a 200 or an
AWS JSON error whose ``__type`` is modeled for the operation or common to AWS services. An independent
check of the body against the model tells when a request certainly breaks it: then the answer must be
an input error (AWS validates input before anything else). Failures are collected and reported
together; afterwards the server must still work. ``OPENKMS_FUZZ_TRACE=<dir>`` writes every request and
answer there.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import string
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import REGION, Server
from tests.e2e.importing import import_material, wrap
from tests.e2e.util import JSON_CT, KeepAlive, NoAnswer

SEED = int(os.environ.get("OPENKMS_FUZZ_SEED", "4934995"))
CASES_PER_OPERATION = int(os.environ.get("OPENKMS_FUZZ_CASES", "80"))
TIMEOUT = 10.0
MODEL = botocore.session.get_session().get_service_model("kms")

# Errors any AWS JSON service may answer, whatever the operation models.
COMMON_ERRORS = frozenset(
    {
        "ValidationException",
        "SerializationException",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
        "UnknownOperationException",
        "UnsupportedOperationException",
        "RequestEntityTooLargeException",
        "DryRunOperationException",
        "NotAuthorizedException",
        "ThrottlingException",
    }
)
# What a request that breaks the model may get: AWS validates input before anything else (after the
# body size and the signature).
INPUT_ERRORS = frozenset({"ValidationException", "SerializationException", "RequestEntityTooLargeException"})
# The HTTP status of each error code AWS answers (400 for every other one).
ERROR_STATUS: dict[str, frozenset[int]] = {
    "UnknownOperationException": frozenset({404}),
    "RequestEntityTooLargeException": frozenset({413}),
    "MissingAuthenticationTokenException": frozenset({400, 403}),
}

# Operations that change the keys other cases use run last, the most destructive at the very end.
STATE_CHANGING = (
    "EnableKey",
    "CancelKeyDeletion",
    "UpdateAlias",
    "DeleteAlias",
    "RetireGrant",
    "RevokeGrant",
    "DisableKeyRotation",
    "DeleteImportedKeyMaterial",
    "DisableKey",
    "PutKeyPolicy",
    "ScheduleKeyDeletion",
)


def operation_order() -> list[str]:
    names = sorted(MODEL.operation_names)
    assert set(STATE_CHANGING) <= set(names)
    return [n for n in names if n not in STATE_CHANGING] + list(STATE_CHANGING)


def allowed_errors(operation: str | None) -> frozenset[str]:
    if operation is None or operation not in MODEL.operation_names:
        return COMMON_ERRORS
    op = MODEL.operation_model(operation)
    modeled = {shape.name for shape in op.error_shapes}
    if op.input_shape is not None and "GrantTokens" in op.input_shape.members:
        # DescribeKey takes GrantTokens but does not model InvalidGrantTokenException; a bad token
        # there is answered like everywhere else.
        modeled.add("InvalidGrantTokenException")
    return COMMON_ERRORS | modeled


# --- the pools of plausible values ---------------------------------------------------------------------


@dataclass
class Pools:
    """Real identifiers and blobs of the fuzzed account, grown with what successful calls return."""

    account_id: str
    principal_arn: str
    keys: dict[str, list[str]] = field(default_factory=dict)  # kind -> its id, ARN, alias, alias ARN
    key_refs: list[str] = field(default_factory=list)  # all of those, and keys that are not there
    # (blob, encryption context, key kind, algorithm) of real ciphertexts
    sealed: list[tuple[bytes, dict[str, str], str, str]] = field(default_factory=list)
    # (key kind, algorithm, message type, message, signature) of real signatures
    signed: list[tuple[str, str, str, bytes, bytes]] = field(default_factory=list)
    grants: list[tuple[str, str, str]] = field(default_factory=list)  # (key kind, grant id, token)
    aliases: list[str] = field(default_factory=list)
    ciphertexts: list[bytes] = field(default_factory=list)
    contexts: list[dict[str, str]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    signatures: list[bytes] = field(default_factory=list)
    macs: list[bytes] = field(default_factory=list)
    grant_tokens: list[str] = field(default_factory=list)
    grant_ids: list[str] = field(default_factory=list)
    principals: list[str] = field(default_factory=list)
    public_keys: list[bytes] = field(default_factory=list)
    import_tokens: list[bytes] = field(default_factory=list)
    wrapped: list[bytes] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    material_ids: list[str] = field(default_factory=list)

    def add(self, pool: list[Any], value: Any, cap: int = 60) -> None:
        if value not in pool:
            pool.append(value)
            if len(pool) > cap:
                del pool[len(pool) // 2]  # keep the set-up values at the front


def _policy(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _policies(account: str, principal: str) -> list[str]:
    root = {"AWS": f"arn:aws:iam::{account}:root"}
    allow_all = {"Effect": "Allow", "Principal": root, "Action": "kms:*", "Resource": "*"}
    return [
        _policy([{"Sid": "Enable IAM User Permissions", **allow_all}]),
        _policy([allow_all, {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "kms:Encrypt"}]),
        # lockout: nobody of the account may change the policy any more
        _policy([{"Effect": "Allow", "Principal": root, "Action": "kms:Encrypt", "Resource": "*"}]),
        _policy([{"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}, allow_all]),
        _policy([{**allow_all, "Principal": {"AWS": "arn:aws:iam::999999999999:user/nobody"}}]),
        _policy([{**allow_all, "Principal": "*"}]),
        _policy([{**allow_all, "Principal": {"Service": "kms.amazonaws.com"}}]),
        _policy([{**allow_all, "NotAction": "kms:Decrypt", "Action": None}]),
        _policy(
            [
                allow_all,
                {
                    "Effect": "Allow",
                    "Principal": root,
                    "Action": ["kms:Encrypt", "kms:Decrypt"],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {"kms:EncryptionContext:purpose": [1, None, {"a": "b"}]},
                        "NumericLessThan": {"kms:GrantConstraintType": "abc"},
                        "DateGreaterThan": {"aws:CurrentTime": "not a date"},
                        "IpAddress": {"aws:SourceIp": "999.1.1.1/99"},
                        "ForAnyValue:StringLike": {"kms:GrantOperations": "*"},
                        "Bool": {"aws:SecureTransport": ["maybe"]},
                        "Null": {"kms:ViaService": 12},
                        "NoSuchOperator": {"x": "y"},
                    },
                },
            ]
        ),
        _policy([{**allow_all, "Condition": {"StringEquals": "not a map"}}]),
        _policy([{**allow_all, "Effect": "Maybe"}]),
        _policy([]),
        json.dumps({"Version": "2012-10-17", "Statement": allow_all}),
        json.dumps({"Statement": [{**allow_all, "Action": [[["kms:*"]]]}]}),
        json.dumps({"Version": "2008-10-17", "Statement": [allow_all], "Id": {"a": 1}}),
        "{",
        "[]",
        "null",
        '"policy"',
        "{}",
        json.dumps({"Version": "2012-10-17", "Statement": [allow_all] * 300}),
        "\x00" + _policy([allow_all]),
    ]


def build_pools(kms: Any, sts: Any, server: Server, account: str) -> Pools:
    """Keys of every type in every state, and real blobs made with them (in the fuzzed account)."""
    principal = sts.get_caller_identity()["Arn"]
    pools = Pools(account_id=account, principal_arn=principal)
    keys: dict[str, dict[str, Any]] = {}
    specs = {
        "sym": {},
        "rsa-enc": {"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"},
        "rsa-sign": {"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"},
        "ecc-sign": {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"},
        "ecc-agree": {"KeySpec": "ECC_NIST_P256", "KeyUsage": "KEY_AGREEMENT"},
        "hmac": {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"},
        "external": {"Origin": "EXTERNAL"},
        "external-pending": {"Origin": "EXTERNAL"},
        "disabled": {},
        "pending-deletion": {},
    }
    for name, spec in specs.items():
        md = kms.create_key(Description=f"fuzz {name}", **spec)["KeyMetadata"]
        keys[name] = md
        alias = f"alias/fuzz-{name}"
        kms.create_alias(AliasName=alias, TargetKeyId=md["KeyId"])
        pools.aliases.append(alias)
        alias_arn = f"arn:aws:kms:{REGION}:{account}:{alias}"
        pools.keys[name] = [md["KeyId"], md["Arn"], alias, alias_arn]
        pools.key_refs += pools.keys[name]
    import_material(kms, keys["external"]["KeyId"], os.urandom(32))
    sym = keys["sym"]["KeyId"]
    kms.tag_resource(KeyId=sym, Tags=[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": "2"}])
    # keys that are not there, or not ours
    foreign = server.client().create_key(Description="fuzz foreign")["KeyMetadata"]
    pools.key_refs += [
        foreign["KeyId"],
        foreign["Arn"],
        str(uuid.uuid4()),
        f"arn:aws:kms:{REGION}:{account}:key/{uuid.uuid4()}",
        f"arn:aws:kms:eu-west-1:{account}:key/{keys['sym']['KeyId']}",
        "mrk-" + "0" * 32,
        "alias/aws/kms",
        "alias/does-not-exist",
        f"arn:aws:kms:{REGION}:{account}:alias/does-not-exist",
    ]

    context = {"purpose": "fuzz", "n": "1"}
    pools.contexts += [context, {}, {"purpose": "other"}]
    plain = b"fuzz plaintext"
    pools.messages += [plain, hashlib.sha256(plain).digest(), hashlib.sha384(plain).digest()]
    for kind, ctx, algorithm in (
        ("sym", context, "SYMMETRIC_DEFAULT"),
        ("sym", {}, "SYMMETRIC_DEFAULT"),
        ("external", context, "SYMMETRIC_DEFAULT"),
        ("rsa-enc", {}, "RSAES_OAEP_SHA_256"),
        ("rsa-enc", {}, "RSAES_OAEP_SHA_1"),
    ):
        blob = kms.encrypt(
            KeyId=keys[kind]["KeyId"], Plaintext=plain, EncryptionContext=ctx, EncryptionAlgorithm=algorithm
        )["CiphertextBlob"]
        pools.sealed.append((blob, ctx, kind, algorithm))
    pools.ciphertexts += [blob for blob, *_ in pools.sealed] + [
        kms.generate_data_key(KeyId=sym, KeySpec="AES_256")["CiphertextBlob"],
        server.client().encrypt(KeyId=foreign["KeyId"], Plaintext=plain)["CiphertextBlob"],
    ]
    for kind, algorithm, message_type, message in (
        ("rsa-sign", "RSASSA_PSS_SHA_256", "RAW", plain),
        ("rsa-sign", "RSASSA_PKCS1_V1_5_SHA_384", "DIGEST", hashlib.sha384(plain).digest()),
        ("ecc-sign", "ECDSA_SHA_256", "RAW", plain),
        ("ecc-sign", "ECDSA_SHA_256", "DIGEST", hashlib.sha256(plain).digest()),
    ):
        signature = kms.sign(
            KeyId=keys[kind]["KeyId"], Message=message, MessageType=message_type, SigningAlgorithm=algorithm
        )["Signature"]
        pools.signed.append((kind, algorithm, message_type, message, signature))
        pools.signatures.append(signature)
    pools.macs.append(
        kms.generate_mac(KeyId=keys["hmac"]["KeyId"], Message=plain, MacAlgorithm="HMAC_SHA_256")["Mac"]
    )
    for key, operations in (
        ("sym", ["Encrypt", "Decrypt", "RetireGrant"]),
        ("sym", ["GenerateDataKey"]),
        ("ecc-sign", ["Sign", "Verify"]),
        ("hmac", ["GenerateMac"]),
        ("sym", ["Decrypt"]),
        ("rsa-enc", ["Decrypt"]),
        ("disabled", ["Encrypt"]),
        ("pending-deletion", ["Decrypt"]),
        ("sym", ["ReEncryptFrom"]),
    ):
        grant = kms.create_grant(
            KeyId=keys[key]["KeyId"],
            GranteePrincipal=principal,
            RetiringPrincipal=principal,
            Operations=operations,
        )
        pools.grant_tokens.append(grant["GrantToken"])
        pools.grant_ids.append(grant["GrantId"])
        pools.grants.append((key, grant["GrantId"], grant["GrantToken"]))
    kms.disable_key(KeyId=keys["disabled"]["KeyId"])
    kms.schedule_key_deletion(KeyId=keys["pending-deletion"]["KeyId"], PendingWindowInDays=30)
    pools.principals += [
        principal,
        f"arn:aws:iam::{account}:root",
        f"arn:aws:iam::{account}:user/nobody",
        "arn:aws:iam::999999999999:root",
        "kms.amazonaws.com",
        "*",
        account,
    ]
    pools.public_keys += [
        kms.get_public_key(KeyId=keys["ecc-agree"]["KeyId"])["PublicKey"],
        kms.get_public_key(KeyId=keys["rsa-enc"]["KeyId"])["PublicKey"],
        _spki(ec.generate_private_key(ec.SECP256R1()).public_key()),
        _spki(ec.generate_private_key(ec.SECP384R1()).public_key()),
        _spki(ec.generate_private_key(ec.SECP256K1()).public_key()),
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint),
    ]
    params = kms.get_parameters_for_import(
        KeyId=keys["external-pending"]["KeyId"],
        WrappingAlgorithm="RSAES_OAEP_SHA_256",
        WrappingKeySpec="RSA_2048",
    )
    pools.import_tokens.append(params["ImportToken"])
    pools.wrapped += [
        wrap("RSAES_OAEP_SHA_256", params["PublicKey"], os.urandom(32)),
        wrap("RSAES_OAEP_SHA_256", params["PublicKey"], os.urandom(16)),
    ]
    pools.markers += [
        kms.list_keys(Limit=1)["NextMarker"],
        kms.list_aliases(Limit=1)["NextMarker"],
        kms.list_grants(KeyId=sym, Limit=1)["NextMarker"],
        kms.list_resource_tags(KeyId=sym, Limit=1)["NextMarker"],
    ]
    material = kms.describe_key(KeyId=sym)["KeyMetadata"].get("CurrentKeyMaterialId")
    if material:
        pools.material_ids.append(material)
    pools.policies += _policies(account, principal)
    return pools


def _spki(public: Any) -> bytes:
    der: bytes = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


# --- the body generator --------------------------------------------------------------------------------

CREATE_KEY_SPECS = (
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
    ("RSA_2048", "ENCRYPT_DECRYPT"),
    ("RSA_2048", "SIGN_VERIFY"),
    ("RSA_3072", "SIGN_VERIFY"),
    ("RSA_4096", "ENCRYPT_DECRYPT"),
    ("ECC_NIST_P256", "SIGN_VERIFY"),
    ("ECC_NIST_P384", "SIGN_VERIFY"),
    ("ECC_NIST_P521", "KEY_AGREEMENT"),
    ("ECC_SECG_P256K1", "SIGN_VERIFY"),
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
    ("ML_DSA_44", "SIGN_VERIFY"),
    ("HMAC_224", "GENERATE_VERIFY_MAC"),
    ("HMAC_512", "GENERATE_VERIFY_MAC"),
)
GRANT_OPERATIONS = (
    ("sym", ["Encrypt", "Decrypt"]),
    ("sym", ["GenerateDataKey", "ReEncryptFrom", "ReEncryptTo", "CreateGrant", "RetireGrant"]),
    ("rsa-sign", ["Sign", "Verify", "GetPublicKey", "DescribeKey"]),
    ("hmac", ["GenerateMac", "VerifyMac"]),
    ("ecc-agree", ["DeriveSharedSecret"]),
)
JUNK_STRINGS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\t\r\n",
    "é",
    "☃" * 3,
    "\U0001d11e" * 2,
    "\ufeff",
    "../../etc/passwd",
    "%s%n%x",
    "' OR '1'='1' --",
    "${jndi:ldap://x}",
    "null",
    "true",
    "0",
    "-1",
    "1e400",
    "alias/",
    "alias/aws/",
    "alias/aws/fuzz",
    "arn:aws:kms:us-east-1:123456789012:key/",
    "arn:aws:kms:us-east-1:123456789012:alias/",
    "arn:aws:kms:::key/x",
    "arn:aws:iam::123456789012:user/",
    "arn:",
    "mrk-",
    "cks-1234567890abcdef0",
    "AQICAHg=",
)
WRONG_KINDS: tuple[Any, ...] = (
    0,
    -1,
    1.5,
    12345678901234567890,
    True,
    False,
    None,
    [],
    ["a"],
    [None],
    {},
    {"a": "b"},
    {"a": {"b": {"c": [1]}}},
    "x",
)
IDENTIFIER_CHARS = string.ascii_letters + string.digits + ":/_-"


class Generator:
    """Request bodies for one operation's input shape, at three levels of disorder:
    0 plausible, 1 plausible with one defect, 2 anything goes."""

    def __init__(self, rng: random.Random, pools: Pools) -> None:
        self.rng = rng
        self.pools = pools
        self.level = 0

    # -- plausible values by member name -------------------------------------------------------------

    def _b64(self, data: bytes) -> str:
        return base64.b64encode(data).decode()

    def _mangled(self, blob: bytes) -> bytes:
        rng = self.rng
        choice = rng.randrange(6)
        if choice == 0:
            return blob[: rng.randrange(1, max(2, len(blob)))]
        if choice == 1:
            i = rng.randrange(len(blob))
            return blob[:i] + bytes([blob[i] ^ (1 << rng.randrange(8))]) + blob[i + 1 :]
        if choice == 2:
            return blob + os.urandom(rng.randrange(1, 40))
        if choice == 3:
            return blob[:1] + os.urandom(len(blob) - 1)
        if choice == 4:
            return bytes([rng.randrange(256)]) + blob[1:]
        return blob[::-1]

    def _blob_from(self, pool: list[bytes]) -> str:
        blob = self.rng.choice(pool)
        return self._b64(blob if self.level == 0 or self.rng.random() < 0.5 else self._mangled(blob))

    def _token_from(self, pool: list[str]) -> str:
        token = self.rng.choice(pool)
        roll = self.rng.random()
        if self.level == 0 or roll < 0.5:
            return token
        if roll < 0.75:
            return token[:-1]
        if roll < 0.9:
            i = self.rng.randrange(len(token))
            return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        return token + "=="

    def _context(self) -> dict[str, str]:
        rng = self.rng
        if rng.random() < 0.6:
            return dict(rng.choice(self.pools.contexts))
        return {self._word(): self._word() for _ in range(rng.randrange(1, 4))}

    def _word(self, chars: str = IDENTIFIER_CHARS, low: int = 1, high: int = 12) -> str:
        return "".join(self.rng.choice(chars) for _ in range(self.rng.randint(low, high)))

    def plausible(self, name: str, shape: Any) -> tuple[bool, Any]:
        """(True, value) for members whose meaningful values come from the pools."""
        rng, p = self.rng, self.pools
        if name in ("KeyId", "TargetKeyId", "SourceKeyId", "DestinationKeyId"):
            return True, rng.choice(p.key_refs)
        if name == "AliasName":
            if rng.random() < 0.5:
                return True, rng.choice(p.aliases)
            return True, "alias/fuzz-" + self._word(string.ascii_lowercase + string.digits, 4, 10)
        if name in ("CiphertextBlob",):
            return True, self._blob_from(p.ciphertexts)
        if name in ("Plaintext", "Message"):
            if rng.random() < 0.5:
                return True, self._b64(rng.choice(p.messages))
            return True, self._b64(os.urandom(rng.choice((1, 16, 32, 48, 64, 100, 4096))))
        if name == "Signature":
            return True, self._blob_from(p.signatures)
        if name == "Mac":
            return True, self._blob_from(p.macs)
        if name == "PublicKey":
            return True, self._blob_from(p.public_keys)
        if name == "ImportToken":
            return True, self._blob_from(p.import_tokens)
        if name == "EncryptedKeyMaterial":
            return True, self._blob_from(p.wrapped)
        if name == "GrantTokens":
            return True, [self._token_from(p.grant_tokens) for _ in range(rng.randrange(0, 4))]
        if name == "GrantToken":
            return True, self._token_from(p.grant_tokens)
        if name == "GrantId":
            return True, rng.choice(p.grant_ids) if rng.random() < 0.7 else os.urandom(32).hex()
        if name in ("GranteePrincipal", "RetiringPrincipal"):
            return True, rng.choice(p.principals)
        if name == "Policy":
            return True, rng.choice(p.policies)
        if name == "PolicyName":
            return True, "default" if rng.random() < 0.8 else self._word(string.ascii_letters, 1, 20)
        if name == "Marker":
            return True, rng.choice(p.markers) if rng.random() < 0.7 else self._token_from(p.markers)
        if name == "KeyMaterialId":
            if p.material_ids and rng.random() < 0.6:
                return True, rng.choice(p.material_ids)
            return True, os.urandom(32).hex()
        if name in ("EncryptionContext", "SourceEncryptionContext", "DestinationEncryptionContext"):
            return True, self._context()
        if name in ("EncryptionContextEquals", "EncryptionContextSubset"):
            return True, self._context()
        if name == "Tags":
            return True, [
                {"TagKey": rng.choice(("a", "b", "env", "aws:x", self._word())), "TagValue": self._word()}
                for _ in range(rng.randrange(0, 4))
            ]
        if name == "TagKeys":
            return True, [
                rng.choice(("a", "b", "env", "aws:x", self._word())) for _ in range(rng.randrange(4))
            ]
        if name == "ValidTo":
            return True, time.time() + rng.choice((-86400, 60, 86400, 365 * 86400, 400 * 86400))
        if name == "PendingWindowInDays":
            return True, rng.choice((7, 15, 30, 6, 31))
        if name == "RotationPeriodInDays":
            return True, rng.choice((90, 365, 2560))
        if name == "NumberOfBytes":
            return True, rng.choice((1, 16, 32, 64, 1024))
        if name == "Limit":
            return True, rng.choice((1, 2, 50, 1000))
        if name == "Name":
            return True, self._word(IDENTIFIER_CHARS, 1, 20)
        return False, None

    # -- well-formed requests -------------------------------------------------------------------------

    def key(self, *kinds: str) -> str:
        """A reference (id, ARN, alias or alias ARN) to one of the set-up keys of these kinds."""
        return self.rng.choice(self.pools.keys[self.rng.choice(kinds)])

    def key_id(self, *kinds: str) -> str:
        """The id or ARN of one of the set-up keys of these kinds (for operations that take no alias)."""
        return self.rng.choice(self.pools.keys[self.rng.choice(kinds)][:2])

    def template(self, operation: str) -> dict[str, Any] | None:
        """A request likely to succeed, for the operations whose interesting code lies deep."""
        rng, p, b64 = self.rng, self.pools, self._b64
        pick = rng.choice
        if operation == "CreateKey":
            spec, usage = pick(CREATE_KEY_SPECS)
            body: dict[str, Any] = {"KeySpec": spec, "KeyUsage": usage, "Description": self._word()}
            if rng.random() < 0.2:
                body["Origin"] = "EXTERNAL"
            if rng.random() < 0.3:
                body["Tags"] = [{"TagKey": self._word(), "TagValue": self._word()}]
            if rng.random() < 0.3:
                body["Policy"] = pick(p.policies)
                body["BypassPolicyLockoutSafetyCheck"] = rng.random() < 0.5
            return body
        if operation == "Encrypt":
            if rng.random() < 0.3:
                return {"KeyId": self.key("rsa-enc"), "Plaintext": b64(os.urandom(rng.randint(1, 190))),
                        "EncryptionAlgorithm": pick(("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"))}  # fmt: skip
            return {"KeyId": self.key("sym", "external"), "Plaintext": b64(os.urandom(rng.randint(1, 4096))),
                    "EncryptionContext": self._context()}  # fmt: skip
        if operation in ("Decrypt", "ReEncrypt"):
            blob, ctx, kind, algorithm = pick(p.sealed)
            body = {"CiphertextBlob": b64(blob)}
            prefix = "" if operation == "Decrypt" else "Source"
            if ctx:
                body[prefix + "EncryptionContext"] = ctx
            if kind == "rsa-enc" or rng.random() < 0.3:
                body[prefix + "KeyId" if prefix else "KeyId"] = self.key(kind)
                body[prefix + "EncryptionAlgorithm"] = algorithm
            if operation == "ReEncrypt":
                body["DestinationKeyId"] = self.key("sym", "rsa-enc")
                if "rsa-enc" in body["DestinationKeyId"] or body["DestinationKeyId"] in p.keys["rsa-enc"]:
                    body["DestinationEncryptionAlgorithm"] = "RSAES_OAEP_SHA_256"
            if rng.random() < 0.15:
                body["DryRun"] = True
                if rng.random() < 0.5:
                    body["DryRunModifiers"] = ["IGNORE_CIPHERTEXT"]
                    if rng.random() < 0.5:
                        del body["CiphertextBlob"]
            return body
        if operation in ("GenerateDataKey", "GenerateDataKeyWithoutPlaintext"):
            body = {"KeyId": self.key("sym", "external")}
            if rng.random() < 0.5:
                body["KeySpec"] = pick(("AES_256", "AES_128"))
            else:
                body["NumberOfBytes"] = rng.randint(1, 1024)
            return body
        if operation in ("GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext"):
            spec = pick(("RSA_2048", "RSA_3072", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
                         "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"))  # fmt: skip
            return {"KeyId": self.key("sym", "external"), "KeyPairSpec": spec,
                    "EncryptionContext": self._context()}  # fmt: skip
        if operation in ("Sign", "Verify"):
            kind, algorithm, message_type, message, signature = pick(p.signed)
            body = {"KeyId": self.key(kind), "Message": b64(message), "MessageType": message_type,
                    "SigningAlgorithm": algorithm}  # fmt: skip
            if operation == "Verify":
                body["Signature"] = b64(signature)
            return body
        if operation in ("GenerateMac", "VerifyMac"):
            body = {"KeyId": self.key("hmac"), "Message": b64(p.messages[0]), "MacAlgorithm": "HMAC_SHA_256"}
            if operation == "VerifyMac":
                body["Mac"] = b64(p.macs[0])
            return body
        if operation == "DeriveSharedSecret":
            return {"KeyId": self.key("ecc-agree"), "KeyAgreementAlgorithm": "ECDH",
                    "PublicKey": b64(pick((p.public_keys[0], p.public_keys[2])))}  # fmt: skip
        if operation == "GetPublicKey":
            return {"KeyId": self.key("rsa-enc", "rsa-sign", "ecc-sign", "ecc-agree")}
        if operation == "CreateGrant":
            kind, operations = pick(GRANT_OPERATIONS)
            body = {"KeyId": self.key_id(kind), "GranteePrincipal": pick(p.principals[:2]),
                    "Operations": operations}  # fmt: skip
            if rng.random() < 0.3:
                body["RetiringPrincipal"] = p.principal_arn
            if kind == "sym" and rng.random() < 0.3:
                body["Constraints"] = {
                    pick(("EncryptionContextEquals", "EncryptionContextSubset")): self._context()
                }
            if rng.random() < 0.3:
                body["Name"] = self._word()
            return body
        if operation == "GetParametersForImport":
            return {"KeyId": self.key_id("external-pending", "external"),
                    "WrappingAlgorithm": pick(("RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_256")),
                    "WrappingKeySpec": pick(("RSA_2048", "RSA_3072"))}  # fmt: skip
        if operation == "ImportKeyMaterial":
            body = {"KeyId": self.key_id("external-pending"), "ImportToken": b64(p.import_tokens[0]),
                    "EncryptedKeyMaterial": b64(pick(p.wrapped))}  # fmt: skip
            if rng.random() < 0.5:
                body["ExpirationModel"] = "KEY_MATERIAL_EXPIRES"
                body["ValidTo"] = time.time() + 86400 * rng.randint(1, 300)
            return body
        if operation in ("RevokeGrant", "RetireGrant", "ListGrants"):
            # RetireGrant (which runs first) leaves every other set-up grant to RevokeGrant
            kind, grant_id, token = pick(p.grants[operation == "RevokeGrant" :: 2])
            if operation == "RetireGrant" and rng.random() < 0.5:
                return {"GrantToken": token}
            return {"KeyId": self.key_id(kind), "GrantId": grant_id}
        if operation == "GenerateRandom":
            return {"NumberOfBytes": rng.randint(1, 1024)}
        if operation == "CreateAlias":
            return {"AliasName": "alias/fuzz-" + self._word(string.ascii_lowercase, 6, 10),
                    "TargetKeyId": self.key_id(*p.keys)}  # fmt: skip
        return None

    # -- generic values -------------------------------------------------------------------------------

    def valid(self, shape: Any, name: str, depth: int = 0) -> Any:
        """A value the model accepts (bounded in size)."""
        rng = self.rng
        kind = shape.type_name
        meta = shape.metadata
        if kind == "structure":
            return self.structure(shape, depth + 1, 0)
        if kind == "list":
            count = rng.randint(meta.get("min", 0), min(meta.get("max", 3), 3))
            return [self.member_value(name, shape.member, depth + 1) for _ in range(count)]
        if kind == "map":
            return {self.valid(shape.key, name, depth + 1): self.valid(shape.value, name, depth + 1)
                    for _ in range(rng.randrange(0, 3))}  # fmt: skip
        if kind == "string":
            if shape.enum:
                return rng.choice(shape.enum)
            low = max(meta.get("min", 0), 1)
            high = max(low, min(meta.get("max", 32), 32))
            pattern = meta.get("pattern", "")
            chars = string.ascii_lowercase if "[a-f0-9]" not in pattern else "abcdef0123456789"
            if "https://" in pattern:
                return "https://example.com"
            if "cluster-" in pattern:
                return "cluster-abcdefghijk"
            if "\\d+$" in pattern:
                return rng.choice(("us-east-1", "eu-west-1"))
            return self._word(chars, low, high)
        if kind == "blob":
            low = max(meta.get("min", 0), 1)
            return self._b64(os.urandom(rng.randint(low, max(low, min(meta.get("max", 64), 64)))))
        if kind in ("integer", "long"):
            return rng.randint(meta.get("min", 0), min(meta.get("max", 1000), 100000))
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "timestamp":
            return time.time() + rng.randrange(-86400, 86400 * 400)
        raise AssertionError(kind)

    def boundary(self, shape: Any) -> Any:
        """A value at or just past the model's limits, or an odd one of the right JSON kind."""
        rng = self.rng
        kind = shape.type_name
        meta = shape.metadata
        low, high = meta.get("min"), meta.get("max")
        if kind == "string":
            options: list[Any] = list(JUNK_STRINGS)
            if high is not None:
                options += ["k" * high, "k" * (high + 1), "é" * high, "\U0001d11e" * (high // 2 + 1)]
            if low:
                options += ["k" * (low - 1), "k" * low]
            if shape.enum:
                value = rng.choice(shape.enum)
                options += [value.lower(), value + " ", " " + value, value + "\x00", value * 2]
            options += ["x" * 200_000]
            return rng.choice(options)
        if kind == "blob":
            options = ["", "!!!!", "YQ", "YQ=", "YQ==\n", " YQ==", "-_-_", "YWJj\nZA==", "=" * 8, "A"]
            if high is not None:
                options += [self._b64(os.urandom(high)), self._b64(os.urandom(high + 1))]
            return rng.choice(options)
        if kind in ("integer", "long"):
            options = [0, -1, 1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, -(2**64), 10**30, 5.0]
            if low is not None:
                options += [low, low - 1]
            if high is not None:
                options += [high, high + 1]
            return rng.choice(options)
        if kind == "boolean":
            return rng.choice((True, False))
        if kind == "timestamp":
            return rng.choice(
                (0, -1, 0.5, 1e12, 253402300800, 253402300800000, 1e300, -1e300, -62135596800,
                 "2030-01-01T00:00:00Z", "2030-01-01", "garbage", "", "1e400", "nan", "-0",
                 "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00")
            )  # fmt: skip
        if kind == "list":
            element = shape.member
            options = [[], [None], [[]], [self.valid(element, "")] * 11, [self.valid(element, "")] * 1000]
            options.append([self.wrong_kind() for _ in range(3)])
            return rng.choice(options)
        if kind == "map":
            options = [
                {},
                {"": ""},
                {"\x00": "\x00"},
                {"k" * 10_000: "v"},
                {f"k{i}": "v" * 20 for i in range(1000)},
                {"k": {"nested": "map"}},
                {"k": ["list"]},
                {"k": 1},
                {"k": None},
                {"k": True},
                {"aws:x": "y", "kms:x": "y"},
            ]
            return rng.choice(options)
        if kind == "structure":
            return rng.choice(({}, {"Unknown": 1}, {**self.structure(shape, 1, 0), "Extra": [1, 2]}))
        raise AssertionError(kind)

    def wrong_kind(self) -> Any:
        return self.rng.choice(WRONG_KINDS)

    def member_value(self, name: str, shape: Any, depth: int, level: int = 0) -> Any:
        rng = self.rng
        if level == 2:
            roll = rng.random()
            if roll < 0.25:
                return self.boundary(shape)
            if roll < 0.4:
                return self.wrong_kind()
        if depth < 6:
            found, value = self.plausible(name, shape)
            if found and rng.random() < 0.85:
                return value
        return self.valid(shape, name, depth)

    def structure(self, shape: Any, depth: int, level: int) -> dict[str, Any]:
        required = set(shape.required_members)
        body: dict[str, Any] = {}
        for name, member in shape.members.items():
            wanted = 0.95 if name in required else (0.3, 0.4, 0.6)[level]
            if depth > 4 or self.rng.random() >= wanted:
                continue
            body[name] = self.member_value(name, member, depth, level)
        return body

    def body(self, operation: str, shape: Any | None) -> dict[str, Any]:
        rng = self.rng
        level = self.level = rng.choices((0, 1, 2), weights=(35, 35, 30))[0]
        if shape is None:
            return {} if rng.random() < 0.7 else {"Unknown": self.wrong_kind()}
        template = self.template(operation) if level < 2 and rng.random() < 0.8 else None
        body = self.structure(shape, 0, level) if template is None else template
        if level == 1:
            self.one_defect(shape, body)
        if level == 2 and rng.random() < 0.3:
            self.unknown_members(body)
        return body

    def one_defect(self, shape: Any, body: dict[str, Any]) -> None:
        rng = self.rng
        names = list(shape.members)
        if not names:
            self.unknown_members(body)
            return
        name = rng.choice(names)
        choice = rng.randrange(5)
        if choice == 0:
            if body.pop(rng.choice(shape.required_members or names), None) is None:
                body[name] = None
        elif choice in (1, 2):
            body[name] = self.boundary(shape.members[name])
        elif choice == 3:
            body[name] = self.wrong_kind()
        else:
            self.unknown_members(body)

    def unknown_members(self, body: dict[str, Any]) -> None:
        rng = self.rng
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(("Unknown", "keyId", "KEYID", "__type", "", "Key Id", "é", "\x00"))
            body[name] = self.wrong_kind()


# --- an independent judgement of model validity --------------------------------------------------------

VALID, INVALID, UNKNOWN = "valid", "invalid", "unknown"


def _worst(results: Iterator[str]) -> str:
    seen = set(results)
    return INVALID if INVALID in seen else (UNKNOWN if UNKNOWN in seen else VALID)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _check_length(size_a: int, size_b: int, meta: dict[str, Any]) -> str:
    """INVALID only if both ways of counting (code points, UTF-16 units) break the limits."""
    low, high = meta.get("min"), meta.get("max")
    bad_a = (low is not None and size_a < low) or (high is not None and size_a > high)
    bad_b = (low is not None and size_b < low) or (high is not None and size_b > high)
    if bad_a and bad_b:
        return INVALID
    return UNKNOWN if bad_a or bad_b else VALID


def model_verdict(shape: Any, value: Any) -> str:
    """Whether ``value`` certainly satisfies (VALID) or certainly breaks (INVALID) the model."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if type(value) is not dict:
            return INVALID
        results = []
        for name in shape.required_members:
            if value.get(name) is None:
                results.append(INVALID)
        for name, member in shape.members.items():
            if value.get(name) is not None:
                results.append(model_verdict(member, value[name]))
        return _worst(iter(results))
    if kind == "list":
        if type(value) is not list:
            return INVALID
        if any(item is None for item in value):
            return UNKNOWN
        return _worst(iter([_check_length(len(value), len(value), meta)] + [
            model_verdict(shape.member, item) for item in value
        ]))  # fmt: skip
    if kind == "map":
        if type(value) is not dict:
            return INVALID
        if any(item is None for item in value.values()):
            return UNKNOWN
        results = [_check_length(len(value), len(value), meta)]
        for key, item in value.items():
            results += [model_verdict(shape.key, key), model_verdict(shape.value, item)]
        return _worst(iter(results))
    if kind == "string":
        if type(value) in (int, float, bool):
            return UNKNOWN  # read as its JSON text, whose exact form is Jackson's
        if type(value) is not str:
            return INVALID
        if shape.enum and value not in shape.enum:
            return INVALID
        results = [_check_length(len(value), _utf16_len(value), meta)]
        pattern = meta.get("pattern")
        if pattern:
            ascii_match = re.fullmatch(pattern, value, re.ASCII) is not None
            unicode_match = re.fullmatch(pattern, value) is not None
            results.append(VALID if ascii_match and unicode_match else (
                INVALID if not ascii_match and not unicode_match else UNKNOWN))  # fmt: skip
        return _worst(iter(results))
    if kind == "blob":
        if type(value) is not str:
            return INVALID
        if re.fullmatch(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", value) is None:
            return UNKNOWN  # how lenient AWS's base64 decoder is is not known
        size = len(base64.b64decode(value))
        return _check_length(size, size, meta)
    if kind in ("integer", "long"):
        if type(value) is float:
            return UNKNOWN if value.is_integer() else INVALID
        if type(value) is not int:
            return INVALID
        if not -(2**31) <= value < 2**31:
            return INVALID
        low, high = meta.get("min"), meta.get("max")
        return INVALID if (low is not None and value < low) or (high is not None and value > high) else VALID
    if kind == "boolean":
        return VALID if type(value) is bool else INVALID
    if kind == "timestamp":
        if type(value) in (list, dict, bool):
            return INVALID
        return VALID if type(value) is int and 0 <= value < 10**11 else UNKNOWN
    raise AssertionError(kind)


# --- the wire ------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Wire:
    """Signed POSTs over one keep-alive connection (reopened when the server closes it)."""

    def __init__(self, server: Server, access_key: str, secret_key: str) -> None:
        self.endpoint = server.endpoint
        self.credentials = Credentials(access_key, secret_key)
        self.http = KeepAlive("127.0.0.1", server.port, TIMEOUT)

    @property
    def count(self) -> int:
        return self.http.count

    def close(self) -> None:
        self.http.close()

    def signed_headers(
        self,
        target: str | None,
        body: bytes,
        *,
        content_type: str | None = JSON_CT,
        method: str = "POST",
        path: str = "/",
        token: str | None = None,
    ) -> dict[str, str]:
        headers: dict[str, str] = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if target is not None:
            headers["X-Amz-Target"] = target
        request = AWSRequest(method=method, url=self.endpoint + path, data=body, headers=headers)
        creds = self.credentials if token is None else Credentials(
            self.credentials.access_key, self.credentials.secret_key, token
        )  # fmt: skip
        SigV4Auth(creds, "kms", REGION).add_auth(request)
        return dict(request.headers.items())

    def send(self, headers: dict[str, str], body: bytes, *, method: str = "POST", path: str = "/") -> Reply:
        status, answered, data = self.http.exchange(method, path, body, headers)
        return Reply(status, {k.lower(): v for k, v in answered}, data)

    def call(self, operation: str, body: bytes) -> Reply:
        return self.send(self.signed_headers(f"TrentService.{operation}", body), body)


# --- judging answers -----------------------------------------------------------------------------------


@dataclass
class Outcomes:
    failures: list[str] = field(default_factory=list)
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)

    def fail(self, operation: str, body: bytes, problem: str, reply: Reply | None) -> None:
        shown = body if len(body) <= 600 else body[:600] + b"...(%d bytes)" % len(body)
        answer = "" if reply is None else f" -> {reply.status} {reply.body[:400]!r}"
        self.failures.append(f"{operation}: {problem}\n    request: {shown!r}{answer}")


def judge(
    outcomes: Outcomes,
    operation: str,
    body: bytes,
    reply: Reply,
    allowed: frozenset[str],
    verdict: str = UNKNOWN,
) -> dict[str, Any] | None:
    """Check one answer; returns the parsed body of a 200 (or None)."""
    if reply.status >= 500:
        outcomes.fail(operation, body, f"HTTP {reply.status}", reply)
        return None
    if reply.status == 200:
        outcomes.codes[(operation, "200")] += 1
        if verdict == INVALID:
            outcomes.fail(operation, body, "a request that breaks the model was accepted", reply)
        if not reply.body:
            return None
        try:
            parsed = json.loads(reply.body)
        except ValueError:
            outcomes.fail(operation, body, "a 200 whose body is not JSON", reply)
            return None
        if not isinstance(parsed, dict):
            outcomes.fail(operation, body, "a 200 whose body is not a JSON object", reply)
            return None
        return parsed
    try:
        error = json.loads(reply.body)
    except ValueError:
        outcomes.fail(operation, body, "an error whose body is not JSON", reply)
        return None
    if not isinstance(error, dict) or not isinstance(error.get("__type"), str):
        outcomes.fail(operation, body, "an error without __type", reply)
        return None
    code = error["__type"]
    outcomes.codes[(operation, code)] += 1
    if not isinstance(error.get("message"), str):
        outcomes.fail(operation, body, "an error without message", reply)
    if reply.headers.get("content-type") != JSON_CT:
        outcomes.fail(operation, body, f"error Content-Type {reply.headers.get('content-type')}", reply)
    if code not in allowed:
        outcomes.fail(operation, body, f"{code} is neither modeled for {operation} nor a common error", reply)
    if reply.status not in ERROR_STATUS.get(code, frozenset({400})):
        outcomes.fail(operation, body, f"{code} answered with HTTP {reply.status}", reply)
    if verdict == INVALID and code not in INPUT_ERRORS:
        outcomes.fail(
            operation, body, f"a request that breaks the model got {code}, not a validation error", reply
        )
    return None


def answer_code(reply: Reply) -> str:
    """ "200", or the error code of an error answer ("?" if it has none)."""
    if reply.status == 200:
        return "200"
    try:
        error = json.loads(reply.body)
    except ValueError:
        return "?"
    return str(error.get("__type", "?")) if isinstance(error, dict) else "?"


def harvest(pools: Pools, result: dict[str, Any] | None) -> None:
    """Keep what a successful call made, for the cases that follow."""
    if not result:
        return
    md = result.get("KeyMetadata")
    if isinstance(md, dict) and "KeyId" in md:
        pools.add(pools.key_refs, md["KeyId"], cap=120)
    if isinstance(result.get("GrantId"), str):
        pools.add(pools.grant_ids, result["GrantId"])
    if isinstance(result.get("GrantToken"), str):
        pools.add(pools.grant_tokens, result["GrantToken"])
    if isinstance(result.get("NextMarker"), str):
        pools.add(pools.markers, result["NextMarker"])
    if isinstance(result.get("CiphertextBlob"), str):
        pools.add(pools.ciphertexts, base64.b64decode(result["CiphertextBlob"]))
    if isinstance(result.get("ImportToken"), str):
        pools.add(pools.import_tokens, base64.b64decode(result["ImportToken"]))


# --- raw requests --------------------------------------------------------------------------------------


@dataclass
class RawCase:
    label: str
    operation: str | None  # whose modeled errors are allowed
    body: bytes
    target: str | None = "TrentService.ListKeys"
    content_type: str | None = JSON_CT
    method: str = "POST"
    path: str = "/"
    token: str | None = None
    mutate: Callable[[dict[str, str]], None] | None = None
    sign: bool = True
    appended: bytes = b""  # sent after the body that was signed
    bad_http: bool = False  # the HTTP layer may refuse it with a bare 400
    expect: str | None = None  # the one right answer ("200" or an error code), when known


def _nested(levels: int, opening: str = '{"a":', closing: str = "}") -> bytes:
    return (opening * levels + "1" + closing * levels).encode()


def _set(name: str, value: str | None) -> Callable[[dict[str, str]], None]:
    def mutate(headers: dict[str, str]) -> None:
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        if value is not None:
            headers[name] = value

    return mutate


def _op(label: str, operation: str, document: dict[str, Any], expect: str | None = None) -> RawCase:
    body = json.dumps(document).encode()
    return RawCase(label, operation, body, target=f"TrentService.{operation}", expect=expect)


def raw_cases(pools: Pools) -> list[RawCase]:
    key = pools.key_refs[0]
    big_context = {f"k{i}": "v" for i in range(12_000)}
    cases = [
        RawCase("not JSON", "ListKeys", b"{not json"),
        RawCase("truncated JSON", "Encrypt", b'{"KeyId": "' + key.encode()),
        RawCase("JSON array", "ListKeys", b"[1, 2]"),
        RawCase("JSON string", "ListKeys", b'"hello"'),
        RawCase("JSON number", "ListKeys", b"42"),
        RawCase("JSON null", "ListKeys", b"null"),
        RawCase("JSON true", "ListKeys", b"true"),
        RawCase("whitespace", "ListKeys", b" \n\t "),
        RawCase("empty body, required members", "Encrypt", b"", target="TrentService.Encrypt"),
        RawCase("NaN", "GenerateRandom", b'{"NumberOfBytes": NaN}', target="TrentService.GenerateRandom"),
        RawCase("1e400", "GenerateRandom", b'{"NumberOfBytes": 1e400}', target="TrentService.GenerateRandom"),
        RawCase("huge integer", "ListKeys", b'{"Limit": 123456789012345678901234567890}'),
        RawCase("-0", "GenerateRandom", b'{"NumberOfBytes": -0}', target="TrentService.GenerateRandom"),
        RawCase(
            "duplicate members",
            "DescribeKey",
            b'{"KeyId": "' + key.encode() + b'", "KeyId": "alias/x"}',
            target="TrentService.DescribeKey",
        ),
        RawCase("10,000 nested objects", "ListKeys", _nested(10_000)),
        RawCase("10,000 nested arrays", "ListKeys", b'{"a":' + _nested(10_000, "[", "]") + b"}"),
        RawCase("1,000 nested objects", "ListKeys", _nested(1_000)),
        RawCase(
            "nested context",
            "Encrypt",
            json.dumps(
                {"KeyId": key, "Plaintext": "aGk=", "EncryptionContext": json.loads(_nested(40))}
            ).encode(),
            target="TrentService.Encrypt",
        ),
        RawCase(
            "12,000 context pairs",
            "Encrypt",
            json.dumps({"KeyId": key, "Plaintext": "aGk=", "EncryptionContext": big_context}).encode(),
            target="TrentService.Encrypt",
        ),
        RawCase(
            "just under the body limit",
            "Encrypt",
            json.dumps({"KeyId": key, "Plaintext": "aGk=", "Padding": "x" * 500_000}).encode(),
            target="TrentService.Encrypt",
        ),
        RawCase("600 KB body", "ListKeys", json.dumps({"Padding": "x" * 600_000}).encode()),
        RawCase("5 MB body", "ListKeys", b'{"Padding": "' + b"x" * 5_000_000 + b'"}'),
        RawCase(
            "invalid UTF-8 in a string",
            "DescribeKey",
            b'{"KeyId": "\xff\xfe"}',
            target="TrentService.DescribeKey",
        ),
        RawCase("invalid UTF-8 outside strings", "ListKeys", b"\xff\xfe{}"),
        RawCase("UTF-16 JSON", "ListKeys", '{"Limit": 1}'.encode("utf-16")),
        RawCase("UTF-8 BOM", "ListKeys", b'\xef\xbb\xbf{"Limit": 1}'),
        RawCase("lone surrogate", "DescribeKey", b'{"KeyId": "\\ud800"}', target="TrentService.DescribeKey"),
        RawCase(
            "NUL in a key id", "DescribeKey", b'{"KeyId": "abc\\u0000def"}', target="TrentService.DescribeKey"
        ),
        RawCase(
            "raw UTF-8 description",
            "CreateKey",
            '{"Description": "clé ☃ \U0001d11e"}'.encode(),
            target="TrentService.CreateKey",
        ),
        RawCase("text/plain", "ListKeys", b"{}", content_type="text/plain"),
        RawCase("application/json", "ListKeys", b"{}", content_type="application/json"),
        RawCase("form content type", "ListKeys", b"{}", content_type="application/x-www-form-urlencoded"),
        RawCase("no content type", "ListKeys", b"{}", content_type=None),
        RawCase("JSON 1.0", "ListKeys", b"{}", content_type="application/x-amz-json-1.0"),
        RawCase("no target", None, b"{}", target=None),
        RawCase("empty target", None, b"{}", target=""),
        RawCase("prefix only", None, b"{}", target="TrentService."),
        RawCase("lower-case operation", None, b"{}", target="TrentService.listkeys"),
        RawCase("other service", None, b"{}", target="AWSSecurityTokenServiceV20110615.GetCallerIdentity"),
        RawCase("non-ASCII target", None, b"{}", target="TrentService.Lïst"),
        RawCase("NUL in the target", None, b"{}", target="TrentService.List\x00Keys", bad_http=True),
        RawCase(
            "control characters in the target", None, b"{}", target="TrentService.\x01\x7f", bad_http=True
        ),
        RawCase("PUT", "ListKeys", b"{}", method="PUT"),
        RawCase("DELETE", "ListKeys", b"{}", method="DELETE"),
        RawCase("other path", "ListKeys", b"{}", path="/some/path"),
        RawCase("query string", "ListKeys", b"{}", path="/?Action=ListKeys&x=%ZZ"),
        RawCase("garbage session token", "ListKeys", b"{}", token="garbage-token"),  # noqa: S106
        RawCase("unsigned", "ListKeys", b"{}", sign=False),
        RawCase("body changed after signing", "ListKeys", b"{}", appended=b" "),
    ]
    sym = pools.keys["sym"][0]
    ignore = {"DryRun": True, "DryRunModifiers": ["IGNORE_CIPHERTEXT"]}
    cases += [
        # found by this test: requests that once got a 500
        _op("Decrypt without CiphertextBlob", "Decrypt", {"KeyId": sym}, "ValidationException"),
        _op("dry run ignoring the ciphertext", "Decrypt", {"KeyId": sym, **ignore},
            "DryRunOperationException"),
        _op("dry run ignoring the ciphertext, no key", "Decrypt", ignore, "ValidationException"),
        _op("ReEncrypt without CiphertextBlob", "ReEncrypt", {"DestinationKeyId": sym},
            "ValidationException"),
        _op("ReEncrypt dry run ignoring the ciphertext", "ReEncrypt",
            {"SourceKeyId": sym, "DestinationKeyId": sym, **ignore}, "DryRunOperationException"),
        RawCase("very long target", None, b"{}", target="TrentService." + "A" * 8000,
                expect="UnknownOperationException"),
        # ... after which the audit trail still takes records (a change waits for its record)
        _op("a change after the long target", "TagResource",
            {"KeyId": sym, "Tags": [{"TagKey": "after", "TagValue": "long target"}]}, "200"),
        # U+0000 cannot be stored in PostgreSQL, nor looked up there
        _op("NUL in a description", "CreateKey", {"Description": "a\x00b"}, "ValidationException"),
        _op("NUL in a new description", "UpdateKeyDescription", {"KeyId": sym, "Description": "\x00"},
            "ValidationException"),
        _op("NUL in a tag", "TagResource", {"KeyId": sym, "Tags": [{"TagKey": "k\x00", "TagValue": "v"}]},
            "TagException"),
        _op("NUL in a tag of a new key", "CreateKey", {"Tags": [{"TagKey": "k", "TagValue": "v\x00"}]},
            "TagException"),
        _op("NUL in a grant constraint", "CreateGrant",
            {"KeyId": sym, "GranteePrincipal": pools.principal_arn, "Operations": ["Decrypt"],
             "Constraints": {"EncryptionContextEquals": {"k\x00": "\x00"}}}),
        _op("NUL in an alias name", "DescribeKey", {"KeyId": "alias/a\x00b"}, "NotFoundException"),
        _op("NUL in an alias ARN", "DescribeKey",
            {"KeyId": f"arn:aws:kms:{REGION}:{pools.account_id}:alias/a\x00"}, "NotFoundException"),
        _op("NUL in the account of an alias ARN", "DescribeKey",
            {"KeyId": f"arn:aws:kms:{REGION}:1\x00:alias/fuzz-sym"}, "NotFoundException"),
        _op("NUL in a key ARN", "DescribeKey",
            {"KeyId": f"arn:aws:kms:{REGION}:{pools.account_id}:key/\x00"}, "NotFoundException"),
        _op("NUL in a grant id", "ListGrants", {"KeyId": sym, "GrantId": "\x00"}, "200"),
        _op("NUL in a grant id to revoke", "RevokeGrant", {"KeyId": sym, "GrantId": "a\x00"},
            "NotFoundException"),
        _op("NUL in a grant id to retire", "RetireGrant", {"KeyId": sym, "GrantId": "a\x00"},
            "NotFoundException"),
        _op("NUL in a tag key to remove", "UntagResource", {"KeyId": sym, "TagKeys": ["\x00"]}, "200"),
        _op("NUL in a grantee", "ListGrants", {"KeyId": sym, "GranteePrincipal": "a\x00"}),
        _op("NUL in a policy name", "GetKeyPolicy", {"KeyId": sym, "PolicyName": "\x00"}),
        _op("NUL in a marker", "ListKeys", {"Marker": "\x00"}),
        _op("NUL in an encryption context", "Encrypt",
            {"KeyId": sym, "Plaintext": "aGk=", "EncryptionContext": {"\x00": "\x00"}}, "200"),
    ]  # fmt: skip
    authorizations = [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 ",
        "AWS4-HMAC-SHA256 Credential=, SignedHeaders=, Signature=",
        "AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=zz",
        "AWS4-HMAC-SHA256 Credential=A/x/y/z/w/v/u, SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=////, SignedHeaders=host, Signature=0",
        "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/kms/aws4_request, SignedHeaders=x-missing;host, "
        "Signature=" + "0" * 64,
        "AWS4-HMAC-SHA256 Credential==, SignedHeaders==, Signature==",
        "AWS4-HMAC-SHA256 Credential=é/20240101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0",
        "AWS4-HMAC-SHA512 Credential=A/20240101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=0",
        "Basic dXNlcjpwYXNz",
        "Bearer x",
        ",,,,",
        "AWS4-HMAC-SHA256 Credential=" + "A" * 10_000 + ", SignedHeaders=host, Signature=0",
        "AWS4-HMAC-SHA256 Credential=AK\x00IA/20240101/us-east-1/kms/aws4_request, SignedHeaders=host, "
        "Signature=0",
        "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/kms/aws4_request, SignedHeaders=ho\x00st, "
        "Signature=0",
    ]
    for i, auth in enumerate(authorizations):
        cases.append(
            RawCase(
                f"Authorization #{i}",
                "ListKeys",
                b"{}",
                mutate=_set("Authorization", auth),
                bad_http="\x00" in auth,
            )
        )
    dates = [
        "garbage",
        "",
        "20240230T000000Z",
        "99999999T999999Z",
        "00000101T000000Z",
        "2024-01-01T00:00:00Z",
    ]
    for i, date in enumerate(dates):
        cases.append(RawCase(f"X-Amz-Date #{i}", "ListKeys", b"{}", mutate=_set("X-Amz-Date", date)))
    http_dates = [
        ("Mon, 01 Jan 0001 00:00:00 +0100", None),  # a two-digit year: 2001
        ("Mon, 01 Jan 0100 00:00:00 +0100", None),
        ("Fri, 31 Dec 9999 23:59:59 -0100", "IncompleteSignatureException"),  # once a 500: past 9999
        ("Mon, 01 Jan 2024 00:00:00 GMT", None),
        ("Mon, 99 Foo 2024 99:99:99 GMT", None),
        ("Mon, 01 Jan 2024 00:00:00 +9999", None),
        ("0", None),
    ]
    for i, (date, expect) in enumerate(http_dates):

        def date_only(headers: dict[str, str], date: str = date) -> None:
            _set("X-Amz-Date", None)(headers)
            headers["Date"] = date

        cases.append(RawCase(f"Date #{i}", "ListKeys", b"{}", mutate=date_only, expect=expect))
    return cases


def send_raw(wire: Wire, case: RawCase) -> Reply:
    if case.sign:
        headers = wire.signed_headers(
            case.target,
            case.body,
            content_type=case.content_type,
            method=case.method,
            path=case.path,
            token=case.token,
        )
    else:
        headers = {"Content-Type": case.content_type or JSON_CT, "X-Amz-Target": case.target or ""}
    if case.mutate is not None:
        case.mutate(headers)
    return wire.send(headers, case.body + case.appended, method=case.method, path=case.path)


# --- the test ------------------------------------------------------------------------------------------


def _server_log_tail(server: Server, lines: int = 80) -> str:
    if server.log_path is None or not server.log_path.exists():
        return ""
    text = server.log_path.read_text(errors="replace").splitlines()[-lines:]
    return "\n--- end of the server log ---\n" + "\n".join(text)


def test_no_request_gets_a_5xx_or_hangs(server: Server) -> None:
    started = time.monotonic()
    account = server.new_account()
    access_key, secret_key = account["AccessKeyId"], account["SecretAccessKey"]
    kms = server.client(access_key=access_key, secret_key=secret_key)
    sts = server.client("sts", access_key=access_key, secret_key=secret_key)
    pools = build_pools(kms, sts, server, account["AccountId"])
    wire = Wire(server, access_key, secret_key)
    outcomes = Outcomes()
    rng = random.Random(SEED)
    generator = Generator(rng, pools)
    trace: list[str] = []
    try:
        for case in raw_cases(pools):
            label = f"{case.operation or 'no operation'} [{case.label}]"
            try:
                reply = send_raw(wire, case)
            except NoAnswer as exc:
                outcomes.fail(label, case.body, str(exc), None)
                continue
            trace.append(f"{label[:100]} {case.body[:200]!r} -> {reply.status} {reply.body[:300]!r}")
            if case.bad_http and reply.status == 400 and not reply.body.startswith(b"{"):
                continue  # refused by the HTTP parser, before the application
            judge(outcomes, label, case.body, reply, allowed_errors(case.operation))
            if case.expect is not None and answer_code(reply) != case.expect:
                outcomes.fail(label, case.body, f"expected {case.expect}", reply)

        for operation in operation_order():
            shape = MODEL.operation_model(operation).input_shape
            allowed = allowed_errors(operation)
            for _ in range(CASES_PER_OPERATION):
                document = generator.body(operation, shape)
                verdict = VALID if shape is None else model_verdict(shape, document)
                body = json.dumps(document, ensure_ascii=rng.random() < 0.7).encode()
                try:
                    reply = wire.call(operation, body)
                except NoAnswer as exc:
                    outcomes.fail(operation, body, str(exc), None)
                    continue
                trace.append(
                    f"{operation} level={generator.level} {verdict} {body[:300]!r}"
                    f" -> {reply.status} {reply.body[:300]!r}"
                )
                harvest(pools, judge(outcomes, operation, body, reply, allowed, verdict))
    finally:
        wire.close()

    # The server still works, for the fuzzed account and for the fixture's.
    try:
        for client in (kms, server.client()):
            key_id = client.create_key()["KeyMetadata"]["KeyId"]
            blob = client.encrypt(KeyId=key_id, Plaintext=b"still healthy")["CiphertextBlob"]
            assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"still healthy"
    except Exception as exc:  # reported with the other failures
        outcomes.failures.append(f"the server is unwell after the fuzz: {exc!r}")

    elapsed = time.monotonic() - started
    print(f"{wire.count} requests in {elapsed:.1f} s (seed {SEED})")
    if os.environ.get("OPENKMS_FUZZ_TRACE"):  # a directory: every request and answer, for debugging
        backend = "sqlite" if server.database_url is None else "postgres"
        out = Path(os.environ["OPENKMS_FUZZ_TRACE"])
        (out / f"fuzz-{backend}.trace").write_text("\n".join(trace) + "\n")
        codes = (f"{op} {code} {n}" for (op, code), n in sorted(outcomes.codes.items()))
        (out / f"fuzz-{backend}.codes").write_text("\n".join(codes) + "\n")
        if server.log_path is not None:
            (out / f"fuzz-{backend}.server.log").write_bytes(server.log_path.read_bytes())
    assert not outcomes.failures, (
        f"{len(outcomes.failures)} of {wire.count} requests were answered wrongly (seed {SEED}):\n"
        + "\n".join(outcomes.failures)
        + _server_log_tail(server)
    )
