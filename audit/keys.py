"""Checkpoint signing keys (Ed25519) and the signed checkpoint text.

One key is active at a time. Its private half is kept in the store wrapped by
the master key; rotating creates a new key and destroys the old private half,
keeping the public half, so every checkpoint ever signed still verifies. An
auditor takes the public keys out once (`kodex audit public-key --all`) and
from then on verifies with those, trusting nothing the store says.

A key is named by its id: the first 16 hex digits of SHA-256 of the raw
32-byte public key. A checkpoint signs these bytes (the C2SP checkpoint
layout, with the time as an extension line):

    <origin>\\n<tree size>\\n<root, base64>\\ntime <ISO 8601 UTC>\\n
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, select, update

from kodex.errors import KeyFileError
from kodex.store.crypto import MasterKey
from kodex.store.schema import log_keys

__all__ = [
    "SigningKey",
    "checkpoint_note",
    "key_id",
    "public_key_pem",
    "public_keys",
    "read_public_keys",
    "rotate_signing_key",
    "signing_key",
    "verify_signature",
]

_PEM = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def checkpoint_note(origin: str, size: int, root: bytes, time: str) -> bytes:
    """The bytes a checkpoint signature covers."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\ntime {time}\n".encode()


def verify_signature(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def signing_key(connection: Connection, master: MasterKey) -> SigningKey:
    """The active key; the first one is created here (and by `kodex init`)."""
    row = connection.execute(select(log_keys).where(log_keys.c.retired_at.is_(None))).first()
    if row is None:
        return _create(connection, master)
    raw = master.unwrap(row.wrapped_private, _aad(row.key_id))
    return SigningKey(row.key_id, Ed25519PrivateKey.from_private_bytes(raw))


def rotate_signing_key(connection: Connection, master: MasterKey) -> tuple[str | None, str]:
    """Retire the active key (its private half destroyed, its public half kept) and create a new one."""
    old = connection.execute(select(log_keys.c.key_id).where(log_keys.c.retired_at.is_(None))).scalar()
    if old is not None:
        connection.execute(
            update(log_keys).where(log_keys.c.key_id == old).values(retired_at=datetime.now(UTC), wrapped_private=None)
        )
    return old, _create(connection, master).key_id


def public_keys(connection: Connection) -> dict[str, Ed25519PublicKey]:
    """Every key that ever signed, active or retired, by id."""
    rows = connection.execute(select(log_keys.c.key_id, log_keys.c.public_key).order_by(log_keys.c.created_at))
    return {row.key_id: Ed25519PublicKey.from_public_bytes(row.public_key) for row in rows}


def public_key_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def read_public_keys(data: bytes, source: str) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 public keys in PEM blocks of a file (one or several, as `kodex audit public-key --all` writes)."""
    found: dict[str, Ed25519PublicKey] = {}
    for block in _PEM.findall(data):
        try:
            public = serialization.load_pem_public_key(block)
        except ValueError:
            raise KeyFileError(f"{source}: a PUBLIC KEY block does not decode") from None
        if not isinstance(public, Ed25519PublicKey):
            raise KeyFileError(f"{source}: a public key is not Ed25519 (kodex signs checkpoints with Ed25519)")
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        found[key_id(raw)] = public
    if not found:
        raise KeyFileError(
            f"{source}: no PEM public key found; export one with `kodex audit public-key --all > {source}`"
        )
    return found


def _create(connection: Connection, master: MasterKey) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    kid = key_id(raw_public)
    connection.execute(
        log_keys.insert().values(
            key_id=kid,
            public_key=raw_public,
            wrapped_private=master.wrap(raw_private, _aad(kid)),
            created_at=datetime.now(UTC),
        )
    )
    return SigningKey(kid, private)


def _aad(kid: str) -> bytes:
    return f"kodex checkpoint key {kid}".encode()
