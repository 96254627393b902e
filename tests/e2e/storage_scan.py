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
