"""The ``pkcs11`` root of trust: a non-extractable AES-256 key in a PKCS#11 token wraps the keyring.

:class:`Pkcs11Kek` is a :class:`~openkms.crypto.envelope.Kek` whose key never leaves the token: the
keyring is encrypted and decrypted *inside* the token with ``CKM_AES_GCM`` (a random 12-byte IV, fixed
associated data), stored as ``iv ‖ ciphertext ‖ tag``. The keyring is wrapped at the first start and
unwrapped at every start and reload, never on the hot path, so every operation opens its own logged-in
session and closes it (no session outlives the call; the PIN stays in the process for the next login,
and in no ``repr``); one lock per process serialises them, as the token's login state is shared by all
sessions of the process.

The key is a token object (``CKA_TOKEN``) labelled ``key_label``, private, sensitive and not extractable;
it is generated in the token when ``create`` is true and no key has the label. Every problem reaching
the token (its module, its label, its PIN, the key) is a :class:`Pkcs11Error` whose message says what
to fix, and never holds the PIN; a blob the key does not open is a :class:`SealError`.

The PKCS#11 library is ``python-pkcs11``; only this module imports it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as ck
from pkcs11.mechanisms import GCMParams

from openkms.crypto.envelope import SealError

_AAD = b"openkms/keyring/v1"
_IV_BYTES = 12
_TAG_BYTES = 16
_KEY_BITS = 256

# Sessions of one process share the token's login state (C_Login on a second session fails with
# CKR_USER_ALREADY_LOGGED_IN; closing the last one logs out): one operation at a time in the process.
_TOKEN_LOCK = threading.RLock()

# What a token answers to a ciphertext its key does not open (SoftHSM2: CKR_GENERAL_ERROR; others
# CKR_ENCRYPTED_DATA_INVALID ...): the blob is not ours, or was changed.
_NOT_OPENED = (
    ck.EncryptedDataInvalid,
    ck.EncryptedDataLenRange,
    ck.DataInvalid,
    ck.DataLenRange,
    ck.GeneralError,
    ck.FunctionFailed,
)


class Pkcs11Error(Exception):
    """The token cannot be used (module, token, PIN or key)."""


def _code(exc: BaseException) -> str:
    """``CKR_PIN_INCORRECT`` for python-pkcs11's ``PinIncorrect`` (its messages are often empty)."""
    name = type(exc).__name__
    if type(exc) is ck.PKCS11Error:
        return str(exc) or "an unnamed PKCS#11 error"
    words = "".join("_" + c if c.isupper() else c for c in name).lstrip("_").upper()
    return f"CKR_{words}"


