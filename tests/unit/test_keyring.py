"""The keyring and the barrier (crypto/envelope.py) and the stored keyring (service/trust/keyring.py,
server/root_of_trust.py) on a SQLite store: seals name their version, values sealed before keyrings
still open, rotation versions coexist, the barrier refuses every use while sealed, a wrong root key
file is refused at start, and an installation older than keyrings adopts its root key file."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from openkms.config import Settings
from openkms.crypto.envelope import AesKek, Keyring, RootKey, SealError, ServiceSealed, sealed_version
from openkms.server.root_of_trust import open_trust
from openkms.service.trust.keyring import RootOfTrustError, stored
from openkms.service.trust.sealed_columns import SEALED_COLUMNS
from openkms.storage import schema
from openkms.storage.store import Store


def legacy_seal(raw: bytes, purpose: str, ident: str, plaintext: bytes) -> bytes:
    """A value as releases before keyrings sealed it: 01 ‖ nonce ‖ AES-GCM(raw) bound to purpose/ident."""
    nonce = os.urandom(12)
    aad = b"openkms/seal/v1\x00" + purpose.encode() + b"\x00" + ident.encode()
    return b"\x01" + nonce + AESGCM(raw).encrypt(nonce, plaintext, aad)


def test_new_seals_name_the_active_version_and_bind_the_record() -> None:
    ring = Keyring.new().with_new_version()
    root = RootKey.from_keyring(ring)
    sealed = root.seal("key-material", "us-east-1/k/m", b"secret")
    assert sealed[:1] == b"\x02" and struct.unpack(">I", sealed[1:5])[0] == 2 == sealed_version(sealed)
    assert root.unseal("key-material", "us-east-1/k/m", sealed) == b"secret"
    for purpose, ident in (("key-material", "us-east-1/k/other"), ("access-key-secret", "us-east-1/k/m")):
        with pytest.raises(SealError):
            root.unseal(purpose, ident, sealed)
    tampered = sealed[:1] + struct.pack(">I", 1) + sealed[5:]  # claims another version
    with pytest.raises(SealError):
        root.unseal("key-material", "us-east-1/k/m", tampered)


def test_values_sealed_before_keyrings_open_under_the_adopted_keyring() -> None:
    raw = os.urandom(32)
    old = legacy_seal(raw, "access-key-secret", "AKIA1", b"s3cret")
    root = RootKey.from_keyring(Keyring.adopted(raw))
    assert sealed_version(old) == 1
    assert root.unseal("access-key-secret", "AKIA1", old) == b"s3cret"
    assert RootKey(raw).unseal("access-key-secret", "AKIA1", old) == b"s3cret"
    with pytest.raises(SealError):
        RootKey(os.urandom(32)).unseal("access-key-secret", "AKIA1", old)


def test_rotation_keeps_old_versions_until_destroyed_and_derived_values_stable() -> None:
    ring = Keyring.new()
    before = RootKey.from_keyring(ring)
    sealed_v1 = before.seal("p", "i", b"x")
    rotated = ring.with_new_version()
    after = RootKey.from_keyring(rotated)
    assert after.unseal("p", "i", sealed_v1) == b"x"
    resealed = after.reseal("p", "i", sealed_v1)
    assert resealed is not None and sealed_version(resealed) == 2
    assert after.reseal("p", "i", resealed) is None  # already under the active version
    assert (after.fingerprint, after.token_key(), after.material_id("k", b"m")) == (
        before.fingerprint,
        before.token_key(),
        before.material_id("k", b"m"),
    )
    destroyed = RootKey.from_keyring(rotated.without({1}))
    with pytest.raises(SealError):
        destroyed.unseal("p", "i", sealed_v1)
    assert destroyed.unseal("p", "i", resealed) == b"x"
    with pytest.raises(ValueError):
        rotated.without({2})


def test_the_keyring_round_trips_and_a_wrong_kek_or_tampering_is_refused() -> None:
    ring = Keyring.new().with_new_version()
    kek = AesKek(os.urandom(32))
    wrapped = kek.wrap(ring.to_bytes())
    assert Keyring.from_bytes(kek.unwrap(wrapped)) == ring
    assert ring.to_bytes() not in wrapped and ring.keys[1] not in wrapped
    with pytest.raises(SealError):
        AesKek(os.urandom(32)).unwrap(wrapped)
    with pytest.raises(SealError):
        kek.unwrap(wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
    assert "derive" not in repr(ring) and str(ring.keys[1]) not in repr(ring)


def test_a_sealed_barrier_refuses_every_use() -> None:
    root = RootKey.sealed_barrier()
    assert root.sealed
    for use in (
        lambda: root.seal("p", "i", b"x"),
        lambda: root.unseal("p", "i", b"\x02" + b"\x00" * 40),
        root.token_key,
        lambda: root.material_id("k", b"m"),
        lambda: root.fingerprint,
    ):
        with pytest.raises(ServiceSealed):
            use()
    root.load(Keyring.new())
    assert not root.sealed and root.unseal("p", "i", root.seal("p", "i", b"x")) == b"x"
    root.drop()
    assert root.sealed


def test_first_start_makes_a_keyring_wrapped_by_the_file_and_a_wrong_file_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    store = Store(settings.db_url)
    trust = open_trust(store, settings)
    assert trust.source == "file" and not trust.sealed
    row = stored(store)
    assert row is not None and row.source == "file" and row.generation == 1
    raw = (tmp_path / "root.key").read_bytes()
    assert trust.root.keyring.keys[1] != raw  # a new installation's keys are not the file
    sealed = trust.root.seal("p", "i", b"x")
    again = open_trust(store, settings)  # a restart
    assert again.root.unseal("p", "i", sealed) == b"x"
    (tmp_path / "root.key").write_bytes(os.urandom(32))
    with pytest.raises(RootOfTrustError, match="does not open"):
        open_trust(store, settings)
    os.remove(tmp_path / "root.key")
    with pytest.raises(RootOfTrustError, match="does not exist"):
        open_trust(store, settings)
    with pytest.raises(RootOfTrustError, match="root of trust is file"):
        open_trust(store, Settings(data_dir=tmp_path, root_key_source="pkcs11"))
    store.close()


def _legacy_install(tmp_path: Path) -> tuple[Settings, Store, bytes, bytes]:
    """A store as a release before keyrings left it: rows sealed directly under the root key file."""
    settings = Settings(data_dir=tmp_path)
    raw = os.urandom(32)
    fd = os.open(tmp_path / "root.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, raw)
    os.close(fd)
    store = Store(settings.db_url)
    sealed = legacy_seal(raw, "access-key-secret", "AKIALEGACY", b"old-secret")
    with store.engine.begin() as conn:
        conn.execute(schema.accounts.insert().values(account_id="111122223333", created_at=1.0))
        conn.execute(
            schema.access_keys.insert().values(
                access_key_id="AKIALEGACY",
                account_id="111122223333",
                user_name="admin",
                secret_sealed=sealed,
                status="Active",
                created_at=1.0,
            )
        )
    return settings, store, raw, sealed


def test_an_installation_older_than_keyrings_adopts_its_root_key_file(tmp_path: Path) -> None:
    settings, store, raw, sealed = _legacy_install(tmp_path)
    trust = open_trust(store, settings)
    assert trust.root.unseal("access-key-secret", "AKIALEGACY", sealed) == b"old-secret"
    assert trust.root.keyring == Keyring.adopted(raw)
    assert stored(store) is not None
    store.close()


def test_a_wrong_root_key_file_is_not_adopted(tmp_path: Path) -> None:
    settings, store, _raw, _sealed = _legacy_install(tmp_path)
    (tmp_path / "root.key").write_bytes(os.urandom(32))
    with pytest.raises(RootOfTrustError, match="does not open"):
        open_trust(store, settings)
    assert stored(store) is None  # nothing recorded: the right file can still be adopted
    store.close()


def test_every_sealed_column_is_listed() -> None:
    """Every binary column named *sealed is re-sealed by a rotation (and the purposes are distinct)."""
    found = {
        (table.name, column.name)
        for table in schema.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, sa.LargeBinary) and column.name.endswith("sealed")
    }
    listed = {(c.table, c.column) for c in SEALED_COLUMNS}
    assert found == listed
    assert len({c.purpose for c in SEALED_COLUMNS}) == len(SEALED_COLUMNS)
    for c in SEALED_COLUMNS:
        table = schema.metadata.tables[c.table]
        assert set(c.ident) <= set(c.keys) <= set(table.columns.keys())
        assert {col.name for col in table.primary_key.columns} <= set(c.keys)
