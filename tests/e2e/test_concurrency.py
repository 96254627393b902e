"""Concurrent requests never break an invariant, on one process or across processes on one database.

Three ``openkms serve`` processes share one database (SQLite: one data directory; PostgreSQL: one
database and root key). Each test fires racing requests from threads, spread over the three processes
and released together by a barrier, for a few rounds, then checks what must hold whatever the order in
which the database serialised them: exactly one winner where a name is unique, limits never exceeded,
single-use tokens used once, no lost update, every node's cache agreeing with the database within
:data:`PROPAGATION` seconds, and never a 5xx (no ``database is locked``, deadlock or unique violation
surfacing as an internal error).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.conftest import OPENKMS, REGION, Server, create_pg_database, drop_pg_database, launch
from tests.e2e.importing import params, wrap

PROPAGATION = 2.0  # seconds within which every node must agree after a change (README: ~1 s)
POOL = Config(retries={"max_attempts": 1}, max_pool_connections=48)


# --- the cluster ----------------------------------------------------------------------------------------


@dataclass
class Node:
    server: Server
    kms: Any
    iam: Any


@dataclass
class Cluster:
    nodes: list[Node]
    account_id: str

    def node(self, i: int) -> Node:
        return self.nodes[i % len(self.nodes)]

    def kms(self, i: int) -> Any:
        return self.node(i).kms

    def iam(self, i: int) -> Any:
        return self.node(i).iam

    def clients(self, service: str, access_key: str, secret_key: str) -> list[Any]:
        """One client per node for other credentials (made here: creating clients is not thread-safe)."""
        return [
            boto3.client(
                service,
                endpoint_url=n.server.endpoint,
                region_name=REGION,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=POOL,
            )
            for n in self.nodes
        ]


@pytest.fixture(scope="module")
def cluster(workdir: Path, backend: str) -> Iterator[Cluster]:
    """Three processes on one new database: the first creates it, the others share its data
    directory (root key, and the SQLite file) and database URL."""
    url = create_pg_database() if backend == "postgres" else None
    first = launch(Path(tempfile.mkdtemp(dir=workdir, prefix=f"race-{backend}-")), url)
    servers = [first]
    try:
        for _ in range(2):
            twin = Server(data_dir=first.data_dir, database_url=url)
            twin.start()
            twin.account_id, twin.access_key, twin.secret_key = (
                first.account_id,
                first.access_key,
                first.secret_key,
            )
            servers.append(twin)
        nodes = [
            Node(s, s.client(max_pool_connections=48), s.client("iam", max_pool_connections=48))
            for s in servers
        ]
        yield Cluster(nodes, first.account_id)
    finally:
        for s in reversed(servers):
            s.stop()
        if url:
            drop_pg_database(url)
    # Nothing went wrong unseen: no internal error, no database error logged by a background job.
    for s in servers:
        assert s.log_path is not None
        log = s.log_path.read_text(errors="replace")
        assert "database is locked" not in log
        assert "Traceback" not in log, log[-4000:]


# --- racing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    result: Any  # the response on success
    code: str  # the error code ("" on success)
    status: int
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.code


def attempt(fn: Callable[[], Any]) -> Outcome:
    try:
        return Outcome(fn(), "", 200)
    except ClientError as exc:
        return Outcome(
            None,
            exc.response["Error"]["Code"],
            int(exc.response["ResponseMetadata"]["HTTPStatusCode"]),
            exc.response["Error"].get("Message", ""),
        )
    except BotoCoreError as exc:  # the connection failed: as bad as a 5xx
        return Outcome(None, type(exc).__name__, 599, str(exc))


def race(
    calls: Sequence[Callable[[], Any]], meanwhile: Sequence[Callable[[], Any]] = ()
) -> tuple[list[Outcome], list[Outcome]]:
    """Run ``calls`` at once (one thread each, released by one barrier) while each of ``meanwhile``
    runs in a loop on its own thread until they are all done (at least once). Returns the outcomes of
    ``calls`` in order and those of the loops; fails on any 5xx."""
    barrier = threading.Barrier(len(calls) + len(meanwhile))
    stop = threading.Event()
    results: list[Outcome | None] = [None] * len(calls)
    looped: list[list[Outcome]] = [[] for _ in meanwhile]

    def once(i: int, fn: Callable[[], Any]) -> None:
        barrier.wait(timeout=30)
        results[i] = attempt(fn)

    def loop(i: int, fn: Callable[[], Any]) -> None:
        barrier.wait(timeout=30)
        while True:
            looped[i].append(attempt(fn))
            if stop.is_set():
                return

    racers = [threading.Thread(target=once, args=(i, fn)) for i, fn in enumerate(calls)]
    loops = [threading.Thread(target=loop, args=(i, fn)) for i, fn in enumerate(meanwhile)]
    for thread in racers + loops:
        thread.start()
    for thread in racers:
        thread.join(timeout=60)
    stop.set()
    for thread in loops:
        thread.join(timeout=60)
    done = [r for r in results if r is not None]
    assert len(done) == len(calls), "a racing request did not finish"
    background = [o for outcomes in looped for o in outcomes]
    failures = [o for o in done + background if o.status >= 500]
    assert not failures, failures
    return done, background


def codes(outcomes: Sequence[Outcome]) -> Counter[str]:
    return Counter("ok" if o.ok else o.code for o in outcomes)


def eventually(check: Callable[[], None], within: float = PROPAGATION) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            check()
            return
        except (AssertionError, ClientError):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def uid() -> str:
    return uuid.uuid4().hex[:10]


def error_code(fn: Callable[[], Any]) -> str:
    outcome = attempt(fn)
    assert outcome.status < 500, outcome
    return "ok" if outcome.ok else outcome.code


# --- helpers --------------------------------------------------------------------------------------------


@dataclass
class Outsider:
    """An IAM user without identity policies: only key policies that name it let it use a key."""

    arn: str
    kms: list[Any]  # one client per node


@pytest.fixture(scope="module")
def outsider(cluster: Cluster) -> Outsider:
    name = "outsider-" + uid()
    iam = cluster.iam(0)
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    clients = cluster.clients("kms", key["AccessKeyId"], key["SecretAccessKey"])
    return Outsider(f"arn:aws:iam::{cluster.account_id}:user/{name}", clients)


def key_policy(account: str, *extra: dict[str, Any]) -> str:
    root = {
        "Sid": "root",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [root, *extra]})


def allow(principal: str, actions: list[str], condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": actions,
        "Resource": "*",
    }
    if condition:
        statement["Condition"] = condition
    return statement


def new_key(cluster: Cluster, **kwargs: Any) -> str:
    key_id: str = cluster.kms(0).create_key(**kwargs)["KeyMetadata"]["KeyId"]
    return key_id


def aliases_of(cluster: Cluster, key_id: str) -> list[str]:
    """The key's alias names as the database has them (ListAliases reads no cache)."""
    names: list[str] = []
    for page in cluster.kms(0).get_paginator("list_aliases").paginate(KeyId=key_id):
        names += [a["AliasName"] for a in page["Aliases"]]
    return names


