"""The pkcs11 root of trust with a SoftHSM2 token, on SQLite and PostgreSQL: the first start makes a
non-extractable AES-256 key in the token and the keyring wrapped by it; later starts need only the PIN
(the source, module and labels are recorded); nothing on disk or in the database holds the root key or
any of the keyring's data-encryption keys in plaintext (the keyring row is decrypted here by the token
through python-pkcs11, then everything stored is scanned); a wrong PIN, a missing token, a missing key
or no PIN at all refuse to start with a message and no traceback; the admin commands work on such an
installation."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OPENKMS, Server, create_pg_database, drop_pg_database, free_port, launch
from tests.e2e.storage_scan import stored_bytes, unseal_independently
from tests.softhsm import SoftToken, decrypt_in_token, init_token, module_path

DEFAULT_KEY_LABEL = "openkms-root"


def _query(server: Server, sql: str) -> list[tuple[Any, ...]]:
    if server.database_url:
        import psycopg

        with psycopg.connect(server.database_url) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    db = sqlite3.connect(server.data_dir / "openkms.db")
    try:
        return list(db.execute(sql).fetchall())
    finally:
        db.close()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENKMS_PKCS11", "SOFTHSM2"))}
    return {**env, **extra}


def _refused(server: Server, *args: str, env: dict[str, str]) -> str:
    """``openkms serve`` on the server's data exits non-zero: its output (standard error and output)."""
    proc = subprocess.run(
        [OPENKMS, "serve", "--port", str(free_port()), *server.data_args(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output, output
    return output


@pytest.fixture
def token(tmp_path: Path) -> SoftToken:
    return init_token(tmp_path / "hsm", label="openkms-e2e", pin="1357-user", so_pin="2468-so")


@pytest.fixture
def installation(workdir: Path, backend: str, token: SoftToken) -> Iterator[Server]:
    """A server whose first start chose the pkcs11 root of trust (PIN in OPENKMS_PKCS11_PIN)."""
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"pkcs11-{backend}-"))
    url = create_pg_database() if backend == "postgres" else None
    args = [
        "--root-key-source",
        "pkcs11",
        "--pkcs11-module",
        module_path(),
        "--pkcs11-token-label",
        token.label,
    ]
    env = {**token.env, "OPENKMS_PKCS11_PIN": token.pin}
    srv = launch(data_dir, url, extra_args=args, env=env)
    yield srv
    srv.stop()
    if url:
        drop_pg_database(url)


def test_pkcs11_root_of_trust_survives_a_restart_and_stores_no_key(
    installation: Server, token: SoftToken, tmp_path: Path
) -> None:
    server = installation
    kms = server.client()
    key_id = kms.create_key(Description="under the token")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept by the HSM")["CiphertextBlob"]

    # The installation recorded its root of trust: the restart names neither the source nor the token,
    # only the PIN (this time from a file) and where SoftHSM2 keeps its tokens; each of its two worker
    # processes opens the keyring with the token.
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin + "\n")
    pin_file.chmod(0o600)
    server.extra_args = ["--pkcs11-pin-file", str(pin_file), "--workers", "2"]
    server.env = dict(token.env)
    server.restart()
    for _ in range(6):  # own connections: requests land on both workers
        assert server.client().decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept by the HSM"
    kms = server.client()
    assert kms.encrypt(KeyId=key_id, Plaintext=b"after")["KeyId"].endswith(key_id)

    (source, config, wrapped) = _query(server, "SELECT source, config, wrapped FROM keyring WHERE id = 1")[0]
    assert source == "pkcs11"
    assert json.loads(config) == {
        "module": module_path(),
        "token_label": token.label,
        "key_label": DEFAULT_KEY_LABEL,
    }
    assert not (server.data_dir / "root.key").exists()
    assert [p.name for p in server.data_dir.rglob("*") if "root" in p.name] == []

    # The token (through python-pkcs11, not openkms) opens the stored keyring: iv ‖ AES-GCM ‖ tag.
    keyring = json.loads(decrypt_in_token(token, DEFAULT_KEY_LABEL, bytes(wrapped)))
    keys = {int(v): base64.b64decode(k) for v, k in keyring["keys"].items()}
    derive = base64.b64decode(keyring["derive"])
    assert keyring["active"] in keys and all(len(k) == 32 for k in keys.values())

    # Those are the keys the rows are sealed with: the key's material opens under them.
    rows = _query(
        server, f"SELECT region, key_id, material_id, sealed FROM key_materials WHERE key_id = '{key_id}'"
    )
    assert rows
    for region, kid, material_id, sealed in rows:
        material = unseal_independently(keys, "key-material", f"{region}/{kid}/{material_id}", bytes(sealed))
        assert len(material) == 32

    # Nothing stored (data directory, log, database) holds any of them, in any usual encoding.
    stored = stored_bytes(server)
    for secret in [*keys.values(), derive]:
        for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
            assert form not in stored
    assert b'"keys"' not in stored and token.pin.encode() not in stored


