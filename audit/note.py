"""Checkpoints as signed notes: the C2SP `signed-note` and `tlog-checkpoint` formats, Ed25519 only.

A note (c2sp.org/signed-note) is a UTF-8 text ending in a newline, a blank line, and signature lines
`— <key name> <base64(key hash || signature)>`. The key hash is the first 4 bytes of
SHA-256(key name || 0x0A || 0x01 || 32-byte public key) (0x01: the Ed25519 signature type), and the
signature is Ed25519 over the text. A verifier key is written `<name>+<hex key hash>+<base64(0x01 || key)>`
(golang.org/x/mod/sumdb/note). A checkpoint (c2sp.org/tlog-checkpoint) is a note whose text is the origin,
the tree size in decimal, the base64 root hash, then extension lines; kodex adds one, `time <ISO 8601 UTC>`.

The log's key name is its origin (`kodex/<library>`), as tlog-checkpoint recommends; one Ed25519 key signs
every library's checkpoints, so it has a verifier key per library.

Verifying follows the spec: signatures from unknown keys (another name or key hash) are ignored; a signature
from a known key must verify, or the whole note is refused; a note with no verified signature is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kodex.errors import InvalidNote

__all__ = [
    "ED25519",
    "SavedCheckpoint",
    "key_hash",
    "open_checkpoint",
    "raw_key",
    "signature_line",
    "signed_note",
    "split_notes",
    "verifier_key",
]

ED25519 = 0x01  # c2sp.org/signed-note, "Signature types"
MAX_SIGNATURES = 100  # the spec asks verifiers to accept at least 16
MAX_NOTE = 64 * 1024  # a checkpoint note is a few hundred bytes
_DASH = "\u2014 "  # em dash, space: a signature line's start
_SIGNATURE = re.compile(r"\u2014 (?P<name>[^\s+]+) (?P<blob>[A-Za-z0-9+/=]+)\n")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")  # decimal, no leading zeroes


@dataclass(frozen=True)
class SavedCheckpoint:
    """A checkpoint an auditor or witness kept, its signature verified."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]


def key_hash(name: str, public_raw: bytes) -> bytes:
    """The 4-byte key hash: SHA-256(key name || 0x0A || 0x01 || public key)[:4] (c2sp.org/signed-note)."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_raw).digest()[:4]


def raw_key(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verifier_key(name: str, public_raw: bytes) -> str:
    """The verifier key `<name>+<hex key hash>+<base64(0x01 || key)>` (golang.org/x/mod/sumdb/note)."""
    encoded = base64.b64encode(bytes([ED25519]) + public_raw).decode()
    return f"{name}+{key_hash(name, public_raw).hex()}+{encoded}"


def signature_line(name: str, public_raw: bytes, signature: bytes) -> str:
    return f"{_DASH}{name} {base64.b64encode(key_hash(name, public_raw) + signature).decode()}\n"


def signed_note(text: bytes, name: str, public_raw: bytes, signature: bytes) -> str:
    """The note: its text (ending in a newline), a blank line, one signature line."""
    return text.decode() + "\n" + signature_line(name, public_raw, signature)


def split_notes(data: str) -> list[str]:
    """The notes of a file that holds one or several, one after another (as `>>` appends them)."""
    notes: list[str] = []
    current: list[str] = []
    signing = False
    for line in data.splitlines(keepends=True):
        if signing and not line.startswith(_DASH):
            notes.append("".join(current))
            current, signing = [], False
        current.append(line)
        if line == "\n" and current[:-1]:
            signing = True
    if current:
        notes.append("".join(current))
    return [note for note in notes if note.strip()]


def open_checkpoint(note: str, origin: str, keys: Mapping[str, Ed25519PublicKey]) -> SavedCheckpoint:
    """The checkpoint of log `origin` in `note`, signed by one of `keys` (by key id); InvalidNote otherwise."""
    text, signatures = _split(note)
    lines = text.split("\n")[:-1]
    if len(lines) < 3 or any(not line for line in lines):
        raise InvalidNote("not a checkpoint: its text needs an origin, a tree size and a root hash, none empty")
    if lines[0] != origin:
        raise InvalidNote(f"the checkpoint is of the log {lines[0]!r}, not of {origin!r}: keep one file per library")
    if not _SIZE.fullmatch(lines[1]) or int(lines[1]) >= 1 << 64:
        raise InvalidNote("not a checkpoint: its second line is not a tree size (decimal, no leading zeroes)")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except (binascii.Error, ValueError):
        root = b""
    if len(root) != 32:
        raise InvalidNote("not a checkpoint: its third line is not a base64 SHA-256 root hash")
    _verify(text.encode(), signatures, origin, keys)
    return SavedCheckpoint(origin, int(lines[1]), root, tuple(lines[3:]))


def _split(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    if len(note) > MAX_NOTE:
        raise InvalidNote(f"the note is longer than {MAX_NOTE} characters")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise InvalidNote("not a signed note: it holds a control character other than newline")
    if not note.endswith("\n"):
        raise InvalidNote("not a signed note: it does not end in a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise InvalidNote("not a signed note: no blank line separates the text from its signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    signatures = []
    for line in block.splitlines(keepends=True):
        match = _SIGNATURE.fullmatch(line)
        if match is None:
            raise InvalidNote("not a signed note: a line after the blank line is not a signature line")
        try:
            blob = base64.b64decode(match["blob"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidNote("not a signed note: a signature is not base64") from None
        if len(blob) < 5:
            raise InvalidNote("not a signed note: a signature is too short")
        signatures.append((match["name"], blob))
    if not signatures:
        raise InvalidNote("not a signed note: it has no signature line")
    if len(signatures) > MAX_SIGNATURES:
        raise InvalidNote(f"the note has more than {MAX_SIGNATURES} signatures")
    return text, signatures


def _verify(
    text: bytes,
    signatures: list[tuple[str, bytes]],
    name: str,
    keys: Mapping[str, Ed25519PublicKey],
) -> None:
    known = {key_hash(name, raw_key(public)): (kid, public) for kid, public in keys.items()}
    verified = False
    for signer, blob in signatures:
        if signer != name or blob[:4] not in known:
            continue  # another key's signature (a witness's, or a key not trusted): ignored, as the spec says
        kid, public = known[blob[:4]]
        try:
            public.verify(blob[4:], text)
        except Exception:  # InvalidSignature, or a signature of the wrong length
            raise InvalidNote(
                f"the checkpoint's signature by key {kid} does not verify: the note was altered"
            ) from None
        verified = True
    if not verified:
        raise InvalidNote(
            f"the checkpoint carries no signature of {name} by a trusted key "
            "(signed by another key, or a key not among those given)"
        )