def alias_target(cluster: Cluster, name: str) -> str | None:
    for page in cluster.kms(0).get_paginator("list_aliases").paginate():
        for alias in page["Aliases"]:
            if alias["AliasName"] == name:
                target: str = alias["TargetKeyId"]
                return target
    return None


# --- aliases --------------------------------------------------------------------------------------------


def test_create_alias_of_one_name_has_one_winner(cluster: Cluster) -> None:
    keys = [new_key(cluster), new_key(cluster)]
    for _ in range(3):
        name = f"alias/race-{uid()}"
        outcomes, _ = race(
            [
                lambda i=i, name=name: cluster.kms(i).create_alias(AliasName=name, TargetKeyId=keys[i % 2])
                for i in range(9)
            ]
        )
        assert codes(outcomes) == {"ok": 1, "AlreadyExistsException": 8}
        winner = keys[next(i for i, o in enumerate(outcomes) if o.ok) % 2]
        assert alias_target(cluster, name) == winner
        for node in cluster.nodes:
            assert node.kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == winner


def test_aliases_per_key_limit_holds_under_concurrency(cluster: Cluster) -> None:
    """At most 50 aliases point at a key, whether they arrive by CreateAlias or UpdateAlias."""
    full, other = new_key(cluster), new_key(cluster)
    prefix = f"alias/lim-{uid()}"
    for n in range(46):
        cluster.kms(n).create_alias(AliasName=f"{prefix}-{n}", TargetKeyId=full)
    movers = [f"{prefix}-m{n}" for n in range(4)]
    for name in movers:
        cluster.kms(0).create_alias(AliasName=name, TargetKeyId=other)
    calls: list[Callable[[], Any]] = [
        lambda i=i: cluster.kms(i).create_alias(AliasName=f"{prefix}-new{i}", TargetKeyId=full)
        for i in range(8)
    ]
    calls += [
        lambda i=i, name=name: cluster.kms(i).update_alias(AliasName=name, TargetKeyId=full)
        for i, name in enumerate(movers)
    ]
    outcomes, _ = race(calls)
    assert codes(outcomes) == {"ok": 4, "LimitExceededException": 8}
    assert len(aliases_of(cluster, full)) == 50
    assert len(aliases_of(cluster, other)) == 4 - sum(o.ok for o in outcomes[8:])


