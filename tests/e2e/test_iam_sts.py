"""IAM and STS on the service's endpoint: users, access keys, roles, trust and identity policies through
``aws iam``/``aws sts`` and boto3, temporary credentials used against KMS, their expiry, the audit
trail, ``openkms admin`` on the same data while the server runs, sessions of deleted roles, and unknown
access key ids (refused from a short-lived negative cache that never hides a new key)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import BIN, REGION, Server
from tests.e2e.util import aws_error, wait_for_audit

KMS_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _policy(action: str, resource: str = "*") -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]}
    )


def _trust(principal: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}],
        }
    )


def aws_as(
    server: Server, creds: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``aws …`` against the server with other credentials (a session token if given)."""
    env = {
        **server.cli_env(),
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
    }
    if "SessionToken" in creds:
        env["AWS_SESSION_TOKEN"] = creds["SessionToken"]
    return subprocess.run(
        [str(BIN / "aws"), *args, "--endpoint-url", server.endpoint, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=check,
    )


def client_as(server: Server, service: str, creds: dict[str, str]) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
        config=Config(retries={"max_attempts": 1}),
    )


def new_user(server: Server, *policies: str) -> tuple[str, dict[str, str]]:
    """A user with an access key and the given inline policies (through the IAM API as the admin)."""
    iam = server.client("iam")
    name = _name("user")
    iam.create_user(UserName=name)
    for i, document in enumerate(policies):
        iam.put_user_policy(UserName=name, PolicyName=f"p{i}", PolicyDocument=document)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}


def test_user_lifecycle_with_the_aws_cli(server: Server) -> None:
    name = _name("cli")
    created = json.loads(
        server.aws("iam", "create-user", "--user-name", name, "--tags", "Key=team,Value=red").stdout
    )
    user = created["User"]
    assert user["Arn"] == f"arn:aws:iam::{server.account_id}:user/{name}"
    assert user["UserId"].startswith("AIDA") and user["Path"] == "/"
    assert user["Tags"] == [{"Key": "team", "Value": "red"}]

    key = json.loads(server.aws("iam", "create-access-key", "--user-name", name).stdout)["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and key["Status"] == "Active" and key["SecretAccessKey"]
    listed = json.loads(server.aws("iam", "list-access-keys", "--user-name", name).stdout)[
        "AccessKeyMetadata"
    ]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]
    assert "SecretAccessKey" not in listed[0]

    document = json.dumps(KMS_ALL)
    server.aws(
        "iam", "put-user-policy", "--user-name", name, "--policy-name", "kms", "--policy-document", document
    )
    got = json.loads(server.aws("iam", "get-user-policy", "--user-name", name, "--policy-name", "kms").stdout)
    assert got["PolicyDocument"] == KMS_ALL and got["UserName"] == name

    server.aws("iam", "tag-user", "--user-name", name, "--tags", "Key=env,Value=prod")
    user = json.loads(server.aws("iam", "get-user", "--user-name", name).stdout)["User"]
    assert {t["Key"]: t["Value"] for t in user["Tags"]} == {"team": "red", "env": "prod"}
    users = json.loads(server.aws("iam", "list-users").stdout)["Users"]
    assert name in {u["UserName"] for u in users} and "admin" in {u["UserName"] for u in users}

    # The new key works at once, and is the user's identity.
    identity = json.loads(aws_as(server, key, "sts", "get-caller-identity").stdout)
    assert identity == {"UserId": user["UserId"], "Account": server.account_id, "Arn": user["Arn"]}

    failed = server.aws("iam", "delete-user", "--user-name", name, check=False)
    assert failed.returncode != 0 and "DeleteConflict" in failed.stderr
    server.aws("iam", "delete-access-key", "--user-name", name, "--access-key-id", key["AccessKeyId"])
    server.aws("iam", "delete-user-policy", "--user-name", name, "--policy-name", "kms")
    server.aws("iam", "delete-user", "--user-name", name)
    gone = server.aws("iam", "get-user", "--user-name", name, check=False)
    assert gone.returncode != 0 and "NoSuchEntity" in gone.stderr
    assert "InvalidClientTokenId" in aws_as(server, key, "sts", "get-caller-identity", check=False).stderr


