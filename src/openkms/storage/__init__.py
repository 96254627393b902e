"""Storage: the only importer of database drivers. One store interface, two backends (SQLite and
PostgreSQL through SQLAlchemy Core), versioned migrations. Storage is untrusted: it only ever holds
key material and secret keys sealed under the root key."""
