"""Identity of each query to the reference candidates retrieval proposed for it.

Why: retrieval in an embedding space is fast but approximate; the identity of
the query to the best reference of each candidate taxon is the evidence a
taxonomist trusts (it is what BLAST's top hit reports). We align only the few
dozen candidates retrieval proposes. The identity itself is defined once, in
:func:`biodiscover.storage.distance.identity` (1 − differences per informative
base the two reads share, the shorter aligned anywhere inside the longer, an overhang left out).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from biodiscover.storage.distance import probe_index, shared_identity


def candidate_identities(queries: Sequence[str | None], candidates: Sequence[Sequence[int]],
                         reference: Sequence[str]) -> list[np.ndarray]:
    """Identity of each query to its own candidate references (positions into ``reference``).

    Each (query barcode, key barcode) pair is aligned once per call: a collection
    repeats barcodes (a third of the pairs of 1,666 test queries against 3,706
    keys were repeats) and a reference holds identical barcodes under several
    keys, so the alignments are memoised by the two strings (the values are the
    same ones :func:`identity` gives). Each key is decoded from ``reference`` once.
    """
    out: list[np.ndarray] = []
    key_seq: dict[int, str] = {}
    memo: dict[tuple[str, str], float] = {}
    for q, cand in zip(queries, candidates):
        values = np.zeros(len(cand), dtype=np.float32)
        if q:
            probes: dict[str, int] | None = None  # the query's probe index, built once it is needed
            for n, j in enumerate(cand):
                s = key_seq.get(j)
                if s is None:
                    s = key_seq[j] = reference[j]
                pair = (q, s)
                v = memo.get(pair)
                if v is None:
                    if probes is None:
                        probes = probe_index(q)
                    v = memo[pair] = shared_identity(q, s, probes)[0]
                values[n] = v
        out.append(values)
    return out
