"""``openkms operator``: the root of trust — making an installation sealed by Shamir shares, unsealing
and sealing a running server, its status, rotating the root key and moving the keyring to another root
of trust. The commands live in ``operator_*.py`` modules, registered on this group by ``cli/main.py``."""

from __future__ import annotations

import click


@click.group()
def operator() -> None:
    """The root of trust: init, unseal, seal, status, rotate-root-key, rekey."""
