"""Merkle tree hashing and proofs per RFC 9162 §2.1 (audit/merkle.py).

The reference is the test data of transparency-dev/merkle (Apache-2.0, its LICENSE beside it), vendored
into tests/audit/vectors/rfc6962-vectors so that a clone of this repository runs it alone: every vector there
is a test case of its own. A happy path must verify, and where the vector's tree is known (the
eight leaves its README lists, or a tree of one leaf) our proof and root must
be exactly the vector's. A `wantErr` vector must be rejected: False, never an
exception. Property tests then cover random trees of up to 300 leaves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kodex.audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from kodex.errors import InvalidProofRequest

VECTORS = Path(__file__).parent / "vectors" / "rfc6962-vectors"

# The leaves every vector's tree is built from (README.md), in order.
README_LEAVES = [
    bytes.fromhex(text)
    for text in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
README_LEAF_HASHES = [leaf_hash(data) for data in README_LEAVES]

# Where this verifier answers otherwise than the vector, and why.
DEVIATIONS: dict[str, str] = {}  # none: every vector is answered as it expects


def _load(kind: str) -> list[Any]:
    params = []
    for path in sorted((VECTORS / kind).rglob("*.json")):
        name = path.relative_to(VECTORS).with_suffix("").as_posix()
        params.append(pytest.param(name, json.loads(path.read_text(encoding="utf-8")), id=name))
    return params


INCLUSION = _load("inclusion")
CONSISTENCY = _load("consistency")


def _hash(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _proof(vector: dict[str, Any]) -> list[bytes]:
    return [_hash(item) for item in vector["proof"] or []]  # JSON null is Go's nil slice: no hashes


def _readme_roots() -> dict[bytes, int]:
    """The README's table of roots for the trees of the first 1..8 leaves: root -> size."""
    text = (VECTORS / "README.md").read_text(encoding="utf-8")
    return {bytes.fromhex(root): int(size) for size, root in re.findall(r"^\s+(\d+) ([0-9a-f]{64})$", text, re.M)}


README_ROOTS = _readme_roots()


def _known_tree(root: bytes, size: int, leaf: bytes | None = None) -> list[bytes] | None:
    """The leaf hashes of the vector's tree, if the vector tells them: a README root, or one leaf."""
    if README_ROOTS.get(root) == size:
        return README_LEAF_HASHES[:size]
    if size == 1 and leaf is not None:
        return [leaf]
    return None


# -- the vectors ------------------------------------------------------------------------------------


def test_the_vectors_are_all_there():
    assert VECTORS.is_dir(), f"{VECTORS} is missing: the RFC 6962 vectors are vendored test data"
    assert len(INCLUSION) == 98
    assert len(CONSISTENCY) == 98
    happy = [p.id for p in INCLUSION + CONSISTENCY if not p.values[1]["wantErr"]]
    assert len(happy) == 12
    assert set(DEVIATIONS) <= {p.id for p in CONSISTENCY + INCLUSION}


def test_readme_roots_are_ours():
    assert sorted(README_ROOTS.values()) == list(range(1, 9))
    for root, size in README_ROOTS.items():
        assert root_hash(README_LEAF_HASHES[:size]) == root
        assert MerkleTree(README_LEAF_HASHES).root(size) == root


@pytest.mark.parametrize(("name", "vector"), INCLUSION)
def test_inclusion_vector(name: str, vector: dict[str, Any]):
    index, size, proof = vector["leafIdx"], vector["treeSize"], _proof(vector)
    leaf, root = _hash(vector["leafHash"]), _hash(vector["root"])

    verified = verify_inclusion(index, size, leaf, proof, root)

    assert verified is (not vector["wantErr"]), vector["desc"]
    if not vector["wantErr"]:
        leaves = _known_tree(root, size, leaf)
        assert leaves is not None, "a happy path whose tree we cannot rebuild"
        assert leaves[index] == leaf
        assert root_hash(leaves) == root
        assert inclusion_proof(index, leaves) == proof
        assert MerkleTree(leaves).inclusion_proof(index) == proof


