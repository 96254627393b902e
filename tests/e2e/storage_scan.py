"""Reading what a server left on disk or in its database, to prove secrets are not there."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Server

# DER prefix of any PKCS#8 RSA private key: version 0, rsaEncryption AlgorithmIdentifier, OCTET STRING.
PKCS8_RSA_PREFIX = bytes.fromhex("020100300d06092a864886f70d0101010500 04".replace(" ", ""))


def stored_bytes(server: Server) -> bytes:
    """Every byte of the server's data directory and log, plus every value in its database."""
    chunks: list[bytes] = []
    for path in sorted(server.data_dir.rglob("*")):
        if path.is_file():
            chunks.append(path.read_bytes())
    if server.log_path is not None and server.log_path.exists():
        chunks.append(server.log_path.read_bytes())
    if server.database_url:
        import psycopg

        with psycopg.connect(server.database_url) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                ).fetchall()
            ]
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():
                    for value in row:
                        if isinstance(value, bytes | bytearray | memoryview):
                            chunks.append(bytes(value))
                        elif value is not None:
                            chunks.append(str(value).encode())
    return b"\x00".join(chunks)


def sealed_material_rows(server: Server) -> list[bytes]:
    """The sealed key material blobs currently stored (to check they are really gone after deletion)."""
    if server.database_url:
        import psycopg

        with psycopg.connect(server.database_url) as conn:
            return [
                bytes(r[0]) for r in conn.execute("SELECT sealed FROM key_materials WHERE sealed IS NOT NULL")
            ]
    import sqlite3

    db = sqlite3.connect(Path(server.data_dir) / "openkms.db")
    try:
        return [bytes(r[0]) for r in db.execute("SELECT sealed FROM key_materials WHERE sealed IS NOT NULL")]
    finally:
        db.close()


def keyring_keys(root_key: bytes, wrapped: bytes) -> dict[int, bytes]:
    """The keyring's data-encryption keys by version, unwrapped here from the ``keyring`` row with the
    root key file's 32 bytes (crypto/envelope.py's format, re-implemented with pyca ``cryptography``:
    AES-256-GCM under HKDF-SHA256(root, info "openkms/kek/v1"), associated data "openkms/keyring/v1",
    a JSON document of base64 keys)."""
    import base64
    import json

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    kek = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"openkms/kek/v1").derive(root_key)
    doc = json.loads(AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], b"openkms/keyring/v1"))
    return {int(v): base64.b64decode(k) for v, k in doc["keys"].items()}


def unseal_independently(keys: dict[int, bytes], purpose: str, ident: str, sealed: bytes) -> bytes:
    """A value sealed by crypto/envelope.py, opened here: ``02 ‖ version ‖ nonce ‖ AES-GCM`` bound to
    the version, purpose and row (or ``01 ‖ nonce ‖ AES-GCM`` under version 1, before keyrings)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if sealed[:1] == b"\x01":
        aad = b"openkms/seal/v1\x00" + purpose.encode() + b"\x00" + ident.encode()
        return AESGCM(keys[1]).decrypt(sealed[1:13], sealed[13:], aad)
    assert sealed[:1] == b"\x02"
    version = int.from_bytes(sealed[1:5], "big")
    aad = b"openkms/seal/v2\x00" + sealed[1:5] + purpose.encode() + b"\x00" + ident.encode()
    return AESGCM(keys[version]).decrypt(sealed[5:17], sealed[17:], aad)
