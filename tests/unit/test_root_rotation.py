"""Root key rotation (service/trust/rotation.py) on a SQLite store: start adds a version and refuses a
second start, the resealer waits for the new version to propagate, re-seals every value, waits out the
grace period and destroys the old version; a write between its read and its replace wins; a resealer
started afresh (after a crash) finishes the work; a value nothing opens stops the rotation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from openkms.config import Settings
from openkms.crypto.envelope import Kek, RootKey, sealed_version
from openkms.server.root_of_trust import Trust, open_trust
from openkms.service.identity import principals
from openkms.service.identity.principals import SECRET_PURPOSE
from openkms.service.trust import keyring, rotation
from openkms.service.trust.sealed_columns import SEALED_COLUMNS
from openkms.storage.store import Store
from tests.unit.test_keyring import _legacy_install

T0 = 1_800_000_000.0
ACCESS_KEYS = next(c for c in SEALED_COLUMNS if c.table == "access_keys")


@dataclass
class Install:
    store: Store
    trust: Trust
    kek: Kek
    secrets: dict[str, str]  # access key id -> secret
    clock: list[float]
    settings: Settings

    def now(self) -> float:
        return self.clock[0]

    def resealer(self) -> rotation.Resealer:
        return rotation.Resealer(self.store, lambda: self.kek, self.now)

    def stored_values(self) -> dict[str, bytes]:
        with self.store.read() as tx:
            rows = tx.sealed_values(ACCESS_KEYS.table, ACCESS_KEYS.keys, ACCESS_KEYS.column, None, 10_000)
        return {key[0]: sealed for key, sealed in rows}

    def versions(self) -> set[int | None]:
        found: set[int | None] = set()
        with self.store.read() as tx:
            for c in SEALED_COLUMNS:
                rows = tx.sealed_values(c.table, c.keys, c.column, None, 10_000)
                found |= {sealed_version(v) for _, v in rows}
        return found


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Install]:
    settings = Settings(data_dir=tmp_path)
    store = Store(settings.db_url)
    trust = open_trust(store, settings)
    assert trust.kek is not None
    secrets = {}
    for _ in range(25):
        new = principals.create_account(store, trust.root, T0)
        secrets[new.access_key_id] = new.secret_access_key.reveal()
    yield Install(store, trust, trust.kek, secrets, [T0], settings)
    store.close()


def opens_everything(install: Install, root: RootKey) -> None:
    values = install.stored_values()
    assert set(values) == set(install.secrets)
    for akid, sealed in values.items():
        assert root.unseal(SECRET_PURPOSE, akid, sealed).decode() == install.secrets[akid]


def run(resealer: rotation.Resealer, limit: int, steps: int = 1000) -> rotation.Step:
    for _ in range(steps):
        step = resealer.step(limit)
        if not step.running or step.idle:
            return step
    raise AssertionError("the resealer never stopped")


def run_to_end(install: Install, resealer: rotation.Resealer, limit: int) -> rotation.Step:
    """Steps, letting a second pass when idle, until the rotation is no longer running."""
    for _ in range(100):
        step = run(resealer, limit)
        if not step.running:
            return step
        install.clock[0] += 1
    raise AssertionError("the rotation never finished")


def test_a_rotation_reseals_everything_then_destroys_the_old_version(install: Install) -> None:
    row = rotation.start(install.store, install.kek, install.now())
    assert (row.rotation_state, row.rotation_started, row.rotation_resealed) == ("running", T0, 0)
    assert row.rotation_total == 25
    ring = keyring.open_keyring(install.store, install.kek)
    assert sorted(ring.keys) == [1, 2] and ring.active == 2
    with pytest.raises(rotation.RotationRunning, match="already running"):
        rotation.start(install.store, install.kek, install.now())
    # A process that reloaded seals under the new version at once.
    install.trust.reload()
    assert sealed_version(install.trust.root.seal("p", "i", b"x")) == 2

    resealer = install.resealer()
    step = resealer.step(10)
    assert step.idle and install.versions() == {1}  # the new version is still propagating
    install.clock[0] += rotation.PROPAGATION_SECONDS
    step = run(resealer, 10)
    assert step.idle and step.running  # every value re-sealed, the grace period still running
    assert install.versions() == {2}
    assert rotation.current(install.store).rotation_resealed == 25
    assert sorted(keyring.open_keyring(install.store, install.kek).keys) == [1, 2]
    install.clock[0] = T0 + rotation.GRACE_SECONDS
    step = run(resealer, 10)
    assert not step.running and step.row is not None and step.row.rotation_state == "done"
    assert (step.row.rotation_resealed, step.row.rotation_total) == (25, 25)
    ring = keyring.open_keyring(install.store, install.kek)
    assert sorted(ring.keys) == [2] and ring.active == 2
    opens_everything(install, RootKey.from_keyring(ring))
    # A second rotation may start once the first is done.
    again = rotation.start(install.store, install.kek, install.now())
    assert again.rotation_state == "running" and again.rotation_total == 25
    assert sorted(keyring.open_keyring(install.store, install.kek).keys) == [2, 3]


def test_a_write_between_read_and_replace_wins_and_is_resealed_by_a_later_pass(install: Install) -> None:
    stale = RootKey.from_keyring(install.trust.root.keyring)  # a process that has not reloaded yet
    rotation.start(install.store, install.kek, install.now())
    ring = keyring.open_keyring(install.store, install.kek)
    target = sorted(install.secrets)[3]
    written: list[bytes] = []

    class RacedRoot(RootKey):
        """The resealer's barrier; while it re-seals the first value, another process rewrites one."""

        def reseal(self, purpose: str, ident: str, sealed: bytes) -> bytes | None:
            if not written:
                current = install.stored_values()[target]
                written.append(stale.seal(SECRET_PURPOSE, target, b"rewritten meanwhile"))
                with install.store.write() as tx:
                    c = ACCESS_KEYS
                    assert tx.replace_sealed(c.table, c.keys, c.column, (target,), current, written[0])
            return super().reseal(purpose, ident, sealed)

    root = RacedRoot.from_keyring(ring)
    cursor = rotation.Cursor(SEALED_COLUMNS.index(ACCESS_KEYS))
    batch = rotation.reseal_batch(install.store, root, cursor, 100)
    assert (batch.resealed, batch.lost) == (24, 1)
    values = install.stored_values()
    assert values[target] == written[0] and sealed_version(values[target]) == 1  # the other write won
    assert rotation.remaining(install.store, 2) == 1
    assert not rotation.finish(install.store, install.kek, 2, T0 + 60)  # a value still needs version 1
    assert sorted(keyring.open_keyring(install.store, install.kek).keys) == [1, 2]

    install.clock[0] = T0 + rotation.GRACE_SECONDS
    resealer = install.resealer()
    step = run(resealer, 100)
    # The pass re-sealing the rewritten value is followed by a clean one, which must last a while.
    assert step.idle and step.running and install.versions() == {2}
    install.clock[0] += rotation.SETTLE_SECONDS
    step = run(resealer, 100)
    assert step.row is not None and step.row.rotation_state == "done"
    final = RootKey.from_keyring(keyring.open_keyring(install.store, install.kek))
    assert sorted(final.keyring.keys) == [2]
    assert final.unseal(SECRET_PURPOSE, target, install.stored_values()[target]) == b"rewritten meanwhile"


