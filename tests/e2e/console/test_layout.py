"""The console with the keyboard only, and on a narrow window (about 400 px): nothing needs a mouse,
and no page is wider than the window (wide tables scroll inside their own box)."""

from __future__ import annotations

import uuid
from typing import Any

from playwright.sync_api import expect

from tests.conftest import Server
from tests.e2e.console.conftest import Shots, sign_in


def tab_to(page: Any, name: str, limit: int = 40) -> None:
    """Press Tab until the focused element's text or label is ``name``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " return (e.getAttribute('aria-label') || e.innerText || e.value || '').trim(); }"
        )
        if focused == name:
            return
    raise AssertionError(f"could not reach {name!r} with the Tab key")


def test_keyboard_only(console_server: Server, new_page: Any) -> None:
    page = new_page()
    page.goto(f"{console_server.endpoint}/console/")
    page.get_by_label("Access key ID").focus()
    page.keyboard.type(console_server.access_key)
    page.keyboard.press("Tab")
    page.keyboard.type(console_server.secret_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Customer managed keys")).to_be_visible()
    tab_to(page, "Create key")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Configure key")).to_be_visible()
    page.get_by_label("Encrypt and decrypt").focus()
    page.keyboard.press("Enter")  # Enter submits the step: Next
    expect(page.get_by_role("heading", name="Add labels")).to_be_visible()
    alias = "keyboard-" + uuid.uuid4().hex[:6]
    expect(page.get_by_label("Alias")).to_be_focused()  # the step's first field has the focus
    page.keyboard.type(alias)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Define key administrative permissions")).to_be_visible()
    tab_to(page, "Next")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Define key usage permissions")).to_be_visible()
    tab_to(page, "Next")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    tab_to(page, "Finish")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Your AWS KMS key was created")).to_be_visible()
    # The Key actions menu opens from the keyboard.
    tab_to(page, "Key actions")
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Disable")).to_be_visible()
    tab_to(page, "Disable")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="The key was disabled.")).to_be_visible()


def test_narrow_window(console_server: Server, new_page: Any) -> None:
    kms = console_server.client()
    key_id = kms.create_key(Origin="EXTERNAL", Description="narrow")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/narrow-" + uuid.uuid4().hex[:6], TargetKeyId=key_id)
    page = new_page(width=400, height=800)
    shot = Shots(page, "narrow-window")
    sign_in(page, console_server, console_server.access_key, console_server.secret_key)
    pages = {
        "key list": "/console/keys",
        "create key": "/console/keys/create",
        "key page": f"/console/keys/{key_id}",
        "key policy json": f"/console/keys/{key_id}?tab=policy&view=json",
        "import key material": f"/console/keys/{key_id}/import",
        "schedule deletion": f"/console/keys/{key_id}/delete",
        "event history": "/console/audit",
    }
    for name, path in pages.items():
        page.goto(console_server.endpoint + path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 400, f"{name} is {width} px wide in a 400 px window"
        shot(name)
    page.goto(f"{console_server.endpoint}/console/signin")
    shot("sign in")
