"""External key stores in the console, in a real browser: a key store created and connected against
the server's own XKS proxy (``openkms serve --tls-self-signed`` is its own proxy), a KMS key made in it
with the wizard and its XKS configuration on the key page, Encrypt/Decrypt with boto3, then the store
disconnected, edited and (once it has no keys) deleted. Refusals (a bad proxy URI, a wrong credential,
deleting a store that has keys) are shown next to their control, and the secret access key is never in
a page, the server's log, its database or the audit trail."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import OPENKMS, Server
from tests.e2e.console.conftest import Shots, sign_in
from tests.e2e.console.http import ConsoleHttp
from tests.e2e.console.test_layout import tab_to
from tests.e2e.test_xks_proxy import start_tls

KEY_ID_IN_URL = re.compile(r"/console/keys/([0-9a-f-]{36})")
STORE_ID_IN_URL = re.compile(r"/console/keystores/(cks-[0-9a-f]{17})")


@pytest.fixture(scope="module")
def tls_server(workdir: Path) -> Iterator[Server]:
    """A console served over TLS by a server that is also its own XKS proxy."""
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="console-xks-"))
    server = start_tls(data_dir, None)
    creds = server.new_account()
    server.account_id, server.access_key, server.secret_key = (
        creds["AccountId"],
        creds["AccessKeyId"],
        creds["SecretAccessKey"],
    )
    yield server
    server.stop()


@pytest.fixture
def tls_page(browser: Any) -> Iterator[Any]:
    """A factory of pages that trust the server's self-signed certificate (dialogs are accepted)."""
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, ignore_https_errors=True)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    yield make
    for context in contexts:
        context.close()


def proxy_keystore(server: Server) -> dict[str, str]:
    """A key store at the server's own proxy (its URI path and credential), with one external key."""
    name = "ks-" + uuid.uuid4().hex[:10]
    out: dict[str, str] = server.admin("create-xks-keystore", "--name", name)
    out["key"] = "ext-" + uuid.uuid4().hex[:8]
    server.admin("create-xks-key", "--keystore", name, "--key-id", out["key"])
    return out


def endpoint(server: Server) -> str:
    return f"https://127.0.0.1:{server.port}"


def fill_store_form(page: Any, name: str, uri: str, store: dict[str, str], secret: str) -> None:
    page.get_by_label("Key store name").fill(name)
    page.get_by_label("Proxy URI endpoint").fill(uri)
    page.get_by_label("Proxy URI path").fill(store["XksProxyUriPath"])
    page.get_by_label("Access key ID").fill(store["AccessKeyId"])
    page.get_by_label("Secret access key").fill(secret)


def flash(page: Any, text: str) -> None:
    expect(page.get_by_role("status").filter(has_text=text)).to_be_visible()


def store_action(page: Any, name: str) -> None:
    page.locator("summary").filter(has_text="Key store actions").click()
    role = "link" if name in ("Edit", "Delete") else "button"
    page.get_by_role(role, name=name, exact=True).click()


