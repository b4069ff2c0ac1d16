"""Personal data at rest: a data key per reader, wrapped by the master key.

AES-256-GCM throughout (`cryptography`). A reader's personal data is sealed
under its own random data key; the data key is stored only wrapped by the
master key, with the library and record id as associated data, so a blob
moved to another reader does not open. Anonymising deletes the wrapped key
and the sealed blob: no key kodex holds opens the data again.

The master key is 32 random bytes in a file readable only by its owner
(`kodex init` writes it). A check value sealed under it at initialisation
tells a wrong key apart before a run touches anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kodex.errors import MasterKeyError

__all__ = [
    "MasterKey",
    "new_data_key",
    "seal",
    "unseal",
]

_NONCE = 12
_CHECK_TEXT = b"kodex master key check v1"


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Raises cryptography's InvalidTag when the key or the associated data is not the one it was sealed with."""
    return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], aad)


class MasterKey:
    """The key that wraps every data key; never stored in the database."""

    def __init__(self, key: bytes, source: str = "memory") -> None:
        if len(key) != 32:
            raise MasterKeyError(f"the master key in {source} must be 32 bytes (base64-encoded in the file)")
        self._key = key
        self._aead = AESGCM(key)
        self._digest_key = hashlib.sha256(b"kodex record digest\x00" + key).digest()
        self.source = source

    @classmethod
    def generate(cls) -> bytes:
        """A new key, as the text of a key file."""
        return base64.b64encode(AESGCM.generate_key(bit_length=256)) + b"\n"

    @classmethod
    def load(cls, path: Path) -> MasterKey:
        try:
            mode = path.stat().st_mode
            text = path.read_bytes()
        except FileNotFoundError:
            raise MasterKeyError(
                f"no master key file at {path}; run `kodex init` to create one, "
                "or set KODEX_MASTER_KEY_FILE to the key file of this store"
            ) from None
        except OSError as error:
            raise MasterKeyError(f"cannot read the master key file {path}: {error.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise MasterKeyError(f"the master key file {path} is readable by others; run: chmod 600 {path}")
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except ValueError:
            raise MasterKeyError(f"the master key file {path} is not base64 text") from None
        return cls(key, str(path))

    @property
    def key_bytes(self) -> bytes:
        """The key itself, for the migrations: they wrap with their own frozen code (store.migrations.frozen)."""
        return self._key

    def wrap(self, data_key: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data_key, aad)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], aad)

    def check_value(self) -> bytes:
        return self.wrap(_CHECK_TEXT, b"check")

    def matches(self, check_value: bytes) -> bool:
        try:
            return self.unwrap(check_value, b"check") == _CHECK_TEXT
        except InvalidTag:
            return False

    def digest(self, data: bytes) -> bytes:
        """A keyed digest (HMAC-SHA-256): equal records have equal digests, and it reveals nothing without the key."""
        return hmac.new(self._digest_key, data, hashlib.sha256).digest()
