"""A key's page, tab by tab: the default key policy view (add and remove administrators, users and
accounts; administrators' deletion right), tags, aliases, description, key rotation (automatic with a
period, on demand, history), grants; and for an imported key, new key material for on-demand rotation
with an expiration date."""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.conftest import Server
from tests.e2e.console.conftest import Shots, sign_in
from tests.e2e.importing import import_material, wrap


def flash(page: Any, text: str) -> None:
    expect(page.get_by_role("status").filter(has_text=text)).to_be_visible()


def test_key_tabs(console_server: Server, new_page: Any) -> None:
    server = console_server
    kms = server.client()
    iam = server.client("iam")
    suffix = uuid.uuid4().hex[:6]
    admin = iam.create_user(UserName=f"tab-admin-{suffix}")["User"]["Arn"]
    user = iam.create_user(UserName=f"tab-user-{suffix}")["User"]["Arn"]
    page = new_page()
    shot = Shots(page, "key-tabs")
    sign_in(page, server, server.access_key, server.secret_key)
    # A key made with the wizard (administrators and users left empty), then managed tab by tab.
    page.goto(f"{server.endpoint}/console/keys/create")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Alias").fill(f"tabs-{suffix}")
    for _ in range(3):
        page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Finish").click()
    flash(page, "Your AWS KMS key was created")
    key_id = page.url.split("/console/keys/")[1].split("?")[0]

    # Key policy, default view.
    page.get_by_label("Add key administrator").select_option(label=f"User: tab-admin-{suffix}")
    page.get_by_role("region", name="Key administrators").get_by_role("button", name="Add").click()
    flash(page, "The key policy was saved.")
    page.get_by_label("Add key user", exact=True).select_option(label=f"User: tab-user-{suffix}")
    page.get_by_role("region", name="Key users").get_by_role("button", name="Add").click()
    flash(page, "The key policy was saved.")
    page.get_by_label("AWS account ID").fill("111122223333")
    page.get_by_role("button", name="Add another AWS account").click()
    flash(page, "The key policy was saved.")
    page.get_by_label("AWS account ID").fill("12345")
    page.get_by_role("button", name="Add another AWS account").click()
    expect(page.get_by_text("Enter a 12-digit AWS account ID.")).to_be_visible()
    page.get_by_label("Allow key administrators to delete this key").uncheck()
    page.get_by_role("button", name="Save key deletion setting").click()
    flash(page, "The key policy was saved.")
    shot("policy default view")
    statements = {s["Sid"]: s for s in json.loads(kms.get_key_policy(KeyId=key_id)["Policy"])["Statement"]}
    assert statements["Allow access for Key Administrators"]["Principal"]["AWS"] == admin
    assert "kms:ScheduleKeyDeletion" not in statements["Allow access for Key Administrators"]["Action"]
    assert statements["Allow use of the key"]["Principal"]["AWS"] == [user, "arn:aws:iam::111122223333:root"]
    assert "Allow attachment of persistent resources" in statements
    page.get_by_role("button", name="Remove account 111122223333").click()
    flash(page, "The key policy was saved.")
    page.get_by_role("button", name=f"Remove key user tab-user-{suffix}").click()
    flash(page, "The key policy was saved.")
    statements = {s["Sid"]: s for s in json.loads(kms.get_key_policy(KeyId=key_id)["Policy"])["Statement"]}
    assert (
        "Allow use of the key" not in statements
        and "Allow attachment of persistent resources" not in statements
    )

    # Description.
    page.get_by_text("Edit description").click()
    page.get_by_label("Description", exact=True).fill("managed in tabs")
    page.get_by_role("button", name="Save description").click()
    flash(page, "The description was saved.")

    # Tags: add, replace, remove; AWS's rules come back from the API.
    page.get_by_role("link", name="Tags", exact=True).click()
    page.get_by_label("Tag key").fill("env")
    page.get_by_label("Tag value").fill("test")
    page.get_by_role("button", name="Add tag").click()
    flash(page, "The tag was saved.")
    page.get_by_label("Tag key").fill("aws:nope")
    page.get_by_role("button", name="Add tag").click()
    expect(page.get_by_role("alert")).to_contain_text("Tags beginning with aws: are reserved")
    expect(page.get_by_label("Tag key")).to_have_value("aws:nope")  # what was typed is kept
    page.get_by_role("link", name="Tags", exact=True).click()
    page.get_by_label("Tag key").fill("team")
    page.get_by_label("Tag value").fill("blue")
    page.get_by_role("button", name="Add tag").click()
    page.get_by_role("button", name="Remove tag env").click()
    flash(page, "The tag was removed.")
    shot("tags")
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "team", "TagValue": "blue"}]

    # Aliases.
    page.get_by_role("link", name="Aliases", exact=True).click()
    page.get_by_label("Alias name").fill(f"second-{suffix}")
    page.get_by_role("button", name="Create alias").click()
    flash(page, "The alias was created.")
    page.get_by_label("Alias name").fill(f"tabs-{suffix}")
    page.get_by_role("button", name="Create alias").click()
    expect(page.get_by_role("alert")).to_contain_text("already exists")
    page.get_by_role("link", name="Aliases", exact=True).click()
    page.get_by_role("button", name=f"Delete alias alias/second-{suffix}").click()
    flash(page, "The alias was deleted.")
    shot("aliases")
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=key_id)["Aliases"]] == [f"alias/tabs-{suffix}"]

    # Key rotation: automatic with a period (the API's range check shown), on demand, history.
    page.get_by_role("link", name="Key rotation", exact=True).click()
    page.get_by_label("Enable automatic key rotation").check()
    page.get_by_label("Rotation period (in days)").fill("30")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("rotationPeriodInDays")
    page.get_by_label("Rotation period (in days)").fill("180")
    page.get_by_role("button", name="Save", exact=True).click()
    flash(page, "The key rotation settings were saved.")
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] and status["RotationPeriodInDays"] == 180
    page.get_by_role("button", name="Rotate now").click()
    flash(page, "The key material was rotated.")
    expect(page.get_by_role("cell", name="On-demand")).to_be_visible()
    shot("rotation")
    page.get_by_label("Enable automatic key rotation").uncheck()
    page.get_by_role("button", name="Save", exact=True).click()
    flash(page, "The key rotation settings were saved.")
    assert not kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"]

    # Grants: listed, revoked.
    grant_id = kms.create_grant(
        KeyId=key_id, GranteePrincipal=admin, Operations=["Encrypt", "Decrypt"], Name="console-grant"
    )["GrantId"]
    page.get_by_role("link", name="Grants", exact=True).click()
    row = page.get_by_role("row").filter(has_text=grant_id)
    expect(row).to_contain_text("Encrypt, Decrypt")
    shot("grants")
    page.get_by_role("button", name="Revoke grant console-grant").click()
    flash(page, "The grant was revoked.")
    assert kms.list_grants(KeyId=key_id)["Grants"] == []

    # Disable and enable from the key actions.
    page.locator("summary").filter(has_text="Key actions").click()
    page.get_by_role("button", name="Disable").click()
    flash(page, "The key was disabled.")
    page.locator("summary").filter(has_text="Key actions").click()
    page.get_by_role("button", name="Enable").click()
    flash(page, "The key was enabled.")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_new_key_material_for_on_demand_rotation(
    console_server: Server, new_page: Any, tmp_path: Path
) -> None:
    kms = console_server.client()
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    first = import_material(kms, key_id, bytes(32 * [7]))["KeyMaterialId"]
    page = new_page()
    shot = Shots(page, "new-key-material")
    sign_in(page, console_server, console_server.access_key, console_server.secret_key)
    page.goto(f"{console_server.endpoint}/console/keys/{key_id}/import")
    page.get_by_label("Wrapping key spec").select_option("RSA_3072")
    page.get_by_label("Wrapping algorithm").select_option("RSA_AES_KEY_WRAP_SHA_256")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download wrapping public key and import token").click()
    archive = tmp_path / "parameters.zip"
    info.value.save_as(archive)
    with zipfile.ZipFile(archive) as z:
        wrapped = wrap("RSA_AES_KEY_WRAP_SHA_256", z.read("WrappingPublicKey.bin"), bytes(32 * [9]))
        (tmp_path / "ImportToken.bin").write_bytes(z.read("ImportToken.bin"))
    (tmp_path / "EncryptedKeyMaterial.bin").write_bytes(wrapped)
    # Upload without the files first: the console says what is missing.
    page.get_by_role("button", name="Import key material").click()
    expect(page.get_by_text("Choose the file with your wrapped key material.")).to_be_visible()
    page.get_by_label("Wrapped key material").set_input_files(str(tmp_path / "EncryptedKeyMaterial.bin"))
    page.get_by_label("Import token").set_input_files(str(tmp_path / "ImportToken.bin"))
    page.get_by_label("Key material expires").check()
    valid_to = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).replace(second=0, microsecond=0)
    page.get_by_label("Expiration date and time (UTC)").fill(valid_to.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Key material description").fill("second material")
    page.get_by_label("Import new key material (for on-demand rotation)").check()
    shot("upload new material")
    page.get_by_role("button", name="Import key material").click()
    flash(page, "The key material was imported.")
    materials = page.get_by_role("table").filter(has_text="Key material ID")
    expect(materials.get_by_role("row").filter(has_text="second material")).to_contain_text(
        "Pending rotation"
    )
    shot("pending rotation")
    page.get_by_role("button", name="Rotate now").click()
    flash(page, "The key material was rotated.")
    expect(materials.get_by_role("row").filter(has_text="second material")).to_contain_text("Current")
    shot("rotated")
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert md["CurrentKeyMaterialId"] != first
    rotations = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")["Rotations"]
    current = next(r for r in rotations if r["KeyMaterialState"] == "CURRENT")
    assert current["KeyMaterialDescription"] == "second material"
    assert current["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert current["ValidTo"] == valid_to
