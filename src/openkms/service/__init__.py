"""The service layer: one module per group of KMS operations, snake_case functions named after the
AWS operation. It knows nothing of HTTP or JSON; the server, the CLI and the console call it."""
