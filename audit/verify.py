"""Verifying the decision log without trusting whoever runs it.

`verify_log` recomputes every library's tree from the stored entries and
checks, in this order, stopping at a library's first broken entry (what
follows it would only repeat the finding):

- every checkpoint: signed by a known key (the keys an auditor exported and
  hands in, or else the store's), the signature good, sizes never shrinking;
- every entry, by index: no index missing, its text hashing to its leaf
  hash, a well-formed entry of its schema version, the row's query columns
  saying what the entry says;
- the perfect subtrees stored when the entries were appended, against the
  recomputed ones (this narrows a change to 16 entries);
- every checkpoint's root against the root of the first `size` entries, and
  a consistency proof between successive checkpoints (RFC 9162 §2.1.4);
- the head: as many entries as the log recorded appending, none removed
  from the end or added around the log;
- checkpoints kept outside kodex (signed notes an auditor or witness saved,
  audit.note): each signed by a trusted key, and the log now consistent with
  it (RFC 9162 §2.1.4). Only this catches a log rolled back whole (an older
  copy of the database restored, or entries and checkpoints removed back to
  an old one): what the store holds then agrees with itself.

`verify_proof` checks a proof from `kodex audit prove` offline, with the
public keys only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import Connection, Engine, select, union

from kodex.audit.entries import LogEntry, canonical
from kodex.audit.keys import checkpoint_note, public_keys, verify_signature
from kodex.audit.log import CACHED_HEIGHT, PROOF_FORMAT, Checkpoint, checkpoints, head, origin_of
from kodex.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_ranges,
    fold_parts,
    leaf_hash,
    perfect_parts,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from kodex.audit.note import SavedCheckpoint, open_checkpoint, split_notes
from kodex.errors import InvalidNote, InvalidProofRequest, ProofInvalid
from kodex.store.schema import decision_log, log_checkpoints, log_heads, log_subtrees

__all__ = ["LogVerdict", "verify_log", "verify_proof"]

_KEYS = frozenset(LogEntry.model_fields)
_COLUMNS = (
    ("kind", "kind"),
    ("run_id", "run"),
    ("as_of", "as_of"),
    ("subject_type", "subject_type"),
    ("subject", "subject"),
    ("rule", "rule"),
    ("action", "action"),
    ("outcome", "outcome"),
)


@dataclass
class LogVerdict:
    library: str
    entries: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)
    kept: int = 0  # checkpoints kept outside kodex that the log was checked against

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_log(
    engine: Engine,
    *,
    library: str | None = None,
    trusted: Mapping[str, Ed25519PublicKey] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    kept: str | None = None,
) -> list[LogVerdict]:
    """Each library's verdict (or only `library`'s); `progress(library, done, total)` now and then.

    `kept`: the text of one or more signed checkpoint notes of `library` saved outside kodex (needs `library`).
    """
    if kept is not None and library is None:
        raise ValueError("checkpoints kept outside kodex are checked against one library's log")
    with engine.connect() as connection:
        keys = dict(trusted) if trusted is not None else public_keys(connection)
        libraries = sorted(
            connection.execute(
                union(
                    select(log_heads.c.library),
                    select(decision_log.c.library).distinct(),
                    select(log_checkpoints.c.library).distinct(),
                )
            ).scalars()
        )
    if library is not None:
        if library not in libraries:
            return [LogVerdict(library, problems=[f"{library}: no decision log of that library in the store"])]
        libraries = [library]
    verdicts = []
    for name in libraries:
        with engine.connect() as connection:
            verdicts.append(_Library(connection, name, keys, trusted is not None, progress).verify(kept))
    return verdicts


class _Library:
    def __init__(
        self,
        connection: Connection,
        library: str,
        keys: Mapping[str, Ed25519PublicKey],
        pinned: bool,
        progress: Callable[[str, int, int], None] | None,
    ) -> None:
        self.connection, self.library, self.keys, self.pinned, self.progress = (
            connection,
            library,
            keys,
            pinned,
            progress,
        )
        self.verdict = LogVerdict(library)
        self.leaves = bytearray()  # every leaf hash, 32 bytes each, for the consistency proofs
        self.nodes: dict[tuple[int, int], bytes] = {}  # recomputed perfect subtrees of CACHED_HEIGHT and more

    def problem(self, text: str) -> None:
        self.verdict.problems.append(f"{self.library}: {text}")

    def verify(self, kept: str | None = None) -> LogVerdict:
        saved = self._saved(kept) if kept is not None else []
        signed = checkpoints(self.connection, self.library)
        self.verdict.checkpoints = len(signed)
        self._signatures(signed)
        count = self._entries(signed)
        if count < 0:  # a broken entry: what follows would only repeat it
            return self.verdict
        self.verdict.entries = count
        self._tail(signed, count)
        for cp in saved:
            self._extends(cp, count)
        return self.verdict

    # -- checkpoints kept outside kodex ------------------------------------------------------------

    def _saved(self, kept: str) -> list[SavedCheckpoint]:
        notes = split_notes(kept)
        if not notes:
            self.problem("the checkpoint file you kept holds no signed note")
        saved = []
        for number, note in enumerate(notes, 1):
            try:
                saved.append(open_checkpoint(note, origin_of(self.library), self.keys))
            except InvalidNote as invalid:
                where = f"note {number} of the checkpoints you kept" if len(notes) > 1 else "the checkpoint you kept"
                self.problem(f"{where}: {invalid}")
        self.verdict.kept = len(saved)
        return saved

    def _extends(self, kept: SavedCheckpoint, count: int) -> None:
        """The log as stored now extends the kept checkpoint (RFC 9162 consistency proof from its size)."""
        size = kept.size
        if size > count:
            self.problem(
                f"the log has {count} entries, the checkpoint you kept has {size}: "
                "entries were removed or an older copy restored"
            )
            return
        if size == 0:
            consistent = kept.root == EMPTY_ROOT
        elif size == count:
            consistent = kept.root == self.frontier.root()
        else:
            proof = [self._range_root(lo, hi) for lo, hi in consistency_ranges(size, count)]
            consistent = verify_consistency(size, count, proof, kept.root, self.frontier.root())
        if not consistent:
            self.problem(
                f"the log does not extend the checkpoint of size {size} you kept: "
                f"entries before index {size} were changed, or the log was replaced"
            )

    # -- checkpoints -------------------------------------------------------------------------------

    def _signatures(self, signed: list[Checkpoint]) -> None:
        previous: Checkpoint | None = None
        for number, cp in enumerate(signed, 1):
            name = _name(number, cp)
            public = self.keys.get(cp.key_id)
            if public is None:
                among = "the trusted keys given" if self.pinned else "the store's keys"
                self.problem(f"{name} is signed by key {cp.key_id}, which is not among {among}")
            elif not verify_signature(public, cp.signature, cp.note()):
                self.problem(
                    f"{name}: the signature does not verify with key {cp.key_id}: "
                    "the checkpoint was altered or signed by another key"
                )
            if cp.origin != origin_of(self.library):
                self.problem(f"{name} names the log {cp.origin!r}, not {origin_of(self.library)!r}")
            if previous is not None and cp.size < previous.size:
                self.problem(f"{name} has {cp.size} entries, fewer than the {previous.size} of the checkpoint before")
            previous = cp

    # -- entries -----------------------------------------------------------------------------------

    def _entries(self, signed: list[Checkpoint]) -> int:
        """Recompute the tree; the number of entries, or -1 after a broken entry (its problem recorded)."""
        stored = {
            (row.height, row.position): bytes(row.hash)
            for row in self.connection.execute(
                select(log_subtrees.c.height, log_subtrees.c.position, log_subtrees.c.hash).where(
                    log_subtrees.c.library == self.library
                )
            )
        }
        at_size: dict[int, list[tuple[int, Checkpoint]]] = {}
        for number, cp in enumerate(signed, 1):
            at_size.setdefault(cp.size, []).append((number, cp))
        for number, cp in at_size.pop(0, []):
            if cp.root != EMPTY_ROOT:
                self.problem(f"{_name(number, cp)} signs an empty tree with a root other than the empty root")
        total = (
            self.connection.execute(select(log_heads.c.size).where(log_heads.c.library == self.library)).scalar() or 0
        )
        frontier = Frontier()
        columns = [decision_log.c[name] for name, _ in _COLUMNS]
        statement = (
            select(decision_log.c.idx, decision_log.c.id, decision_log.c.entry, decision_log.c.leaf_hash, *columns)
            .where(decision_log.c.library == self.library)
            .order_by(decision_log.c.idx)
        )
        result = self.connection.execution_options(yield_per=10_000).execute(statement)
        for row in result:
            wrong = self._row(row, frontier.size) or self._grow(frontier, bytes(row.leaf_hash), stored, at_size)
            if wrong is not None:
                result.close()
                self.problem(wrong)
                self.verdict.entries = frontier.size
                return -1
            if self.progress is not None and frontier.size % 50_000 == 0:
                self.progress(self.library, frontier.size, total)
        if self.progress is not None:
            self.progress(self.library, frontier.size, total)
        self.frontier = frontier
        for size, pending in sorted(at_size.items()):
            for number, cp in pending:
                self.problem(
                    f"{_name(number, cp)} signed a tree of {size} entries, but only {frontier.size} are stored: "
                    "entries were removed from the end of the log"
                )
        return frontier.size

    def _row(self, row: Any, index: int) -> str | None:
        """What is wrong with the row expected at `index`, if anything."""
        if row.idx != index:
            if row.idx > index:
                return f"entry {index} is missing: the next stored entry has index {row.idx} (an entry was deleted)"
            return f"entry {row.idx} is stored twice"
        text = row.entry.encode()
        if leaf_hash(text) != bytes(row.leaf_hash):
            return (
                f"entry {index} (id {row.id}): its text does not hash to the leaf hash logged with it "
                "(the entry was changed)"
            )
        wrong = self._malformed(row, text)
        return None if wrong is None else f"entry {index} (id {row.id}): {wrong}"

    def _grow(
        self,
        frontier: Frontier,
        hashed: bytes,
        stored: Mapping[tuple[int, int], bytes],
        at_size: dict[int, list[tuple[int, Checkpoint]]],
    ) -> str | None:
        """Add a leaf; what the subtrees recorded at append time or the checkpoints at this size say against it."""
        self.leaves += hashed
        for height, position, node in frontier.append(hashed):
            if height < CACHED_HEIGHT:
                continue
            self.nodes[(height, position)] = node
            kept = stored.get((height, position))
            if kept is None:
                first = position << height
                return (
                    f"the subtree of entries {first}–{first + (1 << height) - 1} recorded when they were appended "
                    "is missing (a row of log_subtrees was deleted; proofs through it cannot be made)"
                )
            if kept != node:
                first = position << height
                return (
                    f"entries {first}–{first + (1 << height) - 1} do not hash to the subtree recorded when they "
                    "were appended: one of them was changed, removed, inserted or moved"
                )
        for number, cp in at_size.pop(frontier.size, []):
            if cp.root != frontier.root():
                return (
                    f"{_name(number, cp)} signed root {_b64(cp.root)}, but entries 0–{cp.size - 1} give "
                    f"{_b64(frontier.root())}: an entry before index {cp.size} was changed, removed, "
                    "inserted or moved"
                )
        return None

    def _malformed(self, row: Any, text: bytes) -> str | None:
        # Read with the strict schema (fast enough for a million entries; the canonical form is not re-checked:
        # append writes only canonical text, and any other change already fails its leaf hash or a signed root).
        try:
            entry = LogEntry.model_validate_json(text)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the entry"
            return f"is not a schema-1 log entry ({where}: {first['msg']})"
        if entry.library != self.library or entry.id != row.id:
            return "belongs to another library or entry id than its row says"
        for column, key in _COLUMNS:
            said, says = getattr(row, column), getattr(entry, key)
            if said != says:
                return f"its row says {column} = {said!r}, the entry says {says!r} (the row was changed)"
        return None

    # -- after the last entry ----------------------------------------------------------------------

    def _tail(self, signed: list[Checkpoint], count: int) -> None:
        try:
            recorded = head(self.connection, self.library)
        except InvalidProofRequest:
            self.problem("the log's head (its size and right edge) does not fit together: the head was changed")
            return
        if recorded.size > count:
            self.problem(
                f"the log recorded appending {recorded.size} entries, but {count} are stored: "
                "entries were removed from the end of the log"
            )
        elif recorded.size < count:
            self.problem(
                f"{count} entries are stored, but the log recorded appending {recorded.size}: "
                "entries were added around the log"
            )
        elif recorded.root() != self.frontier.root():
            self.problem("the log's head does not match its entries (the head was changed)")
        complete = [cp for cp in signed if 0 < cp.size <= count]
        for first, second in pairwise(complete):
            if first.size == second.size:
                consistent = first.root == second.root
            else:
                proof = [self._range_root(lo, hi) for lo, hi in consistency_ranges(first.size, second.size)]
                consistent = verify_consistency(first.size, second.size, proof, first.root, second.root)
            if not consistent:
                self.problem(
                    f"checkpoints of {first.size} and {second.size} entries ({first.time} and {second.time}) are not "
                    "consistent: the later tree does not extend the earlier one"
                )
                return

    def _range_root(self, lo: int, hi: int) -> bytes:
        roots = []
        for height, position in perfect_parts(lo, hi):
            if height >= CACHED_HEIGHT:
                roots.append(self.nodes[(height, position)])
            else:
                start = position << height
                leaves = [bytes(self.leaves[i * 32 : i * 32 + 32]) for i in range(start, start + (1 << height))]
                roots.append(root_hash(leaves))
        return fold_parts(roots)


def _name(number: int, cp: Checkpoint) -> str:
    return f"checkpoint {number} ({cp.size} entries, {cp.time})"


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


# -- offline proofs -----------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SignedCheckpoint(_Strict):
    origin: str
    size: int
    root: str
    time: str
    key_id: str
    signature: str


class _Proof(_Strict):
    format: Literal["kodex-inclusion-proof/1"]
    library: str
    entry: LogEntry
    leaf_index: int
    tree_size: int
    inclusion_proof: list[str]
    checkpoint: _SignedCheckpoint


def verify_proof(document: Any, keys: Mapping[str, Ed25519PublicKey]) -> str:
    """Check a proof document against trusted public keys; what it proves, or ProofInvalid saying why not."""
    try:
        proof = _Proof.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the document"
        raise ProofInvalid(f"not a {PROOF_FORMAT} document: {where}: {first['msg']}") from None
    cp = proof.checkpoint
    try:
        root, signature = base64.b64decode(cp.root, validate=True), base64.b64decode(cp.signature, validate=True)
        path = [base64.b64decode(h, validate=True) for h in proof.inclusion_proof]
    except (binascii.Error, ValueError):
        raise ProofInvalid("a hash or the signature is not base64") from None
    public = keys.get(cp.key_id)
    if public is None:
        raise ProofInvalid(
            f"the checkpoint is signed by key {cp.key_id}, which is not among the public keys given "
            f"({', '.join(sorted(keys)) or 'none'})"
        )
    if not verify_signature(public, signature, checkpoint_note(cp.origin, cp.size, root, cp.time)):
        raise ProofInvalid(f"the checkpoint's signature does not verify with key {cp.key_id}")
    if cp.origin != origin_of(proof.library) or proof.entry.library != proof.library:
        raise ProofInvalid(f"the checkpoint is of the log {cp.origin!r}, not of {origin_of(proof.library)!r}")
    if proof.tree_size != cp.size:
        raise ProofInvalid(f"the proof is for a tree of {proof.tree_size} entries, the checkpoint signs {cp.size}")
    hashed = leaf_hash(canonical(document["entry"]))
    if not verify_inclusion(proof.leaf_index, cp.size, hashed, path, root):
        raise ProofInvalid(
            f"the inclusion proof does not lead from the entry to the signed root: entry {proof.entry.id} is not "
            f"entry {proof.leaf_index} of that tree"
        )
    return (
        f"entry {proof.entry.id} is entry {proof.leaf_index} of the log {cp.origin} "
        f"in the tree of {cp.size} entries signed by key {cp.key_id} at {cp.time}"
    )
