"""Asymmetric keys: generation, the stored material format, public keys, signatures, RSA-OAEP
encryption and ECDH.

Material format (the contract with key-material import): an asymmetric key's material is its
private key as **PKCS#8 DER** (``PrivateKeyInfo``), exactly what a user imports. :func:`load_private_key`
checks such bytes against a key spec (type, curve, size; RSA with two primes; EC on a named curve)
and returns an :class:`AsymmetricKey`, the parsed key callers cache beside the material (parsing and
validating an RSA key costs tens of milliseconds).

Signatures are AWS's: RSASSA-PSS with MGF1 over the message hash and a salt as long as the hash;
PKCS#1 v1.5 with the DigestInfo of the hash; ECDSA DER-encoded (``Ecdsa-Sig-Value``); Ed25519
(pure) and Ed25519ph; ML-DSA (FIPS 204, pure, empty context). With ``digest=True`` the message is
the hash the algorithm would have computed (AWS ``MessageType=DIGEST``): it is signed as is, not
hashed again (Ed25519ph excepted, which AWS defines as hashing the given digest once more); for
ML-DSA it is the 64-byte message representative μ (AWS ``MessageType=EXTERNAL_MU``, FIPS 204
"external μ"), signed and verified without the hashing step.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from openkms.crypto import ed25519ph
from openkms.domain.keyspec import KeySpec

_RSA_BITS = {KeySpec.RSA_2048: 2048, KeySpec.RSA_3072: 3072, KeySpec.RSA_4096: 4096}
_CURVES: dict[KeySpec, type[ec.EllipticCurve]] = {
    KeySpec.ECC_NIST_P256: ec.SECP256R1,
    KeySpec.ECC_NIST_P384: ec.SECP384R1,
    KeySpec.ECC_NIST_P521: ec.SECP521R1,
    KeySpec.ECC_SECG_P256K1: ec.SECP256K1,
}
_MLDSA: dict[KeySpec, type[mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey]] = {
    KeySpec.ML_DSA_44: mldsa.MLDSA44PrivateKey,
    KeySpec.ML_DSA_65: mldsa.MLDSA65PrivateKey,
    KeySpec.ML_DSA_87: mldsa.MLDSA87PrivateKey,
}
#: Key specs this module implements (SM2 is not: pyca ``cryptography`` has no SM2).
ASYMMETRIC_SPECS = frozenset({*_RSA_BITS, *_CURVES, KeySpec.ECC_NIST_EDWARDS25519, *_MLDSA})

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}

# DER: id-ecPublicKey, the algorithm OID of every EC PKCS#8 key.
_EC_OID = bytes.fromhex("06072a8648ce3d0201")


class KeyMaterialError(Exception):
    """Bytes that are not a usable private key of the expected key spec (message names no secret)."""


class InvalidPeerKey(Exception):
    """A peer public key that does not parse or is not on the key's curve."""


class DecryptionFailed(Exception):
    """An RSA ciphertext that does not decrypt (opaque on purpose)."""


@dataclass(frozen=True, slots=True, eq=False)
class AsymmetricKey:
    """A parsed private key of one key spec, with its DER SubjectPublicKeyInfo."""

    spec: KeySpec
    private: PrivateKeyTypes
    public_der: bytes

    def __repr__(self) -> str:
        return f"AsymmetricKey({self.spec})"


# --- generation -------------------------------------------------------------------------------------


def _generate(spec: KeySpec) -> PrivateKeyTypes:
    if spec in _RSA_BITS:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[spec])
    if spec in _CURVES:
        return ec.generate_private_key(_CURVES[spec]())
    if spec is KeySpec.ECC_NIST_EDWARDS25519:
        return ed25519.Ed25519PrivateKey.generate()
    if spec in _MLDSA:
        return _MLDSA[spec].generate()
    raise ValueError(f"not an asymmetric key spec this service implements: {spec}")