@pytest.mark.parametrize(("name", "vector"), CONSISTENCY)
def test_consistency_vector(name: str, vector: dict[str, Any]):
    size1, size2, proof = vector["size1"], vector["size2"], _proof(vector)
    root1, root2 = _hash(vector["root1"]), _hash(vector["root2"])

    verified = verify_consistency(size1, size2, proof, root1, root2)

    if name in DEVIATIONS:
        assert verified is False, DEVIATIONS[name]
        return
    assert verified is (not vector["wantErr"]), vector["desc"]
    if not vector["wantErr"] and len(root2) == 32:  # a proof between equal sizes compares the roots as given
        leaves = _known_tree(root2, size2)
        assert leaves is not None, "a happy path whose tree we cannot rebuild"
        assert root_hash(leaves[:size1]) == root1
        assert root_hash(leaves) == root2
        assert consistency_proof(size1, leaves) == proof
        assert MerkleTree(leaves).consistency_proof(size1) == proof


def test_equal_sizes_with_equal_roots_and_an_empty_proof_verify():
    """The vector's case with real hashes too: sizes equal, proof empty, roots equal."""
    root = README_LEAF_HASHES[0]
    assert verify_consistency(1, 1, [], root, root) is True
    assert verify_consistency(8, 8, [], README_LEAF_HASHES[3], README_LEAF_HASHES[3]) is True
    assert verify_consistency(1, 1, [], root, README_LEAF_HASHES[1]) is False


# -- the empty tree and a tree of one leaf ----------------------------------------------------------