def test_update_delete_create_alias_race(cluster: Cluster, outsider: Outsider) -> None:
    """UpdateAlias racing DeleteAlias and CreateAlias of one name: Encrypt through the alias meanwhile
    never fails with a 5xx, and afterwards every node agrees on the alias, including in each key's
    ``kms:ResourceAliases`` (which a key policy lets the outsider use)."""
    name = f"alias/moving-{uid()}"
    only_via_alias = allow(
        outsider.arn, ["kms:Encrypt"], {"ForAnyValue:StringEquals": {"kms:ResourceAliases": name}}
    )
    policy = key_policy(cluster.account_id, only_via_alias)
    keys = [new_key(cluster, Policy=policy) for _ in range(3)]
    a, b, c = keys
    cluster.kms(0).create_alias(AliasName=name, TargetKeyId=a)
    for round_ in range(6):
        if alias_target(cluster, name) is None:
            cluster.kms(0).create_alias(AliasName=name, TargetKeyId=a)
        else:
            cluster.kms(0).update_alias(AliasName=name, TargetKeyId=a)
        time.sleep(0.3)  # the change feed has told every node
        # Two rounds in three: only UpdateAlias, each waiting for the one before it (each must see where
        # the alias points when it moves it); the third: DeleteAlias and CreateAlias too.
        mixed = round_ % 3 == 2
        targets = [b, c, b] if mixed else [b, c, a] * 3
        calls: list[Callable[[], Any]] = [
            lambda i=i, k=k: cluster.kms(i).update_alias(AliasName=name, TargetKeyId=k)
            for i, k in enumerate(targets)
        ]
        if mixed:
            calls += [
                lambda: cluster.kms(0).delete_alias(AliasName=name),
                lambda: cluster.kms(1).create_alias(AliasName=name, TargetKeyId=c),
                lambda: cluster.kms(2).create_alias(AliasName=name, TargetKeyId=a),
            ]
        meanwhile: list[Callable[[], Any]] = [
            lambda i=i: cluster.kms(i).encrypt(KeyId=name, Plaintext=b"x") for i in range(3)
        ]
        meanwhile += [
            lambda i=i, k=k: outsider.kms[i % 3].encrypt(KeyId=k, Plaintext=b"x")
            for i in range(3)
            for k in keys
        ]
        outcomes, background = race(calls, meanwhile)
        assert set(codes(outcomes)) <= {"ok", "NotFoundException", "AlreadyExistsException"}
        assert set(codes(background)) <= {"ok", "NotFoundException", "AccessDeniedException"}
        arns = {o.result["KeyId"].rsplit("/", 1)[1] for o in background if o.ok}
        assert arns <= set(keys)

        target = alias_target(cluster, name)
        assert target in (None, *keys)
        for k in keys:
            assert (name in aliases_of(cluster, k)) == (k == target)

        def agreed(target: str | None = target) -> None:
            for i, node in enumerate(cluster.nodes):
                described = error_code(lambda n=node: n.kms.describe_key(KeyId=name))
                assert described == ("NotFoundException" if target is None else "ok")
                if target is not None:
                    assert node.kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == target
                for k in keys:
                    got = error_code(lambda k=k, i=i: outsider.kms[i].encrypt(KeyId=k, Plaintext=b"x"))
                    assert got == ("ok" if k == target else "AccessDeniedException"), (k, target)

        eventually(agreed)


