"""The root of trust: the keyring every sealed column is sealed under, wrapped by the root key's holder
(a file, a PKCS#11 token, or a key rebuilt from Shamir shares), opened at start or at unseal, rotated
online (:mod:`.rotation`), and re-wrapped under another holder (:func:`.keyring.rewrap`)."""
