"""Embeddings beside the database, keyed by processid (never inside SQLite).

Layout: ``<db>.embeddings/<name>/`` holds

* ``vectors.npy`` — float32 matrix, one row per specimen (memory-mapped on load,
  so a 5M × 768 table is not read into RAM to look up a plate);
* ``processids.parquet`` — one column ``processid``, row *i* ↔ vector *i*;
* ``meta.json`` — dimension, count, dtype, model fingerprint, creation time.

Why not SQLite: vectors are large, written once per model and read in bulk;
NumPy/Parquet files are faster to scan and to hand to FAISS, and keeping them
out of the database keeps its backups small. Every file is written to a
temporary name and renamed, the metadata last, so a crash never leaves a set
that looks complete but is not.

API::

    store = EmbeddingStore.beside(db_path)        # or EmbeddingStore(folder)
    store.save(name, processids, vectors, model_fingerprint=None, overwrite=False) -> Path
    store.load(name, mmap=True) -> (list[str], np.ndarray)
    store.get(name, processids) -> np.ndarray     # rows in the order asked; KeyError names a missing id
    store.names() -> list[str];  store.meta(name) -> dict
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from biodiscover.storage.errors import InputError

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class EmbeddingStore:
    """A folder of named embedding tables; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._index: dict[str, dict[str, int]] = {}

    @classmethod
    def beside(cls, db_path: Path) -> "EmbeddingStore":
        db_path = Path(db_path)
        return cls(db_path.with_name(db_path.name + ".embeddings"))

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise InputError(f"embedding table name {name!r}: use letters, digits, '_', '-', '.'")
        return self.root / name

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "meta.json").is_file())

    def meta(self, name: str) -> dict[str, Any]:
        path = self._dir(name) / "meta.json"
        if not path.is_file():
            raise InputError(f"{path.parent}: no embedding table {name!r} (have: {', '.join(self.names()) or 'none'})")
        return json.loads(path.read_text())

    def save(self, name: str, processids: Sequence[str], vectors: np.ndarray, *, model_fingerprint: str | None = None,
             overwrite: bool = False) -> Path:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or vectors.shape[0] != len(processids):
            raise ValueError(f"embeddings {name!r}: {len(processids)} processids but vectors of shape {vectors.shape}")
        ids = [str(p) for p in processids]
        if len(set(ids)) != len(ids):
            dup = next(p for i, p in enumerate(ids) if p in ids[:i])
            raise ValueError(f"embeddings {name!r}: processid {dup!r} appears twice")
        folder = self._dir(name)
        if (folder / "meta.json").exists() and not overwrite:
            raise InputError(f"{folder}: embedding table {name!r} exists; pass overwrite=True to replace it")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.json").unlink(missing_ok=True)  # the set is incomplete until meta is back
        vec_tmp = folder / "vectors.npy.partial"
        with vec_tmp.open("wb") as fh:
            np.save(fh, vectors.astype(np.float32, copy=False))
        os.replace(vec_tmp, folder / "vectors.npy")
        ids_tmp = folder / "processids.parquet.partial"
        pq.write_table(pa.table({"processid": pa.array(ids, pa.string())}), ids_tmp)
        os.replace(ids_tmp, folder / "processids.parquet")
        meta = {"name": name, "count": len(ids), "dim": int(vectors.shape[1]), "dtype": "float32",
                "model_fingerprint": model_fingerprint,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        meta_tmp = folder / "meta.json.partial"
        meta_tmp.write_text(json.dumps(meta, indent=2))
        os.replace(meta_tmp, folder / "meta.json")
        self._index.pop(name, None)
        log.info("saved %d embeddings (dim %d) as %s", len(ids), vectors.shape[1], folder)
        return folder

    def load(self, name: str, *, mmap: bool = True) -> tuple[list[str], np.ndarray]:
        meta = self.meta(name)
        folder = self._dir(name)
        ids = pq.read_table(folder / "processids.parquet").column("processid").to_pylist()
        vectors = np.load(folder / "vectors.npy", mmap_mode="r" if mmap else None)
        if vectors.shape != (meta["count"], meta["dim"]) or len(ids) != meta["count"]:
            raise InputError(f"{folder}: embedding files disagree with meta.json (rewrite the table)")
        return ids, vectors

    def get(self, name: str, processids: Sequence[str]) -> np.ndarray:
        ids, vectors = self.load(name)
        index = self._index.get(name)
        if index is None:
            index = {p: i for i, p in enumerate(ids)}
            self._index[name] = index
        try:
            rows = [index[p] for p in processids]
        except KeyError as exc:
            raise KeyError(f"no embedding for processid {exc.args[0]!r} in table {name!r}") from None
        return np.asarray(vectors[rows])