def _pkcs8(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def pem_to_pkcs8(pem: bytes) -> bytes:
    """A PEM private key (any format cryptography reads, unencrypted) as PKCS#8 DER, the form KMS imports."""
    return _pkcs8(serialization.load_pem_private_key(pem, password=None))


def _spki(key: PrivateKeyTypes) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_private_key(spec: KeySpec) -> bytes:
    """New key material for ``spec``: a private key as PKCS#8 DER."""
    return _pkcs8(_generate(spec))


def generate_key_pair(spec: KeySpec) -> tuple[bytes, bytes]:
    """A new key pair: (PKCS#8 DER private key, DER SubjectPublicKeyInfo)."""
    key = _generate(spec)
    return _pkcs8(key), _spki(key)


# --- loading ----------------------------------------------------------------------------------------


def _tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the DER element at ``pos``; ValueError if malformed."""
    if pos + 2 > end:
        raise ValueError("truncated")
    tag = buf[pos]
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise ValueError("bad length")
        length = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise ValueError("truncated")
    return tag, pos, pos + length


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, vstart, vend = _tlv(buf, pos, end)
        out.append((tag, vstart, vend))
        pos = vend
    return out


def _check_pkcs8_structure(der: bytes) -> None:
    """A single DER ``PrivateKeyInfo`` / ``OneAsymmetricKey`` (no trailing bytes, not a traditional
    RSAPrivateKey/ECPrivateKey); EC keys name their curve (no explicit parameters)."""
    tag, start, end = _tlv(der, 0, len(der))
    if tag != 0x30 or end != len(der):
        raise ValueError("not a DER SEQUENCE")
    parts = _children(der, start, end)
    if len(parts) < 3 or parts[0][0] != 0x02 or parts[1][0] != 0x30 or parts[2][0] != 0x04:
        raise ValueError("not PKCS#8")
    alg = _children(der, parts[1][1], parts[1][2])
    if not alg or alg[0][0] != 0x06:
        raise ValueError("bad AlgorithmIdentifier")
    oid = der[parts[1][1] : alg[0][2]]
    if oid == _EC_OID:
        if len(alg) != 2 or alg[1][0] != 0x06:
            raise ValueError("EC key without a named curve")
        tag, istart, iend = _tlv(der, parts[2][1], parts[2][2])
        for itag, vstart, vend in _children(der, istart, iend):
            if itag == 0xA0 and _tlv(der, vstart, vend)[0] != 0x06:
                raise ValueError("EC key with explicit parameters")


def load_private_key(spec: KeySpec, pkcs8_der: bytes) -> AsymmetricKey:
    """Parse and check PKCS#8 DER material for ``spec``; raises :class:`KeyMaterialError`."""
    try:
        _check_pkcs8_structure(pkcs8_der)
        key = serialization.load_der_private_key(pkcs8_der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyMaterialError("The key material is not a valid unencrypted PKCS#8 private key.") from None
    if spec in _RSA_BITS:
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != _RSA_BITS[spec]:
            raise KeyMaterialError(f"The key material is not an {spec} private key.")
        numbers = key.private_numbers()
        if numbers.p * numbers.q != numbers.public_numbers.n:
            raise KeyMaterialError("RSA key material must have exactly two primes.")
    elif spec in _CURVES:
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, _CURVES[spec]):
            raise KeyMaterialError(f"The key material is not an {spec} private key.")
    elif spec is KeySpec.ECC_NIST_EDWARDS25519:
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise KeyMaterialError(f"The key material is not an {spec} private key.")
    elif spec in _MLDSA:
        if not isinstance(key, _MLDSA[spec]):
            raise KeyMaterialError(f"The key material is not an {spec} private key.")
    else:
        raise KeyMaterialError(f"KeySpec {spec} has no asymmetric key material.")
    return AsymmetricKey(spec, key, _spki(key))


def material_matches_spec(spec: KeySpec, pkcs8_der: bytes) -> bool:
    """Whether ``pkcs8_der`` is valid material for ``spec`` (see :func:`load_private_key`)."""
    try:
        load_private_key(spec, pkcs8_der)
    except KeyMaterialError:
        return False
    return True


def public_key_der(spec: KeySpec, material: bytes) -> bytes:
    """The DER SubjectPublicKeyInfo of asymmetric key material."""
    return load_private_key(spec, material).public_der


# --- signatures -------------------------------------------------------------------------------------


def digest_length(algorithm: str) -> int | None:
    """Length of the digest a ``MessageType=DIGEST`` message must have, None if not applicable."""
    if algorithm.startswith(("RSASSA_", "ECDSA_")) or algorithm == "ED25519_PH_SHA_512":
        return _hash(algorithm).digest_size
    return None


@functools.cache  # pure memo: one immutable hash descriptor per algorithm name
def _hash(algorithm: str) -> hashes.HashAlgorithm:
    return _HASHES[algorithm[-7:]]()


def _rsa_padding(algorithm: str) -> padding.AsymmetricPadding:
    if algorithm.startswith("RSASSA_PSS_"):
        return padding.PSS(mgf=padding.MGF1(_hash(algorithm)), salt_length=padding.PSS.DIGEST_LENGTH)
    return padding.PKCS1v15()


def _prehash(algorithm: str, digest: bool) -> hashes.HashAlgorithm | utils.Prehashed:
    return utils.Prehashed(_hash(algorithm)) if digest else _hash(algorithm)


def sign(key: AsymmetricKey, algorithm: str, message: bytes, *, digest: bool) -> bytes:
    """Sign ``message`` (or, with ``digest``, the given hash) with AWS signing algorithm ``algorithm``.

    For ML-DSA ``digest`` means MessageType EXTERNAL_MU: ``message`` is the 64-byte message
    representative μ of FIPS 204 (the output of the hashing step), signed as it is.

    The caller has checked that the algorithm suits the key spec and the digest length."""
    private = key.private
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(message, _rsa_padding(algorithm), _prehash(algorithm, digest))
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(message, ec.ECDSA(_prehash(algorithm, digest)))
    if isinstance(private, ed25519.Ed25519PrivateKey):
        if algorithm == "ED25519_PH_SHA_512":
            return ed25519ph.sign(
                private.private_bytes_raw(), private.public_key().public_bytes_raw(), message
            )
        return private.sign(message)
    if isinstance(private, mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey):
        return private.sign_mu(message) if digest else private.sign(message)
    raise ValueError(f"cannot sign with {key.spec}")


def verify(key: AsymmetricKey, algorithm: str, message: bytes, signature: bytes, *, digest: bool) -> bool:
    """Whether ``signature`` is valid for ``message`` (see :func:`sign`) under the key's public key."""
    public = key.private.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, _rsa_padding(algorithm), _prehash(algorithm, digest))
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(_prehash(algorithm, digest)))
        elif isinstance(public, ed25519.Ed25519PublicKey):
            if algorithm == "ED25519_PH_SHA_512":
                return ed25519ph.verify(public.public_bytes_raw(), message, signature)
            public.verify(signature, message)
        elif isinstance(public, mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey):
            if digest:
                public.verify_mu(signature, message)
            else:
                public.verify(signature, message)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


