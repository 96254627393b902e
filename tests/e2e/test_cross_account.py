"""Tenant isolation between two accounts, cell by cell: every one of the 54 KMS operations x {A's
administrator on A's key, a user of B whom A's key policy and B's IAM allow, a user of B whom only
B's IAM allows} x {key id, key ARN, alias ARN}, each cell asserting AWS's answer, and A's key
unchanged by B afterwards.

AWS's rule (the "Cross-account use" sentence of each operation in botocore's KMS model, the table in
``openkms.domain.operations``): an operation whose cross-account use is Yes accepts another account's
key by key ARN or alias ARN, and the key policy plus the caller's IAM policies decide (success, or
AccessDeniedException with AWS's message); every other operation answers as the caller's own
account does — NotFoundException "Key 'arn:aws:kms:<region>:<caller account>:key/<id>' does not
exist" — whatever the policies say, and whether or not the key exists. A bare key id always names a
key of the caller's own account.

One server per backend, the keys created once per module. The cells are one table: ``ROWS``, one row
per operation that takes a key (ReEncrypt twice: the key as source and as destination), and
``KEYLESS``, the operations that take none, each caller getting its own account's answer. The review's
attack (PutKeyPolicy, ScheduleKeyDeletion, CreateAlias in B to A's key) has named tests below.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from openkms.domain.operations import CROSS_ACCOUNT
from tests.conftest import BIN, REGION, Server
from tests.e2e.console.http import ConsoleHttp
from tests.e2e.importing import wrap
from tests.e2e.util import AwsError, audit_list, aws_error, retry, wait_for_audit

MODEL = botocore.session.get_session().get_service_model("kms")
MODEL_OPERATIONS = frozenset(MODEL.operation_names)
KINDS = {
    "sym": {},
    "sign": {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"},
    "hmac": {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"},
    "agree": {"KeySpec": "ECC_NIST_P256", "KeyUsage": "KEY_AGREEMENT"},
    "external": {"Origin": "EXTERNAL"},
    "mrk": {"MultiRegion": True},  # replicated into REPLICA_REGION when the world is made
}
REPLICA_REGION = "us-west-2"
# Regions the ReplicateKey cells replicate into, one per call (a Region holds one key of a set).
_AREAS = ("eu-west", "eu-central", "ap-south", "ap-northeast", "sa-east")
FRESH_REGIONS = tuple(f"{area}-{n}" for area in _AREAS for n in (1, 2, 3))
DESCRIPTION = "cross-account matrix"
TAG = {"TagKey": "matrix", "TagValue": "1"}
MESSAGE = b"cross-account matrix"
WRAPPING = {"WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}


def statement(principal: str, sid: str) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "kms:*",
        "Resource": "*",
    }


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


# --- the world: accounts A and B, their principals and A's keys ------------------------------------------


@dataclass
class Key:
    kind: str
    shared: bool  # A's key policy allows account B kms:*
    id: str
    arn: str
    alias_name: str
    alias_arn: str
    ciphertext: bytes = b""
    signature: bytes = b""
    mac: bytes = b""
    material: bytes = b""


@dataclass
class Caller:
    name: str  # "A" (A's administrator) or "B" (a user of B with IAM kms:*)
    kms: Any
    account: str
    arn: str
    access_key: str
    secret_key: str
    own_key: str = ""  # the ARN of a symmetric key of the caller's own account
    own_ciphertext: bytes = b""
    own_alias: str = ""  # an alias of the caller's account, on own_key


@dataclass
class World:
    server: Server
    a: Caller
    b: Caller
    keys: dict[tuple[str, bool], Key] = field(default_factory=dict)
    policies: dict[bool, str] = field(default_factory=dict)  # shared? -> A's key policy text
    public_key: bytes = b""  # a P-256 public key of a peer (DeriveSharedSecret)
    fresh_regions: Iterator[str] = field(default_factory=lambda: iter(FRESH_REGIONS))

    def key(self, kind: str, shared: bool) -> Key:
        return self.keys[(kind, shared)]

    def a_in(self, region: str) -> Any:
        """A's administrator's KMS client in another Region."""
        return self.server.client(region=region, access_key=self.a.access_key, secret_key=self.a.secret_key)

    def import_token(self, key: Key) -> dict[str, Any]:
        """Fresh import parameters of A's key and its material wrapped with them."""
        p = self.a.kms.get_parameters_for_import(KeyId=key.id, **WRAPPING)
        return {
            "ImportToken": p["ImportToken"],
            "EncryptedKeyMaterial": wrap(WRAPPING["WrappingAlgorithm"], p["PublicKey"], key.material),
            "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE",
        }


