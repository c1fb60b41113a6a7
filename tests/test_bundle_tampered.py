"""A tampered model bundle gives one ``error:`` line and exit 2 from the real CLI, never a traceback.

Each case edits one file of a real bundle and, where the point is that the
checksum cannot be the only guard, rewrites the manifest's sha256 and size to
match (an attacker, or a tool that "repairs" bundles, can do that). The CLI runs
as a user would run it, through the console script's code path, in the test's own
process (``fixtures.inprocess.run_cli``: a traceback would fail the test as an
uncaught exception).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
from biodiscover.discovery.kmer import KmerConfig
from fixtures.discovery import make_world
from fixtures.inprocess import run_cli

ENGINE = "tables/discovery_engine.json"
INDEX = "arrays/discovery_reference_index.safetensors"
LINEAGE = "arrays/discovery_reference_lineage.safetensors"


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, Path]:
    """A real DNA bundle and a FASTA collection to triage with it."""
    root = tmp_path_factory.mktemp("tamper")
    world = make_world(seed=5)
    model = DiscoveryModel(EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=40, max_candidates=15))
    model.fit(world["train"], world["val"] + world["val_unseen"], world["other_heldout"][:20])
    model.save(root / "bundle")
    fasta = root / "collection.fasta"
    fasta.write_text("".join(f">{s.processid}\n{s.dna_barcode}\n" for s in world["test"][:6]))
    return root / "bundle", fasta


def _rewrite(bundle: Path, rel: str, data: bytes, *, fix_hash: bool = True) -> None:
    """Replace one bundle file; with ``fix_hash`` the manifest is made to agree with it."""
    (bundle / rel).write_bytes(data)
    if not fix_hash:
        return
    manifest = json.loads((bundle / "bundle.json").read_text())
    kind, name = rel.split("/")[0], Path(rel).stem
    manifest["files"][kind][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (bundle / "bundle.json").write_text(json.dumps(manifest))


def _safetensors(array: np.ndarray) -> bytes:
    from safetensors.numpy import save

    return save({"data": np.ascontiguousarray(array)})


def _engine_table(bundle: Path) -> dict:
    return json.loads((bundle / ENGINE).read_text())


def _truncated_index(b: Path) -> None:
    from safetensors.numpy import load

    blob = load((b / INDEX).read_bytes())["data"]
    _rewrite(b, INDEX, _safetensors(blob[: len(blob) // 2]))


def _other_index(b: Path) -> None:
    """A valid FAISS index, but of 3 keys: the manifest's key count must catch it."""
    import faiss

    index = faiss.IndexFlatIP(1024)
    index.add(np.eye(3, 1024, dtype=np.float32))
    _rewrite(b, INDEX, _safetensors(faiss.serialize_index(index)))


def _wrong_shape(b: Path) -> None:
    _rewrite(b, LINEAGE, _safetensors(np.zeros((4, 3), dtype=np.int32)))


def _nan_threshold(b: Path) -> None:
    text = (b / ENGINE).read_text()
    table = json.loads(text)
    table["config"]["naming"]["level"] = 12345.678
    _rewrite(b, ENGINE, json.dumps(table).replace("12345.678", "NaN").encode())


def _null_threshold(b: Path) -> None:
    table = _engine_table(b)
    table["naming"]["models"]["genus"]["members"][0]["absent"]["baseline"] = None
    _rewrite(b, ENGINE, json.dumps(table).encode())


def _infinite_novelty_threshold(b: Path) -> None:
    table = _engine_table(b)
    table["config"]["novelty_threshold"] = 7.5
    _rewrite(b, ENGINE, json.dumps(table).replace("7.5", "1e999").encode())


def _wrong_shape_model(b: Path) -> None:
    table = _engine_table(b)
    table["naming"]["models"]["species"]["members"][0]["absent"]["n_features"] = 2  # trees split on features 0..8
    _rewrite(b, ENGINE, json.dumps(table).encode())


def _naming_support_emptied(b: Path) -> None:
    """Every part passes its own check (the naming model's shape, the reference's arrays), but the model no
    longer says which ranks it learned: only triaging a key (the load's self-check) finds that they do not fit."""
    table = _engine_table(b)
    table["naming"]["support"] = {}
    _rewrite(b, ENGINE, json.dumps(table).encode())


