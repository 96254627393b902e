"""The pkcs11 root of trust's key holder against a real SoftHSM2 token: the keyring wrapped and
unwrapped by CKM_AES_GCM inside the token, tampering refused, the key kept in the token, and every way
of not reaching the token told apart in words an operator can act on."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass

from openkms.crypto.envelope import SealError
from openkms.crypto.pkcs11 import Pkcs11Error, Pkcs11Kek
from tests.softhsm import SoftToken, decrypt_in_token, init_token, module_path, use_in_this_process

KEY = "unit-root"


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftToken]:
    before = os.environ.get("SOFTHSM2_CONF")
    made = init_token(tmp_path_factory.mktemp("softhsm"), label="unit-token")
    use_in_this_process(made)
    yield made
    if before is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = before


@pytest.fixture(scope="module")
def kek(token: SoftToken) -> Pkcs11Kek:
    return Pkcs11Kek(module_path(), token.label, KEY, token.pin, create=True)


def test_wrap_unwrap_round_trip(token: SoftToken, kek: Pkcs11Kek) -> None:
    plaintext = os.urandom(200)
    blob = kek.wrap(plaintext)
    assert len(blob) == 12 + len(plaintext) + 16
    assert plaintext not in blob
    assert kek.unwrap(blob) == plaintext
    assert kek.wrap(plaintext)[:12] != blob[:12]  # a random IV every time
    assert kek.source == "pkcs11" and kek.key_label == KEY
    assert token.pin not in repr(kek)
    # Another holder (a restart: create=False) finds the same key and opens what the first wrapped.
    again = Pkcs11Kek(module_path(), token.label, KEY, token.pin, create=False)
    assert again.unwrap(blob) == plaintext


def test_the_format_is_aes_gcm_in_the_token(token: SoftToken, kek: Pkcs11Kek) -> None:
    """iv ‖ ciphertext ‖ tag under the associated data openkms/keyring/v1, as python-pkcs11 itself
    decrypts it with the token's key in another process."""
    blob = kek.wrap(b"the keyring")
    assert decrypt_in_token(token, KEY, blob) == b"the keyring"


def test_tampered_or_foreign_blobs_are_seal_errors(token: SoftToken, kek: Pkcs11Kek) -> None:
    blob = kek.wrap(b"x" * 64)
    for position in (0, 11, 12, 40, len(blob) - 1):  # the IV, the ciphertext, the tag
        changed = bytearray(blob)
        changed[position] ^= 0x01
        with pytest.raises(SealError):
            kek.unwrap(bytes(changed))
    for short in (b"", blob[:12], blob[:27], blob[:-1]):
        with pytest.raises(SealError):
            kek.unwrap(short)
    other = Pkcs11Kek(module_path(), token.label, "unit-other", token.pin, create=True)
    with pytest.raises(SealError):
        other.unwrap(blob)
    assert kek.unwrap(blob) == b"x" * 64  # the token still works after the refusals


def test_the_key_is_a_non_extractable_aes_256_token_object(token: SoftToken, kek: Pkcs11Kek) -> None:
    lib = pkcs11.lib(module_path())
    with lib.get_token(token_label=token.label).open(user_pin=token.pin) as session:
        (key,) = session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: KEY})
        assert key[Attribute.KEY_TYPE] == KeyType.AES
        assert key[Attribute.VALUE_LEN] == 32
        assert key[Attribute.TOKEN] is True
        assert key[Attribute.PRIVATE] is True
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.NEVER_EXTRACTABLE] is True
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[Attribute.VALUE]
    # Without logging in, the key is not even visible.
    with lib.get_token(token_label=token.label).open() as session:
        assert list(session.get_objects({Attribute.LABEL: KEY})) == []


def test_a_wrong_pin_is_told_without_the_pin(token: SoftToken, kek: Pkcs11Kek) -> None:
    with pytest.raises(Pkcs11Error) as caught:
        Pkcs11Kek(module_path(), token.label, KEY, "9999-wrong", create=False)
    message = str(caught.value)
    assert "CKR_PIN_INCORRECT" in message and "unit-token" in message
    assert "9999-wrong" not in message and token.pin not in message
    # The right PIN still works afterwards.
    assert (
        Pkcs11Kek(module_path(), token.label, KEY, token.pin, create=False).unwrap(kek.wrap(b"ok")) == b"ok"
    )


def test_a_missing_token_or_key_is_named(token: SoftToken, kek: Pkcs11Kek) -> None:
    with pytest.raises(Pkcs11Error, match=r"no PKCS#11 token labelled 'no-such-token'.*'unit-token'"):
        Pkcs11Kek(module_path(), "no-such-token", KEY, token.pin, create=False)
    with pytest.raises(Pkcs11Error, match=r"no key labelled 'never-made' in the PKCS#11 token 'unit-token'"):
        Pkcs11Kek(module_path(), token.label, "never-made", token.pin, create=False)
    # Refusing did not make it.
    with pytest.raises(Pkcs11Error, match="no key labelled 'never-made'"):
        Pkcs11Kek(module_path(), token.label, "never-made", token.pin, create=False)


def test_a_module_that_does_not_load_is_named(tmp_path: Path, token: SoftToken) -> None:
    with pytest.raises(Pkcs11Error, match=r"cannot load the PKCS#11 module /no/such/libpkcs11.so"):
        Pkcs11Kek("/no/such/libpkcs11.so", token.label, KEY, token.pin, create=True)
    not_a_library = tmp_path / "module.so"
    not_a_library.write_bytes(b"not an ELF file")
    with pytest.raises(Pkcs11Error, match=f"cannot load the PKCS#11 module {not_a_library}"):
        Pkcs11Kek(str(not_a_library), token.label, KEY, token.pin, create=True)


def test_an_extractable_key_under_the_label_is_refused(token: SoftToken) -> None:
    lib = pkcs11.lib(module_path())
    with lib.get_token(token_label=token.label).open(rw=True, user_pin=token.pin) as session:
        session.generate_key(
            KeyType.AES,
            256,
            label="unit-weak",
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
        )
    with pytest.raises(Pkcs11Error, match=r"'unit-weak' .* can leave the token"):
        Pkcs11Kek(module_path(), token.label, "unit-weak", token.pin, create=True)


def test_concurrent_use_from_threads(kek: Pkcs11Kek) -> None:
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                plaintext = f"{n}/{i}".encode() * 10
                assert kek.unwrap(kek.wrap(plaintext)) == plaintext
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