def test_the_empty_tree_root_is_the_hash_of_nothing():
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert root_hash([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert MerkleTree([]).root() == EMPTY_ROOT
    assert len(MerkleTree([])) == 0


def test_the_empty_tree_has_no_proofs():
    with pytest.raises(InvalidProofRequest, match="not in the tree of 0 leaves"):
        inclusion_proof(0, [])
    with pytest.raises(InvalidProofRequest, match="empty tree"):
        consistency_proof(0, [])
    assert verify_inclusion(0, 0, EMPTY_ROOT, [], EMPTY_ROOT) is False
    assert verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT) is False  # RFC 9162 §2.1.4.2: 0 < first


def test_a_tree_of_one_leaf():
    leaf = leaf_hash(b"the first decision")
    assert leaf == hashlib.sha256(b"\x00the first decision").digest()
    assert root_hash([leaf]) == leaf
    assert inclusion_proof(0, [leaf]) == []
    assert consistency_proof(1, [leaf]) == []
    assert verify_inclusion(0, 1, leaf, [], leaf) is True
    assert verify_consistency(1, 1, [], leaf, leaf) is True
    assert verify_inclusion(0, 1, leaf, [leaf], leaf) is False
    assert verify_inclusion(0, 1, leaf, [], EMPTY_ROOT) is False
    assert verify_consistency(1, 1, [leaf], leaf, leaf) is False


def test_leaf_and_node_hashes_are_domain_separated():
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(b"") == bytes.fromhex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert root_hash([left, right]) == hashlib.sha256(b"\x01" + left + right).digest()
    assert root_hash([left, right]) != leaf_hash(left + right)


# -- malformed input: False from a verifier, a clear error from a prover ---------------------------

A = leaf_hash(b"a")
TREE = [leaf_hash(bytes([i])) for i in range(11)]
ROOT = root_hash(TREE)
ROOT6 = root_hash(TREE[:6])
PATH = inclusion_proof(5, TREE)
CONSISTENT = consistency_proof(6, TREE)


class _Exploding(Sequence[bytes]):
    """A proof whose every access raises: the verifier must still answer."""

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __getitem__(self, index: Any) -> Any:
        raise RuntimeError("getitem")

    def __iter__(self) -> Iterator[bytes]:
        raise RuntimeError("iter")


def test_the_sample_proofs_verify():
    assert verify_inclusion(5, 11, TREE[5], PATH, ROOT) is True
    assert verify_consistency(6, 11, CONSISTENT, ROOT6, ROOT) is True
    assert verify_inclusion(5, 11, TREE[5], tuple(PATH), ROOT) is True


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((5, 11, TREE[5], PATH[:-1], ROOT), id="proof one hash short"),
        pytest.param((5, 11, TREE[5], [*PATH, PATH[0]], ROOT), id="proof one hash long"),
        pytest.param((5, 11, TREE[5], [], ROOT), id="empty proof"),
        pytest.param((5, 11, TREE[5], PATH[::-1], ROOT), id="proof reversed"),
        pytest.param((11, 11, TREE[5], PATH, ROOT), id="index equals size"),
        pytest.param((12, 11, TREE[5], PATH, ROOT), id="index beyond size"),
        pytest.param((-1, 11, TREE[5], PATH, ROOT), id="negative index"),
        pytest.param((5, -11, TREE[5], PATH, ROOT), id="negative size"),
        pytest.param((5, 0, TREE[5], PATH, ROOT), id="size zero"),
        pytest.param((5 + 2**64, 11 + 2**64, TREE[5], PATH, ROOT), id="sizes beyond uint64"),
        pytest.param((5.0, 11, TREE[5], PATH, ROOT), id="float index"),
        pytest.param(("5", 11, TREE[5], PATH, ROOT), id="str index"),
        pytest.param((True, 11, TREE[1], inclusion_proof(1, TREE), ROOT), id="bool index"),
        pytest.param((5, None, TREE[5], PATH, ROOT), id="None size"),
        pytest.param((4, 11, TREE[5], PATH, ROOT), id="other index"),
        pytest.param((5, 11, TREE[4], PATH, ROOT), id="other leaf"),
        pytest.param((5, 11, TREE[5], PATH, ROOT6), id="other root"),
        pytest.param((5, 11, TREE[5][:31], PATH, ROOT), id="leaf hash of 31 bytes"),
        pytest.param((5, 11, TREE[5] + b"\0", PATH, ROOT), id="leaf hash of 33 bytes"),
        pytest.param((5, 11, TREE[5], PATH, ROOT[:31]), id="root of 31 bytes"),
        pytest.param((5, 11, TREE[5], PATH, ROOT + b"\0"), id="root of 33 bytes"),
        pytest.param((5, 11, TREE[5], [*PATH[:-1], PATH[-1][:16]], ROOT), id="proof hash of 16 bytes"),
        pytest.param((5, 11, TREE[5].hex(), PATH, ROOT), id="leaf hash as hex str"),
        pytest.param((5, 11, bytearray(TREE[5]), PATH, ROOT), id="leaf hash as bytearray"),
        pytest.param((5, 11, TREE[5], PATH, memoryview(ROOT)), id="root as memoryview"),
        pytest.param((5, 11, TREE[5], [p.hex() for p in PATH], ROOT), id="proof of hex strs"),
        pytest.param((5, 11, TREE[5], [*PATH[:-1], None], ROOT), id="proof with None"),
        pytest.param((5, 11, TREE[5], [*PATH[:-1], 7], ROOT), id="proof with int"),
        pytest.param((5, 11, TREE[5], None, ROOT), id="proof None"),
        pytest.param((5, 11, TREE[5], b"".join(PATH), ROOT), id="proof as one bytes"),
        pytest.param((5, 11, TREE[5], iter(PATH), ROOT), id="proof as iterator"),
        pytest.param((5, 11, TREE[5], _Exploding(), ROOT), id="proof that raises"),
        pytest.param((5, 11, TREE[5], [A] * 10_000, ROOT), id="proof of 10000 hashes"),
        pytest.param((5, 11, None, PATH, None), id="None hashes"),
    ],
)
def test_malformed_inclusion_is_rejected(args: tuple[Any, ...]):
    assert verify_inclusion(*args) is False


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((6, 11, CONSISTENT[:-1], ROOT6, ROOT), id="proof one hash short"),
        pytest.param((6, 11, [*CONSISTENT, A], ROOT6, ROOT), id="proof one hash long"),
        pytest.param((6, 11, [], ROOT6, ROOT), id="empty proof"),
        pytest.param((6, 11, CONSISTENT, ROOT, ROOT6), id="roots swapped"),
        pytest.param((11, 6, CONSISTENT, ROOT, ROOT6), id="size1 greater than size2"),
        pytest.param((0, 11, CONSISTENT, EMPTY_ROOT, ROOT), id="size1 zero with a proof"),
        pytest.param((0, 11, [], EMPTY_ROOT, ROOT), id="size1 zero without a proof"),
        pytest.param((0, 0, [], EMPTY_ROOT, EMPTY_ROOT), id="both sizes zero"),
        pytest.param((11, 11, [A], ROOT, ROOT), id="equal sizes with a proof"),
        pytest.param((11, 11, [], ROOT, ROOT6), id="equal sizes, other roots"),
        pytest.param((-6, 11, CONSISTENT, ROOT6, ROOT), id="negative size1"),
        pytest.param((6, -11, CONSISTENT, ROOT6, ROOT), id="negative size2"),
        pytest.param((6 + 2**64, 11 + 2**64, CONSISTENT, ROOT6, ROOT), id="sizes beyond uint64"),
        pytest.param((6.0, 11, CONSISTENT, ROOT6, ROOT), id="float size1"),
        pytest.param((6, "11", CONSISTENT, ROOT6, ROOT), id="str size2"),
        pytest.param((True, True, [], ROOT, ROOT), id="bool sizes"),
        pytest.param((5, 11, CONSISTENT, ROOT6, ROOT), id="other size1"),
        pytest.param((6, 7, CONSISTENT, ROOT6, ROOT), id="smaller size2"),
        pytest.param((6, 11, CONSISTENT, ROOT6[:31], ROOT), id="root1 of 31 bytes"),
        pytest.param((6, 11, CONSISTENT, ROOT6, ROOT + b"\0"), id="root2 of 33 bytes"),
        pytest.param((6, 11, [*CONSISTENT[:-1], CONSISTENT[-1][:16]], ROOT6, ROOT), id="proof hash of 16 bytes"),
        pytest.param((6, 11, [c.hex() for c in CONSISTENT], ROOT6, ROOT), id="proof of hex strs"),
        pytest.param((6, 11, [bytearray(c) for c in CONSISTENT], ROOT6, ROOT), id="proof of bytearrays"),
        pytest.param((6, 11, [*CONSISTENT[:-1], None], ROOT6, ROOT), id="proof with None"),
        pytest.param((6, 11, None, ROOT6, ROOT), id="proof None"),
        pytest.param((6, 11, b"".join(CONSISTENT), ROOT6, ROOT), id="proof as one bytes"),
        pytest.param((6, 11, _Exploding(), ROOT6, ROOT), id="proof that raises"),
        pytest.param((6, 11, [A] * 10_000, ROOT6, ROOT), id="proof of 10000 hashes"),
        pytest.param((6, 11, CONSISTENT, ROOT6.hex(), ROOT), id="root1 as hex str"),
    ],
)
def test_malformed_consistency_is_rejected(args: tuple[Any, ...]):
    assert verify_consistency(*args) is False