# --- tags -----------------------------------------------------------------------------------------------


def test_tags_per_key_limit_holds_under_concurrency(cluster: Cluster) -> None:
    key = new_key(cluster, Tags=[{"TagKey": f"t{n}", "TagValue": "v"} for n in range(44)])
    outcomes, _ = race(
        [
            lambda i=i: cluster.kms(i).tag_resource(KeyId=key, Tags=[{"TagKey": f"new{i}", "TagValue": "v"}])
            for i in range(12)
        ]
    )
    assert codes(outcomes) == {"ok": 6, "TagException": 6}
    tags = cluster.kms(1).list_resource_tags(KeyId=key, Limit=50)["Tags"]
    assert len(tags) == 50
    assert {t["TagKey"] for t in tags} >= {f"new{i}" for i, o in enumerate(outcomes) if o.ok}


# --- grants ---------------------------------------------------------------------------------------------


def test_concurrent_grants_are_all_counted_and_named_grants_are_idempotent(
    cluster: Cluster, outsider: Outsider
) -> None:
    key = new_key(cluster)
    total = 0
    for round_ in range(3):
        name = f"named-{round_}"
        calls: list[Callable[[], Any]] = [
            lambda i=i: cluster.kms(i).create_grant(
                KeyId=key, GranteePrincipal=outsider.arn, Operations=["Encrypt"]
            )
            for i in range(8)
        ]
        calls += [
            lambda i=i, name=name: cluster.kms(i).create_grant(
                KeyId=key, GranteePrincipal=outsider.arn, Operations=["Decrypt", "Encrypt"], Name=name
            )
            for i in range(8)
        ]
        outcomes, _ = race(calls)
        assert all(o.ok for o in outcomes), codes(outcomes)
        anonymous = {o.result["GrantId"] for o in outcomes[:8]}
        named = {o.result["GrantId"] for o in outcomes[8:]}
        assert len(anonymous) == 8
        assert len(named) == 1, named
        total += 9
        grants = [
            g
            for page in cluster.kms(2).get_paginator("list_grants").paginate(KeyId=key)
            for g in page["Grants"]
        ]
        assert len(grants) == total
        assert [g["GrantId"] for g in grants if g.get("Name") == name] == list(named)
    # The named grant lets the grantee decrypt on every node.
    blob = cluster.kms(0).encrypt(KeyId=key, Plaintext=b"granted")["CiphertextBlob"]

    def granted() -> None:
        for client in outsider.kms:
            assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"granted"

    eventually(granted)


# --- imports --------------------------------------------------------------------------------------------


def test_an_import_token_is_used_once(cluster: Cluster) -> None:
    for _ in range(2):
        key = new_key(cluster, Origin="EXTERNAL")
        p = params(cluster.kms(0), key)
        material = uuid.uuid4().bytes * 2
        request = {
            "KeyId": key,
            "ImportToken": p["ImportToken"],
            "EncryptedKeyMaterial": wrap("RSAES_OAEP_SHA_256", p["PublicKey"], material),
            "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE",
        }
        outcomes, _ = race([lambda i=i, r=request: cluster.kms(i).import_key_material(**r) for i in range(6)])
        assert codes(outcomes) == {"ok": 1, "InvalidImportTokenException": 5}
        rotations = cluster.kms(1).list_key_rotations(KeyId=key, IncludeKeyMaterial="ALL_KEY_MATERIAL")
        assert [r["KeyMaterialState"] for r in rotations["Rotations"]] == ["CURRENT"]

        def enabled_everywhere(key: str = key) -> None:
            for node in cluster.nodes:
                assert node.kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"

        eventually(enabled_everywhere)


# --- key state ------------------------------------------------------------------------------------------

STATE_AFTER = {
    "schedule_key_deletion": "PendingDeletion",
    "cancel_key_deletion": "Disabled",
    "enable_key": "Enabled",
    "disable_key": "Disabled",
}


