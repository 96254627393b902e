"""SoftHSM2 tokens for the tests of the ``pkcs11`` root of trust: each in a directory of its own, named
by its own configuration file (``SOFTHSM2_CONF``), initialised with ``softhsm2-util`` as an operator
would (Debian's ``softhsm2``; scripts/test installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
AAD = b"openkms/keyring/v1"


def module_path() -> str:
    """SoftHSM2's PKCS#11 module (its real path: one file is loaded once per process)."""
    for candidate in _CANDIDATES:
        if os.path.exists(candidate):
            return os.path.realpath(candidate)
    if os.environ.get("CI"):
        raise RuntimeError("SoftHSM2 must be installed under CI (apt-get install softhsm2)")
    pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2; scripts/test installs it)")


@dataclass(frozen=True)
class SoftToken:
    """An initialised token: its configuration file, label and PINs."""

    conf: Path
    label: str
    pin: str
    so_pin: str

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}


def init_token(
    directory: Path, label: str = "openkms", pin: str = "4321-user", so_pin: str = "8765-so"
) -> SoftToken:
    """``softhsm2-util --init-token --free`` in a new token directory under ``directory``."""
    module_path()
    if shutil.which("softhsm2-util") is None:
        pytest.skip("softhsm2-util is not installed")
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
    )
    return SoftToken(conf, label, pin, so_pin)


# Run in a process of its own: SoftHSM2 reads its configuration once per process.
_DECRYPT = """
import os
import sys
import pkcs11
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11.mechanisms import GCMParams

module, label, key_label, aad = sys.argv[1:5]
pin = os.environ["TEST_PKCS11_PIN"]
blob = bytes.fromhex(sys.stdin.read())
token = pkcs11.lib(module).get_token(token_label=label)
with token.open(user_pin=pin) as session:
    (key,) = session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: key_label})
    assert key[Attribute.EXTRACTABLE] is False and key[Attribute.SENSITIVE] is True
    assert key[Attribute.TOKEN] is True and key[Attribute.VALUE_LEN] == 32
    params = GCMParams(blob[:12], bytes.fromhex(aad), 128)
    sys.stdout.write(bytes(key.decrypt(blob[12:], mechanism=Mechanism.AES_GCM, mechanism_param=params)).hex())
"""


def decrypt_in_token(token: SoftToken, key_label: str, blob: bytes, aad: bytes = AAD) -> bytes:
    """``iv ‖ ciphertext ‖ tag`` decrypted with CKM_AES_GCM by the token's key ``key_label``, through
    python-pkcs11 directly (not openkms's code); also checks the key cannot leave the token."""
    out = subprocess.run(
        [sys.executable, "-c", _DECRYPT, module_path(), token.label, key_label, aad.hex()],
        input=blob.hex(),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **token.env, "TEST_PKCS11_PIN": token.pin},
    ).stdout
    return bytes.fromhex(out)


def use_in_this_process(token: SoftToken) -> None:
    """Point this process's SoftHSM2 at ``token`` (it reads ``SOFTHSM2_CONF`` when initialised)."""
    import pkcs11

    os.environ["SOFTHSM2_CONF"] = str(token.conf)
    pkcs11.lib(module_path()).reinitialize()
