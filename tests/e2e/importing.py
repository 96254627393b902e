"""Client-side helpers for import tests: wrapping done with the `cryptography` library using only the
wrapping public key (an implementation independent of the server's), and with the openssl CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding


def oaep(algorithm: str) -> padding.OAEP:
    h: hashes.HashAlgorithm = hashes.SHA256() if algorithm.endswith("SHA_256") else hashes.SHA1()  # noqa: S303
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def wrap(algorithm: str, public_der: bytes, material: bytes) -> bytes:
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, rsa.RSAPublicKey)
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, oaep(algorithm))
    aes_key = os.urandom(32)
    return public.encrypt(aes_key, oaep(algorithm)) + aes_key_wrap_with_padding(aes_key, material)


def params(
    kms: Any, key_id: str, algorithm: str = "RSAES_OAEP_SHA_256", spec: str = "RSA_2048"
) -> dict[str, Any]:
    result: dict[str, Any] = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec
    )
    return result


def import_material(
    kms: Any,
    key_id: str,
    material: bytes,
    algorithm: str = "RSAES_OAEP_SHA_256",
    spec: str = "RSA_2048",
    **extra: Any,
) -> dict[str, Any]:
    p = params(kms, key_id, algorithm, spec)
    extra.setdefault("ExpirationModel", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    result: dict[str, Any] = kms.import_key_material(
        KeyId=key_id,
        ImportToken=p["ImportToken"],
        EncryptedKeyMaterial=wrap(algorithm, p["PublicKey"], material),
        **extra,
    )
    return result


def openssl_wrap(workdir: Path, algorithm: str, public_der: bytes, material: Path) -> Path:
    """Wrap as AWS's developer guide does it with the openssl command line."""
    pub = workdir / "WrappingPublicKey.bin"
    pub.write_bytes(public_der)
    md = "sha256" if algorithm.endswith("SHA_256") else "sha1"
    out = workdir / "EncryptedKeyMaterial.bin"

    def rsa_oaep(src: Path, dst: Path) -> None:
        subprocess.run(
            [
                "openssl", "pkeyutl", "-encrypt", "-in", str(src), "-out", str(dst), "-inkey", str(pub),
                "-keyform", "DER", "-pubin", "-pkeyopt", "rsa_padding_mode:oaep",
                "-pkeyopt", f"rsa_oaep_md:{md}", "-pkeyopt", f"rsa_mgf1_md:{md}",
            ],
            check=True,
        )  # fmt: skip

    if algorithm.startswith("RSAES_OAEP"):
        rsa_oaep(material, out)
        return out
    aes = workdir / "aes-key.bin"
    subprocess.run(["openssl", "rand", "-out", str(aes), "32"], check=True)
    wrapped_material = workdir / "material-wrapped.bin"
    subprocess.run(
        [
            "openssl", "enc", "-id-aes256-wrap-pad", "-K", aes.read_bytes().hex(), "-iv", "A65959A6",
            "-in", str(material), "-out", str(wrapped_material),
        ],
        check=True,
    )  # fmt: skip
    wrapped_key = workdir / "aes-key-wrapped.bin"
    rsa_oaep(aes, wrapped_key)
    out.write_bytes(wrapped_key.read_bytes() + wrapped_material.read_bytes())
    return out
