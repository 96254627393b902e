"""Root key rotation online: two ``openkms serve`` processes on one database serve a load of Encrypt,
Decrypt and CreateKey while ``openkms operator rotate-root-key`` adds a keyring version and re-seals every
stored value; the command is killed (-9) in the middle and run again, and it finishes. Every ciphertext
made before (and during) decrypts on both processes, and a scan of the database, read here directly
with the keyring unwrapped by an independent implementation, finds every sealed value under the new
version and the keyring holding it alone. The servers' background job alone finishes a rotation too,
and a keyring wrapped by a PKCS#11 token (SoftHSM2) rotates under the token."""

from __future__ import annotations

import base64
import json
import os
import random
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openkms.service.trust.sealed_columns import SEALED_COLUMNS
from tests.conftest import OPENKMS, Server, create_pg_database, drop_pg_database, launch
from tests.e2e.storage_scan import keyring_keys, unseal_independently
from tests.softhsm import decrypt_in_token, init_token, module_path

JOBS_OFF = {"OPENKMS_SCHEDULER_INTERVAL": "3600"}  # no background re-sealing by the servers


@contextmanager
def two_nodes(
    workdir: Path, backend: str, env: dict[str, str] | None = None
) -> Iterator[tuple[Server, Server]]:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"rotation-{backend}-"))
    url = create_pg_database() if backend == "postgres" else None
    first = launch(data_dir, url, env=env or {})
    second = Server(data_dir=data_dir, database_url=url, env=env or {})
    try:
        second.start()
        second.account_id, second.access_key, second.secret_key = (
            first.account_id,
            first.access_key,
            first.secret_key,
        )
        yield first, second
    finally:
        second.stop()
        first.stop()
        if url:
            drop_pg_database(url)


def query(server: Server, sql: str) -> list[tuple[Any, ...]]:
    if server.database_url:
        import psycopg

        with psycopg.connect(server.database_url) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    db = sqlite3.connect(server.data_dir / "openkms.db")
    try:
        return list(db.execute(sql).fetchall())
    finally:
        db.close()


def keyring_row(server: Server) -> dict[str, Any]:
    names = ("wrapped", "rotation_state", "rotation_resealed", "rotation_total")
    (row,) = query(server, f"SELECT {', '.join(names)} FROM keyring")
    return dict(zip(names, row, strict=True))


def stored_keys(server: Server) -> dict[int, bytes]:
    """The keyring's versions, unwrapped here from its row with the root key file."""
    return keyring_keys((server.data_dir / "root.key").read_bytes(), bytes(keyring_row(server)["wrapped"]))


def sealed_versions(server: Server) -> dict[int, int]:
    """How many stored values each keyring version seals (every column of SEALED_COLUMNS)."""
    counts: dict[int, int] = {}
    for column in SEALED_COLUMNS:
        for (value,) in query(
            server, f"SELECT {column.column} FROM {column.table} WHERE {column.column} IS NOT NULL"
        ):
            version = 1 if bytes(value)[:1] == b"\x01" else int.from_bytes(bytes(value)[1:5], "big")
            counts[version] = counts.get(version, 0) + 1
    return counts


def check_every_value_opens_under(server: Server, keys: dict[int, bytes]) -> int:
    """Open every sealed value with ``keys`` only (an independent implementation); returns how many."""
    opened = 0
    for c in SEALED_COLUMNS:
        for row in query(
            server, f"SELECT {', '.join(c.keys)}, {c.column} FROM {c.table} WHERE {c.column} IS NOT NULL"
        ):
            key = tuple(str(v) for v in row[:-1])
            unseal_independently(keys, c.purpose, c.ident_of(key), bytes(row[-1]))
            opened += 1
    return opened


