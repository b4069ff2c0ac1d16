"""The store: readers, loans, camera recordings, incidents, exceptions, runs and decisions (SQLAlchemy 2)."""
