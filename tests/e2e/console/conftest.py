"""Fixtures of the web console tests: a real ``openkms serve`` (SQLite; the session store is also tested
on PostgreSQL over HTTP), and Playwright driving the machine's Chromium (Debian's ``chromium``, which
``scripts/test`` installs; no browser download). Screenshots go to ``test-artifacts/console/``."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS, Server, launch

CHROMIUM = os.environ.get("OPENKMS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = ARTIFACTS / "console"


@pytest.fixture(scope="session")
def console_server(workdir: Path) -> Iterator[Server]:
    """The server of the browser tests (SQLite; the console has nothing backend-specific but its
    session table, which test_sessions.py checks on both backends). The test client on loopback plays
    a TLS-terminating proxy too, so loopback is a trusted proxy here."""
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="console-"))
    server = launch(data_dir, None, extra_args=["--trusted-proxies", "127.0.0.1/32"])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: scripts/test installs it (apt-get install chromium)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Shots:
    """Numbered full-page screenshots of one test, kept as artifacts."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.dir = SHOTS / name
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.glob("*.png"):
            old.unlink()
        self.count = 0

    def __call__(self, step: str) -> None:
        self.count += 1
        safe = re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")
        self.page.screenshot(path=str(self.dir / f"{self.count:02d}-{safe}.png"), full_page=True)


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A factory of pages, each in its own browser context (its own cookies); dialogs are accepted."""
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    yield make
    for context in contexts:
        context.close()


def sign_in(page: Any, server: Server, access_key_id: str, secret: str) -> None:
    page.goto(f"{server.endpoint}/console/")
    page.get_by_label("Access key ID").fill(access_key_id)
    page.get_by_label("Secret access key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
