"""Backup files: a consistent snapshot of every table, written and read back (``openkms backup``,
``openkms restore``, ``openkms migrate``).

The snapshot is one read transaction (SQLite: a read transaction in WAL mode sees one snapshot while
writers go on; PostgreSQL: ``REPEATABLE READ READ ONLY``). Every table of the schema is in it except
``schema_migrations`` (the header names the version, and a restore's migrations write it) and
``changes`` (the change feed's log of the last hour, meaningful only to the processes running then).
Rows are copied as stored: sealed columns stay sealed, the keyring row stays wrapped by the root key's
holder, so a backup is useless without the root key.

Format (version 1), byte for byte::

    OPENKMS-BACKUP\\n
    <header: one line of JSON, at most 1 MiB>\\n
    <body: one gzip member of JSON lines>
    OPENKMS-TRAILER sha256=<64 hex> hmac=<64 hex>\\n

The header: ``{"format": "openkms-backup", "format_version": 1, "schema_version", "created_at" (epoch
seconds), "created" (ISO 8601), "backend" (sqlite|postgresql), "keyring": {"source", "config",
"wrapped" (base64)}, "fingerprint" (the installation's RootKey.fingerprint), "tables": {name: rows}}``.
The body, table by table in an order that satisfies references: a section line ``{"table": name,
"columns": [...], "rows": n}`` then ``n`` lines, each a JSON array of the row's values in that column
order (bytes as ``{"b64": "..."}``), and last ``{"end": true, "rows": total}``. The trailer holds the
SHA-256 of every byte before it and an HMAC-SHA256 of the same bytes keyed by the installation's
backup key (``RootKey.backup_key()``, derived from the keyring's derivation secret: checking it needs
the root key, and it does not change when the root key is rotated).

Reading is bounded: the header line, every body line, the number of tables and of columns have limits;
every name read must be a table or column of the target schema. A restore runs in one transaction onto
an empty target: migrated to the backup's schema version, rows inserted in batches, PostgreSQL's
sequences moved past the restored ids, migrated to the newest version; any failure leaves nothing.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import io
import json
import math
import os
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from openkms.storage import schema as t
from openkms.storage.migrations import LATEST, migrate
from openkms.storage.store import KeyringRow, Store

FORMAT = "openkms-backup"
FORMAT_VERSION = 1
MAGIC = b"OPENKMS-BACKUP\n"
MAX_HEADER = 1 << 20
MAX_LINE = 16 << 20
MAX_TABLES = 256
MAX_COLUMNS = 256
BATCH = 500
_TRAILER_PREFIX = b"OPENKMS-TRAILER sha256="
_TRAILER_HMAC = b" hmac="
TRAILER_BYTES = len(_TRAILER_PREFIX) + 64 + len(_TRAILER_HMAC) + 64 + 1
SKIPPED = ("schema_migrations", "changes")
Progress = Callable[[int], None]  # rows done so far


class BackupError(Exception):
    """A backup file cannot be read, is damaged or tampered with, or cannot be restored here."""


TAMPERED = "the backup file is damaged or was tampered with (its SHA-256 does not match)"
FORGED = (
    "the backup file's HMAC does not match under this installation's root key: it was altered "
    "(or made by another installation)"
)


@dataclass(frozen=True)
class Header:
    """What a backup holds, as its header says."""

    doc: dict[str, Any]
    size: int  # bytes of the magic line and the header line

    @property
    def schema_version(self) -> int:
        return int(self.doc["schema_version"])

    @property
    def tables(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.doc["tables"].items()}

    @property
    def total_rows(self) -> int:
        return sum(self.tables.values())

    @property
    def fingerprint(self) -> str:
        return str(self.doc["fingerprint"])

    @property
    def keyring(self) -> KeyringRow:
        ring = self.doc["keyring"]
        return KeyringRow(
            source=str(ring["source"]),
            config=str(ring["config"]),
            wrapped=base64.b64decode(ring["wrapped"], validate=True),
            generation=1,
            updated_at=float(self.doc["created_at"]),
        )


@dataclass(frozen=True)
class Check:
    """The integrity of a backup file: its SHA-256, and its HMAC when a backup key was given."""

    sha256_ok: bool
    hmac_ok: bool | None
    sha256: str


def tables_in_order() -> list[sa.Table]:
    """The tables a backup holds, in an order that inserts referenced rows first."""
    return [table for table in t.metadata.sorted_tables if table.name not in SKIPPED]


# -- writing -----------------------------------------------------------------------------------------------


class _Digesting(io.RawIOBase):
    """A write-only stream into ``out`` that hashes and MACs everything written."""

    def __init__(self, out: IO[bytes], key: bytes) -> None:
        self._out = out
        self.sha = hashlib.sha256()
        self.mac = hmac.new(key, digestmod=hashlib.sha256)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.sha.update(chunk)
        self.mac.update(chunk)
        self._out.write(chunk)
        return len(chunk)


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    return value


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode() + b"\n"


@contextmanager
def snapshot(store: Store) -> Iterator[Connection]:
    """One read transaction that sees one state of the database while writers go on."""
    with store.engine.connect() as conn:
        if store.backend == "sqlite":
            conn = conn.execution_options(sqlite_begin="DEFERRED")
        with conn.begin():
            if store.backend == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn


def write_backup(
    store: Store,
    out: IO[bytes],
    *,
    key: bytes,
    fingerprint: str,
    progress: Callable[[int, int], None] | None = None,
) -> Header:
    """Write a backup of ``store`` to ``out`` (MAC'd with ``key``); ``progress(done, total)`` per batch."""
    with snapshot(store) as conn:
        # The first statement fixes the snapshot: everything below reads that one state.
        version = conn.execute(sa.select(sa.func.max(t.schema_migrations.c.version))).scalar_one()
        tables = tables_in_order()
        counts = {
            table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for table in tables
        }
        ring = conn.execute(sa.select(t.keyring).where(t.keyring.c.id == 1)).first()
        if ring is None:
            raise BackupError("this installation has no keyring (it was never started): nothing to back up")
        now = store.clock.now()
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "schema_version": int(version),
            "created_at": now,
            "created": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            "backend": store.backend,
            "keyring": {
                "source": ring.source,
                "config": ring.config,
                "wrapped": base64.b64encode(bytes(ring.wrapped)).decode(),
            },
            "fingerprint": fingerprint,
            "tables": counts,
        }
        head = MAGIC + _line(doc)
        if len(head) > MAX_HEADER:
            raise BackupError("the backup header is too large")
        sink = _Digesting(out, key)
        sink.write(head)
        total = sum(counts.values())
        done = 0
        if progress is not None:
            progress(0, total)
        with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0, compresslevel=6) as body:
            for table in tables:
                columns = [c.name for c in table.columns]
                body.write(_line({"table": table.name, "columns": columns, "rows": counts[table.name]}))
                written = 0
                result = conn.execution_options(stream_results=True, max_row_buffer=BATCH).execute(
                    sa.select(table).order_by(*table.primary_key.columns)
                )
                for row in result:
                    if written == counts[table.name]:
                        raise BackupError(f"table {table.name} changed during the snapshot")
                    body.write(_line([_encode(v) for v in row]))
                    written += 1
                    done += 1
                    if progress is not None and done % BATCH == 0:
                        progress(done, total)
                if written != counts[table.name]:
                    raise BackupError(f"table {table.name} changed during the snapshot")
            body.write(_line({"end": True, "rows": total}))
        trailer = (
            _TRAILER_PREFIX
            + sink.sha.hexdigest().encode()
            + _TRAILER_HMAC
            + sink.mac.hexdigest().encode()
            + b"\n"
        )
        out.write(trailer)
        if progress is not None:
            progress(total, total)
    return Header(doc, len(head))


