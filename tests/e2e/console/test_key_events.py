"""A key's Events tab: its last use (GetKeyLastUsage) and its own CloudTrail records with the event
history's filters; then the Region menu and the Events tab with the keyboard only, and both in a
400 px wide window."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from typing import Any

from playwright.sync_api import expect

from tests.conftest import Server
from tests.e2e.console.conftest import Shots, sign_in
from tests.e2e.console.test_layout import tab_to


def last_usage(kms: Any, key_id: str) -> dict[str, Any]:
    """The key's KeyLastUsage once the audit trail has the use (records are written just after)."""
    deadline = time.time() + 10
    while True:
        usage: dict[str, Any] | None = kms.get_key_last_usage(KeyId=key_id).get("KeyLastUsage")
        if usage is not None:
            return usage
        assert time.time() < deadline, "the use was not recorded"
        time.sleep(0.05)


def tab_until(page: Any, predicate: str, limit: int = 60) -> None:
    """Press Tab until the focused element satisfies ``predicate`` (a JavaScript function of it)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => ({predicate})(document.activeElement)"):
            return
    raise AssertionError(f"could not reach an element where {predicate} with the Tab key")


def tab_to_field(page: Any, label: str) -> None:
    """Press Tab until the focused field is the one labelled ``label``."""
    tab_until(page, f"e => e.labels && e.labels.length > 0 && e.labels[0].innerText.trim() === {label!r}")


def test_events_tab(console_server: Server, new_page: Any) -> None:
    server = console_server
    kms = server.client()
    key_id = kms.create_key(Description="events tab")["KeyMetadata"]["KeyId"]
    other_id = kms.create_key(Description="another key")["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key_id, Plaintext=b"one")
    kms.encrypt(KeyId=other_id, Plaintext=b"two")
    kms.disable_key(KeyId=other_id)
    usage = last_usage(kms, key_id)
    last_usage(kms, other_id)
    unused = kms.create_key(Description="never used")["KeyMetadata"]["KeyId"]

    page = new_page()
    shot = Shots(page, "key-events")
    sign_in(page, server, server.access_key, server.secret_key)
    page.goto(f"{server.endpoint}/console/keys/{key_id}")
    page.get_by_role("navigation", name="Key details").get_by_role("link", name="Events").click()
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"tab=events"))
    last_used = page.get_by_role("region", name="Last used")
    expect(last_used).to_contain_text("Encrypt")
    expect(last_used).to_contain_text(usage["CloudTrailEventId"])
    expect(last_used).to_contain_text(usage["Timestamp"].astimezone(dt.UTC).strftime("%b %d, %Y %H:%M"))
    table = page.locator("table.events")
    expect(table.get_by_role("cell", name="Encrypt", exact=True)).to_have_count(1)
    expect(table.get_by_role("cell", name="CreateKey", exact=True)).to_have_count(1)
    expect(table.get_by_role("link", name=key_id).first).to_be_visible()
    expect(table.get_by_role("link", name=other_id)).to_have_count(0)  # another key's events
    expect(table.get_by_role("cell", name="DisableKey", exact=True)).to_have_count(0)
    shot("events tab")

    # The event history's filters: event name, time range, read-only.
    page.get_by_label("Event name").fill("CreateKey")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"tab=events.*event_name=CreateKey"))
    expect(page.locator("tbody.event")).to_have_count(1)
    expect(table.get_by_role("cell", name="CreateKey", exact=True)).to_be_visible()
    shot("filtered by event name")
    page.get_by_label("Event name").fill("")
    page.get_by_label("Read-only events").select_option(label="Changes only")
    page.get_by_role("button", name="Apply filters").click()
    expect(table.get_by_role("cell", name="CreateKey", exact=True)).to_be_visible()
    expect(table.get_by_role("cell", name="Encrypt", exact=True)).to_have_count(0)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    page.get_by_label("Start time (UTC)").fill(future.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("No events match these filters.")).to_be_visible()
    page.get_by_role("link", name="Clear filters").click()
    expect(table.get_by_role("cell", name="Encrypt", exact=True)).to_have_count(1)

    # A key never used says so.
    page.goto(f"{server.endpoint}/console/keys/{unused}?tab=events")
    expect(page.get_by_role("region", name="Last used")).to_contain_text("Never used")
    expect(page.locator("table.events").get_by_role("cell", name="CreateKey", exact=True)).to_have_count(1)
    shot("never used")


def test_region_menu_and_events_tab_with_the_keyboard(console_server: Server, new_page: Any) -> None:
    server = console_server
    alias = "keyboard-west-" + uuid.uuid4().hex[:6]
    west = server.client(region="us-west-2")
    key_id = west.create_key()["KeyMetadata"]["KeyId"]
    west.create_alias(AliasName=f"alias/{alias}", TargetKeyId=key_id)
    west.encrypt(KeyId=key_id, Plaintext=b"keyboard")
    last_usage(west, key_id)
    page = new_page()
    shot = Shots(page, "keyboard-region-events")
    sign_in(page, server, server.access_key, server.secret_key)
    expect(page.get_by_role("heading", name="Customer managed keys")).to_be_visible()
    tab_to(page, "Region: US East (N. Virginia) us-east-1")
    page.keyboard.press("Enter")
    expect(page.get_by_role("navigation", name="Region")).to_be_visible()
    tab_to(page, "US West (Oregon) us-west-2")
    shot("region menu from the keyboard")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"region=us-west-2"))
    tab_to(page, alias)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=alias, exact=True)).to_be_visible()
    tab_to(page, "Events")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    expect(page.get_by_role("region", name="Last used")).to_contain_text("Encrypt")
    tab_to_field(page, "Event name")
    page.keyboard.type("Encrypt")
    tab_to(page, "Apply filters")
    page.keyboard.press("Space")
    expect(page).to_have_url(re.compile(r"event_name=Encrypt"))
    expect(page.locator("tbody.event")).to_have_count(1)
    tab_until(page, "e => e.matches('details.event-json > summary')")  # the event's View event
    page.keyboard.press("Enter")
    expect(page.locator("tbody.event pre")).to_contain_text('"eventName": "Encrypt"')
    shot("events tab from the keyboard")
    # Escape closes the Region menu and gives its button the focus back.
    page.locator("details.region-menu > summary").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("navigation", name="Region")).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Escape")
    expect(page.get_by_role("navigation", name="Region")).to_be_hidden()
    expect(page.locator("details.region-menu > summary")).to_be_focused()


def test_narrow_window(console_server: Server, new_page: Any) -> None:
    kms = console_server.client()
    key_id = kms.create_key(Description="narrow events")["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key_id, Plaintext=b"narrow")
    last_usage(kms, key_id)
    page = new_page(width=400, height=800)
    shot = Shots(page, "narrow-region-events")
    sign_in(page, console_server, console_server.access_key, console_server.secret_key)

    def fits(name: str) -> None:
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 400, f"{name} is {width} px wide in a 400 px window"
        shot(name)

    page.locator("details.region-menu > summary").click()
    expect(page.get_by_role("navigation", name="Region")).to_be_visible()
    fits("region menu open")
    page.goto(f"{console_server.endpoint}/console/keys/{key_id}?tab=events")
    expect(page.get_by_role("region", name="Last used")).to_contain_text("Encrypt")
    fits("events tab")
    page.get_by_text("View event").first.click()
    fits("events tab, an event's record open")
