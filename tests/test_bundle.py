"""Model bundle: round trip of weights/arrays/tables, no pickle ever, integrity and version checks."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from biodiscover.storage.bundle import BUNDLE_FORMAT_VERSION, Bundle
from biodiscover.storage.errors import ModelBundleError


def _bundle(tmp_path: Path) -> Bundle:
    return Bundle.create(tmp_path / "b", config={"name": "t"}, fingerprint={"sha256": "ab" * 32}, metrics={"acc": 0.5})


def test_round_trip(tmp_path: Path) -> None:
    b = Bundle.create(tmp_path / "b", config={"name": "t"}, fingerprint={"sha256": "ab" * 32},
                      metrics={"acc": 0.5, "top1": np.float64(0.75)})
    lin = torch.nn.Linear(4, 3)
    b.save_weights("enc", lin.state_dict())
    b.save_array("ref_emb", np.arange(12, dtype=np.float32).reshape(3, 4))
    b.save_array("ids", np.array([5, 7, 9], dtype=np.int64))
    b.save_table("taxonomy", {"species": ["a b", "c d"], "thresholds": [0.1, np.float32(0.25)]})
    b.set_section("discovery", {"k": 5})

    again = Bundle.open(tmp_path / "b")
    state = again.load_weights("enc")
    fresh = torch.nn.Linear(4, 3)
    fresh.load_state_dict(state)
    x = torch.randn(2, 4)
    torch.testing.assert_close(fresh(x), lin(x))
    np.testing.assert_array_equal(again.load_array("ref_emb"), np.arange(12, dtype=np.float32).reshape(3, 4))
    assert again.load_array("ids").dtype == np.int64
    assert again.load_table("taxonomy") == {"species": ["a b", "c d"], "thresholds": [0.1, 0.25]}
    assert again.metrics == {"acc": 0.5, "top1": 0.75}
    assert again.manifest["discovery"] == {"k": 5}
    assert again.names("arrays") == ["ids", "ref_emb"]
    assert again.data_fingerprint["sha256"] == "ab" * 32


def test_this_build_writes_bundle_format_1(tmp_path: Path) -> None:
    """The number readers compare (a bundle of a newer format is refused): bumping it is a decision, not a slip
    (seed 5309's survivor bundle.py:50; the other tests compare the manifest with the constant itself)."""
    _bundle(tmp_path)
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["format_version"] == 1


def test_json_depth_counts_containers_only() -> None:
    from biodiscover.storage.bundle import _json_depth

    assert (_json_depth(7), _json_depth("x"), _json_depth([]), _json_depth({"a": [1, {"b": 2}]})) == (0, 0, 1, 3)


def test_arrays_of_one_element_and_of_none_round_trip(tmp_path: Path) -> None:
    b = _bundle(tmp_path)
    b.save_array("one", np.array([7.5], dtype=np.float32))
    b.save_array("one_by_one", np.array([[3]], dtype=np.int64))
    b.save_array("empty", np.zeros((0, 4), dtype=np.float32))
    again = Bundle.open(tmp_path / "b")
    np.testing.assert_array_equal(again.load_array("one"), np.array([7.5], dtype=np.float32))
    np.testing.assert_array_equal(again.load_array("one_by_one", mmap=True), np.array([[3]]))
    assert again.load_array("empty").shape == (0, 4)


def test_fingerprint_names_the_model_and_changes_with_any_file(tmp_path: Path) -> None:
    """One fingerprint for runs and the batch ledger: recorded one wins, else sha256 of bundle.json."""
    b = _bundle(tmp_path)
    fp = Bundle.open(tmp_path / "b").fingerprint
    assert fp.startswith("sha256:") and len(fp) == 71 and fp == b.fingerprint
    b.save_array("x", np.ones(3, dtype=np.float32))
    assert Bundle.open(tmp_path / "b").fingerprint not in (fp, None)
    b.set_section("model_fingerprint", "release-2026.1")
    assert Bundle.open(tmp_path / "b").fingerprint == "release-2026.1"
    with pytest.raises(ModelBundleError, match=r"no bundle.json"):
        Bundle.open(tmp_path)  # a folder without one


def test_a_bundle_written_again_with_the_same_content_keeps_its_fingerprint(tmp_path: Path) -> None:
    """An ML engineer's review (M7): a reference rebuilt from the same data was byte for byte the same model but
    another fingerprint (bundle.json's creation time was hashed), so ``run`` re-triaged a week it had done and
    re-numbered its 148 pending candidates. The fingerprint is the manifest's content but its time; what earlier
    versions recorded for the very same files (the bytes, time included) is still matched (``fingerprints``)."""
    one, two = _bundle(tmp_path / "one"), _bundle(tmp_path / "two")
    for b in (one, two):
        b.save_array("x", np.arange(4, dtype=np.float32))
    manifest = json.loads((tmp_path / "two" / "b" / "bundle.json").read_text())
    manifest["created"] = "2031-01-01T00:00:00+00:00"  # written on another day
    (tmp_path / "two" / "b" / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    a, b = Bundle.open(tmp_path / "one" / "b"), Bundle.open(tmp_path / "two" / "b")
    assert a.manifest["created"] != b.manifest["created"]
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("sha256:") and len(a.fingerprint) == 71
    legacy = "sha256:" + hashlib.sha256((tmp_path / "one" / "b" / "bundle.json").read_bytes()).hexdigest()
    assert a.fingerprints == (a.fingerprint, legacy) and b.fingerprints[1] != legacy
    # content and settings still tell models apart
    two.save_array("x", np.arange(5, dtype=np.float32))
    assert Bundle.open(tmp_path / "two" / "b").fingerprint != a.fingerprint
    one.set_section("discovery", {"level": 0.95})
    assert Bundle.open(tmp_path / "one" / "b").fingerprint != a.fingerprint
    one.set_section("model_fingerprint", "release-2026.1")  # written into the manifest: that alone
    assert Bundle.open(tmp_path / "one" / "b").fingerprints == ("release-2026.1",)


def test_the_same_data_file_built_from_another_folder_is_the_same_model(tmp_path: Path) -> None:
    """A reference rebuilt from a byte-identical copy of its CSV in another folder was another model: the data
    record's path was hashed with it, so ``run`` triaged a done week again and ``--absent-share season`` found no
    other plate "of this model" and read it at even odds, silently (e31 review F2). A data record that carries the
    file's own sha256 is known by it, not by where the file lay; a record without one (a dataset folder) is known
    by its path. What this session's versions recorded (the path hashed) is still matched (``fingerprints``)."""
    def built(where: str, sha: str | None, name: str) -> Bundle:
        record = {"data": where, "keys": "train", "sha256": sha, "n_keys": 12}
        b = Bundle.create(tmp_path / name, config={"name": "t"}, fingerprint=record)
        b.set_section("discovery", {"reference": record, "level": 0.98})  # the engine keeps a copy of it
        b.save_array("x", np.arange(4, dtype=np.float32))
        return Bundle.open(tmp_path / name)

    here, there = built("/lab/ref.csv", "ab" * 32, "here"), built("/home/kari/copy/ref.csv", "ab" * 32, "there")
    assert here.fingerprint == there.fingerprint
    other = built("/lab/ref.csv", "cd" * 32, "other")  # other rows at the same path
    assert other.fingerprint != here.fingerprint
    folders = built("/lab/dataset", None, "folder"), built("/lab/dataset2", None, "folder2")
    assert folders[0].fingerprint != folders[1].fingerprint
    with_path = {k: v for k, v in there.manifest.items() if k != "created"}  # how this session's versions hashed it
    recorded = "sha256:" + hashlib.sha256(json.dumps(with_path, sort_keys=True, separators=(",", ":"),
                                                     ensure_ascii=False).encode("utf-8")).hexdigest()
    assert recorded != there.fingerprint and recorded in there.fingerprints
    assert there.fingerprints[0] == there.fingerprint


def test_refuses_pickled_weights(tmp_path: Path) -> None:
    b = _bundle(tmp_path)
    b.save_weights("enc", torch.nn.Linear(2, 2).state_dict())
    path = tmp_path / "b" / "weights" / "enc.safetensors"
    buf = io.BytesIO()
    torch.save(torch.nn.Linear(2, 2).state_dict(), buf)  # a pickle, disguised with the right name
    b._store("weights", "enc", buf.getvalue())  # manifest hash matches: only the format check stands
    assert path.read_bytes()[:2] != b"{"
    with pytest.raises(ModelBundleError, match="never load pickled"):
        Bundle.open(tmp_path / "b").load_weights("enc")


def test_detects_tampering_and_missing_files(tmp_path: Path) -> None:
    b = _bundle(tmp_path)
    b.save_array("x", np.ones(3, dtype=np.float32))
    path = tmp_path / "b" / "arrays" / "x.safetensors"
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ModelBundleError, match="checksum mismatch"):
        Bundle.open(tmp_path / "b").load_array("x")
    path.unlink()
    with pytest.raises(ModelBundleError, match="missing"):
        Bundle.open(tmp_path / "b").load_array("x")
    with pytest.raises(ModelBundleError, match="no arrays named 'y'"):
        b.load_array("y")


def test_version_and_manifest_checks(tmp_path: Path) -> None:
    _bundle(tmp_path)
    manifest = tmp_path / "b" / "bundle.json"
    data = json.loads(manifest.read_text())
    data["format_version"] = BUNDLE_FORMAT_VERSION + 1
    manifest.write_text(json.dumps(data))
    with pytest.raises(ModelBundleError, match="newer"):
        Bundle.open(tmp_path / "b")
    manifest.write_text("{not json")
    with pytest.raises(ModelBundleError, match="corrupt manifest"):
        Bundle.open(tmp_path / "b")
    with pytest.raises(ModelBundleError, match="nothing: no such folder"):
        Bundle.open(tmp_path / "nothing")


def test_refuses_overwrite_bad_names_and_object_arrays(tmp_path: Path) -> None:
    b = _bundle(tmp_path)
    with pytest.raises(ModelBundleError, match="already exists"):
        _bundle(tmp_path)
    Bundle.create(tmp_path / "b", config={}, overwrite=True)
    with pytest.raises(ModelBundleError, match="invalid"):
        b.save_table("../escape", {})
    with pytest.raises(ModelBundleError, match="object dtype"):
        b.save_array("o", np.array(["a", None], dtype=object))


def test_tied_weights_are_saved(tmp_path: Path) -> None:
    emb = torch.nn.Embedding(5, 3)
    head = torch.nn.Linear(3, 5, bias=False)
    head.weight = emb.weight
    model = torch.nn.ModuleDict({"emb": emb, "head": head})
    b = _bundle(tmp_path)
    b.save_weights("tied", model.state_dict())
    state = b.load_weights("tied")
    torch.testing.assert_close(state["emb.weight"], state["head.weight"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_bundle_loads_on_gpu_and_back(tmp_path: Path) -> None:
    b = _bundle(tmp_path)
    lin = torch.nn.Linear(4, 3)
    b.save_weights("enc", lin.state_dict())
    on_gpu = b.load_weights("enc", device="cuda")
    assert all(t.is_cuda for t in on_gpu.values())
    b.save_weights("back", on_gpu)
    torch.testing.assert_close(b.load_weights("back")["weight"], lin.weight.detach())


def test_bundle_sections_removal_and_array_shape_checks(tmp_path: Path, monkeypatch) -> None:
    """What a loader relies on besides the round trip: the config and package versions as written, a removed
    file gone from disk and manifest, an empty array, and the dtype/shape a caller asks for enforced by name."""
    from biodiscover.storage import bundle as bundle_module
    from biodiscover.storage.bundle import MAX_JSON_DEPTH, parse_json

    b = _bundle(tmp_path)
    assert b.config == {"name": "t"}
    assert b.packages["numpy"] == np.__version__
    b.save_array("ref_emb", np.arange(12, dtype=np.float32).reshape(3, 4))
    b.save_array("empty", np.zeros((0, 4), dtype=np.float32))
    b.save_table("old", {"a": 1})
    again = Bundle.open(tmp_path / "b")
    empty = again.load_array("empty", shape=(None, 4), dtype=np.float32)
    assert empty.shape == (0, 4) and empty.dtype == np.float32
    assert again.load_array("ref_emb", shape=(3, None)).shape == (3, 4)
    with pytest.raises(ModelBundleError, match=r"array of shape \(3, 4\) where \(n, 5\) is expected"):
        again.load_array("ref_emb", shape=(None, 5))
    with pytest.raises(ModelBundleError, match=r"array of shape \(3, 4\) where \(3\) is expected"):
        again.load_array("ref_emb", shape=(3,))
    with pytest.raises(ModelBundleError, match="array of float32 where int64 is expected"):
        again.load_array("ref_emb", dtype=np.int64)
    monkeypatch.setattr(bundle_module, "MAX_TABLE_BYTES", 4)
    with pytest.raises(ModelBundleError, match=r"old.json: \d+ bytes, more than a bundle table may hold \(4\)"):
        again.load_table("old")
    monkeypatch.undo()
    assert again.remove("tables", "old") is True and again.remove("tables", "old") is False
    assert again.names("tables") == [] and not any(p.name.startswith("old") for p in (tmp_path / "b").rglob("*"))
    assert Bundle.open(tmp_path / "b").names("tables") == []
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(ModelBundleError, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        parse_json(deep, "t.json")
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, "t.json") is not None


def test_weights_tied_three_ways_are_saved_and_read_back_tied_in_value(tmp_path: Path) -> None:
    """safetensors refuses tensors that share storage, so every alias after the first is saved as its own copy;
    with three names on one tensor (an embedding tied to two heads) a slip that copied the first instead of the
    later ones would leave two sharing and the save would fail."""
    emb = torch.nn.Embedding(5, 3)
    heads = [torch.nn.Linear(3, 5, bias=False) for _ in range(2)]
    for head in heads:
        head.weight = emb.weight
    model = torch.nn.ModuleDict({"emb": emb, "head_a": heads[0], "head_b": heads[1]})
    b = _bundle(tmp_path)
    b.save_weights("tied3", model.state_dict())
    state = Bundle.open(tmp_path / "b").load_weights("tied3")
    assert sorted(state) == ["emb.weight", "head_a.weight", "head_b.weight"]
    for name in state:
        torch.testing.assert_close(state[name], emb.weight.detach())


def test_removing_a_file_missing_from_disk_drops_its_entry(tmp_path: Path) -> None:
    """An incomplete copy of a bundle lists a file that is not there; removing it (as a newer format does
    with what it replaced) must drop the entry, not fail on the absent file."""
    b = _bundle(tmp_path)
    b.save_table("old", {"a": 1})
    (path,) = [p for p in (tmp_path / "b").rglob("*") if p.name.startswith("old")]
    path.unlink()
    assert b.remove("tables", "old") is True
    assert Bundle.open(tmp_path / "b").names("tables") == []


def test_a_bundle_written_over_keeps_no_file_of_the_old_one_and_nothing_of_the_users(tmp_path: Path) -> None:
    """``Bundle.create(overwrite=True)`` (``train --force``, ``build-reference --force``) started a fresh manifest
    and left every file of the old bundle on disk: a demo bundle retrained in place kept its old reference's nine
    arrays (megabytes at a real reference's size) that nothing listed or read. Now the files the old manifest
    listed go, once the new manifest is written; a file the user put in the folder, and one a new file replaced
    under the same name, stay."""
    path = tmp_path / "b"
    old = Bundle.create(path, config={"kind": "dna-kmer"})
    old.save_array("discovery_reference_index", np.arange(5, dtype=np.int64))
    old.save_table("discovery_engine", {"format": 1})
    old.save_weights("encoders", {"w": torch.ones(2)})
    (path / "NOTES.txt").write_text("my notes", encoding="utf-8")
    (path / "arrays" / "mine.safetensors").write_bytes(b"not the bundle's")  # unlisted: never the bundle's to drop
    new = Bundle.create(path, config={"kind": "trained"}, overwrite=True)
    assert not (path / "arrays" / "discovery_reference_index.safetensors").exists()
    assert not (path / "tables" / "discovery_engine.json").exists()
    assert not (path / "weights" / "encoders.safetensors").exists()
    assert (path / "NOTES.txt").read_text(encoding="utf-8") == "my notes"
    assert (path / "arrays" / "mine.safetensors").read_bytes() == b"not the bundle's"
    new.save_weights("encoders", {"w": torch.zeros(3)})
    assert Bundle.open(path).load_weights("encoders")["w"].tolist() == [0.0, 0.0, 0.0]
    assert Bundle.open(path).names("arrays") == [] and Bundle.open(path).names("weights") == ["encoders"]
    # a folder whose bundle.json is unreadable: nothing is listed, so nothing but the manifest is replaced
    (path / "bundle.json").write_text("{not json", encoding="utf-8")
    Bundle.create(path, config={}, overwrite=True)
    assert (path / "weights" / "encoders.safetensors").exists() and (path / "NOTES.txt").exists()