def test_a_resealer_started_afresh_after_a_crash_finishes_the_rotation(install: Install) -> None:
    rotation.start(install.store, install.kek, install.now())
    install.clock[0] += rotation.PROPAGATION_SECONDS
    first = install.resealer()
    for _ in range(3):
        first.step(4)  # then the process dies: its cursor is lost, the row says running
    row = rotation.current(install.store)
    assert row.rotation_state == "running" and row.rotation_resealed == 12
    assert rotation.remaining(install.store, 2) == 13
    install.clock[0] = T0 + rotation.GRACE_SECONDS
    step = run_to_end(install, install.resealer(), 4)
    assert step.row is not None and step.row.rotation_state == "done"
    assert install.versions() == {2}
    opens_everything(install, RootKey.from_keyring(keyring.open_keyring(install.store, install.kek)))


def test_a_value_nothing_opens_stops_the_rotation_before_any_version_is_destroyed(install: Install) -> None:
    rotation.start(install.store, install.kek, install.now())
    target = sorted(install.secrets)[0]
    damaged = bytearray(install.stored_values()[target])
    damaged[-1] ^= 1
    with install.store.write() as tx:
        tx.replace_sealed(
            ACCESS_KEYS.table,
            ACCESS_KEYS.keys,
            ACCESS_KEYS.column,
            (target,),
            install.stored_values()[target],
            bytes(damaged),
        )
    install.clock[0] = T0 + rotation.GRACE_SECONDS
    with pytest.raises(rotation.RotationError, match=f"access_keys.secret_sealed for {target}"):
        run(install.resealer(), 100)
    assert rotation.current(install.store).rotation_state == "running"
    assert sorted(keyring.open_keyring(install.store, install.kek).keys) == [1, 2]


