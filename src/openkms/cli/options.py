"""Options shared by the commands that open the service's data (flags or OPENKMS_* variables).

The root-of-trust options (``--root-key-source`` and the PKCS#11 token's) are not parameters of the
commands' functions: click stores them on the invocation's context and :func:`settings_from` adds them
to the settings, so every command opening the data takes them without naming them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from openkms.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


_TRUST_META = "openkms.root_of_trust"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and param.name is not None:
        ctx.meta.setdefault(_TRUST_META, {})[param.name] = value
    return value


def _pin_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is None:
        return
    try:
        pin = value.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {value}: {exc.strerror}", param_hint="--pkcs11-pin-file"
        ) from None
    ctx.meta.setdefault(_TRUST_META, {})["pkcs11_pin"] = pin


MAX_SHARES_READ = 255
MAX_SHARE_LINE = 1024


def read_shares(prompt: bool | None = None) -> list[str]:
    """Shares from standard input, one a line (blank lines skipped, at most 255); on a terminal each is
    asked for without echo, an empty answer ending the list."""
    if prompt if prompt is not None else sys.stdin.isatty():
        shares: list[str] = []
        while len(shares) < MAX_SHARES_READ:
            text = click.prompt(
                f"Unseal share {len(shares) + 1} (empty to end)",
                default="",
                hide_input=True,
                show_default=False,
            ).strip()
            if not text:
                break
            shares.append(text)
        return shares
    stream = click.get_text_stream("stdin")
    texts = []
    for _ in range(MAX_SHARES_READ * 4):
        line = stream.readline(MAX_SHARE_LINE + 1)
        if not line:
            break
        if len(line) > MAX_SHARE_LINE:
            raise click.BadParameter(
                "a line of standard input is too long for a share", param_hint="--unseal-share"
            )
        if line.strip():
            texts.append(line.strip())
        if len(texts) >= MAX_SHARES_READ:
            break
    return texts


def _shares(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> None:
    texts: list[str] = []
    for item in value:
        texts.extend(read_shares() if item == "-" else [item])
    if texts:
        ctx.meta.setdefault(_TRUST_META, {})["unseal_shares"] = texts


def root_of_trust_options(fn: F) -> F:
    """``--root-key-source``, the PKCS#11 token's options and ``--unseal-share`` (see
    openkms.server.root_of_trust): every command working on the data offline opens a ``shamir``
    installation with the shares given (``Settings.unseal_shares``)."""
    fn = click.option(
        "--unseal-share",
        "unseal_shares",
        multiple=True,
        expose_value=False,
        callback=_shares,
        help="A Shamir share of a shamir installation (repeatable, as many as its threshold); "
        "'-' reads them from standard input, one a line (asked for without echo on a terminal).",
    )(fn)
    fn = click.option(
        "--pkcs11-pin-file",
        type=click.Path(path_type=Path, dir_okay=False),
        expose_value=False,
        callback=_pin_file,
        help="File holding the token's user PIN (or set OPENKMS_PKCS11_PIN).",
    )(fn)
    fn = click.option(
        "--pkcs11-pin",
        "pkcs11_pin",
        envvar="OPENKMS_PKCS11_PIN",
        expose_value=False,
        callback=_remember,
        hidden=True,
    )(fn)
    fn = click.option(
        "--pkcs11-key-label",
        envvar="OPENKMS_PKCS11_KEY_LABEL",
        expose_value=False,
        callback=_remember,
        help="Label of the root key (AES-256) in the token; made at the first start (default: openkms-root).",
    )(fn)
    fn = click.option(
        "--pkcs11-token-label",
        envvar="OPENKMS_PKCS11_TOKEN_LABEL",
        expose_value=False,
        callback=_remember,
        help="Label of the PKCS#11 token holding the root key.",
    )(fn)
    fn = click.option(
        "--pkcs11-module",
        envvar="OPENKMS_PKCS11_MODULE",
        expose_value=False,
        callback=_remember,
        help="Path of the PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).",
    )(fn)
    fn = click.option(
        "--root-key-source",
        type=click.Choice(["file", "pkcs11", "shamir"]),
        envvar="OPENKMS_ROOT_KEY_SOURCE",
        expose_value=False,
        callback=_remember,
        help="Where the root key lives, chosen at the first start and recorded (default: as recorded; "
        "file for a new installation).",
    )(fn)
    return fn


def data_options(fn: F) -> F:
    fn = root_of_trust_options(fn)
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


def trust_settings() -> dict[str, Any]:
    """The root-of-trust options of the running command (empty outside one)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return {}
    return dict(ctx.find_root().meta.get(_TRUST_META, {}))


def settings_from(
    data_dir: Path, database_url: str | None, root_key_file: Path | None, **extra: Any
) -> Settings:
    values = {**trust_settings(), **extra}
    return Settings(data_dir=data_dir, database_url=database_url, root_key_file=root_key_file, **values)
