"""Grants as AWS scopes them: what a grant's CreateGrant permission may create (some or all of the
parent's operations, constraints at least as strict), grant tokens, who may retire a grant and who may
revoke it, ListRetirableGrants within the caller's account, and encryption contexts whose keys differ
only in case. Each case drives a running server; the review's two attacks are named tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.test_authorization import new_user, policy
from tests.e2e.util import aws_error

EQ = "EncryptionContextEquals"
SUB = "EncryptionContextSubset"


@pytest.fixture
def owner(server: Server) -> dict[str, str]:
    """The key owner's account: one of this module's own (made once per server), so the many users
    these tests create do not crowd the shared account's listings."""
    return server.once("grant-derivation owner", server.new_account)


def creds(account: dict[str, str]) -> dict[str, str]:
    return {"access_key": account["AccessKeyId"], "secret_key": account["SecretAccessKey"]}


@pytest.fixture
def kms(server: Server, owner: dict[str, str]) -> Any:
    return server.client(**creds(owner))


@pytest.fixture
def iam(server: Server, owner: dict[str, str]) -> Any:
    return server.client("iam", **creds(owner))


def denied(arn: str, action: str, resource: str, reason: str = "identity") -> tuple[str, str]:
    because = {
        "identity": f"because no identity-based policy allows the kms:{action} action",
        "resource": f"because no resource-based policy allows the kms:{action} action",
        "deny": "with an explicit deny in an identity-based policy",
    }[reason]
    return (
        "AccessDeniedException",
        f"User: {arn} is not authorized to perform: kms:{action} on resource: {resource} {because}",
    )


def other_account(server: Server) -> dict[str, str]:
    """A second account of this server (made once per server)."""
    return server.once("grant-derivation other", server.new_account)


def code_message(fn: Any, **kwargs: Any) -> tuple[str, str]:
    e = aws_error(fn, **kwargs)
    return e.code, e.message


# --- grant derivation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Derivation:
    name: str
    parent_ops: tuple[str, ...]
    parent_constraints: dict[str, dict[str, str]] | None
    child_ops: tuple[str, ...]
    child_constraints: dict[str, dict[str, str]] | None
    allowed: bool


DC = ("Decrypt", "CreateGrant")
HR = {"dept": "hr"}
DERIVATIONS = [
    Derivation(
        "only CreateGrant cannot add crypto", ("CreateGrant",), None, ("Encrypt", "Decrypt"), None, False
    ),
    Derivation("same operations", DC, None, DC, None, True),
    Derivation("fewer operations", ("Decrypt", "Encrypt", "CreateGrant"), None, ("Decrypt",), None, True),
    Derivation("an operation the parent lacks", DC, None, ("Decrypt", "Encrypt"), None, False),
    Derivation("ReEncrypt the parent lacks", DC, None, ("ReEncryptFrom", "ReEncryptTo"), None, False),
    Derivation("DescribeKey the parent lacks", DC, None, ("DescribeKey",), None, False),
    Derivation("unconstrained parent, constrained child", DC, None, ("Decrypt",), {SUB: HR}, True),
    Derivation("Equals parent, no constraint", DC, {EQ: HR}, ("Decrypt",), None, False),
    Derivation("Equals parent, same Equals", DC, {EQ: HR}, ("Decrypt",), {EQ: HR}, True),
    Derivation(
        "Equals parent, Equals key in other case", DC, {EQ: HR}, ("Decrypt",), {EQ: {"DEPT": "hr"}}, True
    ),
    Derivation(
        "Equals parent, Equals other value", DC, {EQ: HR}, ("Decrypt",), {EQ: {"dept": "finance"}}, False
    ),
    Derivation("Equals parent, value in other case", DC, {EQ: HR}, ("Decrypt",), {EQ: {"dept": "HR"}}, False),
    Derivation("Equals parent, Equals with more", DC, {EQ: HR}, ("Decrypt",), {EQ: {**HR, "t": "a"}}, False),
    Derivation("Equals parent, Subset child", DC, {EQ: HR}, ("Decrypt",), {SUB: HR}, False),
    Derivation("Subset parent, no constraint", DC, {SUB: HR}, ("Decrypt",), None, False),
    Derivation("Subset parent, same Subset", DC, {SUB: HR}, ("Decrypt",), {SUB: HR}, True),
    Derivation("Subset parent, Subset with more", DC, {SUB: HR}, ("Decrypt",), {SUB: {**HR, "t": "a"}}, True),
    Derivation(
        "Subset parent, Equals with its pairs", DC, {SUB: HR}, ("Decrypt",), {EQ: {**HR, "t": "a"}}, True
    ),
    Derivation("Subset parent, Equals without them", DC, {SUB: HR}, ("Decrypt",), {EQ: {"t": "a"}}, False),
    Derivation("Subset parent, Subset without them", DC, {SUB: HR}, ("Decrypt",), {SUB: {"t": "a"}}, False),
    Derivation(
        "Subset parent, Subset dropping a pair", DC, {SUB: {**HR, "t": "a"}}, ("Decrypt",), {SUB: HR}, False
    ),
    Derivation(
        "Subset parent, ambiguous child keys", DC, {SUB: HR}, ("Decrypt",), {SUB: {**HR, "DEPT": "x"}}, False
    ),
]


