"""A call on another account's key is in both trails, as CloudTrail delivers it: the caller's copy and
the key owner's copy, each with its own eventID and recipientAccountId, both with the same
sharedEventID, otherwise the same record (eventName, requestID, the caller's userIdentity, resources…).
A call refused with AccessDenied is only in the caller's trail; a same-account call has no
sharedEventID. Every reader of the owner's trail sees it: ``openkms audit list``, the console's event
history and GetKeyLastUsage."""

from __future__ import annotations

import html
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server
from tests.e2e.console.http import ConsoleHttp
from tests.e2e.test_authorization import new_user, policy, root_statement
from tests.e2e.util import audit_list, by_request_id, wait_for_audit

USE = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKey",
    "kms:CreateGrant",
    "kms:ReEncrypt*",
]
# The fields that differ between the copies of one cross-account call.
PER_COPY = {"eventID", "recipientAccountId"}


def _rid(response: dict[str, Any]) -> str:
    return str(response["ResponseMetadata"]["RequestId"])


def _rid_of_error(call: Callable[[], Any], code: str) -> str:
    with pytest.raises(ClientError) as exc:
        call()
    assert exc.value.response["Error"]["Code"] == code
    return str(exc.value.response["ResponseMetadata"]["RequestId"])


class Accounts:
    """Account A (the server's first) owns ``key``; bob of account B may use it (A's key policy names
    him, B's IAM allows him ``kms:*``); carol of B has the same IAM policy but is not in A's policy."""

    def __init__(self, server: Server) -> None:
        self.a = server.account_id
        other = server.new_account()
        self.b = other["AccountId"]
        iam_b = server.client("iam", access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"])
        allow_all = {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}
        self.bob_arn, self.bob = new_user(server, iam_b, self.b, **allow_all)
        self.carol_arn, self.carol = new_user(server, iam_b, self.b, **allow_all)
        self.kms = server.client()
        statement = {"Effect": "Allow", "Principal": {"AWS": self.bob_arn}, "Action": USE, "Resource": "*"}
        self.key = self.kms.create_key(Policy=policy(root_statement(self.a), statement))["KeyMetadata"]
        self.other_key = self.kms.create_key()["KeyMetadata"]  # A's, not shared
        self.bob_key = self.bob.create_key()["KeyMetadata"]  # B's own
        time.sleep(0.2)  # the new IAM policies and keys are seen by every cache


def _trail(server: Server, account: str, *args: str, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """The records of ``account``'s trail by request id, once all ``wanted`` request ids are there."""
    records = wait_for_audit(
        server,
        ("--account-id", account, *args),
        lambda found: wanted <= set(by_request_id(found)),
    )
    return by_request_id(records)


def _without(record: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name not in names}


def test_cross_account_calls_are_in_both_trails(server: Server) -> None:
    acc = Accounts(server)
    key_arn = acc.key["Arn"]
    calls: dict[str, str] = {}  # request id -> event name
    out = acc.bob.encrypt(KeyId=key_arn, Plaintext=b"secret", EncryptionContext={"dept": "hr"})
    calls[_rid(out)] = "Encrypt"
    blob = out["CiphertextBlob"]
    calls[_rid(acc.bob.decrypt(CiphertextBlob=blob, EncryptionContext={"dept": "hr"}))] = "Decrypt"
    calls[_rid(acc.bob.decrypt(CiphertextBlob=blob, KeyId=key_arn, EncryptionContext={"dept": "hr"}))] = (
        "Decrypt"
    )
    calls[_rid(acc.bob.describe_key(KeyId=key_arn))] = "DescribeKey"
    calls[_rid(acc.bob.generate_data_key(KeyId=key_arn, KeySpec="AES_256"))] = "GenerateDataKey"
    grant = acc.bob.create_grant(KeyId=key_arn, GranteePrincipal=acc.bob_arn, Operations=["Decrypt"])
    calls[_rid(grant)] = "CreateGrant"
    # A change waits for its records: both copies are stored when the answer comes (no waiting here).
    for account in (acc.a, acc.b):
        stored = by_request_id(audit_list(server, "--account-id", account, "--event-name", "CreateGrant"))
        assert _rid(grant) in stored, account
    own = acc.bob.encrypt(KeyId=acc.bob_key["KeyId"], Plaintext=b"mine")["CiphertextBlob"]
    re_encrypted = acc.bob.re_encrypt(CiphertextBlob=own, DestinationKeyId=key_arn)
    calls[_rid(re_encrypted)] = "ReEncrypt"
    wanted = set(calls)

    caller = _trail(server, acc.b, wanted=wanted)
    owner = _trail(server, acc.a, "--key-id", acc.key["KeyId"], wanted=wanted)
    for request_id, event_name in calls.items():
        mine, theirs = caller[request_id], owner[request_id]
        assert mine["eventName"] == theirs["eventName"] == event_name
        assert mine["recipientAccountId"] == acc.b
        assert theirs["recipientAccountId"] == acc.a
        assert mine["eventID"] != theirs["eventID"]
        uuid.UUID(mine["eventID"])
        uuid.UUID(theirs["eventID"])
        assert str(uuid.UUID(mine["sharedEventID"])) == mine["sharedEventID"]
        # The same record otherwise: requestID, the caller's userIdentity, parameters, resources…
        assert _without(mine, PER_COPY) == _without(theirs, PER_COPY)
        identity = theirs["userIdentity"]
        assert (identity["type"], identity["arn"], identity["accountId"]) == ("IAMUser", acc.bob_arn, acc.b)
        assert identity["accessKeyId"] == mine["userIdentity"]["accessKeyId"]
        assert key_arn in [resource["ARN"] for resource in theirs["resources"]]
        assert "errorCode" not in theirs
        # CloudTrail's field order: …recipientAccountId, sharedEventID, eventCategory.
        assert list(theirs)[-3:] == ["recipientAccountId", "sharedEventID", "eventCategory"]
    # Every copy is a record of its own (the shared id joins them); none is in a third place.
    assert len({caller[r]["sharedEventID"] for r in calls}) == len(calls)
    # ReEncrypt from B's key to A's: both keys in resources; the owner's copy is under A's key.
    reenc = owner[_rid(re_encrypted)]
    assert [(r["ARN"], r["accountId"]) for r in reenc["resources"]] == [
        (acc.bob_key["Arn"], acc.b),
        (key_arn, acc.a),
    ]
    # B's own key in B's trail only: the ReEncrypt there is B's copy, under B's key.
    bob_key = ("--key-id", acc.bob_key["KeyId"])
    on_bob_key = by_request_id(audit_list(server, "--account-id", acc.b, *bob_key))
    assert on_bob_key[_rid(re_encrypted)]["eventID"] == caller[_rid(re_encrypted)]["eventID"]
    assert not by_request_id(audit_list(server, "--account-id", acc.a, *bob_key))


def test_denied_and_same_account_calls_have_one_record(server: Server) -> None:
    acc = Accounts(server)
    key_arn = acc.key["Arn"]
    blob = acc.bob.encrypt(KeyId=key_arn, Plaintext=b"x")["CiphertextBlob"]
    denied = {
        _rid_of_error(lambda: acc.carol.decrypt(CiphertextBlob=blob), "AccessDeniedException"),
        _rid_of_error(lambda: acc.carol.encrypt(KeyId=key_arn, Plaintext=b"x"), "AccessDeniedException"),
        _rid_of_error(lambda: acc.carol.describe_key(KeyId=key_arn), "AccessDeniedException"),
        _rid_of_error(
            lambda: acc.carol.create_grant(
                KeyId=key_arn, GranteePrincipal=acc.carol_arn, Operations=["Decrypt"]
            ),
            "AccessDeniedException",
        ),
    }
    same = _rid(acc.kms.encrypt(KeyId=acc.key["KeyId"], Plaintext=b"x"))
    mark = _rid(acc.bob.describe_key(KeyId=key_arn))  # written after the others: they are in by now
    caller = _trail(server, acc.b, wanted=denied | {mark})
    owner = _trail(server, acc.a, wanted={same, mark})
    for request_id in denied:
        record = caller[request_id]
        assert record["errorCode"] == "AccessDeniedException"
        assert record["recipientAccountId"] == acc.b
        assert "sharedEventID" not in record
        assert request_id not in owner
    assert "sharedEventID" not in owner[same]
    assert same not in by_request_id(audit_list(server, "--account-id", acc.b))
    assert "sharedEventID" in owner[mark]


def test_failed_call_after_authorization_is_in_both_trails(server: Server) -> None:
    """AWS logs only the calls refused for access in the caller's account alone: a call authorized on
    the key that then fails (here the ciphertext is of another key than the one named) is in both."""
    acc = Accounts(server)
    blob = acc.kms.encrypt(KeyId=acc.other_key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    failed = _rid_of_error(
        lambda: acc.bob.decrypt(CiphertextBlob=blob, KeyId=acc.key["Arn"]), "IncorrectKeyException"
    )
    caller = _trail(server, acc.b, wanted={failed})
    owner = _trail(server, acc.a, "--key-id", acc.key["KeyId"], wanted={failed})
    assert caller[failed]["errorCode"] == owner[failed]["errorCode"] == "IncorrectKeyException"
    assert caller[failed]["sharedEventID"] == owner[failed]["sharedEventID"]
    assert owner[failed]["recipientAccountId"] == acc.a


def test_owner_readers_see_the_other_accounts_use(server: Server) -> None:
    acc = Accounts(server)
    key_id, key_arn = acc.key["KeyId"], acc.key["Arn"]
    blob = acc.bob.encrypt(KeyId=key_arn, Plaintext=b"x")["CiphertextBlob"]
    decrypted = _rid(acc.bob.decrypt(CiphertextBlob=blob))
    owner = _trail(server, acc.a, "--key-id", key_id, wanted={decrypted})
    copy = owner[decrypted]

    # GetKeyLastUsage of A's key: B's Decrypt, as A's trail knows it (A's copy's eventID).
    usage = acc.kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]
    assert (usage["Operation"], usage["KmsRequestId"]) == ("Decrypt", decrypted)
    assert usage["CloudTrailEventId"] == copy["eventID"]
    # B's ReEncrypt into A's key is a use of A's key too (A's key is its destination, not its first).
    own = acc.bob.encrypt(KeyId=acc.bob_key["KeyId"], Plaintext=b"mine")["CiphertextBlob"]
    re_encrypted = _rid(acc.bob.re_encrypt(CiphertextBlob=own, DestinationKeyId=key_arn))
    deadline = time.time() + 5
    while True:
        usage = acc.kms.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]
        if usage["KmsRequestId"] == re_encrypted or time.time() > deadline:
            break
        time.sleep(0.05)
    assert (usage["Operation"], usage["KmsRequestId"]) == ("ReEncrypt", re_encrypted)
    a_copy = _trail(server, acc.a, "--key-id", key_id, wanted={re_encrypted})[re_encrypted]
    assert usage["CloudTrailEventId"] == a_copy["eventID"]

    # The console's event history of A shows B's call (A's copy), by key and among all events.
    bob_name = acc.bob_arn.rsplit("/", 1)[1]
    console = ConsoleHttp(server.endpoint)
    assert console.sign_in(server.access_key, server.secret_key).status == 303
    queries = (
        f"key_id={key_id}&read_only=all",
        f"key_id={key_arn}&read_only=true&event_name=Decrypt",
        f"principal={bob_name}&read_only=all",
    )
    for query in queries:
        page = console.get(f"/console/audit?{query}")
        assert page.status == 200
        shown = [json.loads(html.unescape(m)) for m in re.findall(r"<pre>(.*?)</pre>", page.text, re.S)]
        found = [record for record in shown if record.get("requestID") == decrypted]
        assert [record["eventID"] for record in found] == [copy["eventID"]], query
        assert found[0]["userIdentity"]["arn"] == acc.bob_arn
        assert found[0]["recipientAccountId"] == acc.a
    # B's ReEncrypt into A's key is listed under A's key (A's key in its resources), not B's.
    page = console.get(f"/console/audit?key_id={key_id}&event_name=ReEncrypt&read_only=all")
    assert re_encrypted in page.text
    linked = set(re.findall(r'href="/console/keys/([0-9a-f-]{36})[?"]', page.text))
    assert key_id in linked
    assert acc.bob_key["KeyId"] not in linked