@dataclass
class Load:
    """Threads running CreateKey, Encrypt and Decrypt (each on one node, decrypted on the other) and
    Decrypt of the ciphertexts made before, until stopped; every failure is kept."""

    nodes: tuple[Server, Server]
    keys: list[str]
    before: list[tuple[bytes, bytes]]
    made: list[tuple[bytes, bytes]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    calls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, threads: int = 4) -> None:
        for i in range(threads):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, index: int) -> None:
        clients = [node.client() for node in self.nodes]
        rng = random.Random(index)
        n = 0
        while not self._stop.is_set():
            n += 1
            one, other = (clients[0], clients[1]) if n % 2 else (clients[1], clients[0])
            try:
                if n % 7 == 0:
                    self.keys.append(one.create_key()["KeyMetadata"]["KeyId"])
                plaintext = rng.randbytes(32)
                blob = one.encrypt(KeyId=rng.choice(self.keys), Plaintext=plaintext)["CiphertextBlob"]
                if other.decrypt(CiphertextBlob=blob)["Plaintext"] != plaintext:
                    self.errors.append("a ciphertext made during the rotation decrypted to something else")
                self.made.append((blob, plaintext))
                old_blob, old_plaintext = rng.choice(self.before)
                if other.decrypt(CiphertextBlob=old_blob)["Plaintext"] != old_plaintext:
                    self.errors.append("a ciphertext made before the rotation decrypted to something else")
                self.calls += 4
            except Exception as exc:  # kept and asserted empty by the test
                self.errors.append(repr(exc))


