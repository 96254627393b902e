"""Cache coherence: every piece of state a server process keeps in memory and a request depends on is
never served stale.

The caches (see docs/architecture.md, "Cache correctness"): the key cache (each key's record — state,
policy, description, rotation —, its unsealed materials, tags, alias names and grants, and the condition
keys built from them), the alias → key cache, the credential cache (access keys and STS sessions with
their principal, tags included) and the identity-policy cache (inline and attached managed policies of
users and roles). Each test warms a cache with a request, changes the state through the public API (KMS,
IAM, STS or ``openkms admin``), then checks the effect:

* ``same``: the writer and the reader are one process, and the very next request must see the change;
* ``other``: the change is made on one ``openkms serve`` process and read on a second one sharing its
  database (SQLite: the same data directory, changes polled from the ``changes`` table; PostgreSQL:
  LISTEN/NOTIFY), which must see it within :data:`PROPAGATION` seconds.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import REGION, Server, launch
from tests.e2e.importing import import_material
from tests.e2e.util import aws_error

PROPAGATION = 2.0  # seconds another process may take to see a change (the README promises ~1 s)
# Seconds within which the change feed delivers a change: the SQLite poll period (0.2 s) plus a margin;
# PostgreSQL's NOTIFY batches are applied within 20 ms.
SETTLE = {"sqlite": 0.25, "postgres": 0.1}


@dataclass
class Nodes:
    """Where changes are made (``writer``) and where their effect is checked (``reader``)."""

    writer: Server
    reader: Server
    within: float  # 0: the very next request on the reader must see the change
    settle: float  # how long a process takes to hear of a change through the change feed

    @property
    def account(self) -> str:
        return self.writer.account_id

    def kms(self) -> tuple[Any, Any]:
        """The administrator's KMS clients on the writer and on the reader."""
        return self.writer.client(), self.reader.client()


@pytest.fixture(params=["same", "other"])
def nodes(request: pytest.FixtureRequest, server: Server, backend: str) -> Nodes:
    settle = SETTLE[backend]
    if request.param == "same":
        return Nodes(server, server, 0.0, settle)
    return Nodes(server, request.getfixturevalue("twin"), PROPAGATION, settle)


def warm(nodes: Nodes, check: Callable[[], object]) -> None:
    """Run ``check`` on the reader once the changes made so far have reached its cache, so that what it
    loads stays cached (a load racing with an invalidation is not cached)."""
    time.sleep(nodes.settle)
    check()