def test_roles_with_boto3(server: Server) -> None:
    iam = server.client("iam")
    name = _name("role")
    root = f"arn:aws:iam::{server.account_id}:root"
    role = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=_trust(root),
        Description="d",
        Tags=[{"Key": "a", "Value": "1"}],
    )["Role"]
    assert role["Arn"] == f"arn:aws:iam::{server.account_id}:role/{name}" and role["RoleId"].startswith(
        "AROA"
    )
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": root}
    error = aws_error(iam.create_role, RoleName=name, AssumeRolePolicyDocument=_trust(root))
    assert (error.code, error.status) == ("EntityAlreadyExists", 409)
    error = aws_error(iam.create_role, RoleName=_name("bad"), AssumeRolePolicyDocument="{not json")
    assert (error.code, error.status) == ("MalformedPolicyDocument", 400)

    other = f"arn:aws:iam::{server.account_id}:user/admin"
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=_trust(other))
    got = iam.get_role(RoleName=name)["Role"]
    assert got["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": other}
    assert got["Description"] == "d" and got["MaxSessionDuration"] == 3600

    iam.tag_role(RoleName=name, Tags=[{"Key": "b", "Value": "2"}])
    assert iam.list_role_tags(RoleName=name)["Tags"] == [
        {"Key": "a", "Value": "1"},
        {"Key": "b", "Value": "2"},
    ]
    iam.put_role_policy(RoleName=name, PolicyName="kms", PolicyDocument=json.dumps(KMS_ALL))
    assert iam.get_role_policy(RoleName=name, PolicyName="kms")["PolicyDocument"] == KMS_ALL

    error = aws_error(iam.delete_role, RoleName=name)
    assert (error.code, error.status) == ("DeleteConflict", 409)
    iam.delete_role_policy(RoleName=name, PolicyName="kms")
    iam.delete_role(RoleName=name)
    error = aws_error(iam.get_role, RoleName=name)
    assert (error.code, error.status, error.message) == (
        "NoSuchEntity",
        404,
        f"The role with name {name} cannot be found.",
    )
    error = aws_error(iam.create_user, UserName="no spaces allowed")
    assert error.code == "ValidationError" and "userName" in error.message


def test_assume_role_then_kms_with_session_credentials(server: Server) -> None:
    user, creds = new_user(server)
    iam = server.client("iam")
    role = _name("kms-role")
    iam.create_role(
        RoleName=role, AssumeRolePolicyDocument=_trust(f"arn:aws:iam::{server.account_id}:user/{user}")
    )
    iam.put_role_policy(RoleName=role, PolicyName="kms", PolicyDocument=json.dumps(KMS_ALL))
    role_arn = f"arn:aws:iam::{server.account_id}:role/{role}"

    out = json.loads(
        aws_as(
            server, creds, "sts", "assume-role", "--role-arn", role_arn, "--role-session-name", "s1"
        ).stdout
    )
    session = out["Credentials"]
    session_arn = f"arn:aws:sts::{server.account_id}:assumed-role/{role}/s1"
    assert session["AccessKeyId"].startswith("ASIA") and session["SessionToken"]
    assert out["AssumedRoleUser"]["Arn"] == session_arn
    assert out["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA")
    assert out["AssumedRoleUser"]["AssumedRoleId"].endswith(":s1")

    kms = client_as(server, "kms", session)
    kms.list_keys()
    key_id = kms.create_key(Description="made by a role session")["KeyMetadata"]["KeyId"]
    identity = client_as(server, "sts", session).get_caller_identity()
    assert identity["Arn"] == session_arn and identity["UserId"] == out["AssumedRoleUser"]["AssumedRoleId"]

    # The token must come with the session's key, and be the right one.
    no_token = {k: v for k, v in session.items() if k != "SessionToken"}
    error = aws_error(client_as(server, "kms", no_token).list_keys)
    assert (error.code, error.message) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
    wrong = {**session, "SessionToken": session["SessionToken"][:-4] + "AAAA"}
    assert aws_error(client_as(server, "kms", wrong).list_keys).code == "UnrecognizedClientException"
    assert aws_error(client_as(server, "sts", wrong).get_caller_identity).code == "InvalidClientTokenId"

    records = wait_for_audit(server, ("--key-id", key_id, "--event-name", "CreateKey"), lambda r: len(r) == 1)
    identity_record = records[0]["userIdentity"]
    assert identity_record["type"] == "AssumedRole" and identity_record["arn"] == session_arn
    assert identity_record["accessKeyId"] == session["AccessKeyId"]
    assert identity_record["sessionContext"]["sessionIssuer"]["arn"] == role_arn

    assumed = wait_for_audit(
        server,
        ("--event-name", "AssumeRole"),
        lambda rs: any((r.get("requestParameters") or {}).get("roleArn") == role_arn for r in rs),
    )
    record = next(r for r in assumed if (r.get("requestParameters") or {}).get("roleArn") == role_arn)
    assert record["eventSource"] == "sts.amazonaws.com"
    assert record["userIdentity"]["arn"] == f"arn:aws:iam::{server.account_id}:user/{user}"
    text = json.dumps(record)
    assert session["SessionToken"] not in text and session["SecretAccessKey"] not in text
    assert record["responseElements"]["credentials"]["accessKeyId"] == session["AccessKeyId"]
    created = wait_for_audit(server, ("--event-name", "CreateAccessKey"), lambda rs: bool(rs))
    assert all(creds["SecretAccessKey"] not in json.dumps(r) for r in created)
    assert all(r["eventSource"] == "iam.amazonaws.com" for r in created)


