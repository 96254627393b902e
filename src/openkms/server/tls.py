"""TLS for ``openkms serve``: the server's SSL context (TLS 1.2 and later, forward-secret AEAD cipher
suites only, optional client certificates) and its reload on SIGHUP.

Reloading loads the certificate chain again into the same context: handshakes after the reload use
the new certificate, connections already open keep theirs and are not dropped.

With ``--tls-client-ca`` each request's scope carries the verified client certificate's subject as the
ASGI TLS extension's ``client_cert_name`` (RFC 4514), for the XKS key stores that require a subject.
"""

from __future__ import annotations

import logging
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("openkms.tls")

# TLS 1.2 suites: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 (TLS 1.3's are all AEAD).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS:!SHA1"


@dataclass(frozen=True)
class TlsConfig:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    ca_bundle: Path | None = None  # the CA clients should trust (printed as AWS_CA_BUNDLE); self-signed only


class ServerTls:
    """The server's SSL context, built once and reloaded in place."""

    def __init__(self, config: TlsConfig) -> None:
        self.config = config
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(TLS12_CIPHERS)
        ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
        if config.client_ca_file is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=str(config.client_ca_file))
        self.context = ctx
        self.load()

    def load(self) -> None:
        """(Re)load the certificate chain and key; raises ssl.SSLError / OSError on a bad pair."""
        self.context.load_cert_chain(str(self.config.cert_file), str(self.config.key_file))

    def reload(self) -> None:
        try:
            self.load()
        except (OSError, ssl.SSLError) as exc:
            log.error("TLS certificate reload failed, keeping the previous one: %s", exc)
        else:
            log.warning("TLS certificate reloaded from %s", self.config.cert_file)

    def reload_on_sighup(self) -> None:
        signal.signal(signal.SIGHUP, lambda _sig, _frame: self.reload())


# Short names of RFC 4514 (section 3) for the attribute names Python's ssl module gives.
_SHORT_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def _escape(value: str) -> str:
    out = "".join("\\" + c if c in '\\,+"<>;=' else c for c in value)
    if out[:1] in ("#", " "):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def subject_name(peercert: dict[str, Any]) -> str:
    """The subject of a certificate as :meth:`ssl.SSLSocket.getpeercert` gives it, in RFC 4514's
    string form (the last RDN first)."""
    rdns = [
        "+".join(f"{_SHORT_NAMES.get(name, name)}={_escape(value)}" for name, value in rdn)
        for rdn in peercert.get("subject", ())
    ]
    return ",".join(reversed(rdns))
