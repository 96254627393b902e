"""``openkms operator rotate-root-key``: starts a root key rotation (a new keyring version for new seals,
:mod:`openkms.service.trust.rotation`) and re-seals the stored values under it to completion, alongside
running servers (whose ``reseal-root-key`` job does the same work; ``--no-wait`` leaves it to them). A
rotation already running (a run killed in the middle) is resumed, not started again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from openkms.cli.operator import operator
from openkms.cli.options import data_options, settings_from
from openkms.cli.progress import Progress

if TYPE_CHECKING:
    from openkms.crypto.envelope import Kek
    from openkms.storage.store import Store


@operator.command("rotate-root-key")
@click.option("--no-wait", is_flag=True, help="Start the rotation and leave the re-sealing to the servers.")
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=200,
    show_default=True,
    help="Values re-sealed per transaction.",
)
@data_options
def rotate_root_key(
    no_wait: bool, batch: int, data_dir: Path, database_url: str | None, root_key_file: Path | None
) -> None:
    """Rotate the root key's data-encryption key: new seals use a new version at once on every server,
    stored values are re-sealed online, and the old version is destroyed when nothing uses it."""
    # Late: the store and the crypto are loaded by this command only, not by every `openkms` call.
    from openkms.server.root_of_trust import open_trust, token_errors
    from openkms.server.runtime import DB_FILE, prepare_data_dir
    from openkms.service.trust import keyring
    from openkms.service.trust.keyring import RootOfTrustError
    from openkms.storage.store import Store

    settings = settings_from(data_dir, database_url, root_key_file)
    if database_url is None and not (data_dir / DB_FILE).exists():
        raise click.ClickException(f"no openkms data in {data_dir}")
    prepare_data_dir(settings)
    store = Store(settings.db_url)
    try:
        if keyring.stored(store) is None:
            raise click.ClickException(
                "this installation has no keyring yet: start `openkms serve` on it once first"
            )
        try:
            trust = open_trust(store, settings)
        except RootOfTrustError as exc:
            raise click.ClickException(f"cannot open the keyring: {exc}") from None
        if trust.kek is None:
            raise click.ClickException(
                "this installation is sealed by Shamir shares: give enough of them with --unseal-share "
                "(repeatable; --unseal-share - reads them from standard input)"
            )
        try:
            with token_errors():
                _rotate(store, trust.kek, no_wait, batch)
        except RootOfTrustError as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        store.close()


def _rotate(store: Store, kek: Kek, no_wait: bool, batch: int) -> None:
    from openkms.clock import SystemClock
    from openkms.service.trust import rotation

    clock = SystemClock()
    try:
        row = rotation.start(store, kek, clock.now())
        click.echo(
            f"root key rotation started: keyring version {rotation.active_version(row, kek)} seals new "
            f"values; {row.rotation_total} stored values to re-seal"
        )
    except rotation.RotationRunning:
        row = rotation.current(store)
        click.echo(
            f"a root key rotation is already running ({row.rotation_resealed}/{row.rotation_total} "
            "re-sealed): resuming it"
        )
    if no_wait:
        click.echo("the servers' background job re-seals the rest")
        return
    resealer = rotation.Resealer(store, lambda: kek, clock.now)
    with Progress("re-sealing", row.rotation_total) as progress:
        while True:
            try:
                step = resealer.step(batch)
            except rotation.RotationError as exc:
                raise click.ClickException(str(exc)) from None
            if step.row is not None:
                progress.update(step.row.rotation_resealed, step.row.rotation_total)
            if not step.running:
                break
            if step.idle:
                time.sleep(0.2)
    if step.row is None or step.row.rotation_state != "done":
        raise click.ClickException("the rotation was abandoned (the keyring was changed meanwhile)")
    version = rotation.active_version(step.row, kek)
    click.echo(f"root key rotation done: the keyring holds version {version} only")
