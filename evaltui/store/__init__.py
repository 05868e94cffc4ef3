"""DuckDB storage: connection, schema and migrations, queries returning domain models."""

from evaltui.store.project import DEFAULT_DB, Store

__all__ = ["DEFAULT_DB", "Store"]
