"""Options shared by the commands that open the service's data (flags or OPENKMS_* variables)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from openkms.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


def data_options(fn: F) -> F:
    fn = click.option(
        "--root-key-file",
        type=click.Path(path_type=Path),
        envvar="OPENKMS_ROOT_KEY_FILE",
        help="Root key file (default: <data-dir>/root.key). "
        "Every server sharing a database needs the same one.",
    )(fn)
    fn = click.option(
        "--database-url",
        envvar="OPENKMS_DATABASE_URL",
        help="postgresql://user:pass@host/db (default: SQLite in the data directory).",
    )(fn)
    fn = click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=Path("./openkms-data"),
        show_default=True,
        envvar="OPENKMS_DATA_DIR",
        help="Directory holding the SQLite database and the root key.",
    )(fn)
    return fn


def settings_from(
    data_dir: Path, database_url: str | None, root_key_file: Path | None, **extra: Any
) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, root_key_file=root_key_file, **extra)