def test_a_sealed_process_does_nothing(install: Install) -> None:
    rotation.start(install.store, install.kek, install.now())
    install.clock[0] = T0 + rotation.GRACE_SECONDS
    step = rotation.Resealer(install.store, lambda: None, install.now).step(100)
    assert step.idle and step.running and install.versions() == {1}


def test_a_process_meeting_a_version_it_has_not_loaded_reloads_the_keyring(install: Install) -> None:
    other = open_trust(install.store, install.settings)  # another process, whose change feed is late
    rotation.start(install.store, install.kek, install.now())
    install.trust.reload()
    sealed = install.trust.root.seal("key-material", "us-east-1/k/m", b"made under version 2")
    assert sorted(other.root.keyring.keys) == [1]
    assert other.root.unseal("key-material", "us-east-1/k/m", sealed) == b"made under version 2"
    assert sorted(other.root.keyring.keys) == [1, 2] and other.root.keyring.active == 2


def test_a_reseal_by_another_resealer_during_a_clean_pass_means_another_pass(install: Install) -> None:
    stale = RootKey.from_keyring(install.trust.root.keyring)
    rotation.start(install.store, install.kek, install.now())
    install.clock[0] += rotation.PROPAGATION_SECONDS
    first, second = install.resealer(), install.resealer()
    assert run(first, 100).idle  # all re-sealed, then a clean pass; waiting for the grace period
    target = sorted(install.secrets)[5]
    current = install.stored_values()[target]
    rewritten = stale.seal(SECRET_PURPOSE, target, b"w")  # by a process that had not reloaded
    with install.store.write() as tx:
        c = ACCESS_KEYS
        tx.replace_sealed(c.table, c.keys, c.column, (target,), current, rewritten)
    assert run(second, 100).idle and install.versions() == {2}  # the other resealer re-sealed it
    install.clock[0] = T0 + rotation.GRACE_SECONDS + rotation.SETTLE_SECONDS
    step = first.step(100)  # its clean pass saw a re-seal happen: it walks again rather than finishing
    assert step.running and sorted(keyring.open_keyring(install.store, install.kek).keys) == [1, 2]
    step = run_to_end(install, first, 100)
    assert step.row is not None and step.row.rotation_state == "done"


def test_an_installation_older_than_keyrings_rotates_off_its_root_key_file(tmp_path: Path) -> None:
    settings, store, raw, sealed = _legacy_install(tmp_path)
    trust = open_trust(store, settings)
    assert trust.kek is not None
    clock = [T0]
    rotation.start(store, trust.kek, T0)
    clock[0] = T0 + rotation.GRACE_SECONDS
    resealer = rotation.Resealer(store, lambda: trust.kek, lambda: clock[0])
    assert run(resealer, 100).idle  # re-sealed, and a clean pass just begun
    clock[0] += rotation.SETTLE_SECONDS
    step = run(resealer, 100)
    assert step.row is not None and step.row.rotation_state == "done"
    ring = keyring.open_keyring(store, trust.kek)
    assert sorted(ring.keys) == [2] and raw not in ring.keys.values()
    with store.read() as tx:
        ((_, value),) = tx.sealed_values("access_keys", ("access_key_id",), "secret_sealed", None, 10)
    assert value[:1] == b"\x02" and sealed_version(value) == 2 and value != sealed
    assert RootKey.from_keyring(ring).unseal(SECRET_PURPOSE, "AKIALEGACY", value) == b"old-secret"
    store.close()
