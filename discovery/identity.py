"""Pairwise sequence identity of a query to candidate references (edlib).

Why: retrieval in an embedding space is fast but approximate; the identity of
the query to the best reference of each candidate taxon is the evidence a
taxonomist trusts (it is what BLAST's top hit reports). We align only the few
dozen candidates retrieval proposes, with edlib's bit-parallel Myers algorithm.

Identity = 1 − edit distance / informative length of the shorter sequence
(its bases other than ``N``), aligning the shorter sequence anywhere inside the
longer one (edlib ``HW`` mode: end gaps of the longer are free), so a 400-nt
partial barcode is not penalised for the part it lacks. ``N`` matches any base
but counts for nothing: a read that is mostly ``N`` is not identical to
everything.
"""

from __future__ import annotations

from typing import Sequence

import edlib
import numpy as np

_EQUALITIES = [("N", base) for base in "ACGT"]


def identity(a: str, b: str) -> float:
    """Identity in [0, 1] of two barcodes (0.0 when either is empty)."""
    if not a or not b:
        return 0.0
    if len(a) > len(b):
        a, b = b, a
    result = edlib.align(a, b, mode="HW", task="distance", additionalEqualities=_EQUALITIES)
    distance = result["editDistance"]
    informative = len(a) - a.count("N")
    if distance < 0 or informative <= 0:
        return 0.0
    return max(0.0, 1.0 - distance / informative)


def identities(query: str, references: Sequence[str]) -> np.ndarray:
    """Identity of one query to each reference (float32 array)."""
    return np.fromiter((identity(query, r) for r in references), dtype=np.float32, count=len(references))


def candidate_identities(queries: Sequence[str | None], candidates: Sequence[Sequence[int]],
                         reference: Sequence[str]) -> list[np.ndarray]:
    """Identity of each query to its own candidate references (positions into ``reference``)."""
    out: list[np.ndarray] = []
    for q, cand in zip(queries, candidates):
        if not q:
            out.append(np.zeros(len(cand), dtype=np.float32))
        else:
            out.append(np.fromiter((identity(q, reference[j]) for j in cand), dtype=np.float32, count=len(cand)))
    return out