# --- RSA encryption ---------------------------------------------------------------------------------


def _oaep(algorithm: str) -> padding.OAEP:
    algo: hashes.HashAlgorithm = hashes.SHA1() if algorithm == "RSAES_OAEP_SHA_1" else hashes.SHA256()  # noqa: S303
    return padding.OAEP(mgf=padding.MGF1(algo), algorithm=algo, label=None)


def rsa_max_plaintext(spec: KeySpec, algorithm: str) -> int:
    """Largest plaintext RSAES-OAEP can encrypt: modulus bytes - 2·hash bytes - 2."""
    hash_len = 20 if algorithm == "RSAES_OAEP_SHA_1" else 32
    return _RSA_BITS[spec] // 8 - 2 * hash_len - 2


def rsa_encrypt(key: AsymmetricKey, algorithm: str, plaintext: bytes) -> bytes:
    private = key.private
    if not isinstance(private, rsa.RSAPrivateKey):
        raise ValueError(f"cannot encrypt with {key.spec}")
    return private.public_key().encrypt(plaintext, _oaep(algorithm))


def rsa_decrypt(key: AsymmetricKey, algorithm: str, ciphertext: bytes) -> bytes:
    private = key.private
    if not isinstance(private, rsa.RSAPrivateKey):
        raise DecryptionFailed()
    try:
        return private.decrypt(ciphertext, _oaep(algorithm))
    except ValueError:
        raise DecryptionFailed() from None


# --- key agreement ----------------------------------------------------------------------------------


def derive_shared_secret(key: AsymmetricKey, peer_public_der: bytes) -> bytes:
    """The raw ECDH shared secret (x-coordinate) of the key and a peer's DER SubjectPublicKeyInfo."""
    private = key.private
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise InvalidPeerKey()
    try:
        peer = serialization.load_der_public_key(peer_public_der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InvalidPeerKey() from None
    if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != private.curve.name:
        raise InvalidPeerKey()
    return private.exchange(ec.ECDH(), peer)