# -- reading -----------------------------------------------------------------------------------------------


def read_header(f: IO[bytes]) -> Header:
    """The header of the backup file ``f`` (positioned at its start), checked for shape."""
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupError("this is not an openkms backup file")
    line = f.readline(MAX_HEADER)
    if not line.endswith(b"\n"):
        raise BackupError("the backup file's header is truncated, damaged or too large")
    try:
        doc = json.loads(line, parse_constant=_no_constant, parse_float=_finite)
    except ValueError:
        raise BackupError("the backup file's header is damaged (it is not JSON)") from None
    header = Header(doc, len(MAGIC) + len(line))
    try:
        if doc.get("format") != FORMAT:
            raise BackupError("this is not an openkms backup file")
        if doc.get("format_version") != FORMAT_VERSION:
            raise BackupError(
                f"backup format version {doc.get('format_version')!r} is not one this openkms reads "
                f"(it reads version {FORMAT_VERSION})"
            )
        if not 1 <= header.schema_version <= LATEST:
            raise BackupError(
                f"the backup's schema version {header.schema_version} is newer than this openkms's "
                f"({LATEST}): restore it with a newer openkms"
            )
        if len(header.tables) > MAX_TABLES or any(n < 0 for n in header.tables.values()):
            raise BackupError("the backup file's header is damaged (its table counts are malformed)")
        header.keyring  # noqa: B018 - checks the keyring's shape
        str(doc["created"]), str(doc["backend"]), header.fingerprint
    except BackupError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BackupError("the backup file's header is damaged (malformed)") from None
    return header


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _trailer(f: IO[bytes], size: int, header: Header) -> tuple[bytes, bytes]:
    if size < header.size + TRAILER_BYTES:
        raise BackupError("the backup file is truncated (it has no trailer)")
    f.seek(size - TRAILER_BYTES)
    raw = f.read(TRAILER_BYTES)
    hmac_at = len(_TRAILER_PREFIX) + 64
    if (
        not raw.startswith(_TRAILER_PREFIX)
        or raw[hmac_at : hmac_at + len(_TRAILER_HMAC)] != _TRAILER_HMAC
        or not raw.endswith(b"\n")
    ):
        raise BackupError("the backup file is truncated or damaged (it has no trailer)")
    try:
        sha = bytes.fromhex(raw[len(_TRAILER_PREFIX) : hmac_at].decode())
        mac = bytes.fromhex(raw[hmac_at + len(_TRAILER_HMAC) : -1].decode())
    except ValueError:
        raise BackupError("the backup file's trailer is damaged") from None
    return sha, mac