def test_key_state_changes_race_to_a_legal_state(cluster: Cluster) -> None:
    key = new_key(cluster)
    state = "Enabled"
    operations = list(STATE_AFTER) * 2
    for _ in range(4):

        def call(i: int, op: str) -> Any:
            method = getattr(cluster.kms(i), op)
            return (
                method(KeyId=key, PendingWindowInDays=7)
                if op == "schedule_key_deletion"
                else method(KeyId=key)
            )

        outcomes, background = race(
            [lambda i=i, op=op: call(i, op) for i, op in enumerate(operations)],
            [lambda i=i: cluster.kms(i).encrypt(KeyId=key, Plaintext=b"x") for i in range(3)],
        )
        assert set(codes(outcomes)) <= {"ok", "KMSInvalidStateException"}
        assert set(codes(background)) <= {"ok", "DisabledException", "KMSInvalidStateException"}
        possible = {STATE_AFTER[op] for op, o in zip(operations, outcomes, strict=True) if o.ok} or {state}

        def agreed(possible: set[str] = possible) -> None:
            seen = [n.kms.describe_key(KeyId=key)["KeyMetadata"] for n in cluster.nodes]
            assert len({(m["KeyState"], m.get("DeletionDate")) for m in seen}) == 1, seen
            assert seen[0]["KeyState"] in possible, (seen[0]["KeyState"], possible)
            assert ("DeletionDate" in seen[0]) == (seen[0]["KeyState"] == "PendingDeletion")
            assert seen[0]["Enabled"] == (seen[0]["KeyState"] == "Enabled")

        eventually(agreed)
        state = cluster.kms(0).describe_key(KeyId=key)["KeyMetadata"]["KeyState"]


# --- one process, many writers on one key -----------------------------------------------------------------


def test_writers_queued_on_one_key_leave_connections_for_the_lock_holder(
    cluster: Cluster, outsider: Outsider
) -> None:
    """More concurrent writes on one key than the process has worker threads: each waits for the key's
    row lock holding a database connection, and the holder still gets the one it needs for a read
    nested in its transaction (PutKeyPolicy checks that the principals it names exist)."""
    key = new_key(cluster)
    policy = key_policy(cluster.account_id, allow(outsider.arn, ["kms:Encrypt"]))
    kms = cluster.kms(0)
    started = time.monotonic()
    outcomes, _ = race([lambda: kms.put_key_policy(KeyId=key, Policy=policy) for _ in range(24)])
    assert all(o.ok for o in outcomes), codes(outcomes)
    assert time.monotonic() - started < 10


# --- rotation -------------------------------------------------------------------------------------------


def test_rotations_race_without_losing_material(cluster: Cluster) -> None:
    key = new_key(cluster)
    blobs: list[bytes] = []
    rotated = 0
    for _ in range(3):
        calls: list[Callable[[], Any]] = [
            lambda i=i: cluster.kms(i).rotate_key_on_demand(KeyId=key) for i in range(6)
        ]
        calls += [
            lambda i=i: cluster.kms(i).enable_key_rotation(KeyId=key, RotationPeriodInDays=90 * (1 + i))
            for i in range(2)
        ]
        outcomes, background = race(
            calls, [lambda i=i: cluster.kms(i).encrypt(KeyId=key, Plaintext=b"r%d" % i) for i in range(3)]
        )
        failed = [(o.code, o.message) for o in outcomes + background if not o.ok]
        assert not failed, (codes(outcomes + background), failed[:5])
        rotated += 6
        blobs += [o.result["CiphertextBlob"] for o in background]
        listed = cluster.kms(1).list_key_rotations(KeyId=key, IncludeKeyMaterial="ALL_KEY_MATERIAL")
        materials = listed["Rotations"]
        assert len(materials) == rotated + 1
        assert len({m["KeyMaterialId"] for m in materials}) == rotated + 1
        assert Counter(m["KeyMaterialState"] for m in materials) == {"CURRENT": 1, "NON_CURRENT": rotated}
        assert Counter(m.get("RotationType") for m in materials) == {None: 1, "ON_DEMAND": rotated}

        def rotation_enabled() -> None:
            # Node 2 may not have heard of an EnableKeyRotation made on another node a moment ago
            # (SQLite's change feed is polled every 200 ms): it must within the propagation time.
            status = cluster.kms(2).get_key_rotation_status(KeyId=key)
            assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] in (90, 180), status

        eventually(rotation_enabled)
        # A ciphertext under material made a moment ago on another node decrypts at once, although
        # the node's warm cache has not heard of the rotation yet.
        time.sleep(0.3)
        for i in (1, 2):
            cluster.kms(i).encrypt(KeyId=key, Plaintext=b"warm")
        cluster.kms(0).rotate_key_on_demand(KeyId=key)
        rotated += 1
        newest = cluster.kms(0).encrypt(KeyId=key, Plaintext=b"newest")["CiphertextBlob"]
        for i in (1, 2):
            assert cluster.kms(i).decrypt(CiphertextBlob=newest)["Plaintext"] == b"newest"
    for i, blob in enumerate(blobs):
        out = cluster.kms(i).decrypt(CiphertextBlob=blob)
        assert out["Plaintext"] in (b"r0", b"r1", b"r2")


