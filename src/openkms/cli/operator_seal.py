"""``openkms operator init|unseal|seal|status|rekey``: the Shamir root of trust and moving the keyring
from one root of trust to another.

- ``init`` makes a new installation sealed by Shamir shares, its first account and administrator key;
  it prints the shares once (they are stored nowhere) and the credentials.
- ``unseal``/``seal``/``status`` talk to a running server (``/sys/…``; :mod:`openkms.server.sys_app`).
  ``seal`` is signed with the AWS credentials of the environment (as the AWS CLI finds them).
- ``rekey`` works on the data directly (servers stopped, or they use the new wrapping from their next
  start or unseal): the keyring is wrapped under the new root of trust, no sealed row changes.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import click

from openkms.cli.operator import operator
from openkms.cli.options import data_options, read_shares, settings_from
from openkms.clock import SystemClock

_CA_BUNDLE = click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False),
    envvar="AWS_CA_BUNDLE",
    help="PEM CA certificates to verify the server's TLS certificate with (or AWS_CA_BUNDLE).",
)
_ENDPOINT = click.option(
    "--endpoint-url",
    required=True,
    envvar="OPENKMS_ENDPOINT_URL",
    help="The server, e.g. https://127.0.0.1:8730 (each server process is sealed and unsealed on its own).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


def _shares_lines(shares: list[str], threshold: int) -> list[str]:
    lines = [
        f"Unseal shares: any {threshold} of these {len(shares)} rebuild the root key. They are shown once "
        "and stored nowhere: give each to its holder now.",
    ]
    lines += [f"Unseal share {n}: {text}" for n, text in enumerate(shares, 1)]
    return lines


@operator.command("init")
@click.option("--key-shares", type=click.IntRange(1, 255), required=True, help="Shares to make (N).")
@click.option(
    "--key-threshold",
    type=click.IntRange(1, 255),
    required=True,
    help="Shares that rebuild the root key (T).",
)
@click.option("--account-id", help="12-digit id of the first account (default: random).")
@_JSON
@data_options
def init(
    key_shares: int,
    key_threshold: int,
    account_id: str | None,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Make a new installation sealed by Shamir shares; print the shares and the first credentials."""
    from openkms.crypto.shamir import check_parameters
    from openkms.server.root_of_trust import init_shamir
    from openkms.server.runtime import prepare_data_dir
    from openkms.service.identity import principals
    from openkms.service.trust.keyring import RootOfTrustError
    from openkms.storage.store import Store

    try:
        check_parameters(key_shares, key_threshold)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    settings = settings_from(data_dir, database_url, root_key_file)
    if settings.root_key_source not in (None, "shamir"):
        raise click.UsageError(
            "operator init makes an installation sealed by Shamir shares; a file or pkcs11 installation "
            "is made by its first openkms serve"
        )
    prepare_data_dir(settings)
    store = Store(settings.db_url, SystemClock())
    try:
        with store.read() as tx:
            if tx.list_accounts():
                raise click.ClickException("this installation is initialized already (it has accounts)")
        now = SystemClock().now()
        try:
            shares, trust = init_shamir(store, key_shares, key_threshold, now)
        except RootOfTrustError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            new = principals.create_account(store, trust.root, now, account_id)
        except principals.PrincipalError as exc:
            raise click.ClickException(f"the keyring is made but the account is not: {exc}") from None
    finally:
        store.close()
    secret = new.secret_access_key.reveal()
    if as_json:
        doc = {
            "UnsealShares": shares,
            "KeyShares": key_shares,
            "KeyThreshold": key_threshold,
            "AccountId": new.account_id,
            "UserName": new.user_name,
            "AccessKeyId": new.access_key_id,
            "SecretAccessKey": secret,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    for line in _shares_lines(shares, key_threshold):
        click.echo(line)
    click.echo("")
    click.echo(f"Created account {new.account_id} and its administrator key ({new.user_name}):")
    click.echo(f"export AWS_ACCESS_KEY_ID={new.access_key_id}")
    click.echo(f"export AWS_SECRET_ACCESS_KEY={secret}")
    click.echo("")
    click.echo(
        "Start the server (openkms serve …): it starts sealed; unseal it with openkms operator unseal."
    )


def _call(endpoint: str, method: str, path: str, ca_bundle: str | None, **kw: Any) -> Any:
    from openkms.wire.sys_client import SysClientError, call

    try:
        return call(endpoint, method, path, ca_bundle=ca_bundle, **kw)
    except SysClientError as exc:
        raise click.ClickException(str(exc)) from None


def _refused(answer: Any) -> None:
    message = answer.body.get("message") or answer.body.get("__type") or "refused"
    raise click.ClickException(f"{message} (HTTP {answer.status})")


def _print_status(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    state = "sealed" if body.get("sealed") else "unsealed"
    click.echo(f"Sealed: {str(bool(body.get('sealed'))).lower()} ({state})")
    if body.get("threshold") is not None:
        click.echo(f"Unseal progress: {body.get('progress')}/{body.get('threshold')}")
    if "source" in body:
        click.echo(f"Root of trust: {body.get('source')}")
    rotation = body.get("rotation")
    if isinstance(rotation, dict):
        click.echo(
            f"Root key rotation: {rotation.get('state')} "
            f"({rotation.get('resealed')}/{rotation.get('total')} resealed)"
        )


@operator.command("unseal")
@_ENDPOINT
@click.option(
    "--share", help="The share (default: read from standard input; asked for without echo on a terminal)."
)
@_CA_BUNDLE
@_JSON
def unseal(endpoint_url: str, share: str | None, ca_bundle: str | None, as_json: bool) -> None:
    """Give one Shamir share to a sealed server."""
    if share is None:
        texts = read_shares() if not os.isatty(0) else _one_prompted()
        if len(texts) != 1:
            raise click.UsageError("give exactly one share (one line on standard input)")
        share = texts[0]
    answer = _call(endpoint_url, "POST", "/sys/unseal", ca_bundle, document={"share": share})
    if answer.status != 200:
        _refused(answer)
    _print_status(answer.body, as_json)


def _one_prompted() -> list[str]:
    text = click.prompt("Unseal share", hide_input=True).strip()
    return [text] if text else []


@operator.command("seal")
@_ENDPOINT
@_CA_BUNDLE
@_JSON
def seal(endpoint_url: str, ca_bundle: str | None, as_json: bool) -> None:
    """Seal a running server (signed with the environment's AWS credentials: an administrator's)."""
    answer = _call(endpoint_url, "POST", "/sys/seal", ca_bundle, document={}, signed=True)
    if answer.status != 200:
        _refused(answer)
    _print_status(answer.body, as_json)


@operator.command("status")
@_ENDPOINT
@_CA_BUNDLE
@_JSON
def status(endpoint_url: str, ca_bundle: str | None, as_json: bool) -> None:
    """A server's seal status, unseal progress and root key rotation."""
    answer = _call(endpoint_url, "GET", "/sys/seal-status", ca_bundle)
    if answer.status != 200:
        _refused(answer)
    _print_status(answer.body, as_json)


@operator.command("rekey")
@click.option(
    "--to",
    "target",
    type=click.Choice(["file", "shamir", "pkcs11"]),
    required=True,
    help="The new root of trust (shamir to shamir makes new shares).",
)
@click.option("--key-shares", type=click.IntRange(1, 255), help="Shares to make (--to shamir).")
@click.option(
    "--key-threshold", type=click.IntRange(1, 255), help="Shares that rebuild the key (--to shamir)."
)
@click.option(
    "--new-root-key-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The new root key file (--to file; made, must not exist; default: --root-key-file's path, "
    "<data-dir>/root.key).",
)
@_JSON
@data_options
def rekey(
    target: str,
    key_shares: int | None,
    key_threshold: int | None,
    new_root_key_file: Path | None,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Wrap the keyring under another root of trust (no sealed row changes). Open the installation as
    today (its root key file, token or --unseal-share); run it with the servers stopped, or they need the
    new root of trust from their next start (a shamir server: the new shares at its next unseal)."""
    from openkms.crypto import shamir
    from openkms.crypto.envelope import ROOT_KEY_BYTES, AesKek, Kek, read_root_key_file
    from openkms.server.root_of_trust import pkcs11_config, pkcs11_kek, token_errors
    from openkms.server.runtime import open_trusted_store
    from openkms.service.trust import keyring
    from openkms.service.trust.keyring import RootOfTrustError

    shares_count, threshold = key_shares or 0, key_threshold or 0
    if target == "shamir":
        if key_shares is None or key_threshold is None:
            raise click.UsageError("--to shamir needs --key-shares and --key-threshold")
        try:
            shamir.check_parameters(key_shares, key_threshold)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    elif key_shares is not None or key_threshold is not None:
        raise click.UsageError("--key-shares and --key-threshold go with --to shamir")
    settings = settings_from(data_dir, database_url, root_key_file)
    try:
        store, trust = open_trusted_store(settings)
    except RootOfTrustError as exc:
        raise click.ClickException(f"cannot open the keyring: {exc}") from None
    try:
        old = trust.kek
        if old is None:
            raise click.ClickException(
                "this installation is sealed by Shamir shares: give enough of them with --unseal-share"
            )
        if target == trust.source and target != "shamir":
            raise click.ClickException(f"the root of trust is {target} already")
        shares: list[str] = []
        new: Kek
        config: dict[str, Any]
        new_file: Path | None = None
        try:
            if target == "shamir":
                raw = os.urandom(ROOT_KEY_BYTES)
                shares = [s.to_text() for s in shamir.split(raw, shares_count, threshold)]
                new = AesKek(raw, source="shamir")
                config = {"shares": shares_count, "threshold": threshold}
            elif target == "file":
                new_file = new_root_key_file or settings.root_key_path
                if new_file.exists():
                    raise click.ClickException(
                        f"{new_file} exists: give a new file's path with --new-root-key-file (or move "
                        "the old file away)"
                    )
                new = AesKek(read_root_key_file(new_file, create=True), source="file")
                config = {}
            else:
                new = pkcs11_kek(settings, {}, create=True)
                config = pkcs11_config(settings, new)
            with token_errors() if "pkcs11" in (target, trust.source) else contextlib.nullcontext():
                keyring.rewrap(store, old, new, config, SystemClock().now())
        except RootOfTrustError as exc:
            if new_file is not None and new_file.exists() and target == "file":
                new_file.unlink()  # never used: the keyring is not wrapped under it
            raise click.ClickException(str(exc)) from None
        old_source = trust.source
    finally:
        store.close()
    notes = [f"The keyring is now wrapped under the {target} root of trust (it was {old_source})."]
    if old_source == "file":
        notes.append(
            f"The old root key file {settings.root_key_path} no longer opens it: keep it only as long as "
            "backups made before this rekey, then delete it."
        )
    if new_file is not None:
        notes.append(
            f"The new root key file is {new_file}: start the servers with --root-key-file {new_file}."
        )
    notes.append(
        "Running servers keep the keyring they opened; from their next start (or unseal) they need the new "
        "root of trust."
    )
    if as_json:
        doc: dict[str, Any] = {"Source": target, "PreviousSource": old_source}
        if shares:
            doc.update(UnsealShares=shares, KeyShares=key_shares, KeyThreshold=key_threshold)
        if new_file is not None:
            doc["RootKeyFile"] = str(new_file)
        click.echo(json.dumps(doc, indent=2))
        return
    if shares:
        for line in _shares_lines(shares, threshold):
            click.echo(line)
    for line in notes:
        click.echo(line)