def test_trust_and_identity_policies_decide_assume_role(server: Server) -> None:
    iam = server.client("iam")
    account_role = _name("acct-role")
    iam.create_role(
        RoleName=account_role, AssumeRolePolicyDocument=_trust(f"arn:aws:iam::{server.account_id}:root")
    )
    arn = f"arn:aws:iam::{server.account_id}:role/{account_role}"
    stranger_role = _name("other-role")
    iam.create_role(
        RoleName=stranger_role,
        AssumeRolePolicyDocument=_trust(f"arn:aws:iam::{server.account_id}:user/admin"),
    )

    _, plain = new_user(server)
    sts = client_as(server, "sts", plain)
    # The trust policy names the account: the caller's identity policies must allow sts:AssumeRole too.
    error = aws_error(sts.assume_role, RoleArn=arn, RoleSessionName="nope")
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert error.message.startswith(f"User: arn:aws:iam::{server.account_id}:user/")
    _, allowed = new_user(server, _policy("sts:AssumeRole", arn))
    sts_allowed = client_as(server, "sts", allowed)
    assert sts_allowed.assume_role(RoleArn=arn, RoleSessionName="yes")["Credentials"]["AccessKeyId"]
    # A trust policy that does not admit the caller denies, whatever its identity policies say.
    error = aws_error(
        sts_allowed.assume_role,
        RoleArn=f"arn:aws:iam::{server.account_id}:role/{stranger_role}",
        RoleSessionName="nope",
    )
    assert error.code == "AccessDenied"
    error = aws_error(sts_allowed.assume_role, RoleArn=arn, RoleSessionName="long", DurationSeconds=7200)
    assert error.code == "ValidationError" and "MaxSessionDuration" in error.message


def test_iam_needs_iam_permissions(server: Server) -> None:
    _, creds = new_user(server, json.dumps(KMS_ALL))
    iam = client_as(server, "iam", creds)
    error = aws_error(iam.create_user, UserName=_name("x"))
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert "is not authorized to perform: iam:CreateUser" in error.message
    assert aws_error(iam.list_users).code == "AccessDenied"
    # Who-am-I needs no permission.
    assert client_as(server, "sts", creds).get_caller_identity()["Account"] == server.account_id


