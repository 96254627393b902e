"""Key specs, key usages and origins, and which algorithms each key spec supports."""

from __future__ import annotations

from enum import StrEnum

from openkms.errors import ValidationException


class KeySpec(StrEnum):
    SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
    ECC_NIST_P256 = "ECC_NIST_P256"
    ECC_NIST_P384 = "ECC_NIST_P384"
    ECC_NIST_P521 = "ECC_NIST_P521"
    ECC_SECG_P256K1 = "ECC_SECG_P256K1"
    ECC_NIST_EDWARDS25519 = "ECC_NIST_EDWARDS25519"
    HMAC_224 = "HMAC_224"
    HMAC_256 = "HMAC_256"
    HMAC_384 = "HMAC_384"
    HMAC_512 = "HMAC_512"
    SM2 = "SM2"
    ML_DSA_44 = "ML_DSA_44"
    ML_DSA_65 = "ML_DSA_65"
    ML_DSA_87 = "ML_DSA_87"


class KeyUsage(StrEnum):
    ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
    SIGN_VERIFY = "SIGN_VERIFY"
    GENERATE_VERIFY_MAC = "GENERATE_VERIFY_MAC"
    KEY_AGREEMENT = "KEY_AGREEMENT"


class Origin(StrEnum):
    AWS_KMS = "AWS_KMS"
    EXTERNAL = "EXTERNAL"
    AWS_CLOUDHSM = "AWS_CLOUDHSM"
    EXTERNAL_KEY_STORE = "EXTERNAL_KEY_STORE"


RSA_SPECS = frozenset({KeySpec.RSA_2048, KeySpec.RSA_3072, KeySpec.RSA_4096})
NIST_EC_SPECS = frozenset({KeySpec.ECC_NIST_P256, KeySpec.ECC_NIST_P384, KeySpec.ECC_NIST_P521})
ECC_SPECS = NIST_EC_SPECS | {KeySpec.ECC_SECG_P256K1, KeySpec.ECC_NIST_EDWARDS25519}
HMAC_SPECS = frozenset({KeySpec.HMAC_224, KeySpec.HMAC_256, KeySpec.HMAC_384, KeySpec.HMAC_512})
ML_DSA_SPECS = frozenset({KeySpec.ML_DSA_44, KeySpec.ML_DSA_65, KeySpec.ML_DSA_87})

# KeySpec -> the key usages AWS accepts for it.
USAGES: dict[KeySpec, frozenset[KeyUsage]] = {
    KeySpec.SYMMETRIC_DEFAULT: frozenset({KeyUsage.ENCRYPT_DECRYPT}),
    **{s: frozenset({KeyUsage.ENCRYPT_DECRYPT, KeyUsage.SIGN_VERIFY}) for s in RSA_SPECS},
    **{s: frozenset({KeyUsage.SIGN_VERIFY, KeyUsage.KEY_AGREEMENT}) for s in NIST_EC_SPECS},
    KeySpec.ECC_SECG_P256K1: frozenset({KeyUsage.SIGN_VERIFY}),
    KeySpec.ECC_NIST_EDWARDS25519: frozenset({KeyUsage.SIGN_VERIFY}),
    **{s: frozenset({KeyUsage.GENERATE_VERIFY_MAC}) for s in HMAC_SPECS},
    **{s: frozenset({KeyUsage.SIGN_VERIFY}) for s in ML_DSA_SPECS},
    KeySpec.SM2: frozenset({KeyUsage.ENCRYPT_DECRYPT, KeyUsage.SIGN_VERIFY, KeyUsage.KEY_AGREEMENT}),
}

RSA_ENCRYPTION = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")
RSA_SIGNING = (
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
)
SIGNING_ALGORITHMS: dict[KeySpec, tuple[str, ...]] = {
    **{s: RSA_SIGNING for s in RSA_SPECS},
    KeySpec.ECC_NIST_P256: ("ECDSA_SHA_256",),
    KeySpec.ECC_NIST_P384: ("ECDSA_SHA_384",),
    KeySpec.ECC_NIST_P521: ("ECDSA_SHA_512",),
    KeySpec.ECC_SECG_P256K1: ("ECDSA_SHA_256",),
    KeySpec.ECC_NIST_EDWARDS25519: ("ED25519_SHA_512", "ED25519_PH_SHA_512"),
    **{s: ("ML_DSA_SHAKE_256",) for s in ML_DSA_SPECS},
    KeySpec.SM2: ("SM2DSA",),
}
MAC_ALGORITHMS: dict[KeySpec, tuple[str, ...]] = {
    KeySpec.HMAC_224: ("HMAC_SHA_224",),
    KeySpec.HMAC_256: ("HMAC_SHA_256",),
    KeySpec.HMAC_384: ("HMAC_SHA_384",),
    KeySpec.HMAC_512: ("HMAC_SHA_512",),
}


def algorithm_lists(spec: KeySpec, usage: KeyUsage) -> dict[str, tuple[str, ...]]:
    """The one algorithm list KeyMetadata carries for a key of this spec and usage (snake_case name)."""
    if usage is KeyUsage.ENCRYPT_DECRYPT:
        if spec is KeySpec.SYMMETRIC_DEFAULT:
            return {"encryption_algorithms": ("SYMMETRIC_DEFAULT",)}
        if spec is KeySpec.SM2:
            return {"encryption_algorithms": ("SM2PKE",)}
        return {"encryption_algorithms": RSA_ENCRYPTION}
    if usage is KeyUsage.SIGN_VERIFY:
        return {"signing_algorithms": SIGNING_ALGORITHMS[spec]}
    if usage is KeyUsage.GENERATE_VERIFY_MAC:
        return {"mac_algorithms": MAC_ALGORITHMS[spec]}
    return {"key_agreement_algorithms": ("ECDH",)}


def resolve_spec_and_usage(key_spec: str | None, key_usage: str | None) -> tuple[KeySpec, KeyUsage]:
    """CreateKey's KeySpec/KeyUsage defaults and compatibility rules, with AWS's messages."""
    spec = KeySpec(key_spec) if key_spec else KeySpec.SYMMETRIC_DEFAULT
    if key_usage is None:
        if spec is not KeySpec.SYMMETRIC_DEFAULT:
            raise ValidationException(
                "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."
            )
        usage = KeyUsage.ENCRYPT_DECRYPT
    else:
        usage = KeyUsage(key_usage)
    if usage not in USAGES[spec]:
        raise ValidationException(f"KeyUsage {usage} is not compatible with KeySpec {spec}")
    return spec, usage


def key_type(spec: KeySpec) -> str:
    """The coarse type AWS compares in UpdateAlias: symmetric, asymmetric or hmac."""
    if spec is KeySpec.SYMMETRIC_DEFAULT:
        return "symmetric"
    if spec in HMAC_SPECS:
        return "hmac"
    return "asymmetric"