@pytest.mark.parametrize("case", DERIVATIONS, ids=[c.name for c in DERIVATIONS])
def test_grant_derived_create_grant(
    server: Server, kms: Any, iam: Any, owner: dict[str, str], case: Derivation
) -> None:
    holder_arn, holder = new_user(server, iam, owner["AccountId"])
    key = kms.create_key()["KeyMetadata"]
    parent: dict[str, Any] = {
        "KeyId": key["KeyId"],
        "GranteePrincipal": holder_arn,
        "Operations": list(case.parent_ops),
    }
    if case.parent_constraints:
        parent["Constraints"] = case.parent_constraints
    kms.create_grant(**parent)
    child: dict[str, Any] = {
        "KeyId": key["Arn"],
        "GranteePrincipal": holder_arn,
        "Operations": list(case.child_ops),
    }
    if case.child_constraints:
        child["Constraints"] = case.child_constraints
    if case.allowed:
        made = holder.create_grant(**child)
        listed = {g["GrantId"]: g for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]}
        assert sorted(listed[made["GrantId"]]["Operations"]) == sorted(case.child_ops)
    else:
        assert code_message(holder.create_grant, **child) == denied(holder_arn, "CreateGrant", key["Arn"])
        assert len(kms.list_grants(KeyId=key["KeyId"])["Grants"]) == 1


def test_policy_given_create_grant_is_not_limited(
    server: Server, kms: Any, iam: Any, owner: dict[str, str]
) -> None:
    """The limits apply to CreateGrant permission that comes from a grant, not from a policy."""
    admin_arn, admin = new_user(
        server, iam, owner["AccountId"], Effect="Allow", Action="kms:CreateGrant", Resource="*"
    )
    key = kms.create_key()["KeyMetadata"]
    kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=admin_arn, Operations=["CreateGrant"], Constraints={EQ: HR}
    )
    made = admin.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=admin_arn, Operations=["Encrypt", "Decrypt"]
    )
    assert len(made["GrantId"]) == 64


def test_key_policy_deny_beats_a_parent_grant(
    server: Server, kms: Any, iam: Any, owner: dict[str, str]
) -> None:
    holder_arn, holder = new_user(server, iam, owner["AccountId"])
    key = kms.create_key(
        Policy=policy(
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{owner['AccountId']}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Effect": "Deny",
                "Principal": {"AWS": holder_arn},
                "Action": "kms:CreateGrant",
                "Resource": "*",
            },
        )
    )["KeyMetadata"]
    kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=holder_arn, Operations=list(DC))
    assert code_message(
        holder.create_grant, KeyId=key["KeyId"], GranteePrincipal=holder_arn, Operations=["Decrypt"]
    ) == (
        "AccessDeniedException",
        f"User: {holder_arn} is not authorized to perform: kms:CreateGrant on resource: {key['Arn']} "
        "with an explicit deny in a resource-based policy",
    )