def test_a_root_does_not_commit_to_its_tree_size():
    """Node hashes do not say how many leaves are below them, so a proof can also verify for another size
    whose tree has the same shape along the path. The signed tree head binds root and size (RFC 9162 §4)."""
    assert verify_consistency(6, 12, CONSISTENT, ROOT6, ROOT) is True
    assert verify_consistency(6, 16, CONSISTENT, ROOT6, ROOT) is True
    assert verify_inclusion(5, 12, TREE[5], PATH, ROOT) is True


_anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.binary(max_size=40) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(_anything, _anything, _anything, _anything, _anything)
def test_verifiers_never_raise(a: Any, b: Any, c: Any, d: Any, e: Any):
    # An answer, never an exception (True only in the rare draw that is a valid proof, e.g. equal sizes and roots).
    assert type(verify_inclusion(a, b, c, d, e)) is bool
    assert type(verify_consistency(a, b, c, d, e)) is bool


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(lambda: inclusion_proof(11, TREE), r"leaf index 11 is not in the tree of 11 leaves", id="index = size"),
        pytest.param(lambda: inclusion_proof(-1, TREE), r"leaf index -1 is not in the tree", id="negative index"),
        pytest.param(lambda: inclusion_proof(True, TREE), r"leaf index True is not in the tree", id="bool index"),
        pytest.param(lambda: consistency_proof(12, TREE), r"size 12 is not a tree size of the 11 leaves", id="size1 > size2"),
        pytest.param(lambda: consistency_proof(-1, TREE), r"size -1 is not a tree size", id="negative size1"),
        pytest.param(lambda: consistency_proof(0, TREE), r"no consistency proof from the empty tree", id="size1 zero"),
        pytest.param(lambda: root_hash([*TREE, b"short"]), r"leaf hash 11 has 5 bytes", id="short leaf hash"),
        pytest.param(lambda: inclusion_proof(0, [A, A + A]), r"leaf hash 1 has 64 bytes", id="long leaf hash"),
        pytest.param(lambda: MerkleTree(TREE).root(12), r"size 12 is not a tree size of the 11 leaves \(0 <= size", id="tree root beyond size"),
        pytest.param(lambda: MerkleTree(TREE).inclusion_proof(6, 6), r"leaf index 6 is not in the tree of 6 leaves", id="tree index = earlier size"),
        pytest.param(lambda: MerkleTree(TREE).consistency_proof(3, 12), r"size 12 is not a tree size", id="tree size2 beyond size"),
        pytest.param(lambda: MerkleTree(TREE).consistency_proof(7, 6), r"size 7 is not a tree size of the 6 leaves", id="tree size1 > size2"),
    ],
)  # fmt: skip
def test_proofs_of_what_the_tree_lacks_are_refused(call: Any, message: str):
    with pytest.raises(InvalidProofRequest, match=message) as raised:
        call()
    assert isinstance(raised.value, ValueError)


