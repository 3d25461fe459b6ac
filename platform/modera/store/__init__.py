"""Modera's own database (SQLAlchemy): the only package that talks to it.

SQLite file in the data directory by default, PostgreSQL by URL (``MODERA_STORE_URL``). The schema is
managed by Alembic migrations shipped in ``modera/store/migrations``; ``open_store`` upgrades a
database to the latest revision before returning it.
"""
