"""The store: SQLAlchemy 2 (async) over SQLite by default, PostgreSQL in production."""

from pim.store.database import Store

__all__ = ["Store"]
