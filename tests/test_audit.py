"""The reference audit: keys far from every other key of their species are listed, nothing else.

A generated world (species within ~1 %, congeneric species ~8 % apart) with three
planted problems: a key labelled as one species that carries another species' barcode
(a misidentification), a species whose only two keys are from different genera, and a
species split into two groups of three keys (a deep split, not a lone key: not listed).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from biodiscover.discovery.audit import AUDIT_IDENTITY, SuspectKey, audit_reference, describe_audit
from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
from biodiscover.discovery.kmer import KmerConfig
from biodiscover.storage.distance import p_distance
from biodiscover.storage.records import Specimen
from fixtures.discovery import make_world, mutate, write_metadata

CFG = EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=60, max_candidates=20)


@pytest.fixture(scope="module")
def planted() -> dict[str, object]:
    world = make_world(seed=5)
    keys = list(world["train"])
    rng = np.random.default_rng(1)
    donor = next(s for s in keys if s.species == "Gen1 sp1")
    wrong = next(s for s in keys if s.species == "Gen0 sp0")
    # the misidentified key: labelled Gen0 sp0, its barcode a Gen1 sp1 specimen's (with its own few differences)
    mislabelled_seq = "".join(mutate(rng, np.array(list(donor.dna_barcode)), 0.006))
    keys[keys.index(wrong)] = dataclasses.replace(wrong, dna_barcode=mislabelled_seq)
    # a species of two keys from different genera: both listed (nothing says which is wrong)
    g2 = next(s for s in keys if s.genus == "Gen2")
    g3 = next(s for s in keys if s.genus == "Gen3")
    pair = [dataclasses.replace(g2, processid="PAIR1", species="Gen2 spX", split="train"),
            dataclasses.replace(g3, processid="PAIR2", species="Gen2 spX", split="train")]
    # a species split in two groups of three keys, ~20 % apart: every key has a close conspecific
    a, b = (np.array(list(s.dna_barcode)) for s in (g2, g3))
    split = [dataclasses.replace(g2, processid=f"SPLIT{i}", species="Gen2 spY", split="train",
                                 dna_barcode="".join(mutate(rng, a if i < 3 else b, 0.005))) for i in range(6)]
    keys += pair + split
    return {"keys": keys, "mislabelled": wrong.processid, "mislabelled_seq": mislabelled_seq, "world": world}


def test_the_audit_lists_the_lone_keys_and_nothing_else(planted) -> None:
    keys: list[Specimen] = planted["keys"]  # type: ignore[assignment]
    suspects, checked, _ = audit_reference([s.processid for s in keys], [s.dna_barcode or "" for s in keys],
                                        [(s.order, s.family, s.subfamily, s.genus, s.species) for s in keys])
    assert {s.processid for s in suspects} == {planted["mislabelled"], "PAIR1", "PAIR2"}
    assert checked == len({s.species for s in keys})  # every species of the world has 2 keys or more
    by_id = {s.processid: s for s in suspects}
    mis = by_id[str(planted["mislabelled"])]
    assert mis.species == "Gen0 sp0"
    assert mis.conspecific_keys == sum(s.species == "Gen0 sp0" for s in keys) - 1
    # far from its own species: a genus apart in this world (~18 % + species divergence)
    assert 0.6 < mis.own_identity < AUDIT_IDENTITY
    assert by_id["PAIR1"].conspecific_keys == 1
    assert by_id["PAIR1"].own_identity == pytest.approx(by_id["PAIR2"].own_identity, abs=0.01)  # one pair, two ways
    assert [s.own_identity for s in suspects] == sorted(s.own_identity for s in suspects)  # most distant first


def test_a_key_identical_to_a_conspecific_copy_or_alone_is_not_listed() -> None:
    seq = "ACGT" * 100
    far = "".join(mutate(np.random.default_rng(0), np.array(list(seq)), 0.3))
    ids = ["A1", "A2", "B1", "C1"]
    seqs = [seq, seq, far, far]
    lin = [("O", "F", None, "G", "G a"), ("O", "F", None, "G", "G a"), ("O", "F", None, "G", "G b"),
           ("O", "F", None, "G", None)]
    suspects, checked, _ = audit_reference(ids, seqs, lin)
    assert suspects == [] and checked == 1  # G a: two identical keys; G b alone; C1 has no species


def test_a_key_read_from_other_primers_is_compared_on_what_it_shares_and_not_listed() -> None:
    """A conspecific barcode that starts 160 bases later and runs 160 past the others' end (240 of 400 shared)
    is its species' barcode, not a lone key: measured over the shared bases it lies within the species'
    own spread. Padding a quarter of the read, it was forced onto 60 bases it does not share and listed."""
    world = make_world(seed=5)
    keys = [s for s in world["train"] if s.genus in ("Gen0", "Gen1")]
    rng = np.random.default_rng(3)
    host = next(s for s in keys if s.species == "Gen0 sp1")
    extension = "".join(rng.choice(list("ACGT"), 160))
    offset = dataclasses.replace(host, processid="OFFSET", dna_barcode=(host.dna_barcode or "")[160:] + extension)
    keys = [s for s in keys if s is not host] + [offset]
    conspecific = [s.dna_barcode or "" for s in keys if s.species == "Gen0 sp1" and s.processid != "OFFSET"]
    assert max(p_distance(offset.dna_barcode or "", c) for c in conspecific) < 0.03
    suspects, _, _ = audit_reference([s.processid for s in keys], [s.dna_barcode or "" for s in keys],
                                  [(s.order, s.family, s.subfamily, s.genus, s.species) for s in keys])
    assert "OFFSET" not in {s.processid for s in suspects}


def test_the_engine_sets_the_listed_keys_aside_names_from_the_rest_and_the_bundle_keeps_both(planted, tmp_path
                                                                                                 ) -> None:
    keys: list[Specimen] = planted["keys"]  # type: ignore[assignment]
    model = DiscoveryModel(CFG).fit(keys)
    listed = {s.processid: s for s in model.audit_}
    mis = listed[str(planted["mislabelled"])]
    assert mis.nearest_other == "Gen1 sp1" and mis.nearest_other_identity >= 0.98
    assert model.audit_summary_["suspects"] == 3 and model.audit_summary_["set_aside"] == 3
    assert model.set_aside_ == {planted["mislabelled"], "PAIR1", "PAIR2"}
    # set aside: unlabelled for the naming model (never simulated from), kept in the reference as it is
    pos = {pid: j for j, pid in enumerate(model.ref_ids_)}
    for pid in model.set_aside_:
        assert model.naming_lineages_[pos[pid]] == (None,) * 5
        assert model.ref_lineages_[pos[pid]][-1] in ("Gen0 sp0", "Gen2 spX")
    kept = [j for pid, j in pos.items() if pid not in model.set_aside_]
    assert all(model.naming_lineages_[j] == model.ref_lineages_[j] for j in kept)
    # the misidentified barcode is named from the keys it resembles, and told of the closer key set aside
    probe = Specimen(processid="Q1", dna_barcode=str(planted["mislabelled_seq"]))
    (r,) = model.triage([probe])
    assert r.top_hit != planted["mislabelled"] and r.labels["species"] == "Gen1 sp1"
    assert r.deepest_label in ("Gen1", "Gen1 sp1") and r.identity < 1.0
    # the probe carries the set-aside key's own barcode: 100 %, against the best key kept (r.identity < 1)
    assert r.reason is not None and "a closer reference key, at 100.0 % identity, was set aside, not named from: " \
        "the reference audit flags it" in r.reason
    assert f"{planted['mislabelled']} (Gen0 sp0)" in r.reason
    # a species whose two keys are both listed names nothing: its name rests on keys the audit doubts
    pair = next(s for s in keys if s.processid == "PAIR1")
    (rp,) = model.triage([dataclasses.replace(pair, processid="Q2", species=None, split=None)])
    assert rp.labels["species"] != "Gen2 spX" and rp.top_hit not in model.set_aside_
    # an ordinary query is not told anything
    ok = next(s for s in planted["world"]["test"] if s.species == "Gen4 sp0")  # type: ignore[index]
    (r2,) = model.triage([ok])
    assert r2.reason is None or "audit" not in r2.reason
    # saved and loaded with the bundle: the same keys set aside, the same call
    model.save(tmp_path / "bundle")
    again = DiscoveryModel.load(tmp_path / "bundle")
    assert again.audit_ == model.audit_ and again.set_aside_ == model.set_aside_
    (r3,) = again.triage([probe])
    assert (r3.top_hit, r3.labels, r3.deepest_rank, r3.reason) == (r.top_hit, r.labels, r.deepest_rank, r.reason)
    manifest = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert manifest["discovery"]["audit"]["suspects"] == 3 and manifest["discovery"]["audit"]["set_aside"] == 3
    assert "3 set aside: no specimen is named from them" in describe_audit(manifest["discovery"]["audit"])[0]


def test_keys_added_after_the_fit_are_searched_and_the_listed_ones_stay_aside(planted) -> None:
    """``add_references`` grows the reference (accepted provisional species): the set-aside mask must grow with
    it (a stale mask indexes past its end)."""
    keys: list[Specimen] = planted["keys"]  # type: ignore[assignment]
    model = DiscoveryModel(CFG).fit(keys)
    probe = Specimen(processid="Q1", dna_barcode=str(planted["mislabelled_seq"]))
    (before,) = model.triage([probe])  # computes the mask for the fitted reference
    donor = next(s for s in keys if s.species == "Gen1 sp1")
    new = dataclasses.replace(donor, processid="NEWKEY", dna_barcode=str(planted["mislabelled_seq"]), split="train")
    assert model.add_references([new]) == 1
    (after,) = model.triage([probe])
    assert after.top_hit == "NEWKEY" and after.identity == 1.0 and after.labels["species"] == "Gen1 sp1"
    assert before.top_hit != "NEWKEY" and planted["mislabelled"] in model.set_aside_
    assert model.naming_lineages_[-1] == model.ref_lineages_[-1]  # the new key is labelled for the naming model


def test_a_refit_on_as_many_other_keys_sets_aside_its_own_audits_keys(planted) -> None:
    """The set-aside mask is kept per set and reference size; a refit of the same model makes a new set, and
    its mask and lineages must be those of the new reference even when it holds as many keys (seed 6607's
    engine.py:236 ``is not`` -> ``is`` survived: it kept the first fit's mask and lineages for a new set of the
    same size). Refitted on the same keys with the pair relabelled as the species their barcodes come from,
    only the misidentified key is set aside: the pair's keys are labelled for the naming model again, and the
    naming model reads the new reference's labels, not the first fit's."""
    keys: list[Specimen] = planted["keys"]  # type: ignore[assignment]
    model = DiscoveryModel(CFG).fit(keys)
    assert model.set_aside_ == {planted["mislabelled"], "PAIR1", "PAIR2"}
    assert model.naming_lineages_[[s.processid for s in keys].index("PAIR1")] == (None,) * 5
    world_keys = {s.dna_barcode: s for s in planted["world"]["train"]}  # type: ignore[index]
    relabelled = [dataclasses.replace(s, species=world_keys[s.dna_barcode].species)
                  if s.processid in ("PAIR1", "PAIR2") else s for s in keys]
    assert len(relabelled) == len(keys)
    model.fit(relabelled)
    assert model.set_aside_ == {planted["mislabelled"]} and model.audit_summary_["set_aside"] == 1
    pos = {pid: j for j, pid in enumerate(model.ref_ids_)}
    species = {s.processid: s.species for s in relabelled}
    for pid, genus in (("PAIR1", "Gen2"), ("PAIR2", "Gen3")):
        assert model.naming_lineages_[pos[pid]] == model.ref_lineages_[pos[pid]]
        assert model.naming_lineages_[pos[pid]][-1] == species[pid] and species[pid].startswith(genus + " sp")
    assert model.naming_lineages_[pos[str(planted["mislabelled"])]] == (None,) * 5
    assert sum(lin == (None,) * 5 for lin in model.naming_lineages_) == 1


def test_a_bundle_from_before_keys_were_set_aside_names_from_every_key(planted, tmp_path) -> None:
    """Its naming model was fitted on every key: loading it must not drop keys it was trained with."""
    from biodiscover.discovery.engine import ENGINE_TABLE
    from biodiscover.storage.bundle import Bundle

    keys: list[Specimen] = planted["keys"]  # type: ignore[assignment]
    model = DiscoveryModel(CFG).fit(keys)
    model.save(tmp_path / "old")
    bundle = Bundle.open(tmp_path / "old")
    state = bundle.load_table(ENGINE_TABLE, expect=dict)
    del state["set_aside"]
    bundle.save_table(ENGINE_TABLE, state)
    old = DiscoveryModel.load(tmp_path / "old")
    assert old.set_aside_ == frozenset() and old.naming_lineages_ is old.ref_lineages_
    (r,) = old.triage([Specimen(processid="Q1", dna_barcode=str(planted["mislabelled_seq"]))])
    assert r.top_hit == planted["mislabelled"]
    assert r.reason is not None and "flagged by the reference audit" in r.reason and "Gen0 sp0" in r.reason
    summary = {k: v for k, v in model.audit_summary_.items() if k != "set_aside"}
    assert "check them before trusting names they give" in describe_audit(summary)[0]


def test_describe_audit_says_how_many_and_shows_the_worst() -> None:
    """``build-reference`` and ``info`` show the five worst keys (the call without ``limit``) and count the rest;
    the distance they state is 100 % less the recorded cut, whole percent, for any cut a bundle records (seed
    7333's ``100 * (1 - cut)`` -> ``101 *`` prints the same "10 %" at the product's cut and was left harmless)."""
    rows = [SuspectKey(f"K{i}", "Sp a", 0.70 + i / 100, 4, "Sp b", 0.99).to_dict() for i in range(7)]
    lines = describe_audit({"species_checked": 10, "suspects": 7, "min_identity": 0.9, "worst": rows})
    assert "7 key(s) lie farther than 10 %" in lines[0]
    assert lines[1].strip().startswith("K0 (Sp a): 70.0 %") and "99.0 % to Sp b" in lines[1]
    assert [line.split()[0] for line in lines[1:-1]] == ["K0", "K1", "K2", "K3", "K4"]
    # the rest are named by the command that lists them (e33 review F14: "(bundle table reference_audit)" named a
    # file inside the bundle no command showed)
    assert lines[-1].strip() == "… and 2 more: `biodiscover info BUNDLE --audit` lists every one"
    assert describe_audit({"suspects": 7, "worst": rows}, bundle="ref/DL")[-1].endswith(
        "`biodiscover info ref/DL --audit` lists every one")
    assert len(describe_audit({"species_checked": 10, "suspects": 7, "worst": rows}, limit=7)) == 8
    assert "every key of the 10 species" in describe_audit({"species_checked": 10, "suspects": 0})[0]
    for cut, said in ((0.35, "65"), (0.8, "20")):
        assert f"lie farther than {said} % from" in describe_audit({"suspects": 7, "min_identity": cut,
                                                                    "worst": rows})[0]
        assert f"lies within {said} % of" in describe_audit({"species_checked": 3, "suspects": 0,
                                                             "min_identity": cut})[0]


@pytest.mark.parametrize("differences, listed", [(38, False), (40, True)])
def test_a_pair_just_past_the_audits_distance_is_listed(differences: int, listed: bool) -> None:
    """Two keys of one species, 400 bases with the same ten Ns, ``differences`` substitutions apart: 38 leave
    them within the audit's distance, 40 put them past it and both are listed. The bounded alignment that
    checks a pair allows int(0.1 x 400) + 1 edits over the read, while its p-distance divides by the informative
    columns (fewer, with Ns), so a pair just past the cut comes back finite and only the comparison rejects it
    (written after the seed-3299 sample, where ``<= 1.0 - min_identity`` -> ``<= 1.0 + min_identity`` in
    ``_close`` survived; not re-scored)."""
    rng = np.random.default_rng(7)
    a = np.array(list("".join(rng.choice(list("ACGT"), 400))))
    a[rng.choice(400, 10, replace=False)] = "N"
    b = a.copy()
    for i in rng.choice(np.flatnonzero(a != "N"), differences, replace=False):
        b[i] = {"A": "C", "C": "G", "G": "T", "T": "A"}[b[i]]
    suspects, checked, _ = audit_reference(["K1", "K2"], ["".join(a), "".join(b)], [("Ord", "Gen", "Gen sp")] * 2)
    assert checked == 1
    assert [s.processid for s in suspects] == (["K1", "K2"] if listed else [])
    assert all(s.own_identity < AUDIT_IDENTITY for s in suspects)


def test_a_clean_reference_is_said_to_lie_within_the_audits_distance() -> None:
    """No suspect: the one line ``build-reference`` and ``info`` print says how far (100 % less the audit's
    identity cut) every key lies from another key of its species (seed 7333: ``1 - cut`` -> ``1 + cut`` printed
    "190 %" and survived)."""
    keys = list(make_world(seed=5)["train"])
    suspects, checked, _ = audit_reference([s.processid for s in keys], [s.dna_barcode or "" for s in keys],
                                        [(s.order, s.family, s.subfamily, s.genus, s.species) for s in keys])
    assert suspects == [] and checked == len({s.species for s in keys})
    summary = {"species_checked": checked, "suspects": 0, "min_identity": AUDIT_IDENTITY}
    assert describe_audit(summary) == [f"reference audit: every key of the {checked} species with 2 or more keys "
                                       "lies within 10 % of another key of its species"]
    assert "lies within 3 % of" in describe_audit({**summary, "min_identity": 0.97})[0]


@pytest.fixture(scope="module")
def planted_bundle(planted, tmp_path_factory) -> tuple[Path, str]:
    """``build-reference`` of the planted keys through the CLI, with no calibration splits and no outliers (as a
    DNA-only reference is often built: e33 review's refDL): the bundle and what the build said."""
    from fixtures.inprocess import run_cli

    world = dict(planted["world"])  # type: ignore[call-overload]
    world["train"] = planted["keys"]
    root = tmp_path_factory.mktemp("planted") / "ds"
    write_metadata(root, world, phylum="Arthropoda", **{"class": "Insecta"}, inferred_ranks=0)
    out = root.parent / "bundle"
    build = run_cli("build-reference", "--data", str(root), "--out", str(out), "--keys", "train", "--calibration", "",
                    "--outliers", "")
    assert build.returncode == 0, build.stderr
    return out, build.stdout + build.stderr


def test_build_reference_and_info_list_the_misidentified_key(planted, planted_bundle, cli) -> None:
    """The CLI: build-reference prints the audit; info shows it again from the bundle, and says what the candidate
    keys and P(absent) mean for a user's results in plain words, the technical term in brackets (e33 review F14:
    "a species' first by k-mer containment", "weighed against 96 pseudo-specimens at the simulation's even
    odds")."""
    out, said = planted_bundle
    assert "reference audit: 3 key(s) lie farther than 10 % from every other key of their species" in said
    assert f"{planted['mislabelled']} (Gen0 sp0)" in said and "to Gen1 sp1" in said
    info = cli("info", str(out))
    assert info.returncode == 0, info.stderr
    assert f"{planted['mislabelled']} (Gen0 sp0)" in info.stdout
    assert "PAIR1 (Gen2 spX)" in info.stdout and "SPLIT" not in info.stdout
    assert ("candidate keys: a specimen is compared with the key of each species that shares the most of its "
            "barcode over their overlap (k-mer containment), so a shorter key identical to it is not passed over "
            "for a longer, less alike one") in info.stdout and "cosine" not in info.stdout
    assert ("P(absent from the reference): judged per collection: at each rank, triage estimates from a "
            "collection's own specimens what share of them belong to taxa the reference lacks, and reads each "
            "specimen at that share") in info.stdout
    assert ("the estimate starts at even odds, held there by 96 imaginary specimens (pseudo-specimens), so a "
            "collection of fewer than 96 specimens moves it less than halfway") in info.stdout
    assert "the simulation's even odds" not in info.stdout


def test_info_audit_lists_every_key_the_audit_flagged(planted, planted_bundle, cli) -> None:
    """``info --audit`` lists every key of the bundle's audit table, most distant first, under the count line (e33
    review F14: "… and 26 more (bundle table reference_audit)", and no command listed them); with --json, the
    rows as the bundle stores them."""
    out, _ = planted_bundle
    table = json.loads((out / "tables" / "reference_audit.json").read_text())
    listed = cli("info", str(out), "--audit")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("reference audit: 3 key(s) lie farther than 10 % from every other key of their "
                               "species") and lines[0].endswith("3 set aside: no specimen is named from them, the "
                                                                "rest of their species still names; check them):")
    rows = sorted((SuspectKey.from_dict(r) for r in table), key=lambda s: (s.own_identity, s.processid))
    assert lines[1:] == [f"  {s.describe()}" for s in rows]
    assert {line.split()[0] for line in lines[1:]} == {str(planted["mislabelled"]), "PAIR1", "PAIR2"}
    as_json = cli("info", str(out), "--audit", "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == table
    # a bundle of encoders alone, or one built before the audit: one error line saying so
    import shutil

    old = out.parent / "old"
    shutil.copytree(out, old)
    manifest = json.loads((old / "bundle.json").read_text())
    del manifest["files"]["tables"]["reference_audit"]
    (old / "bundle.json").write_text(json.dumps(manifest))
    refused = cli("info", str(old), "--audit")
    assert refused.returncode != 0 and refused.stderr.strip().splitlines() == [
        f"error: {old}: no reference audit in this bundle (build-reference writes one; a bundle built before the "
        "audit has none: rebuild it)"]


def test_info_prints_the_settings_that_applied_and_the_data_once(planted_bundle, cli) -> None:
    """A DNA-only bundle built with no calibration splits and no outliers: ``info``'s reference line leaves out the
    settings of parts never fitted (calibration keys, max outliers, their zero counts), and the record is printed
    once, under discovery, not again as "data:" (e33 review F14); ``info --json`` keeps the whole record."""
    out, _ = planted_bundle
    shown = cli("info", str(out)).stdout
    lines = shown.splitlines()
    record = json.loads(cli("info", str(out), "--json").stdout)["discovery"]["reference"]
    # a dataset folder: no content hash to show
    assert [line for line in lines if line.startswith("  reference: ")] == [
        f"  reference: data={out.parent / 'ds'}, keys=train, seed=0, n_keys={record['n_keys']}"]
    assert not [line for line in lines if line.startswith("data:")], shown
    assert (record["calibration"], record["calibration_keys"], record["outliers"], record["max_outliers"],
            record["n_calibration"], record["n_outliers"]) == ("", "train", "", 3000, 0, 0)


def test_the_applied_settings_keep_what_a_fitted_part_used() -> None:
    """Calibration splits, outliers and (with the image classifier) the keys it calibrates against are shown where
    they acted; a folder's record has no content hash to show."""
    from biodiscover.workflows.reference import applied_settings

    record = {"data": "ds", "keys": "train", "calibration": "val", "sha256": None, "calibration_splits": ["val"],
              "calibration_keys": "train", "outliers": "other_heldout", "max_outliers": 40, "seed": 0,
              "n_keys": 9, "n_calibration": 4, "n_outliers": 3}
    assert applied_settings(record, image_classifier=True) == {
        "data": "ds", "keys": "train", "calibration": "val", "calibration_keys": "train", "outliers": "other_heldout",
        "max_outliers": 40, "seed": 0, "n_keys": 9, "n_calibration": 4, "n_outliers": 3}
    assert "calibration_keys" not in applied_settings(record, image_classifier=False)
    assert applied_settings({**record, "sha256": "ab" * 32}, image_classifier=False)["sha256"] == "ab" * 8 + "…"


def test_a_key_stored_reversed_is_said_to_be() -> None:
    """A key whose reverse complement is its species' barcode: listed, and described as stored reversed
    (what the real dev reference's most distant keys turned out to be: BOLD mirrors of GenBank records)."""
    from biodiscover.storage.distance import reverse_complement

    rng = np.random.default_rng(4)
    base = rng.choice(list("ACGT"), 500)
    seqs = ["".join(mutate(rng, base, 0.005)) for _ in range(5)]
    seqs[2] = reverse_complement(seqs[2])
    lin = [("O", "F", None, "G", "G a")] * 5
    suspects, checked, _ = audit_reference([f"K{i}" for i in range(5)], seqs, lin)
    assert checked == 1 and [s.processid for s in suspects] == ["K2"]
    assert suspects[0].own_identity < AUDIT_IDENTITY <= 0.98 <= suspects[0].reversed_identity
    assert suspects[0].describe().endswith(
        f"; its reverse complement is {100 * suspects[0].reversed_identity:.1f} % identical to its species: "
        "stored reversed, indexed as its reverse complement")  # the figure too (seed 3299: 100 -> 101 survived)


def test_the_audits_time_is_logged_as_a_part_of_the_fit(planted, caplog) -> None:
    """"reference audit in N s": the audit's own time (before indexing, and the second look after), a part of
    the fit's, never negative (the hunt after seed 2027, seed 31337: both subtractions swapped survived,
    engine.py:209 and :409)."""
    import logging
    import re

    keys: list[Specimen] = planted["keys"]  # type: ignore[assignment]
    with caplog.at_level(logging.INFO, logger="biodiscover.discovery.engine"):
        model = DiscoveryModel(CFG).fit(keys)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reference audit in ")]
    assert len(said) == 1
    seconds = float(re.fullmatch(r"reference audit in ([\d.]+)s", said[0])[1])  # type: ignore[index]
    assert 0.0 <= seconds <= model.fit_seconds_ + 0.05
    assert model._audit_found[2] >= 0.0


@pytest.fixture(scope="module")
def batch() -> dict[str, object]:
    """A world where one species has 15 keys and 3 more filed under it carry another genus's barcode (one lab's
    batch under the wrong name), another has 15 keys and a deep lineage of 3 of its own, ~13 % away, that matches
    no species (a cryptic species, not a mislabel), and a third has 15 keys and 3 more ~19 % away that match no
    species either (farther than two orders' keys: filed under the wrong name, of a species the world lacks)."""
    world = make_world(seed=5)
    keys = list(world["train"])
    rng = np.random.default_rng(11)

    def copies(like: Specimen, seq: str, n: int, prefix: str, rate: float = 0.004) -> list[Specimen]:
        return [dataclasses.replace(like, processid=f"{prefix}{i}", dna_barcode="".join(
            mutate(rng, np.array(list(seq)), rate))) for i in range(n)]

    host = next(s for s in keys if s.species == "Gen0 sp0")
    donor = next(s for s in keys if s.species == "Gen1 sp1")
    deep = next(s for s in keys if s.species == "Gen2 sp0")
    keys += copies(host, host.dna_barcode or "", 10, "HOST")
    keys += copies(host, donor.dna_barcode or "", 3, "BATCH")  # filed as Gen0 sp0, a Gen1 sp1 barcode
    keys += copies(deep, deep.dna_barcode or "", 10, "DEEP")
    lineage = "".join(mutate(rng, np.array(list(deep.dna_barcode or "")), 0.17))
    keys += copies(deep, lineage, 3, "CRYPTIC")
    lacked = next(s for s in keys if s.species == "Gen3 sp0")
    keys += copies(lacked, lacked.dna_barcode or "", 10, "LACKHOST")
    keys += copies(lacked, "".join(mutate(rng, np.array(list(lacked.dna_barcode or "")), 0.25)), 3, "FAR")
    return {"keys": keys, "world": world}


def test_a_batch_carrying_another_species_barcode_is_listed_set_aside_and_stops_blocking_its_name(batch) -> None:
    """A real Pakistani plate's 74 *Culex quinquefasciatus* were not named even to genus: 8 keys filed as *Aedes*
    (two GenBank batches) carry its barcode, and each of them has a batch-mate close by, so the lone-key rule
    passed them. A small group far from its species' bulk that matches another species is listed now, and set
    aside; a deep lineage of a species' own is not."""
    keys: list[Specimen] = batch["keys"]  # type: ignore[assignment]
    found = audit_reference([s.processid for s in keys], [s.dna_barcode or "" for s in keys],
                            [(s.order, s.family, s.subfamily, s.genus, s.species) for s in keys])
    far = {"FAR0", "FAR1", "FAR2"}
    assert {s.processid for s in found.groups} == {"BATCH0", "BATCH1", "BATCH2", "CRYPTIC0", "CRYPTIC1",
                                                    "CRYPTIC2"} | far
    assert not {s.processid for s in found.suspects} & {"BATCH0", "CRYPTIC0", "HOST0", "DEEP0", "FAR0", "LACKHOST0"}
    assert all(g.group_keys == 3 and g.conspecific_keys == 17 and g.own_identity < AUDIT_IDENTITY
               for g in found.groups)
    crypt = [g.own_identity for g in found.groups if g.processid.startswith("CRYPTIC")]
    assert all(0.85 < x < 0.90 for x in crypt), crypt  # the deep lineage lies between the two cut-offs
    assert all(g.own_identity < 0.85 for g in found.groups if g.processid in far)
    model = DiscoveryModel(CFG).fit(keys)
    listed = {s.processid: s for s in model.audit_ or ()}
    assert {"BATCH0", "BATCH1", "BATCH2"} | far <= set(listed)
    assert not {"CRYPTIC0", "DEEP0", "HOST0", "LACKHOST0"} & set(listed)
    assert {"BATCH0", "BATCH1", "BATCH2"} | far <= model.set_aside_
    b = listed["BATCH0"]
    assert (b.species, b.nearest_other, b.group_keys) == ("Gen0 sp0", "Gen1 sp1", 3)
    assert b.nearest_other_identity >= 0.97
    assert listed["FAR0"].nearest_other_identity < 0.97
    assert model.audit_summary_["grouped"] == 6
    said = describe_audit(model.audit_summary_)
    assert said[0].startswith(f"reference audit: {len(listed)} key(s) lie farther than 10 % from their species: "
                              f"{len(listed) - 6} from every other key of it, 6 in small groups far from its bulk "
                              "that carry another species' barcode or lie farther than two orders' keys (possible "
                              "misidentification")
    assert sum(line.startswith("  FAR") and "% to the bulk of its species (about 15 keys), farther than two orders' "
               "keys usually lie: a batch filed under the wrong name, of a species the reference may lack" in line
               for line in said) == 1, said
    assert sum(line.startswith("  BATCH") and "identical to Gen1 sp1" in line and "about 15 keys): a batch carrying "
               "another species' barcode (one of the batch's 3 keys)" in line for line in said) == 1, said
    # the donor species' specimens are named to it, as without the batch
    tests = [s for s in batch["world"]["test"] if s.species == "Gen1 sp1"]  # type: ignore[index]
    assert tests
    for r in model.triage(tests):
        assert (r.deepest_rank, r.deepest_label) == ("species", "Gen1 sp1"), r.reason


@pytest.mark.parametrize(("batch", "listed"), [(5, True), (6, False)])
def test_a_group_is_a_group_up_to_a_third_of_its_species_keys(batch: int, listed: bool) -> None:
    """5 of 16 keys (0.31) far from the rest are a group the audit lists for the other-species search; 6 of 16
    (0.375) are too large a share to say which side is wrong, and neither side is listed (a share of a quarter
    or a half would decide both cases the same way)."""
    rng = np.random.default_rng(24)
    bulk_seq, far_seq = (rng.choice(list("ACGT"), 500) for _ in range(2))
    seqs = ["".join(mutate(rng, bulk_seq, 0.004)) for _ in range(16 - batch)]
    seqs += ["".join(mutate(rng, far_seq, 0.004)) for _ in range(batch)]
    ids = [f"K{i}" for i in range(16)]
    found = audit_reference(ids, seqs, [("O", "F", None, "G", "G a")] * 16, anchors=16)
    assert found.suspects == []  # every key has a close conspecific
    assert {g.processid for g in found.groups} == ({f"K{i}" for i in range(16 - batch, 16)} if listed else set())
    assert all(g.group_keys == batch and g.conspecific_keys == 15 for g in found.groups)


def test_the_count_line_says_which_keys_were_not_set_aside() -> None:
    """The keys an audit lists but does not set aside are those stored reversed (turned round and kept): the count
    line says so (e33 review F14: "67 key(s) … 65 set aside" left 2 unexplained), and a batch's line says how many
    keys it stands for, not "(25 such keys listed)" of keys no line listed."""
    rows = [SuspectKey("K1", "Sp a", 0.55, 78, reversed_identity=0.99).to_dict(),
            SuspectKey("K2", "Sp b", 0.60, 40, "Sp c", 0.58).to_dict(),
            {**SuspectKey("B1", "Sp d", 0.81, 3680, "Sp e", 1.0, group_keys=25).to_dict(), "listed": 25}]
    said = describe_audit({"species_checked": 408, "suspects": 27, "min_identity": AUDIT_IDENTITY, "set_aside": 26,
                           "grouped": 25, "worst": rows})
    assert said[0].endswith("(possible misidentification, contamination or a cryptic species; 26 set aside: no "
                            "specimen is named from them, the rest of their species still names; 1 stored reversed "
                            "(their reverse complement matches their species): turned round and kept as keys; check "
                            "them):")
    assert said[3].endswith("a batch carrying another species' barcode (one of the batch's 25 keys)")
    assert len(said) == 4  # the batch's 25 keys and the 2 lone keys: every one told


def test_a_summary_recorded_before_the_audits_groups_reads_as_it_did() -> None:
    """A bundle built before the audit listed groups records no ``grouped``: its line says what that audit did (no
    group clause), and a summary with nothing recorded says nothing was checked (a missing count is none, not
    one: targeted mutation run of the twenty-fourth session)."""
    old = {"species_checked": 12, "suspects": 2, "min_identity": AUDIT_IDENTITY, "set_aside": 2,
           "worst": [SuspectKey("K1", "Sp a", 0.7, 4, "Sp b", 0.99).to_dict(),
                     SuspectKey("K2", "Sp c", 0.8, 3).to_dict()]}
    said = describe_audit(old)
    assert said[0].startswith("reference audit: 2 key(s) lie farther than 10 % from every other key of their species "
                              "(possible misidentification")
    assert len(said) == 3 and "more" not in said[-1]
    assert describe_audit({}) == ["reference audit: every key of the 0 species with 2 or more keys lies within 10 % "
                                  "of another key of its species"]


def test_a_batch_stored_reversed_is_listed_to_be_turned_round() -> None:
    """Three keys of a species stored as reverse complements (a GenBank batch mirrored the wrong way round) have
    one another close by, so no lone-key rule sees them: as a group whose reverse complement is the species' bulk
    they are listed with that identity, and the engine turns them round instead of setting them aside."""
    from biodiscover.storage.distance import reverse_complement

    rng = np.random.default_rng(7)
    base = rng.choice(list("ACGT"), 500)
    seqs = ["".join(mutate(rng, base, 0.004)) for _ in range(12)]
    seqs += [reverse_complement("".join(mutate(rng, base, 0.004))) for _ in range(3)]
    found = audit_reference([f"K{i}" for i in range(15)], seqs, [("O", "F", None, "G", "G a")] * 15, anchors=15)
    assert found.groups == []
    assert [s.processid for s in sorted(found.suspects, key=lambda s: s.processid)] == ["K12", "K13", "K14"]
    assert all(s.reversed_identity >= 0.98 and s.own_identity < AUDIT_IDENTITY and s.conspecific_keys == 14
               for s in found.suspects)


def test_the_bulk_is_the_anchor_group_whose_barcodes_most_keys_carry() -> None:
    """Anchors close to one another are one group, whichever order they come in; the bulk is the group whose own
    barcodes the most keys carry (a group left out of a merge is kept: targeted mutation run)."""
    from biodiscover.discovery.audit import _bulk_anchors

    rng = np.random.default_rng(3)
    a, b = (rng.choice(list("ACGT"), 400) for _ in range(2))
    seqs = ["".join(mutate(rng, a, 0.005)) for _ in range(3)] + ["".join(mutate(rng, b, 0.005)) for _ in range(2)]
    assert sorted(_bulk_anchors(seqs, [1] * 5, [0, 1, 2, 3, 4], AUDIT_IDENTITY)) == [0, 1, 2]
    assert sorted(_bulk_anchors(seqs, [1] * 5, [3, 0, 4, 1, 2], AUDIT_IDENTITY)) == [0, 1, 2]
    assert sorted(_bulk_anchors(seqs, [1, 1, 1, 5, 5], [0, 1, 2, 3, 4], AUDIT_IDENTITY)) == [3, 4]


def test_a_batch_line_and_a_row_from_before_the_groups() -> None:
    batch = SuspectKey("GBDP49512-19", "Aedes albopictus", 0.814, 3536, "Aedes aegypti", 1.0, group_keys=17)
    assert batch.describe() == ("GBDP49512-19 (Aedes albopictus): 100.0 % identical to Aedes aegypti, 81.4 % to the "
                                "bulk of its species (about 3520 keys): a batch carrying another species' barcode")
    row = SuspectKey("K1", "Sp a", 0.7, 4, "Sp b", 0.99).to_dict()
    del row["group_keys"]  # a bundle's audit table written before the groups
    old = SuspectKey.from_dict(row)
    assert old.group_keys == 0 and old.describe().startswith("K1 (Sp a): 70.0 % identity to the nearest of the 4")


def test_a_species_sampled_past_max_exact_is_compared_with_distinct_keys() -> None:
    """Past ``max_exact`` other barcodes a key is compared with a sample of them, drawn without replacement: with
    room for all but one, a key whose only two close conspecifics lie between it and the bulk always meets one of
    them, so no seed lists it as a lone key (it is one of a small group far from the bulk, listed as such). Drawn
    with replacement, about one seed in twenty missed both and called it a key with no conspecific within 10 %
    (seed-7919 mutation sample: ``replace=False`` -> ``True`` survived, the line not covered)."""
    rng = np.random.default_rng(11)
    base = rng.choice(list("ACGT"), 400)
    far = rng.choice(400, 60 + 9 * 4, replace=False)
    bridge, rest = far[:60], far[60:]  # the key differs from the bulk at 60 sites; each bridge shares 30 of them

    def at(sites: np.ndarray) -> str:
        out = base.copy()
        out[sites] = [{"A": "C", "C": "G", "G": "T", "T": "A"}[b] for b in base[sites]]
        return "".join(out)

    bulk = [at(rest[4 * v:4 * v + 4]) for v in range(9)]  # 1 % from the common barcode, 2 % from each other
    seqs = [at(bridge), at(bridge[:30]), at(bridge[30:]), *bulk]  # 7.5 % to each bridge, >= 14 % to the bulk
    ids = [f"K{i}" for i in range(len(seqs))]
    lineages = [("O", "F", None, "G", "G a")] * len(seqs)
    whole = audit_reference(ids, seqs, lineages)  # every key compared
    assert whole.suspects == [] and [(g.processid, g.group_keys) for g in whole.groups] == [("K0", 3)]
    for seed in range(100):
        assert audit_reference(ids, seqs, lineages, max_exact=len(seqs) - 2, seed=seed).suspects == [], seed


def test_a_refused_key_read_back_is_text_where_it_must_be() -> None:
    """The refused reference rows a bundle keeps (what triage cites when a member matches one) read back as written;
    a row missing its processid, reason or barcode, or with a species or genus that is not text, is a ``ValueError``
    naming the row and the field (the engine's loader makes it a ModelBundleError). No test had it: found reading
    the diff of ``discovery/`` after the seed-7919 mutation sample."""
    import re

    from biodiscover.discovery.audit import RefusedKey

    key = RefusedKey("REF1", "Aus bus", None, "barcode is 146 nt", "ACGT" * 40)
    assert RefusedKey.from_dict(key.to_dict()) == key
    for field, value in (("processid", ""), ("why", None), ("barcode", 7), ("species", 3.5), ("genus", ["Aus"])):
        with pytest.raises(ValueError, match=rf"refused key .*: {field} must be text, got {re.escape(repr(value))}"):
            RefusedKey.from_dict({**key.to_dict(), field: value})