# --- key policies ---------------------------------------------------------------------------------------


def test_policy_rewrites_under_crypto_load(cluster: Cluster, outsider: Outsider) -> None:
    full = key_policy(cluster.account_id, allow(outsider.arn, ["kms:Encrypt", "kms:Decrypt"]))
    encrypt_only = key_policy(cluster.account_id, allow(outsider.arn, ["kms:Encrypt"]))
    none = key_policy(cluster.account_id)
    key = new_key(cluster, Policy=full)
    blob = cluster.kms(0).encrypt(KeyId=key, Plaintext=b"p")["CiphertextBlob"]
    sequence = [encrypt_only, full, none, full, encrypt_only, none]

    def rewrite(i: int) -> None:
        for document in sequence:
            cluster.kms(i).put_key_policy(KeyId=key, Policy=document)

    meanwhile: list[Callable[[], Any]] = [
        lambda i=i: outsider.kms[i].encrypt(KeyId=key, Plaintext=b"p") for i in range(3)
    ]
    meanwhile += [lambda i=i: outsider.kms[i].decrypt(CiphertextBlob=blob) for i in range(3)]
    outcomes, background = race([lambda i=i: rewrite(i) for i in range(2)], meanwhile)
    assert all(o.ok for o in outcomes), codes(outcomes)
    assert set(codes(background)) <= {"ok", "AccessDeniedException"}

    for document, encrypt, decrypt in ((none, False, False), (encrypt_only, True, False), (full, True, True)):
        cluster.kms(1).put_key_policy(KeyId=key, Policy=document)

        def applied(encrypt: bool = encrypt, decrypt: bool = decrypt) -> None:
            for client in outsider.kms:
                got = error_code(lambda c=client: c.encrypt(KeyId=key, Plaintext=b"p"))
                assert got == ("ok" if encrypt else "AccessDeniedException")
                got = error_code(lambda c=client: c.decrypt(CiphertextBlob=blob))
                assert got == ("ok" if decrypt else "AccessDeniedException")

        eventually(applied)


# --- IAM ------------------------------------------------------------------------------------------------


def test_iam_user_races(cluster: Cluster) -> None:
    name = "racer-" + uid()
    outcomes, _ = race([lambda i=i: cluster.iam(i).create_user(UserName=name) for i in range(6)])
    assert codes(outcomes) == {"ok": 1, "EntityAlreadyExists": 5}

    # At most two access keys per user.
    outcomes, _ = race([lambda i=i: cluster.iam(i).create_access_key(UserName=name) for i in range(6)])
    assert codes(outcomes) == {"ok": 2, "LimitExceeded": 4}
    assert len(cluster.iam(1).list_access_keys(UserName=name)["AccessKeyMetadata"]) == 2

    # No lost update of the user's inline policies or tags.
    document = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:List*", "Resource": "*"}]}
    )
    calls: list[Callable[[], Any]] = [
        lambda i=i: cluster.iam(i).put_user_policy(UserName=name, PolicyName=f"p{i}", PolicyDocument=document)
        for i in range(5)
    ]
    calls += [
        lambda i=i: cluster.iam(i).tag_user(UserName=name, Tags=[{"Key": f"k{i}", "Value": "v"}])
        for i in range(5)
    ]
    policy_arn = cluster.iam(0).create_policy(PolicyName="race-" + uid(), PolicyDocument=document)["Policy"][
        "Arn"
    ]
    calls += [
        lambda i=i: cluster.iam(i).attach_user_policy(UserName=name, PolicyArn=policy_arn) for i in range(3)
    ]
    outcomes, _ = race(calls)
    assert all(o.ok for o in outcomes), codes(outcomes)
    assert sorted(cluster.iam(2).list_user_policies(UserName=name)["PolicyNames"]) == [
        f"p{i}" for i in range(5)
    ]
    assert {t["Key"] for t in cluster.iam(0).list_user_tags(UserName=name)["Tags"]} == {
        f"k{i}" for i in range(5)
    }
    attached = cluster.iam(1).list_attached_user_policies(UserName=name)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [policy_arn]


