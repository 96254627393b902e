"""The explicit checks that stand where the package once had ``assert``: a client's mistake is answered
with AWS's error as before, and a broken invariant raises :class:`openkms.errors.InternalError` (which
every entry point answers as an internal error), also under ``python -O``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from openkms.auth.policy import PolicyCache
from openkms.crypto import wrapping
from openkms.crypto.asymmetric import generate_private_key
from openkms.crypto.envelope import RootKey
from openkms.domain.keyspec import KeySpec
from openkms.errors import InternalError, ServiceError, ValidationException
from openkms.service.iam import sts
from openkms.service.iam.common import IamContext
from openkms.service.identity.policies import IdentityPolicyCache
from openkms.service.kms.crypto_ops import _data_key_length
from openkms.storage.store import Store


def test_data_key_length_keeps_aws_messages() -> None:
    assert _data_key_length("AES_256", None) == 32
    assert _data_key_length("AES_128", None) == 16
    assert _data_key_length(None, 7) == 7
    with pytest.raises(ValidationException) as neither:
        _data_key_length(None, None)
    assert neither.value.message == "Please specify either number of bytes or key spec."
    with pytest.raises(ValidationException) as both:
        _data_key_length("AES_256", 32)
    assert both.value.message == "Please specify either number of bytes or key spec, not both."


def test_an_internal_error_is_not_a_client_error() -> None:
    assert not issubclass(InternalError, ServiceError)


def test_unwrapping_with_a_key_that_is_not_rsa_is_an_internal_error() -> None:
    not_rsa = generate_private_key(KeySpec.ECC_NIST_P256)
    with pytest.raises(InternalError):
        wrapping.unwrap("RSAES_OAEP_SHA_256", not_rsa, b"\x00" * 256)


def test_sts_without_a_caller_is_an_internal_error(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        ctx = IamContext(
            store,
            RootKey(os.urandom(32)),
            0.0,
            "111122223333",
            None,
            policies=IdentityPolicyCache(store),
            documents=PolicyCache(),
        )
        with pytest.raises(InternalError):
            sts.get_caller_identity(ctx)
        with pytest.raises(InternalError):
            sts.assume_role(ctx, role_arn="arn:aws:iam::111122223333:role/r", role_session_name="s")
    finally:
        store.close()
