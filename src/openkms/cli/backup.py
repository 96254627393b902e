"""``openkms backup create|inspect``, ``openkms restore`` and ``openkms migrate``: consistent online
snapshots of an installation, restored onto an empty one (another data directory, or PostgreSQL).

The file format and what a backup holds are described in :mod:`openkms.storage.backup`; the checks a
restore makes before writing anything in :mod:`openkms.server.backup`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from openkms.cli.options import data_options, root_of_trust_options, settings_from
from openkms.cli.progress import Progress

NOTHING_RESTORED = " (nothing was restored)"


@contextmanager
def _refusals(outcome: str = "") -> Iterator[None]:
    """Backup and root-of-trust refusals as one clear line (exit status 1), never a traceback;
    ``outcome`` says what was (not) done."""
    from openkms.server.backup import BackupError, RootOfTrustError

    try:
        yield
    except BackupError as exc:
        raise click.ClickException(f"{exc}{outcome}") from None
    except RootOfTrustError as exc:
        raise click.ClickException(f"cannot open the keyring: {exc}{outcome}") from None
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or 'file'}: {exc.strerror}{outcome}") from None


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    bar: list[Progress] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(Progress(label, total).__enter__())
        bar[0].update(done, total)

    try:
        yield update
    except BaseException as exc:
        if bar:
            bar[0].__exit__(type(exc), exc, None)
        raise
    if bar:
        bar[0].__exit__(None, None, None)


def _explicit(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source != click.core.ParameterSource.DEFAULT


def _serve_hint(settings: Any, source: str) -> str:
    if source != "file":
        return ""
    return f" (serve it with --root-key-file {settings.root_key_path.resolve()})"


@click.group()
def backup() -> None:
    """Back up an installation (consistent while it serves) and inspect backup files."""


@backup.command("create")
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="The backup file."
)
@data_options
def create(out: Path, data_dir: Path, database_url: str | None, root_key_file: Path | None) -> None:
    """Write a consistent snapshot of every table (sealed as stored) to --out (mode 0600)."""
    from openkms.server import backup as backups

    settings = settings_from(data_dir, database_url, root_key_file)
    with _refusals(), _progress("backing up") as progress:
        header = backups.create(settings, out, progress)
    click.echo(
        f"wrote {out}: {header.total_rows} rows of {len(header.tables)} tables, schema version "
        f"{header.schema_version}, installation {header.fingerprint}"
    )


def _description(path: Path, header: Any, sha_ok: bool, hmac_ok: bool | None, sha: str) -> dict[str, Any]:
    doc = header.doc
    return {
        "file": str(path),
        "format_version": doc["format_version"],
        "schema_version": header.schema_version,
        "created": doc["created"],
        "created_at": doc["created_at"],
        "backend": doc["backend"],
        "root_key_source": header.keyring.source,
        "fingerprint": header.fingerprint,
        "rows": header.total_rows,
        "tables": header.tables,
        "sha256": sha,
        "sha256_ok": sha_ok,
        "hmac_ok": hmac_ok,
    }


@backup.command("inspect")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--verify", is_flag=True, help="Check the HMAC too (needs the root key options).")
@data_options
def inspect(
    file: Path,
    as_json: bool,
    verify: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Print what a backup file holds and check its SHA-256 (and, with --verify, its HMAC)."""
    from openkms.server import backup as backups
    from openkms.storage.backup import check

    settings = settings_from(data_dir, database_url, root_key_file)
    with _refusals(), file.open("rb") as f:
        header, result = check(f, None)
        hmac_ok: bool | None = None
        if verify:
            _, result = backups.verify(f, settings)
            hmac_ok = result.hmac_ok
    info = _description(file, header, result.sha256_ok, hmac_ok, result.sha256)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(f"{file}: openkms backup, format version {info['format_version']}")
        for label, key in (
            ("created", "created"),
            ("from", "backend"),
            ("schema version", "schema_version"),
            ("root of trust", "root_key_source"),
            ("installation", "fingerprint"),
            ("rows", "rows"),
        ):
            click.echo(f"  {label + ':':16}{info[key]}")
        for name, count in header.tables.items():
            click.echo(f"    {name:24}{count}")
        click.echo(f"  {'SHA-256:':16}{'ok' if result.sha256_ok else 'MISMATCH'} {result.sha256}")
        if hmac_ok is None:
            click.echo(f"  {'HMAC:':16}not checked (needs the root key: --verify with the root key options)")
        else:
            click.echo(f"  {'HMAC:':16}ok")
    if not result.sha256_ok:
        raise click.ClickException("the backup file is damaged or was tampered with (SHA-256 mismatch)")


@click.command()
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The backup file.",
)
@data_options
@click.pass_context
def restore(
    ctx: click.Context, source: Path, data_dir: Path, database_url: str | None, root_key_file: Path | None
) -> None:
    """Restore a backup onto an empty data directory or database (with the root key options of serve)."""
    from openkms.server import backup as backups

    if database_url is None and not _explicit(ctx, "data_dir"):
        raise click.UsageError("name the target: --data-dir D or --database-url URL")
    settings = settings_from(data_dir, database_url, root_key_file)
    with _refusals(NOTHING_RESTORED), source.open("rb") as f, _progress("restoring") as progress:
        restored = backups.restore(settings, f, progress)
    target = _redacted(database_url) if database_url else str(data_dir)
    click.echo(
        f"restored {sum(restored.rows.values())} rows of {len(restored.rows)} tables onto {target}"
        + _serve_hint(settings, restored.header.keyring.source)
    )


def _redacted(url: str) -> str:
    from openkms.storage.backup import redacted_url

    return redacted_url(url)


@click.command()
@click.option(
    "--from-data-dir",
    "from_data_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="The SQLite installation's data directory.",
)
@click.option("--to-database-url", "to_database_url", required=True, help="The empty PostgreSQL database.")
@click.option("--root-key-file", type=click.Path(path_type=Path), help="Default: <from-data-dir>/root.key.")
@root_of_trust_options
def migrate(from_data_dir: Path, to_database_url: str, root_key_file: Path | None) -> None:
    """Move a SQLite installation onto an empty PostgreSQL database (stop its servers first: writes
    made after the snapshot are not moved)."""
    from openkms.server import backup as backups

    source = settings_from(from_data_dir, None, root_key_file)
    target = settings_from(from_data_dir, to_database_url, source.root_key_path)
    with _refusals(NOTHING_RESTORED), _progress("migrating") as progress:
        restored = backups.migrate(source, target, progress)
    click.echo(
        f"moved {sum(restored.rows.values())} rows of {len(restored.rows)} tables onto "
        f"{_redacted(to_database_url)}" + _serve_hint(target, restored.header.keyring.source)
    )