def test_external_key_store_start_to_finish(tls_server: Server, tls_page: Any) -> None:
    server = tls_server
    kms = server.client()
    store = proxy_keystore(server)
    secret = store["RawSecretAccessKey"]
    wrong = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    name = "payments-" + uuid.uuid4().hex[:6]
    page = tls_page()
    shot = Shots(page, "external-key-store")
    sign_in(page, server, server.access_key, server.secret_key)
    page.get_by_role("link", name="Custom key stores").click()
    expect(page.get_by_role("heading", name="External key stores")).to_be_visible()
    shot("key store list")
    page.get_by_role("link", name="Create external key store").click()
    expect(page.get_by_role("heading", name="Create external key store")).to_be_visible()

    # A proxy URI that is not https, then one nobody answers at, then a wrong credential.
    fill_store_form(page, name, "http://127.0.0.1", store, secret)
    page.get_by_role("button", name="Create external key store").click()
    expect(page.locator("#endpoint-error")).to_contain_text("Enter the proxy URI endpoint as https://")
    expect(page.get_by_label("Secret access key")).to_have_value("")  # never sent back
    shot("bad proxy uri")
    fill_store_form(page, name, "https://127.0.0.1:1", store, secret)
    page.get_by_role("button", name="Create external key store").click()
    expect(page.locator("#endpoint-error")).to_contain_text("The proxy could not be reached")
    fill_store_form(page, name, endpoint(server), store, wrong)
    page.get_by_role("button", name="Create external key store").click()
    expect(page.locator("#secret_access_key-error")).to_contain_text("The proxy refused the credential")
    assert wrong not in page.content() and secret not in page.content()
    shot("wrong credential")

    fill_store_form(page, name, endpoint(server), store, secret)
    page.get_by_role("button", name="Create external key store").click()
    flash(page, "The external key store was created")
    found = STORE_ID_IN_URL.search(page.url)
    assert found, page.url
    store_id = found.group(1)
    expect(page.get_by_text("Disconnected", exact=True)).to_be_visible()
    shot("key store created")
    store_action(page, "Connect")
    flash(page, "The key store was connected.")
    expect(page.get_by_text("Connected", exact=True)).to_be_visible()
    shot("key store connected")
    page.get_by_role("link", name="External key stores").click()
    row = page.get_by_role("row").filter(has_text=store_id)
    expect(row).to_contain_text("Connected")

    # A KMS key in the store, from the wizard.
    page.get_by_role("link", name="Customer managed keys").click()
    page.get_by_role("link", name="Create key").click()
    page.get_by_text("Advanced options").click()
    page.get_by_label("External key store").check()
    page.get_by_role("radio", name=re.compile(name)).check()
    page.get_by_label("External key ID").fill(store["key"])
    shot("wizard external key store")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Alias").fill("xks-" + uuid.uuid4().hex[:6])
    for _ in range(3):
        page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    expect(page.get_by_text(store["key"], exact=True)).to_be_visible()
    page.get_by_role("button", name="Finish").click()
    flash(page, "Your AWS KMS key was created")
    key_match = KEY_ID_IN_URL.search(page.url)
    assert key_match, page.url
    key_id = key_match.group(1)
    page.get_by_role("link", name="Cryptographic configuration").click()
    section = page.get_by_role("region", name="External key store")
    expect(section).to_contain_text(store_id)
    expect(section).to_contain_text(name)
    expect(section).to_contain_text("Connected")
    expect(section).to_contain_text(store["key"])
    expect(page.get_by_role("link", name="Key rotation")).to_have_count(0)
    shot("key xks configuration")
    md = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert md["Origin"] == "EXTERNAL_KEY_STORE" and md["XksKeyConfiguration"] == {"Id": store["key"]}
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"console xks")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"console xks"

    # Disconnect, then deleting refuses while the store has a key; edit while disconnected.
    page.goto(f"{server.endpoint}/console/keystores/{store_id}")
    store_action(page, "Disconnect")
    flash(page, "The key store was disconnected.")
    store_action(page, "Delete")
    expect(page.get_by_role("heading", name="Delete key store")).to_be_visible()
    page.get_by_role("button", name="Delete key store").click()
    expect(page.locator("#confirm-error")).to_have_text("Confirm that you want to delete this key store.")
    page.get_by_label(re.compile("Confirm that you want to delete the key store")).check()
    page.get_by_role("button", name="Delete key store").click()
    expect(page.locator("#delete-error")).to_contain_text("The key store still has KMS keys")
    shot("delete refused")
    page.goto(f"{server.endpoint}/console/keystores/{store_id}")
    store_action(page, "Edit")
    expect(page.get_by_role("heading", name="Edit key store settings")).to_be_visible()
    expect(page.get_by_label("Secret access key")).to_have_value("")
    page.get_by_label("Key store name").fill(name + "-renamed")
    shot("edit key store")
    page.get_by_role("button", name="Save changes").click()
    flash(page, "The key store settings were saved.")
    entry = kms.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]
    assert entry["CustomKeyStoreName"] == name + "-renamed"

    # A second store without keys is deleted.
    other = proxy_keystore(server)
    other_id = kms.create_custom_key_store(
        CustomKeyStoreName="spare-" + uuid.uuid4().hex[:6],
        CustomKeyStoreType="EXTERNAL_KEY_STORE",
        XksProxyUriEndpoint=endpoint(server),
        XksProxyUriPath=other["XksProxyUriPath"],
        XksProxyAuthenticationCredential={
            "AccessKeyId": other["AccessKeyId"],
            "RawSecretAccessKey": other["RawSecretAccessKey"],
        },
        XksProxyConnectivity="PUBLIC_ENDPOINT",
    )["CustomKeyStoreId"]
    page.goto(f"{server.endpoint}/console/keystores/{other_id}/delete")
    page.get_by_label(re.compile("Confirm that you want to delete the key store")).check()
    page.get_by_role("button", name="Delete key store").click()
    flash(page, "The key store was deleted.")
    expect(page.get_by_role("row").filter(has_text=other_id)).to_have_count(0)
    shot("key store deleted")

    # The secret is nowhere: not in the event history, the server's log or its database.
    page.goto(f"{server.endpoint}/console/audit?event_name=CreateCustomKeyStore")
    assert secret not in page.content() and wrong not in page.content()
    records = subprocess.run(
        [OPENKMS, "audit", "list", "--json", "--limit", "100000", *server.data_args()],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert secret not in records and wrong not in records
    created = [r for r in json.loads(records) if r["eventName"] == "CreateCustomKeyStore"]
    assert sum(r["userAgent"].startswith("openkms-console/") for r in created) == 3  # 2 refused, 1 made
    for record in created:
        credential = (record.get("requestParameters") or {}).get("xksProxyAuthenticationCredential", {})
        assert "rawSecretAccessKey" not in credential, record
    assert server.log_path is not None
    for path in [server.log_path, *server.data_dir.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and wrong.encode() not in data, path


def test_key_store_pages_with_the_keyboard_only(tls_server: Server, tls_page: Any) -> None:
    server = tls_server
    store = proxy_keystore(server)
    page = tls_page()
    sign_in(page, server, server.access_key, server.secret_key)
    page.goto(f"{server.endpoint}/console/keystores")
    tab_to(page, "Create external key store")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Key store name")).to_be_focused()
    page.keyboard.type("kbd-" + uuid.uuid4().hex[:6])
    page.keyboard.press("Tab")  # the connectivity (Public endpoint, already chosen)
    for value in (
        endpoint(server),
        store["XksProxyUriPath"],
        store["AccessKeyId"],
        store["RawSecretAccessKey"],
    ):
        page.keyboard.press("Tab")
        page.keyboard.type(value)
    page.keyboard.press("Enter")
    flash(page, "The external key store was created")
    tab_to(page, "Key store actions")
    page.keyboard.press("Enter")
    tab_to(page, "Connect")
    page.keyboard.press("Space")
    flash(page, "The key store was connected.")


def test_key_store_pages_in_a_narrow_window(tls_server: Server, tls_page: Any) -> None:
    server = tls_server
    kms = server.client()
    store = proxy_keystore(server)
    store_id = kms.create_custom_key_store(
        CustomKeyStoreName="narrow-" + uuid.uuid4().hex[:6],
        CustomKeyStoreType="EXTERNAL_KEY_STORE",
        XksProxyUriEndpoint=endpoint(server),
        XksProxyUriPath=store["XksProxyUriPath"],
        XksProxyAuthenticationCredential={
            "AccessKeyId": store["AccessKeyId"],
            "RawSecretAccessKey": store["RawSecretAccessKey"],
        },
        XksProxyConnectivity="PUBLIC_ENDPOINT",
    )["CustomKeyStoreId"]
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    key_id = kms.create_key(Origin="EXTERNAL_KEY_STORE", CustomKeyStoreId=store_id, XksKeyId=store["key"])[
        "KeyMetadata"
    ]["KeyId"]
    mrk = kms.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    page = tls_page(width=400, height=800)
    shot = Shots(page, "narrow-window-key-stores")
    sign_in(page, server, server.access_key, server.secret_key)
    pages = {
        "key stores": "/console/keystores",
        "create key store": "/console/keystores/create",
        "key store": f"/console/keystores/{store_id}",
        "edit key store": f"/console/keystores/{store_id}/edit",
        "delete key store": f"/console/keystores/{store_id}/delete",
        "xks key": f"/console/keys/{key_id}?tab=crypto",
        "regionality": f"/console/keys/{mrk}?tab=regionality",
        "create replica keys": f"/console/keys/{mrk}/replicate",
        "key store not found": "/console/keystores/cks-00000000000000000",
    }
    for label, path in pages.items():
        page.goto(server.endpoint + path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 400, f"{label} is {width} px wide in a 400 px window"
        shot(label)


def test_key_store_forms_over_http(console_server: Server) -> None:
    server = console_server
    client = ConsoleHttp(server.endpoint)
    assert client.sign_in(server.access_key, server.secret_key).status == 303
    token = client.get("/console/keystores/create").csrf()
    for path, form in [
        ("/console/keystores/create", {"name": "x"}),
        ("/console/keystores/cks-00000000000000000", {"op": "connect"}),
        ("/console/keystores/cks-00000000000000000/edit", {"name": "x"}),
        ("/console/keystores/cks-00000000000000000/delete", {"confirm": "yes"}),
    ]:
        refused = client.post(path, form)
        assert refused.status == 403 and "The request was refused" in refused.text, path
    secret = "Zq" * 22
    odd = client.post(
        "/console/keystores/create",
        {
            "csrf_token": token,
            "name": "<script>alert(1)</script>" * 20,
            "endpoint": "https://<b>",
            "path": "/../../etc",
            "access_key_id": "<i>",
            "secret_access_key": secret,
            "connectivity": "VPC_ENDPOINT_SERVICE",
        },
    )
    assert odd.status == 400
    assert "<script>" not in odd.text and "<b>" not in odd.text and secret not in odd.text
    assert "Only public endpoint connectivity" in odd.text
    missing = client.get("/console/keystores/cks-00000000000000000")
    assert missing.status == 404 and "CustomKeyStoreNotFoundException" not in missing.text


def test_wizard_refuses_what_an_external_key_store_cannot_hold(console_server: Server) -> None:
    server = console_server
    client = ConsoleHttp(server.endpoint)
    assert client.sign_in(server.access_key, server.secret_key).status == 303
    token = client.get("/console/keys/create").csrf()
    step1 = {"csrf_token": token, "step": "1", "action": "next", "origin": "EXTERNAL_KEY_STORE"}
    answer = client.post(
        "/console/keys/create",
        {**step1, "key_type": "ASYMMETRIC", "key_usage": "SIGN_VERIFY", "key_spec": "RSA_2048"},
    )
    assert (
        answer.status == 400 and "Keys in an external key store are symmetric encryption keys" in answer.text
    )
    answer = client.post(
        "/console/keys/create",
        {**step1, "key_type": "SYMMETRIC", "key_usage": "ENCRYPT_DECRYPT", "regionality": "MULTI",
         "custom_key_store_id": "cks-00000000000000000", "xks_key_id": "a b"},
    )  # fmt: skip
    assert answer.status == 400
    assert "Keys in an external key store are single-Region keys." in answer.text
    assert "The external key ID can have up to 128 letters" in answer.text
    assert "No external key store is connected in this Region." in answer.text
