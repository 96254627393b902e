"""Aliases, tags and key policies as AWS KMS answers them: alias naming rules and their exact
errors, CreateAlias/UpdateAlias/DeleteAlias/ListAliases (with pagination), tag rules (reserved
``aws:`` prefix, duplicates, the 50-tag limit, overwrite, pagination) and key policy documents
(round trip, malformed documents, the 32 KB limit, ListKeyPolicies)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.conftest import Server
from tests.e2e.util import aws_error, members

PREFIX_MESSAGE = (
    'Alias must start with the prefix "alias/". Please see '
    "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
)
ALIAS_ENTRY = {"AliasName", "AliasArn", "TargetKeyId", "CreationDate", "LastUpdatedDate"}


def _name(prefix: str = "t") -> str:
    return f"alias/{prefix}-{uuid.uuid4().hex[:12]}"


def _alias_arn(server: Server, name: str, account: str | None = None) -> str:
    return f"arn:aws:kms:us-east-1:{account or server.account_id}:{name}"


@pytest.fixture
def key_id(kms: Any) -> str:
    return str(kms.create_key()["KeyMetadata"]["KeyId"])


@pytest.fixture
def unchecked(server: Server) -> Any:
    return server.client(parameter_validation=False)


@pytest.fixture
def fresh(server: Server) -> tuple[Any, str]:
    """A client of a new account (nothing else lists in it) and its account id."""
    creds = server.new_account()
    client = server.client(access_key=creds["AccessKeyId"], secret_key=creds["SecretAccessKey"])
    return client, creds["AccountId"]


# --- aliases -------------------------------------------------------------------------------------------


def test_alias_naming_rules(kms: Any, unchecked: Any, key_id: str) -> None:
    for bad in ("no-prefix", "alias", "Alias/upper", "alias/"):
        err = aws_error(kms.create_alias, AliasName=bad, TargetKeyId=key_id)
        assert (err.code, err.message, err.status) == ("ValidationException", PREFIX_MESSAGE, 400), bad

    err = aws_error(kms.create_alias, AliasName="alias/aws/mine", TargetKeyId=key_id)
    assert (err.code, err.status) == ("NotAuthorizedException", 400)

    # The model's pattern lets ':' through; AWS refuses it after "alias/", in every alias operation.
    for bad in ("alias/my:alias", "alias/:", "alias/a:b/c", "alias/aws:x"):
        expected = ("ValidationException", f"{bad} contains invalid characters for an alias", 400)
        for err in (
            aws_error(kms.create_alias, AliasName=bad, TargetKeyId=key_id),
            aws_error(kms.update_alias, AliasName=bad, TargetKeyId=key_id),
            aws_error(kms.delete_alias, AliasName=bad),
        ):
            assert (err.code, err.message, err.status) == expected, bad
    for good in ("alias/aws", "alias/a/b_c-D9", "alias/awsx/y"):  # only "alias/aws/" is reserved
        kms.create_alias(AliasName=good + "-" + uuid.uuid4().hex[:6], TargetKeyId=key_id)
    for alias in kms.list_aliases(KeyId=key_id)["Aliases"]:
        kms.delete_alias(AliasName=alias["AliasName"])

    err = aws_error(unchecked.create_alias, AliasName="alias/bad name!", TargetKeyId=key_id)
    assert (err.code, err.message) == (
        "ValidationException",
        "1 validation error detected: Value 'alias/bad name!' at 'aliasName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
    )
    too_long = "alias/" + "a" * 251
    err = aws_error(unchecked.create_alias, AliasName=too_long, TargetKeyId=key_id)
    assert (err.code, err.message) == (
        "ValidationException",
        f"1 validation error detected: Value '{too_long}' at 'aliasName' failed to satisfy constraint: "
        "Member must have length less than or equal to 256",
    )
    # Nothing was created by the refused requests.
    assert kms.list_aliases(KeyId=key_id)["Aliases"] == []

    longest = "alias/" + uuid.uuid4().hex + "b" * 218
    assert len(longest) == 256
    kms.create_alias(AliasName=longest, TargetKeyId=key_id)
    kms.create_alias(AliasName=_name("Mixed_Case-and/slash"), TargetKeyId=key_id)
    assert kms.describe_key(KeyId=longest)["KeyMetadata"]["KeyId"] == key_id
    assert len(kms.list_aliases(KeyId=key_id)["Aliases"]) == 2


def test_alias_names_are_case_sensitive(kms: Any, key_id: str) -> None:
    name = _name("case")
    kms.create_alias(AliasName=name, TargetKeyId=key_id)
    err = aws_error(kms.describe_key, KeyId=name.upper().replace("ALIAS/", "alias/"))
    assert err.code == "NotFoundException"


def test_duplicate_alias(kms: Any, server: Server, key_id: str) -> None:
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    name = _name("dup")
    assert members(kms.create_alias(AliasName=name, TargetKeyId=key_id)) == set()
    err = aws_error(kms.create_alias, AliasName=name, TargetKeyId=other)
    assert (err.code, err.message, err.status) == (
        "AlreadyExistsException",
        f"An alias with the name {_alias_arn(server, name)} already exists",
        400,
    )
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == key_id


def test_create_alias_for_unknown_key(kms: Any, server: Server) -> None:
    unknown = str(uuid.uuid4())
    err = aws_error(kms.create_alias, AliasName=_name(), TargetKeyId=unknown)
    assert (err.code, err.message) == (
        "NotFoundException",
        f"Key 'arn:aws:kms:us-east-1:{server.account_id}:key/{unknown}' does not exist",
    )


def test_update_and_delete_alias(kms: Any, server: Server, key_id: str) -> None:
    other = kms.create_key()["KeyMetadata"]["KeyId"]
    name = _name("upd")
    kms.create_alias(AliasName=name, TargetKeyId=key_id)
    [created] = kms.list_aliases(KeyId=key_id)["Aliases"]
    time.sleep(0.01)
    assert members(kms.update_alias(AliasName=name, TargetKeyId=other)) == set()
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == other
    assert kms.list_aliases(KeyId=key_id)["Aliases"] == []
    [updated] = kms.list_aliases(KeyId=other)["Aliases"]
    assert updated["TargetKeyId"] == other
    assert updated["CreationDate"] == created["CreationDate"]
    assert updated["LastUpdatedDate"] >= created["LastUpdatedDate"]

    missing = _name("missing")
    not_found = f"Alias {_alias_arn(server, missing)} is not found."
    err = aws_error(kms.update_alias, AliasName=missing, TargetKeyId=other)
    assert (err.code, err.message) == ("NotFoundException", not_found)

    assert members(kms.delete_alias(AliasName=name)) == set()
    assert kms.list_aliases(KeyId=other)["Aliases"] == []
    assert aws_error(kms.describe_key, KeyId=name).code == "NotFoundException"
    err = aws_error(kms.delete_alias, AliasName=name)
    assert (err.code, err.message) == ("NotFoundException", f"Alias {_alias_arn(server, name)} is not found.")
    # The key itself is untouched.
    assert kms.describe_key(KeyId=other)["KeyMetadata"]["KeyState"] == "Enabled"


def test_list_aliases(fresh: tuple[Any, str]) -> None:
    kms, account = fresh
    empty = kms.list_aliases()
    assert members(empty) == {"Aliases", "Truncated"}
    assert (empty["Aliases"], empty["Truncated"]) == ([], False)
    first = kms.create_key()["KeyMetadata"]["KeyId"]
    second = kms.create_key()["KeyMetadata"]["KeyId"]
    names = {f"alias/list-{i}": (first if i < 3 else second) for i in range(5)}
    for name, target in names.items():
        kms.create_alias(AliasName=name, TargetKeyId=target)

    everything = kms.list_aliases()
    assert members(everything) == {"Aliases", "Truncated"} and everything["Truncated"] is False
    assert {a["AliasName"]: a["TargetKeyId"] for a in everything["Aliases"]} == names
    for entry in everything["Aliases"]:
        assert set(entry) == ALIAS_ENTRY
        assert entry["AliasArn"] == f"arn:aws:kms:us-east-1:{account}:{entry['AliasName']}"

    by_key = kms.list_aliases(KeyId=second)
    assert sorted(a["AliasName"] for a in by_key["Aliases"]) == ["alias/list-3", "alias/list-4"]
    by_arn = kms.list_aliases(KeyId=f"arn:aws:kms:us-east-1:{account}:key/{first}")
    assert len(by_arn["Aliases"]) == 3
    lonely = kms.create_key()["KeyMetadata"]["KeyId"]
    assert members(kms.list_aliases(KeyId=lonely)) == {"Aliases", "Truncated"}
    assert kms.list_aliases(KeyId=lonely)["Aliases"] == []

    seen: list[str] = []
    sizes: list[int] = []
    marker = None
    while True:
        page = kms.list_aliases(Limit=2, **({"Marker": marker} if marker else {}))
        sizes.append(len(page["Aliases"]))
        seen += [a["AliasName"] for a in page["Aliases"]]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert sizes == [2, 2, 1]
    assert sorted(seen) == sorted(names)
    page = kms.list_aliases(KeyId=first, Limit=2)
    assert page["Truncated"] is True
    rest = kms.list_aliases(KeyId=first, Limit=2, Marker=page["NextMarker"])
    assert len(rest["Aliases"]) == 1 and rest["Truncated"] is False
    assert aws_error(kms.list_aliases, Marker="forged").code == "InvalidMarkerException"


def test_alias_of_disabled_key(kms: Any, key_id: str) -> None:
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    name = _name("disabled")
    kms.create_alias(AliasName=name, TargetKeyId=key_id)
    kms.disable_key(KeyId=key_id)
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyState"] == "Disabled"
    err = aws_error(kms.encrypt, KeyId=name, Plaintext=b"x")
    assert (err.code, err.message, err.status) == ("DisabledException", f"{arn} is disabled.", 400)


# --- tags ----------------------------------------------------------------------------------------------


def _tags(n: int, prefix: str = "k") -> list[dict[str, str]]:
    return [{"TagKey": f"{prefix}{i:02d}", "TagValue": f"v{i}"} for i in range(n)]


def test_reserved_tag_prefix(kms: Any, key_id: str) -> None:
    for reserved in ("aws:name", "AWS:name", "Aws:name", "aWs:x"):
        tags = [{"TagKey": reserved, "TagValue": "v"}]
        err = aws_error(kms.tag_resource, KeyId=key_id, Tags=tags)
        assert (err.code, err.message, err.status) == (
            "TagException",
            "Tags beginning with aws: are reserved",
            400,
        )
        err = aws_error(kms.create_key, Tags=tags)
        assert (err.code, err.message) == ("TagException", "Tags beginning with aws: are reserved")
    # "aws" without the colon is an ordinary key.
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "awsome", "TagValue": "v"}])
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "awsome", "TagValue": "v"}]


def test_duplicate_tag_keys(kms: Any, key_id: str) -> None:
    tags = [{"TagKey": "dup", "TagValue": "a"}, {"TagKey": "dup", "TagValue": "b"}]
    for call, kwargs in ((kms.tag_resource, {"KeyId": key_id}), (kms.create_key, {})):
        err = aws_error(call, Tags=tags, **kwargs)
        assert (err.code, err.message) == ("TagException", "Duplicate tag keys")
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == []
    # Keys are case-sensitive: these are two tags.
    kms.tag_resource(
        KeyId=key_id, Tags=[{"TagKey": "Dup", "TagValue": "a"}, {"TagKey": "dup", "TagValue": "b"}]
    )
    assert len(kms.list_resource_tags(KeyId=key_id)["Tags"]) == 2


def test_tag_limit(kms: Any) -> None:
    key_id = kms.create_key(Tags=_tags(50))["KeyMetadata"]["KeyId"]
    assert len(kms.list_resource_tags(KeyId=key_id)["Tags"]) == 50
    err = aws_error(kms.create_key, Tags=_tags(51))
    assert (err.code, err.message, err.status) == ("TagException", "Too many tags", 400)
    err = aws_error(kms.tag_resource, KeyId=key_id, Tags=[{"TagKey": "one-more", "TagValue": "v"}])
    assert (err.code, err.message) == ("TagException", "Too many tags")
    # Overwriting an existing key does not add a tag.
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "k00", "TagValue": "new"}])
    tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
    assert len(tags) == 50 and tags["k00"] == "new"


def test_tag_overwrite_untag_and_lengths(kms: Any, unchecked: Any, key_id: str) -> None:
    assert members(kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "dev"}])) == set()
    kms.tag_resource(
        KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "Env", "TagValue": ""}]
    )
    assert sorted(kms.list_resource_tags(KeyId=key_id)["Tags"], key=lambda t: t["TagKey"]) == [
        {"TagKey": "Env", "TagValue": ""},
        {"TagKey": "env", "TagValue": "prod"},
    ]
    assert members(kms.untag_resource(KeyId=key_id, TagKeys=["env", "never-there"])) == set()
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "Env", "TagValue": ""}]
    kms.untag_resource(KeyId=key_id, TagKeys=["never-there"])

    long_key = "k" * 129
    err = aws_error(unchecked.tag_resource, KeyId=key_id, Tags=[{"TagKey": long_key, "TagValue": "v"}])
    assert (err.code, err.message) == (
        "ValidationException",
        f"1 validation error detected: Value '{long_key}' at 'tags.1.member.tagKey' failed to satisfy "
        "constraint: Member must have length less than or equal to 128",
    )
    long_value = "v" * 257
    err = aws_error(
        unchecked.tag_resource,
        KeyId=key_id,
        Tags=[{"TagKey": "ok", "TagValue": "v"}, {"TagKey": "fine", "TagValue": long_value}],
    )
    assert (err.code, err.message) == (
        "ValidationException",
        f"1 validation error detected: Value '{long_value}' at 'tags.2.member.tagValue' failed to satisfy "
        "constraint: Member must have length less than or equal to 256",
    )
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "k" * 128, "TagValue": "v" * 256}])
    assert len(kms.list_resource_tags(KeyId=key_id)["Tags"]) == 2


def test_list_resource_tags_pagination(kms: Any, server: Server) -> None:
    key_id = kms.create_key(Tags=_tags(5))["KeyMetadata"]["KeyId"]
    everything = kms.list_resource_tags(KeyId=key_id)
    assert members(everything) == {"Tags", "Truncated"} and everything["Truncated"] is False
    seen: list[dict[str, str]] = []
    sizes: list[int] = []
    marker = None
    while True:
        page = kms.list_resource_tags(KeyId=key_id, Limit=2, **({"Marker": marker} if marker else {}))
        sizes.append(len(page["Tags"]))
        seen += page["Tags"]
        if not page["Truncated"]:
            assert members(page) == {"Tags", "Truncated"}
            break
        assert members(page) == {"Tags", "Truncated", "NextMarker"}
        marker = page["NextMarker"]
    assert sizes == [2, 2, 1]
    assert sorted(seen, key=lambda t: t["TagKey"]) == _tags(5)
    unknown = str(uuid.uuid4())
    err = aws_error(kms.list_resource_tags, KeyId=unknown)
    assert (err.code, err.message) == (
        "NotFoundException",
        f"Key 'arn:aws:kms:us-east-1:{server.account_id}:key/{unknown}' does not exist",
    )


# --- key policies --------------------------------------------------------------------------------------


def _policy(server: Server, sid: str = "Allow all for the account") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Id": "my-policy",
        "Statement": [
            {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{server.account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "Deny disabling",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "kms:DisableKey",
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": "000000000000"}},
            },
        ],
    }


def test_put_and_get_key_policy(kms: Any, server: Server, key_id: str) -> None:
    document = json.dumps(_policy(server), indent=4)
    assert members(kms.put_key_policy(KeyId=key_id, Policy=document)) == set()
    got = kms.get_key_policy(KeyId=key_id)
    assert members(got) == {"Policy", "PolicyName"}
    assert json.loads(got["Policy"]) == _policy(server)
    assert got["PolicyName"] == "default"
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(_policy(server, "second")))
    assert json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]) == _policy(
        server, "second"
    )


def test_malformed_and_oversized_policies(kms: Any, unchecked: Any, server: Server, key_id: str) -> None:
    kms.put_key_policy(KeyId=key_id, Policy=json.dumps(_policy(server)))
    malformed = [
        "{not json",
        "[]",
        json.dumps({"Version": "2012-10-17"}),
        json.dumps({"Version": "2012-10-17", "Statement": []}),
    ]
    for document in malformed:
        err = aws_error(kms.put_key_policy, KeyId=key_id, Policy=document)
        assert (err.code, err.status) == ("MalformedPolicyDocumentException", 400), document
        err = aws_error(kms.create_key, Policy=document)
        assert err.code == "MalformedPolicyDocumentException", document

    big = _policy(server)
    big["Statement"] = big["Statement"] * 200
    document = json.dumps(big)
    assert len(document.encode()) > 32768
    for call, kwargs in ((unchecked.put_key_policy, {"KeyId": key_id}), (unchecked.create_key, {})):
        err = aws_error(call, Policy=document, **kwargs)
        assert (err.code, err.status) == ("LimitExceededException", 400)
    # The stored policy is unchanged after the refusals.
    assert json.loads(kms.get_key_policy(KeyId=key_id)["Policy"]) == _policy(server)


def test_refused_create_key_creates_nothing(fresh: tuple[Any, str]) -> None:
    kms, _ = fresh
    assert aws_error(kms.create_key, Policy="{not json").code == "MalformedPolicyDocumentException"
    assert aws_error(kms.create_key, Tags=_tags(51)).code == "TagException"
    assert kms.list_keys()["Keys"] == []


def test_list_key_policies(kms: Any, server: Server, key_id: str) -> None:
    got = kms.list_key_policies(KeyId=key_id)
    assert members(got) == {"PolicyNames", "Truncated"}
    assert (got["PolicyNames"], got["Truncated"]) == (["default"], False)
    unknown = str(uuid.uuid4())
    for call in (kms.list_key_policies, kms.get_key_policy):
        err = aws_error(call, KeyId=unknown)
        assert (err.code, err.message) == (
            "NotFoundException",
            f"Key 'arn:aws:kms:us-east-1:{server.account_id}:key/{unknown}' does not exist",
        )