def test_root_of_a_single_hash_is_refused():
    with pytest.raises(TypeError, match="not a single bytes"):
        root_hash(b"\0" * 32)  # a sequence of ints, not of hashes


# -- properties over random trees -------------------------------------------------------------------


@st.composite
def trees(draw: st.DrawFn, max_size: int = 300) -> list[bytes]:
    size = draw(st.integers(min_value=1, max_value=max_size))
    salt = draw(st.binary(max_size=8))
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(size)]


def _flips(hash_: bytes, mask: int) -> Iterator[bytes]:
    """The hash with each of its bytes in turn XORed with `mask` (non-zero)."""
    for position in range(len(hash_)):
        yield hash_[:position] + bytes([hash_[position] ^ mask]) + hash_[position + 1 :]


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(trees())
def test_every_inclusion_proof_verifies(leaves: list[bytes]):
    root, size, tree = root_hash(leaves), len(leaves), MerkleTree(leaves)
    assert tree.root() == root
    for index, leaf in enumerate(leaves):
        proof = tree.inclusion_proof(index)
        assert len(proof) <= (size - 1).bit_length()
        assert verify_inclusion(index, size, leaf, proof, root) is True


@PROPERTY
@given(trees(), st.data())
def test_inclusion_proofs_from_leaves_and_from_the_tree_agree(leaves: list[bytes], data: st.DataObject):
    size = data.draw(st.integers(min_value=1, max_value=len(leaves)), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    proof = inclusion_proof(index, leaves[:size])
    assert MerkleTree(leaves).inclusion_proof(index, size) == proof
    assert verify_inclusion(index, size, leaves[index], proof, root_hash(leaves[:size])) is True


@PROPERTY
@given(trees(), st.data())
def test_every_consistency_proof_verifies(leaves: list[bytes], data: st.DataObject):
    size2 = data.draw(st.integers(min_value=1, max_value=len(leaves)), label="size2")
    size1 = data.draw(st.integers(min_value=1, max_value=size2), label="size1")
    root1, root2 = root_hash(leaves[:size1]), root_hash(leaves[:size2])
    proof = consistency_proof(size1, leaves[:size2])
    assert MerkleTree(leaves).consistency_proof(size1, size2) == proof
    assert MerkleTree(leaves).root(size1) == root1
    assert verify_consistency(size1, size2, proof, root1, root2) is True
    assert (proof == []) is (size1 == size2)


@PROPERTY
@given(trees(max_size=64))
def test_every_pair_of_sizes_is_consistent(leaves: list[bytes]):
    tree = MerkleTree(leaves)
    roots = [EMPTY_ROOT] + [tree.root(size) for size in range(1, len(leaves) + 1)]
    for size2 in range(1, len(leaves) + 1):
        for size1 in range(1, size2 + 1):
            proof = tree.consistency_proof(size1, size2)
            assert verify_consistency(size1, size2, proof, roots[size1], roots[size2]) is True


@PROPERTY
@given(trees(), st.data(), st.integers(min_value=1, max_value=255))
def test_a_flipped_byte_breaks_an_inclusion_proof(leaves: list[bytes], data: st.DataObject, mask: int):
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1), label="index")
    size, leaf, root = len(leaves), leaves[index], root_hash(leaves)
    proof = inclusion_proof(index, leaves)
    assert verify_inclusion(index, size, leaf, proof, root) is True
    for position, element in enumerate(proof):
        for flipped in _flips(element, mask):
            tampered = [*proof[:position], flipped, *proof[position + 1 :]]
            assert verify_inclusion(index, size, leaf, tampered, root) is False
    for flipped in _flips(leaf, mask):
        assert verify_inclusion(index, size, flipped, proof, root) is False
    for flipped in _flips(root, mask):
        assert verify_inclusion(index, size, leaf, proof, flipped) is False