def test_admin_cli_manages_principals_while_the_server_runs(server: Server) -> None:
    acct = server.account_id
    user, creds = new_user(server)
    iam = client_as(server, "iam", creds)
    assert aws_error(iam.list_users).code == "AccessDenied"  # warms the server's policy cache

    policy = server.admin(
        "create-policy",
        "--account-id",
        acct,
        "--policy-name",
        _name("readers"),
        "--policy-document",
        _policy("iam:List*"),
    )["Policy"]
    assert policy["Arn"].startswith(f"arn:aws:iam::{acct}:policy/")
    assert (
        server.admin(
            "attach-user-policy", "--account-id", acct, "--user-name", user, "--policy-arn", policy["Arn"]
        )
        == {}
    )
    deadline = time.time() + 5
    while True:  # the server learns of the change from the database
        try:
            users = iam.list_users()["Users"]
            break
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    assert user in {u["UserName"] for u in users}

    assert server.admin("tag-user", "--account-id", acct, "--user-name", user, "--tag", "dept=42") == {}
    listed = server.admin("list-users", "--account-id", acct)["Users"]
    assert user in {u["UserName"] for u in listed}
    assert server.client("iam").get_user(UserName=user)["User"]["Tags"] == [{"Key": "dept", "Value": "42"}]

    role = _name("cli-role")
    trust = Path(server.data_dir) / f"{role}.json"
    trust.write_text(_trust(f"arn:aws:iam::{acct}:user/{user}"))
    created = server.admin(
        "create-role",
        "--account-id",
        acct,
        "--role-name",
        role,
        "--assume-role-policy-document",
        f"file://{trust}",
    )
    assert created["Role"]["Arn"] == f"arn:aws:iam::{acct}:role/{role}"
    server.admin(
        "put-role-policy",
        "--account-id",
        acct,
        "--role-name",
        role,
        "--policy-name",
        "kms",
        "--policy-document",
        json.dumps(KMS_ALL),
    )
    server.admin("tag-role", "--account-id", acct, "--role-name", role, "--tag", "k=v")
    server.admin(
        "attach-role-policy", "--account-id", acct, "--role-name", role, "--policy-arn", policy["Arn"]
    )
    roles = server.admin("list-roles", "--account-id", acct)["Roles"]
    assert role in {r["RoleName"] for r in roles}
    session = client_as(server, "sts", creds).assume_role(
        RoleArn=created["Role"]["Arn"], RoleSessionName="cli"
    )
    assert session["AssumedRoleUser"]["Arn"].endswith(f":assumed-role/{role}/cli")

    assert server.admin("delete-role", "--account-id", acct, "--role-name", role, "--force") == {}
    assert server.admin("delete-user", "--account-id", acct, "--user-name", user, "--force") == {}
    assert user not in {u["UserName"] for u in server.admin("list-users", "--account-id", acct)["Users"]}


@pytest.fixture
def clock_file(tmp_path: Path) -> Path:
    path = tmp_path / "clock-offset"
    path.write_text("0")
    return path


def test_expired_session(own_server: Server, clock_file: Path) -> None:
    own_server.env["OPENKMS_CLOCK_OFFSET_FILE"] = str(clock_file)
    own_server.restart()
    iam = own_server.client("iam")
    role = _name("short")
    iam.create_role(
        RoleName=role, AssumeRolePolicyDocument=_trust(f"arn:aws:iam::{own_server.account_id}:root")
    )
    iam.put_role_policy(RoleName=role, PolicyName="kms", PolicyDocument=json.dumps(KMS_ALL))
    arn = f"arn:aws:iam::{own_server.account_id}:role/{role}"
    # The admin may assume a role that trusts its account (its policy allows everything).
    session = own_server.client("sts").assume_role(RoleArn=arn, RoleSessionName="short", DurationSeconds=900)[
        "Credentials"
    ]
    kms = client_as(own_server, "kms", session)
    kms.list_keys()
    clock_file.write_text("1000")
    time.sleep(0.5)
    error = aws_error(kms.list_keys)
    assert (error.code, error.message) == (
        "ExpiredTokenException",
        "The security token included in the request is expired",
    )
    error = aws_error(client_as(own_server, "sts", session).get_caller_identity)
    assert (error.code, error.status) == ("ExpiredToken", 403)


