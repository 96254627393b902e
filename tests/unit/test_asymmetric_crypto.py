"""The crypto layer of asymmetric and HMAC keys, checked against published vectors and independent
implementations: Ed25519ph (RFC 8032 §7.3 vector, pycryptodome), the PKCS#8 material checks the
import feature relies on, AWS's size tables, HMAC, and the key-pair pool."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import time
from pathlib import Path

import pytest
from Crypto.Hash import SHA512
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from openkms.crypto import asymmetric, ed25519ph, hmac_keys, keygen, keypair_pool
from openkms.domain.keyspec import HMAC_SPECS, KeySpec

# RFC 8032 §7.3, test 1 (Ed25519ph, message "abc").
RFC_SECRET = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
RFC_PUBLIC = bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
RFC_SIGNATURE = bytes.fromhex(
    "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
    "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
)


def _pkcs8(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# --- Ed25519ph -----------------------------------------------------------------------------------------


def test_ed25519ph_rfc8032_vector() -> None:
    assert ed25519ph.sign(RFC_SECRET, RFC_PUBLIC, b"abc") == RFC_SIGNATURE
    assert ed25519ph.verify(RFC_PUBLIC, b"abc", RFC_SIGNATURE)
    assert not ed25519ph.verify(RFC_PUBLIC, b"abd", RFC_SIGNATURE)


def test_ed25519ph_matches_pycryptodome() -> None:
    for _ in range(8):
        private = ed25519.Ed25519PrivateKey.generate()
        seed = private.private_bytes_raw()
        public = private.public_key().public_bytes_raw()
        message = os.urandom(64)
        ours = ed25519ph.sign(seed, public, message)
        theirs_key = ECC.import_key(_pkcs8(private))
        theirs = eddsa.new(theirs_key, "rfc8032").sign(SHA512.new(message))
        assert ours == theirs  # both deterministic (RFC 8032)
        eddsa.new(theirs_key.public_key(), "rfc8032").verify(SHA512.new(message), ours)
        assert ed25519ph.verify(public, message, theirs)
        # Ed25519ph is not pure Ed25519 over the same bytes.
        assert ours != private.sign(message)


def test_ed25519ph_rejects_malformed_signatures() -> None:
    s = int.from_bytes(RFC_SIGNATURE[32:], "little")
    high_s = RFC_SIGNATURE[:32] + (s + ed25519ph.L).to_bytes(32, "little")
    for bad in (RFC_SIGNATURE[:-1], RFC_SIGNATURE + b"\x00", high_s, b"\xff" * 64, bytes(64)):
        assert not ed25519ph.verify(RFC_PUBLIC, b"abc", bad)
    assert not ed25519ph.verify(b"\xff" * 32, b"abc", RFC_SIGNATURE)


# --- material: generation, loading, public keys --------------------------------------------------------


@pytest.mark.parametrize("spec", sorted(asymmetric.ASYMMETRIC_SPECS - {KeySpec.RSA_3072, KeySpec.RSA_4096}))
def test_generated_material_is_pkcs8_of_its_spec(spec: KeySpec) -> None:
    material = keygen.generate_material(spec)
    key = asymmetric.load_private_key(spec, material)
    loaded = serialization.load_der_private_key(material, None)
    assert key.public_der == loaded.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert asymmetric.public_key_der(spec, material) == key.public_der
    assert asymmetric.material_matches_spec(spec, material)
    assert "PRIVATE" not in repr(key) and repr(key) == f"AsymmetricKey({spec})"


@pytest.mark.parametrize("spec", sorted(HMAC_SPECS))
def test_hmac_material_and_macs(spec: KeySpec) -> None:
    key = keygen.generate_material(spec)
    assert len(key) == {"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}[spec]
    algorithm = "HMAC_SHA_" + spec[5:]
    name = {
        "HMAC_SHA_224": "sha224",
        "HMAC_SHA_256": "sha256",
        "HMAC_SHA_384": "sha384",
        "HMAC_SHA_512": "sha512",
    }
    mac = hmac_keys.compute_mac(algorithm, key, b"msg")
    assert mac == hmac.new(key, b"msg", getattr(hashlib, name[algorithm])).digest()
    assert hmac_keys.verify_mac(algorithm, key, b"msg", mac)
    assert not hmac_keys.verify_mac(algorithm, key, b"msh", mac)


def test_load_private_key_refuses_what_aws_refuses(tmp_path: Path) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    rsa2048 = rsa.generate_private_key(65537, 2048)

    def refused(spec: KeySpec, der: bytes) -> None:
        with pytest.raises(asymmetric.KeyMaterialError):
            asymmetric.load_private_key(spec, der)
        assert not asymmetric.material_matches_spec(spec, der)

    # Another curve, type or size than the key spec.
    refused(KeySpec.ECC_NIST_P384, _pkcs8(p256))
    refused(KeySpec.ECC_SECG_P256K1, _pkcs8(p256))
    refused(KeySpec.RSA_3072, _pkcs8(rsa2048))
    refused(KeySpec.ECC_NIST_P256, _pkcs8(rsa2048))
    refused(KeySpec.ECC_NIST_EDWARDS25519, _pkcs8(p256))
    refused(KeySpec.RSA_2048, _pkcs8(ed25519.Ed25519PrivateKey.generate()))
    refused(KeySpec.HMAC_256, os.urandom(32))
    # Not PKCS#8: traditional SEC1 / PKCS#1, trailing bytes, encrypted, garbage.
    refused(
        KeySpec.ECC_NIST_P256,
        p256.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )
    refused(
        KeySpec.RSA_2048,
        rsa2048.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )
    refused(KeySpec.ECC_NIST_P256, _pkcs8(p256) + b"\x00")
    refused(KeySpec.ECC_NIST_P256, _pkcs8(p256)[:-1])
    refused(
        KeySpec.ECC_NIST_P256,
        p256.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"password"),
        ),
    )
    refused(KeySpec.RSA_2048, b"")
    refused(KeySpec.RSA_2048, os.urandom(300))
    # Explicit curve parameters and multi-prime RSA, made by openssl (as PKCS#8).
    refused(
        KeySpec.ECC_NIST_P256,
        openssl_pkcs8(tmp_path, "EC", "ec_paramgen_curve:P-256", "ec_param_enc:explicit"),
    )
    refused(KeySpec.RSA_2048, openssl_pkcs8(tmp_path, "RSA", "rsa_keygen_bits:2048", "rsa_keygen_primes:3"))
    # openssl's own PKCS#8 of a named-curve key (with its public key) is accepted.
    assert asymmetric.material_matches_spec(
        KeySpec.ECC_NIST_P384, openssl_pkcs8(tmp_path, "EC", "ec_paramgen_curve:P-384")
    )
    assert asymmetric.material_matches_spec(KeySpec.ECC_NIST_EDWARDS25519, openssl_pkcs8(tmp_path, "ED25519"))


def openssl_pkcs8(tmp: Path, algorithm: str, *options: str) -> bytes:
    """A private key generated by openssl, as unencrypted PKCS#8 DER."""
    pem, der = tmp / "key.pem", tmp / "key.der"
    opts = [x for o in options for x in ("-pkeyopt", o)]
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", algorithm, *opts, "-out", str(pem)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(pem), "-outform", "DER", "-out", str(der)],
        check=True,
        capture_output=True,
    )
    return der.read_bytes()