def test_review_attack_create_grant_only_grant_gives_no_crypto(
    server: Server, kms: Any, iam: Any, owner: dict[str, str]
) -> None:
    """A user holding only a grant for CreateGrant cannot grant himself Encrypt/Decrypt/ReEncrypt."""
    mallory_arn, mallory = new_user(server, iam, owner["AccountId"])
    key = kms.create_key()["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"A's data")["CiphertextBlob"]
    kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=mallory_arn, Operations=["CreateGrant"])
    attack = {
        "KeyId": key["Arn"],
        "GranteePrincipal": mallory_arn,
        "Operations": ["Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo"],
    }
    assert code_message(mallory.create_grant, **attack) == denied(mallory_arn, "CreateGrant", key["Arn"])
    assert code_message(mallory.decrypt, CiphertextBlob=blob) == denied(mallory_arn, "Decrypt", key["Arn"])
    # What it does allow: a grant of CreateGrant alone.
    mallory.create_grant(KeyId=key["Arn"], GranteePrincipal=mallory_arn, Operations=["CreateGrant"])


def test_review_attack_constrained_parent_spawns_no_unconstrained_child(
    server: Server, kms: Any, iam: Any, owner: dict[str, str]
) -> None:
    """Under {Decrypt, CreateGrant} with EncryptionContextEquals {dept: hr}, no unconstrained child,
    and no finance data."""
    mallory_arn, mallory = new_user(server, iam, owner["AccountId"])
    key = kms.create_key()["KeyMetadata"]
    hr = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"hr", EncryptionContext=HR)["CiphertextBlob"]
    finance = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"fin", EncryptionContext={"dept": "finance"})[
        "CiphertextBlob"
    ]
    kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=mallory_arn, Operations=list(DC), Constraints={EQ: HR}
    )
    for child in ({}, {SUB: HR}, {EQ: {"dept": "finance"}}):
        kwargs: dict[str, Any] = {
            "KeyId": key["Arn"],
            "GranteePrincipal": mallory_arn,
            "Operations": ["Decrypt"],
        }
        if child:
            kwargs["Constraints"] = child
        assert code_message(mallory.create_grant, **kwargs) == denied(mallory_arn, "CreateGrant", key["Arn"])
    assert code_message(
        mallory.decrypt, CiphertextBlob=finance, EncryptionContext={"dept": "finance"}
    ) == denied(mallory_arn, "Decrypt", key["Arn"])
    assert mallory.decrypt(CiphertextBlob=hr, EncryptionContext=HR)["Plaintext"] == b"hr"


# --- grant tokens --------------------------------------------------------------------------------------


def test_grant_tokens(server: Server, kms: Any, iam: Any, owner: dict[str, str]) -> None:
    carol_arn, carol = new_user(server, iam, owner["AccountId"])
    key = kms.create_key()["KeyMetadata"]
    other = kms.create_key()["KeyMetadata"]
    grant = kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=carol_arn, Operations=["Encrypt", "CreateGrant"]
    )
    token = grant["GrantToken"]
    # A fresh grant is usable with its token, for its operations and for CreateGrant from it.
    carol.encrypt(KeyId=key["Arn"], Plaintext=b"x", GrantTokens=[token])
    carol.create_grant(
        KeyId=key["Arn"], GranteePrincipal=carol_arn, Operations=["Encrypt"], GrantTokens=[token]
    )
    # A token of a grant on another key gives nothing on this one.
    elsewhere = kms.create_grant(KeyId=other["KeyId"], GranteePrincipal=carol_arn, Operations=["Decrypt"])
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"y")["CiphertextBlob"]
    assert code_message(carol.decrypt, CiphertextBlob=blob, GrantTokens=[elsewhere["GrantToken"]]) == denied(
        carol_arn, "Decrypt", key["Arn"]
    )
    # A forged token (one character changed, or made up) is refused as invalid.
    middle = len(token) // 2
    forged = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    for bad in (forged, "not-a-token", token + "AAAA"):
        assert code_message(carol.encrypt, KeyId=key["Arn"], Plaintext=b"x", GrantTokens=[bad]) == (
            "InvalidGrantTokenException",
            "The grant token is invalid.",
        )
    # A retired grant's token gives nothing.
    kms.revoke_grant(KeyId=other["KeyId"], GrantId=elsewhere["GrantId"])
    for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]:
        kms.revoke_grant(KeyId=key["KeyId"], GrantId=g["GrantId"])
    assert code_message(carol.encrypt, KeyId=key["Arn"], Plaintext=b"x", GrantTokens=[token]) == denied(
        carol_arn, "Encrypt", key["Arn"]
    )


