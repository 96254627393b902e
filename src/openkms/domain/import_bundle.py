"""The layout of an import-parameters download, as in AWS's console: the wrapping public key, the import
token and a README naming the wrapping algorithm (``openkms get-parameters-for-import`` writes it to a
directory, ``openkms wrap-key-material`` reads it and writes the wrapped material beside it, the web
console serves it as a zip)."""

from __future__ import annotations

import datetime as dt

PUBLIC_KEY_FILE = "WrappingPublicKey.bin"
TOKEN_FILE = "ImportToken.bin"  # noqa: S105 - a file name, not a secret
README_FILE = "README.txt"
WRAPPED_FILE = "EncryptedKeyMaterial.bin"
ALGORITHM_LINE = "Wrapping algorithm: "


def readme_text(key_arn: str, algorithm: str, spec: str, valid_to: dt.datetime) -> str:
    """The README.txt of a download (written by ``openkms get-parameters-for-import`` and the
    web console's download)."""
    return (
        f"Import parameters for {key_arn}\n"
        f"{ALGORITHM_LINE}{algorithm}\n"
        f"Wrapping key spec: {spec}\n"
        f"Valid until: {valid_to.isoformat()}\n"
        f"Wrap your key material with {PUBLIC_KEY_FILE} using {algorithm}, then import it together with\n"
        f"{TOKEN_FILE} before it expires.\n"
    )