def _query(server: Server, service: str, body: str, *, secret: str | None = None) -> tuple[int, str]:
    """POST a signed Query request; returns (status, XML body)."""
    import http.client

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    request = AWSRequest(method="POST", url=server.endpoint + "/", data=body.encode(), headers=headers)
    SigV4Auth(Credentials(server.access_key, secret or server.secret_key), service, REGION).add_auth(request)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/", body=body.encode(), headers=dict(request.headers.items()))
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_query_protocol_answers(server: Server) -> None:
    status, text = _query(server, "sts", "Action=GetCallerIdentity&Version=2011-06-15")
    assert status == 200
    assert text.startswith('<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">')
    assert f"<Arn>arn:aws:iam::{server.account_id}:user/admin</Arn>" in text and "<RequestId>" in text

    status, text = _query(server, "iam", "Action=NoSuchThing&Version=2010-05-08")
    assert status == 400
    assert "<Type>Sender</Type><Code>InvalidAction</Code>" in text and text.startswith("<ErrorResponse")
    status, text = _query(server, "iam", "Action=GetUser&Version=2010-05-08&UserName=nobody-here")
    assert status == 404 and "<Code>NoSuchEntity</Code>" in text
    status, text = _query(server, "iam", "Action=CreateUser&Version=2010-05-08")
    assert status == 400 and "<Code>ValidationError</Code>" in text and "Value null at 'userName'" in text
    status, text = _query(server, "iam", "Action=ListUsers&Version=2010-05-08", secret="x" * 40)
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in text
    # A form body signed for KMS is still a (bad) KMS request.
    status, text = _query(server, "kms", "Action=ListKeys")
    assert status != 200 and "__type" in text


@pytest.mark.parametrize("kind", ["user", "role"])
def test_inline_policies_and_tags_of_users_and_roles(server: Server, kind: str) -> None:
    iam = server.client("iam")
    name = _name(kind)
    if kind == "user":
        iam.create_user(UserName=name)
        who: dict[str, str] = {"UserName": name}
        put, get, delete, listing = (
            iam.put_user_policy, iam.get_user_policy, iam.delete_user_policy, iam.list_user_policies
        )  # fmt: skip
        tag, untag, tags = iam.tag_user, iam.untag_user, iam.list_user_tags
    else:
        iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=_trust(f"arn:aws:iam::{server.account_id}:root")
        )
        who = {"RoleName": name}
        put, get, delete, listing = (
            iam.put_role_policy, iam.get_role_policy, iam.delete_role_policy, iam.list_role_policies
        )  # fmt: skip
        tag, untag, tags = iam.tag_role, iam.untag_role, iam.list_role_tags
    put(**who, PolicyName="b", PolicyDocument=_policy("kms:Encrypt"))
    put(**who, PolicyName="a", PolicyDocument=_policy("kms:Decrypt"))
    assert listing(**who)["PolicyNames"] == ["a", "b"]
    got = get(**who, PolicyName="a")
    assert got["PolicyDocument"] == json.loads(_policy("kms:Decrypt"))  # boto3 decodes the document
    delete(**who, PolicyName="a")
    assert listing(**who)["PolicyNames"] == ["b"]
    with pytest.raises(ClientError) as exc:
        get(**who, PolicyName="a")
    assert exc.value.response["Error"]["Code"] == "NoSuchEntity"
    assert f"The {kind} policy with name a cannot be found." in exc.value.response["Error"]["Message"]
    tag(**who, Tags=[{"Key": "team", "Value": "red"}, {"Key": "env", "Value": "prod"}])
    tag(**who, Tags=[{"Key": "team", "Value": "blue"}])
    untag(**who, TagKeys=["env"])
    assert tags(**who)["Tags"] == [{"Key": "team", "Value": "blue"}]


# --- sessions of a deleted role; unknown access key ids ----------------------------------------------

INVALID_TOKEN = "The security token included in the request is invalid."  # noqa: S105 - a message
PROPAGATION = 1.0  # the README: changes reach every process's caches within a second


@pytest.fixture(params=["same", "other"])
def reader(request: pytest.FixtureRequest, server: Server) -> Server:
    """Where the effect of a change made on ``server`` is checked: the same process, or another one."""
    return server if request.param == "same" else request.getfixturevalue("twin")


def within(seconds: float, check: Callable[[], object]) -> float:
    """Run ``check`` until it passes (at most ``seconds``); the time it took."""
    started = time.monotonic()
    while True:
        try:
            check()
            return time.monotonic() - started
        except (AssertionError, ClientError):
            if time.monotonic() - started >= seconds:
                raise
            time.sleep(0.01)


