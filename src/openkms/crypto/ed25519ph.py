"""Ed25519ph (RFC 8032 §5.1, ``phflag = 1``, empty context): the prehashed Ed25519 variant behind
AWS's ``ED25519_PH_SHA_512`` signing algorithm. pyca ``cryptography`` implements only pure Ed25519.

The message given to :func:`sign` / :func:`verify` is the message M of RFC 8032; the scheme hashes
it with SHA-512 (``PH(M)``) itself. AWS's ``ED25519_PH_SHA_512`` with ``MessageType=DIGEST`` passes
the caller's digest as M, so it is hashed twice, as AWS documents.

Side channels: the secret operations are the nonce multiplication ``r·B`` and ``r + k·s mod L``.
The multiplication is a Montgomery ladder with a fixed sequence of 256 steps, a complete addition
formula and arithmetic (branch-free) conditional swaps, so that the control flow and the number of
field operations never depend on a secret bit. Python's integers are not constant-time at the
machine level; the residual variation is in the size of intermediate values, not in the sequence
of operations. The public key comes from pyca ``cryptography`` (OpenSSL), not from this module.
"""

from __future__ import annotations

import hashlib

from openkms.errors import InternalError

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
_D2 = 2 * D % P
_SQRT_M1 = pow(2, (P - 1) // 4, P)
_DOM2 = b"SigEd25519 no Ed25519 collisions" + bytes((1, 0))  # phflag 1, context length 0

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T): x = X/Z, y = Y/Z, xy = T/Z
_IDENTITY: Point = (0, 1, 1, 0)


def _add(p: Point, q: Point) -> Point:
    """Complete twisted-Edwards addition (also doubles): add-2008-hwcd-3 as in RFC 8032 §6."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = p[3] * _D2 % P * q[3] % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _recover_x(y: int, sign: int) -> int | None:
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * _SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


_BY = 4 * pow(5, P - 2, P) % P
_BX = _recover_x(_BY, 0)
if _BX is None:  # the base point's y has an x: RFC 8032's constants
    raise InternalError("Ed25519 base point not on the curve")
BASE: Point = (_BX, _BY, 1, _BX * _BY % P)


def _compress(p: Point) -> bytes:
    zinv = pow(p[2], P - 2, P)
    x = p[0] * zinv % P
    y = p[1] * zinv % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decompress(raw: bytes) -> Point | None:
    if len(raw) != 32:
        return None
    y = int.from_bytes(raw, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _equal(p: Point, q: Point) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def _cswap(a: Point, b: Point, bit: int) -> tuple[Point, Point]:
    mask = -bit  # 0 or -1 (all ones)
    t0 = (a[0] ^ b[0]) & mask
    t1 = (a[1] ^ b[1]) & mask
    t2 = (a[2] ^ b[2]) & mask
    t3 = (a[3] ^ b[3]) & mask
    return (a[0] ^ t0, a[1] ^ t1, a[2] ^ t2, a[3] ^ t3), (b[0] ^ t0, b[1] ^ t1, b[2] ^ t2, b[3] ^ t3)


def _ladder(k: int, p: Point) -> Point:
    """k·p with a fixed sequence of operations (k < 2**256)."""
    r0, r1 = _IDENTITY, p
    for i in range(255, -1, -1):
        bit = (k >> i) & 1
        r0, r1 = _cswap(r0, r1, bit)
        r1 = _add(r0, r1)
        r0 = _add(r0, r0)
        r0, r1 = _cswap(r0, r1, bit)
    return r0


def _vartime_mul(k: int, p: Point) -> Point:
    """k·p for public scalars only (verification)."""
    q = _IDENTITY
    while k:
        if k & 1:
            q = _add(q, p)
        p = _add(p, p)
        k >>= 1
    return q


def _h(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def sign(seed: bytes, public_key: bytes, message: bytes) -> bytes:
    """Ed25519ph signature of ``message`` by the private key ``seed`` (32 bytes) whose encoded
    public key is ``public_key``."""
    if len(seed) != 32 or len(public_key) != 32:
        raise ValueError("Ed25519 keys are 32 bytes")
    h = hashlib.sha512(seed).digest()
    s = int.from_bytes(h[:32], "little")
    s &= (1 << 254) - 8
    s |= 1 << 254
    ph = hashlib.sha512(message).digest()
    r = _h(_DOM2, h[32:], ph) % L
    r_enc = _compress(_ladder(r, BASE))
    k = _h(_DOM2, r_enc, public_key, ph) % L
    return r_enc + ((r + k * s) % L).to_bytes(32, "little")


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519ph signature of ``message`` under ``public_key``."""
    if len(signature) != 64:
        return False
    a = _decompress(public_key)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    ph = hashlib.sha512(message).digest()
    k = _h(_DOM2, signature[:32], public_key, ph) % L
    return _equal(_vartime_mul(s, BASE), _add(r, _vartime_mul(k, a)))
