"""The console's Region: the Region selector in the header, the Region in every address the console
makes (``?region=``, so that a link opens the same view), the session keeping the Region it was
switched to, and the key list, key pages, wizard and event history following it. Over HTTP: a Region
the server does not answer for, or no Region name at all, is an error page that shows nothing of it."""

from __future__ import annotations

import html
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.conftest import Server, launch
from tests.e2e.console.conftest import Shots, sign_in
from tests.e2e.console.http import ConsoleHttp

CURRENT = '<a href="/console/keys?region={0}" aria-current="true">'
CONSOLE_ADDRESS = re.compile(r'(?:href|action)="(/console(?:/[^"]*)?)"')


def console_addresses(page_html: str) -> list[str]:
    """The addresses into the console (the static files aside) of a page's links and forms, the
    Region menu's links (each to its own Region) aside."""
    outside_menu = re.sub(
        r'<nav class="popover-body" aria-label="Region">.*?</nav>', "", page_html, flags=re.S
    )
    found = [html.unescape(a) for a in CONSOLE_ADDRESS.findall(outside_menu)]
    return [a for a in found if not a.startswith("/console/static/")]


def choose_region(page: Any, region: str) -> None:
    """Open the Region menu of the header and choose a Region."""
    if not page.locator("details.region-menu").evaluate("menu => menu.open"):
        page.locator("details.region-menu > summary").click()
    page.get_by_role("navigation", name="Region").get_by_role("link", name=re.compile(rf" {region}$")).click()


def region_shown(page: Any, region: str) -> None:
    expect(page.locator("details.region-menu > summary")).to_have_text(re.compile(rf"{region}$"))


def key_with_alias(server: Server, region: str, alias: str) -> str:
    kms = server.client(region=region)
    key_id: str = kms.create_key(Description=f"key in {region}")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=f"alias/{alias}", TargetKeyId=key_id)
    return key_id