def test_what_cannot_reach_the_token_does_not_start(installation: Server, token: SoftToken) -> None:
    server = installation
    key_id = server.client().create_key()["KeyMetadata"]["KeyId"]
    server.stop()
    hsm = token.env

    wrong_pin = _refused(server, env=_clean_env(**hsm, OPENKMS_PKCS11_PIN="0000-wrong"))
    assert "cannot open the keyring" in wrong_pin
    assert f"the PIN of the PKCS#11 token '{token.label}' is wrong (CKR_PIN_INCORRECT)" in wrong_pin
    assert "0000-wrong" not in wrong_pin and token.pin not in wrong_pin

    no_pin = _refused(server, env=_clean_env(**hsm))
    assert "needs the token's PIN (--pkcs11-pin-file or OPENKMS_PKCS11_PIN)" in no_pin

    pin = {"OPENKMS_PKCS11_PIN": token.pin}
    no_token = _refused(server, "--pkcs11-token-label", "not-this-one", env=_clean_env(**hsm, **pin))
    assert "there is no PKCS#11 token labelled 'not-this-one'" in no_token

    # The token's store is elsewhere (another machine's, or none): the recorded token is not there.
    elsewhere = init_token(server.data_dir.parent / f"empty-hsm-{server.port}", label="someone-else")
    moved = _refused(server, env=_clean_env(**elsewhere.env, **pin))
    assert f"there is no PKCS#11 token labelled '{token.label}'" in moved and "'someone-else'" in moved

    no_key = _refused(server, "--pkcs11-key-label", "other-key", env=_clean_env(**hsm, **pin))
    assert f"there is no key labelled 'other-key' in the PKCS#11 token '{token.label}'" in no_key

    bad_module = _refused(
        server, "--pkcs11-module", "/nonexistent/libpkcs11.so", env=_clean_env(**hsm, **pin)
    )
    assert "cannot load the PKCS#11 module /nonexistent/libpkcs11.so" in bad_module

    other_source = _refused(server, "--root-key-source", "file", env=_clean_env(**hsm, **pin))
    assert "this installation's root of trust is pkcs11, not file" in other_source

    # None of the refusals changed anything: the right PIN starts it, and the key is there.
    server.extra_args = []
    server.env = {**hsm, **pin}
    server.start()
    assert server.client().describe_key(KeyId=key_id)["KeyMetadata"]["Enabled"] is True


def test_rows_sealed_without_a_keyring_are_not_given_a_new_one(
    workdir: Path, backend: str, token: SoftToken
) -> None:
    """An installation holding sealed rows but no keyring (older than keyrings) keeps its root key file:
    choosing pkcs11 for it is refused, not answered with a new keyring that opens none of its rows."""
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"pkcs11-legacy-{backend}-"))
    url = create_pg_database() if backend == "postgres" else None
    server = launch(data_dir, url)
    try:
        server.client().create_key()
        server.stop()
        if url:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DELETE FROM keyring")
        else:
            db = sqlite3.connect(data_dir / "openkms.db")
            with db:
                db.execute("DELETE FROM keyring")
            db.close()
        args = ["--root-key-source", "pkcs11", "--pkcs11-module", module_path()]
        output = _refused(
            server,
            *args,
            "--pkcs11-token-label",
            token.label,
            env=_clean_env(**token.env, OPENKMS_PKCS11_PIN=token.pin),
        )
        assert "holds rows sealed under its root key file from before keyrings existed" in output
        assert _query(server, "SELECT count(*) FROM keyring") == [(0,)]
    finally:
        server.stop()
        if url:
            drop_pg_database(url)


def test_a_wrong_pin_at_the_first_start_makes_nothing(workdir: Path, backend: str, token: SoftToken) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix=f"pkcs11-first-{backend}-"))
    url = create_pg_database() if backend == "postgres" else None
    server = Server(data_dir=data_dir, database_url=url)
    args = [
        "--root-key-source",
        "pkcs11",
        "--pkcs11-module",
        module_path(),
        "--pkcs11-token-label",
        token.label,
    ]
    try:
        output = _refused(server, *args, env=_clean_env(**token.env, OPENKMS_PKCS11_PIN="0000-wrong"))
        assert "CKR_PIN_INCORRECT" in output
        assert _query(server, "SELECT count(*) FROM keyring") == [(0,)]
        assert not (data_dir / "root.key").exists()
    finally:
        if url:
            drop_pg_database(url)


def test_admin_commands_on_a_pkcs11_installation(
    installation: Server, token: SoftToken, tmp_path: Path
) -> None:
    server = installation
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin)
    pin_file.chmod(0o600)

    def admin(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [OPENKMS, "admin", "create-account", *server.data_args(), "--json", *args],
            capture_output=True,
            text=True,
            env=env,
        )

    made = admin("--pkcs11-pin-file", str(pin_file), env=_clean_env(**token.env))
    assert made.returncode == 0, made.stderr
    creds = json.loads(made.stdout)
    kms = server.client(access_key=creds["AccessKeyId"], secret_key=creds["SecretAccessKey"])
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"new account")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"new account"
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["AWSAccountId"] == creds["AccountId"]

    refused = admin(env=_clean_env(**token.env, OPENKMS_PKCS11_PIN="0000-wrong"))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "cannot open the keyring" in refused.stderr and "CKR_PIN_INCORRECT" in refused.stderr