def _size(f: IO[bytes]) -> int:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    return size


def check(f: IO[bytes], key: bytes | None) -> tuple[Header, Check]:
    """The header of ``f`` and whether its SHA-256 (and HMAC, given the backup ``key``) match."""
    size = _size(f)
    header = read_header(f)
    want_sha, want_mac = _trailer(f, size, header)
    f.seek(0)
    sha = hashlib.sha256()
    mac = hmac.new(key, digestmod=hashlib.sha256) if key is not None else None
    left = size - TRAILER_BYTES
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            break
        left -= len(chunk)
        sha.update(chunk)
        if mac is not None:
            mac.update(chunk)
    sha_ok = left == 0 and hmac.compare_digest(sha.digest(), want_sha)
    mac_ok = None if mac is None else hmac.compare_digest(mac.digest(), want_mac)
    return header, Check(sha_ok, mac_ok, want_sha.hex())


class _Region(io.RawIOBase):
    """Reads ``f`` from its position up to ``end``, hashing what it reads."""

    def __init__(self, f: IO[bytes], end: int, sha: Any) -> None:
        self._f = f
        self._left = end - f.tell()
        self._sha = sha

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left)
        if n <= 0:
            return 0
        data = self._f.read(n)
        self._sha.update(data)
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)

    @property
    def exhausted(self) -> bool:
        return self._left == 0


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise BackupError("the backup holds a malformed value")
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError:
            raise BackupError("the backup holds a malformed value") from None
    if isinstance(value, list):
        raise BackupError("the backup holds a malformed value")
    return value


def _json_line(body: gzip.GzipFile) -> Any:
    line = body.readline(MAX_LINE)
    if not line.endswith(b"\n"):
        raise BackupError("the backup file is truncated or holds a line too long")
    try:
        return json.loads(line, parse_constant=_no_constant, parse_float=_finite)
    except ValueError:
        raise BackupError("the backup holds a line that is not JSON") from None


# -- restoring ---------------------------------------------------------------------------------------------


def _table_columns(conn: Connection) -> dict[str, set[str]]:
    inspector = sa.inspect(conn)
    return {name: {c["name"] for c in inspector.get_columns(name)} for name in inspector.get_table_names()}


def _schema_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_migrations"):
        return 0
    return int(conn.exec_driver_sql("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").scalar_one())


def _refuse_non_empty(conn: Connection) -> None:
    present = set(sa.inspect(conn).get_table_names())
    for name in sorted(present - set(SKIPPED)):
        if conn.execute(sa.select(sa.literal(1)).select_from(sa.table(name)).limit(1)).first() is not None:
            raise BackupError(
                f"the target is not empty (its table {name} has rows): restore onto a new data directory "
                "or an empty database"
            )


def _reset_sequences(conn: Connection) -> None:
    """Move every PostgreSQL sequence of a serial column past the largest id restored."""
    rows = conn.execute(
        sa.text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_default LIKE :serial"
        ),
        {"serial": "nextval(%"},
    ).all()
    for table_name, column_name in rows:
        seq = conn.execute(
            sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table_name, "c": column_name}
        ).scalar_one()
        if seq is None:
            continue
        quoted_t = conn.dialect.identifier_preparer.quote(table_name)
        quoted_c = conn.dialect.identifier_preparer.quote(column_name)
        conn.execute(
            sa.text(f"SELECT setval(:seq, COALESCE((SELECT MAX({quoted_c}) FROM {quoted_t}), 0) + 1, false)"),
            {"seq": seq},
        )