def _make_world(server: Server) -> World:
    creds_a, creds_b = server.new_account(), server.new_account()
    a_kms = server.client(access_key=creds_a["AccessKeyId"], secret_key=creds_a["SecretAccessKey"])
    a_iam = server.client("iam", access_key=creds_a["AccessKeyId"], secret_key=creds_a["SecretAccessKey"])
    b_iam = server.client("iam", access_key=creds_b["AccessKeyId"], secret_key=creds_b["SecretAccessKey"])
    a_arn = a_iam.get_user()["User"]["Arn"]
    name = "bob-" + uuid.uuid4().hex[:8]
    bob_arn = b_iam.create_user(UserName=name)["User"]["Arn"]
    b_iam.put_user_policy(
        UserName=name,
        PolicyName="kms-all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
        ),
    )
    bob_key = b_iam.create_access_key(UserName=name)["AccessKey"]
    bob = server.client(access_key=bob_key["AccessKeyId"], secret_key=bob_key["SecretAccessKey"])
    a = Caller("A", a_kms, creds_a["AccountId"], a_arn, creds_a["AccessKeyId"], creds_a["SecretAccessKey"])
    b = Caller("B", bob, creds_b["AccountId"], bob_arn, bob_key["AccessKeyId"], bob_key["SecretAccessKey"])
    world = World(server, a, b)
    world.policies = {
        True: policy(
            statement(f"arn:aws:iam::{a.account}:root", "Enable IAM User Permissions"),
            statement(f"arn:aws:iam::{b.account}:root", "Allow account B"),
        ),
        False: policy(statement(f"arn:aws:iam::{a.account}:root", "Enable IAM User Permissions")),
    }
    suffix = uuid.uuid4().hex[:8]
    for kind, spec in KINDS.items():
        for shared in (True, False):
            meta = a.kms.create_key(
                Policy=world.policies[shared], Description=DESCRIPTION, Tags=[TAG], **spec
            )["KeyMetadata"]
            alias = f"alias/xacct-{kind}-{'shared' if shared else 'private'}-{suffix}"
            a.kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
            key = Key(
                kind, shared, meta["KeyId"], meta["Arn"], alias, f"arn:aws:kms:{REGION}:{a.account}:{alias}"
            )
            if kind == "sym":
                key.ciphertext = a.kms.encrypt(KeyId=key.id, Plaintext=MESSAGE)["CiphertextBlob"]
            elif kind == "sign":
                key.signature = a.kms.sign(KeyId=key.id, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256")[
                    "Signature"
                ]
            elif kind == "hmac":
                key.mac = a.kms.generate_mac(KeyId=key.id, Message=MESSAGE, MacAlgorithm="HMAC_SHA_256")[
                    "Mac"
                ]
            elif kind == "external":
                key.material = os.urandom(32)
                a.kms.import_key_material(KeyId=key.id, **world.import_token(key))
            elif kind == "mrk":
                a.kms.replicate_key(KeyId=key.id, ReplicaRegion=REPLICA_REGION)
                _wait_enabled(world.a_in(REPLICA_REGION), key.id)
            world.keys[(kind, shared)] = key
    # Each caller's own symmetric key (the other side of ReEncrypt) and an alias on it (UpdateAlias).
    for caller in (a, b):
        own = retry(lambda c=caller: c.kms.create_key(Description="own key")["KeyMetadata"], within=3.0)
        caller.own_key = own["Arn"]
        caller.own_ciphertext = caller.kms.encrypt(KeyId=own["KeyId"], Plaintext=MESSAGE)["CiphertextBlob"]
        caller.own_alias = f"alias/xacct-own-{caller.name}-{suffix}"
        caller.kms.create_alias(AliasName=caller.own_alias, TargetKeyId=own["KeyId"])
    peer = ec.generate_private_key(ec.SECP256R1()).public_key()
    world.public_key = peer.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return world


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    return _make_world(server)


def snapshot(w: World, key: Key) -> tuple[Any, ...]:
    """What another account must never change of A's key: metadata (state, description…), policy,
    tags and aliases, read by A's administrator."""
    a = w.a.kms
    metadata = a.describe_key(KeyId=key.id)["KeyMetadata"]
    return (
        metadata,
        a.get_key_policy(KeyId=key.id, PolicyName="default")["Policy"],
        a.list_resource_tags(KeyId=key.id)["Tags"],
        sorted(x["AliasName"] for x in a.list_aliases(KeyId=key.id)["Aliases"]),
    )


# --- the rows ------------------------------------------------------------------------------------------

Params = Callable[[World, Caller, str, Key], dict[str, Any]]
Undo = Callable[[World, Key], None]


@dataclass(frozen=True)
class Row:
    """One operation taking a key: its parameters built from a key reference, as a given caller."""

    operation: str
    kind: str
    params: Params
    aliases: bool = False  # accepts alias names and alias ARNs
    action: str = ""  # the kms: action AccessDenied names (default: the operation)
    label: str = ""  # distinguishes two rows of one operation
    returns: str | None = "KeyId"  # the response member naming the key by ARN (None: none does)
    undo: Undo | None = None  # run by A after each of A's own cells (idempotent)
    # The AccessDenied message when the key policy does not allow B (default: AWS's "no
    # resource-based policy allows" message).
    denied: Callable[[World, Key], str] | None = None

    @property
    def name(self) -> str:
        return self.label or self.operation


def _key_id(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"KeyId": ref}


