"""Multi-Region keys in the console, in a real browser: a multi-Region key made in the wizard, a replica
created from its Regionality tab (seen there and, with boto3, in its own Region), the primary Region
changed and the roles swapped; refusals next to their control, the keyboard only, and HTTP checks of
the replica form (CSRF, Regions outside the list)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from playwright.sync_api import expect

from tests.conftest import Server
from tests.e2e.console.conftest import Shots, sign_in
from tests.e2e.console.http import ConsoleHttp
from tests.e2e.console.test_layout import tab_to

MRK_IN_URL = re.compile(r"/console/keys/(mrk-[0-9a-f]{32})")
OTHER = "eu-west-1"


def wait_enabled(kms: Any, key_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] != "Enabled":
        assert time.monotonic() < deadline, "the key did not become Enabled"
        time.sleep(0.2)


def related_row(page: Any, region: str) -> Any:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=re.compile(rf"^{region}\b")))


def create_multi_region_key(page: Any, alias: str) -> str:
    page.get_by_role("link", name="Create key").click()
    expect(page.get_by_role("heading", name="Configure key")).to_be_visible()
    page.get_by_text("Advanced options").click()
    page.get_by_label("Multi-Region key").check()
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Alias").fill(alias)
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    expect(page.get_by_text("Multi-Region", exact=True)).to_be_visible()
    page.get_by_role("button", name="Finish").click()
    expect(page.get_by_role("status").filter(has_text="Your AWS KMS key was created")).to_be_visible()
    found = MRK_IN_URL.search(page.url)
    assert found, page.url
    return found.group(1)


def test_replicate_and_change_primary_region(console_server: Server, new_page: Any) -> None:
    server = console_server
    home = server.client()
    away = server.client(region=OTHER)
    alias = "mrk-demo-" + uuid.uuid4().hex[:6]
    page = new_page()
    shot = Shots(page, "multi-region")
    sign_in(page, server, server.access_key, server.secret_key)
    key_id = create_multi_region_key(page, alias)
    general = page.get_by_role("region", name="General configuration")
    expect(general.get_by_text("Multi-Region", exact=True)).to_be_visible()

    page.get_by_role("link", name="Regionality").click()
    expect(page.get_by_role("heading", name="Regionality")).to_be_visible()
    expect(related_row(page, "us-east-1")).to_contain_text("Primary")
    expect(related_row(page, "us-east-1")).to_contain_text("Enabled")
    shot("regionality primary only")

    # Create new replica keys: a Region is required, then the replica is made with its alias.
    page.get_by_role("link", name="Create new replica keys").click()
    expect(page.get_by_role("heading", name="Create new replica keys")).to_be_visible()
    policy = page.get_by_label("Key policy").input_value()
    assert '"Version"' in policy  # the primary's policy to begin with
    page.get_by_label("Alias").fill(alias)
    page.get_by_role("button", name="Create new replica keys").click()
    expect(page.get_by_text("Choose at least one Region for the replica key.")).to_be_visible()
    shot("replica region required")
    page.get_by_label(OTHER, exact=True).check()
    page.get_by_label("Description - optional").fill("orders (Ireland)")
    page.get_by_role("button", name="Add tag").click()
    page.get_by_label("Tag key").fill("team")
    page.get_by_label("Tag value - optional").fill("payments")
    shot("create new replica keys")
    page.get_by_role("button", name="Create new replica keys").click()
    expect(page.get_by_role("status").filter(has_text="The replica keys were created")).to_be_visible()
    expect(related_row(page, OTHER)).to_contain_text("Replica")
    shot("replica listed")

    replica = away.describe_key(KeyId=key_id)["KeyMetadata"]
    assert replica["MultiRegionConfiguration"]["MultiRegionKeyType"] == "REPLICA"
    assert replica["Description"] == "orders (Ireland)"
    assert {"TagKey": "team", "TagValue": "payments"} in away.list_resource_tags(KeyId=key_id)["Tags"]
    assert [a["AliasName"] for a in away.list_aliases(KeyId=key_id)["Aliases"]] == [f"alias/{alias}"]
    wait_enabled(away, key_id)

    # Replicating again into the same Region: that Region is no longer offered.
    page.goto(f"{server.endpoint}/console/keys/{key_id}/replicate")
    expect(page.get_by_label(OTHER, exact=True)).to_have_count(0)

    # Change primary Region: the roles swap, in both Regions.
    page.goto(f"{server.endpoint}/console/keys/{key_id}?tab=regionality")
    expect(related_row(page, OTHER)).to_contain_text("Enabled")
    page.get_by_label("New primary Region").select_option(OTHER)
    page.get_by_role("button", name="Change primary Region").click()
    expect(page.get_by_role("status").filter(has_text="The primary Region is being changed")).to_be_visible()
    expect(related_row(page, OTHER)).to_contain_text("Primary")
    expect(related_row(page, "us-east-1")).to_contain_text("Replica")
    expect(page.get_by_text("This key is a replica key.")).to_be_visible()
    shot("primary region changed")
    assert home.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
        "MultiRegionKeyType"
    ] == ("REPLICA")
    assert away.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
        "MultiRegionKeyType"
    ] == ("PRIMARY")
    wait_enabled(home, key_id)
    page.reload()
    expect(related_row(page, "us-east-1")).to_contain_text("Enabled")
    expect(page.get_by_role("link", name="Create new replica keys")).to_have_count(0)


def test_replica_refusals_in_plain_words(console_server: Server, new_page: Any) -> None:
    server = console_server
    home = server.client()
    away = server.client(region=OTHER)
    key_id = home.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    taken = "taken-" + uuid.uuid4().hex[:6]
    away.create_alias(AliasName=f"alias/{taken}", TargetKeyId=away.create_key()["KeyMetadata"]["KeyId"])
    page = new_page()
    shot = Shots(page, "multi-region-refusals")
    sign_in(page, server, server.access_key, server.secret_key)
    page.goto(f"{server.endpoint}/console/keys/{key_id}/replicate")
    page.get_by_label(OTHER, exact=True).check()
    page.get_by_label("Alias").fill(taken)
    page.get_by_role("button", name="Create new replica keys").click()
    error = page.locator("#alias-error")
    expect(error).to_have_text(f"An alias with this name already exists in {OTHER}. Enter a different alias.")
    expect(page.get_by_label("Alias")).to_have_attribute("aria-describedby", "alias-error")
    page.get_by_label("Alias").fill("ok-" + uuid.uuid4().hex[:6])
    page.get_by_label("Key policy").fill("{not json")
    page.get_by_role("button", name="Create new replica keys").click()
    expect(page.get_by_role("alert")).to_contain_text("The key policy is not valid")
    expect(page.get_by_role("alert")).to_contain_text(f"In {OTHER}:")
    shot("replica refused")
    # A replica key's page offers no replication, and its replicate page says why.
    wait_enabled(home, key_id)
    away_key = away.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    away.replicate_key(KeyId=away_key, ReplicaRegion="us-east-1")
    page.goto(f"{server.endpoint}/console/keys/{away_key}?tab=regionality")
    expect(page.get_by_text("This key is a replica key.")).to_be_visible()
    page.goto(f"{server.endpoint}/console/keys/{away_key}/replicate")
    expect(page.get_by_role("heading", name="This is not a multi-Region primary key")).to_be_visible()


def test_replicate_with_the_keyboard_only(console_server: Server, new_page: Any) -> None:
    server = console_server
    key_id = server.client().create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    alias = "kbd-mrk-" + uuid.uuid4().hex[:6]
    page = new_page()
    sign_in(page, server, server.access_key, server.secret_key)
    page.goto(f"{server.endpoint}/console/keys/{key_id}?tab=regionality")
    tab_to(page, "Create new replica keys", limit=80)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Create new replica keys")).to_be_visible()
    tab_to(page, "ap-south-1", limit=80)
    page.keyboard.press("Space")
    expect(page.get_by_label("ap-south-1", exact=True)).to_be_checked()
    page.get_by_label("Alias").focus()
    page.keyboard.type(alias)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="The replica keys were created")).to_be_visible()
    expect(related_row(page, "ap-south-1")).to_contain_text("Replica")


def test_replica_form_over_http(console_server: Server) -> None:
    server = console_server
    key_id = server.client().create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    client = ConsoleHttp(server.endpoint)
    assert client.sign_in(server.access_key, server.secret_key).status == 303
    path = f"/console/keys/{key_id}/replicate"
    token = client.get(path).csrf()
    refused = client.post(path, {"replica_region": OTHER, "alias": "x"})
    assert refused.status == 403 and "The request was refused" in refused.text
    odd = client.post(
        path,
        {"csrf_token": token, "replica_region": "<b>xx-nowhere-9</b>", "alias": "<script>", "tag_key": "a"},
    )
    assert odd.status == 400
    assert "Choose Regions from the list" in odd.text and "<script>" not in odd.text
    assert "<b>xx-nowhere-9</b>" not in odd.text
    change = client.post(
        f"/console/keys/{key_id}",
        {"csrf_token": token, "op": "update_primary", "tab": "regionality", "primary_region": "us-west-2"},
    )
    assert change.status == 400 and "does not exist" in change.text