def restore_backup(
    url: str,
    f: IO[bytes],
    *,
    header: Header,
    want_sha256: str,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Restore the (already checked) backup ``f`` onto the empty database at ``url``; returns the rows
    restored by table. ``want_sha256`` is the digest checked before: the file read again must match
    it, or nothing is committed."""
    store = Store(url, migrate_schema=False)
    try:
        with store.engine.connect() as conn:
            if store.backend == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if store.backend == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7244517)"))
                restored = _restore(conn, store.backend, f, header, want_sha256, progress, store.clock.now())
        return restored
    except sa.exc.DBAPIError as exc:  # the target cannot be reached, or is not a database
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        raise BackupError(f"the target database cannot be restored onto: {reason}") from None
    finally:
        store.close()


def _restore(
    conn: Connection,
    backend: str,
    f: IO[bytes],
    header: Header,
    want_sha256: str,
    progress: Progress | None,
    now: float,
) -> dict[str, int]:
    current = _schema_version(conn)
    if current:
        _refuse_non_empty(conn)
    if current > header.schema_version:
        raise BackupError(
            f"the target's schema is at version {current}, newer than the backup's "
            f"({header.schema_version}): restore onto a new data directory or an empty database"
        )
    migrate(conn, target=header.schema_version, now=now)
    columns_of = _table_columns(conn)
    size = _size(f)
    sha = hashlib.sha256()
    region = _Region(f, size - TRAILER_BYTES, sha)
    head = region.read(header.size)
    if len(head) != header.size or not head.startswith(MAGIC):
        raise BackupError(TAMPERED)
    restored: dict[str, int] = {}
    done = 0
    with gzip.GzipFile(fileobj=io.BufferedReader(region), mode="rb") as body:
        try:
            for _ in range(MAX_TABLES + 1):
                section = _json_line(body)
                if not isinstance(section, dict):
                    raise BackupError("the backup's body is malformed")
                if section.get("end") is True:
                    if section.get("rows") != done:
                        raise BackupError("the backup's row count does not add up")
                    break
                done = _restore_table(conn, body, section, columns_of, restored, done, progress)
            else:
                raise BackupError("the backup holds too many tables")
            if body.read(1):
                raise BackupError("the backup's body has data after its end")
        except (EOFError, gzip.BadGzipFile, OSError, zlib.error):
            raise BackupError(
                "the backup file is truncated or damaged (its body does not decompress)"
            ) from None
    if not region.exhausted or not hmac.compare_digest(sha.hexdigest(), want_sha256):
        raise BackupError(TAMPERED)
    if restored != {name: n for name, n in header.tables.items()}:
        raise BackupError("the backup's body does not hold what its header says")
    if "keyring" in columns_of:
        # The keyring restored is the one the header holds (which the root key was checked against).
        ring = conn.exec_driver_sql("SELECT source, config, wrapped FROM keyring").all()
        want = header.keyring
        if [(r[0], r[1], bytes(r[2])) for r in ring] != [(want.source, want.config, want.wrapped)]:
            raise BackupError("the backup's keyring row is not the one its header holds")
    if backend == "postgresql":
        _reset_sequences(conn)
    migrate(conn, target=LATEST, now=now)
    if backend == "postgresql":
        _reset_sequences(conn)
    return restored


def _restore_table(
    conn: Connection,
    body: gzip.GzipFile,
    section: dict[str, Any],
    columns_of: dict[str, set[str]],
    restored: dict[str, int],
    done: int,
    progress: Progress | None,
) -> int:
    name, columns, rows = section.get("table"), section.get("columns"), section.get("rows")
    if (
        not isinstance(name, str)
        or not isinstance(columns, list)
        or not isinstance(rows, int)
        or rows < 0
        or len(columns) > MAX_COLUMNS
        or not all(isinstance(c, str) for c in columns)
    ):
        raise BackupError("the backup's body is malformed")
    if name in SKIPPED or name not in columns_of or name in restored:
        raise BackupError(f"the backup holds a table this schema does not restore: {name[:64]!r}")
    if set(columns) != columns_of[name] or len(set(columns)) != len(columns):
        raise BackupError(f"the backup's columns of table {name} are not this schema version's")
    target = sa.table(name, *[sa.column(c) for c in columns])

    def insert(batch: list[dict[str, Any]]) -> None:
        try:
            conn.execute(sa.insert(target), batch)
        except (sa.exc.StatementError, OverflowError, ValueError, TypeError) as exc:
            # a duplicate, a missing value, a value of another type or out of range
            cause = exc.orig if isinstance(exc, sa.exc.StatementError) else exc
            raise BackupError(
                f"the backup's rows of table {name} do not fit this database ({type(cause).__name__})"
            ) from None

    batch: list[dict[str, Any]] = []
    for _ in range(rows):
        values = _json_line(body)
        if not isinstance(values, list) or len(values) != len(columns):
            raise BackupError(f"the backup holds a malformed row of table {name}")
        batch.append(dict(zip(columns, (_decode(v) for v in values), strict=True)))
        if len(batch) >= BATCH:
            insert(batch)
            done += len(batch)
            batch = []
            if progress is not None:
                progress(done)
    if batch:
        insert(batch)
        done += len(batch)
        if progress is not None:
            progress(done)
    restored[name] = rows
    return done


def redacted_url(url: str) -> str:
    """``url`` with its password hidden (for messages)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<database url>"