class Pkcs11Kek:
    """The root key held in a PKCS#11 token (``source = "pkcs11"``): the constructor loads the module,
    finds the token, logs in and finds (or, with ``create``, generates) the key, or raises
    :class:`Pkcs11Error`; :meth:`wrap` and :meth:`unwrap` run ``CKM_AES_GCM`` in the token."""

    source = "pkcs11"

    def __init__(self, module: str, token_label: str, key_label: str, pin: str, *, create: bool) -> None:
        self.module = module
        self.token_label = token_label
        self.key_label = key_label
        self._pin = pin
        self._lib = self._load(module)
        self._token = self._find_token()
        with self._session(rw=create) as session:
            if self._find_key(session) is None:
                if not create:
                    raise Pkcs11Error(
                        f"there is no key labelled {key_label!r} in the PKCS#11 token {token_label!r}: this "
                        "installation's root key was made in another token, or under another "
                        "--pkcs11-key-label"
                    )
                self._generate(session)

    def __repr__(self) -> str:
        return f"Pkcs11Kek(token={self.token_label!r}, key={self.key_label!r})"

    # -- the token ----------------------------------------------------------------------------------------
    @staticmethod
    def _load(module: str) -> Any:
        # One path per library: the same module loaded twice under two names would be initialised twice.
        path = os.path.realpath(module)
        if not os.path.isfile(path):
            raise Pkcs11Error(f"cannot load the PKCS#11 module {module}: there is no such file")
        try:
            with _TOKEN_LOCK:
                return pkcs11.lib(path)
        except ck.PKCS11Error as exc:
            detail = str(exc) or _code(exc)
            raise Pkcs11Error(f"cannot load the PKCS#11 module {module}: {detail}") from None

    def _find_token(self) -> Any:
        try:
            with _TOKEN_LOCK:
                tokens = list(self._lib.get_tokens())
        except ck.PKCS11Error as exc:
            raise Pkcs11Error(f"cannot list the tokens of {self.module}: {_code(exc)}") from None
        found = [t for t in tokens if t.label == self.token_label]
        if not found:
            labels = ", ".join(repr(t.label) for t in tokens if t.label) or "none initialised"
            raise Pkcs11Error(
                f"there is no PKCS#11 token labelled {self.token_label!r} in {self.module} (tokens: {labels})"
            )
        if len(found) > 1:
            raise Pkcs11Error(
                f"several PKCS#11 tokens are labelled {self.token_label!r} in {self.module}: "
                "the root key's token must have a label of its own"
            )
        return found[0]

    @contextmanager
    def _session(self, rw: bool = False) -> Iterator[Any]:
        """A session logged in as the token's user, closed when the block ends (under the lock)."""
        with _TOKEN_LOCK:
            try:
                session = self._token.open(rw=rw, user_pin=self._pin)
            except ck.UserAlreadyLoggedIn:
                # Another session of this process is logged in (sessions share the login).
                session = self._open_plain(rw)
            except (ck.PinIncorrect, ck.PinInvalid, ck.PinLenRange) as exc:
                raise Pkcs11Error(
                    f"the PIN of the PKCS#11 token {self.token_label!r} is wrong ({_code(exc)}); give the "
                    "user PIN with --pkcs11-pin-file or OPENKMS_PKCS11_PIN"
                ) from None
            except (ck.PinLocked, ck.PinExpired, ck.UserPinNotInitialized) as exc:
                raise Pkcs11Error(
                    f"the user PIN of the PKCS#11 token {self.token_label!r} cannot be used ({_code(exc)}): "
                    "the token's security officer must set it again"
                ) from None
            except ck.PKCS11Error as exc:
                raise Pkcs11Error(
                    f"cannot log in to the PKCS#11 token {self.token_label!r}: {_code(exc)}"
                ) from None
            try:
                yield session
            finally:
                with suppress(ck.PKCS11Error):
                    session.close()

    def _open_plain(self, rw: bool) -> Any:
        try:
            return self._token.open(rw=rw)
        except ck.PKCS11Error as exc:
            raise Pkcs11Error(
                f"cannot open a session on the PKCS#11 token {self.token_label!r}: {_code(exc)}"
            ) from None

    # -- the key ------------------------------------------------------------------------------------------
    def _find_key(self, session: Any) -> Any | None:
        try:
            keys = list(
                session.get_objects(
                    {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: self.key_label}
                )
            )
        except ck.PKCS11Error as exc:
            raise Pkcs11Error(f"cannot search the PKCS#11 token {self.token_label!r}: {_code(exc)}") from None
        if not keys:
            return None
        if len(keys) > 1:
            raise Pkcs11Error(
                f"several keys are labelled {self.key_label!r} in the PKCS#11 token {self.token_label!r}: "
                "the root key's label must be its own"
            )
        key = keys[0]
        self._check(key)
        return key

    def _check(self, key: Any) -> None:
        """Refuse a key under the label that is not a non-extractable AES-256 key for encryption."""
        try:
            kind = key[Attribute.KEY_TYPE]
            length = key[Attribute.VALUE_LEN]
            extractable = key[Attribute.EXTRACTABLE]
            sensitive = key[Attribute.SENSITIVE]
            usable = key[Attribute.ENCRYPT] and key[Attribute.DECRYPT]
        except ck.PKCS11Error as exc:
            raise Pkcs11Error(
                f"cannot read the attributes of the key {self.key_label!r}: {_code(exc)}"
            ) from None
        problem = None
        if kind != KeyType.AES or length != _KEY_BITS // 8:
            problem = "is not an AES-256 key"
        elif extractable or not sensitive:
            problem = "can leave the token (CKA_EXTRACTABLE is true or CKA_SENSITIVE false)"
        elif not usable:
            problem = "may not encrypt and decrypt (CKA_ENCRYPT, CKA_DECRYPT)"
        if problem is not None:
            raise Pkcs11Error(
                f"the key labelled {self.key_label!r} in the PKCS#11 token {self.token_label!r} {problem}: "
                "openkms needs a non-extractable AES-256 key (or a new label, to make one)"
            )

    def _generate(self, session: Any) -> None:
        try:
            session.generate_key(
                KeyType.AES,
                _KEY_BITS,
                label=self.key_label,
                id=os.urandom(16),
                store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.MODIFIABLE: False,
                    Attribute.WRAP: False,
                    Attribute.UNWRAP: False,
                    Attribute.SIGN: False,
                    Attribute.VERIFY: False,
                    Attribute.DERIVE: False,
                },
            )
        except ck.PKCS11Error as exc:
            raise Pkcs11Error(
                f"cannot make the root key {self.key_label!r} in the PKCS#11 token {self.token_label!r}: "
                f"{_code(exc)}"
            ) from None

    def _key(self, session: Any) -> Any:
        key = self._find_key(session)
        if key is None:
            raise Pkcs11Error(
                f"the key labelled {self.key_label!r} is no longer in the PKCS#11 token {self.token_label!r}"
            )
        return key

    # -- the Kek protocol ---------------------------------------------------------------------------------
    def wrap(self, plaintext: bytes) -> bytes:
        iv = os.urandom(_IV_BYTES)
        with self._session() as session:
            key = self._key(session)
            try:
                sealed = key.encrypt(
                    plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, _AAD, 128)
                )
            except ck.PKCS11Error as exc:
                raise Pkcs11Error(
                    f"the PKCS#11 token {self.token_label!r} could not encrypt with CKM_AES_GCM: {_code(exc)}"
                ) from None
        return iv + bytes(sealed)

    def unwrap(self, blob: bytes) -> bytes:
        if len(blob) < _IV_BYTES + _TAG_BYTES:
            raise SealError()
        iv, sealed = blob[:_IV_BYTES], blob[_IV_BYTES:]
        with self._session() as session:
            key = self._key(session)
            try:
                return bytes(
                    key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(iv, _AAD, 128))
                )
            except _NOT_OPENED:
                raise SealError() from None
            except ck.PKCS11Error as exc:
                raise Pkcs11Error(
                    f"the PKCS#11 token {self.token_label!r} could not decrypt with CKM_AES_GCM: {_code(exc)}"
                ) from None