def test_delete_user_racing_create_access_key(cluster: Cluster) -> None:
    """A deleted user keeps no access key: none outlives it to sign requests, nor to come back with a
    new user of the same name."""
    for _ in range(3):
        name = "doomed-" + uid()
        cluster.iam(0).create_user(UserName=name)
        calls: list[Callable[[], Any]] = [
            lambda i=i, name=name: cluster.iam(i).delete_user(UserName=name) for i in range(2)
        ]
        calls += [lambda i=i, name=name: cluster.iam(i).create_access_key(UserName=name) for i in range(4)]
        outcomes, _ = race(calls)
        deleted = [o for o in outcomes[:2] if o.ok]
        created = [o.result["AccessKey"] for o in outcomes[2:] if o.ok]
        assert set(codes(outcomes[:2])) <= {"ok", "DeleteConflict", "NoSuchEntity"}
        assert set(codes(outcomes[2:])) <= {"ok", "NoSuchEntity", "LimitExceeded"}
        assert len(created) <= 2
        if deleted:
            assert len(deleted) == 1
            cluster.iam(1).create_user(UserName=name)  # the same name again: a new user
            assert cluster.iam(2).list_access_keys(UserName=name)["AccessKeyMetadata"] == []
            for key in created:
                sts = boto3.client(
                    "sts",
                    endpoint_url=cluster.node(0).server.endpoint,
                    region_name=REGION,
                    aws_access_key_id=key["AccessKeyId"],
                    aws_secret_access_key=key["SecretAccessKey"],
                    config=POOL,
                )
                assert error_code(sts.get_caller_identity) == "InvalidClientTokenId"
        else:
            listed = cluster.iam(2).list_access_keys(UserName=name)["AccessKeyMetadata"]
            assert sorted(k["AccessKeyId"] for k in listed) == sorted(k["AccessKeyId"] for k in created)


# --- many writers ---------------------------------------------------------------------------------------


def test_writers_on_every_process_never_fail(cluster: Cluster) -> None:
    """Writes from every process (and an ``openkms admin`` process) at once: SQLite's single writer
    is waited for, never reported as an internal error."""
    keys = [new_key(cluster) for _ in range(3)]
    command = [OPENKMS, "admin", "create-user", "--account-id", cluster.account_id, "--user-name"]
    admin = subprocess.Popen(
        [*command, "cli-" + uid(), *cluster.node(0).server.data_args()], stdout=subprocess.DEVNULL
    )
    counter = iter(range(10**6))

    def tag(i: int) -> Any:
        return cluster.kms(i).tag_resource(
            KeyId=keys[i % 3], Tags=[{"TagKey": "n", "TagValue": str(next(counter))}]
        )

    meanwhile: list[Callable[[], Any]] = [lambda i=i: tag(i) for i in range(6)]
    meanwhile += [
        lambda i=i: cluster.kms(i).update_key_description(KeyId=keys[i % 3], Description=str(next(counter)))
        for i in range(6)
    ]
    meanwhile += [lambda i=i: cluster.kms(i).create_key() for i in range(3)]
    _, background = race([lambda: time.sleep(1.5)], meanwhile)
    assert admin.wait(timeout=30) == 0
    assert all(o.ok for o in background), codes(background)
    assert len(background) >= 15
