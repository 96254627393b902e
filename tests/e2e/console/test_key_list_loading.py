"""The console's key list loads a page of keys into the service's cache in a few queries before it
describes them. Keys loaded that way must behave exactly as keys loaded one at a time: their grants,
tags and aliases take part in authorization, and changes made afterwards are seen at once.

The server is restarted after the keys are made, so that the key list is the first to load them."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from tests.conftest import Server
from tests.e2e.console.http import ConsoleHttp
from tests.e2e.util import aws_error


def _policy(account: str, user_arn: str, condition: dict[str, Any]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": user_arn},
                    "Action": "kms:Encrypt",
                    "Resource": "*",
                    "Condition": condition,
                },
            ],
        }
    )


def test_keys_loaded_by_the_key_list_keep_grants_tags_and_aliases(own_server: Server) -> None:
    server = own_server
    account = server.new_account()
    creds = {"access_key": account["AccessKeyId"], "secret_key": account["SecretAccessKey"]}
    kms = server.client(**creds)
    iam = server.client("iam", **creds)
    name = "bob-" + uuid.uuid4().hex[:8]
    bob_arn = iam.create_user(UserName=name)["User"]["Arn"]
    bob_key = iam.create_access_key(UserName=name)["AccessKey"]
    bob = server.client(access_key=bob_key["AccessKeyId"], secret_key=bob_key["SecretAccessKey"])

    # by_grant: bob may Encrypt through a grant only.
    by_grant = kms.create_key(Description="by grant")["KeyMetadata"]["KeyId"]
    kms.create_grant(KeyId=by_grant, GranteePrincipal=bob_arn, Operations=["Encrypt"])
    # by_tag: bob may Encrypt while the key is tagged team=blue.
    by_tag = kms.create_key(
        Description="by tag",
        Policy=_policy(account["AccountId"], bob_arn, {"StringEquals": {"aws:ResourceTag/team": "blue"}}),
        Tags=[{"TagKey": "team", "TagValue": "blue"}],
    )["KeyMetadata"]["KeyId"]
    # by_alias: bob may Encrypt while the key has the alias alias/blue-…
    alias = "alias/blue-" + uuid.uuid4().hex[:8]
    by_alias = kms.create_key(
        Description="by alias",
        Policy=_policy(
            account["AccountId"], bob_arn, {"ForAnyValue:StringEquals": {"kms:ResourceAliases": alias}}
        ),
    )["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=alias, TargetKeyId=by_alias)
    # nothing: bob has no permission at all.
    nothing = kms.create_key(Description="nothing")["KeyMetadata"]["KeyId"]
    disabled = kms.create_key(Description="disabled")["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=disabled)
    ciphertext = kms.encrypt(KeyId=by_grant, Plaintext=b"before the restart")["CiphertextBlob"]

    server.restart()  # nothing is cached any more
    console = ConsoleHttp(server.endpoint)
    assert console.sign_in(account["AccessKeyId"], account["SecretAccessKey"]).status == 303
    listed = console.get("/console/keys")
    assert listed.status == 200
    for key_id in (by_grant, by_tag, by_alias, nothing, disabled):
        assert key_id in listed.text
    assert alias.removeprefix("alias/") in listed.text
    assert listed.text.count("Disabled") >= 1

    # The keys the list loaded: material, grants, tags and aliases all there.
    assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"before the restart"
    for key_id in (by_grant, by_tag, by_alias):
        assert bob.encrypt(KeyId=key_id, Plaintext=b"x")["KeyId"].endswith(key_id)
    assert aws_error(bob.encrypt, KeyId=nothing, Plaintext=b"x").code == "AccessDeniedException"
    assert aws_error(kms.encrypt, KeyId=disabled, Plaintext=b"x").code == "DisabledException"

    # Changes after the list loaded them are seen at once, by the API and by the list.
    kms.untag_resource(KeyId=by_tag, TagKeys=["team"])
    kms.delete_alias(AliasName=alias)
    for grant in kms.list_grants(KeyId=by_grant)["Grants"]:
        kms.revoke_grant(KeyId=by_grant, GrantId=grant["GrantId"])
    kms.disable_key(KeyId=nothing)
    for key_id in (by_grant, by_tag, by_alias):
        assert aws_error(bob.encrypt, KeyId=key_id, Plaintext=b"x").code == "AccessDeniedException"
    relisted = console.get("/console/keys").text
    assert alias.removeprefix("alias/") not in relisted
    assert relisted.count("Disabled") == listed.text.count("Disabled") + 1


def _list_aliases_calls(server: Server, creds: dict[str, str], user_agent: str, expected: int) -> int:
    """The number of ListAliases records of the account made by the console, once the audit writer has
    stored ``expected`` of them (or after five seconds)."""
    trail = server.client("cloudtrail", **creds)
    deadline = time.monotonic() + 5
    while True:
        events = [
            json.loads(e["CloudTrailEvent"])
            for page in trail.get_paginator("lookup_events").paginate(
                LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "ListAliases"}]
            )
            for e in page["Events"]
        ]
        count = sum(1 for e in events if e["userAgent"].startswith(user_agent))
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def test_the_key_list_finds_aliases_account_wide_or_key_by_key(server: Server) -> None:
    """A page of the key list asks for the account's aliases once (ListAliases without a key, as AWS's
    console does), not once per key. When that would take more calls than the page is worth, or the
    principal may list only its keys' own aliases, it asks key by key; every way shows the same aliases."""
    account = server.new_account()
    creds = {"access_key": account["AccessKeyId"], "secret_key": account["SecretAccessKey"]}
    kms = server.client(**creds)
    key_ids = [kms.create_key(Description=f"k{i}")["KeyMetadata"]["KeyId"] for i in range(3)]
    kms.create_alias(AliasName="alias/first-of-two", TargetKeyId=key_ids[0])
    kms.create_alias(AliasName="alias/second-of-two", TargetKeyId=key_ids[0])
    kms.create_alias(AliasName="alias/only-one", TargetKeyId=key_ids[1])
    console = ConsoleHttp(server.endpoint)
    assert console.sign_in(creds["access_key"], creds["secret_key"]).status == 303

    def rows() -> dict[str, list[str]]:
        """The aliases shown in each key's row of the first page."""
        text = console.get("/console/keys").text
        found: dict[str, list[str]] = {}
        for row in re.findall(r"<tr\b.*?</tr>", text, flags=re.S):
            for key_id in key_ids:
                if key_id in row:
                    found[key_id] = sorted(a for a in ALIAS_NAMES if re.search(rf"\b{a}\b", row))
        return found

    expected = {key_ids[0]: ["first-of-two", "second-of-two"], key_ids[1]: ["only-one"], key_ids[2]: []}
    assert rows() == expected
    assert _list_aliases_calls(server, creds, "openkms-console", 1) == 1  # one call, not one per key

    # More aliases than a page of 10 keys is worth listing (two pages of 100): asked key by key.
    token = console.get("/console/keys").csrf()
    assert console.post("/console/preferences", {"csrf_token": token, "page_size": "10"}).status == 303
    spare = [kms.create_key(Description="many aliases")["KeyMetadata"]["KeyId"] for _ in range(5)]
    for i in range(201):  # at most 50 aliases per key
        kms.create_alias(AliasName=f"alias/zz-many-{i:03d}", TargetKeyId=spare[i % 5])
    key_ids += spare
    expected.update({key_id: [] for key_id in spare})  # none of ALIAS_NAMES
    before = _list_aliases_calls(server, creds, "openkms-console", 1)
    assert rows() == expected
    # two account-wide pages, then one call for each of the page's eight keys
    assert _list_aliases_calls(server, creds, "openkms-console", before + 10) == before + 10

    # A user whose IAM policy allows ListKeys only, and whom the keys' policies allow DescribeKey and
    # ListAliases: the account-wide listing is denied, each key's own is not.
    iam = server.client("iam", **creds)
    name = "lister-" + uuid.uuid4().hex[:8]
    user_arn = iam.create_user(UserName=name)["User"]["Arn"]
    iam.put_user_policy(
        UserName=name,
        PolicyName="list",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "kms:ListKeys", "Resource": "*"}],
            }
        ),
    )
    user_key = iam.create_access_key(UserName=name)["AccessKey"]
    reader = {
        "Effect": "Allow",
        "Principal": {"AWS": user_arn},
        "Action": ["kms:DescribeKey", "kms:ListAliases"],
        "Resource": "*",
    }
    for key_id in key_ids:
        policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
        policy["Statement"].append(reader)
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))
    console = ConsoleHttp(server.endpoint)
    assert console.sign_in(user_key["AccessKeyId"], user_key["SecretAccessKey"]).status == 303
    assert rows() == expected


ALIAS_NAMES = ("first-of-two", "second-of-two", "only-one")
LIST_KEYS_ONLY = {"Effect": "Allow", "Action": "kms:ListKeys", "Resource": "*"}
