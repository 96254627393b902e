"""Secret values never show in a ``repr`` or ``str``: the :class:`Secret` holder itself, and every object
holding one (new access keys, cached credentials, the parsed Authorization header's session token,
console sessions, the key cache's unsealed material, the root key), built the way the service builds
them, against a real SQLite store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from openkms.auth.policy import PolicyCache
from openkms.auth.sigv4 import parse_authorization
from openkms.console.sessions import SessionStore
from openkms.crypto.envelope import RootKey
from openkms.crypto.keypair_pool import KeyPairPool
from openkms.crypto.secret import Secret
from openkms.service.identity.credentials import CredentialCache
from openkms.service.identity.policies import IdentityPolicyCache
from openkms.service.identity.principals import NewAccessKey, create_account
from openkms.service.kms import keys
from openkms.service.kms.authz import KmsAuthorizer
from openkms.service.kms.context import RequestContext
from openkms.service.kms.core import KmsCore
from openkms.service.kms.keycache import KeyCache
from openkms.storage.store import Store

NOW = 1_700_000_000.0


class FixedClock:
    def now(self) -> float:
        return NOW


@dataclass
class Service:
    store: Store
    root: RootKey
    raw_root: bytes
    admin: NewAccessKey


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}", FixedClock())
    raw = os.urandom(32)
    root = RootKey(raw)
    yield Service(store, root, raw, create_account(store, root, NOW))
    store.close()


def shows(obj: object, secret: str | bytes) -> bool:
    """Whether ``secret`` appears in the repr or str of ``obj``, as text, bytes literal or hex."""
    texts = [repr(obj), str(obj)]
    forms = [secret] if isinstance(secret, str) else [repr(secret), secret.hex(), secret.decode("latin-1")]
    return any(form in text for text in texts for form in forms)


def test_a_secret_shows_only_stars_compares_in_constant_time_and_is_not_hashable() -> None:
    value = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    secret = Secret(value)
    assert repr(secret) == str(secret) == f"{secret}" == "Secret(***)"
    assert secret.reveal() is value  # no copy
    assert secret == Secret(value) and secret != Secret(value + "x")
    assert Secret(b"abc") != Secret("abc")  # bytes and text are different secrets
    assert secret != value  # only a secret equals a secret
    with pytest.raises(TypeError):
        hash(secret)


def test_a_new_access_key_and_its_cached_credentials(service: Service) -> None:
    new = service.admin
    secret = new.secret_access_key.reveal()
    assert len(secret) == 40 and not shows(new, secret)
    creds = CredentialCache(service.store, service.root).load(new.access_key_id)
    assert creds is not None and creds.secret.reveal() == secret
    assert not shows(creds, secret)


def test_the_session_token_of_a_request() -> None:
    token = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQDEXAMPLE"  # noqa: S105
    headers = {
        "authorization": "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20240101/us-east-1/kms/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=" + "0" * 64,
        "host": "localhost",
        "x-amz-date": "20240101T000000Z",
        "x-amz-security-token": token,
    }
    cred = parse_authorization(headers)
    assert cred.security_token == Secret(token)
    assert not shows(cred, token)


def test_a_console_session(service: Service) -> None:
    sessions = SessionStore(service.store, FixedClock(), idle_timeout=1800, lifetime=43200)
    session = sessions.create(service.admin.access_key_id, service.admin.account_id, "us-east-1")
    cookie = session.id.reveal()
    assert len(cookie) >= 43 and not shows(session, cookie)
    loaded = sessions.load(cookie)
    assert loaded is not None and not shows(loaded, cookie)


def test_the_key_cache_and_the_root_key(service: Service) -> None:
    authorizer = KmsAuthorizer(
        service.store, service.root.token_key, IdentityPolicyCache(service.store), PolicyCache()
    )
    core = KmsCore(
        store=service.store,
        root=service.root,
        clock=FixedClock(),
        cache=KeyCache(),
        keypairs=KeyPairPool(),
        authorizer=authorizer,
    )
    principal = CredentialCache(service.store, service.root).load(service.admin.access_key_id)
    assert principal is not None
    ctx = RequestContext(principal.principal, "us-east-1", "request-1")
    key_id = keys.create_key(core, ctx)["key_metadata"]["key_id"]
    loaded = core.load_key(ctx, "us-east-1", key_id)
    assert loaded is not None and len(loaded.secrets) == 1
    material = next(iter(loaded.secrets.values())).reveal()
    assert len(material) == 32
    assert not shows(loaded, material) and not shows(loaded.secrets, material)
    assert not shows(core, service.raw_root) and not shows(service.root, service.raw_root)
