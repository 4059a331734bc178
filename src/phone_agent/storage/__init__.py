"""Storage: the database engine, tables and Alembic migrations."""
