"""Data access, one module per aggregate: the layers above read and write the tables only through these."""
