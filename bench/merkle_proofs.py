"""Merkle proofs over a decision log of a million entries (prints figures; not a test).

    python -m bench.merkle_proofs [--entries 1000000] [--proofs 200] [--full-passes 9]

Builds --entries deterministic decision-log entries (canonical JSON, about 300
bytes each) and hashes them into leaves (audit/merkle.py, RFC 9162 §2.1).
Pinned to one core. Reports:

- leaf hashing: entries/s of `leaf_hash` over the canonical JSON;
- the root of all leaves: `root_hash`, which recomputes the whole tree, as an
  auditor does to verify a log of that many entries from the entries' hashes;
- inclusion proofs: the time to build one with `inclusion_proof` (one pass
  over the leaves, median of --full-passes random indexes) and with a
  `MerkleTree` built once (its build time, then the median of --proofs random
  indexes), the time to verify one (median of --proofs), and their size;
- consistency proofs from a random earlier size to the whole log: the same.

Every proof built is verified before it is timed, and the two ways of building
it must agree.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TypeVar

from bench.timing import cpu_model
from kodex.audit.merkle import (
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

_T = TypeVar("_T")
LIBRARIES = ("zdirec", "kntb", "svkpk")
RULES = (
    ("gdpr-erasure-24-months-after-registration-ended", "erase"),
    ("loan-history-kept-while-debt-is-open", "keep"),
    ("camera-recordings-deleted-after-72-hours", "erase"),
    ("legal-hold-suspends-every-deletion", "hold"),
)
REVISION = hashlib.sha256(b"policies.yaml, revision used by the benchmark").hexdigest()
CHUNK = 50_000


def entries(count: int) -> Iterator[list[bytes]]:
    """The log's entries as canonical JSON (sorted keys, no spaces, UTF-8), CHUNK at a time."""
    for start in range(0, count, CHUNK):
        chunk = []
        for seq in range(start, min(start + CHUNK, count)):
            rule, outcome = RULES[seq % len(RULES)]
            entry = {
                "seq": seq,
                "at": f"2026-11-{1 + seq % 28:02d}T02:{seq % 60:02d}:00Z",
                "library": LIBRARIES[seq % len(LIBRARIES)],
                "subject": f"reader:R{seq * 7919 % 10_000_019:08d}",
                "rule": rule,
                "outcome": outcome,
                "policy_revision": REVISION,
                "reasons": [f"registration ended {2019 + seq % 7}-{1 + seq % 12:02d}-15", "no open loans"],
            }
            chunk.append(json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
        yield chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=200, help="random indexes and sizes for the per-proof medians")
    parser.add_argument("--full-passes", type=int, default=9, help="proofs built from the leaves alone (one pass each)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.entries < 2 or args.proofs < 1 or args.full_passes < 1:
        parser.error("--entries must be at least 2, --proofs and --full-passes at least 1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = random.Random(args.seed)
    n = args.entries

    print(f"Merkle proofs (RFC 9162) — {n:,} entries, Python {platform.python_version()} "
          f"({platform.python_implementation()}), {platform.machine()}, {cpu_model()}, {platform.platform()}, "
          f"pinned to one core")  # fmt: skip
    leaves = _leaves(n)
    root, seconds = _timed(partial(root_hash, leaves))
    _row("root of all leaves (whole tree)", f"{seconds:>9.2f} s ", f"{(n - 1) / seconds:,.0f} node hashes/s")
    tree, seconds = _timed(partial(MerkleTree, leaves))
    assert tree.root() == root
    _row("MerkleTree built (every level)", f"{seconds:>9.2f} s ", "kept for proofs by lookup")
    _inclusion(leaves, tree, root, [rng.randrange(n) for _ in range(args.proofs)], args.full_passes)
    _consistency(leaves, tree, root, [rng.randrange(1, n) for _ in range(args.proofs)], args.full_passes)


def _leaves(n: int) -> list[bytes]:
    leaves: list[bytes] = []
    hashing, total_bytes = 0.0, 0
    for chunk in entries(n):
        total_bytes += sum(map(len, chunk))
        start = time.perf_counter()
        leaves.extend([leaf_hash(entry) for entry in chunk])
        hashing += time.perf_counter() - start
    _row("entries (canonical JSON)", f"{total_bytes / n:>9,.0f} B ", "on average")
    _row("leaf hashing", f"{n / hashing:>9,.0f}/s", f"entries/s; {hashing:.2f} s for all {n:,}")
    return leaves


def _inclusion(leaves: list[bytes], tree: MerkleTree, root: bytes, indexes: list[int], full_passes: int) -> None:
    n = len(leaves)
    proofs = [tree.inclusion_proof(index) for index in indexes]
    for index, proof in zip(indexes, proofs, strict=True):
        assert verify_inclusion(index, n, leaves[index], proof, root)
    full = [_timed(partial(inclusion_proof, index, leaves)) for index in indexes[:full_passes]]
    assert all(proof == proofs[k] for k, (proof, _) in enumerate(full))

    def verify(k: int) -> object:
        return verify_inclusion(indexes[k], n, leaves[indexes[k]], proofs[k], root)

    print("  inclusion proof of a random leaf")
    _row("  built from the leaves (one pass)", _ms(statistics.median(s for _, s in full)), f"median of {len(full)}")
    _row("  built from the MerkleTree", _us(_median(tree.inclusion_proof, indexes)), f"median of {len(indexes)}")
    _row("  verified", _us(_median(verify, range(len(indexes)))), f"median of {len(indexes)}")
    _size(proofs, f"at most {(n - 1).bit_length()} for {n:,} leaves")


def _consistency(leaves: list[bytes], tree: MerkleTree, root: bytes, sizes: list[int], full_passes: int) -> None:
    n = len(leaves)
    roots1 = [tree.root(size) for size in sizes]
    proofs = [tree.consistency_proof(size) for size in sizes]
    for size, root1, proof in zip(sizes, roots1, proofs, strict=True):
        assert verify_consistency(size, n, proof, root1, root)
    full = [_timed(partial(consistency_proof, size, leaves)) for size in sizes[:full_passes]]
    assert all(proof == proofs[k] for k, (proof, _) in enumerate(full))

    def verify(k: int) -> object:
        return verify_consistency(sizes[k], n, proofs[k], roots1[k], root)

    print(f"  consistency proof from a random earlier size to {n:,}")
    _row("  built from the leaves (one pass)", _ms(statistics.median(s for _, s in full)), f"median of {len(full)}")
    _row("  built from the MerkleTree", _us(_median(tree.consistency_proof, sizes)), f"median of {len(sizes)}")
    _row("  verified", _us(_median(verify, range(len(sizes)))), f"median of {len(sizes)}")
    _size(proofs, "")


def _row(label: str, value: str, note: str) -> None:
    print(f"  {label:<36}{value}   {note}")


def _size(proofs: list[list[bytes]], note: str) -> None:
    lengths = sorted(len(proof) for proof in proofs)
    median = lengths[len(lengths) // 2]
    detail = f"median {median} hashes of 32 B; {lengths[0]}–{lengths[-1]} over the sample"
    _row("  size", f"{32 * median:>9,} B ", f"{detail}{'; ' + note if note else ''}")


def _timed(work: Callable[[], _T]) -> tuple[_T, float]:
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def _median(work: Callable[[int], object], arguments: Iterable[int]) -> float:
    times = []
    for argument in arguments:
        start = time.perf_counter_ns()
        work(argument)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e9


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:>9.1f} ms"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:>9.1f} µs"


if __name__ == "__main__":
    main()