# --- signatures and sizes --------------------------------------------------------------------------------


def test_digest_lengths_and_rsa_limits() -> None:
    assert asymmetric.digest_length("ECDSA_SHA_256") == 32
    assert asymmetric.digest_length("RSASSA_PSS_SHA_384") == 48
    assert asymmetric.digest_length("RSASSA_PKCS1_V1_5_SHA_512") == 64
    assert asymmetric.digest_length("ED25519_PH_SHA_512") == 64
    assert asymmetric.digest_length("ED25519_SHA_512") is None
    assert asymmetric.digest_length("ML_DSA_SHAKE_256") is None
    limits = {
        (KeySpec.RSA_2048, "RSAES_OAEP_SHA_1"): 214,
        (KeySpec.RSA_2048, "RSAES_OAEP_SHA_256"): 190,
        (KeySpec.RSA_3072, "RSAES_OAEP_SHA_1"): 342,
        (KeySpec.RSA_3072, "RSAES_OAEP_SHA_256"): 318,
        (KeySpec.RSA_4096, "RSAES_OAEP_SHA_1"): 470,
        (KeySpec.RSA_4096, "RSAES_OAEP_SHA_256"): 446,
    }
    for (spec, algorithm), limit in limits.items():
        assert asymmetric.rsa_max_plaintext(spec, algorithm) == limit


