"""The console's safety: session cookie flags, CSRF and same-origin checks on every change, signed-out
and expired sessions refused, a deleted access key ending its sessions, no secret in pages, logs or the
audit trail, and a principal without permission seeing AccessDenied for the action and nothing more."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.conftest import OPENKMS, Server, launch
from tests.e2e.console.conftest import Shots, sign_in
from tests.e2e.console.http import ConsoleHttp


def signed_in(server: Server) -> tuple[ConsoleHttp, str]:
    """An HTTP client signed in as the account's administrator, and a page's CSRF token."""
    client = ConsoleHttp(server.endpoint)
    answer = client.sign_in(server.access_key, server.secret_key)
    assert answer.status == 303 and answer.header("location") == "/console/keys?region=us-east-1"
    return client, client.get("/console/keys").csrf()


def new_user(server: Server, policy: dict[str, Any] | None = None) -> tuple[str, str, str]:
    """An IAM user (with this inline policy) and its access key: (name, access key id, secret)."""
    iam = server.client("iam")
    name = "u-" + uuid.uuid4().hex[:8]
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return name, key["AccessKeyId"], key["SecretAccessKey"]


def test_session_cookie_flags_and_storage(console_server: Server) -> None:
    client = ConsoleHttp(console_server.endpoint)
    form = client.get("/console/signin")
    signin_cookie = next(c for c in form.set_cookies() if c.startswith("openkms_signin="))
    assert "HttpOnly" in signin_cookie and "SameSite=Strict" in signin_cookie
    answer = client.post(
        "/console/signin",
        {
            "csrf_token": form.csrf(),
            "access_key_id": console_server.access_key,
            "secret_access_key": console_server.secret_key,
            "region": "us-east-1",
        },
    )
    cookie = next(c for c in answer.set_cookies() if c.startswith("openkms_session="))
    attributes = [part.strip() for part in cookie.split(";")]
    assert {"HttpOnly", "SameSite=Strict", "Path=/console"} <= set(attributes)
    assert "Secure" not in attributes  # plain http here
    assert not any(a.startswith(("Max-Age", "Expires")) for a in attributes)  # ends with the browser
    session_id = client.cookies["openkms_session"]
    assert len(session_id) >= 40
    # The database keeps only the SHA-256 of the session id, and never the secret.
    db = sqlite3.connect(console_server.data_dir / "openkms.db")
    rows = db.execute("SELECT * FROM console_sessions").fetchall()
    db.close()
    dump = repr(rows)
    assert hashlib.sha256(session_id.encode()).hexdigest() in dump
    assert session_id not in dump and console_server.secret_key not in dump
    # Behind a TLS-terminating proxy (X-Forwarded-Proto from a trusted address) the cookie is Secure.
    https = ConsoleHttp(console_server.endpoint)
    tls = {"X-Forwarded-Proto": "https"}
    form = https.request("GET", "/console/signin", headers=tls)
    assert "Secure" in next(c for c in form.set_cookies() if c.startswith("openkms_signin="))
    answer = https.request(
        "POST",
        "/console/signin",
        {
            "csrf_token": form.csrf(),
            "access_key_id": console_server.access_key,
            "secret_access_key": console_server.secret_key,
        },
        headers={**tls, "Origin": console_server.endpoint.replace("http://", "https://")},
    )
    assert answer.status == 303
    assert "Secure" in next(c for c in answer.set_cookies() if c.startswith("openkms_session="))


def test_every_change_needs_the_csrf_token_and_same_origin(console_server: Server) -> None:
    kms = console_server.client()
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    client, token = signed_in(console_server)
    path = f"/console/keys/{key_id}"
    refused = [
        client.post(path, {"op": "disable"}),  # no token
        client.post(path, {"op": "disable", "csrf_token": "0" * 64}),  # a wrong token
        client.post(path, {"op": "disable", "csrf_token": token}, headers={"Origin": "https://evil.example"}),
        client.post(
            path, {"op": "disable", "csrf_token": token}, origin=False, headers={"Referer": "http://evil/"}
        ),
        client.post("/console/keys/create", {"action": "next", "step": "1"}),
        client.post("/console/signout", {}),
        client.post("/console/preferences", {"show_origin": "yes"}),
        client.post(f"/console/keys/{key_id}/replicate", {"replica_region": "eu-west-1", "alias": "x"}),
        client.post("/console/keystores/create", {"name": "x"}),
        client.post("/console/keystores/cks-00000000000000000", {"op": "disconnect"}),
        client.post("/console/keystores/cks-00000000000000000/edit", {"name": "x"}),
        client.post("/console/keystores/cks-00000000000000000/delete", {"confirm": "yes"}),
    ]
    for answer in refused:
        assert answer.status == 403, answer.text
        assert "The request was refused" in answer.text
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert client.get("/console/keys").status == 200  # still signed in: sign-out needs the token too
    # Sign-in itself is protected against login CSRF: its token must match its cookie.
    other = ConsoleHttp(console_server.endpoint)
    answer = other.post(
        "/console/signin",
        {
            "csrf_token": "x",
            "access_key_id": console_server.access_key,
            "secret_access_key": console_server.secret_key,
        },
    )
    assert answer.status == 403 and "openkms_session" not in other.cookies
    # With the token, the same change is made.
    answer = client.post(path, {"op": "disable", "csrf_token": token, "tab": "policy"})
    assert answer.status == 303
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"


def test_signed_out_session_refused(console_server: Server) -> None:
    client, token = signed_in(console_server)
    old_cookie = dict(client.cookies)
    answer = client.post("/console/signout", {"csrf_token": token})
    assert answer.status == 303 and answer.header("location") == "/console/signin?reason=signedout"
    assert "openkms_session" not in client.cookies
    client.cookies = old_cookie  # someone kept the cookie
    answer = client.get("/console/keys")
    assert answer.status == 303 and (answer.header("location") or "").startswith("/console/signin")
    client.cookies = old_cookie
    answer = client.post("/console/preferences", {"csrf_token": token, "show_origin": "yes"})
    assert answer.status == 401 and "You are signed out" in answer.text
    assert client.get("/console/audit").status == 303


def test_wrong_secret_and_no_secret_anywhere(console_server: Server) -> None:
    client = ConsoleHttp(console_server.endpoint)
    form = client.get("/console/signin")
    wrong = "not-the-secret-" + uuid.uuid4().hex
    answer = client.post(
        "/console/signin",
        {"csrf_token": form.csrf(), "access_key_id": console_server.access_key, "secret_access_key": wrong},
    )
    assert answer.status == 401
    assert "The access key ID or secret access key is not correct." in answer.text
    assert wrong not in answer.text and "openkms_session" not in client.cookies
    client, _ = signed_in(console_server)
    pages = [
        client.get(p).text for p in ("/console/keys", "/console/audit?read_only=all", "/console/keys/create")
    ]
    secret = console_server.secret_key
    assert all(secret not in page for page in pages)
    records = subprocess.run(
        [OPENKMS, "audit", "list", "--json", "--limit", "100000", *console_server.data_args()],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert secret not in records and wrong not in records
    logins = [r for r in json.loads(records) if r["eventName"] == "ConsoleLogin"]
    assert any(r.get("errorMessage") == "Failed authentication" for r in logins)
    assert any(r["responseElements"] == {"ConsoleLogin": "Success"} for r in logins)
    assert all(r["eventSource"] == "signin.amazonaws.com" for r in logins)
    assert console_server.log_path is not None
    log = console_server.log_path.read_text()
    assert secret not in log and wrong not in log


def test_idle_session_expires_and_deleted_key_ends_sessions(workdir: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="console-idle-"))
    server = launch(data_dir, None, env={"OPENKMS_CONSOLE_IDLE_TIMEOUT": "2"})
    try:
        client, _ = signed_in(server)
        for _ in range(3):  # activity keeps the session alive past the idle timeout
            time.sleep(0.8)
            assert client.get("/console/keys").status == 200
        time.sleep(2.5)
        answer = client.get("/console/keys")
        assert answer.status == 303 and answer.header("location") == "/console/signin?reason=expired"
        assert "Your session has ended" in client.get("/console/signin?reason=expired").text
        # A deleted access key ends the sessions it signed in.
        name, akid, secret = new_user(server)
        user = ConsoleHttp(server.endpoint)
        assert user.sign_in(akid, secret).status == 303
        assert user.get("/console/keys").status == 200
        server.client("iam").delete_access_key(UserName=name, AccessKeyId=akid)
        answer = user.get("/console/keys")
        assert answer.status == 303 and (answer.header("location") or "").startswith("/console/signin")
    finally:
        server.stop()


def test_no_permission_sees_access_denied_and_nothing_more(console_server: Server, new_page: Any) -> None:
    kms = console_server.client()
    key = kms.create_key(Description="secret project")["KeyMetadata"]
    kms.create_alias(AliasName="alias/guarded-" + uuid.uuid4().hex[:6], TargetKeyId=key["KeyId"])
    _, akid, secret = new_user(console_server)  # no policy at all
    page = new_page()
    shot = Shots(page, "access-denied")
    sign_in(page, console_server, akid, secret)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Access denied.")
    expect(alert).to_contain_text("is not authorized to perform: kms:ListKeys")
    expect(page.get_by_role("table")).to_have_count(0)
    shot("key list denied")
    page.goto(f"{console_server.endpoint}/console/keys/{key['KeyId']}")
    expect(page.get_by_role("alert")).to_contain_text("kms:DescribeKey")
    expect(page.get_by_text("secret project")).to_have_count(0)
    expect(page.get_by_role("region", name="General configuration")).to_have_count(0)
    shot("key page denied")
    page.goto(f"{console_server.endpoint}/console/audit")
    expect(page.get_by_role("alert")).to_contain_text("cloudtrail:LookupEvents")
    expect(page.get_by_role("table")).to_have_count(0)
    shot("event history denied")
    page.goto(f"{console_server.endpoint}/console/keys/create")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Alias").fill("not-allowed")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "iam:ListUsers"
    )  # the wizard says why the list is empty
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Finish").click()
    expect(page.get_by_role("alert")).to_contain_text("kms:CreateKey")
    shot("create key denied")


def test_key_user_may_use_but_not_manage(console_server: Server, new_page: Any) -> None:
    """A principal allowed only DescribeKey on a key: the page shows, Disable answers AccessDenied next to
    the action, and the key is unchanged."""
    kms = console_server.client()
    name, akid, secret = new_user(console_server)
    account = console_server.account_id
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:user/{name}"},
                "Action": ["kms:DescribeKey", "kms:ListAliases"],
                "Resource": "*",
            },
        ],
    }
    key_id = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
    page = new_page()
    sign_in(page, console_server, akid, secret)
    page.goto(f"{console_server.endpoint}/console/keys/{key_id}")
    expect(page.get_by_role("region", name="General configuration")).to_contain_text("Enabled")
    expect(page.get_by_role("alert").filter(has_text="kms:GetKeyPolicy")).to_be_visible()  # the policy tab
    page.locator("summary").filter(has_text="Key actions").click()
    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("alert").filter(has_text="kms:DisableKey")).to_contain_text("Access denied.")
    Shots(page, "action-denied")("disable denied")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_bounded_forms_and_unknown_pages(console_server: Server) -> None:
    client, token = signed_in(console_server)
    big = client.post("/console/keys/create", {"csrf_token": token, "description": "x" * 200_000})
    assert big.status == 413 and "too large" in big.text
    assert client.get("/console/nowhere").status == 404
    assert client.get("/console/keys/not_a-key!").status == 404
    page = client.get("/console/keys")
    for header in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert page.header(header)
    assert "default-src 'none'" in (page.header("content-security-policy") or "")
    assert re.search(r"<script[^>]*>[^<]", page.text) is None  # no inline script (the CSP forbids it)
