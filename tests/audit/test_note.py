"""Checkpoints as C2SP signed notes (audit.note): the bytes match the reference implementation's.

The vector is golang.org/x/mod/sumdb/note's own (note_test.go, the PeterNeumann key): its private and verifier
keys, a text, and the signed note Go produces. Ed25519 is deterministic (RFC 8032), so signing the same text with
the same key must give that note byte for byte; if it does, a Go witness or verifier reads kodex's notes.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kodex.audit.keys import checkpoint_note, key_id
from kodex.audit.merkle import EMPTY_ROOT
from kodex.audit.note import key_hash, open_checkpoint, raw_key, signed_note, split_notes, verifier_key
from kodex.errors import InvalidNote

GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = b"If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT.decode() + "\n"
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def go_private_key() -> Ed25519PrivateKey:
    seed = base64.b64decode(GO_SIGNER.split("+", 4)[4])  # the key material may hold a "+"
    assert seed[0] == 0x01  # the Ed25519 signature type, then the 32-byte seed
    return Ed25519PrivateKey.from_private_bytes(seed[1:])


def test_the_key_hash_and_verifier_key_are_those_of_the_go_reference_vector() -> None:
    public = raw_key(go_private_key().public_key())
    assert key_hash("PeterNeumann", public).hex() == "c74f20a3"
    assert verifier_key("PeterNeumann", public) == GO_VERIFIER


def test_a_note_signed_here_is_the_go_reference_note_byte_for_byte() -> None:
    private = go_private_key()
    note = signed_note(GO_TEXT, "PeterNeumann", raw_key(private.public_key()), private.sign(GO_TEXT))
    assert note == GO_NOTE


# -- kodex's checkpoints --------------------------------------------------------------------------------------------

KEY = Ed25519PrivateKey.generate()
KEYS = {key_id(raw_key(KEY.public_key())): KEY.public_key()}
ORIGIN = "kodex/svkpk"
ROOT = hashlib.sha256(b"some tree").digest()
TEXT = checkpoint_note(ORIGIN, 7, ROOT, "2026-11-22T01:00:00.000000+00:00")
NOTE = signed_note(TEXT, ORIGIN, raw_key(KEY.public_key()), KEY.sign(TEXT))


def test_the_signed_bytes_are_the_c2sp_checkpoint_body_origin_size_root_then_the_time_extension_line() -> None:
    root = base64.b64encode(ROOT).decode()
    assert TEXT.decode() == f"kodex/svkpk\n7\n{root}\ntime 2026-11-22T01:00:00.000000+00:00\n"
    assert NOTE.startswith(TEXT.decode() + "\n\u2014 kodex/svkpk ")


def test_a_kept_checkpoint_opens_with_its_size_root_and_extension_lines() -> None:
    kept = open_checkpoint(NOTE, ORIGIN, KEYS)
    assert (kept.origin, kept.size, kept.root, kept.extensions) == (
        ORIGIN, 7, ROOT, ("time 2026-11-22T01:00:00.000000+00:00",)
    )  # fmt: skip


def test_a_witness_cosignature_beside_kodexs_is_ignored_and_the_note_still_opens() -> None:
    witness = Ed25519PrivateKey.generate()
    cosignature = signed_note(TEXT, "witness.example/w1", raw_key(witness.public_key()), witness.sign(TEXT))
    cosigned = NOTE + cosignature.split("\n\n")[1]
    assert open_checkpoint(cosigned, ORIGIN, KEYS).size == 7


def altered(note: str) -> str:
    return note.replace("\n7\n", "\n8\n")


def resigned_by_another_key(note: str) -> str:
    other = Ed25519PrivateKey.generate()
    return signed_note(TEXT, ORIGIN, raw_key(other.public_key()), other.sign(TEXT))


def forged_with_the_trusted_key_hash(note: str) -> str:
    """The trusted key's name and hash, another key's signature: a known key whose signature fails."""
    line = note.split("\n\n")[1]
    blob = base64.b64decode(line.split(" ")[2])
    forged = blob[:4] + Ed25519PrivateKey.generate().sign(TEXT)
    return TEXT.decode() + "\n\u2014 " + ORIGIN + " " + base64.b64encode(forged).decode() + "\n"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        pytest.param(altered, "does not verify", id="a size changed after signing"),
        pytest.param(resigned_by_another_key, "no signature of kodex/svkpk by a trusted key", id="another key"),
        pytest.param(forged_with_the_trusted_key_hash, "does not verify", id="the trusted key's hash, a bad signature"),
        pytest.param(lambda n: n.replace("kodex/svkpk", "kodex/kntb"), "not of 'kodex/svkpk'", id="another origin"),
        pytest.param(lambda n: n.replace("\n\n", "\n"), "no blank line", id="no blank line"),
        pytest.param(lambda n: n.rstrip("\n"), "newline", id="no final newline"),
        pytest.param(lambda n: n.replace("\n7\n", "\n07\n"), "tree size", id="a leading zero"),
        pytest.param(lambda n: "\t" + n, "control character", id="a tab"),
    ],
)
def test_a_kept_checkpoint_that_is_not_a_good_note_of_this_log_is_refused(change: object, says: str) -> None:
    with pytest.raises(InvalidNote, match=says):
        open_checkpoint(change(NOTE), ORIGIN, KEYS)  # type: ignore[operator]


def test_a_file_of_notes_appended_one_after_another_splits_into_each_note() -> None:
    empty = checkpoint_note(ORIGIN, 0, EMPTY_ROOT, "2026-11-21T01:00:00.000000+00:00")
    first = signed_note(empty, ORIGIN, raw_key(KEY.public_key()), KEY.sign(empty))
    assert split_notes(first + NOTE) == [first, NOTE]
    assert [open_checkpoint(n, ORIGIN, KEYS).size for n in split_notes(first + NOTE)] == [0, 7]