def refused(client: Any, method: str, code: str, status: int) -> Callable[[], None]:
    def check() -> None:
        error = aws_error(getattr(client, method))
        assert (error.code, error.message, error.status) == (code, INVALID_TOKEN, status), error

    return check


def test_deleted_role_ends_its_sessions(server: Server, reader: Server) -> None:
    """DeleteRole: the role's sessions lose everything (GetCallerIdentity, a key whose policy names the
    role) on this process at once and on another within the propagation time; a role made again under
    the same name (another unique id) does not bring them back; a new session of it works."""
    acct = server.account_id
    user, creds = new_user(server)
    iam = server.client("iam")
    role = _name("doomed")
    role_arn = f"arn:aws:iam::{acct}:role/{role}"
    first_id = iam.create_role(
        RoleName=role, AssumeRolePolicyDocument=_trust(f"arn:aws:iam::{acct}:user/{user}")
    )["Role"]["RoleId"]
    key_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{acct}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {"Effect": "Allow", "Principal": {"AWS": role_arn}, "Action": "kms:DescribeKey", "Resource": "*"},
        ],
    }
    key_id = server.client().create_key(Policy=json.dumps(key_policy))["KeyMetadata"]["KeyId"]
    old = client_as(server, "sts", creds).assume_role(RoleArn=role_arn, RoleSessionName="old")["Credentials"]
    old_kms, old_sts = client_as(reader, "kms", old), client_as(reader, "sts", old)
    assert old_sts.get_caller_identity()["UserId"] == f"{first_id}:old"
    assert old_kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id  # cached on the reader

    iam.delete_role(RoleName=role)
    gone = [
        refused(old_sts, "get_caller_identity", "InvalidClientTokenId", 403),
        refused(old_kms, "list_keys", "UnrecognizedClientException", 400),
    ]
    for check in gone:
        took = within(0.0 if reader is server else PROPAGATION, check)
        assert took < PROPAGATION
    error = aws_error(old_kms.describe_key, KeyId=key_id)
    assert (error.code, error.message) == ("UnrecognizedClientException", INVALID_TOKEN)

    # Made again under the same name: another role (another unique id); the old session stays refused.
    second_id = iam.create_role(
        RoleName=role, AssumeRolePolicyDocument=_trust(f"arn:aws:iam::{acct}:user/{user}")
    )["Role"]["RoleId"]
    assert second_id != first_id
    time.sleep(0.3)  # past the SQLite feed's poll: the reader has heard of the new role
    for check in gone:
        check()
    new = client_as(server, "sts", creds).assume_role(RoleArn=role_arn, RoleSessionName="new")["Credentials"]
    assert client_as(reader, "sts", new).get_caller_identity()["UserId"] == f"{second_id}:new"
    for check in gone:
        check()
    # and the same through the AWS CLI
    out = aws_as(reader, old, "sts", "get-caller-identity", check=False)
    assert out.returncode != 0 and "InvalidClientTokenId" in out.stderr, out.stderr


def test_unknown_access_key_ids_and_new_keys(server: Server, reader: Server) -> None:
    """An unknown access key id is refused (again and again, from a short-lived negative cache); a key
    created through the IAM API or ``openkms admin`` is usable at once on every process; a key refused
    while inactive works again as soon as it is reactivated (the change removes the negative entry: at
    once on this process, within the propagation time on another)."""
    random_id = "AKIA" + uuid.uuid4().hex[:16].upper()
    stranger = client_as(reader, "kms", {"AccessKeyId": random_id, "SecretAccessKey": "s" * 40})
    for _ in range(3):
        refused(stranger, "list_keys", "UnrecognizedClientException", 400)()
    refused(client_as(reader, "sts", {"AccessKeyId": random_id, "SecretAccessKey": "s" * 40}),
            "get_caller_identity", "InvalidClientTokenId", 403)()  # fmt: skip

    user, creds = new_user(server, _policy("kms:ListKeys"))  # through the IAM API, on the writer
    client_as(reader, "kms", creds).list_keys()
    made = server.admin("create-access-key", "--account-id", server.account_id, "--user-name", user)
    by_admin = {"AccessKeyId": made["AccessKeyId"], "SecretAccessKey": made["SecretAccessKey"]}
    client_as(reader, "kms", by_admin).list_keys()
    client_as(server, "kms", by_admin).list_keys()

    iam = server.client("iam")
    iam.update_access_key(UserName=user, AccessKeyId=creds["AccessKeyId"], Status="Inactive")
    kms = client_as(reader, "kms", creds)
    within(
        0.0 if reader is server else PROPAGATION,
        refused(kms, "list_keys", "UnrecognizedClientException", 400),
    )
    refused(kms, "list_keys", "UnrecognizedClientException", 400)()  # now from the negative cache
    iam.update_access_key(UserName=user, AccessKeyId=creds["AccessKeyId"], Status="Active")
    took = within(0.0 if reader is server else PROPAGATION, kms.list_keys)
    assert took < PROPAGATION


