"""Data access, one module per aggregate: the only code above the store that writes SQL against its tables.

Each function takes the caller's Connection: the service decides the transaction (`with engine.begin() as
connection:`), so that an action, its log entry and its row change commit together. `records` holds what the
tables of imported records share (keyed by library and record id, compared by digest, reviewed on a day).
"""
