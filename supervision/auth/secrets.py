"""Random tokens, their hashes, password hashing. Nothing here logs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_PREFIX = "mgp_"  # recognisable in a leaked-secret scan
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_password(password: str) -> str:
    """``argon2$...`` when argon2-cffi is installed, else ``scrypt$...``."""
    try:
        from argon2 import PasswordHasher
    except ImportError:
        salt = secrets.token_bytes(16)
        dk = hashlib.scrypt(
            password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
        )
        b64 = base64.b64encode
        return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(dk).decode()}"
    return "argon2$" + PasswordHasher().hash(password)


def verify_password(password: str, stored: str) -> bool:
    scheme, _, rest = stored.partition("$")
    if scheme == "scrypt":
        try:
            n, r, p, salt, dk = rest.split("$")
            expected = base64.b64decode(dk)
            got = hashlib.scrypt(
                password.encode(),
                salt=base64.b64decode(salt),
                n=int(n),
                r=int(r),
                p=int(p),
                dklen=len(expected),
            )
        except ValueError:
            return False
        return hmac.compare_digest(got, expected)
    if scheme == "argon2":
        try:
            from argon2 import PasswordHasher
            from argon2.exceptions import Argon2Error
        except ImportError:
            return False
        try:
            return bool(PasswordHasher().verify(rest, password))
        except Argon2Error:
            return False
    return False