def test_grant_token_works_at_once_on_another_node(
    server: Server, kms: Any, iam: Any, owner: dict[str, str]
) -> None:
    """A grant created on one node is usable with its token on another at once, before the other
    node's cache has heard of it (SQLite's change feed polls every 200 ms): the token names the
    grant, and the node reads it."""
    twin = Server(data_dir=server.data_dir, database_url=server.database_url)
    twin.start()
    twin.access_key, twin.secret_key = owner["AccessKeyId"], owner["SecretAccessKey"]
    try:
        carol_arn, _ = new_user(server, iam, owner["AccountId"])
        access = iam.create_access_key(UserName=carol_arn.rsplit("/", 1)[1])["AccessKey"]
        carol_there = twin.client(access_key=access["AccessKeyId"], secret_key=access["SecretAccessKey"])
        key = kms.create_key()["KeyMetadata"]
        twin.client().describe_key(KeyId=key["KeyId"])  # the key is in the twin's cache
        for _ in range(5):
            grant = kms.create_grant(KeyId=key["KeyId"], GranteePrincipal=carol_arn, Operations=["Encrypt"])
            carol_there.encrypt(KeyId=key["Arn"], Plaintext=b"x", GrantTokens=[grant["GrantToken"]])
            kms.revoke_grant(KeyId=key["KeyId"], GrantId=grant["GrantId"])
    finally:
        twin.stop()


# --- retiring and revoking -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Retire:
    name: str
    caller: str  # grantee | retirer | owner-user | owner-admin | other-user | other-admin
    grantee_ops: tuple[str, ...]
    iam: str | None  # the caller's IAM policy on kms:RetireGrant: "allow", "deny" or None
    retiring: str  # the grant's retiring principal: "retirer", "other-user", or "other-root" (B's account)
    outcome: str  # "ok", or the AccessDenied reason: "identity", "resource", "deny"


RETIRES = [
    Retire("retiring principal", "retirer", ("Decrypt",), None, "retirer", "ok"),
    Retire("grantee with RetireGrant", "grantee", ("Decrypt", "RetireGrant"), None, "retirer", "ok"),
    Retire("grantee without RetireGrant", "grantee", ("Decrypt",), None, "retirer", "identity"),
    Retire("grantee, IAM allows", "grantee", ("Decrypt",), "allow", "retirer", "ok"),
    Retire("key owner's user, IAM allows", "owner-user", ("Decrypt",), "allow", "retirer", "ok"),
    Retire("key owner's user, no IAM", "owner-user", ("Decrypt",), None, "retirer", "identity"),
    Retire("key owner's administrator", "owner-admin", ("Decrypt",), None, "retirer", "ok"),
    Retire("retiring principal, IAM denies", "retirer", ("Decrypt",), "deny", "retirer", "deny"),
    Retire("another account's user", "other-user", ("Decrypt",), "allow", "retirer", "resource"),
    Retire("another account's administrator", "other-admin", ("Decrypt",), None, "retirer", "resource"),
    Retire("retiring principal of another account", "other-user", ("Decrypt",), None, "other-user", "ok"),
    Retire(
        "user of the retiring account, IAM allows", "other-user", ("Decrypt",), "allow", "other-root", "ok"
    ),
    Retire(
        "user of the retiring account, no IAM", "other-user", ("Decrypt",), None, "other-root", "identity"
    ),
]