def test_digest_signatures_verify_as_raw_signatures() -> None:
    key = asymmetric.load_private_key(KeySpec.RSA_2048, _pkcs8(rsa.generate_private_key(65537, 2048)))
    public = serialization.load_der_public_key(key.public_der)
    assert isinstance(public, rsa.RSAPublicKey)
    message = os.urandom(500)
    for algorithm, h in (
        ("RSASSA_PSS_SHA_384", hashes.SHA384()),
        ("RSASSA_PKCS1_V1_5_SHA_256", hashes.SHA256()),
    ):
        digest = hashlib.new(h.name, message).digest()
        sig = asymmetric.sign(key, algorithm, digest, digest=True)
        pad = (
            padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
            if "PSS" in algorithm
            else padding.PKCS1v15()
        )
        public.verify(sig, message, pad, h)
        assert asymmetric.verify(key, algorithm, message, sig, digest=False)
        assert not asymmetric.verify(key, algorithm, message + b"x", sig, digest=False)
        assert not asymmetric.verify(key, algorithm, message, b"garbage", digest=False)


def test_ecdh_refuses_foreign_peer_keys() -> None:
    key = asymmetric.load_private_key(KeySpec.ECC_NIST_P256, _pkcs8(ec.generate_private_key(ec.SECP256R1())))
    peer = ec.generate_private_key(ec.SECP256R1())
    der = peer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert len(asymmetric.derive_shared_secret(key, der)) == 32
    other_curve = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for bad in (b"", b"junk", der[:-2], other_curve):
        with pytest.raises(asymmetric.InvalidPeerKey):
            asymmetric.derive_shared_secret(key, bad)


# --- the key pair pool -----------------------------------------------------------------------------------


def test_pool_targets_from_environment() -> None:
    assert keypair_pool.targets_from_env(None) == keypair_pool.DEFAULT_TARGETS
    assert keypair_pool.targets_from_env("0") == {}
    assert keypair_pool.targets_from_env("3") == dict.fromkeys(keypair_pool.DEFAULT_TARGETS, 3)
    assert keypair_pool.targets_from_env("RSA_2048=5, RSA_4096=1") == {
        KeySpec.RSA_2048: 5,
        KeySpec.RSA_4096: 1,
    }
    for bad in ("RSA_2048", "ECC_NIST_P256=2", "lots"):
        with pytest.raises(ValueError):
            keypair_pool.targets_from_env(bad)


def test_pool_hands_out_each_pair_once_and_refills() -> None:
    pool = keypair_pool.KeyPairPool()
    assert pool.take(KeySpec.RSA_2048) is None  # not started: nothing pooled
    pool.start({KeySpec.RSA_2048: 2})
    try:
        deadline = time.time() + 30
        while pool.available(KeySpec.RSA_2048) < 2 and time.time() < deadline:
            time.sleep(0.02)
        first, second = pool.take(KeySpec.RSA_2048), pool.take(KeySpec.RSA_2048)
        assert first is not None and second is not None and first != second
        assert pool.hits == 2
        key = asymmetric.load_private_key(KeySpec.RSA_2048, first[0])
        assert key.public_der == first[1]
        while pool.available(KeySpec.RSA_2048) < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert pool.available(KeySpec.RSA_2048) == 2  # refilled in the background
        assert pool.take(KeySpec.RSA_3072) is None  # no target for this spec
        pair = pool.key_pair(KeySpec.ECC_NIST_P256)  # never pooled: generated on the spot
        assert asymmetric.load_private_key(KeySpec.ECC_NIST_P256, pair[0]).public_der == pair[1]
    finally:
        pool.stop()
    assert not pool.running and pool.available(KeySpec.RSA_2048) == 0


# --- PEM material (openkms wrap-key-material / import-key-material --material-file) ---------------------


@pytest.mark.parametrize(
    ("make", "pem_format"),
    [
        pytest.param(
            lambda: rsa.generate_private_key(65537, 2048), serialization.PrivateFormat.PKCS8, id="rsa-pkcs8"
        ),
        pytest.param(
            lambda: rsa.generate_private_key(65537, 2048),
            serialization.PrivateFormat.TraditionalOpenSSL,
            id="rsa-pkcs1",
        ),
        pytest.param(
            lambda: ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8, id="ec-pkcs8"
        ),
        pytest.param(
            lambda: ec.generate_private_key(ec.SECP384R1()),
            serialization.PrivateFormat.TraditionalOpenSSL,
            id="ec-sec1",
        ),
    ],
)
def test_pem_to_pkcs8(make: object, pem_format: serialization.PrivateFormat) -> None:
    key = make()  # type: ignore[operator]
    pem = key.private_bytes(serialization.Encoding.PEM, pem_format, serialization.NoEncryption())
    assert asymmetric.pem_to_pkcs8(pem) == _pkcs8(key)
