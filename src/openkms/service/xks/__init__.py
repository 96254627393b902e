"""openkms as an External Key Store (XKS) proxy: the four operations of AWS's XKS Proxy API v1 on
external keys held here (``proxy.py``), and the management of key stores, their SigV4 credentials
and their keys (``admin.py``, used by ``openkms admin``).

A third product beside ``service/kms/`` and ``service/iam/``: it imports neither (nor
``service/identity/``). A key store is not an account's resource; its callers authenticate with the
key store's own credentials.
"""
