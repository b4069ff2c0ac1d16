"""The decision log (append-only, Merkle-tree verifiable, RFC 9162). Nothing else writes to it."""