@pytest.mark.parametrize("by_token", [True, False], ids=["token", "key-and-id"])
@pytest.mark.parametrize("case", RETIRES, ids=[c.name for c in RETIRES])
def test_retire_grant(
    server: Server, kms: Any, iam: Any, owner: dict[str, str], case: Retire, by_token: bool
) -> None:
    other = other_account(server)
    other_iam = server.client("iam", access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"])
    statement: dict[str, Any] = {}
    if case.iam is not None:
        statement = {"Effect": case.iam.capitalize(), "Action": "kms:RetireGrant", "Resource": "*"}
    users = {}
    for role in ("grantee", "retirer", "owner-user"):
        users[role] = new_user(server, iam, owner["AccountId"], **(statement if role == case.caller else {}))
    users["other-user"] = new_user(
        server, other_iam, other["AccountId"], **(statement if case.caller == "other-user" else {})
    )
    other_creds = {"access_key": other["AccessKeyId"], "secret_key": other["SecretAccessKey"]}
    users["owner-admin"] = (server.client("sts", **creds(owner)).get_caller_identity()["Arn"], kms)
    users["other-admin"] = (
        server.client("sts", **other_creds).get_caller_identity()["Arn"],
        server.client(**other_creds),
    )
    retiring = (
        f"arn:aws:iam::{other['AccountId']}:root"
        if case.retiring == "other-root"
        else users[case.retiring][0]
    )
    key = kms.create_key()["KeyMetadata"]
    grant = kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=users["grantee"][0],
        RetiringPrincipal=retiring,
        Operations=list(case.grantee_ops),
    )
    caller_arn, caller = users[case.caller]
    args = (
        {"GrantToken": grant["GrantToken"]}
        if by_token
        else {"KeyId": key["Arn"], "GrantId": grant["GrantId"]}
    )
    if case.outcome == "ok":
        caller.retire_grant(**args)
        assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []
    else:
        assert code_message(caller.retire_grant, **args) == denied(
            caller_arn, "RetireGrant", key["Arn"], case.outcome
        )
        assert [g["GrantId"] for g in kms.list_grants(KeyId=key["KeyId"])["Grants"]] == [grant["GrantId"]]


def test_retire_by_key_id_of_another_key_is_not_found(
    server: Server, kms: Any, owner: dict[str, str]
) -> None:
    key = kms.create_key()["KeyMetadata"]
    other = kms.create_key()["KeyMetadata"]
    grant = kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=f"arn:aws:iam::{owner['AccountId']}:root", Operations=["Decrypt"]
    )
    assert code_message(kms.retire_grant, KeyId=other["Arn"], GrantId=grant["GrantId"]) == (
        "NotFoundException",
        f"Grant ID {grant['GrantId']} not found",
    )


def test_revoke_grant_needs_policy_permission(
    server: Server, kms: Any, iam: Any, owner: dict[str, str]
) -> None:
    """RevokeGrant is authorized by the key policy and IAM only: a grant (even one with RetireGrant and
    CreateGrant) does not allow it."""
    carol_arn, carol = new_user(server, iam, owner["AccountId"])
    _, admin = new_user(
        server, iam, owner["AccountId"], Effect="Allow", Action="kms:RevokeGrant", Resource="*"
    )
    key = kms.create_key()["KeyMetadata"]
    grant = kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=carol_arn,
        RetiringPrincipal=carol_arn,
        Operations=["Decrypt", "RetireGrant", "CreateGrant"],
    )
    assert code_message(carol.revoke_grant, KeyId=key["Arn"], GrantId=grant["GrantId"]) == denied(
        carol_arn, "RevokeGrant", key["Arn"]
    )
    admin.revoke_grant(KeyId=key["Arn"], GrantId=grant["GrantId"])
    assert kms.list_grants(KeyId=key["KeyId"])["Grants"] == []


# --- ListRetirableGrants -------------------------------------------------------------------------------


def test_list_retirable_grants_only_for_principals_of_the_callers_account(
    server: Server, kms: Any, iam: Any, owner: dict[str, str]
) -> None:
    other = other_account(server)
    other_iam = server.client("iam", access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"])
    lister = {"Effect": "Allow", "Action": "kms:ListRetirableGrants", "Resource": "*"}
    a_admin_arn, a_admin = new_user(server, iam, owner["AccountId"], **lister)
    b_user_arn, b_user = new_user(server, other_iam, other["AccountId"], **lister)
    _, b_nobody = new_user(server, other_iam, other["AccountId"])
    key = kms.create_key()["KeyMetadata"]
    mine = kms.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=a_admin_arn,
        RetiringPrincipal=a_admin_arn,
        Operations=["Decrypt"],
        Name="secret-name",
    )
    theirs = kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=a_admin_arn, RetiringPrincipal=b_user_arn, Operations=["Encrypt"]
    )
    # B may not list grants whose retiring principal is of A's account (nor of A's account itself).
    for principal in (a_admin_arn, f"arn:aws:iam::{owner['AccountId']}:root", owner["AccountId"]):
        assert code_message(b_user.list_retirable_grants, RetiringPrincipal=principal) == denied(
            b_user_arn, "ListRetirableGrants", principal, "resource"
        )
    # Without kms:ListRetirableGrants in its IAM policies, B's user gets nothing at all.
    assert (
        aws_error(b_nobody.list_retirable_grants, RetiringPrincipal=b_user_arn).code
        == "AccessDeniedException"
    )
    # Each lists what it may retire: B's user sees the grant on A's key naming it, A's admin its own.
    assert [g["GrantId"] for g in b_user.list_retirable_grants(RetiringPrincipal=b_user_arn)["Grants"]] == [
        theirs["GrantId"]
    ]
    assert [g["GrantId"] for g in a_admin.list_retirable_grants(RetiringPrincipal=a_admin_arn)["Grants"]] == [
        mine["GrantId"]
    ]