def _set_aside_as_text(b: Path) -> None:
    """A string is iterable, each character a "processid": it must be refused, not read as a set of letters
    (seed-1806 survivor: the type check's `or` turned `and`; not re-scored)."""
    table = _engine_table(b)
    table["set_aside"] = "BOLD1-20"
    _rewrite(b, ENGINE, json.dumps(table).encode())


def _manifest(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(b: Path) -> None:
        manifest = json.loads((b / "bundle.json").read_text())
        edit(manifest)
        (b / "bundle.json").write_text(json.dumps(manifest))
    return apply


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated FAISS index, consistent hash": (_truncated_index, "not a readable FAISS index"),
    "another valid FAISS index": (_other_index, "holds 3 keys where the bundle lists"),
    "wrong-shape array": (_wrong_shape, "array of shape (4, 3) where ("),
    "[] table": (lambda b: _rewrite(b, ENGINE, b"[]"), "expected a JSON object, found list"),
    "{} table": (lambda b: _rewrite(b, ENGINE, b"{}"), "discovery engine table is malformed"),
    "100k-deep JSON table": (lambda b: _rewrite(b, ENGINE, b"[" * 100_000 + b"]" * 100_000),
                             "nested deeper than"),
    "100k-deep manifest": (lambda b: (b / "bundle.json").write_bytes(b"[" * 100_000 + b"]" * 100_000),
                           "nested deeper than"),
    '"files": []': (_manifest(lambda m: m.__setitem__("files", [])), "'files' must be a JSON object"),
    "files entry without a hash": (_manifest(lambda m: m["files"]["tables"].__setitem__("discovery_engine", {})),
                                   "must be {\"sha256\""),
    "NaN threshold": (_nan_threshold, "NaN is not a number a bundle may hold"),
    "null threshold": (_null_threshold, "discovery engine table is malformed"),
    "infinite novelty threshold": (_infinite_novelty_threshold, "overflows to infinity"),
    "model of the wrong shape": (_wrong_shape_model, "has the wrong shape"),
    "set-aside keys as text": (_set_aside_as_text, "set_aside must be a list of processids, got str"),
    "naming support emptied, parts fine alone": (_naming_support_emptied, "failed its self-check (KeyError"),
    "table larger than listed": (lambda b: _rewrite(b, ENGINE, (b / ENGINE).read_bytes() + b" " * 10,
                                                    fix_hash=False), "checksum mismatch"),
}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args)


@pytest.mark.parametrize("case", list(CASES))
def test_tampered_bundle_is_one_error_line_and_exit_2(good, tmp_path: Path, case: str) -> None:
    bundle, fasta = good
    tampered = tmp_path / "bundle"
    shutil.copytree(bundle, tampered)
    edit, expected = CASES[case]
    edit(tampered)
    results = tmp_path / "results.jsonl"
    proc = _cli("triage", "--input", str(fasta), "--model", str(tampered), "--results", str(results), "-q")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and not results.exists()


def test_untouched_copy_triages(good, tmp_path: Path) -> None:
    """The control: the same copy-and-run without an edit succeeds, so each case above fails for its edit."""
    bundle, fasta = good
    shutil.copytree(bundle, tmp_path / "bundle")
    results = tmp_path / "results.jsonl"
    proc = _cli("triage", "--input", str(fasta), "--model", str(tmp_path / "bundle"), "--results", str(results),
                "-q")
    assert proc.returncode == 0, proc.stderr
    assert len(results.read_text().splitlines()) == 6


def test_run_with_a_tampered_bundle_is_bad_input_before_any_work(good, tmp_path: Path) -> None:
    """``run`` loads the engine before the first collection: a damaged bundle is exit 2, not N failed collections."""
    bundle, fasta = good
    tampered = tmp_path / "bundle"
    shutil.copytree(bundle, tampered)
    _truncated_index(tampered)
    plates = tmp_path / "plates"
    plates.mkdir()
    shutil.copy(fasta, plates / "p1.fasta")
    proc = _cli("run", "--collections", str(plates), "--model", str(tampered), "--db", str(tmp_path / "r.db"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "not a readable FAISS index" in proc.stderr and "Traceback" not in proc.stderr
