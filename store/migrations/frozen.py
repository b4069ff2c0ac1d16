"""Frozen: the master-key wrapping that migrations 0003 and 0004 seal values with, as it was at those revisions.

This module never changes. A migration must write the same bytes whenever it runs, on a store upgraded today or
years from now, so it cannot call the live code (kodex.store.crypto, kodex.audit, …), whose formats may move on
while the old migration stays as it was. What several migrations share of kodex's formats lives here instead,
copied once and kept: a later format is a new function beside these, used by the migration that introduces it,
never an edit of these. It imports only the standard library, SQLAlchemy and `cryptography`, and nothing of kodex.

The format (kodex.store.crypto.MasterKey at revisions 0003 and 0004): AES-256-GCM under the master key, a wrapped
value is a random 12-byte nonce followed by the ciphertext and its 16-byte tag, with the associated data binding
it to its record; the store's check value is b"kodex master key check v1" wrapped with associated data b"check".
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, text

__all__ = ["require_master_key", "wrap"]

_NONCE = 12
_CHECK_TEXT = b"kodex master key check v1"


def require_master_key(connection: Connection, key: bytes | None, what: str) -> bytes:
    """The master key handed to the upgrade, checked against the store's check value; RuntimeError without it.

    `what` names what the upgrade encrypts (the error says why the key is needed).
    """
    check = connection.execute(text("SELECT check_value FROM keyring WHERE name = 'master'")).scalar()
    if key is None or check is None or not _matches(key, bytes(check)):
        raise RuntimeError(
            f"this upgrade encrypts {what}: run `kodex init` with the store's master key (KODEX_MASTER_KEY_FILE)"
        )
    return key


def wrap(key: bytes, data: bytes, aad: bytes) -> bytes:
    """`data` sealed under the master key: nonce || AES-256-GCM(data, aad)."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, data, aad)


def _matches(key: bytes, check_value: bytes) -> bool:
    try:
        return AESGCM(key).decrypt(check_value[:_NONCE], check_value[_NONCE:], b"check") == _CHECK_TEXT
    except InvalidTag:
        return False