def seed(
    nodes: tuple[Server, Server], keys: int, per_key: int
) -> tuple[list[str], list[tuple[bytes, bytes]]]:
    """``keys`` keys made on both nodes and ``per_key`` ciphertexts under each."""

    def make(i: int) -> tuple[str, list[tuple[bytes, bytes]]]:
        kms = nodes[i % 2].client()
        key_id = kms.create_key(Description=f"before the rotation {i}")["KeyMetadata"]["KeyId"]
        blobs = []
        for j in range(per_key):
            plaintext = f"made before the rotation {i}/{j}".encode()
            blobs.append((kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"], plaintext))
        return key_id, blobs

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(make, range(keys)))
    return [k for k, _ in made], [b for _, bs in made for b in bs]


def check_after(
    nodes: tuple[Server, Server], ciphertexts: list[tuple[bytes, bytes]], new_version: int
) -> None:
    a, b = nodes
    # Every ciphertext decrypts on both processes.
    for node in nodes:
        kms = node.client()
        for blob, plaintext in ciphertexts:
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
    # New keys work on both.
    key = a.client().create_key()["KeyMetadata"]["KeyId"]
    blob = a.client().encrypt(KeyId=key, Plaintext=b"after")["CiphertextBlob"]
    assert b.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"after"
    # The scan: the keyring holds the new version only, and every sealed value is under it and opens
    # with it alone.
    row = keyring_row(a)
    assert row["rotation_state"] == "done" and row["rotation_resealed"] == row["rotation_total"]
    keys = stored_keys(a)
    assert set(keys) == {new_version}
    counts = sealed_versions(a)
    assert set(counts) == {new_version}
    assert check_every_value_opens_under(a, keys) == counts[new_version]


def test_a_rotation_killed_in_the_middle_resumes_and_finishes_under_load(workdir: Path, backend: str) -> None:
    with two_nodes(workdir, backend, JOBS_OFF) as nodes:
        a = nodes[0]
        keys, before = seed(nodes, keys=250, per_key=2)
        assert set(stored_keys(a)) == {1} and set(sealed_versions(a)) == {1}
        load = Load(nodes, list(keys), before)
        load.start()
        time.sleep(1)

        command = [OPENKMS, "operator", "rotate-root-key", *a.data_args(), "--batch", "2"]
        first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert first.stderr is not None
        for line in first.stderr:  # "re-sealing: N% (done/total)", a line per whole percent
            if line.startswith("re-sealing: ") and 5 <= int(line.split()[1].rstrip("%")) < 50:
                break
        first.kill()
        first.wait()
        # Killed in the middle: still running, both versions kept, values under each.
        row = keyring_row(a)
        assert row["rotation_state"] == "running" and 0 < row["rotation_resealed"] < row["rotation_total"]
        assert set(stored_keys(a)) == {1, 2}
        counts = sealed_versions(a)
        assert counts.get(1, 0) > 0 and counts.get(2, 0) > 0

        second = subprocess.run(command, capture_output=True, text=True, timeout=180)
        assert second.returncode == 0, second.stderr
        assert "already running" in second.stdout and "resuming it" in second.stdout
        assert "root key rotation done: the keyring holds version 2 only" in second.stdout
        assert "re-sealing: 100%" in second.stderr
        time.sleep(1)
        load.stop()
        assert load.errors == []
        assert load.calls > 100 and any(k not in keys for k in load.keys)  # keys were made meanwhile
        check_after(nodes, before + random.sample(load.made, min(300, len(load.made))), new_version=2)


def test_the_servers_job_alone_finishes_a_rotation(workdir: Path, backend: str) -> None:
    with two_nodes(workdir, backend) as nodes:
        a = nodes[0]
        keys, before = seed(nodes, keys=40, per_key=3)
        load = Load(nodes, list(keys), before)
        load.start(threads=2)
        out = subprocess.run(
            [OPENKMS, "operator", "rotate-root-key", *a.data_args(), "--no-wait"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "keyring version 2 seals new values" in out and "background job" in out
        assert keyring_row(a)["rotation_state"] == "running"
        deadline = time.time() + 60
        while keyring_row(a)["rotation_state"] != "done":
            assert time.time() < deadline, keyring_row(a)
            time.sleep(0.5)
        time.sleep(1)
        load.stop()
        assert load.errors == []
        check_after(nodes, before + random.sample(load.made, min(300, len(load.made))), new_version=2)
        # A second rotation (version 3) after the first is done.
        again = subprocess.run(
            [OPENKMS, "operator", "rotate-root-key", *a.data_args()],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "the keyring holds version 3 only" in again.stdout
        assert set(stored_keys(a)) == {3} and set(sealed_versions(a)) == {3}


def test_no_installation_is_made_by_a_rotation(tmp_path: Path) -> None:
    out = subprocess.run(
        [OPENKMS, "operator", "rotate-root-key", "--data-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "no openkms data in" in out.stderr
    assert not (tmp_path / "none").exists()


def test_a_keyring_wrapped_by_a_pkcs11_token_rotates(workdir: Path, backend: str, tmp_path: Path) -> None:
    """The command opens the keyring with the token the installation recorded (only the PIN given) and
    the rotated keyring is wrapped by the token again: the token alone (python-pkcs11) opens it."""
    token = init_token(tmp_path / "hsm", label="openkms-rotation", pin="1357-user", so_pin="2468-so")
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"rotation-pkcs11-{backend}-"))
    url = create_pg_database() if backend == "postgres" else None
    hsm = {**token.env, "OPENKMS_PKCS11_PIN": token.pin}
    trust_args = ["--root-key-source", "pkcs11", "--pkcs11-module", module_path(), "--pkcs11-token-label"]
    server = launch(data_dir, url, extra_args=[*trust_args, token.label], env=hsm)
    try:
        _, before = seed((server, server), keys=20, per_key=2)
        out = subprocess.run(
            [OPENKMS, "operator", "rotate-root-key", *server.data_args()],
            capture_output=True,
            text=True,
            env={**os.environ, **hsm},
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert "the keyring holds version 2 only" in out.stdout
        (wrapped,) = query(server, "SELECT wrapped FROM keyring")[0]
        ring = json.loads(decrypt_in_token(token, "openkms-root", bytes(wrapped)))
        stored = {int(v): base64.b64decode(k) for v, k in ring["keys"].items()}
        assert set(stored) == {2} and ring["active"] == 2
        assert set(sealed_versions(server)) == {2}
        assert check_every_value_opens_under(server, stored) == sum(sealed_versions(server).values())
        kms = server.client()
        for blob, plaintext in before:
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
        wrong_pin = subprocess.run(
            [OPENKMS, "operator", "rotate-root-key", *server.data_args()],
            capture_output=True,
            text=True,
            env={**os.environ, **token.env, "OPENKMS_PKCS11_PIN": "0000-wrong"},
            timeout=60,
        )
        assert wrong_pin.returncode == 1 and "Traceback" not in wrong_pin.stderr
        assert "is wrong (CKR_PIN_INCORRECT)" in wrong_pin.stderr and "0000-wrong" not in wrong_pin.stderr
        assert keyring_row(server)["rotation_state"] == "done"
    finally:
        server.stop()
        if url:
            drop_pg_database(url)