def seen(nodes: Nodes, check: Callable[[], object]) -> None:
    """Run ``check`` on the reader: once when it is the writer's process, else until it passes (at
    most ``nodes.within`` seconds). Then warm the reader's cache with it for the next change: a process
    also hears of its own changes through the feed, which drops what it cached in between."""
    deadline = time.monotonic() + nodes.within
    while True:
        try:
            check()
            break
        except (AssertionError, ClientError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
    if nodes.writer is nodes.reader:
        warm(nodes, check)
    else:
        check()


def all_of(*checks: Callable[[], object]) -> Callable[[], None]:
    """A check that every one of ``checks`` passes."""

    def check() -> None:
        for one in checks:
            one()

    return check


def ok(call: Callable[..., Any], **params: Any) -> Callable[[], Any]:
    """A check that ``call(**params)`` succeeds."""
    return lambda: call(**params)


def fails(code: str, call: Callable[..., Any], **params: Any) -> Callable[[], None]:
    """A check that ``call(**params)`` fails with the AWS error ``code``."""

    def check() -> None:
        error = aws_error(call, **params)
        assert error.code == code, error

    return check


def equals(expected: Any, read: Callable[[], Any]) -> Callable[[], None]:
    """A check that ``read()`` returns ``expected``."""

    def check() -> None:
        assert read() == expected

    return check


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- principals and policies -------------------------------------------------------------------------


@dataclass
class User:
    name: str
    arn: str
    access_key_id: str
    secret: str

    def client(self, server: Server, service: str = "kms") -> Any:
        return server.client(service, access_key=self.access_key_id, secret_key=self.secret)


def new_user(nodes: Nodes, *policies: dict[str, Any]) -> User:
    """An IAM user with an access key and the given inline policies, made on the writer."""
    iam = nodes.writer.client("iam")
    name = unique("cc")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    for i, document in enumerate(policies):
        iam.put_user_policy(UserName=name, PolicyName=f"p{i}", PolicyDocument=json.dumps(document))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return User(name, arn, key["AccessKeyId"], key["SecretAccessKey"])


def statement(
    action: str | list[str], *, principal: str | None = None, condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    found: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": "*"}
    if principal is not None:
        found["Principal"] = {"AWS": principal}
    if condition is not None:
        found["Condition"] = condition
    return found


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def key_policy(nodes: Nodes, *statements: dict[str, Any]) -> str:
    """The account's root may do everything (so identity policies apply), plus ``statements``."""
    root = statement("kms:*", principal=f"arn:aws:iam::{nodes.account}:root")
    return json.dumps(document(root, *statements))


def encrypt(client: Any, key_id: str) -> Callable[[], Any]:
    return ok(client.encrypt, KeyId=key_id, Plaintext=b"coherent")


def encrypt_denied(client: Any, key_id: str) -> Callable[[], None]:
    return fails("AccessDeniedException", client.encrypt, KeyId=key_id, Plaintext=b"coherent")


# --- keys ------------------------------------------------------------------------------------------


def test_key_state_and_metadata(nodes: Nodes) -> None:
    w, r = nodes.kms()
    key = w.create_key(Description="before")["KeyMetadata"]["KeyId"]
    time.sleep(nodes.settle)
    blob = r.encrypt(KeyId=key, Plaintext=b"warm")["CiphertextBlob"]

    def state(expected: str, code: str | None) -> Callable[[], None]:
        """DescribeKey shows ``expected``; Decrypt fails with ``code`` (None: works)."""
        shown = equals(expected, lambda: r.describe_key(KeyId=key)["KeyMetadata"]["KeyState"])
        if code is None:
            return all_of(shown, equals(b"warm", lambda: r.decrypt(CiphertextBlob=blob)["Plaintext"]))
        return all_of(shown, fails(code, r.decrypt, CiphertextBlob=blob))

    w.disable_key(KeyId=key)
    seen(nodes, state("Disabled", "DisabledException"))
    w.enable_key(KeyId=key)
    seen(nodes, state("Enabled", None))
    w.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    seen(nodes, state("PendingDeletion", "KMSInvalidStateException"))
    w.cancel_key_deletion(KeyId=key)
    seen(nodes, state("Disabled", "DisabledException"))
    w.enable_key(KeyId=key)
    seen(nodes, state("Enabled", None))

    w.update_key_description(KeyId=key, Description="after")
    seen(nodes, equals("after", lambda: r.describe_key(KeyId=key)["KeyMetadata"]["Description"]))
    w.enable_key_rotation(KeyId=key, RotationPeriodInDays=90)
    seen(nodes, equals(90, lambda: r.get_key_rotation_status(KeyId=key).get("RotationPeriodInDays")))


def test_key_policy_tightened_and_loosened(nodes: Nodes) -> None:
    user = new_user(nodes)
    w = nodes.writer.client()
    u = user.client(nodes.reader)
    allow = statement(["kms:Encrypt", "kms:GetKeyPolicy"], principal=user.arn)
    key = w.create_key(Policy=key_policy(nodes, allow))["KeyMetadata"]["KeyId"]
    warm(nodes, encrypt(u, key))

    w.put_key_policy(KeyId=key, PolicyName="default", Policy=key_policy(nodes))
    seen(nodes, encrypt_denied(u, key))
    w.put_key_policy(KeyId=key, PolicyName="default", Policy=key_policy(nodes, allow))
    policy = lambda: json.loads(u.get_key_policy(KeyId=key)["Policy"])  # noqa: E731
    seen(nodes, all_of(encrypt(u, key), equals(json.loads(key_policy(nodes, allow)), policy)))


def test_resource_tags(nodes: Nodes) -> None:
    user = new_user(nodes)
    w, r = nodes.kms()
    blue = {"StringEquals": {"aws:ResourceTag/team": "blue"}}
    policy = key_policy(nodes, statement("kms:Encrypt", principal=user.arn, condition=blue))
    red = [{"TagKey": "team", "TagValue": "red"}]
    key = w.create_key(Policy=policy, Tags=red)["KeyMetadata"]["KeyId"]
    u = user.client(nodes.reader)
    warm(nodes, encrypt_denied(u, key))

    w.tag_resource(KeyId=key, Tags=[{"TagKey": "team", "TagValue": "blue"}])
    tags = lambda: r.list_resource_tags(KeyId=key)["Tags"]  # noqa: E731
    seen(nodes, all_of(encrypt(u, key), equals([{"TagKey": "team", "TagValue": "blue"}], tags)))
    w.untag_resource(KeyId=key, TagKeys=["team"])
    seen(nodes, all_of(encrypt_denied(u, key), equals([], tags)))


def test_resource_aliases_condition(nodes: Nodes) -> None:
    user = new_user(nodes)
    w = nodes.writer.client()
    alias = f"alias/{unique('cc')}"
    named = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}}
    policy = key_policy(nodes, statement("kms:Encrypt", principal=user.arn, condition=named))
    first, second = (w.create_key(Policy=policy)["KeyMetadata"]["KeyId"] for _ in range(2))
    u = user.client(nodes.reader)
    warm(nodes, all_of(encrypt_denied(u, first), encrypt_denied(u, second)))

    w.create_alias(AliasName=alias, TargetKeyId=first)
    seen(nodes, encrypt(u, first))
    w.update_alias(AliasName=alias, TargetKeyId=second)
    seen(nodes, all_of(encrypt_denied(u, first), encrypt(u, second)))
    w.delete_alias(AliasName=alias)
    seen(nodes, encrypt_denied(u, second))


