"""Generating key material for each key spec the service implements."""

from __future__ import annotations

import os

from openkms.domain.keyspec import KeySpec

# Key specs whose cryptography is implemented. CreateKey refuses the others with a clear error.
SUPPORTED_SPECS: frozenset[KeySpec] = frozenset({KeySpec.SYMMETRIC_DEFAULT})


def generate_material(spec: KeySpec) -> bytes:
    if spec is KeySpec.SYMMETRIC_DEFAULT:
        return os.urandom(32)
    raise NotImplementedError(spec)