def test_account_aliases(server: Server) -> None:
    """IAM's account alias operations (Ansible's aws_caller_info calls ListAccountAliases): one alias
    per account, replaced by a new one, unique across accounts, the model's syntax, IAM permissions,
    the AWS CLI's commands, and the audit trail."""
    owner = server.new_account()
    other = server.new_account()
    iam = client_as(server, "iam", owner)
    iam_other = client_as(server, "iam", other)
    assert iam.list_account_aliases()["AccountAliases"] == []
    first, second = _name("acct"), _name("acct")
    iam.create_account_alias(AccountAlias=first)
    assert iam.list_account_aliases()["AccountAliases"] == [first]
    iam.create_account_alias(AccountAlias=first)  # the same alias again changes nothing
    iam.create_account_alias(AccountAlias=second)  # a new one replaces it
    assert iam.list_account_aliases()["AccountAliases"] == [second]
    assert iam_other.list_account_aliases()["AccountAliases"] == []

    taken = aws_error(iam_other.create_account_alias, AccountAlias=second)
    assert (taken.code, taken.status, taken.message) == (
        "EntityAlreadyExists",
        409,
        f"The account alias {second} already exists.",
    )
    iam_other.create_account_alias(AccountAlias=first)  # released by the replacement
    gone = aws_error(iam.delete_account_alias, AccountAlias=first)  # the other account's, not ours
    assert (gone.code, gone.status) == ("NoSuchEntity", 404)
    assert iam_other.list_account_aliases()["AccountAliases"] == [first]

    unchecked = server.client(
        "iam",
        access_key=owner["AccessKeyId"],
        secret_key=owner["SecretAccessKey"],
        parameter_validation=False,
    )
    for bad in ("ab", "Upper-case", "double--hyphen", "-leading", "trailing-", "a" * 64, "has_underscore"):
        error = aws_error(unchecked.create_account_alias, AccountAlias=bad)
        assert (error.code, error.status) == ("ValidationError", 400), bad
        assert f"Value '{bad}' at 'accountAlias' failed to satisfy constraint" in error.message, bad
    assert iam.list_account_aliases()["AccountAliases"] == [second]

    # The AWS CLI, and IAM permissions: a user allowed only ListAccountAliases.
    listed = json.loads(aws_as(server, owner, "iam", "list-account-aliases").stdout)
    assert listed["AccountAliases"] == [second]
    aws_as(server, owner, "iam", "delete-account-alias", "--account-alias", second)
    assert iam.list_account_aliases()["AccountAliases"] == []
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="p", PolicyDocument=_policy("iam:ListAccountAliases"))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    reader = client_as(
        server, "iam", {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}
    )
    assert reader.list_account_aliases()["AccountAliases"] == []
    denied = aws_error(reader.create_account_alias, AccountAlias=_name("acct"))
    assert (denied.code, denied.status) == ("AccessDenied", 403)
    assert "iam:CreateAccountAlias" in denied.message

    trail = client_as(server, "cloudtrail", owner)
    names = [
        e["EventName"]
        for e in trail.lookup_events(
            LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": "iam.amazonaws.com"}]
        )["Events"]
    ]
    for name in ("CreateAccountAlias", "DeleteAccountAlias"):
        assert name in names
