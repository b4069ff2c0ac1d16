"""The decision log (append-only, Merkle-tree verifiable). Nothing else writes to it.

The log itself arrives with its own issue; until then kodex writes no log.
"""
