"""Alembic migrations for kimibot's schema, run in code by storage.db.migrate (no alembic.ini)."""