@PROPERTY
@given(trees(), st.data(), st.integers(min_value=1, max_value=255))
def test_a_flipped_byte_breaks_a_consistency_proof(leaves: list[bytes], data: st.DataObject, mask: int):
    size2 = data.draw(st.integers(min_value=1, max_value=len(leaves)), label="size2")
    size1 = data.draw(st.integers(min_value=1, max_value=size2), label="size1")
    root1, root2 = root_hash(leaves[:size1]), root_hash(leaves[:size2])
    proof = consistency_proof(size1, leaves[:size2])
    assert verify_consistency(size1, size2, proof, root1, root2) is True
    for position, element in enumerate(proof):
        for flipped in _flips(element, mask):
            tampered = [*proof[:position], flipped, *proof[position + 1 :]]
            assert verify_consistency(size1, size2, tampered, root1, root2) is False
    for flipped in _flips(root1, mask):
        assert verify_consistency(size1, size2, proof, flipped, root2) is False
    for flipped in _flips(root2, mask):
        assert verify_consistency(size1, size2, proof, root1, flipped) is False


@PROPERTY
@given(trees(), st.data())
def test_a_changed_leaf_is_not_consistent_with_the_old_tree(leaves: list[bytes], data: st.DataObject):
    size2 = data.draw(st.integers(min_value=1, max_value=len(leaves)), label="size2")
    size1 = data.draw(st.integers(min_value=1, max_value=size2), label="size1")
    changed = data.draw(st.integers(min_value=0, max_value=size1 - 1), label="changed leaf")
    rewritten = [*leaves[:changed], leaf_hash(b"rewritten history"), *leaves[changed + 1 : size2]]
    proof = consistency_proof(size1, rewritten)
    assert verify_consistency(size1, size2, proof, root_hash(leaves[:size1]), root_hash(rewritten)) is False
