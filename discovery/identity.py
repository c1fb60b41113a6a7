"""Identity of each query to the reference candidates retrieval proposed for it.

Why: retrieval in an embedding space is fast but approximate; the identity of
the query to the best reference of each candidate taxon is the evidence a
taxonomist trusts (it is what BLAST's top hit reports). We align only the few
dozen candidates retrieval proposes. The identity itself is defined once, in
:func:`biodiscover.storage.distance.identity` (1 − differences per informative
base of the shorter read, the shorter aligned anywhere inside the longer).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from biodiscover.storage.distance import identity


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