def _with(**extra: Any) -> Params:
    def build(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
        return {"KeyId": ref, **extra}

    return build


def _fresh_alias(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"AliasName": "alias/xacct-new-" + uuid.uuid4().hex[:10], "TargetKeyId": ref}


def _grant_id(w: World, k: Key, retiring: str | None = None) -> str:
    extra = {"RetiringPrincipal": retiring} if retiring else {}
    grant: str = w.a.kms.create_grant(KeyId=k.id, GranteePrincipal=w.a.arn, Operations=["Decrypt"], **extra)[
        "GrantId"
    ]
    return grant


def _retire(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    # The retiring principal may retire a grant whatever the key policy says (the grant decides):
    # on A's private key the grant names no principal of B, so B is not allowed.
    retiring = c.arn if (c is w.a or k.shared) else w.a.arn
    return {"KeyId": ref, "GrantId": _grant_id(w, k, retiring)}


def _retire_denied(w: World, k: Key) -> str:
    return (
        f"User: {w.b.arn} is not authorized to perform: kms:RetireGrant on resource: {k.arn} "
        "because no resource-based policy allows the kms:RetireGrant action"
    )


def _restore_state(w: World, k: Key) -> None:
    state = w.a.kms.describe_key(KeyId=k.id)["KeyMetadata"]["KeyState"]
    if state == "PendingDeletion":
        w.a.kms.cancel_key_deletion(KeyId=k.id)
    w.a.kms.enable_key(KeyId=k.id)


def _wait_enabled(kms: Any, key_id: str) -> None:
    """Until a multi-Region key has left its transient state (Creating, Updating)."""
    deadline = time.time() + 10
    while kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] != "Enabled":
        assert time.time() < deadline, key_id
        time.sleep(0.1)


def _fresh_region(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"KeyId": ref, "ReplicaRegion": next(w.fresh_regions)}


def _primary_back(w: World, k: Key) -> None:
    """After A's UpdatePrimaryRegion: the primary back in A's Region (both keys Enabled)."""
    replica = w.a_in(REPLICA_REGION)
    _wait_enabled(w.a.kms, k.id)
    _wait_enabled(replica, k.id)
    config = replica.describe_key(KeyId=k.id)["KeyMetadata"]["MultiRegionConfiguration"]
    if config["MultiRegionKeyType"] == "PRIMARY":
        replica.update_primary_region(KeyId=k.id, PrimaryRegion=REGION)
        _wait_enabled(w.a.kms, k.id)
        _wait_enabled(replica, k.id)


def _cancel(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    if c is w.a:
        w.a.kms.schedule_key_deletion(KeyId=k.id, PendingWindowInDays=7)
    return {"KeyId": ref}


def _put_policy(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    # A puts its own policy back; B tries the review's attack: a policy naming only B.
    text = (
        w.policies[k.shared] if c is w.a else policy(statement(f"arn:aws:iam::{w.b.account}:root", "B only"))
    )
    return {"KeyId": ref, "PolicyName": "default", "Policy": text}


def _update_alias(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"AliasName": c.own_alias, "TargetKeyId": ref}


def _undo_update_alias(w: World, k: Key) -> None:
    w.a.kms.update_alias(AliasName=w.a.own_alias, TargetKeyId=w.a.own_key)


def _decrypt(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"KeyId": ref, "CiphertextBlob": k.ciphertext}


def _re_encrypt_source(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"CiphertextBlob": k.ciphertext, "SourceKeyId": ref, "DestinationKeyId": c.own_key}


def _re_encrypt_destination(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"CiphertextBlob": c.own_ciphertext, "DestinationKeyId": ref}


def _verify(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"KeyId": ref, "Message": MESSAGE, "Signature": k.signature, "SigningAlgorithm": "ECDSA_SHA_256"}


def _verify_mac(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"KeyId": ref, "Message": MESSAGE, "Mac": k.mac, "MacAlgorithm": "HMAC_SHA_256"}


def _derive(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"KeyId": ref, "KeyAgreementAlgorithm": "ECDH", "PublicKey": w.public_key}


def _create_grant(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"KeyId": ref, "GranteePrincipal": c.arn, "Operations": ["Decrypt"]}


def _revoke(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"KeyId": ref, "GrantId": _grant_id(w, k)}


def _import(w: World, c: Caller, ref: str, k: Key) -> dict[str, Any]:
    return {"KeyId": ref, **w.import_token(k)}


def _reimport(w: World, k: Key) -> None:
    w.a.kms.import_key_material(KeyId=k.id, **w.import_token(k))


def _a(call: Callable[[Any, Key], Any]) -> Undo:
    def undo(w: World, k: Key) -> None:
        call(w.a.kms, k)

    return undo


ROWS: tuple[Row, ...] = (
    # Cross-account use: Yes.
    Row("Encrypt", "sym", _with(Plaintext=MESSAGE), aliases=True),
    Row("Decrypt", "sym", _decrypt, aliases=True),
    Row(
        "ReEncrypt",
        "sym",
        _re_encrypt_source,
        aliases=True,
        action="ReEncryptFrom",
        label="ReEncrypt[source]",
        returns="SourceKeyId",
    ),
    Row(
        "ReEncrypt",
        "sym",
        _re_encrypt_destination,
        aliases=True,
        action="ReEncryptTo",
        label="ReEncrypt[destination]",
    ),
    Row("GenerateDataKey", "sym", _with(NumberOfBytes=32), aliases=True),
    Row("GenerateDataKeyWithoutPlaintext", "sym", _with(KeySpec="AES_256"), aliases=True),
    Row("GenerateDataKeyPair", "sym", _with(KeyPairSpec="ECC_NIST_P256"), aliases=True),
    Row("GenerateDataKeyPairWithoutPlaintext", "sym", _with(KeyPairSpec="ECC_NIST_P256"), aliases=True),
    Row("DescribeKey", "sym", _key_id, aliases=True, returns=None),
    Row("GetKeyRotationStatus", "sym", _key_id),
    Row("CreateGrant", "sym", _create_grant, returns=None),
    Row("ListGrants", "sym", _key_id, returns=None),
    Row("RevokeGrant", "sym", _revoke, returns=None),
    Row("RetireGrant", "sym", _retire, returns=None, denied=_retire_denied),
    Row("Sign", "sign", _with(Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256"), aliases=True),
    Row("Verify", "sign", _verify, aliases=True),
    Row("GetPublicKey", "sign", _key_id, aliases=True),
    Row("GenerateMac", "hmac", _with(Message=MESSAGE, MacAlgorithm="HMAC_SHA_256"), aliases=True),
    Row("VerifyMac", "hmac", _verify_mac, aliases=True),
    Row("DeriveSharedSecret", "agree", _derive, aliases=True),
    # Cross-account use: No.
    Row("DisableKey", "sym", _key_id, returns=None, undo=_restore_state),
    Row("EnableKey", "sym", _key_id, returns=None),
    Row("UpdateKeyDescription", "sym", _with(Description=DESCRIPTION), returns=None),
    Row("ScheduleKeyDeletion", "sym", _with(PendingWindowInDays=7), undo=_restore_state),
    Row("CancelKeyDeletion", "sym", _cancel, undo=_restore_state),
    Row("GetKeyPolicy", "sym", _with(PolicyName="default"), returns=None),
    Row("PutKeyPolicy", "sym", _put_policy, returns=None),
    Row("ListKeyPolicies", "sym", _key_id, returns=None),
    Row("TagResource", "sym", _with(Tags=[TAG]), returns=None),
    Row("UntagResource", "sym", _with(TagKeys=["absent"]), returns=None),
    Row("ListResourceTags", "sym", _key_id, returns=None),
    # A's new aliases stay (B's cells are compared with a snapshot taken after A's).
    Row("CreateAlias", "sym", _fresh_alias, returns=None),
    Row("UpdateAlias", "sym", _update_alias, returns=None, undo=_undo_update_alias),
    Row("ListAliases", "sym", _key_id, returns=None),
    Row(
        "EnableKeyRotation",
        "sym",
        _key_id,
        returns=None,
        undo=_a(lambda a, k: a.disable_key_rotation(KeyId=k.id)),
    ),
    Row("DisableKeyRotation", "sym", _key_id, returns=None),
    Row("RotateKeyOnDemand", "sym", _key_id),
    Row("ListKeyRotations", "sym", _key_id, returns=None),
    Row("GetKeyLastUsage", "sym", _key_id),
    Row("GetParametersForImport", "external", _with(**WRAPPING)),
    Row("ImportKeyMaterial", "external", _import),
    Row("DeleteImportedKeyMaterial", "external", _key_id, undo=_reimport),
    Row("ReplicateKey", "mrk", _fresh_region, returns=None),
    Row("UpdatePrimaryRegion", "mrk", _with(PrimaryRegion=REPLICA_REGION), returns=None, undo=_primary_back),
)


def expected_error(w: World, row: Row, caller: Caller, form: str, key: Key) -> AwsError | None:
    """AWS's answer to one cell (None: success)."""
    ref = {"id": key.id, "arn": key.arn, "alias": key.alias_arn}[form]
    if form == "alias" and not row.aliases:
        return AwsError("NotFoundException", f"Invalid arn {ref}", 400)
    if caller is w.a:
        return None
    not_found = AwsError(
        "NotFoundException", f"Key 'arn:aws:kms:{REGION}:{w.b.account}:key/{key.id}' does not exist", 400
    )
    if form == "id" or row.operation not in CROSS_ACCOUNT:
        return not_found
    if key.shared:
        return None
    if row.denied is not None:
        return AwsError("AccessDeniedException", row.denied(w, key), 400)
    action = row.action or row.operation
    return AwsError(
        "AccessDeniedException",
        f"User: {w.b.arn} is not authorized to perform: kms:{action} on resource: {key.arn} "
        f"because no resource-based policy allows the kms:{action} action",
        400,
    )


def call(
    w: World, row: Row, caller: Caller, form: str, key: Key
) -> tuple[dict[str, Any] | None, AwsError | None]:
    ref = {"id": key.id, "arn": key.arn, "alias": key.alias_arn}[form]
    fn = getattr(caller.kms, xform_name(row.operation))
    params = row.params(w, caller, ref, key)
    try:
        return fn(**params), None
    except ClientError as exc:
        return None, AwsError(
            exc.response["Error"]["Code"],
            exc.response["Error"].get("Message", ""),
            exc.response["ResponseMetadata"]["HTTPStatusCode"],
        )


def names_key(row: Row, out: dict[str, Any] | None, key: Key) -> bool:
    """A successful answer names the key it used: by ARN where the row says so, KeyMetadata's Arn."""
    assert out is not None
    if row.returns is not None:
        return bool(out[row.returns] == key.arn)
    if "KeyMetadata" in out:
        return bool(out["KeyMetadata"]["Arn"] == key.arn)
    return True


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_matrix(world: World, row: Row) -> None:
    w = world
    forms = ("id", "arn", "alias")
    shared, private = w.key(row.kind, True), w.key(row.kind, False)
    # A's administrator on A's own key.
    for form in forms:
        want = expected_error(w, row, w.a, form, shared)
        out, got = call(w, row, w.a, form, shared)
        assert got == want, (row.name, "A", form)
        if row.undo is not None:
            row.undo(w, shared)
        if got is None:
            assert names_key(row, out, shared), (row.name, form, out)
    # B's user: on a key whose policy allows B, and on one whose policy does not.
    before = {k.id: snapshot(w, k) for k in (shared, private)}
    for key in (shared, private):
        for form in forms:
            want = expected_error(w, row, w.b, form, key)
            out, got = call(w, row, w.b, form, key)
            assert got == want, (row.name, "B", "shared" if key.shared else "private", form)
            if got is None:
                assert names_key(row, out, key), (row.name, form, out)
    assert {k.id: snapshot(w, k) for k in (shared, private)} == before, row.name


def test_every_operation_has_a_row() -> None:
    covered = {r.operation for r in ROWS} | set(KEYLESS)
    assert covered == MODEL_OPERATIONS


# --- operations that take no key: each caller gets its own account's answer --------------------------------


def _create_key(w: World, c: Caller) -> None:
    meta = c.kms.create_key(Description="made by " + c.name)["KeyMetadata"]
    assert meta["AWSAccountId"] == c.account
    assert meta["Arn"].startswith(f"arn:aws:kms:{REGION}:{c.account}:key/")


def _list_keys(w: World, c: Caller) -> None:
    arns = {k["KeyArn"] for k in c.kms.get_paginator("list_keys").paginate().build_full_result()["Keys"]}
    assert arns and all(a.startswith(f"arn:aws:kms:{REGION}:{c.account}:key/") for a in arns)
    assert c.own_key in arns
    other = w.b if c is w.a else w.a
    assert other.own_key not in arns


def _list_aliases(w: World, c: Caller) -> None:
    aliases = c.kms.get_paginator("list_aliases").paginate().build_full_result()["Aliases"]
    assert all(a["AliasArn"].startswith(f"arn:aws:kms:{REGION}:{c.account}:alias/") for a in aliases)
    names = {a["AliasName"] for a in aliases}
    assert c.own_alias in names
    if c is w.b:
        assert not names & {k.alias_name for k in w.keys.values()}


def _generate_random(w: World, c: Caller) -> None:
    assert len(c.kms.generate_random(NumberOfBytes=16)["Plaintext"]) == 16


def _describe_custom_key_stores(w: World, c: Caller) -> None:
    assert c.kms.describe_custom_key_stores()["CustomKeyStores"] == []


def _list_retirable_grants(w: World, c: Caller) -> None:
    grants = c.kms.list_retirable_grants(RetiringPrincipal=c.arn)["Grants"]
    assert all(g["RetiringPrincipal"] == c.arn for g in grants)


def _delete_alias(w: World, c: Caller) -> None:
    """DeleteAlias names an alias of the caller's own account: B naming A's alias deletes nothing."""
    target = w.key("sym", True)
    if c is w.a:
        name = "alias/xacct-del-" + uuid.uuid4().hex[:10]
        c.kms.create_alias(AliasName=name, TargetKeyId=target.id)
        c.kms.delete_alias(AliasName=name)
        return
    err = aws_error(c.kms.delete_alias, AliasName=target.alias_name)
    assert err == AwsError(
        "NotFoundException",
        f"Alias arn:aws:kms:{REGION}:{w.b.account}:alias/{target.alias_name[6:]} is not found.",
        400,
    )
    assert target.alias_name in {a["AliasName"] for a in w.a.kms.list_aliases(KeyId=target.id)["Aliases"]}


def _no_such_store(operation: str, **params: Any) -> Callable[[World, Caller], None]:
    """A custom key store id names a key store of the caller's own account: one that does not exist
    there is not found, for either account."""

    def run(w: World, c: Caller) -> None:
        err = aws_error(getattr(c.kms, xform_name(operation)), CustomKeyStoreId=STORE, **params)
        assert err == AwsError(
            "CustomKeyStoreNotFoundException", f"Custom key store {STORE} does not exist.", 400
        )

    return run


def _create_custom_key_store(w: World, c: Caller) -> None:
    """No CloudHSM here: CreateCustomKeyStore of the default type (AWS_CLOUDHSM) is refused by name."""
    err = aws_error(c.kms.create_custom_key_store, CustomKeyStoreName="matrix")
    assert err is not None and (err.code, err.status) == ("UnsupportedOperationException", 400)
    assert "AWS_CLOUDHSM" in err.message


STORE = "cks-1234567890abcdef0"
KEYLESS: dict[str, Callable[[World, Caller], None]] = {
    "CreateKey": _create_key,
    "ListKeys": _list_keys,
    "ListAliases": _list_aliases,
    "GenerateRandom": _generate_random,
    "DescribeCustomKeyStores": _describe_custom_key_stores,
    "ListRetirableGrants": _list_retirable_grants,
    "DeleteAlias": _delete_alias,
    "CreateCustomKeyStore": _create_custom_key_store,
    "ConnectCustomKeyStore": _no_such_store("ConnectCustomKeyStore"),
    "DisconnectCustomKeyStore": _no_such_store("DisconnectCustomKeyStore"),
    "UpdateCustomKeyStore": _no_such_store("UpdateCustomKeyStore"),
    "DeleteCustomKeyStore": _no_such_store("DeleteCustomKeyStore"),
}


@pytest.mark.parametrize("operation", sorted(KEYLESS))
def test_keyless(world: World, operation: str) -> None:
    for caller in (world.a, world.b):
        KEYLESS[operation](world, caller)


# --- the review's attack, step by step -----------------------------------------------------------------


def _fresh_shared_key(w: World) -> Key:
    meta = w.a.kms.create_key(Policy=w.policies[True], Description=DESCRIPTION, Tags=[TAG])["KeyMetadata"]
    alias = "alias/xacct-victim-" + uuid.uuid4().hex[:8]
    w.a.kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    return Key("sym", True, meta["KeyId"], meta["Arn"], alias, f"arn:aws:kms:{REGION}:{w.a.account}:{alias}")


def _not_found_in_b(w: World, key_id: str) -> AwsError:
    return AwsError(
        "NotFoundException", f"Key 'arn:aws:kms:{REGION}:{w.b.account}:key/{key_id}' does not exist", 400
    )


def test_b_cannot_replace_a_key_policy(world: World) -> None:
    """The review's takeover: A's policy allows B kms:*, B's user replaces it with one naming only B."""
    w = world
    key = _fresh_shared_key(w)
    before = snapshot(w, key)
    takeover = policy(statement(f"arn:aws:iam::{w.b.account}:root", "B only"))
    for bypass in (False, True):
        err = aws_error(
            w.b.kms.put_key_policy,
            KeyId=key.arn,
            PolicyName="default",
            Policy=takeover,
            BypassPolicyLockoutSafetyCheck=bypass,
        )
        assert err == _not_found_in_b(w, key.id)
    assert snapshot(w, key) == before
    # A still administers its key, and B still uses it as the policy allows.
    w.a.kms.put_key_policy(KeyId=key.id, PolicyName="default", Policy=w.policies[True])
    blob = w.b.kms.encrypt(KeyId=key.arn, Plaintext=b"still mine")["CiphertextBlob"]
    assert w.a.kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"still mine"


def test_b_cannot_schedule_the_deletion_of_a_key(world: World) -> None:
    w = world
    key = _fresh_shared_key(w)
    for days in (7, 30):
        err = aws_error(w.b.kms.schedule_key_deletion, KeyId=key.arn, PendingWindowInDays=days)
        assert err == _not_found_in_b(w, key.id)
    meta = w.a.kms.describe_key(KeyId=key.id)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled" and "DeletionDate" not in meta


def test_b_cannot_make_an_alias_to_a_key(world: World) -> None:
    """An alias points only at a key of its own account: CreateAlias and UpdateAlias in B to A's key."""
    w = world
    key = _fresh_shared_key(w)
    name = "alias/xacct-hijack-" + uuid.uuid4().hex[:8]
    for target in (key.arn, key.id):
        err = aws_error(w.b.kms.create_alias, AliasName=name, TargetKeyId=target)
        assert err == _not_found_in_b(w, key.id)
        err = aws_error(w.b.kms.update_alias, AliasName=w.b.own_alias, TargetKeyId=target)
        assert err == _not_found_in_b(w, key.id)
    b_aliases = {a["AliasName"]: a for a in w.b.kms.list_aliases()["Aliases"]}
    assert name not in b_aliases
    assert b_aliases[w.b.own_alias]["TargetKeyId"] == w.b.own_key.rsplit("/", 1)[1]
    assert [a["AliasName"] for a in w.a.kms.list_aliases(KeyId=key.id)["Aliases"]] == [key.alias_name]


def test_the_reviews_takeover_calls_all_fail(world: World) -> None:
    """Every call of the review, by A's key ARN, from a user of B whom both policies allow kms:*."""
    w = world
    key = _fresh_shared_key(w)
    before = snapshot(w, key)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_key_policy", {"PolicyName": "default"}),
        ("put_key_policy", {"PolicyName": "default", "Policy": w.policies[False]}),
        ("list_key_policies", {}),
        ("list_resource_tags", {}),
        ("tag_resource", {"Tags": [{"TagKey": "owner", "TagValue": "B"}]}),
        ("update_key_description", {"Description": "owned by B"}),
        ("disable_key", {}),
        ("enable_key", {}),
        ("disable_key_rotation", {}),
        ("enable_key_rotation", {}),
        ("schedule_key_deletion", {"PendingWindowInDays": 7}),
    ]
    for method, extra in calls:
        assert aws_error(getattr(w.b.kms, method), KeyId=key.arn, **extra) == _not_found_in_b(w, key.id), (
            method
        )
    err = aws_error(
        w.b.kms.create_alias, AliasName="alias/xacct-b-" + uuid.uuid4().hex[:8], TargetKeyId=key.arn
    )
    assert err == _not_found_in_b(w, key.id)
    assert snapshot(w, key) == before
    assert w.a.kms.get_key_rotation_status(KeyId=key.id)["KeyRotationEnabled"] is False


# --- no existence oracle --------------------------------------------------------------------------------


def test_the_answer_does_not_tell_whether_the_key_exists(world: World) -> None:
    """For an operation that refuses other accounts' keys, B's answer for A's existing key, for a key id
    A never had, and for A's deleted key (pending deletion) differ only in the key id they name."""
    w = world
    existing = _fresh_shared_key(w)
    doomed = _fresh_shared_key(w)
    w.a.kms.schedule_key_deletion(KeyId=doomed.id, PendingWindowInDays=7)
    unknown = str(uuid.uuid4())
    for method, extra in (
        ("get_key_policy", {"PolicyName": "default"}),
        ("disable_key", {}),
        ("list_resource_tags", {}),
        ("cancel_key_deletion", {}),
        ("get_key_last_usage", {}),
        ("list_key_rotations", {}),
        ("get_parameters_for_import", WRAPPING),
    ):
        for key_id in (existing.id, unknown, doomed.id):
            arn = f"arn:aws:kms:{REGION}:{w.a.account}:key/{key_id}"
            assert aws_error(getattr(w.b.kms, method), KeyId=arn, **extra) == _not_found_in_b(w, key_id), (
                method
            )
    # A key id that is not well formed gets the caller's own account's answer too.
    err = aws_error(w.b.kms.disable_key, KeyId=f"arn:aws:kms:{REGION}:{w.a.account}:key/not-a-key")
    assert err == AwsError("NotFoundException", "Invalid keyId 'not-a-key'", 400)
    assert w.a.kms.describe_key(KeyId=doomed.id)["KeyMetadata"]["KeyState"] == "PendingDeletion"


# --- List* and Describe*: nothing of another account -----------------------------------------------------


def test_lists_show_nothing_of_another_account(world: World) -> None:
    w = world
    key = w.key("sym", True)
    b_keys = {k["KeyArn"] for k in w.b.kms.list_keys(Limit=1000)["Keys"]}
    assert not b_keys & {k.arn for k in w.keys.values()}
    b_aliases = w.b.kms.list_aliases(Limit=100)["Aliases"]
    assert all(a["AliasArn"].startswith(f"arn:aws:kms:{REGION}:{w.b.account}:") for a in b_aliases)
    assert not {a.get("TargetKeyId") for a in b_aliases} & {k.id for k in w.keys.values()}
    # By A's key, the listings that are not cross-account answer as for a key B does not have.
    for method in ("list_aliases", "list_resource_tags", "list_key_rotations", "list_key_policies"):
        for ref in (key.arn, key.id):
            assert aws_error(getattr(w.b.kms, method), KeyId=ref) == _not_found_in_b(w, key.id), method
    # DescribeKey by bare id, or by A's alias name, names B's own account.
    assert aws_error(w.b.kms.describe_key, KeyId=key.id) == _not_found_in_b(w, key.id)
    assert aws_error(w.b.kms.encrypt, KeyId=key.alias_name, Plaintext=b"x") == AwsError(
        "NotFoundException", f"Alias arn:aws:kms:{REGION}:{w.b.account}:{key.alias_name} is not found.", 400
    )
    assert w.b.kms.describe_custom_key_stores()["CustomKeyStores"] == []
    # ListGrants (cross-account: Yes) of A's key lists that key's grants only (one made here, so that
    # the listing is not empty whichever of this module's tests ran before on this server).
    own = _grant_id(w, key)
    grants = w.b.kms.list_grants(KeyId=key.arn)["Grants"]
    assert own in {g["GrantId"] for g in grants}
    assert grants and all(g["KeyId"] in (key.arn, key.id) for g in grants)
    w.a.kms.revoke_grant(KeyId=key.id, GrantId=own)


def test_get_key_last_usage_names_an_event_of_the_owners_trail(world: World) -> None:
    """GetKeyLastUsage answers with the CloudTrail event id of the key owner's trail (AWS: "each with the
    CloudTrail event ID from the respective key owner's account"), never an event of the caller's."""
    w = world
    key = _fresh_shared_key(w)
    w.a.kms.encrypt(KeyId=key.id, Plaintext=b"a")
    mine = w.b.kms.encrypt(KeyId=key.arn, Plaintext=b"b")["ResponseMetadata"]["RequestId"]
    b_trail = wait_for_audit(
        w.server,
        ("--account-id", w.b.account, "--event-name", "Encrypt"),
        lambda rs: any(r.get("requestID") == mine for r in rs),
    )
    b_event = next(r["eventID"] for r in b_trail if r.get("requestID") == mine)
    wait_for_audit(
        w.server,
        ("--account-id", w.a.account, "--key-id", key.id, "--event-name", "Encrypt"),
        lambda rs: bool(rs),
    )
    usage = w.a.kms.get_key_last_usage(KeyId=key.id)["KeyLastUsage"]
    assert usage["CloudTrailEventId"] != b_event
    a_trail = audit_list(w.server, "--account-id", w.a.account, "--key-id", key.id)
    assert usage["CloudTrailEventId"] in {r["eventID"] for r in a_trail}


# --- through the AWS CLI ---------------------------------------------------------------------------------


def _aws_as(w: World, caller: Caller, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **w.server.cli_env(),
        "AWS_ACCESS_KEY_ID": caller.access_key,
        "AWS_SECRET_ACCESS_KEY": caller.secret_key,
    }
    return subprocess.run(
        [str(BIN / "aws"), *args, "--endpoint-url", w.server.endpoint, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_cells_through_the_aws_cli(world: World, tmp_path: Any) -> None:
    w = world
    shared, private = w.key("sym", True), w.key("sym", False)
    takeover = policy(statement(f"arn:aws:iam::{w.b.account}:root", "B only"))
    out = _aws_as(
        w,
        w.b,
        "kms",
        "put-key-policy",
        "--key-id",
        shared.arn,
        "--policy-name",
        "default",
        "--policy",
        takeover,
    )
    assert out.returncode != 0
    assert (
        "An error occurred (NotFoundException) when calling the PutKeyPolicy operation: "
        f"Key 'arn:aws:kms:{REGION}:{w.b.account}:key/{shared.id}' does not exist"
    ) in out.stderr
    out = _aws_as(
        w, w.b, "kms", "schedule-key-deletion", "--key-id", shared.arn, "--pending-window-in-days", "7"
    )
    assert "(NotFoundException) when calling the ScheduleKeyDeletion operation" in out.stderr
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"through the CLI")
    out = _aws_as(w, w.b, "kms", "encrypt", "--key-id", shared.alias_arn, "--plaintext", f"fileb://{plain}")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["KeyId"] == shared.arn
    out = _aws_as(w, w.b, "kms", "describe-key", "--key-id", private.arn)
    assert out.returncode != 0
    assert (
        f"(AccessDeniedException) when calling the DescribeKey operation: User: {w.b.arn} is not authorized "
        f"to perform: kms:DescribeKey on resource: {private.arn} because no resource-based policy allows "
        "the kms:DescribeKey action"
    ) in out.stderr
    assert w.a.kms.get_key_policy(KeyId=shared.id, PolicyName="default")["Policy"] == w.policies[True]


# --- DryRun: the same rule, and DryRunOperationException where the call would have succeeded -------------

DRY_RUN_OPERATIONS = frozenset(
    name for name in MODEL_OPERATIONS if "DryRun" in MODEL.operation_model(name).input_shape.members
)
DRY_RUN = AwsError(
    "DryRunOperationException", "The request would have succeeded, but the DryRun option is set.", 400
)


def _without_ciphertext(params: dict[str, Any]) -> dict[str, Any]:
    """The IGNORE_CIPHERTEXT dry run: the keys named are checked, the ciphertext is not sent."""
    out = {k: v for k, v in params.items() if k != "CiphertextBlob"}
    out["DryRunModifiers"] = ["IGNORE_CIPHERTEXT"]
    return out


@pytest.mark.parametrize("row", [r for r in ROWS if r.operation in DRY_RUN_OPERATIONS], ids=lambda r: r.name)
def test_dry_run_cells(world: World, row: Row) -> None:
    w = world
    variants: list[Callable[[dict[str, Any]], dict[str, Any]]] = [lambda p: p]
    if row.operation == "Decrypt" or row.label == "ReEncrypt[source]":
        variants.append(_without_ciphertext)
    for caller in (w.a, w.b):
        fn = getattr(caller.kms, xform_name(row.operation))
        for key in (w.key(row.kind, True), w.key(row.kind, False)):
            for form in ("id", "arn", "alias"):
                ref = {"id": key.id, "arn": key.arn, "alias": key.alias_arn}[form]
                want = expected_error(w, row, caller, form, key) or DRY_RUN
                for variant in variants:
                    params = variant({**row.params(w, caller, ref, key), "DryRun": True})
                    got = aws_error(fn, **params)
                    assert got == want, (row.name, caller.name, key.shared, form, params.keys())


def test_every_dry_run_operation_is_covered() -> None:
    assert {r.operation for r in ROWS if r.operation in DRY_RUN_OPERATIONS} == DRY_RUN_OPERATIONS


# --- the web console: the same path (KmsApp.execute), bare key ids only ----------------------------------


def test_console_of_b_reaches_nothing_of_a(world: World) -> None:
    """The console names keys by bare id (its URLs), which always means the signed-in user's account."""
    w = world
    key = w.key("sym", True)
    before = snapshot(w, key)
    console = ConsoleHttp(w.server.endpoint)
    assert console.sign_in(w.b.access_key, w.b.secret_key).status == 303
    listing = console.get("/console/keys")
    assert listing.status == 200
    assert not any(k.id in listing.text for k in w.keys.values())
    message = _not_found_in_b(w, key.id).message
    page = console.get(f"/console/keys/{key.id}")
    assert page.status == 400 and message in html.unescape(page.text)
    for form in (
        {"op": "disable"},
        {"op": "put_policy", "policy": policy(statement(f"arn:aws:iam::{w.b.account}:root", "B only"))},
        {"op": "tag_add", "tag_key": "owner", "tag_value": "B"},
        {"op": "description", "description": "owned by B"},
    ):
        answer = console.post(f"/console/keys/{key.id}", {"csrf_token": listing.csrf(), **form})
        assert answer.status == 400 and message in html.unescape(answer.text), form
    answer = console.post(
        f"/console/keys/{key.id}/delete",
        {"csrf_token": listing.csrf(), "waiting_period": "7", "confirm": "yes"},
    )
    assert answer.status == 400 and message in html.unescape(answer.text)
    assert snapshot(w, key) == before
