"""Merkle tree hashing for the decision log: RFC 9162 §2.1 (the trees of RFC 6962).

The log's entries are the leaves, in order. A leaf's hash is
SHA-256(0x00 || entry) and an inner node's is SHA-256(0x01 || left || right),
so no leaf can pass for a node (§2.1.1). The tree of n > 1 leaves splits at k,
the largest power of two smaller than n: the first k leaves on the left, the
rest on the right. The root of the empty tree is SHA-256 of nothing.

Two proofs let an auditor check the log without reading it:

- An inclusion proof (§2.1.3) shows that a leaf is at its index in the tree
  with a given root: the sibling hashes on the way from the leaf to the root,
  at most 64 of 32 bytes each.
- A consistency proof (§2.1.4) shows that the tree of the first size1 leaves
  is a prefix of a later tree: nothing was changed or removed, only appended.

The verifiers follow §2.1.3.2 and §2.1.4.2 step by step and answer True or
False, never an exception: a proof is input from outside, and whatever is
wrong with it (a hash of 31 bytes, a str where bytes belong, an index beyond
the tree, a negative size, a proof one hash too long) only means "not proven".
Sizes and indexes are below 2^64, as in the RFC. A root does not commit to
its size (a proof may also verify for a tree of another size with the same
shape along the path); the signed tree head binds the two (RFC 9162 §4).

Two edges the RFC leaves to the implementation, decided here:

- Trees of equal size are consistent when their roots are equal and the proof
  is empty (§2.1.4.1 gives the empty proof for them; §2.1.4.2 starts at
  first < second).
- A consistency check from the empty tree (size1 = 0) fails, proof or not.
  §2.1.4.2 requires 0 < first: every tree extends the empty one, so there is
  nothing to prove, and a caller holding the empty tree head skips the check
  rather than asking for it. `consistency_proof` refuses size1 = 0 likewise.

Building proofs costs about one hash per leaf: the sibling subtrees are hashed
level by level (never recursively over copied slices), about 0.5 s for a
million leaves. A log that answers many proofs over the same leaves builds a
`MerkleTree` once (all levels kept: about 80 MB more for a million leaves)
and then answers each proof in O(log² n) lookups, for the whole tree or for
any earlier size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import TypeGuard

from kodex.errors import InvalidProofRequest

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "MerkleTree",
    "consistency_proof",
    "consistency_ranges",
    "fold_parts",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "perfect_parts",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_MAX_SIZE = 1 << 64  # sizes and indexes are uint64 in the RFC
_MAX_PATH = 66  # longer than any proof in a tree of fewer than 2^64 leaves
_LEAF = hashlib.sha256(b"\x00")  # copied for every hash: the prefix is hashed once
_NODE = hashlib.sha256(b"\x01")


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry (§2.1.1)."""
    hasher = _LEAF.copy()
    hasher.update(data)
    return hasher.digest()