def test_region_selector_links_and_wizard(console_server: Server, new_page: Any) -> None:
    server = console_server
    suffix = uuid.uuid4().hex[:6]
    east_alias, west_alias = f"east-{suffix}", f"west-{suffix}"
    east = key_with_alias(server, "us-east-1", east_alias)
    west = key_with_alias(server, "us-west-2", west_alias)

    page = new_page()
    shot = Shots(page, "region-selector")
    sign_in(page, server, server.access_key, server.secret_key)
    expect(page).to_have_url(re.compile(r"/console/keys\?region=us-east-1$"))
    region_shown(page, "us-east-1")
    expect(page.get_by_role("link", name=east_alias)).to_be_visible()
    expect(page.get_by_role("link", name=west_alias)).to_have_count(0)
    shot("keys in us-east-1")

    page.locator("details.region-menu > summary").click()
    shot("region menu")
    choose_region(page, "us-west-2")
    expect(page).to_have_url(re.compile(r"/console/keys\?region=us-west-2$"))
    region_shown(page, "us-west-2")
    expect(page.get_by_role("link", name=west_alias)).to_be_visible()
    expect(page.get_by_role("link", name=east_alias)).to_have_count(0)
    shot("keys in us-west-2")
    addresses = console_addresses(page.content())
    assert addresses and all("region=us-west-2" in a for a in addresses), addresses

    page.get_by_role("link", name=west_alias).click()
    expect(page.get_by_role("heading", name=west_alias, exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/console/keys/{west}\?region=us-west-2$"))
    expect(page.get_by_text(f"arn:aws:kms:us-west-2:{server.account_id}:key/{west}")).to_be_visible()
    shot("key page in us-west-2")
    key_url = page.url

    # The address is the view: another browser signed in (in us-east-1) opens the same key, and its
    # session is in us-west-2 from then on.
    other = new_page()
    sign_in(other, server, server.access_key, server.secret_key)
    region_shown(other, "us-east-1")
    other.goto(key_url)
    expect(other.get_by_role("heading", name=west_alias, exact=True)).to_be_visible()
    region_shown(other, "us-west-2")
    other.goto(f"{server.endpoint}/console/keys")  # no Region in the address: the session's
    expect(other.get_by_role("link", name=west_alias)).to_be_visible()
    expect(other.get_by_role("link", name=east_alias)).to_have_count(0)
    # A key of another Region is not found in this one.
    other.goto(f"{server.endpoint}/console/keys/{east}?region=us-west-2")
    expect(other.get_by_role("alert")).to_contain_text("Not found")

    # The wizard creates in the selected Region.
    page.get_by_role("link", name="Customer managed keys").first.click()
    page.get_by_role("link", name="Create key").click()
    expect(page.get_by_role("heading", name="Configure key")).to_be_visible()
    expect(page).to_have_url(re.compile(r"region=us-west-2"))
    page.get_by_role("button", name="Next").click()
    made_alias = f"made-west-{suffix}"
    page.get_by_label("Alias").fill(made_alias)
    for _ in range(3):
        page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    page.get_by_role("button", name="Finish").click()
    expect(page.get_by_role("status").filter(has_text="Your AWS KMS key was created")).to_be_visible()
    expect(page).to_have_url(re.compile(r"region=us-west-2"))
    made = server.client(region="us-west-2").describe_key(KeyId=f"alias/{made_alias}")["KeyMetadata"]
    assert made["Arn"].startswith("arn:aws:kms:us-west-2:")
    shot("created in us-west-2")

    # The event history follows the Region too.
    page.get_by_role("link", name="Event history").click()
    expect(page).to_have_url(re.compile(r"/console/audit\?region=us-west-2$"))
    table = page.locator("table.events")
    expect(table.get_by_role("link", name=west)).not_to_have_count(0)
    expect(table.get_by_role("link", name=east)).to_have_count(0)
    shot("event history in us-west-2")
    choose_region(page, "us-east-1")
    expect(page).to_have_url(re.compile(r"/console/audit\?region=us-east-1$"))
    expect(table.get_by_role("link", name=east)).not_to_have_count(0)
    expect(table.get_by_role("link", name=west)).to_have_count(0)


def test_region_is_untrusted_input(console_server: Server) -> None:
    client = ConsoleHttp(console_server.endpoint)
    assert client.sign_in(console_server.access_key, console_server.secret_key).status == 303
    for value, shown in (
        ("xx-nowhere", True),  # not a Region name
        ("a" * 33, False),  # too long to be one
        ('<script>alert("x")</script>', False),
        ("us-east-1\x00", False),
    ):
        answer = client.get(
            "/console/keys?region=" + re.sub(r"[^a-z0-9-]", lambda m: f"%{ord(m[0]):02X}", value)
        )
        assert answer.status == 400, (value, answer.status)
        assert "This Region is not available" in answer.text
        assert "<script>alert" not in answer.text
        assert (f"“{value}”" in answer.text) == shown
    # Nothing changed: the session is still in its Region, and a POST naming a bad Region does nothing.
    page = client.get("/console/keys")
    assert page.status == 200 and CURRENT.format("us-east-1") in page.text
    token = page.csrf()
    refused = client.post("/console/preferences?region=xx-nowhere", {"csrf_token": token, "page_size": "10"})
    assert refused.status == 400
    # A POST in another Region without the token is refused before its Region is looked at.
    assert client.post("/console/preferences?region=eu-west-1", {"page_size": "10"}).status == 403
    assert CURRENT.format("us-east-1") in client.get("/console/keys").text
    # A form posted to another Region acts there and comes back there.
    moved = client.post("/console/preferences?region=eu-west-1", {"csrf_token": token, "page_size": "10"})
    assert moved.status == 303 and moved.header("location") == "/console/keys?region=eu-west-1"


def test_configured_regions(workdir: Path) -> None:
    """A server with a list of Regions offers those only, and refuses the others."""
    server = launch(
        Path(tempfile.mkdtemp(dir=workdir, prefix="console-regions-")),
        None,
        extra_args=["--region", "eu-central-1", "--region", "eu-west-3"],
    )
    try:
        client = ConsoleHttp(server.endpoint)
        assert client.sign_in(server.access_key, server.secret_key, region="eu-central-1").status == 303
        page = client.get("/console/keys")
        menu = page.text.split('aria-label="Region"', 1)[1].split("</nav>")[0]
        offered = re.findall(r"\?region=([a-z0-9-]+)", menu)
        assert offered == ["eu-central-1", "eu-west-3"]
        assert client.get("/console/keys?region=eu-west-3").status == 200
        assert client.get("/console/keys?region=us-east-1").status == 400
    finally:
        server.stop()


def test_region_is_kept_in_the_session_on_both_backends(server: Server) -> None:
    """A Region switched to on one server process is the session's on another one of the database."""
    twin = Server(data_dir=server.data_dir, database_url=server.database_url)
    twin.start()
    try:
        west = server.client(region="eu-west-1").create_key()["KeyMetadata"]["KeyId"]
        one = ConsoleHttp(server.endpoint)
        assert one.sign_in(server.access_key, server.secret_key).status == 303
        assert one.get("/console/keys?region=eu-west-1").status == 200
        two = ConsoleHttp(twin.endpoint, cookies=dict(one.cookies))
        page = two.get("/console/keys")
        assert page.status == 200 and CURRENT.format("eu-west-1") in page.text and west in page.text
        # The address wins over the session, and the last one named is the session's from then on.
        assert west not in two.get("/console/keys?region=us-east-1").text
        assert CURRENT.format("us-east-1") in one.get("/console/keys").text
    finally:
        twin.stop()