def test_alias_resolution(nodes: Nodes) -> None:
    w, r = nodes.kms()
    first, second = (w.create_key()["KeyMetadata"]["Arn"] for _ in range(2))
    alias = f"alias/{unique('cc')}"

    def names(arn: str) -> Callable[[], None]:
        encrypted = equals(arn, lambda: r.encrypt(KeyId=alias, Plaintext=b"x")["KeyId"])
        return all_of(encrypted, equals(arn, lambda: r.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]))

    w.create_alias(AliasName=alias, TargetKeyId=first)
    warm(nodes, names(first))

    w.update_alias(AliasName=alias, TargetKeyId=second)
    seen(nodes, names(second))
    w.delete_alias(AliasName=alias)
    seen(nodes, fails("NotFoundException", r.encrypt, KeyId=alias, Plaintext=b"x"))
    w.create_alias(AliasName=alias, TargetKeyId=first)
    seen(nodes, names(first))


def test_grants(nodes: Nodes) -> None:
    user = new_user(nodes)
    w = nodes.writer.client()
    key = w.create_key()["KeyMetadata"]["Arn"]
    u = user.client(nodes.reader)
    warm(nodes, encrypt_denied(u, key))

    def grant() -> str:
        admin = f"arn:aws:iam::{nodes.account}:user/admin"
        made = w.create_grant(
            KeyId=key, GranteePrincipal=user.arn, RetiringPrincipal=admin, Operations=["Encrypt"]
        )
        return str(made["GrantId"])

    grant_id = grant()
    seen(nodes, encrypt(u, key))
    w.retire_grant(KeyId=key, GrantId=grant_id)
    seen(nodes, encrypt_denied(u, key))
    grant_id = grant()
    seen(nodes, encrypt(u, key))
    w.revoke_grant(KeyId=key, GrantId=grant_id)
    seen(nodes, encrypt_denied(u, key))


