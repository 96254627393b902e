"""AWS's "key states: effect on your KMS key" table: what each row allows (which row an operation has is
its record's ``key_state`` in ``domain/operations.py``).

:func:`check_key_state` raises the exception AWS raises for an operation on a key in a given state,
with AWS's message (short forms as observed on AWS: "<arn> is pending deletion.", "<arn> is pending
import.", and for multi-Region keys "<arn> is creating.", "<arn> is updating.", "<arn> is pending
replica deletion."). Rules that depend on the key type (rotation of asymmetric keys...) are checked
after this, as AWS checks state before key type.
"""

from __future__ import annotations

from collections.abc import Callable

from openkms.domain.keyspec import Origin
from openkms.domain.model import KeyRecord, KeyState
from openkms.domain.operations import OPERATIONS, KeyStateRule
from openkms.errors import DisabledException, KMSInvalidStateException, UnsupportedOperationException


def _disabled(key: KeyRecord) -> Exception:
    return DisabledException(f"{key.arn} is disabled.")


def _pending_deletion(key: KeyRecord) -> Exception:
    if key.key_state is KeyState.PENDING_REPLICA_DELETION:
        return KMSInvalidStateException(f"{key.arn} is pending replica deletion.")
    return KMSInvalidStateException(f"{key.arn} is pending deletion.")


def _pending_import(key: KeyRecord) -> Exception:
    return KMSInvalidStateException(f"{key.arn} is pending import.")


def _creating(key: KeyRecord) -> Exception:
    """Footnote 14: a multi-Region replica key that ReplicateKey is still creating."""
    return KMSInvalidStateException(f"{key.arn} is creating.")


def _updating(key: KeyRecord) -> Exception:
    """Footnote 15: a multi-Region key whose primary Region UpdatePrimaryRegion is still changing."""
    return KMSInvalidStateException(f"{key.arn} is updating.")


def _origin_external(key: KeyRecord) -> Exception:
    return UnsupportedOperationException(
        f"{key.arn} origin is EXTERNAL which is not valid for this operation."
    )


def _not_pending_deletion(key: KeyRecord) -> Exception:
    return KMSInvalidStateException(f"{key.arn} is not pending deletion (or pending replica deletion).")


_PD = (KeyState.PENDING_DELETION, KeyState.PENDING_REPLICA_DELETION)
Rule = Callable[[KeyRecord], Exception | None]


def _usable(key: KeyRecord) -> Exception | None:
    """Cryptographic use: Enabled keys, and multi-Region keys while their primary Region is updated."""
    state = key.key_state
    if state is KeyState.ENABLED or state is KeyState.UPDATING:
        return None
    if state is KeyState.DISABLED:
        return _disabled(key)
    if state in _PD:
        return _pending_deletion(key)
    if state is KeyState.PENDING_IMPORT:
        return _pending_import(key)
    if state is KeyState.CREATING:
        return _creating(key)
    return KMSInvalidStateException(f"{key.arn} is {state.lower()}.")


def _replicate(key: KeyRecord) -> Exception | None:
    """ReplicateKey: as cryptographic use, but not while the primary Region is being updated."""
    return _updating(key) if key.key_state is KeyState.UPDATING else _usable(key)


def _always(key: KeyRecord) -> Exception | None:
    return None


def _not_pd(key: KeyRecord) -> Exception | None:
    return _pending_deletion(key) if key.key_state in _PD else None


def _enable_disable(key: KeyRecord) -> Exception | None:
    if key.key_state in _PD:
        return _pending_deletion(key)
    if key.key_state is KeyState.PENDING_IMPORT:
        return _pending_import(key)
    if key.key_state is KeyState.CREATING:
        return _creating(key)
    if key.key_state is KeyState.UPDATING:
        return _updating(key)
    return None


def _rotation_setting(key: KeyRecord) -> Exception | None:
    if key.key_state is KeyState.DISABLED:
        return _disabled(key)
    if key.key_state in _PD:
        return _pending_deletion(key)
    if key.key_state is KeyState.CREATING:
        return _creating(key)
    if key.key_state is KeyState.PENDING_IMPORT or key.origin is Origin.EXTERNAL:
        return _origin_external(key)
    return None


def _rotation_status(key: KeyRecord) -> Exception | None:
    if key.key_state is KeyState.PENDING_IMPORT:
        return _origin_external(key)
    return None


def _rotate_on_demand(key: KeyRecord) -> Exception | None:
    if key.key_state is KeyState.DISABLED:
        return _disabled(key)
    if key.key_state in _PD:
        return _pending_deletion(key)
    if key.key_state is KeyState.PENDING_IMPORT:
        return _pending_import(key)
    if key.key_state is KeyState.CREATING:
        return _creating(key)
    return None


def _cancel_deletion(key: KeyRecord) -> Exception | None:
    return None if key.key_state in _PD else _not_pending_deletion(key)


def _schedule_deletion(key: KeyRecord) -> Exception | None:
    if key.key_state is KeyState.UPDATING:
        return _updating(key)
    return _not_pd(key)


def _import_parameters(key: KeyRecord) -> Exception | None:
    if key.key_state is KeyState.CREATING:
        return _creating(key)
    if key.key_state is KeyState.UPDATING:
        return _updating(key)
    return _not_pd(key)


def _import(key: KeyRecord) -> Exception | None:
    if key.key_state is KeyState.CREATING:
        return _creating(key)
    return _not_pd(key)


def _delete_material(key: KeyRecord) -> Exception | None:
    if key.key_state is KeyState.CREATING:
        return _creating(key)
    if key.key_state is KeyState.UPDATING:
        return _updating(key)
    return None


# What each row of the table allows; which row an operation has is its record's ``key_state``.
_RULE_OF: dict[KeyStateRule, Rule] = {
    KeyStateRule.USABLE: _usable,
    KeyStateRule.ANY_STATE: _always,
    KeyStateRule.NOT_PENDING_DELETION: _not_pd,
    KeyStateRule.ENABLE_DISABLE: _enable_disable,
    KeyStateRule.ROTATION_SETTING: _rotation_setting,
    KeyStateRule.ROTATION_STATUS: _rotation_status,
    KeyStateRule.ROTATE_ON_DEMAND: _rotate_on_demand,
    KeyStateRule.CANCEL_DELETION: _cancel_deletion,
    KeyStateRule.REPLICATE: _replicate,
    KeyStateRule.SCHEDULE_DELETION: _schedule_deletion,
    KeyStateRule.IMPORT_PARAMETERS: _import_parameters,
    KeyStateRule.IMPORT: _import,
    KeyStateRule.DELETE_IMPORTED: _delete_material,
}

#: Operation name -> its rule, for the operations that act on a key.
RULES: dict[str, Rule] = {
    name: _RULE_OF[facts.key_state] for name, facts in OPERATIONS.items() if facts.key_state is not None
}


def check_key_state(operation: str, key: KeyRecord) -> None:
    """Raise AWS's exception if ``operation`` may not run on ``key`` in its current state."""
    error = RULES[operation](key)
    if error is not None:
        raise error