# --- encryption context keys that differ only in case --------------------------------------------------


COLLISIONS = [
    ({"A": "1", "a": "2"}, False),
    ({"a": "2", "A": "9"}, False),
    ({"a": "2", "A": "2"}, False),
    ({"a": "2"}, True),
    ({"A": "2"}, True),
]


@pytest.mark.parametrize("kind", [EQ, SUB])
@pytest.mark.parametrize(
    "context,allowed", COLLISIONS, ids=[",".join(f"{k}={v}" for k, v in c.items()) for c, _ in COLLISIONS]
)
def test_grant_constraint_with_case_colliding_context(
    server: Server,
    kms: Any,
    iam: Any,
    owner: dict[str, str],
    kind: str,
    context: dict[str, str],
    allowed: bool,
) -> None:
    carol_arn, carol = new_user(server, iam, owner["AccountId"])
    key = kms.create_key()["KeyMetadata"]
    kms.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=carol_arn, Operations=["Encrypt"], Constraints={kind: {"a": "2"}}
    )
    if allowed:
        carol.encrypt(KeyId=key["Arn"], Plaintext=b"x", EncryptionContext=context)
    else:
        assert code_message(
            carol.encrypt, KeyId=key["Arn"], Plaintext=b"x", EncryptionContext=context
        ) == denied(carol_arn, "Encrypt", key["Arn"])


@pytest.mark.parametrize(
    "context,allowed", COLLISIONS, ids=[",".join(f"{k}={v}" for k, v in c.items()) for c, _ in COLLISIONS]
)
def test_policy_condition_with_case_colliding_context(
    server: Server, kms: Any, iam: Any, owner: dict[str, str], context: dict[str, str], allowed: bool
) -> None:
    """kms:EncryptionContext:<key> names are matched without regard to case: a context giving the key in
    two spellings satisfies no Allow condition on it (and every Deny condition), in either order."""
    carol_arn, carol = new_user(server, iam, owner["AccountId"])
    root = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{owner['AccountId']}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    allow = {
        "Effect": "Allow",
        "Principal": {"AWS": carol_arn},
        "Action": "kms:Encrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:a": "2"}},
    }
    deny = {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "kms:Encrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:a": "9"}},
    }
    key = kms.create_key(Policy=policy(root, allow))["KeyMetadata"]
    guarded = kms.create_key(Policy=policy(root, deny))["KeyMetadata"]
    if allowed:
        carol.encrypt(KeyId=key["Arn"], Plaintext=b"x", EncryptionContext=context)
        kms.encrypt(KeyId=guarded["Arn"], Plaintext=b"x", EncryptionContext=context)
    else:
        assert code_message(
            carol.encrypt, KeyId=key["Arn"], Plaintext=b"x", EncryptionContext=context
        ) == denied(carol_arn, "Encrypt", key["Arn"])
        admin_arn = server.client("sts", **creds(owner)).get_caller_identity()["Arn"]
        assert code_message(kms.encrypt, KeyId=guarded["Arn"], Plaintext=b"x", EncryptionContext=context) == (
            "AccessDeniedException",
            f"User: {admin_arn} is not authorized to perform: kms:Encrypt on resource: {guarded['Arn']} "
            "with an explicit deny in a resource-based policy",
        )