def _node(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an inner node (§2.1.1)."""
    hasher = _NODE.copy()
    hasher.update(left)
    hasher.update(right)
    return hasher.digest()


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of the leaves, given their leaf hashes (§2.1.1)."""
    _check_leaf_hashes(leaf_hashes)
    return _subtree_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The inclusion proof of leaf `index` in the tree of all the leaves (§2.1.3.1), leaf to root."""
    _check_leaf_hashes(leaf_hashes)
    size = len(leaf_hashes)
    _check_index(index, size)
    return [_subtree_root(leaf_hashes, lo, hi) for lo, hi in _inclusion_nodes(index, size)]


def consistency_proof(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The consistency proof from the tree of the first `size1` leaves to the tree of all (§2.1.4.1)."""
    _check_leaf_hashes(leaf_hashes)
    size2 = len(leaf_hashes)
    _check_sizes(size1, size2)
    return [_subtree_root(leaf_hashes, lo, hi) for lo, hi in _consistency_nodes(size1, size2)]


def verify_inclusion(leaf_index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether `proof` shows the leaf at `leaf_index` in the tree of `tree_size` with `root` (§2.1.3.2)."""
    try:
        return _verify_inclusion(leaf_index, tree_size, leaf_hash, proof, root)
    except Exception:  # a verifier answers False to whatever it is given
        return False


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> bool:
    """Whether `proof` shows the tree of `size1` with `root1` a prefix of the tree of `size2` with `root2` (§2.1.4.2)."""
    try:
        return _verify_consistency(size1, size2, proof, root1, root2)
    except Exception:  # a verifier answers False to whatever it is given
        return False


class MerkleTree:
    """Every level of the tree over a list of leaf hashes, kept to answer many proofs quickly.

    Level h holds the roots of the perfect subtrees of 2^h leaves, left to
    right, and last the subtree of the leaves left over, if any. Proofs and
    roots are for the whole tree or for the tree of its first `size` leaves.
    The leaf hashes are copied: appending to the caller's list changes nothing.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        _check_leaf_hashes(leaf_hashes)
        level = [bytes(leaf) for leaf in leaf_hashes]
        self._levels = [level]
        while len(level) > 1:
            level = _next_level(iter(level), len(level), level[-1])
            self._levels.append(level)

    def __len__(self) -> int:
        return len(self._levels[0])

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of the first `size` leaves (all by default)."""
        size = len(self) if size is None else size
        _check_sizes(size, len(self), allow_empty=True)
        return EMPTY_ROOT if size == 0 else self._range_root(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The inclusion proof of leaf `index` in the tree of the first `size` leaves (all by default)."""
        size = len(self) if size is None else size
        _check_sizes(size, len(self), allow_empty=True)
        _check_index(index, size)
        return [self._range_root(lo, hi) for lo, hi in _inclusion_nodes(index, size)]

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The consistency proof from the tree of `size1` leaves to that of `size2` (all by default)."""
        size2 = len(self) if size2 is None else size2
        _check_sizes(size2, len(self))
        _check_sizes(size1, size2)
        return [self._range_root(lo, hi) for lo, hi in _consistency_nodes(size1, size2)]

    def _range_root(self, lo: int, hi: int) -> bytes:
        """The root of leaves lo..hi-1, a subtree of the tree of `hi` leaves: its perfect parts, folded from the right."""
        parts = []
        while lo < hi:
            height = (hi - lo).bit_length() - 1  # the largest perfect subtree that fits; lo is aligned to it
            parts.append(self._levels[height][lo >> height])
            lo += 1 << height
        result = parts.pop()
        while parts:
            result = _node(parts.pop(), result)
        return result


class Frontier:
    """The right edge of a growing tree: the roots of the perfect subtrees its size decomposes into.

    A tree of n leaves is, left to right, one perfect subtree per set bit of n
    (largest first); appending a leaf merges equal neighbours like a binary
    counter adds one. So a log keeps O(log n) hashes to know its root after
    every append, and each merge names a perfect subtree that is final from
    then on (`append` returns them, for a store that keeps some as a cache).
    """

    __slots__ = ("_hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if not _is_count(size) or len(hashes) != size.bit_count() or not all(map(_is_hash, hashes)):
            raise InvalidProofRequest(f"a frontier of a tree of {size} leaves has {size.bit_count()} hashes")
        self.size = size
        self._hashes = list(hashes)

    @classmethod
    def from_bytes(cls, size: int, packed: bytes) -> Frontier:
        return cls(size, [packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)])

    def to_bytes(self) -> bytes:
        return b"".join(self._hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; returns the perfect subtrees completed, as (height, position, root), lowest first."""
        completed = [(0, self.size, leaf)]
        node, height, size = leaf, 0, self.size
        while size & 1:  # the rightmost subtree has 2^height leaves, as many as the new one: merge
            node = _node(self._hashes.pop(), node)
            size >>= 1
            height += 1
            completed.append((height, self.size >> height, node))
        self._hashes.append(node)
        self.size += 1
        return completed

    def root(self) -> bytes:
        if not self._hashes:
            return EMPTY_ROOT
        return fold_parts(self._hashes)


def perfect_parts(lo: int, hi: int) -> list[tuple[int, int]]:
    """The perfect subtrees (height, position) whose roots make the root of leaves lo..hi-1, left to right.

    For a range a proof asks for (`inclusion_ranges`, `consistency_ranges`),
    lo is aligned to the first part; the parts shrink to the right.
    """
    parts = []
    while lo < hi:
        height = (hi - lo).bit_length() - 1
        if lo & ((1 << height) - 1):
            raise InvalidProofRequest(f"leaves {lo}..{hi - 1} are not a subtree of the tree")
        parts.append((height, lo >> height))
        lo += 1 << height
    return parts


def fold_parts(roots: Sequence[bytes]) -> bytes:
    """The root of a range from its perfect parts' roots (left to right): folded from the right."""
    result = roots[-1]
    for left in reversed(roots[:-1]):
        result = _node(left, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges [lo, hi) whose roots make the inclusion proof of `index` in a tree of `size` leaves."""
    _check_index(index, size)
    return _inclusion_nodes(index, size)


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges [lo, hi) whose roots make the consistency proof from `size1` to `size2` leaves."""
    _check_sizes(size1, size2)
    return _consistency_nodes(size1, size2)


# -- building proofs ------------------------------------------------------------------------------


def _check_leaf_hashes(leaf_hashes: Sequence[bytes]) -> None:
    if isinstance(leaf_hashes, str | bytes | bytearray | memoryview):
        raise TypeError(
            f"leaf_hashes is a sequence of {HASH_SIZE}-byte hashes, not a single {type(leaf_hashes).__name__}"
        )
    wrong = set(map(len, leaf_hashes)) - {HASH_SIZE}
    if wrong:
        length = min(wrong)
        position = next(i for i, leaf in enumerate(leaf_hashes) if len(leaf) == length)
        raise InvalidProofRequest(
            f"leaf hash {position} has {length} bytes; a leaf hash is SHA-256, {HASH_SIZE} bytes (leaf_hash(entry))"
        )


def _check_index(index: int, size: int) -> None:
    if not _is_count(index) or index >= size:
        raise InvalidProofRequest(f"leaf index {index!r} is not in the tree of {size} leaves (0 <= index < {size})")


def _check_sizes(size1: int, size2: int, *, allow_empty: bool = False) -> None:
    if not _is_count(size1) or size1 > size2:
        lowest = "0 <=" if allow_empty else "0 <"
        raise InvalidProofRequest(f"size {size1!r} is not a tree size of the {size2} leaves ({lowest} size <= {size2})")
    if size1 == 0 and not allow_empty:
        raise InvalidProofRequest(
            "no consistency proof from the empty tree (size 0): every tree extends it, there is nothing to prove"
        )


def _next_level(pairs: Iterator[bytes], count: int, last: bytes) -> list[bytes]:
    """The level above `count` hashes read from `pairs`; an odd last hash moves up as it is."""
    copy = _NODE.copy
    level: list[bytes] = []
    append = level.append
    for left, right in zip(pairs, pairs, strict=False):  # the same iterator twice: consecutive pairs
        hasher = copy()
        hasher.update(left)
        hasher.update(right)
        append(hasher.digest())
    if count % 2:
        append(last)
    return level


def _subtree_root(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """The root of leaves lo..hi-1, hashed level by level; reads the sequence in place, never copies it."""
    count = hi - lo
    if count == 0:
        return EMPTY_ROOT
    if count == 1:
        return bytes(leaf_hashes[lo])
    get: Callable[[int], bytes] = leaf_hashes.__getitem__
    level = _next_level(map(get, range(lo, hi)), count, leaf_hashes[hi - 1])
    while len(level) > 1:
        level = _next_level(iter(level), len(level), level[-1])
    return bytes(level[0])


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_nodes(index: int, size: int) -> list[tuple[int, int]]:
    """The subtrees (first leaf, end) whose roots make PATH(index, D[size]) (§2.1.3.1), leaf to root."""
    nodes = []
    lo, hi = 0, size
    while hi - lo > 1:
        split = lo + _largest_power_of_two_below(hi - lo)
        if index < split:
            nodes.append((split, hi))
            hi = split
        else:
            nodes.append((lo, split))
            lo = split
    nodes.reverse()
    return nodes


def _consistency_nodes(size1: int, size2: int) -> list[tuple[int, int]]:
    """The subtrees (first leaf, end) whose roots make PROOF(size1, D[size2]) (§2.1.4.1), in proof order."""
    nodes = []
    lo, hi, m, whole = 0, size2, size1, True  # SUBPROOF(m, D[lo:hi], whole)
    while m < hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            nodes.append((lo + k, hi))
            hi = lo + k
        else:
            nodes.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        nodes.append((lo, hi))
    nodes.reverse()
    return nodes


# -- verifying proofs -----------------------------------------------------------------------------


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_SIZE


def _is_hash(value: object) -> TypeGuard[bytes]:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _path(proof: object) -> list[bytes] | None:
    """The proof as a list of hashes, or None if it is not one (or longer than any proof can be)."""
    if isinstance(proof, str | bytes | bytearray | memoryview) or not isinstance(proof, Sequence):
        return None
    path = list(islice(proof, _MAX_PATH + 1))
    if len(path) > _MAX_PATH or not all(_is_hash(item) for item in path):
        return None
    return path


def _verify_inclusion(leaf_index: object, tree_size: object, hash_: object, proof: object, root: object) -> bool:
    path = _path(proof)
    if not (_is_count(leaf_index) and _is_count(tree_size) and _is_hash(hash_) and _is_hash(root)) or path is None:
        return False
    # RFC 9162 §2.1.3.2, step by step.
    # 1. leaf_index >= tree_size fails.
    if leaf_index >= tree_size:
        return False
    # 2. fn = leaf_index, sn = tree_size - 1. 3. r = hash.
    fn, sn = leaf_index, tree_size - 1
    r = hash_
    # 4. For each p in inclusion_path:
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    # 5. sn must be 0 and r the root.
    return sn == 0 and r == root


def _verify_consistency(size1: object, size2: object, proof: object, root1: object, root2: object) -> bool:
    path = _path(proof)
    if not (_is_count(size1) and _is_count(size2)) or path is None:
        return False
    if size1 == 0 or size1 > size2:
        return False  # nothing to prove from the empty tree; a tree does not shrink
    if size1 == size2:  # §2.1.4.2: the same tree; the roots are compared as given, nothing is hashed
        return not path and type(root1) is bytes and root1 == root2
    if not (_is_hash(root1) and _is_hash(root2)):
        return False
    # RFC 9162 §2.1.4.2, step by step, for 0 < first < second.
    # 1. An empty consistency_path fails.
    if not path:
        return False
    # 2. If first is an exact power of 2, prepend first_hash.
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = size1 - 1, size2 - 1
    # 4. While LSB(fn) is set, right-shift fn and sn.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = the first value of the path.
    fr = sr = path[0]
    # 6. For each subsequent value c:
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    # 7. fr must be first_hash, sr second_hash, and sn 0.
    return fr == root1 and sr == root2 and sn == 0
