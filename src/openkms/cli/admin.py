"""``openkms admin``: accounts, users and access keys, working on the same data as the server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from openkms.cli.options import data_options, settings_from
from openkms.service.identity import principals
from openkms.storage.store import Store


def _open(data_dir: Path, database_url: str | None, root_key_file: Path | None) -> tuple[Store, object]:
    # Late: server.runtime (the whole service layer, ~0.1 s) is needed by the admin commands only.
    from openkms.server.runtime import open_store

    return open_store(settings_from(data_dir, database_url, root_key_file))


@click.group()
def admin() -> None:
    """Manage accounts, users and access keys."""


def _print_key(new: principals.NewAccessKey, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "AccountId": new.account_id,
                    "UserName": new.user_name,
                    "AccessKeyId": new.access_key_id,
                    "SecretAccessKey": new.secret_access_key.reveal(),
                }
            )
        )
    else:
        click.echo(f"AccountId:       {new.account_id}")
        click.echo(f"UserName:        {new.user_name}")
        click.echo(f"AccessKeyId:     {new.access_key_id}")
        click.echo(f"SecretAccessKey: {new.secret_access_key.reveal()}")


@admin.command("create-account")
@click.option("--account-id", help="12-digit account id (default: random).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@data_options
def create_account(
    account_id: str | None,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Create an account with an administrator user and access key."""
    store, root = _open(data_dir, database_url, root_key_file)
    try:
        new = principals.create_account(store, root, time.time(), account_id)  # type: ignore[arg-type]
    except principals.PrincipalError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    _print_key(new, as_json)


@admin.command("create-user")
@click.option("--account-id", required=True)
@click.option("--user-name", required=True)
@click.option("--json", "as_json", is_flag=True)
@data_options
def create_user(
    account_id: str,
    user_name: str,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Create an IAM user in an account."""
    store, _ = _open(data_dir, database_url, root_key_file)
    try:
        user = principals.create_user(store, account_id, user_name, time.time())
    except principals.PrincipalError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    arn = f"arn:aws:iam::{user.account_id}:user/{user.user_name}"
    if as_json:
        click.echo(
            json.dumps(
                {"AccountId": user.account_id, "UserName": user.user_name, "UserId": user.user_id, "Arn": arn}
            )
        )
    else:
        click.echo(arn)


@admin.command("create-access-key")
@click.option("--account-id", required=True)
@click.option("--user-name", required=True)
@click.option("--json", "as_json", is_flag=True)
@data_options
def create_access_key(
    account_id: str,
    user_name: str,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """Create an access key for a user (usable at once by running servers)."""
    store, root = _open(data_dir, database_url, root_key_file)
    try:
        new = principals.create_access_key(store, root, account_id, user_name, time.time())  # type: ignore[arg-type]
    except principals.PrincipalError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    _print_key(new, as_json)


@admin.command("list-access-keys")
@click.option("--account-id", required=True)
@click.option("--user-name")
@click.option("--json", "as_json", is_flag=True)
@data_options
def list_access_keys(
    account_id: str,
    user_name: str | None,
    as_json: bool,
    data_dir: Path,
    database_url: str | None,
    root_key_file: Path | None,
) -> None:
    """List access keys (never their secrets)."""
    store, _ = _open(data_dir, database_url, root_key_file)
    try:
        rows = principals.list_access_keys(store, account_id, user_name)
    finally:
        store.close()
    items = [
        {
            "AccessKeyId": r.access_key_id,
            "UserName": r.user_name,
            "Status": r.status,
            "CreateDate": r.created_at,
        }
        for r in rows
    ]
    if as_json:
        click.echo(json.dumps(items))
    else:
        for item in items:
            click.echo(f"{item['AccessKeyId']}  {item['UserName']}  {item['Status']}")


@admin.command("delete-access-key")
@click.option("--access-key-id", required=True)
@data_options
def delete_access_key(
    access_key_id: str, data_dir: Path, database_url: str | None, root_key_file: Path | None
) -> None:
    """Delete an access key (running servers stop accepting it within a second)."""
    store, _ = _open(data_dir, database_url, root_key_file)
    try:
        found = principals.delete_access_key(store, access_key_id)
    finally:
        store.close()
    if not found:
        raise click.ClickException(f"Access key {access_key_id} does not exist")
