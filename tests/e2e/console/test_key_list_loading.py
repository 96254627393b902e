"""The console's key list loads a page of keys into the service's cache in a few queries before it
describes them. Keys loaded that way must behave exactly as keys loaded one at a time: their grants,
tags and aliases take part in authorization, and changes made afterwards are seen at once.

The server is restarted after the keys are made, so that the key list is the first to load them."""

from __future__ import annotations

import json
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
