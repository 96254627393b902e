"""Cryptography: the only importer of pyca ``cryptography``. Envelope sealing under the root key,
the symmetric ciphertext format, key material generation and identification."""
