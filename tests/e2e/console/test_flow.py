"""The web console driven in a real browser as a person would: an imported (External) key from start
to finish, the way someone who knows AWS's console does it, then every step found in the event
history. Controls are found by their role and visible name or label only."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import expect

from tests.conftest import Server
from tests.e2e.console.conftest import Shots, sign_in
from tests.e2e.importing import openssl_wrap

KEY_ID_IN_URL = re.compile(r"/console/keys/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def flash(page: Any, text: str) -> None:
    expect(page.get_by_role("status").filter(has_text=text)).to_be_visible()


def open_menu(page: Any, name: str) -> None:
    page.locator("summary").filter(has_text=name).click()


def status_is(page: Any, state: str) -> None:
    general = page.get_by_role("region", name="General configuration")
    expect(general.get_by_text(state, exact=True)).to_be_visible()


def test_imported_key_start_to_finish(console_server: Server, new_page: Any, tmp_path: Path) -> None:
    server = console_server
    iam = server.client("iam")
    suffix = uuid.uuid4().hex[:6]
    admin_name, user_name, other_name = f"key-admin-{suffix}", f"key-user-{suffix}", f"outsider-{suffix}"
    arns = {n: iam.create_user(UserName=n)["User"]["Arn"] for n in (admin_name, user_name, other_name)}
    user_key = iam.create_access_key(UserName=user_name)["AccessKey"]
    other_key = iam.create_access_key(UserName=other_name)["AccessKey"]
    other_account = server.new_account()["AccountId"]
    alias = f"console-demo-{suffix}"

    page = new_page()
    shot = Shots(page, "imported-key")
    sign_in(page, server, server.access_key, server.secret_key)
    expect(page.get_by_role("heading", name="Customer managed keys")).to_be_visible()
    shot("signed in")

    # Step 1: configure key. External origin needs the acknowledgement.
    page.get_by_role("link", name="Create key").click()
    expect(page.get_by_role("heading", name="Configure key")).to_be_visible()
    page.get_by_role("radio", name=re.compile(r"^Symmetric")).check()
    page.get_by_label("Encrypt and decrypt").check()
    page.get_by_text("Advanced options").click()
    page.get_by_label("External (Import key material)").check()
    page.get_by_label("Single-Region key").check()
    page.get_by_role("button", name="Next").click()
    required = "confirm that you understand the security, availability, and durability"
    expect(page.get_by_text(required)).to_be_visible()
    shot("step 1 acknowledgement required")
    page.get_by_label(  # the seed's words, exactly, as the input's own <label>
        "I understand the security, availability, and durability implications of using an imported key",
        exact=True,
    ).check()
    shot("step 1 configure key")
    page.get_by_role("button", name="Next").click()

    # Step 2: labels. The alias is required; tags rows are added and removed.
    expect(page.get_by_role("heading", name="Add labels")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("Enter an alias")).to_be_visible()
    page.get_by_label("Alias").fill(alias)
    page.get_by_label("Description").fill("Imported key created in the console test")
    page.get_by_role("button", name="Add tag").click()
    page.get_by_label("Tag key").fill("project")
    page.get_by_label("Tag value").fill("console")
    page.get_by_role("button", name="Add tag").click()
    page.get_by_label("Tag key").nth(1).fill("aws:reserved")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("Tag keys cannot begin with aws:. That prefix is reserved")).to_be_visible()
    page.get_by_role("button", name="Remove tag 2").click()
    expect(page.get_by_label("Tag key")).to_have_count(1)
    shot("step 2 labels")
    page.get_by_role("button", name="Next").click()

    # Step 3: key administrators, from the account's users and roles.
    expect(page.get_by_role("heading", name="Define key administrative permissions")).to_be_visible()
    page.get_by_label(admin_name, exact=True).check()
    expect(page.get_by_label("Allow key administrators to delete this key")).to_be_checked()
    shot("step 3 key administrators")
    page.get_by_role("button", name="Next").click()

    # Step 4: key users and another AWS account.
    expect(page.get_by_role("heading", name="Define key usage permissions")).to_be_visible()
    page.get_by_label(user_name, exact=True).check()
    page.get_by_role("button", name="Add another AWS account").click()
    page.get_by_label("AWS account ID").fill(other_account)
    shot("step 4 key users")
    page.get_by_role("button", name="Next").click()

    # Step 5: review, with the key policy that will be created.
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    policy = json.loads(page.get_by_label("Key policy").input_value())
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert policy["Id"] == "key-consolepolicy-3"
    assert by_sid["Allow access for Key Administrators"]["Principal"]["AWS"] == arns[admin_name]
    assert "kms:ImportKeyMaterial" in by_sid["Allow access for Key Administrators"]["Action"]
    assert "kms:ScheduleKeyDeletion" in by_sid["Allow access for Key Administrators"]["Action"]
    assert by_sid["Allow use of the key"]["Principal"]["AWS"] == [
        arns[user_name],
        f"arn:aws:iam::{other_account}:root",
    ]
    shot("step 5 review")
    page.get_by_role("button", name="Finish").click()

    # The key, pending import, with the way to import its material.
    flash(page, "Your AWS KMS key was created with alias")
    match = KEY_ID_IN_URL.search(page.url)
    assert match is not None
    key_id = match.group(1)
    status_is(page, "Pending import")
    expect(page.get_by_role("link", name="Import key material").first).to_be_visible()
    shot("key created pending import")
    kms = server.client()
    described = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (described["Origin"], described["KeyState"]) == ("EXTERNAL", "PendingImport")
    assert described["Description"] == "Imported key created in the console test"
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "project", "TagValue": "console"}]
    assert json.loads(kms.get_key_policy(KeyId=key_id)["Policy"]) == policy

    # The list: Origin column from the preferences, Pending import, the alias; the filter finds it.
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Customer managed keys").click()
    open_menu(page, "Preferences")
    page.get_by_label("Origin").check()
    page.get_by_role("button", name="Confirm").click()
    row = page.get_by_role("row").filter(has_text=key_id)
    expect(row).to_contain_text("Pending import")
    expect(row).to_contain_text("External (Import key material)")
    expect(row).to_contain_text(alias)
    expect(page.get_by_role("columnheader", name="Origin")).to_be_visible()
    page.get_by_label("Filter keys").fill(alias)
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row")).to_have_count(2)  # the header and the key
    shot("key list with origin")

    # Download the wrapping public key and import token, wrap 32 random bytes with openssl, upload.
    page.get_by_role("link", name=alias).click()
    page.get_by_role("link", name="Import key material").first.click()
    page.get_by_label("Wrapping key spec").select_option("RSA_4096")
    page.get_by_label("Wrapping algorithm").select_option("RSAES_OAEP_SHA_256")
    shot("import download")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download wrapping public key and import token").click()
    download = info.value
    assert re.fullmatch(rf"Import_Parameters_{key_id}_[0-9TZ-]+\.zip", download.suggested_filename)
    archive_path = tmp_path / download.suggested_filename
    download.save_as(archive_path)
    with zipfile.ZipFile(archive_path) as archive:
        assert sorted(archive.namelist()) == ["ImportToken.bin", "README.txt", "WrappingPublicKey.bin"]
        public_der = archive.read("WrappingPublicKey.bin")
        (tmp_path / "ImportToken.bin").write_bytes(archive.read("ImportToken.bin"))
        readme = archive.read("README.txt").decode()
    assert "Wrapping algorithm: RSAES_OAEP_SHA_256" in readme and "Wrapping key spec: RSA_4096" in readme
    material = tmp_path / "PlaintextKeyMaterial.bin"
    subprocess.run(["openssl", "rand", "-out", str(material), "32"], check=True)
    wrapped = openssl_wrap(tmp_path, "RSAES_OAEP_SHA_256", public_der, material)
    page.get_by_label("Wrapped key material").set_input_files(str(wrapped))
    page.get_by_label("Import token").set_input_files(str(tmp_path / "ImportToken.bin"))
    page.get_by_label("Key material doesn't expire").check()
    page.get_by_label("Key material description").fill("first material")
    shot("import upload")
    page.get_by_role("button", name="Import key material").click()
    flash(page, "The key material was imported.")
    status_is(page, "Enabled")
    materials = page.get_by_role("table").filter(has_text="Key material ID")
    expect(materials).to_contain_text("first material")
    expect(materials).to_contain_text("Imported")
    expect(materials).to_contain_text("Does not expire")
    shot("key enabled with material")

    # The chosen key user encrypts with it; a user who was not chosen is refused.
    as_user = server.client(access_key=user_key["AccessKeyId"], secret_key=user_key["SecretAccessKey"])
    blob = as_user.encrypt(KeyId=key_id, Plaintext=b"console imported key")["CiphertextBlob"]
    assert as_user.decrypt(CiphertextBlob=blob)["Plaintext"] == b"console imported key"
    as_other = server.client(access_key=other_key["AccessKeyId"], secret_key=other_key["SecretAccessKey"])
    with pytest.raises(ClientError) as refused:
        as_other.encrypt(KeyId=key_id, Plaintext=b"not for you")
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"

    # Delete the key material: Pending import again.
    page.get_by_role("button", name="Delete key material").click()
    flash(page, "The key material was deleted.")
    status_is(page, "Pending import")
    shot("key material deleted")
    with pytest.raises(ClientError):
        as_user.encrypt(KeyId=key_id, Plaintext=b"no material")

    # The key policy: the default view lists who may do what; the JSON view shows the API's errors.
    page.get_by_role("link", name="Key policy", exact=True).click()
    admins = page.get_by_role("region", name="Key administrators")
    expect(admins).to_contain_text(arns[admin_name])
    expect(page.get_by_role("region", name="Key users")).to_contain_text(arns[user_name])
    expect(page.get_by_role("region", name="Other AWS accounts")).to_contain_text(other_account)
    shot("policy default view")
    page.get_by_role("link", name="Switch to policy view").click()
    editor = page.get_by_label("Key policy")
    original = json.loads(editor.input_value())
    editor.fill('{"Version": "2012-10-17", "Statement": [')
    page.get_by_role("button", name="Save changes").click()
    alert = page.get_by_role("alert").filter(has_text="The key policy is not valid")
    expect(alert).to_contain_text("The policy is not valid JSON.")
    shot("policy invalid")
    original["Statement"].append(
        {
            "Sid": "Deny the outsider",
            "Effect": "Deny",
            "Principal": {"AWS": arns[other_name]},
            "Action": "kms:*",
            "Resource": "*",
        }
    )
    page.get_by_label("Key policy").fill(json.dumps(original, indent=2))
    page.get_by_role("button", name="Save changes").click()
    flash(page, "The key policy was saved.")
    shot("policy saved")
    assert json.loads(kms.get_key_policy(KeyId=key_id)["Policy"]) == original

    # Schedule key deletion (the waiting period and the confirmation), then cancel it.
    open_menu(page, "Key actions")
    page.get_by_role("link", name="Schedule key deletion").click()
    page.get_by_label("Waiting period (in days)").fill("7")
    page.get_by_role("button", name="Schedule deletion").click()
    expect(page.get_by_text("Confirm that you want to schedule this key for deletion.").last).to_be_visible()
    page.get_by_label("Confirm that you want to schedule this key for deletion").check()
    shot("schedule deletion")
    page.get_by_role("button", name="Schedule deletion").click()
    flash(page, "The key is scheduled for deletion.")
    status_is(page, "Pending deletion")
    deletion = kms.describe_key(KeyId=key_id)["KeyMetadata"]["DeletionDate"]
    assert 6.9 < (deletion.timestamp() - time.time()) / 86400 <= 7
    shot("pending deletion")
    open_menu(page, "Key actions")
    page.get_by_role("button", name="Cancel key deletion").click()
    flash(page, "Key deletion was canceled.")
    status_is(page, "Pending import")
    shot("deletion canceled")

    # Every step is in the event history, made by the console.
    page.get_by_role("link", name="View this key's events").click()
    expect(page.get_by_role("heading", name="Event history")).to_be_visible()
    events = page.get_by_role("table")
    for name in (
        "CreateKey",
        "CreateAlias",
        "ImportKeyMaterial",
        "DeleteImportedKeyMaterial",
        "PutKeyPolicy",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
    ):
        expect(events.get_by_role("cell", name=name, exact=True).first).to_be_visible()
    shot("event history of the key")
    page.get_by_label("Read-only events").select_option(label="All events")
    page.get_by_label("Event name").fill("GetParametersForImport")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_role("cell", name="GetParametersForImport", exact=True)).to_have_count(1)
    page.get_by_label("Read-only events").select_option(label="Changes only")
    page.get_by_label("Event name").fill("PutKeyPolicy")
    page.get_by_role("button", name="Apply filters").click()
    events = page.locator("tbody.event")
    expect(events).to_have_count(2)  # the refused invalid policy and the saved one
    expect(events.get_by_role("cell", name="MalformedPolicyDocumentException")).to_have_count(1)
    saved = events.first  # newest first
    saved.get_by_text("View event").click()
    record = json.loads(saved.locator("pre").inner_text())
    assert record["userAgent"].startswith("openkms-console/")
    assert record["userIdentity"]["userName"] == "admin"
    assert record["requestParameters"]["keyId"] == key_id
    shot("event json")
    page.get_by_label("Key ID").fill("")
    page.get_by_label("Event name").fill("ConsoleLogin")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_role("cell", name="signin.amazonaws.com").first).to_be_visible()

    # Sign out: back to the sign-in page, and the console's pages need signing in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    page.goto(f"{server.endpoint}/console/keys")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot("signed out")


def finish_wizard(page: Any, alias: str) -> str:
    """Steps 2 to 5 with only an alias; the new key's id."""
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Alias").fill(alias)
    for _ in range(3):
        page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Finish").click()
    flash(page, "Your AWS KMS key was created")
    match = KEY_ID_IN_URL.search(page.url) or re.search(r"/console/keys/(mrk-[0-9a-f]{32})", page.url)
    assert match is not None, page.url
    return match.group(1)


