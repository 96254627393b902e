"""The one JSON loader for policy documents (key policies, IAM identity and trust policies, the
console's policy editor).

Two modes, chosen by where the document comes from:

* ``strict=True`` - a document being *submitted* (CreateKey, PutKeyPolicy, the IAM APIs): what AWS
  refuses as malformed is refused - ``NaN``, ``Infinity`` and ``-Infinity``, a number that is not
  finite as a double (``1e999``, an integer of more than 308 digits) and a key repeated in the same
  object (at any depth);
* ``strict=False`` - a document already *stored* (read for every authorization, GetKeyPolicy, the
  console): parsed as it was when it was accepted (Python's ``json``: the last duplicate wins), so a
  policy stored before the strict rule existed never locks its key or its principal out.

Both raise :class:`PolicyJSONError` (a ``ValueError``) for text that is not JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

_MAX_INT_DIGITS = 308  # beyond this an integer is not finite as a double (AWS's numbers are)


class PolicyJSONError(ValueError):
    """The text is not a JSON document the mode accepts."""


def _constant(name: str) -> Any:
    raise PolicyJSONError(f"not a JSON number: {name}")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PolicyJSONError("number out of range")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise PolicyJSONError("number out of range")
    return int(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise PolicyJSONError("duplicate key")
        out[key] = value
    return out


_STRICT = json.JSONDecoder(
    object_pairs_hook=_object, parse_constant=_constant, parse_float=_float, parse_int=_int
)
_LENIENT = json.JSONDecoder()


def load_policy_json(text: str, *, strict: bool) -> Any:
    """The JSON value of ``text``; raises :class:`PolicyJSONError` when it is not acceptable."""
    try:
        return (_STRICT if strict else _LENIENT).decode(text)
    except PolicyJSONError:
        raise
    except (ValueError, RecursionError) as exc:
        raise PolicyJSONError(str(exc)) from None
