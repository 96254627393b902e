"""What both products need to know about who calls: accounts, users and access keys
(:mod:`.principals`), the credentials SigV4 verification looks up and their cache
(:mod:`.credentials`), and the identity policies of a principal (:mod:`.policies`).

KMS code reaches this package only through its authorizer (``service/kms/authz.py``); the IAM/STS
operations (``service/iam/``) manage what it reads.
"""
