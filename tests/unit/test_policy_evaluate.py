"""The decision: explicit deny, NotAction/NotPrincipal/NotResource, delegation to IAM, cross-account,
grants, the root user, role sessions, service principals and key-less actions; plus the measured cost
of one authorization (printed, never asserted)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import pytest

from openkms.auth.policy import (
    REASON_DENY_IDENTITY,
    REASON_DENY_RESOURCE,
    Caller,
    Decision,
    Effect,
    PolicyDocument,
    Request,
    access_denied_message,
    authorize,
    evaluate,
    parse_policy,
)

A = "111122223333"  # key owner
B = "444455556666"  # another account
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY = f"arn:aws:kms:us-east-1:{A}:key/0987dcba-09ab-87cd-65ef-0987654321ba"
ROOT_A = f"arn:aws:iam::{A}:root"
ROOT_B = f"arn:aws:iam::{B}:root"

ALICE = Caller(f"arn:aws:iam::{A}:user/alice", A, "IAMUser", "AIDAALICE", "alice", None, {})
BOB = Caller(f"arn:aws:iam::{A}:user/bob", A, "IAMUser", "AIDABOB", "bob", None, {})
APP_S1 = Caller(
    f"arn:aws:sts::{A}:assumed-role/App/s1",
    A,
    "AssumedRole",
    "AROAAPP:s1",
    None,
    f"arn:aws:iam::{A}:role/App",
    {},
)
APP_S2 = Caller(
    f"arn:aws:sts::{A}:assumed-role/App/s2",
    A,
    "AssumedRole",
    "AROAAPP:s2",
    None,
    f"arn:aws:iam::{A}:role/App",
    {},
)
ROOT = Caller(ROOT_A, A, "Root", A, None, None, {})
CAROL = Caller(f"arn:aws:iam::{B}:user/carol", B, "IAMUser", "AIDACAROL", "carol", None, {})
B_SESSION = Caller(
    f"arn:aws:sts::{B}:assumed-role/Ops/x",
    B,
    "AssumedRole",
    "AROAOPS:x",
    None,
    f"arn:aws:iam::{B}:role/Ops",
    {},
)
B_ROOT = Caller(ROOT_B, B, "Root", B, None, None, {})
LOGS = Caller(
    "logs.us-east-1.amazonaws.com", "", "AWSService", "logs.us-east-1.amazonaws.com", None, None, {}
)


def key_policy(*statements: dict[str, Any]) -> PolicyDocument:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def identity(*statements: dict[str, Any]) -> PolicyDocument:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}), kind="identity")


def allow(principal: Any, actions: Any = "kms:*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": actions, "Resource": "*", **extra}


def deny(principal: Any, actions: Any = "kms:*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Principal": principal, "Action": actions, "Resource": "*", **extra}


ENABLE_IAM = allow({"AWS": ROOT_A})
DEFAULT = key_policy(ENABLE_IAM)
NO_DELEGATION = key_policy(allow({"AWS": ALICE.arn}, "kms:Encrypt"))
CROSS_ACCOUNT = key_policy(ENABLE_IAM, allow({"AWS": ROOT_B}, ["kms:Encrypt", "kms:Decrypt"]))
CROSS_USER = key_policy(ENABLE_IAM, allow({"AWS": CAROL.arn}, "kms:Encrypt"))
CROSS_ACCOUNT_ID = key_policy(ENABLE_IAM, allow({"AWS": B}, "kms:Encrypt"))
ROLE = key_policy(allow({"AWS": f"arn:aws:iam::{A}:role/App"}, "kms:Encrypt"))
SESSION = key_policy(allow({"AWS": APP_S1.arn}, "kms:Encrypt"))
DENY_BOB = key_policy(ENABLE_IAM, allow({"AWS": BOB.arn}), deny({"AWS": BOB.arn}, "kms:Decrypt"))
DENY_ACCOUNT_B = key_policy(ENABLE_IAM, allow({"AWS": ROOT_B}), deny({"AWS": ROOT_B}, "kms:Decrypt"))
NOT_ACTION = key_policy(
    {"Effect": "Allow", "Principal": {"AWS": ALICE.arn}, "NotAction": "kms:Schedule*", "Resource": "*"}
)
STAR_IN_ACCOUNT = key_policy(allow("*", "kms:Encrypt", Condition={"StringEquals": {"kms:CallerAccount": A}}))
STAR = key_policy(allow({"AWS": "*"}, "kms:Encrypt"))
SERVICE = key_policy(
    ENABLE_IAM, allow({"Service": "logs.us-east-1.amazonaws.com"}, ["kms:Encrypt", "kms:Decrypt"])
)
# NotPrincipal + Deny: deny everyone except the listed identities (IAM: list the account too).
NOT_PRINCIPAL_WITH_ACCOUNT = key_policy(
    ENABLE_IAM,
    {"Effect": "Deny", "NotPrincipal": {"AWS": [ALICE.arn, ROOT_A]}, "Action": "kms:*", "Resource": "*"},
)
NOT_PRINCIPAL_WITHOUT_ACCOUNT = key_policy(
    ENABLE_IAM, {"Effect": "Deny", "NotPrincipal": {"AWS": [ALICE.arn]}, "Action": "kms:*", "Resource": "*"}
)
NOT_PRINCIPAL_SESSION = key_policy(
    ENABLE_IAM,
    {"Effect": "Deny", "NotPrincipal": {"AWS": [APP_S1.arn, ROOT_A]}, "Action": "kms:*", "Resource": "*"},
)
NOT_PRINCIPAL_ALLOW = key_policy(
    {"Effect": "Allow", "NotPrincipal": {"AWS": [BOB.arn, ROOT_A]}, "Action": "kms:Encrypt", "Resource": "*"}
)
NOT_PRINCIPAL_ALLOW_NO_ACCOUNT = key_policy(
    {"Effect": "Allow", "NotPrincipal": {"AWS": [BOB.arn]}, "Action": "kms:Encrypt", "Resource": "*"}
)
KEY_POLICY_SPECIFIC_RESOURCE = key_policy(
    allow({"AWS": ALICE.arn}, "kms:Encrypt", Resource=KEY),
    allow({"AWS": BOB.arn}, "kms:Encrypt", Resource=OTHER_KEY),
)
INEFFECTIVE = key_policy({"Effect": "Allow", "Principal": {"AWS": ALICE.arn}, "Resource": "*"})

IAM_ENCRYPT = identity({"Effect": "Allow", "Action": "kms:Encrypt", "Resource": f"arn:aws:kms:*:{A}:key/*"})
IAM_ALL = identity({"Effect": "Allow", "Action": "kms:*", "Resource": "*"})
IAM_DENY_ENCRYPT = identity({"Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*"})
IAM_NOT_THIS_KEY = identity({"Effect": "Allow", "Action": "kms:*", "NotResource": KEY})
IAM_NOT_DECRYPT = identity(
    {"Effect": "Allow", "NotAction": ["kms:Decrypt", "kms:Schedule*"], "Resource": "*"}
)
IAM_OTHER_KEY = identity({"Effect": "Allow", "Action": "kms:*", "Resource": OTHER_KEY})
IAM_ALIAS = identity(
    {"Effect": "Allow", "Action": "kms:*", "Resource": f"arn:aws:kms:us-east-1:{A}:alias/app"}
)
IAM_OTHER_ACCOUNT_KEYS = identity(
    {"Effect": "Allow", "Action": "kms:*", "Resource": f"arn:aws:kms:*:{B}:key/*"}
)
IAM_LOWERCASE = identity({"Effect": "Allow", "Action": "KMS:encrypt", "Resource": "*"})
IAM_QUESTION = identity({"Effect": "Allow", "Action": "kms:?ncrypt", "Resource": "*"})
IAM_CREATE_KEY = identity({"Effect": "Allow", "Action": ["kms:CreateKey", "kms:List*"], "Resource": "*"})
IAM_KEYS_ONLY = identity({"Effect": "Allow", "Action": "kms:*", "Resource": f"arn:aws:kms:*:{A}:key/*"})


def no_identity(action: str) -> str:
    return f"because no identity-based policy allows the {action} action"


def no_resource(action: str) -> str:
    return f"because no resource-based policy allows the {action} action"


ENC = "kms:Encrypt"
DEC = "kms:Decrypt"
CASES: list[Any] = [
    # -- delegation to IAM (same account)
    pytest.param(BOB, ENC, DEFAULT, [IAM_ENCRYPT], False, True, "", id="default-policy-delegates-to-iam"),
    pytest.param(BOB, ENC, DEFAULT, [], False, False, no_identity(ENC), id="default-policy-needs-iam"),
    pytest.param(
        BOB, DEC, DEFAULT, [IAM_ENCRYPT], False, False, no_identity(DEC), id="iam-allows-other-action"
    ),
    pytest.param(ALICE, ENC, NO_DELEGATION, [], False, True, "", id="key-policy-names-user-directly"),
    pytest.param(
        BOB, ENC, NO_DELEGATION, [IAM_ALL], False, False, no_resource(ENC), id="no-delegation-iam-ineffective"
    ),
    pytest.param(
        ALICE,
        ENC,
        NO_DELEGATION,
        [IAM_DENY_ENCRYPT],
        False,
        False,
        REASON_DENY_IDENTITY,
        id="no-delegation-iam-deny-still-applies",
    ),
    pytest.param(
        ALICE, DEC, NO_DELEGATION, [IAM_ALL], False, False, no_resource(DEC), id="no-delegation-other-action"
    ),
    # -- explicit deny
    pytest.param(BOB, ENC, DENY_BOB, [], False, True, "", id="allow-without-deny"),
    pytest.param(
        BOB, DEC, DENY_BOB, [IAM_ALL], False, False, REASON_DENY_RESOURCE, id="key-policy-deny-overrides"
    ),
    pytest.param(
        BOB,
        ENC,
        DEFAULT,
        [IAM_ALL, IAM_DENY_ENCRYPT],
        False,
        False,
        REASON_DENY_IDENTITY,
        id="identity-deny-overrides",
    ),
    pytest.param(BOB, DEC, DENY_BOB, [], True, False, REASON_DENY_RESOURCE, id="grant-cannot-override-deny"),
    pytest.param(
        CAROL,
        DEC,
        DENY_ACCOUNT_B,
        [IAM_ALL],
        False,
        False,
        REASON_DENY_RESOURCE,
        id="deny-on-account-covers-its-users",
    ),
    # -- NotAction / NotResource / NotPrincipal
    pytest.param(ALICE, "kms:DisableKey", NOT_ACTION, [], False, True, "", id="notaction-allows-others"),
    pytest.param(
        ALICE,
        "kms:ScheduleKeyDeletion",
        NOT_ACTION,
        [],
        False,
        False,
        no_resource("kms:ScheduleKeyDeletion"),
        id="notaction-excludes",
    ),
    pytest.param(BOB, ENC, DEFAULT, [IAM_NOT_DECRYPT], False, True, "", id="identity-notaction-allows"),
    pytest.param(
        BOB, DEC, DEFAULT, [IAM_NOT_DECRYPT], False, False, no_identity(DEC), id="identity-notaction-excl"
    ),
    pytest.param(
        BOB, ENC, DEFAULT, [IAM_NOT_THIS_KEY], False, False, no_identity(ENC), id="notresource-excludes-key"
    ),
    pytest.param(
        BOB, "kms:CreateKey", None, [IAM_NOT_THIS_KEY], False, True, "", id="notresource-covers-star"
    ),
    pytest.param(
        ALICE, ENC, NOT_PRINCIPAL_WITH_ACCOUNT, [IAM_ALL], False, True, "", id="notprincipal-exempts-listed"
    ),
    pytest.param(
        BOB,
        ENC,
        NOT_PRINCIPAL_WITH_ACCOUNT,
        [IAM_ALL],
        False,
        False,
        REASON_DENY_RESOURCE,
        id="notprincipal-denies-others",
    ),
    pytest.param(
        CAROL,
        ENC,
        NOT_PRINCIPAL_WITH_ACCOUNT,
        [IAM_ALL],
        False,
        False,
        REASON_DENY_RESOURCE,
        id="notprincipal-denies-other-accounts",
    ),
    pytest.param(
        ALICE,
        ENC,
        NOT_PRINCIPAL_WITHOUT_ACCOUNT,
        [IAM_ALL],
        False,
        False,
        REASON_DENY_RESOURCE,
        id="notprincipal-without-account-denies-listed-user",
    ),
    pytest.param(
        APP_S1, ENC, NOT_PRINCIPAL_SESSION, [IAM_ALL], False, True, "", id="notprincipal-session-exempt"
    ),
    pytest.param(
        APP_S2,
        ENC,
        NOT_PRINCIPAL_SESSION,
        [IAM_ALL],
        False,
        False,
        REASON_DENY_RESOURCE,
        id="notprincipal-other-session-denied",
    ),
    pytest.param(ALICE, ENC, NOT_PRINCIPAL_ALLOW, [], False, True, "", id="notprincipal-allow-others"),
    pytest.param(
        BOB, ENC, NOT_PRINCIPAL_ALLOW, [IAM_ALL], False, False, no_resource(ENC), id="notprincipal-allow-excl"
    ),
    pytest.param(
        BOB,
        ENC,
        NOT_PRINCIPAL_ALLOW_NO_ACCOUNT,
        [],
        False,
        True,
        "",
        id="notprincipal-without-account-still-applies",
    ),
    # -- sessions and roles
    pytest.param(APP_S1, ENC, ROLE, [], False, True, "", id="role-arn-matches-its-sessions"),
    pytest.param(APP_S2, ENC, ROLE, [], False, True, "", id="role-arn-matches-every-session"),
    pytest.param(APP_S1, ENC, SESSION, [], False, True, "", id="session-arn-matches-session"),
    pytest.param(
        APP_S2, ENC, SESSION, [], False, False, no_resource(ENC), id="session-arn-not-other-session"
    ),
    pytest.param(APP_S1, ENC, DEFAULT, [IAM_ENCRYPT], False, True, "", id="session-via-iam"),
    # -- "*" principals
    pytest.param(BOB, ENC, STAR_IN_ACCOUNT, [], False, True, "", id="star-with-calleraccount"),
    pytest.param(
        CAROL, ENC, STAR_IN_ACCOUNT, [IAM_ALL], False, False, no_resource(ENC), id="star-other-account-cond"
    ),
    pytest.param(CAROL, ENC, STAR, [IAM_ALL], False, True, "", id="star-cross-account-with-iam"),
    pytest.param(CAROL, ENC, STAR, [], False, False, no_identity(ENC), id="star-cross-account-needs-iam"),
    # -- cross-account: both halves
    pytest.param(CAROL, ENC, CROSS_ACCOUNT, [IAM_ENCRYPT], False, True, "", id="cross-account-both-halves"),
    pytest.param(CAROL, ENC, CROSS_ACCOUNT, [], False, False, no_identity(ENC), id="cross-account-no-iam"),
    pytest.param(
        CAROL, ENC, DEFAULT, [IAM_ALL], False, False, no_resource(ENC), id="cross-account-no-key-policy"
    ),
    pytest.param(
        CAROL,
        "kms:ScheduleKeyDeletion",
        CROSS_ACCOUNT,
        [IAM_ALL],
        False,
        False,
        no_resource("kms:ScheduleKeyDeletion"),
        id="cross-account-key-policy-scope",
    ),
    pytest.param(
        CAROL,
        ENC,
        CROSS_ACCOUNT,
        [IAM_OTHER_ACCOUNT_KEYS],
        False,
        False,
        no_identity(ENC),
        id="cross-account-iam-wrong-resource",
    ),
    pytest.param(
        B_SESSION, ENC, CROSS_ACCOUNT_ID, [IAM_ENCRYPT], False, True, "", id="cross-account-by-account-id"
    ),
    pytest.param(
        CAROL, ENC, CROSS_USER, [IAM_ENCRYPT], False, True, "", id="cross-account-named-user-with-iam"
    ),
    pytest.param(
        CAROL, ENC, CROSS_USER, [], False, False, no_identity(ENC), id="cross-account-named-user-needs-iam"
    ),
    pytest.param(B_ROOT, ENC, CROSS_ACCOUNT, [], False, True, "", id="cross-account-root-implicit-identity"),
    pytest.param(
        B_ROOT, ENC, DEFAULT, [], False, False, no_resource(ENC), id="cross-account-root-needs-key-policy"
    ),
    # -- grants
    pytest.param(BOB, ENC, NO_DELEGATION, [], True, True, "", id="grant-same-account"),
    pytest.param(CAROL, ENC, DEFAULT, [], True, True, "", id="grant-cross-account-needs-nothing-else"),
    pytest.param(
        BOB,
        ENC,
        DEFAULT,
        [IAM_DENY_ENCRYPT],
        True,
        False,
        REASON_DENY_IDENTITY,
        id="grant-cannot-override-identity-deny",
    ),
    # -- root user
    pytest.param(ROOT, ENC, DEFAULT, [], False, True, "", id="root-with-default-policy"),
    pytest.param(ROOT, ENC, NO_DELEGATION, [], False, False, no_resource(ENC), id="root-needs-key-policy"),
    pytest.param(ROOT, "kms:CreateKey", None, [], False, True, "", id="root-keyless"),
    # -- service principals
    pytest.param(LOGS, ENC, SERVICE, [], False, True, "", id="service-principal"),
    pytest.param(
        LOGS,
        "kms:ScheduleKeyDeletion",
        SERVICE,
        [],
        False,
        False,
        no_resource("kms:ScheduleKeyDeletion"),
        id="service-principal-other-action",
    ),
    pytest.param(LOGS, ENC, DEFAULT, [], False, False, no_resource(ENC), id="service-not-named"),
    # -- resources and actions in identity policies
    pytest.param(BOB, ENC, DEFAULT, [IAM_OTHER_KEY], False, False, no_identity(ENC), id="iam-other-key"),
    pytest.param(BOB, ENC, DEFAULT, [IAM_ALIAS], False, False, no_identity(ENC), id="iam-alias-arn-not-key"),
    pytest.param(BOB, ENC, DEFAULT, [IAM_LOWERCASE], False, True, "", id="actions-case-insensitive"),
    pytest.param(BOB, ENC, DEFAULT, [IAM_QUESTION], False, True, "", id="action-question-wildcard"),
    pytest.param(
        BOB,
        "kms:ReEncrypt",
        DEFAULT,
        [IAM_QUESTION],
        False,
        False,
        no_identity("kms:ReEncrypt"),
        id="action-question-one-char",
    ),
    pytest.param(
        ALICE, ENC, KEY_POLICY_SPECIFIC_RESOURCE, [], False, True, "", id="key-policy-resource-this-key"
    ),
    pytest.param(
        BOB,
        ENC,
        KEY_POLICY_SPECIFIC_RESOURCE,
        [],
        False,
        False,
        no_resource(ENC),
        id="key-policy-resource-other-key",
    ),
    pytest.param(
        ALICE, ENC, INEFFECTIVE, [IAM_ALL], False, False, no_resource(ENC), id="statement-without-action"
    ),
    # -- key-less actions
    pytest.param(BOB, "kms:CreateKey", None, [IAM_CREATE_KEY], False, True, "", id="keyless-allowed"),
    pytest.param(BOB, "kms:ListAliases", None, [IAM_CREATE_KEY], False, True, "", id="keyless-wildcard"),
    pytest.param(
        BOB,
        "kms:GenerateRandom",
        None,
        [IAM_CREATE_KEY],
        False,
        False,
        no_identity("kms:GenerateRandom"),
        id="keyless-not-allowed",
    ),
    pytest.param(
        BOB,
        "kms:CreateKey",
        None,
        [IAM_KEYS_ONLY],
        False,
        False,
        no_identity("kms:CreateKey"),
        id="keyless-needs-star-resource",
    ),
    pytest.param(
        BOB,
        "iam:CreateUser",
        None,
        [IAM_ALL],
        False,
        False,
        no_identity("iam:CreateUser"),
        id="keyless-other-service",
    ),
    pytest.param(
        BOB, "kms:CreateKey", None, [IAM_ALL, IAM_DENY_ENCRYPT], False, True, "", id="keyless-unrelated-deny"
    ),
]


@pytest.mark.parametrize(("caller", "action", "policy", "identities", "grant", "allowed", "reason"), CASES)
def test_authorize(
    caller: Caller,
    action: str,
    policy: PolicyDocument | None,
    identities: Sequence[PolicyDocument],
    grant: bool,
    allowed: bool,
    reason: str,
) -> None:
    resource = KEY if policy is not None else "*"
    account = A if policy is not None else None
    decision = authorize(
        caller,
        Request(action, resource, account, {"kms:CallerAccount": caller.account_id}),
        key_policy=policy,
        identity_policies=identities,
        grant_allows=grant,
    )
    assert decision == Decision(allowed, reason)


@pytest.mark.parametrize(
    ("policy", "caller", "expected"),
    [
        pytest.param(DENY_BOB, BOB, Effect.DENY, id="deny"),
        pytest.param(DENY_BOB, ALICE, Effect.ALLOW, id="allow-through-account"),
        pytest.param(NO_DELEGATION, BOB, Effect.NONE, id="none"),
        pytest.param(NO_DELEGATION, ALICE, Effect.ALLOW, id="allow-direct"),
    ],
)
def test_evaluate_one_key_policy(policy: PolicyDocument, caller: Caller, expected: Effect) -> None:
    request = Request(DEC, KEY, A, {})
    if expected is Effect.ALLOW and policy is NO_DELEGATION:
        request = Request(ENC, KEY, A, {})
    assert evaluate(policy, caller, request, resource_policy=True) is expected


def test_evaluate_identity_policy_ignores_principals_and_resource_policy_needs_them() -> None:
    request = Request(ENC, KEY, A, {})
    assert evaluate(IAM_ALL, BOB, request, resource_policy=False) is Effect.ALLOW
    assert evaluate(IAM_ALL, BOB, request, resource_policy=True) is Effect.NONE
    assert evaluate(IAM_DENY_ENCRYPT, BOB, request, resource_policy=False) is Effect.DENY


def test_access_denied_message() -> None:
    request = Request(ENC, KEY, A, {})
    decision = authorize(BOB, request, key_policy=DEFAULT, identity_policies=[])
    assert access_denied_message(BOB, request, decision) == (
        f"User: arn:aws:iam::{A}:user/bob is not authorized to perform: kms:Encrypt on resource: {KEY} "
        "because no identity-based policy allows the kms:Encrypt action"
    )
    keyless = Request("kms:CreateKey", "*", None, {})
    decision = authorize(APP_S1, keyless, key_policy=None, identity_policies=[IAM_DENY_ENCRYPT])
    assert access_denied_message(APP_S1, keyless, decision) == (
        f"User: arn:aws:sts::{A}:assumed-role/App/s1 is not authorized to perform: kms:CreateKey "
        "on resource: * because no identity-based policy allows the kms:CreateKey action"
    )
    denied = authorize(BOB, Request(DEC, KEY, A, {}), key_policy=DENY_BOB, identity_policies=[])
    assert access_denied_message(BOB, Request(DEC, KEY, A, {}), denied).endswith(
        "kms:Decrypt on resource: " + KEY + " with an explicit deny in a resource-based policy"
    )


def test_unresolved_variable_voids_a_deny_statement() -> None:
    policy = key_policy(
        ENABLE_IAM,
        deny(
            "*",
            "kms:Decrypt",
            Condition={"StringNotEquals": {"kms:EncryptionContext:user": "${aws:username}"}},
        ),
    )
    mismatched = Request(DEC, KEY, A, {"kms:EncryptionContext:user": "someone-else"})
    assert (
        authorize(BOB, mismatched, key_policy=policy, identity_policies=[IAM_ALL]).reason
        == REASON_DENY_RESOURCE
    )
    # A role session has no aws:username: the statement is void, so it does not deny.
    assert authorize(APP_S1, mismatched, key_policy=policy, identity_policies=[IAM_ALL]).allowed


def test_authorization_cost(capsys: pytest.CaptureFixture[str]) -> None:
    """Measure a typical request: console-style key policy (4 statements) + one identity policy."""
    policy = key_policy(
        ENABLE_IAM,
        allow(
            {"AWS": f"arn:aws:iam::{A}:role/Admin"},
            [
                "kms:Create*",
                "kms:Describe*",
                "kms:Enable*",
                "kms:List*",
                "kms:Put*",
                "kms:Update*",
                "kms:Revoke*",
                "kms:Disable*",
                "kms:Get*",
                "kms:Delete*",
            ],
        ),
        allow(
            {"AWS": [f"arn:aws:iam::{A}:role/App", ALICE.arn]},
            ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
        ),
        allow(
            {"AWS": [f"arn:aws:iam::{A}:role/App", ALICE.arn]},
            ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
            Condition={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
    )
    iam = identity(
        {
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt"],
            "Resource": f"arn:aws:kms:*:{A}:key/*",
            "Condition": {"StringEquals": {"aws:PrincipalTag/team": "blue"}},
        }
    )
    request = Request(
        ENC,
        KEY,
        A,
        {
            "kms:CallerAccount": A,
            "kms:EncryptionContext:dept": "it",
            "kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "aws:SecureTransport": True,
        },
    )
    bob = Caller(BOB.arn, A, "IAMUser", "AIDABOB", "bob", None, {"team": "blue"})
    results = {}
    for name, caller in (
        ("direct (session named by role)", APP_S1),
        ("delegated (user via IAM + condition)", bob),
    ):
        assert authorize(caller, request, key_policy=policy, identity_policies=[iam]).allowed
        n = 20000
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(n):
                authorize(caller, request, key_policy=policy, identity_policies=[iam])
            best = min(best, (time.perf_counter() - start) / n)
        results[name] = best
    with capsys.disabled():
        for name, seconds in results.items():
            print(
                f"\n[policy] authorize {name}: {seconds * 1e6:.2f} us/request "
                f"({1 / seconds:,.0f}/s on one core)"
            )