def test_wizard_key_types(console_server: Server, new_page: Any) -> None:
    """Asymmetric and multi-Region keys: the key usages and key specs shown follow the key type."""
    kms = console_server.client()
    page = new_page()
    shot = Shots(page, "key-types")
    sign_in(page, console_server, console_server.access_key, console_server.secret_key)
    page.goto(f"{console_server.endpoint}/console/keys/create")
    page.get_by_role("radio", name=re.compile(r"^Asymmetric")).check()
    expect(page.get_by_label("Generate and verify MAC")).to_be_hidden()
    page.get_by_label("Sign and verify").check()
    expect(page.get_by_label("HMAC_256")).to_be_hidden()
    page.get_by_label("ECC_NIST_P256").check()
    page.get_by_text("Advanced options").click()
    page.get_by_label("Multi-Region key").check()
    shot("asymmetric sign multi-region")
    key_id = finish_wizard(page, "sign-" + uuid.uuid4().hex[:6])
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (md["KeySpec"], md["KeyUsage"], md["MultiRegion"]) == ("ECC_NIST_P256", "SIGN_VERIFY", True)
    policy = json.loads(kms.get_key_policy(KeyId=key_id)["Policy"])
    assert policy["Id"] == "key-consolepolicy-3"
    page.get_by_role("link", name="Cryptographic configuration").click()
    expect(page.get_by_text("ECDSA_SHA_256")).to_be_visible()
    shot("asymmetric crypto configuration")


def test_wizard_without_javascript(console_server: Server, browser: Any) -> None:
    """The essential flow needs no script: every choice is in the page and the server checks it."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, console_server, console_server.access_key, console_server.secret_key)
        page.get_by_role("link", name="Create key").click()
        page.get_by_label("Generate and verify MAC").check()
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_text("Choose a key spec that this key usage allows.")).to_be_visible()
        page.get_by_label("HMAC_384").check()
        Shots(page, "no-javascript")("hmac key spec")
        key_id = finish_wizard(page, "hmac-" + uuid.uuid4().hex[:6])
        md = console_server.client().describe_key(KeyId=key_id)["KeyMetadata"]
        assert (md["KeySpec"], md["KeyUsage"]) == ("HMAC_384", "GENERATE_VERIFY_MAC")
    finally:
        context.close()
