"""``openkms admin``: accounts, users and access keys, working on the same data as the server.

Every command but ``create-account`` is an IAM operation run as the local administrator
(:class:`LocalIam`): its parameters are checked against botocore's ``iam`` model as the IAM Query API
checks a request's (``wire.query.validate_params``), then the operation's function in
``service/iam/`` runs with ``ctx.caller`` None. Quotas, name rules and error messages are the API's;
a refusal prints ``Error: <AWS error code>: <message>`` and exits 1. ``create-account`` is the
bootstrap of a new account (``service/identity/principals.create_account``), before any IAM caller
exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from openkms.auth.policy import PolicyCache
from openkms.cli.options import data_options, settings_from
from openkms.clock import Clock, clock_from_env
from openkms.crypto.envelope import RootKey
from openkms.crypto.secret import Secret
from openkms.errors import NoSuchEntity, ServiceError
from openkms.service import iam
from openkms.service.iam import IamContext
from openkms.service.identity import principals
from openkms.service.identity.policies import IdentityPolicyCache
from openkms.storage.store import Store
from openkms.wire.query import validate_params


def _open(data_dir: Path, database_url: str | None, root_key_file: Path | None) -> tuple[Store, RootKey]:
    # Late: server.runtime (the whole service layer, ~0.1 s) is needed by the admin commands only.
    from openkms.server.runtime import open_store
    from openkms.service.trust.keyring import RootOfTrustError

    try:
        return open_store(settings_from(data_dir, database_url, root_key_file))
    except RootOfTrustError as exc:
        raise click.ClickException(f"cannot open the keyring: {exc}") from None


@dataclass(frozen=True, slots=True)
class LocalIam:
    """IAM operations as the local administrator, on the data of ``--data-dir``/``--database-url``."""

    store: Store
    root: RootKey
    clock: Clock

    def call(
        self, operation: str, account_id: str, extras: Mapping[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        """Run ``operation`` in ``account_id`` with ``params`` (snake_case, None meaning absent),
        validated as the Query API validates them; ``extras`` are the options of ``openkms admin`` the
        model does not have (``force``). The snake_case result (``{}`` for none)."""
        request = validate_params("iam", operation, params)
        # The local administrator is not authorized by policies: these caches are never read.
        ctx = IamContext(
            self.store,
            self.root,
            self.clock.now(),
            account_id,
            None,
            policies=IdentityPolicyCache(self.store),
            documents=PolicyCache(),
        )
        return iam.OPERATIONS[operation](ctx, **request.params, **(extras or {})) or {}


@contextmanager
def local_iam(data_dir: Path, database_url: str | None, root_key_file: Path | None) -> Iterator[LocalIam]:
    """The IAM operations on the given data; a refused call ends the command with AWS's error code and
    message (exit status 1)."""
    store, root = _open(data_dir, database_url, root_key_file)
    try:
        yield LocalIam(store, root, clock_from_env())
    except ServiceError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    finally:
        store.close()


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
        new = principals.create_account(store, root, clock_from_env().now(), account_id)
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
    """Create an IAM user in an account (CreateUser)."""
    with local_iam(data_dir, database_url, root_key_file) as local:
        user = local.call("CreateUser", account_id, user_name=user_name)["user"]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "AccountId": account_id,
                    "UserName": user["user_name"],
                    "UserId": user["user_id"],
                    "Arn": user["arn"],
                }
            )
        )
    else:
        click.echo(user["arn"])


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
    """Create an access key for a user (CreateAccessKey; usable at once by running servers)."""
    with local_iam(data_dir, database_url, root_key_file) as local:
        key = local.call("CreateAccessKey", account_id, user_name=user_name)["access_key"]
    new = principals.NewAccessKey(
        account_id, key["user_name"], key["access_key_id"], Secret(key["secret_access_key"])
    )
    _print_key(new, as_json)


def _all_keys(local: LocalIam, account_id: str) -> list[dict[str, Any]]:
    """The access keys of every user of the account (ListUsers, then ListAccessKeys for each), oldest
    first; a user deleted meanwhile is skipped."""
    keys: list[dict[str, Any]] = []
    marker = None
    while True:
        page = local.call("ListUsers", account_id, marker=marker, max_items=1000)
        for user in page["users"]:
            try:
                listed = local.call("ListAccessKeys", account_id, user_name=user["user_name"])
            except NoSuchEntity:
                continue
            keys += listed["access_key_metadata"]
        marker = page.get("marker")
        if not page["is_truncated"] or marker is None:
            return sorted(keys, key=lambda k: float(k["create_date"]))


@admin.command("list-access-keys")
@click.option("--account-id", required=True)
@click.option("--user-name", help="Only this user's keys (default: every user's).")
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
    """List access keys (ListAccessKeys; never their secrets)."""
    with local_iam(data_dir, database_url, root_key_file) as local:
        if user_name is None:
            keys = _all_keys(local, account_id)
        else:
            keys = local.call("ListAccessKeys", account_id, user_name=user_name)["access_key_metadata"]
    items = [
        {
            "AccessKeyId": k["access_key_id"],
            "UserName": k["user_name"],
            "Status": k["status"],
            "CreateDate": k["create_date"],
        }
        for k in keys
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
    """Delete an access key (DeleteAccessKey in the key's account, for its user; running servers stop
    accepting it within a second)."""
    with local_iam(data_dir, database_url, root_key_file) as local:
        validate_params("iam", "DeleteAccessKey", {"access_key_id": access_key_id})
        account_id, user_name = iam.access_key_owner(local.store, access_key_id)
        local.call("DeleteAccessKey", account_id, access_key_id=access_key_id, user_name=user_name)