def test_imported_key_material_deleted_and_reimported(nodes: Nodes) -> None:
    w, r = nodes.kms()
    key = w.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    material = os.urandom(32)
    import_material(w, key, material)
    time.sleep(nodes.settle)
    blob = r.encrypt(KeyId=key, Plaintext=b"imported")["CiphertextBlob"]

    w.delete_imported_key_material(KeyId=key)
    pending = all_of(
        fails("KMSInvalidStateException", r.decrypt, CiphertextBlob=blob),
        fails("KMSInvalidStateException", r.encrypt, KeyId=key, Plaintext=b"x"),
    )
    seen(nodes, pending)
    import_material(w, key, material)
    seen(nodes, equals(b"imported", lambda: r.decrypt(CiphertextBlob=blob)["Plaintext"]))


def material_of(blob: bytes) -> str:
    """The key material id in an openkms symmetric ciphertext (version, id kind, key id, material id)."""
    return blob[18:50].hex()


def test_rotate_key_on_demand(nodes: Nodes) -> None:
    w, r = nodes.kms()
    key = w.create_key()["KeyMetadata"]["KeyId"]
    time.sleep(nodes.settle)
    blob = r.encrypt(KeyId=key, Plaintext=b"before")["CiphertextBlob"]
    current = lambda c: c.describe_key(KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"]  # noqa: E731
    assert material_of(blob) == current(r)

    w.rotate_key_on_demand(KeyId=key)
    rotated = current(w)
    assert rotated != material_of(blob)
    encrypted = lambda: material_of(r.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"])  # noqa: E731
    seen(nodes, all_of(equals(rotated, encrypted), equals(rotated, lambda: current(r))))
    assert r.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before"


# --- IAM identities, credentials and sessions ----------------------------------------------------------


def test_inline_user_policy(nodes: Nodes) -> None:
    user = new_user(nodes)
    iam = nodes.writer.client("iam")
    key = nodes.writer.client().create_key()["KeyMetadata"]["KeyId"]
    u = user.client(nodes.reader)
    warm(nodes, encrypt_denied(u, key))

    allow = json.dumps(document(statement("kms:Encrypt")))
    iam.put_user_policy(UserName=user.name, PolicyName="kms", PolicyDocument=allow)
    seen(nodes, encrypt(u, key))
    iam.delete_user_policy(UserName=user.name, PolicyName="kms")
    seen(nodes, encrypt_denied(u, key))


def test_managed_user_policy(nodes: Nodes) -> None:
    user = new_user(nodes)
    iam = nodes.writer.client("iam")
    key = nodes.writer.client().create_key()["KeyMetadata"]["KeyId"]
    u = user.client(nodes.reader)
    allow = json.dumps(document(statement("kms:Encrypt")))
    arn = iam.create_policy(PolicyName=unique("cc"), PolicyDocument=allow)["Policy"]["Arn"]
    warm(nodes, encrypt_denied(u, key))

    iam.attach_user_policy(UserName=user.name, PolicyArn=arn)
    seen(nodes, encrypt(u, key))
    iam.detach_user_policy(UserName=user.name, PolicyArn=arn)
    seen(nodes, encrypt_denied(u, key))


def test_principal_tags(nodes: Nodes) -> None:
    blue = {"StringEquals": {"aws:PrincipalTag/team": "blue"}}
    user = new_user(nodes, document(statement("kms:Encrypt", condition=blue)))
    iam = nodes.writer.client("iam")
    iam.tag_user(UserName=user.name, Tags=[{"Key": "team", "Value": "red"}])
    key = nodes.writer.client().create_key()["KeyMetadata"]["KeyId"]
    u = user.client(nodes.reader)
    warm(nodes, encrypt_denied(u, key))

    iam.tag_user(UserName=user.name, Tags=[{"Key": "team", "Value": "blue"}])
    seen(nodes, encrypt(u, key))
    iam.untag_user(UserName=user.name, TagKeys=["team"])
    seen(nodes, encrypt_denied(u, key))


def test_access_key_deactivated_and_deleted(nodes: Nodes) -> None:
    user = new_user(nodes, document(statement("kms:*")))
    iam = nodes.writer.client("iam")
    u = user.client(nodes.reader)
    warm(nodes, u.list_keys)
    refused = fails("UnrecognizedClientException", u.list_keys)

    iam.update_access_key(UserName=user.name, AccessKeyId=user.access_key_id, Status="Inactive")
    seen(nodes, refused)
    iam.update_access_key(UserName=user.name, AccessKeyId=user.access_key_id, Status="Active")
    seen(nodes, ok(u.list_keys))
    iam.delete_access_key(UserName=user.name, AccessKeyId=user.access_key_id)
    seen(nodes, refused)


def test_admin_cli_changes(nodes: Nodes) -> None:
    """``openkms admin`` writes from a process of its own: both servers learn of it through the change
    feed (so even the writer's process is checked by polling)."""
    user = new_user(nodes)
    key = nodes.writer.client().create_key()["KeyMetadata"]["KeyId"]
    u = user.client(nodes.reader)
    warm(nodes, encrypt_denied(u, key))
    via_feed = Nodes(nodes.writer, nodes.reader, PROPAGATION, nodes.settle)
    account = ["--account-id", nodes.account, "--user-name", user.name]

    allow = json.dumps(document(statement("kms:Encrypt")))
    nodes.writer.admin("put-user-policy", *account, "--policy-name", "kms", "--policy-document", allow)
    seen(via_feed, encrypt(u, key))
    nodes.writer.admin("delete-user", *account, "--force")
    seen(via_feed, fails("UnrecognizedClientException", u.encrypt, KeyId=key, Plaintext=b"x"))


@dataclass
class Role:
    name: str
    arn: str


def trust_policy(principal: str) -> str:
    """A trust policy letting ``principal`` assume the role (trust policies name no resource)."""
    trust = document(statement("sts:AssumeRole", principal=principal))
    del trust["Statement"][0]["Resource"]
    return json.dumps(trust)


def new_role(nodes: Nodes, trusted: str, *policies: dict[str, Any], name: str | None = None) -> Role:
    """A role ``trusted`` may assume, with the given inline policies, made on the writer."""
    iam = nodes.writer.client("iam")
    name = name or unique("ccr")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust_policy(trusted))["Role"]["Arn"]
    for i, policy in enumerate(policies):
        iam.put_role_policy(RoleName=name, PolicyName=f"p{i}", PolicyDocument=json.dumps(policy))
    return Role(name, arn)


def session(nodes: Nodes, user: User, role: Role) -> Any:
    """A KMS client on the reader signing with the credentials of a session of ``role``."""
    sts = user.client(nodes.writer, "sts")
    credentials = sts.assume_role(RoleArn=role.arn, RoleSessionName="cc")["Credentials"]
    return boto3.client(
        "kms",
        endpoint_url=nodes.reader.endpoint,
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=Config(retries={"max_attempts": 1}),
    )


def test_role_session_permissions(nodes: Nodes) -> None:
    user = new_user(nodes)
    allow = document(statement("kms:Encrypt"))
    role = new_role(nodes, user.arn, allow)
    iam = nodes.writer.client("iam")
    key = nodes.writer.client().create_key()["KeyMetadata"]["KeyId"]
    s = session(nodes, user, role)
    warm(nodes, encrypt(s, key))

    iam.delete_role_policy(RoleName=role.name, PolicyName="p0")
    seen(nodes, encrypt_denied(s, key))
    iam.put_role_policy(RoleName=role.name, PolicyName="p0", PolicyDocument=json.dumps(allow))
    seen(nodes, encrypt(s, key))
    iam.delete_role_policy(RoleName=role.name, PolicyName="p0")
    arn = iam.create_policy(PolicyName=unique("cc"), PolicyDocument=json.dumps(allow))["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=role.name, PolicyArn=arn)
    seen(nodes, encrypt(s, key))
    iam.detach_role_policy(RoleName=role.name, PolicyArn=arn)
    seen(nodes, encrypt_denied(s, key))

    # A role deleted and made again under the same name is another role (another unique id): the old
    # role's sessions ended with it and stay refused; the new role's sessions have its permissions.
    iam.delete_role(RoleName=role.name)
    again = new_role(nodes, user.arn, allow, name=role.name)
    gone = fails("UnrecognizedClientException", s.encrypt, KeyId=key, Plaintext=b"coherent")
    seen(nodes, all_of(gone, encrypt(session(nodes, user, again), key)))


def test_role_trust_and_assume_role_permission(nodes: Nodes) -> None:
    user = new_user(nodes)
    role = new_role(nodes, user.arn)
    iam = nodes.writer.client("iam")
    sts = user.client(nodes.reader, "sts")
    assume = ok(sts.assume_role, RoleArn=role.arn, RoleSessionName="cc")
    refused = fails("AccessDenied", sts.assume_role, RoleArn=role.arn, RoleSessionName="cc")
    warm(nodes, assume)

    # Trusting the account leaves the decision to the user's identity policies (none yet).
    iam.update_assume_role_policy(RoleName=role.name, PolicyDocument=trust_policy(nodes.account))
    seen(nodes, refused)
    allow = json.dumps(document(statement("sts:AssumeRole")))
    iam.put_user_policy(UserName=user.name, PolicyName="assume", PolicyDocument=allow)
    seen(nodes, assume)
    iam.delete_user_policy(UserName=user.name, PolicyName="assume")
    seen(nodes, refused)
    iam.update_assume_role_policy(RoleName=role.name, PolicyDocument=trust_policy(user.arn))
    seen(nodes, assume)


# --- the change feed itself --------------------------------------------------------------------------


@pytest.fixture
def sqlite_pair(workdir: Path) -> Iterator[tuple[Server, Server]]:
    """Two processes of their own on one SQLite database (PostgreSQL delivers changes with NOTIFY, not
    through the changes table this test is about)."""
    first = launch(Path(tempfile.mkdtemp(dir=workdir, prefix="feed-")), None)
    second = Server(data_dir=first.data_dir, database_url=None)
    second.start()
    second.account_id, second.access_key, second.secret_key = (
        first.account_id,
        first.access_key,
        first.secret_key,
    )
    yield first, second
    second.stop()
    first.stop()


def test_sqlite_change_feed_survives_pruning(sqlite_pair: tuple[Server, Server]) -> None:
    """The change log is pruned after an hour: when every row goes, the next change must still get an id
    above those the other processes have read (else they skip every change until the ids catch up)."""
    server, twin = sqlite_pair
    nodes = Nodes(server, twin, PROPAGATION, SETTLE["sqlite"])
    w, r = nodes.kms()
    key = w.create_key()["KeyMetadata"]["KeyId"]
    warm(nodes, encrypt(r, key))  # cached on the twin, whose feed has read every change so far
    database = server.data_dir / "openkms.db"

    def changes() -> int:
        with sqlite3.connect(database, timeout=30) as conn:
            return int(conn.execute("SELECT count(*) FROM changes").fetchone()[0])

    # An hour passes for the change log; a process then prunes it (on the first tick of its scheduler).
    with sqlite3.connect(database, timeout=30) as conn:
        conn.execute("UPDATE changes SET at = 0")
    pruner = Server(data_dir=server.data_dir, database_url=None)
    pruner.start()
    try:
        deadline = time.monotonic() + 10
        while changes() > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert changes() <= 1
    finally:
        pruner.stop()

    w.disable_key(KeyId=key)
    seen(nodes, fails("DisabledException", r.encrypt, KeyId=key, Plaintext=b"x"))
