"""Request authentication: AWS Signature Version 4 verification."""
