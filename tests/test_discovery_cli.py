"""build-reference → triage (into a real SQLite DB) → evaluate, through the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from fixtures.discovery import make_world, write_metadata
from biodiscover.cli.main import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ds")
    world = make_world(seed=5)
    write_metadata(root, world, phylum="Arthropoda", **{"class": "Insecta"}, inferred_ranks=0)
    # a new collection: FASTA of test + test_unseen, plus one bad record
    with (root / "collection.fasta").open("w") as fh:
        for s in world["test"] + world["test_unseen"]:
            fh.write(f">{s.processid}|x\n{s.dna_barcode}\n")
        fh.write(">BAD1|x\nACGT!!XX\n")
    return root


@pytest.fixture(scope="module")
def bundle(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("b") / "bundle"
    code = main(["build-reference", "--data", str(dataset), "--out", str(out), "--keys", "train",
                 "--max-outliers", "40", "--quiet"])
    assert code == 0
    return out


def test_build_reference_writes_a_bundle(bundle) -> None:
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["discovery"]["reference_keys"] > 0
    assert manifest["data_fingerprint"]["keys"] == "train"
    assert manifest["discovery"]["reference"] == manifest["data_fingerprint"]


def test_build_reference_says_which_named_key_split_holds_no_specimen(dataset, tmp_path, capsys) -> None:
    """e31 review F14: --keys train+key_unseen on a CSV of no key_unseen row built silently from train alone
    (evaluate refuses an empty split): the line names the empty split and what the keys are."""
    assert main(["build-reference", "--data", str(dataset), "--out", str(tmp_path / "b"), "--keys", "train+pretrain",
                 "--max-outliers", "10"]) == 0
    said = capsys.readouterr()
    trains = sum(1 for line in (dataset / "metadata").glob("*") for row in line.read_text().splitlines()
                 if ",train," in row)
    assert f"no specimens in key split pretrain (--keys train+pretrain): the keys are train ({trains:,})'s alone" \
        in said.out + said.err, said


def test_a_reference_rebuilt_in_place_records_its_own_keys(dataset, bundle, tmp_path, capsys) -> None:
    """Without --force an existing bundle keeps its encoders and gets the new engine; its record of what the
    engine was built from must follow (a QA run saw `info` show the first build's keys=train+key_unseen, seed 0
    and 1,156 keys beside the rebuilt engine's 526)."""
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    first = json.loads((copy / "bundle.json").read_text())
    assert main(["build-reference", "--data", str(dataset), "--out", str(copy), "--keys", "train+val",
                 "--calibration", "val_unseen", "--seed", "5", "--max-outliers", "40", "--quiet"]) == 0
    manifest = json.loads((copy / "bundle.json").read_text())
    assert manifest["discovery"]["reference_keys"] > first["discovery"]["reference_keys"]
    for record in (manifest["data_fingerprint"], manifest["discovery"]["reference"]):
        assert (record["keys"], record["seed"]) == ("train+val", 5)
        assert record["n_keys"] > first["data_fingerprint"]["n_keys"]
    capsys.readouterr()
    assert main(["info", str(copy)]) == 0
    shown = capsys.readouterr().out
    assert "reference: " in shown and "keys=train+val" in shown and "seed=5" in shown
    assert " keys=train," not in shown and "n_keys=90" not in shown  # the first build's record is gone
    # once, under discovery (a DNA-only bundle's data record is its reference's: e33 review F14 read it twice), with
    # the settings that acted: calibration and outliers were searched; no image classifier took calibration keys
    (ref,) = [line for line in shown.splitlines() if "keys=train+val" in line]
    assert ref.startswith("  reference: data=") and not [line for line in shown.splitlines() if line.startswith("data")]
    assert "calibration=val_unseen" in ref and "outliers=other_heldout, max_outliers=40" in ref
    assert "n_calibration=" in ref and "n_outliers=" in ref and "calibration_keys" not in ref


def test_triage_writes_run_assignments_and_proposals(dataset, bundle, tmp_path, capsys) -> None:
    from biodiscover.storage.db import Database

    db = tmp_path / "biodiscover.discovery.db"
    results = tmp_path / "results.jsonl"
    code = main(["triage", "--input", str(dataset / "collection.fasta"), "--model", str(bundle), "--db", str(db),
                 "--results", str(results), "--json", "-q"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["quarantined"] == 1 and summary["triaged"] == summary["specimens"] - 1
    assert summary["novel"] >= 1 and summary["proposals"] >= 1
    assert summary["named_to"]["species"] >= 1
    # the collection's own share of absent taxa, per learned rank, which every stored P(absent) assumes
    share = summary["absent_share"]
    assert {"genus", "species"} <= set(share) and all(0 < v < 1 for v in share.values())
    # and the forecast at that share beside the even-odds one build-reference printed (ML review M2)
    from biodiscover.discovery.engine import DiscoveryModel
    from biodiscover.workflows.triage import FORECAST_FIGURES

    naming = DiscoveryModel.load(bundle).naming_
    at, even = naming.expected_at(share, 0.98), naming.expected_["0.98"]
    assert summary["forecast_level"] == 0.98
    assert summary["forecast_at_share"] == {k: pytest.approx(at[k]["rate"], abs=1e-6) for k, _ in FORECAST_FIGURES}
    assert summary["forecast_even_odds"] == {k: pytest.approx(even[k]["rate"], abs=1e-6) for k, _ in FORECAST_FIGURES}
    with Database.open(db) as database:
        table = database.assignments(summary["run_id"])
        assert len(table) == summary["triaged"]
        assert set(table["deepest_rank"].dropna()) <= {"order", "family", "subfamily", "genus", "species"}
        assert database.queue_counts(summary["run_id"])["live"] == summary["proposals"]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == summary["triaged"] and {"novelty", "labels", "deepest_rank"} <= set(rows[0])
    # what each specimen was named from is stored with it, as the results file says (schema 0005)
    stored = table.set_index("processid")
    for r in rows:
        s = stored.loc[r["processid"]]
        assert (s["modality"], s["top_hit"], s["overlap"]) == (r["modality"], r["top_hit"], r["overlap"])
        assert s["identity"] == pytest.approx(r["identity"])
        assert (s["reason"] if isinstance(s["reason"], str) else None) == r["reason"]
    assert set(stored["modality"]) == {"dna"} and stored["identity"].between(0.5, 1.0).all()
    # how many the same P(right) would name to species at each lower level: the walk re-read, nothing refitted
    from biodiscover.discovery.naming import deepest_confident

    at = summary["species_at_level"]
    assert list(at) == ["0.95", "0.9"]
    for lv, n in at.items():
        assert n == sum(deepest_confident(r["labels"], r["confidence"], float(lv), ("subfamily",)) == "species"
                        for r in rows)
    assert summary["named_to"]["species"] <= at["0.95"] <= at["0.9"] < summary["triaged"]


def test_triage_bad_model_is_a_one_line_error(dataset, tmp_path, capsys) -> None:
    code = main(["triage", "--input", str(dataset / "collection.fasta"), "--model", str(tmp_path),
                 "--db", str(tmp_path / "x.db")])
    assert code == 2
    assert "not a model bundle" in capsys.readouterr().err


@pytest.fixture(scope="module")
def evaluated(dataset, bundle, tmp_path_factory) -> Path:
    """One `biodiscover evaluate` of the bundle (keys: train) on test (known) and test_unseen (absent species of
    genera among the keys): the report JSON's path, its .md and .html beside it."""
    out = tmp_path_factory.mktemp("eval") / "report.json"
    assert main(["evaluate", "--data", str(dataset), "--model", str(bundle), "--out", str(out), "-q"]) == 0
    return out


def _page_data(page: str, name: str) -> dict:
    """The JSON a report page embeds for one of its figures (what the figure was drawn from)."""
    start = page.index(">", page.index(f"<script type='application/json' id='{name}'")) + 1
    return json.loads(page[start:page.index("</script>", start)])


def test_evaluate_reports_every_metric(evaluated) -> None:
    out = evaluated
    rep = json.loads(out.read_text())
    assert rep["closed_world"]["species_accuracy_micro"] >= 0.95
    assert rep["novelty"]["auroc"] >= 0.9
    assert set(rep["rank_errors"]) == {"order", "family", "subfamily", "genus", "species"}
    assert rep["rank_errors"]["species"]["oc_rate"] <= 0.2
    assert "ami" in rep["candidate_species"] and rep["candidate_species"]["ami"] >= 0.5
    md = out.with_suffix(".md").read_text()
    assert "novelty AUROC" in md and "Hungarian" in md
    # test_unseen's genera are among the keys: the BIOSCAN-5M 1-NN genus figure is measured
    assert rep["bioscan_1nn"]["genus_accuracy_on_novel_split_micro"] >= 0.5
    # the share of absent taxa the evaluated specimens' P(absent) assume, per learned rank
    share = rep["naming"]["absent_share"]
    assert {"genus", "species"} <= set(share) and all(0 < v < 1 for v in share.values())
    # a known collection's estimate is pulled toward even odds by the pseudo-specimens, and the label says so
    assert rep["naming"]["collection_weight"] == 96
    assert (f"species: share absent from the reference, estimated from the specimens (weighed against 96 at even "
            f"odds) | {share['species']:.3f}") in md
    # the reliability plot's numbers, bin by bin, in the page: every specimen counted once per rank, each observed
    # share inside its 95 % interval, and a bin of few specimens with a wide one
    from biodiscover.workflows.evaluate import p_text, reliability_rows

    rows = reliability_rows(rep)
    page = out.with_suffix(".html").read_text()
    learned = {rank: rel for rank, rel in rep["reliability"].items() if "bins" in rel}  # the rest: a cut-off
    assert "species" in learned
    for rank, rel in learned.items():
        mine = [r for r in rows if r[0] == rank]
        assert sum(r[3] for r in mine) == rel["n"] > 0
        for _, lo, hi, n, p, observed, a, b, _outside in mine:
            assert lo <= p <= hi and a <= observed <= b
            assert f"<td>{rank}</td><td>{lo:g}–{hi:g}</td><td>{n}</td><td>{p_text(p)}</td>" in page
    widths = {r[3]: r[7] - r[6] for r in rows}
    assert widths[min(widths)] > widths[max(widths)]
    # the ECE stays the one of ten equal bins (issue 11's target is defined on it), whatever the plot's bins
    assert all(len(rel["bins"]) <= 10 and all(b["hi"] - b["lo"] == pytest.approx(0.1) for b in rel["bins"])
               for rel in learned.values())


def test_evaluate_counts_apart_the_wrong_names_whose_barcode_is_a_key_of_the_name_given(evaluated) -> None:
    """e32 review R10: 3 of 4 species named wrong at P >= 0.99 were 99.8-100 % identical to keys of the species they
    were named, test records in another species' BIN. Per learned rank, evaluate says how many it named above the
    level, how many of them were wrong, how many wrong their P(right) expected, and how many wrong sit at >= 99.5 % to
    a best key carrying the very name given; ``above_level`` decides each case as the docstring says."""
    from types import SimpleNamespace

    from biodiscover.workflows.evaluate import above_level

    rep = json.loads(evaluated.read_text())
    learned = [r for r, rel in rep["reliability"].items() if "bins" in rel]
    assert set(rep["above_level"]) == set(learned) and "species" in learned
    for rank, a in rep["above_level"].items():
        assert a["named"] >= a["wrong"] >= a["wrong_at_a_key_of_the_name"] >= 0 and a["named"] > 0
        assert 0 <= a["expected_wrong"] <= 0.02 * a["named"]  # named at P(right) >= 0.98 each
        assert (f"| {rank}: named at P(right) ≥ 0.98 / of them wrong / wrong expected from their P(right) / wrong but "
                f"≥ 99.5% identical to a key of the name given (the record's label or the species' DNA, not the "
                f"model) | {a['named']:,} / {a['wrong']:,} / {a['expected_wrong']:.1f} / "
                f"{a['wrong_at_a_key_of_the_name']:,} |") in evaluated.with_suffix(".md").read_text()

    lineage_of = {"K1": ("O", "F", None, "G", "G a"), "K2": ("O", "F", None, "G", "G b")}

    def named(species: str, p: float, identity: float, top: str, deepest: str | None = "species") -> SimpleNamespace:
        return SimpleNamespace(deepest_rank=deepest, labels={"genus": "G", "species": species},
                               confidence={"genus": 1.0, "species": p}, identity=identity, top_hit=top)

    truth = {"genus": "G", "species": "G b"}
    cases = [named("G a", 0.999, 1.0, "K1"),  # wrong, its barcode a key of the name given: counted apart
             named("G a", 0.99, 0.995, "K1"),  # at the identity itself: counted apart
             named("G a", 0.99, 0.994, "K1"),  # wrong, below the identity
             named("G a", 0.99, 1.0, "K2"),  # wrong, but its best key is of the true species
             named("G b", 0.985, 1.0, "K2"),  # right
             named("G a", 0.97, 1.0, "K1"),  # below the level: not named there
             named("G a", 0.999, 1.0, "K1", deepest="genus")]  # named to genus only
    got = above_level(cases, [truth] * len(cases), lineage_of, ["genus", "species"], 0.98)
    assert got["species"] == {"named": 5, "wrong": 4, "expected_wrong": pytest.approx(0.046),
                              "wrong_at_a_key_of_the_name": 2, "identity": 0.995}
    assert got["genus"] == {"named": 7, "wrong": 0, "expected_wrong": 0.0, "wrong_at_a_key_of_the_name": 0,
                            "identity": 0.995}


def test_the_reliability_plot_separates_the_bins_around_the_level_and_marks_it(evaluated) -> None:
    """F6 (ML review, 7 Dec): ten 0.1 bins put 94–98 % of the specimens in one point holding the level. The plot's
    bins are finer near 1 with the level an edge, one panel per rank, a line at the level, no line joining
    bins; read from the data the page embeds and from the figure's artists, not from pixels."""
    from biodiscover.workflows.evaluate import PLOT_EDGES, reliability_figure

    rep = json.loads(evaluated.read_text())
    level = rep["naming"]["level"]
    assert level == 0.98
    data = _page_data(evaluated.with_suffix(".html").read_text(), "reliability-plot")
    assert data["level"] == level
    assert data["edges"] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0]
    assert data["edges"] == sorted({*PLOT_EDGES, level})
    learned = [r for r, rel in rep["reliability"].items() if "bins" in rel]
    assert list(data["ranks"]) == learned
    for rank in learned:
        bins = data["ranks"][rank]
        assert sum(b["n"] for b in bins) == rep["reliability"][rank]["n"]
        for b in bins:
            assert [b["lo"], b["hi"]] in [data["edges"][i:i + 2] for i in range(len(data["edges"]) - 1)]
            assert b["lo"] <= b["mean_p"] <= b["hi"] and b["low"] <= b["observed"] <= b["high"]
    # the specimens above the level are their own points: none shares a bin with one below it
    assert all(not (b["lo"] < level < b["hi"]) for bins in data["ranks"].values() for b in bins)

    fig = reliability_figure(rep)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title() in learned}
    assert sorted(panels) == sorted(learned)  # one panel per rank
    for rank, ax in panels.items():
        at_level = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [level, level]]
        assert len(at_level) == 1
        # no line joins one bin to the next: every drawn line is a segment (diagonal, level) or markers only
        assert all(len(ln.get_xdata()) <= 2 or ln.get_linestyle() == "None" for ln in ax.get_lines())
        # every bin is a point, annotated with its specimens
        counts = {t.get_text() for t in ax.texts}
        assert {f"{b['n']}" for b in data["ranks"][rank]} <= counts


def test_the_reliability_plot_keeps_each_ranks_counts_under_it_and_its_labels_off_the_points(evaluated) -> None:
    """An ML engineer's review (L5): a band as tall as a tick label lay between each panel and its count
    histogram, the "level 0.98" label sat under the points near the level (then on the title, e31 F18), and the
    counts of all-wrong bins drawn at the bottom edge printed below the axis among the tick labels. Read from the
    drawn figure's geometry."""
    from biodiscover.workflows.evaluate import reliability_figure

    rep = json.loads(evaluated.read_text())
    # this bundle learned genus and species; the review's colliding panel was subfamily, the longest rank name:
    # genus's bins drawn again under it
    rep["reliability"] = {**rep["reliability"], "subfamily": rep["reliability"]["genus"]}
    learned = [r for r, rel in rep["reliability"].items() if "bins" in rel]
    assert len(learned) == 3
    fig = reliability_figure(rep)
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if ax.get_title() in learned]
    assert len(panels) == len(learned)
    for ax in panels:
        count = next(c for c in fig.axes if c is not ax and c.get_shared_x_axes().joined(ax, c))
        box, under = ax.get_position(), count.get_position()
        assert under.y1 <= box.y0 and box.y0 - under.y1 < 0.1 * box.height, (box, under)  # was 0.2
        (level,) = [t for t in ax.texts if t.get_text().startswith("level ")]
        assert level.get_position() == (rep["naming"]["level"], 1.0) and level.get_va() == "bottom"
        # above the panel, where no point is, clear of the hollow points on its top edge and of the panel's title
        # (e31 F18: "subfamily" and "level 0.98" drawn over each other)
        label, title = level.get_window_extent(), ax.title.get_window_extent()
        assert label.y0 >= ax.get_window_extent().y1 + 5 and not label.overlaps(title) and title.y0 >= label.y1
        for t in ax.texts:
            if t.get_text().isdigit() and hasattr(t, "xy") and t.xy[1] <= 0.0011:  # a count at the bottom edge
                assert t.get_va() == "bottom"


def test_the_reliability_plots_counts_neither_overprint_nor_leave_the_figure() -> None:
    """e32 review R12: neighbouring bins' counts printed over each other (family "148" on "240", subfamily
    "131"/"98"/"67"), the top-right "2612" was cut at the figure's edge, and two panels cut the title at both sides.
    The review's panels rebuilt as bins; read from the drawn figure's geometry."""
    from biodiscover.discovery.metrics import reliability
    from biodiscover.workflows.evaluate import plot_bins, reliability_figure

    def panel(spec: list[tuple[float, int, int]]) -> dict[str, Any]:
        p, y = [], []
        for prob, n, wrong in spec:
            p += [prob] * n
            y += [0] * wrong + [1] * (n - wrong)
        return {**reliability(p, y), "plot": plot_bins(p, y, 0.98)}

    fam = panel([(0.85, 93, 12), (0.93, 83, 7), (0.965, 148, 5), (0.985, 240, 5), (0.995, 400, 2), (0.9995, 2612, 0)])
    sub = panel([(0.93, 131, 8), (0.965, 98, 3), (0.985, 67, 1), (0.995, 300, 1), (0.9995, 2612, 0)])
    fig = reliability_figure({"naming": {"level": 0.98}, "reliability": {"family": fam, "subfamily": sub}})
    fig.canvas.draw()
    frame = fig.bbox

    def inside(box: Any) -> bool:
        return frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1

    assert inside(fig._suptitle.get_window_extent())
    shown = 0
    for ax in fig.axes:
        boxes = [(t.get_text(), t.get_window_extent()) for t in ax.texts if t.get_text().isdigit()]
        shown += len(boxes)
        assert all(inside(b) for _, b in boxes), [(t, b) for t, b in boxes if not inside(b)]
        assert not [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]
    assert shown == 11


def test_the_reliability_table_marks_a_bin_whose_prediction_lies_outside_its_interval(evaluated) -> None:
    """22 specimens at P(right) 0.75 all right (the ML review's family bin: Wilson 0.851–1.000) contradict their
    probability; 50 at 0.995 all right do not (0.929–1.000)."""
    from biodiscover.discovery.metrics import reliability
    from biodiscover.workflows.evaluate import plot_bins, reliability_html, reliability_rows

    rep = json.loads(evaluated.read_text())
    p, y = [0.75] * 22 + [0.995] * 50, [1] * 72
    rep["reliability"] = {"family": {**reliability(p, y), "plot": plot_bins(p, y, 0.98)}}
    rows = reliability_rows(rep)
    assert [(r[1], r[2], r[3], r[8]) for r in rows] == [(0.7, 0.8, 22, True), (0.99, 0.999, 50, False)]
    assert rows[0][6] == pytest.approx(0.8513, abs=1e-4)
    page = reliability_html(rep)
    assert ("<tr><td>family</td><td>0.7–0.8</td><td>22</td><td>0.750</td><td>1 (none wrong)</td><td>0.851–1.000</td>"
            "<td>0</td><td>5.5</td><td>outside</td></tr>") in page
    assert ("<tr><td>family</td><td>0.99–0.999</td><td>50</td><td>0.9950 (1 in 200 wrong)</td><td>1 (none wrong)</td>"
            "<td>0.929–1.000</td><td>0</td><td>0.3</td><td></td></tr>") in page


def test_the_reliability_table_tells_a_bin_of_1_in_5000_from_one_of_1_in_450(evaluated) -> None:
    """ML review M6: 6,325 specimens at a mean P(right) 0.99980 (1.3 wrong expected) with 14 wrong (observed
    0.99779) printed "1.000 | 0.998"; ECE over ten bins saw 0.002. Each bin gives its wrong count beside the count
    its mean P(right) expects, and P with the decimals its distance from 1 needs, that distance as "1 in N"."""
    from biodiscover.discovery.metrics import reliability
    from biodiscover.workflows.evaluate import plot_bins, reliability_html, reliability_plot_data

    rep = json.loads(evaluated.read_text())
    p, y = [0.9998] * 6325, [1] * 6311 + [0] * 14
    rep["reliability"] = {"species": {**reliability(p, y), "plot": plot_bins(p, y, 0.98)}}
    page = reliability_html(rep)
    assert ("<tr><td>species</td><td>0.999–1</td><td>6325</td><td>0.99980 (1 in 5,000 wrong)</td>"
            "<td>0.9978 (1 in 450 wrong)</td><td>0.9963–0.9987</td><td>14</td><td>1.3</td><td>outside</td></tr>"
            ) in page
    assert "<th>wrong</th><th>wrong expected (specimens × (1 − mean predicted))</th>" in page
    (top,) = reliability_plot_data(rep)["ranks"]["species"]
    assert top["wrong"] == 14 and top["wrong_expected"] == pytest.approx(1.265)


def _measured(model, known, novel, ref_taxa):
    """The forecast's figures counted by hand on triaged specimens: each taxon's share, then their mean."""
    from statistics import mean

    from biodiscover.storage.records import RANKS

    res = model.triage(known + novel)
    by: dict[str, dict[str, list[float]]] = {}
    for s, x in zip(known + novel, res):
        depth = RANKS.index(x.deepest_rank) if x.deepest_rank else -1
        truth = s.lineage()
        absent = next((r for r in RANKS if truth[r] and truth[r] not in ref_taxa[r]), None)
        if absent is None:
            by.setdefault("known_species_right", {}).setdefault(s.species, []).append(
                float(depth == 4 and x.labels["species"] == s.species))
            by.setdefault("known_species_wrong", {}).setdefault(s.species, []).append(
                float(depth == 4 and x.labels["species"] != s.species))
        else:
            by.setdefault(f"absent_{absent}_named", {}).setdefault(truth[absent], []).append(
                float(depth >= RANKS.index(absent)))
            if absent == "species":
                by.setdefault("absent_species_genus_right", {}).setdefault(s.species, []).append(
                    float(depth >= 3 and x.labels["genus"] == s.genus))
                by.setdefault("absent_species_genus_wrong", {}).setdefault(s.species, []).append(
                    float(depth >= 3 and x.labels["genus"] != s.genus))
    return {k: (mean(mean(v) for v in g.values()), sum(map(len, g.values())), len(g)) for k, g in by.items()}


def test_evaluate_sets_the_forecast_beside_what_it_measured(dataset, bundle, evaluated, tmp_path) -> None:
    """F12: report.json carried build-reference's forecast, but report.md / .html never set it beside the same
    figure measured on the evaluated specimens. Each measurable figure is measured as the forecast counts it
    (each taxon weighed equally), with the forecast's 95 % interval and a mark where the measurement is outside;
    the rest say "—" and why."""
    from biodiscover.discovery.engine import DiscoveryModel
    from biodiscover.discovery.metrics import wilson_interval
    from biodiscover.storage.bioscan import load_specimens
    from biodiscover.storage.records import RANKS

    model = DiscoveryModel.load(bundle)
    ref_taxa = {r: {lin[i] for lin in model.ref_lineages_ if lin[i]} for i, r in enumerate(RANKS)}
    specs = load_specimens(dataset, "test+test_unseen")
    known, novel = [s for s in specs if s.split == "test"], [s for s in specs if s.split == "test_unseen"]
    want = _measured(model, known, novel, ref_taxa)
    assert set(want) == {"known_species_right", "known_species_wrong", "absent_species_named",
                         "absent_species_genus_right", "absent_species_genus_wrong"}
    # test_unseen: new species of genera among the keys
    rep = json.loads(evaluated.read_text())
    measured, even = rep["naming"]["measured"], rep["naming"]["expected"]
    # ML review M2: the specimens were triaged at their own estimated shares, so the measurement is held to the
    # forecast at those shares (given first, with its interval and the verdict), the even-odds one in brackets
    expected = rep["naming"]["expected_at_share"]
    assert expected == json.loads(json.dumps(model.naming_.expected_at(rep["naming"]["absent_share"], 0.98)))
    assert even == json.loads(json.dumps(model.naming_.expected_["0.98"]))
    md = evaluated.with_suffix(".md").read_text()
    page = evaluated.with_suffix(".html").read_text()
    labels = {"known_species_right": "known species named to the right species",
              "known_species_wrong": "known species named to a wrong species",
              "absent_species_named": "absent species named to a species (over-classification)",
              "absent_species_genus_right": "absent species named to the right genus",
              "absent_species_genus_wrong": "absent species named to a wrong genus"}
    for key, (rate, n, groups) in want.items():
        assert (measured[key]["rate"], measured[key]["n"], measured[key]["groups"]) == (pytest.approx(rate), n,
                                                                                       groups)
        f = expected[key]
        taxa = f["taxa"]  # distinct taxa: a species simulated and met in calibration is one (ML review L1)
        assert taxa <= f["groups"] and measured[key]["taxa"] == groups
        lo, hi = wilson_interval(f["rate"] * taxa, taxa)
        m_lo, m_hi = wilson_interval(rate * groups, groups)
        mark = "" if round(lo, 3) <= round(rate, 3) <= round(hi, 3) else \
            f"; outside the forecast's 95 % interval ({'above' if rate > hi else 'below'})" + \
            (", but the two intervals overlap: too few taxa to tell" if m_lo <= hi and m_hi >= lo else "")
        # ML review L6: the known row says how many of the known split were set aside before triage (none here)
        aside = "; no test specimen set aside before triage" if key == "known_species_right" else ""
        row = (f"| forecast vs measured (per taxon): {labels[key]} | forecast at the specimens' estimated shares "
               f"{f['rate']:.3f} ({taxa} taxa; 95 %: {lo:.3f}–{hi:.3f}) (at even odds {even[key]['rate']:.3f}), "
               f"measured {rate:.3f} ({n} specimens of {groups} taxa; "
               f"95 %: {m_lo:.3f}–{m_hi:.3f}){mark}{aside} |")
        assert row in md, row
        assert row.split(" | ")[1].rstrip(" |") in page.replace("&#x27;", "'")
    # the test splits hold no absent genus, family or order: said, with the reason, not left out or shown as 0
    assert ("| forecast vs measured (per taxon): absent genera named to a genus | forecast at the specimens' "
            f"estimated shares {expected['absent_genus_named']['rate']:.3f}") in md
    assert f"(at even odds {even['absent_genus_named']['rate']:.3f}), measured — (no evaluated specimen's" in md
    assert "measured — (no evaluated specimen's genus is absent from the reference keys, its family among them) |" \
        in md
    assert "absent_genus_named" not in measured


def test_evaluate_of_a_split_of_absent_genera_says_n_a_for_its_1nn_genus_accuracy(dataset, bundle, tmp_path) -> None:
    """F12: "1-NN genus accuracy on novel split 0.000 / 0.000" was printed where the split's genera are absent
    from the keys (0 by construction). other_heldout holds genera of no split; absent genera are then measured."""
    from biodiscover.discovery.engine import DiscoveryModel
    from biodiscover.storage.bioscan import load_specimens
    from biodiscover.storage.records import RANKS

    out = tmp_path / "heldout.json"
    assert main(["evaluate", "--data", str(dataset), "--model", str(bundle), "--out", str(out),
                 "--novel-split", "other_heldout", "--no-cluster", "-q"]) == 0
    rep = json.loads(out.read_text())
    assert rep["bioscan_1nn"]["genus_accuracy_on_novel_split_micro"] is None
    assert rep["bioscan_1nn"]["genus_accuracy_on_novel_split_macro"] is None
    md = out.with_suffix(".md").read_text()
    assert ("| top-hit (1-NN) label accuracy on the novel split's genera, whatever the level (per specimen / per "
            "genus) | n/a: no other_heldout specimen's genus is among "
            "the reference keys |") in md
    model = DiscoveryModel.load(bundle)
    ref_taxa = {r: {lin[i] for lin in model.ref_lineages_ if lin[i]} for i, r in enumerate(RANKS)}
    specs = load_specimens(dataset, "test+other_heldout")
    want = _measured(model, [s for s in specs if s.split == "test"], [s for s in specs if s.split == "other_heldout"],
                     ref_taxa)
    heldout = sum(s.split == "other_heldout" for s in specs)
    assert want["absent_genus_named"][1:] == (heldout, 2) and heldout > 0
    got = rep["naming"]["measured"]["absent_genus_named"]
    assert (got["rate"], got["n"], got["groups"]) == (pytest.approx(want["absent_genus_named"][0]), heldout, 2)
    assert f"measured {got['rate']:.3f} ({heldout} specimens of 2 taxa; 95 %: " in md


def test_triage_places_candidates_in_the_taxonomy_with_engine_evidence(dataset, bundle, tmp_path, capsys) -> None:
    """A collection without identifications: each candidate's parent gets its order/family from the engine's
    calls (the taxonomy graph is not flat), the evidence names the nearest known species, and the run's model
    fingerprint is the one `biodiscover run` records for the same bundle."""
    from biodiscover.discovery.engine import DiscoveryModel
    from biodiscover.storage.bundle import Bundle
    from biodiscover.storage.db import Database

    db = tmp_path / "placed.db"
    assert main(["triage", "--input", str(dataset / "collection.fasta"), "--model", str(bundle), "--db", str(db),
                 "--json", "-q"]) == 0
    summary = json.loads(capsys.readouterr().out)
    with Database.open(db) as database:
        page, total = database.proposal_queue(run_id=summary["run_id"], limit=500)
        assert total == summary["proposals"] > 0
        placed = [p for p in page if p.parent_rank in ("genus", "subfamily", "family")]
        assert placed
        for p in placed:
            detail = database.proposal_detail(p.id)
            ranks = [rank for rank, _ in detail.parent_lineage]
            assert ranks[0] == "order" and ranks[-1] == p.parent_rank, detail.parent_lineage
            near = detail.evidence.nearest_known
            assert near and near.species and near.identity is not None and 0.5 < near.identity <= 1.0
            assert detail.summary.nearest_species
            assert len(detail.evidence.nearest_known_distances) >= 1
        run = database.run_tables(summary["run_id"])["run"]
    fp = Bundle.open(bundle).fingerprint
    assert fp.startswith("sha256:") and run["model_fingerprint"] == fp
    # the engine's novelty decisions and its threshold are stored with the run (readers never assume 0.5)
    with Database.open(db) as database:
        assignments = database.assignments(summary["run_id"])
        assert int(assignments["is_novel"].sum()) == summary["novel"] > 0
        # the bundle's configured threshold, a number (seed 4909's engine.py:691, the property returning None,
        # survived a comparison of the property with itself)
        engine = DiscoveryModel.load(bundle)
        assert database.run_progress(summary["run_id"]).novelty_threshold == engine.novelty_threshold \
            == engine.config.novelty_threshold == 0.5
    # the clustering method and the learned cut it used are recorded with the run
    clustering = run["parameters"]["clustering"]
    assert clustering["method"] == "threshold_hdbscan" and clustering["learned_gap"]["threshold"] > 0


def test_accepted_candidates_are_references_for_the_next_run(dataset, bundle, tmp_path, capsys) -> None:
    """Review loop: accept a candidate, triage again → its members are named to the provisional species,
    not proposed again; --no-provisional restores the first run's behaviour."""
    from biodiscover.storage.db import Database

    db = tmp_path / "loop.db"
    argv = ["triage", "--input", str(dataset / "collection.fasta"), "--model", str(bundle), "--db", str(db),
            "--json", "-q"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    with Database.open(db) as database:
        page, _ = database.proposal_queue(run_id=first["run_id"], sort="size", descending=True)
        chosen = page[0]
        members = {m.processid for m in database.proposal_detail(chosen.id).members}
        database.accept(chosen.id, expected_version=chosen.version, reviewer="tester")
        name = database.proposal_detail(chosen.id).summary.provisional_name
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["provisional_keys"] == len(members)
    with Database.open(db) as database:
        table = database.assignments(second["run_id"]).set_index("processid")
        named = table.loc[sorted(members)]
        assert (named["deepest_rank"] == "species").all() and (named["deepest_taxon"] == name).all()
        assert (named["novelty"] < 0.5).all()
        page, _ = database.proposal_queue(run_id=second["run_id"], limit=500)
        reproposed = {m.processid for p in page for m in database.proposal_detail(p.id).members}
    assert not reproposed & members
    assert second["proposals"] == first["proposals"] - 1
    # run 2 named them from the reviewer's keys: its archive credits the reviewer, not the machine
    from fixtures.run_export import export_dwca

    core, history = export_dwca(db, second["run_id"], tmp_path)
    assert {core[p]["identifiedBy"] for p in members} == {"tester"}
    assert {core[p]["identificationVerificationStatus"] for p in members} == \
        {"identified by reviewer (provisional species)"}
    assert all(f"{p}:run{second['run_id']}" in history for p in members)
    assert main(argv[:-2] + ["--no-provisional", "--json", "-q"]) == 0
    third = json.loads(capsys.readouterr().out)
    assert third["provisional_keys"] == 0 and third["proposals"] == first["proposals"]


def test_triage_results_table_by_the_file_name(dataset, bundle, tmp_path, capsys) -> None:
    """`--results x.csv` is a CSV table a spreadsheet opens (it used to be JSON lines under a .csv name), the
    same results as the JSON lines, one row per specimen; an ending triage does not write is one `error:` line
    before any work, and nothing is written."""
    import csv

    from biodiscover.storage.records import RANKS
    from biodiscover.workflows.triage import RESULT_SCALARS, results_columns

    collection = str(dataset / "collection.fasta")
    jsonl, table = tmp_path / "r.jsonl", tmp_path / "r.csv"
    for out in (jsonl, table):
        assert main(["triage", "--input", collection, "--model", str(bundle), "--results", str(out), "-q"]) == 0
    capsys.readouterr()
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    with table.open(newline="") as fh:
        assert fh.readline().rstrip("\n").split(",") == results_columns()
        fh.seek(0)
        got = list(csv.DictReader(fh))
    assert [r["processid"] for r in got] == [r["processid"] for r in rows] and len(got) > 10
    for want, have in zip(rows, got, strict=True):
        assert have["deepest_rank"] == (want["deepest_rank"] or "")
        assert have["is_novel"] == str(want["is_novel"])
        assert have["label_genus"] == (want["labels"].get("genus") or "")
        assert float(have["confidence_genus"]) == want["confidence"]["genus"]
        assert (have["novelty"] == "") if want["novelty"] is None else float(have["novelty"]) == want["novelty"]
        # what the identity was measured on: the bases shared with the best key (none without a DNA call)
        assert int(have["overlap"]) == want["overlap"] and (want["overlap"] > 0) == ("dna" in want["modality"])
        # no name below the deepest rank named with confidence, as assignments.csv (one rule: a real plate's 120
        # specimens not named to species all had a label_species there, 88 of them wrong, e27 F8)
        below = RANKS[RANKS.index(want["deepest_rank"]) + 1:] if want["deepest_rank"] else RANKS
        assert [have[f"label_{rank}"] for rank in below] == [""] * len(below)
        assert not set(want["labels"]) & set(below) and have["confidence_species"] != ""
        # e33 F15: the nearest known species by name (top_hit is a process id), and no unexplained search score
        near = want["near"][0] if want["near"] else ["", None, None, None]
        assert have["nearest_species"] == near[0] and "top_similarity" not in have
        assert (have["nearest_identity"] == "") if near[3] is None else float(have["nearest_identity"]) == near[3]
    unnamed = [r for r in got if r["deepest_rank"] != "species"]
    assert unnamed and all(r["nearest_species"] for r in unnamed)  # each row says which species it came nearest
    assert sum(r["deepest_rank"] != "species" for r in rows) > 0
    # triage again into the table it wrote: its own file, replaced without --force
    assert main(["triage", "--input", collection, "--model", str(bundle), "--results", str(table), "-q"]) == 0
    capsys.readouterr()
    # and tables written before the overlap column, before the candidate's id and the nearest species (e33), are
    # triage's own too
    before_near = ["processid", "modality", "deepest_rank", "deepest_taxon", "novelty", "is_novel", "proposal_id",
                   "provisional_name", "identity", "overlap"]
    for older in [before_near, *(["processid", "modality", "deepest_rank", "deepest_label", "novelty", "is_novel",
                                  "candidate", "identity", *after] for after in (["overlap"], []))]:
        older = older + ["top_hit", "top_similarity", "reason"] + results_columns()[len(RESULT_SCALARS):]
        table.write_text(",".join(older) + "\n")
        assert main(["triage", "--input", collection, "--model", str(bundle), "--results", str(table), "-q"]) == 0
        capsys.readouterr()
    assert table.read_text().splitlines()[0].split(",") == results_columns()
    sheet = tmp_path / "r.xlsx"
    assert main(["triage", "--input", collection, "--model", str(bundle), "--results", str(sheet), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {sheet}: --results writes CSV (.csv), TSV (.tsv) or JSON lines (.jsonl), not '.xlsx'; "
                   "rename the file"]
    assert not sheet.exists()


def test_a_results_row_leaves_the_p_right_of_a_rank_its_lineage_lacks_empty(tmp_path) -> None:
    """e33 review F3: five Sciaridae rows printed confidence_subfamily 0.0 (the family has no subfamilies) beside
    a genus at 0.9998, read as a refusal. A rank the best key's lineage lacks has no P(right): an empty cell."""
    import csv

    from biodiscover.discovery.engine import TriageResult
    from biodiscover.storage.records import RANKS
    from biodiscover.workflows.triage import write_results

    lineage = dict(zip(RANKS, ["Diptera", "Sciaridae", None, "Bradysia", "Bradysia sp1"]))
    conf = {"order": 1.0, "family": 0.9999, "subfamily": 0.0, "genus": 0.9998, "species": 0.4}
    absent = {"order": 0.0, "family": 0.0, "subfamily": None, "genus": 0.0001, "species": 0.5}
    r = TriageResult("S1", "dna", lineage, conf, 0.97, "genus", "Bradysia", 0.5, True, "K1", 0.9, p_absent=absent)
    with write_results([r], tmp_path / "r.csv").open(newline="") as fh:
        (row,) = csv.DictReader(fh)
    assert [row[f"confidence_{rank}"] for rank in RANKS] == ["1.0", "0.9999", "", "0.9998", "0.4"]
    assert row["p_absent_subfamily"] == "" and row["label_genus"] == "Bradysia" and row["label_species"] == ""
    (line,) = write_results([r], tmp_path / "r.jsonl").read_text().splitlines()
    assert "subfamily" not in json.loads(line)["confidence"]


def test_triage_progress_says_each_stage_finished(dataset, bundle, tmp_path, capsys) -> None:
    """A reviewer of a real 5,300-specimen batch read "read: 0/1" and "ingest: 0/5289" and never a count after
    them, as if the step had stalled: each stage now says when it is done, in order."""
    code = main(["triage", "--input", str(dataset / "collection.fasta"), "--model", str(bundle),
                 "--db", str(tmp_path / "t.sqlite"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    n = json.loads(out)["specimens"] - json.loads(out)["quarantined"]  # the records read as specimens
    lines = [x for x in err.splitlines() if x.split(":")[0] in ("read", "ingest", "triage")]
    assert lines[:4] == ["read: 0/1", "read: 1/1", f"ingest: 0/{n}", f"ingest: {n}/{n}"], lines
    assert lines[-1] == f"triage: {n}/{n}", lines


def test_triage_names_the_first_quarantined_records_on_stderr(dataset, bundle, tmp_path, capsys) -> None:
    """Rows set aside: exit 0, and stderr names the first ten the way validate does (file:line: reason) as
    warning: lines (the triage succeeded without them; "error:" is the one-line form of a failure: e33 review
    F13), then how many more and where the report is."""
    source = (dataset / "collection.fasta").read_text()
    coll = tmp_path / "plate.fasta"
    coll.write_text(source + "".join(f">BADX{i:02d}|x\nACGT!!XX\n" for i in range(12)))
    code = main(["triage", "--input", str(coll), "--model", str(bundle), "--results", str(tmp_path / "r.jsonl"),
                 "-q"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = tmp_path / "plate.quarantine.csv"
    assert f"quarantine report: {report.absolute()}" in out
    lines = err.splitlines()
    assert len(lines) == 11 and all(x.startswith(f"warning: {coll}:") for x in lines[:10]), err
    assert "(processid 'BAD1')" in lines[0] and "(processid 'BADX00')" in lines[1]
    assert lines[10] == f"… and 3 more; see {report.absolute()}"


def test_a_truncated_gzip_collection_counts_the_records_it_held_not_its_missing_end(dataset, bundle, tmp_path,
                                                                                      capsys) -> None:
    """A .gz cut short: triage keeps the records read before the cut and says so once on stderr; the cut is a
    problem of the file, not a specimen, so it is neither among the specimens nor the records quarantined
    (the QA pass of the twenty-first session read "0 of 197 specimens (1 quarantined, ...)" for 196 rows)."""
    import gzip
    import json

    whole = gzip.compress((dataset / "collection.fasta").read_bytes())
    coll = tmp_path / "plate.fasta.gz"
    coll.write_bytes(whole[: len(whole) * 2 // 3])
    args = ["triage", "--input", str(coll), "--model", str(bundle), "--results", str(tmp_path / "r.jsonl"), "-q"]
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    read = sum(1 for _ in (tmp_path / "r.jsonl").open())
    assert 0 < read < (dataset / "collection.fasta").read_text().count(">")
    assert summary["specimens"] == read and summary["quarantined"] == 0, summary
    assert main([*args, "--force"]) == 0
    out, err = capsys.readouterr()
    assert f": {read} of {read} specimens triaged (0 quarantined" in out, out
    cut = [x for x in err.splitlines() if "gzip stream ends before its end marker" in x]
    assert len(cut) == 1 and cut[0].startswith(f"warning: {coll}:"), err  # the rows before it triaged: exit 0


def test_triage_says_which_of_its_countries_the_reference_holds_no_key_from(tmp_path, capsys) -> None:
    """Keys collected in Canada, a plate half from Canada and half from Costa Rica: the summary names Costa Rica and
    its specimens, since there a known species is met from another part of its range (the region folds' miss,
    what the review's ⚑ line shows per candidate); a plate wholly from Canada hears nothing of it."""
    import dataclasses

    world = {split: [dataclasses.replace(s, country="Canada") for s in specimens]
             for split, specimens in make_world(seed=7).items()}
    root = tmp_path / "ds"
    write_metadata(root, world, phylum="Arthropoda", **{"class": "Insecta"}, inferred_ranks=0)
    out = tmp_path / "bundle"
    assert main(["build-reference", "--data", str(root), "--out", str(out), "--keys", "train", "--quiet"]) == 0
    capsys.readouterr()
    plate = world["test"] + world["test_unseen"]
    away = {s.processid for s in plate[::2]}
    coll = tmp_path / "plate.csv"
    coll.write_text("processid,dna_barcode,country\n" + "".join(
        f"{s.processid},{s.dna_barcode},{'Costa Rica' if s.processid in away else 'Canada'}\n" for s in plate))
    args = ["triage", "--input", str(coll), "--model", str(out), "--results", str(tmp_path / "r.jsonl"), "-q"]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["countries_without_keys"] == {"Costa Rica": len(away)}
    assert main([*args, "--force"]) == 0
    said = [x for x in capsys.readouterr().out.splitlines() if x.startswith("collected where the reference")]
    assert said == [f"collected where the reference holds no key: Costa Rica {len(away):,} ({len(away):,} of "
                    f"{len(plate):,} specimens): a known species met there from another part of its range may be "
                    "left unnamed or proposed as new (the review's ⚑ line; filter `known=elsewhere`)"], said
    coll.write_text("processid,dna_barcode,country\n" + "".join(f"{s.processid},{s.dna_barcode},Canada\n"
                                                                  for s in plate))
    assert main([*args, "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["countries_without_keys"] == {}


def test_triage_of_a_header_only_file_points_at_no_report(bundle, tmp_path, capsys) -> None:
    coll = tmp_path / "empty.csv"
    coll.write_text("processid,dna_barcode\n")
    code = main(["triage", "--input", str(coll), "--model", str(bundle), "--results", str(tmp_path / "r.jsonl"),
                 "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == [
        f"error: {coll}: no specimen to triage (the collection holds no records)"], err
    assert not list(tmp_path.glob("*.quarantine.csv"))


def test_triage_chooses_the_clustering_method_and_records_it(dataset, bundle, tmp_path, capsys) -> None:
    """`--clustering` picks a candidate-species method by name and `--cluster-threshold` its cut; both are
    recorded with the run; an unknown method is one `error:` line before any work (no database made)."""
    from biodiscover.storage.db.database import Database

    collection = str(dataset / "collection.fasta")
    counts = {}
    for name, extra in (("default", []), ("threshold", ["--clustering", "threshold"]),
                        ("wide", ["--clustering", "threshold", "--cluster-threshold", "0.5"])):
        db = tmp_path / f"{name}.sqlite"
        assert main(["triage", "--input", collection, "--model", str(bundle), "--db", str(db), "--json", "-q",
                     *extra]) == 0
        summary = json.loads(capsys.readouterr().out)
        database = Database.open(db, readonly=True)
        try:
            recorded = database.run_progress(summary["run_id"]).parameters["clustering"]
        finally:
            database.close()
        counts[name] = summary["proposals"]
        assert recorded["method"] == ("threshold_hdbscan" if name == "default" else "threshold")
        assert recorded["distance_threshold"] == (0.5 if name == "wide" else None)
    assert counts["default"] > 1 and counts["threshold"] > 1
    # a 50 % cut joins every novel specimen of the collection's few genera into far fewer candidates
    assert counts["wide"] < counts["threshold"]
    assert main(["triage", "--input", collection, "--model", str(bundle), "--db", str(tmp_path / "x.sqlite"),
                 "--clustering", "nope", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --clustering nope: unknown clustering method 'nope'")
    assert not (tmp_path / "x.sqlite").exists()


@pytest.mark.parametrize("verb", [[], ["build-reference"], ["evaluate"], ["triage"], ["synth"], ["export"]])
def test_help_shows_no_value_for_flags_and_explains_quiet_and_seed(verb: list[str]) -> None:
    """An on/off flag takes no value: its help row shows none (typer wrote ``<bool>``); only click's own
    --help row keeps it. --quiet and build-reference's --seed say what they do."""
    from fixtures.inprocess import run_cli

    res = run_cli(*verb, "--help", env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert res.returncode == 0, res.stderr
    rows = res.stdout.splitlines()
    assert [r for r in rows if "<bool>" in r and "--help" not in r] == []
    if verb in (["build-reference"], ["evaluate"], ["triage"]):
        assert any("--quiet" in r and "No progress on stderr." in r for r in rows), res.stdout
    if verb == ["build-reference"]:
        assert any("--seed" in r and "Seed of the random choices" in r for r in rows), res.stdout


def test_every_option_name_is_whole_at_80_columns() -> None:
    """At an 80-column terminal rich shrank every help column alike, the option names too: build-reference showed
    ``--calibration-k…`` and train ``--pretrain-epoc…``, names the user cannot type (e31 review F20). Every visible
    option of every command (and of the db group's) is printed whole."""
    import typer

    from biodiscover.cli.main import app
    from fixtures.inprocess import run_cli

    def commands(command, path):  # the root, each verb and each verb of a group
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from commands(sub, [*path, name])

    seen = 0
    for path, command in commands(typer.main.get_command(app), []):
        res = run_cli(*path, "--help", env={"COLUMNS": "80", "NO_COLOR": "1"})
        assert res.returncode == 0, res.stderr
        assert max(len(row) for row in res.stdout.splitlines()) <= 80
        printed = set(re.findall(r"--[\w-]+", res.stdout))
        names = [o for p in command.params if not getattr(p, "hidden", False) for o in p.opts + p.secondary_opts
                 if o.startswith("--")]
        assert [n for n in names if n not in printed] == [], (path, res.stdout)
        seen += len(names)
    assert seen > 100


def test_results_file_names_each_specimens_candidate_species_as_the_database_does(dataset, bundle, tmp_path,
                                                                                  capsys) -> None:
    """The results file says which candidate species each specimen was grouped into — without --db it is the
    only place they are written — by the name the database, review screen and exports use."""
    import csv

    from biodiscover.storage.db.database import Database

    collection = str(dataset / "collection.fasta")
    table, db = tmp_path / "r.csv", tmp_path / "w.sqlite"
    assert main(["triage", "--input", collection, "--model", str(bundle), "--db", str(db), "--results", str(table),
                 "--json", "-q"]) == 0
    run = json.loads(capsys.readouterr().out)["run_id"]
    with table.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    named = {r["processid"]: r["provisional_name"] for r in rows if r["provisional_name"]}
    database = Database.open(db, readonly=True)
    try:
        tables = database.run_tables(run)
    finally:
        database.close()
    from biodiscover.workflows.export.tables import candidate_label

    name_of = {p["proposal_id"]: candidate_label(p) for p in tables["proposals"].to_dict("records")}
    expected = {m["processid"]: name_of[m["proposal_id"]] for m in tables["members"].to_dict("records")}
    assert len(expected) >= 5 and named == expected
    # only novel specimens are grouped
    assert all(r["is_novel"] == "True" for r in rows if r["provisional_name"])
    # without a database: the same groups, numbered in order
    alone = tmp_path / "alone.jsonl"
    assert main(["triage", "--input", collection, "--model", str(bundle), "--results", str(alone), "-q"]) == 0
    capsys.readouterr()
    groups = [r["provisional_name"] for r in map(json.loads, alone.read_text().splitlines())]
    assert {g for g in groups if g} and sorted({pid for pid, g in zip([json.loads(x)["processid"] for x in
                                                                       alone.read_text().splitlines()], groups)
                                                if g}) == sorted(expected)


@pytest.fixture(scope="module")
def triaged(dataset, bundle, tmp_path_factory) -> tuple[Path, Path]:
    """The collection triaged once into a database, with a CSV results file: (database, results); read only."""
    root = tmp_path_factory.mktemp("triaged")
    db, table = root / "w.sqlite", root / "r.csv"
    assert main(["triage", "-i", str(dataset / "collection.fasta"), "-m", str(bundle), "--db", str(db), "--results",
                 str(table), "-q"]) == 0
    return db, table


def test_results_and_the_csv_export_name_a_specimens_fields_alike(triaged, tmp_path, cli) -> None:
    """e32 review R2: ``triage --results`` said ``deepest_label`` and ``candidate`` (a name) where assignments.csv
    says ``deepest_taxon`` and ``proposal_id``/``provisional_name``, so joining the two meant mapping names to ids;
    and an id column with empty cells read as float in pandas (58.0 beside members.csv's 58). Every field the two
    files share has one name and the same value per specimen, and read as columns.txt says the ids are integers in
    every file."""
    import pandas as pd

    from biodiscover.workflows.export.csv import ID_READING

    (db, table), out = triaged, tmp_path / "ex"
    assert cli("export", "--db", str(db), "--run", "1", "-f", "csv", "-o", str(out)).returncode == 0
    assert ID_READING in (out / "columns.txt").read_text()
    read = dict(encoding="utf-8-sig", dtype_backend="numpy_nullable")  # as columns.txt says
    res = pd.read_csv(table, **read)  # type: ignore[call-overload]
    ex, members = (pd.read_csv(out / f, **read) for f in ("assignments.csv", "members.csv"))  # type: ignore
    own = {"nearest_species", "nearest_identity",  # the export has no such field
           *(c for c in res.columns if c.startswith("p_absent_"))}
    assert set(res.columns) - set(ex.columns) == own
    both = res.merge(ex, on="processid", suffixes=("", "_export"), validate="one_to_one")
    assert len(both) == len(res) == len(ex) and both["proposal_id"].notna().sum() >= 5
    for c in set(res.columns) - own - {"processid"}:
        if pd.api.types.is_float_dtype(both[c]):  # the export rounds to 4 decimals
            assert ((both[c] - both[f"{c}_export"]).abs().fillna(0) <= 5e-5).all(), c
        else:
            assert both[c].astype(object).where(both[c].notna(), None).tolist() == \
                both[f"{c}_export"].astype(object).where(both[f"{c}_export"].notna(), None).tolist(), c
    for frame in (res, ex, members):
        assert str(frame["proposal_id"].dtype) == "Int64"
    assert str(ex["proposed_in"].dtype) == "Int64"
    assert set(members["proposal_id"]) == set(res["proposal_id"].dropna())


def test_the_json_exports_evidence_gives_members_and_keys_as_records_not_keys(triaged, tmp_path, cli) -> None:
    """e32 review R14: the JSON export's evidence was keyed by processids (``member_hits``, ``alignment``),
    reference keys (``hit_barcodes``), countries: ``pd.json_normalize(doc["proposals"])`` gave 2,654 columns for 65
    candidates. Each such mapping is a list of records (format version 6): the candidates flatten to a column per
    field, no column is named after a specimen, and a per-member table is one ``json_normalize`` away."""
    import pandas as pd

    (db, _), out = triaged, tmp_path / "x.json"
    assert cli("export", "--db", str(db), "--run", "1", "-f", "json", "-o", str(out)).returncode == 0
    doc = json.loads(out.read_text())
    assert (doc["format"], doc["version"]) == ("biodiscover-run-export", 6)
    members = {m["processid"] for p in doc["proposals"] for m in p["members"]}
    assert len(doc["proposals"]) >= 2 and len(members) >= 5
    flat = pd.json_normalize(doc["proposals"])
    assert not [c for c in flat.columns if any(pid in c for pid in members)], flat.columns
    assert len(flat.columns) < 100, len(flat.columns)
    for p in doc["proposals"]:
        ev = p["evidence"]
        own = sorted(m["processid"] for m in p["members"])
        hits = pd.json_normalize(ev["member_hits"])
        assert sorted(hits["processid"]) == own and {"hit.species", "hit.processid", "hit.identity"} <= set(hits)
        assert sorted(a["processid"] for a in ev["alignment"]) == own
        assert {h["hit.processid"] for _, h in hits.iterrows()} == {k["processid"] for k in ev["hit_barcodes"]}
        assert all(set(c) == {"country", "specimens"} for c in ev["geography"]["countries"])
        assert all(set(m) == {"processid", "identity"} for s in ev["near_species"] for m in s["members"])


def test_ctrl_c_during_build_reference_says_no_bundle_was_written(dataset, tmp_path) -> None:
    """A real process: SIGINT while build-reference reads and fits → exit 130, no bundle, and the message
    says so (the general one, "finished steps are kept … go on from there", would be untrue here: the
    verb has no steps to keep, and a re-run starts over)."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "bundle"
    cmd = [sys.executable, "-c", "import sys; from biodiscover.cli.main import main; sys.exit(main(sys.argv[1:]))",
           "build-reference", "--data", str(dataset), "--out", str(out), "--keys", "train"]
    # SIGINT back to its default in the child (a suite started as a background job inherits it ignored)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    said = []
    for line in proc.stderr:  # Ctrl-C once it says it is reading: the fit (seconds) has not begun
        said.append(line)
        if "reading " in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(said) + err[-2000:]
    assert "interrupted: the bundle is written only once the engine is fitted" in err
    # re-running the same command builds it, into a bundle already there too (its encoders kept); the message
    # advised --force, which would have thrown a trained bundle's encoders away
    assert "re-run the same command to build it" in err and "--force" not in err
    assert "finished steps are kept" not in err
    assert not (out / "bundle.json").exists()


def test_triage_says_how_many_a_lower_level_would_name_and_only_the_levels_below_its_own(dataset, bundle, tmp_path,
                                                                                         capsys) -> None:
    args = ["triage", "--input", str(dataset / "collection.fasta"), "--model", str(bundle), "--results"]
    assert main([*args, str(tmp_path / "a.jsonl"), "--level", "0.95", "-q"]) == 0
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("named to species at a lower --level")]
    n = sum(json.loads(x)["deepest_rank"] == "species" for x in (tmp_path / "a.jsonl").read_text().splitlines())
    assert line.startswith("named to species at a lower --level (the same P(right)): 0.9 ") and line.endswith(
        f"(now {n})")
    assert main([*args, str(tmp_path / "b.jsonl"), "--level", "0.9", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["species_at_level"] == {}  # nothing under 0.9 is counted
    # at 0.999 the nearest choices, not 0.95 and 0.9 (an ML engineer's review, L3)
    assert main([*args, str(tmp_path / "c.jsonl"), "--level", "0.999", "--json", "-q"]) == 0
    assert list(json.loads(capsys.readouterr().out)["species_at_level"]) == ["0.995", "0.99"]


def test_a_barcode_written_as_rna_is_named_as_its_dna(dataset, bundle, tmp_path, capsys) -> None:
    """U is IUPAC for T (an RNA or cDNA-style export): validate accepted such a barcode, the k-mer search found
    its species, and the alignment then counted every U against the reference's T: 63 % identity, every
    specimen P(novel) ≈ 1 and proposed as a new species. The same barcodes with U for T are named the same."""
    lines = (dataset / "collection.fasta").read_text().splitlines()
    dna, rna = tmp_path / "dna.fasta", tmp_path / "rna.fasta"
    dna.write_text("\n".join(lines) + "\n")
    rna.write_text("\n".join(s if s.startswith(">") else s.replace("T", "U") for s in lines) + "\n")
    got = {}
    for path in (dna, rna):
        out = tmp_path / f"{path.stem}.jsonl"
        assert main(["triage", "--input", str(path), "--model", str(bundle), "--results", str(out), "-q"]) == 0
        got[path.stem] = [(r["processid"], r["deepest_rank"], r["labels"].get("species"), r["is_novel"])
                          for r in map(json.loads, out.read_text().splitlines())]
    capsys.readouterr()
    assert got["rna"] == got["dna"] and any(rank == "species" for _, rank, _, _ in got["dna"])


def test_help_documents_the_exit_codes(cli) -> None:
    """Scripts and schedulers act on the exit code: `biodiscover --help` lists what each one means, and `run`
    (whose 1 is 'a collection failed or had rows set aside', unlike triage's and ingest's 0) says its own."""
    import re

    def text(*args: str) -> str:
        res = cli(*args, "--help")
        assert res.returncode == 0, res.stderr
        return re.sub(r"[\s│]+", " ", res.stdout)

    root = text()
    for code, meaning in (("0", "success"), ("1", "set rows aside"), ("2", "error:"), ("130", "interrupted")):
        assert re.search(rf"\b{code}\b[^0-9]*{re.escape(meaning)}", root), (code, root)
    assert re.search(r"exit 0 .*exit 1 .*failed or had rows set aside.*exit 2", text("run"), re.I), text("run")


@pytest.mark.parametrize("args, said", [
    (["triage", "-i", "plate.csv"], r"missing option '--model' / '-m'\. \(see 'biodiscover triage --help'\)"),
    (["triage", "-i", "p.csv", "-m", "b", "--level", "high"],
     r"invalid value for '--level': .*number.* \(see 'biodiscover triage --help'\)"),
    (["tirage"], r"no such command 'tirage'\. Did you mean 'triage'\? \(see 'biodiscover --help'\)"),
    (["export", "--formt", "csv"], r"no such option: --formt.* \(see 'biodiscover export --help'\)"),
])
def test_a_usage_error_is_one_error_line_naming_the_option_and_where_help_is(cli, args, said) -> None:
    """A missing or malformed option, or a mistyped command, is bad input like any other: one ``error:`` line,
    exit 2 (what the exit-code epilog promises), not typer's six-line boxed "Error" panel with a usage line above
    it, which a wrapper script logging stderr line by line split into fragments."""
    import re

    res = cli(*args)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and re.fullmatch("error: " + said, lines[0]), res.stderr
    assert res.stdout == ""


def test_help_and_a_bare_command_still_show_the_help(cli) -> None:
    """The one-line usage errors leave help alone: ``--help`` exits 0 with the full text; the bare program name
    shows the help as before (exit 2: no command given)."""
    res = cli("triage", "--help")
    assert res.returncode == 0 and "--model" in res.stdout and res.stderr == ""
    bare = cli()
    assert bare.returncode == 2 and "Commands" in bare.stdout + bare.stderr and "error:" not in bare.stderr


def test_build_reference_on_a_fasta_says_what_it_needs_in_the_users_words(dataset, tmp_path, capsys) -> None:
    """A FASTA given as the reference was refused with '…; read it with read_collection' (a Python function no
    CLI user can call): the line says what a reference is and which verbs read a FASTA collection."""
    fasta = dataset / "collection.fasta"
    assert main(["build-reference", "--data", str(fasta), "--out", str(tmp_path / "b"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {fasta}: is FASTA, not BIOSCAN-5M metadata"), err
    assert "read_collection" not in err[0] and "validate, ingest and triage" in err[0], err
    assert not (tmp_path / "b").exists()


def test_photographs_a_dna_only_bundle_cannot_name_are_said_not_silently_left(bundle, tmp_path, capsys,
                                                                             caplog) -> None:
    """Photographed specimens without a barcode, triaged with a DNA-only bundle (build-reference without
    `train`): '3 of 3 … without a usable barcode, evidence: none', exit 0, and nothing said about the photos.
    The run still goes on (a plate may be mostly barcoded), but stderr says why those specimens were not
    named and what bundle would name them."""
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    for pid in ("PH1", "PH2", "PH3"):
        Image.new("RGB", (32, 32), (120, 90, 40)).save(photos / f"{pid}.jpg")
    plate = tmp_path / "plate.csv"
    plate.write_text("processid,dna_barcode\nPH1,\nPH2,\nPH3,\n")
    code = main(["triage", "--input", str(plate), "--images", str(photos), "--model", str(bundle),
                 "--db", str(tmp_path / "lab.sqlite"), "-q"])
    assert code == 0, capsys.readouterr().err
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]  # stderr, through the root logger
    assert any("3 specimens have a photograph but no usable barcode" in m and "no image classifier" in m
               and "biodiscover train" in m for m in said), said


@pytest.mark.parametrize("calibrated", [False, True])
def test_a_photograph_only_specimen_is_named_at_the_level_by_its_calibrated_p_right_in_results(
        bundle, tmp_path, capsys, monkeypatch, calibrated) -> None:
    """e35 week-2 review F5: photograph-only specimens were named to species at image scores 0.657 and 0.821
    (level 0.98), the results' reason empty, nothing anywhere saying that the image classifier's own thresholds
    named them. Triage with the bundle's image classifier (its calls fixed here, as ``predict`` returns them).
    With its calibrated map (``p_right_``), the specimen is named at the run's level by the P(right) the map reads
    from each score: to genus (0.984 at 0.95), not to species (0.60); the results file holds that P(right) and the
    reason says it and the score. From a bundle without the map, named at the thresholds: the reason gives the
    threshold and the run's level, and the summary's evidence line says it."""
    import csv

    from PIL import Image

    from biodiscover.discovery.jsonmodels import JsonIsotonic
    from biodiscover.discovery.multimodal import ModalityCall
    from biodiscover.storage.records import RANKS
    from biodiscover.workflows import triage

    lineage = dict(zip(RANKS, ["Ord", "Fam0", None, "Gen0", "Gen0 sp0"]))
    scores = {"order": 0.88, "family": 0.81, "subfamily": 0.0, "genus": 0.78, "species": 0.657}
    # calibration: 20 photographs scoring 0.4 all wrong, 60 scoring 0.75 all right (61/62); species: 2 of 3 at 0.6
    above = JsonIsotonic().fit([0.4] * 20 + [0.75] * 60, [0] * 20 + [1] * 60)
    species = JsonIsotonic().fit([0.4] * 20 + [0.6] * 3, [0] * 20 + [1, 1, 0])

    class Photos:  # the image classifier as triage uses it: per-rank thresholds and one call per photograph
        thresholds_ = {**{r: 0.5 for r in RANKS}, "species": 0.5356}
        p_right_ = {**{r: above for r in RANKS}, "species": species} if calibrated else None

        def predict(self, specimens: Any, encoders: Any) -> list[ModalityCall]:
            return [ModalityCall(s.processid, "image", dict(lineage), dict(scores), "species", "Gen0 sp0")
                    for s in specimens]

    monkeypatch.setattr(triage.ImageModel, "load", classmethod(lambda cls, b: cls(Photos(), None)))
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (32, 32), (120, 90, 40)).save(photos / "PH1.jpg")
    plate = tmp_path / "plate.csv"
    plate.write_text("processid,dna_barcode\nPH1,\n")
    results = tmp_path / "results.csv"
    code = main(["triage", "--input", str(plate), "--images", str(photos), "--model", str(bundle), "--level", "0.95",
                 "--db", str(tmp_path / "lab.sqlite"), "--results", str(results), "-q"])
    out = capsys.readouterr().out
    assert code == 0
    row = next(csv.DictReader(results.open()))
    if calibrated:
        assert (row["modality"], row["deepest_rank"]) == ("image", "genus")
        assert (float(row["confidence_genus"]), float(row["confidence_species"])) == pytest.approx((61 / 62, 0.6))
        assert row["reason"] == ("photograph only: genus Gen0 P(right) 0.984 (calibrated from the image score 0.78) "
                                 "passes the level 0.95; species Gen0 sp0 P(right) 0.60 (calibrated from the image "
                                 "score 0.66) below the level 0.95")
        assert "evidence: image 1" in out.splitlines(), out
        return
    assert (row["modality"], row["deepest_rank"], row["confidence_species"]) == ("image", "species", "0.657")
    assert row["reason"] == ("photograph only: species Gen0 sp0 named at the image classifier's threshold 0.54 "
                             "(score 0.66), not at the level 0.95: image scores are not P(right) in a bundle built "
                             "before they were calibrated (build-reference names at the level)")
    assert ("evidence: image 1 (1 named at the image classifier's own thresholds, not the level: the bundle "
            "predates their calibration; see each reason)") in out.splitlines(), out


@pytest.mark.parametrize("step", ["printing", "counting"])
def test_ctrl_c_after_the_run_is_stored_says_it_completed_not_interrupted(dataset, bundle, tmp_path, capsys,
                                                                          monkeypatch, step) -> None:
    """QA: Ctrl-C while triage printed its summary (the run already marked completed in the database) said
    "interrupted: … re-run the same command to go on", and a re-run triages the collection again as a new run.
    The database says completed, and so does the message, with exit 130 as for any Ctrl-C; the same when Ctrl-C
    lands while the summary's counts are made, after the run was stored."""
    import typer

    from biodiscover.storage.db import Database
    from biodiscover.workflows import triage

    if step == "printing":
        echo = typer.echo

        def ctrl_c_at_the_summary(message: object = None, *args: object, **kwargs: object) -> None:
            if str(message).startswith("triage run "):
                raise KeyboardInterrupt
            echo(message, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(typer, "echo", ctrl_c_at_the_summary)
    else:
        def ctrl_c(*args: object, **kwargs: object) -> dict[str, int]:
            raise KeyboardInterrupt

        monkeypatch.setattr(triage, "countries_without_keys", ctrl_c)
    db = tmp_path / "lab.sqlite"
    code = main(["triage", "--input", str(dataset / "collection.fasta"), "--model", str(bundle), "--db", str(db),
                 "-q"])
    err = capsys.readouterr().err
    with Database.open(db) as handle:
        run = handle.latest_run("triage")
    assert run is not None and run.status == "completed"
    assert code == 130
    assert "interrupted" not in err and "re-run the same command" not in err, err
    assert f"triage run {run.id} had completed and is stored in {db}" in err, err
    assert f"biodiscover export --db {db} --run {run.id}" in err


def test_the_triage_summary_says_the_keys_are_decided_candidates_members(capsys) -> None:
    """The keys added from the database are the members of every candidate a reviewer accepted or assigned (a real
    US batch: "328 members of accepted provisional species" counted 145 assigned to known or described species)."""
    from biodiscover.cli.discovery import _say_triaged
    from biodiscover.workflows.triage import TriageSummary

    _say_triaged(TriageSummary(run_id=2, collection="plate", specimens=10, quarantined=0, triaged=10,
                               no_usable_barcode=0, named_to={"species": 10}, novel=0, proposals=0,
                               provisional_keys=328), as_json=False)
    out = capsys.readouterr().out
    assert "references: + 328 members of candidates reviewers accepted or assigned\n" in out
    assert "provisional" not in out


def test_the_triage_summary_says_how_many_specimens_are_in_no_order_of_the_reference(capsys) -> None:
    """e33 review F5: on a moth-and-fly reference 461 of 1,496 specimens (447 of them beetles) were named nothing
    because no order lay within the order cut-off, and the summary said nothing of them. It says how many, with
    the cut-off as every other output words it; a run where every specimen was placed says nothing."""
    from biodiscover.cli.discovery import _say_triaged
    from biodiscover.workflows.triage import TriageSummary

    base: dict[str, Any] = dict(run_id=2, collection="plate", specimens=1500, quarantined=4, triaged=1496,
                                no_usable_barcode=0, named_to={"species": 724, "unnamed": 461}, novel=741,
                                proposals=283)
    _say_triaged(TriageSummary(**base, unplaced=461, unplaced_rank="order",
                               unplaced_cutoff="the order cut-off 87.4%"), as_json=False)
    # e36 season review F4: "perhaps orders the reference lacks" every week of a fly-and-beetle season that held no
    # other order: those were mostly absent genera and species of its own orders, as far from every key
    assert ("\nin no order of the reference: 461 of 1,496 specimens, far from every key (none within the order "
            "cut-off 87.4%) or with the nearest orders in doubt (each one's reason says which): orders the reference "
            "lacks, or distant families or genera of its own orders\n" in capsys.readouterr().out)
    for none in (dict(unplaced=0, unplaced_rank="order"), dict(unplaced=3)):  # none; every rank learned
        _say_triaged(TriageSummary(**base, **none), as_json=False)  # type: ignore[arg-type]
        assert "in no " not in capsys.readouterr().out


def test_the_triage_summary_says_one_barcode_named_nothing_in_the_singular(capsys) -> None:
    """e36 season review F10: a week with one unrelated read printed "1 barcode triaged and named nothing for what
    they are". One is "it", its reason; two are "they", each one's; one chimeric read is sequenced again as "it"."""
    from biodiscover.cli.discovery import _say_triaged
    from biodiscover.workflows.triage import TriageSummary

    base: dict[str, Any] = dict(run_id=2, collection="plate", specimens=198, quarantined=0, triaged=198,
                                no_usable_barcode=0, named_to={"species": 146}, novel=48, proposals=26)
    said = {}
    for n, kinds in enumerate((dict(unrelated=1), dict(chimeric=1), dict(chimeric=1, unrelated=1), dict(chimeric=2))):
        _say_triaged(TriageSummary(**base, **kinds), as_json=False)  # type: ignore[arg-type]
        said[n] = [line for line in capsys.readouterr().out.splitlines() if "named nothing" in line]
    assert said[0] == ["1 barcode triaged and named nothing for what it is: 1 unrelated to every reference key (its "
                       "reason says why)"]
    assert said[1] == ["1 barcode triaged and named nothing for what it is: 1 chimeric (two specimens' DNA in one "
                       "read: sequence it again) (its reason says why)"]
    assert said[2] == ["2 barcodes triaged and named nothing for what they are: 1 chimeric (two specimens' DNA in one "
                       "read: sequence it again), 1 unrelated to every reference key (each result's reason says why)"]
    assert said[3] == ["2 barcodes triaged and named nothing for what they are: 2 chimeric (two specimens' DNA in one "
                       "read: sequence them again) (each result's reason says why)"]


def test_triage_says_every_advisory_run_says_in_the_same_words(dataset, bundle, cli, capsys, tmp_path) -> None:
    """One list (``TriageSummary.advisories``) decides what a triage advises: ``run`` prints it under its table and
    ``triage`` after its counts, as one block in its order. e33: ``triage`` printed the lines one by one beside that
    list, so a line added to the list for ``run`` did not reach ``triage``; here a summary with one more advisory is
    printed with it. A real triage's advisories (several: the share, the forecast, the lower levels) all appear."""
    from biodiscover.cli.discovery import _say_triaged
    from biodiscover.workflows.triage import TriageSummary

    args = ("triage", "-i", str(dataset / "collection.fasta"), "-m", str(bundle), "--no-cluster", "-q", "--results",
            str(tmp_path / "results.jsonl"))
    got = cli(*args, "--json")
    assert got.returncode == 0, got.stderr
    said = TriageSummary(**json.loads(got.stdout)).advisories()
    out = cli(*args).stdout.splitlines()
    assert len(said) >= 3, said
    assert out[out.index(said[0]):out.index(said[0]) + len(said)] == said, out

    class WithANewOne(TriageSummary):
        def advisories(self) -> list[str]:
            return [*super().advisories(), "a line added for run"]

    every: dict[str, Any] = dict(
        chimeric=2, unrelated=1, provisional_keys=3, absent_share={"species": 0.3}, absent_share_over=50,
        absent_share_weight=96.0, absent_share_mode="season", season_runs=[1], season_specimens=40,
        season_even_odds=[{"run": 1, "collection": "w1", "input": "w1.csv", "model": "m", "db": "l.sqlite"}],
        forecast_level=0.98, species_at_level={"0.95": 12}, countries_without_keys={"Peru": 4},
        unplaced=7, unplaced_rank="order", unplaced_cutoff="the order cut-off 87.4%",
        moved=["P1 was in collection w1 with another barcode: stored as a new version in w2 (the old one kept, no "
               "longer current)"])
    summary = WithANewOne(run_id=2, collection="w2", specimens=50, quarantined=0, triaged=50, no_usable_barcode=0,
                          named_to={"species": 10}, novel=4, proposals=1, **every)
    assert len(summary.advisories()) == 10  # every advisory there is, and the new one
    capsys.readouterr()
    _say_triaged(summary, as_json=False)
    out = capsys.readouterr().out.splitlines()
    first = out.index(summary.advisories()[0])
    assert out[first:first + 10] == summary.advisories(), out
    assert out[first - 1] == "novel: 4; candidate species: 1"  # the counts first, then what to know reading them


def test_triage_prints_the_forecast_at_the_collections_own_shares(capsys) -> None:
    """ML review M2: triage printed the collection's estimated share of absent taxa but not what it implies, so
    "absent species named to the right genus" measured 0.496 against a printed forecast of 0.351, and no figure a
    user could check. The line after the share gives the four figures at the collection's shares, the even-odds
    ones (build-reference's) in brackets; a bundle built before the simulated queries were kept says so; a
    collection read at even odds has no such line."""
    from biodiscover.cli.discovery import _say_triaged
    from biodiscover.workflows.triage import TriageSummary

    base = dict(run_id=2, collection="plate", specimens=96, quarantined=0, triaged=96, no_usable_barcode=0,
                named_to={"species": 10}, novel=0, proposals=0, absent_share={"genus": 0.14, "species": 0.34},
                absent_share_over=96, absent_share_weight=96.0, forecast_level=0.98)
    at = {"known_species_right": 0.9612, "absent_species_named": 0.012, "absent_species_genus_right": 0.4801,
          "absent_genus_named": 0.02}
    even = {"known_species_right": 0.96, "absent_species_named": 0.014, "absent_species_genus_right": 0.351,
            "absent_genus_named": 0.015}
    _say_triaged(TriageSummary(**base, forecast_at_share=at, forecast_even_odds=even), as_json=False)
    lines = capsys.readouterr().out.splitlines()
    share = next(i for i, line in enumerate(lines) if line.startswith("absent from the reference"))
    assert lines[share + 1] == (
        "forecast at this collection's estimated shares (level 0.98; at even odds in brackets): known species named "
        "right 0.961 (0.960), absent species named to a species 0.012 (0.014), absent species named to the right genus "
        "0.480 (0.351), absent genera named to a genus 0.020 (0.015)")
    _say_triaged(TriageSummary(**base), as_json=False)
    assert ("forecast at this collection's estimated shares: not available (the bundle predates the simulated "
            "queries it is drawn from; rebuild it with `biodiscover build-reference`)\n") in capsys.readouterr().out
    _say_triaged(TriageSummary(**{**base, "absent_share": {}}), as_json=False)
    assert "forecast at" not in capsys.readouterr().out


def test_a_bundle_built_before_the_simulated_queries_were_kept_says_its_forecast_at_shares_is_not_available(
        dataset, bundle, evaluated, tmp_path, capsys) -> None:
    """An older bundle (no ``naming_simulation`` table and arrays) still triages; the line after the share says the
    forecast at the collection's shares is not available and how to get it, and evaluate's table says so above its
    even-odds rows."""
    import shutil

    from biodiscover.discovery.engine import SIMULATION_TABLE
    from biodiscover.storage.bundle import Bundle
    from biodiscover.workflows.evaluate import markdown

    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    for kind, name in (("tables", SIMULATION_TABLE), ("arrays", f"{SIMULATION_TABLE}_codes"),
                       ("arrays", f"{SIMULATION_TABLE}_values")):
        assert Bundle.open(old).remove(kind, name)
    capsys.readouterr()
    assert main(["triage", "--input", str(dataset / "collection.fasta"), "--model", str(old), "--no-cluster",
                 "--results", str(tmp_path / "results.csv")]) == 0
    out = capsys.readouterr().out
    assert ("forecast at this collection's estimated shares: not available (the bundle predates the simulated "
            "queries it is drawn from; rebuild it with `biodiscover build-reference`)\n") in out
    rep = json.loads(evaluated.read_text())
    rep["naming"]["expected_at_share"] = None
    md = markdown(rep)
    assert "| forecast at the specimens' estimated shares | not available: the bundle predates the simulated " in md
    assert re.search(r"\| forecast vs measured \(per taxon\): known species named to the right species \| forecast "
                     r"\d\.\d{3} \(", md), md


def test_the_absent_share_line_says_what_the_estimate_rests_on(capsys) -> None:
    """A reviewer read "order 26 %" on a 96-well plate of known species (mostly the 96 pseudo-specimens at even
    odds) and "family 36 %" on a plate 79 % of other orders (those the cut-off refused do not count), each as a fact
    about the plate. The line says over how many specimens, against how many pseudo-specimens, and when the prior
    outweighs the plate."""
    from biodiscover.cli.discovery import _say_triaged
    from biodiscover.workflows.triage import TriageSummary

    base = dict(run_id=2, collection="plate", specimens=96, quarantined=0, triaged=96, no_usable_barcode=0,
                named_to={"species": 10}, novel=0, proposals=0, absent_share={"family": 0.26, "species": 0.28})
    _say_triaged(TriageSummary(**base, absent_share_over=62, absent_share_weight=96.0), as_json=False)
    out = capsys.readouterr().out
    assert ("absent from the reference, this collection's estimated share (what its P(absent) assumes; over the 62 "
            "specimens a learned rank placed, weighed against 96 pseudo-specimens at even odds): family 26%, species "
            "28% — mostly the prior: 62 specimens weigh less than the 96 pseudo-specimens; triage a whole plate or "
            "batch as one collection\n") in out, out
    _say_triaged(TriageSummary(**base, absent_share_over=1000, absent_share_weight=96.0), as_json=False)
    out = capsys.readouterr().out
    assert "over the 1000 specimens a learned rank placed" in out and "mostly the prior" not in out, out
    _say_triaged(TriageSummary(**{**base, "absent_share": {}}), as_json=False)
    assert "estimated share" not in capsys.readouterr().out  # even odds: nothing estimated
    # an ML engineer's review (L4): a plate with no absent order read "order 6 %", the 96 pseudo-specimens' pull;
    # where the plate's own specimens read otherwise, that is said beside it
    _say_triaged(TriageSummary(**base, absent_share_over=894, absent_share_weight=96.0,
                               absent_share_own={"family": 0.0001, "species": 0.281}), as_json=False)
    assert "family 26% (its specimens alone 0%), species 28%" in capsys.readouterr().out


def test_db_check_names_a_triage_that_failed_before_storing_and_drop_run_removes_only_it(dataset, bundle, tmp_path,
                                                                                         cli, monkeypatch) -> None:
    """A triage stopped in its first seconds (Ctrl-C before any result was stored) left a run record "failed" with no
    rows, and `db check` said "ok" (a weekly batch's reviewer found it in the run list). It is now a warning (exit 0,
    as an unfinished ingest is: the file is whole) naming the run, its collection and input, why it stopped, and the
    two ways out; `--json` carries the same line. `db drop-run` removes only such a run, after asking and after a
    backup; a completed run is refused. A later completed triage of the same collection ends the warning."""
    from biodiscover.storage.db import Database
    from biodiscover.storage.db.integrity import list_backups
    from biodiscover.workflows import triage

    db = tmp_path / "week.sqlite"
    collection = dataset / "collection.fasta"
    args = ("triage", "--input", str(collection), "--model", str(bundle), "--db", str(db), "-q")
    assert cli(*args).returncode == 0  # run 1: completed
    real = triage.triage_specimens

    def ctrl_c(*a: object, **k: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(triage, "triage_specimens", ctrl_c)
    assert cli(*args, "--again").returncode == 130  # run 2: stopped before it stored anything
    monkeypatch.setattr(triage, "triage_specimens", real)
    with Database.open(db) as handle:
        failed = handle.latest_run("triage")
        # interrupted (Ctrl-C), as `run` marks the same stop, not "failed"
        assert failed is not None and failed.status == "interrupted" and len(handle.assignments(failed.id)) == 0
        completed = failed.id - 1
    line = (f"triage run {failed.id} (collection collection, input {collection}, started {failed.started_at}) "
            f"is interrupted: triage interrupted before its results were stored; it holds no specimens: re-run the "
            f"same command to triage the collection, or `biodiscover db drop-run --db {db} --run {failed.id}` to "
            "remove it")
    res = cli("db", "check", "--db", str(db))
    assert res.returncode == 0, res.stdout
    assert f"  warning: {line}" in res.stdout.splitlines(), res.stdout
    payload = json.loads(cli("db", "check", "--db", str(db), "--json").stdout)
    assert payload["ok"] and payload["warnings"] == [line]

    refused = cli("db", "drop-run", "--db", str(db), "--run", str(completed), "--yes")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"error: run {completed} is a completed triage run, not a failed triage run "
                                      "that holds no specimens: only such a run is removed (see `biodiscover db "
                                      "check`)")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("n\n"))
    no = cli("db", "drop-run", "--db", str(db), "--run", str(failed.id))
    assert no.returncode == 1 and no.stderr.strip().endswith("aborted: nothing was done"), no.stderr  # answered no
    with Database.open(db) as handle:
        assert [r.id for r in handle.empty_failed_runs()] == [failed.id]
    before = len(list_backups(db))
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("y\n"))
    dropped = cli("db", "drop-run", "--db", str(db), "--run", str(failed.id))
    assert dropped.returncode == 0, dropped.stderr
    assert len(list_backups(db)) == before + 1 and "pre-drop-run" in dropped.stdout
    after = json.loads(cli("db", "check", "--db", str(db), "--json").stdout)
    assert after["ok"] and after["warnings"] == [] and after["stats"]["runs"] == 1

    # stopped again, then re-run to the end: the collection was triaged, the empty record is history, not a warning
    monkeypatch.setattr(triage, "triage_specimens", ctrl_c)
    assert cli(*args, "--again").returncode == 130
    monkeypatch.setattr(triage, "triage_specimens", real)
    assert len(json.loads(cli("db", "check", "--db", str(db), "--json").stdout)["warnings"]) == 1
    assert cli(*args, "--again").returncode == 0
    assert json.loads(cli("db", "check", "--db", str(db), "--json").stdout)["warnings"] == []
    # ... and it can still be removed (it holds nothing; an export of a range of runs stopped at it), while a run
    # that stored results is refused saying so
    from fixtures.db_views import runs

    with Database.open(db) as handle:
        redone = [r.id for r in runs(handle) if r.status == "interrupted"]
    assert len(redone) == 1
    assert cli("db", "drop-run", "--db", str(db), "--run", str(redone[0]), "--yes").returncode == 0
    assert json.loads(cli("db", "check", "--db", str(db), "--json").stdout)["stats"]["runs"] == 2


def test_weekly_plates_with_absent_share_season_are_pulled_toward_the_databases_other_plates(dataset, bundle,
                                                                                          tmp_path, capsys) -> None:
    """Season review F7: each week's plate read its own share of absent taxa, pulled toward even odds by 96
    pseudo-specimens — the smaller the week, the higher the share — so the same barcode at the same identity was
    named to species one week and to its genus the next. ``--absent-share season`` pulls a plate toward the share
    the database's other plates of this model read (each run records its own share and the specimens it rests on);
    a plate triaged again takes the other weeks', never its own earlier reading."""
    import shutil

    from biodiscover.storage.db import Database

    records = (dataset / "collection.fasta").read_text().split(">")[1:]
    good = [r for r in records if not r.startswith("BAD1")]
    week1, week2 = tmp_path / "week1.fasta", tmp_path / "week2.fasta"
    week1.write_text("".join(">" + r for k, r in enumerate(good) if k % 3))  # each week a mix of known and new
    week2.write_text("".join(">" + r for k, r in enumerate(good) if not k % 3))
    db = tmp_path / "season.sqlite"

    def triage(plate: Path, target: Path, *extra: str) -> dict:
        assert main(["triage", "-i", str(plate), "-m", str(bundle), "--db", str(target), "--json", "-q",
                     *extra]) == 0
        return json.loads(capsys.readouterr().out)

    first = triage(week1, db, "--absent-share", "season")  # nothing else in the database: even odds, and said so
    assert first["season_runs"] == [] and first["absent_share_mode"] == "season"
    with Database.open(db) as database:
        basis = database.run_progress(first["run_id"]).result["absent_share_basis"]
    # each learned rank: the plate's own share without pseudo-specimens, over the specimens it placed
    assert set(basis) == set(first["absent_share"]) and {"genus", "species"} <= set(basis)
    for rank, (own, n) in basis.items():
        assert 0 < n <= first["absent_share_over"] and 0 < own < 1
        assert first["absent_share"][rank] == pytest.approx((own * n + 48.0) / (n + 96), abs=0.02)  # one fixed point
    shutil.copy(db, tmp_path / "plate.sqlite")
    alone = triage(week2, tmp_path / "plate.sqlite")
    season = triage(week2, db, "--absent-share", "season")
    assert alone["season_runs"] == season["season_runs"] == [first["run_id"]]
    with Database.open(db) as database:
        run = database.run_progress(season["run_id"])
    toward = run.parameters["absent_share_toward"]
    assert (run.parameters["absent_share"], run.parameters["absent_share_from"]) == ("season", [first["run_id"]])
    assert toward == {r: pytest.approx((own * n + 48.0) / (n + 96), abs=1e-6) for r, (own, n) in basis.items()}
    moved = [r for r in season["absent_share"] if abs(toward[r] - 0.5) > 0.05]
    assert {"genus", "species"} <= set(moved)
    for rank in moved:  # pulled toward week 1's share, away from where even odds put it
        assert (season["absent_share"][rank] - alone["absent_share"][rank]) * (toward[rank] - 0.5) > 0.005, rank

    # the line says what the pseudo-specimens held; a plate-mode week names the option and the other plates
    assert main(["triage", "-i", str(week2), "-m", str(bundle), "--db", str(tmp_path / "plate.sqlite"), "-q",
                 "--again"]) == 0
    said = capsys.readouterr().out
    assert ("weighed against 96 pseudo-specimens at even odds): " in said
            and f"`--absent-share season` weighs them at the share of this database's 1 other plate of this model "
                f"(run {first['run_id']}: " in said), said
    # week 2 said that week 1 was read at even odds, and how to read it at the season's share (e31 review F6: the
    # first week of a season was never read at it, and nothing said so)
    assert main(["triage", "-i", str(week2), "-m", str(bundle), "--db", str(db), "-q", "--absent-share", "season",
                 "--again"]) == 0
    said = capsys.readouterr().out
    hint = [line.strip() for line in said.splitlines() if "read at even odds, not at this season's share" in line]
    assert hint == [f"read at even odds, not at this season's share (no other plate of this model was in the "
                    f"database, or `--absent-share plate`): run {first['run_id']} (collection week1); re-read it so "
                    f"that a barcode is named alike week to week: biodiscover triage -i {week1} -m {bundle} "
                    f"--db {db} --collection week1 --absent-share season"], said
    assert main(["triage", "-i", str(week1), "-m", str(bundle), "--db", str(db), "-q",
                 "--absent-share", "season"]) == 0
    said = capsys.readouterr().out
    # week 1 again: the other plate is week 2's newest run, not week 1's own first reading
    assert (f"weighed against 96 pseudo-specimens at the share of this database's 1 other plate of this model "
            f"(run {season['run_id'] + 1}: ") in said, said
    assert "read at even odds, not at this season's share" not in said  # the week it names is this one
    assert main(["triage", "-i", str(week2), "-m", str(bundle), "--db", str(db), "-q", "--absent-share", "season",
                 "--again"]) == 0
    assert "read at even odds, not at this season's share" not in capsys.readouterr().out  # week 1 was re-read

    # refused before any work: no database to read a season from, or a mode that does not exist
    assert main(["triage", "-i", str(week1), "-m", str(bundle), "--results", str(tmp_path / "r.csv"),
                 "--absent-share", "season"]) == 2
    assert "error: --absent-share season reads the share of absent taxa from the database's other plates: give --db" \
        in capsys.readouterr().err
    assert main(["triage", "-i", str(week1), "-m", str(bundle), "--db", str(db), "--absent-share", "weekly"]) == 2
    assert "error: --absent-share 'weekly': one of plate, season" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_a_new_plate_with_an_earlier_plates_file_name_is_refused_and_both_plates_stay_in_the_season(
        dataset, bundle, tmp_path, capsys) -> None:
    """e31 review F15: labs reuse file names (week1.csv every year). A new plate whose file had an earlier plate's
    name joined that collection without a word, and the season pool, keyed on the collection's name, took the new
    plate's earlier "reading" to be the old plate: the old plate dropped out of every later share. triage now
    refuses a file sharing no specimen with the collection of its (default) name, naming it, its earlier input and
    --collection; the pool is keyed on the specimens a run read, so both plates count."""
    from fixtures.db_views import runs

    from biodiscover.storage.db import Database

    records = (dataset / "collection.fasta").read_text().split(">")[1:]
    good = [r for r in records if not r.startswith("BAD1")]
    week1, week2 = tmp_path / "week1.fasta", tmp_path / "week2.fasta"
    week1.write_text("".join(">" + r for k, r in enumerate(good) if k % 3))
    week2.write_text("".join(">" + r for k, r in enumerate(good) if not k % 3))
    (tmp_path / "y2027").mkdir()
    again = tmp_path / "y2027" / "week1.fasta"  # next year's week 1: other specimens, the same file name
    again.write_text("".join(">Y27" + r for k, r in enumerate(good) if k % 3))
    later = tmp_path / "week2b.fasta"
    later.write_text("".join(">Y28" + r for k, r in enumerate(good) if not k % 3))
    db = tmp_path / "season.sqlite"

    def triage(plate: Path, *extra: str, code: int = 0) -> dict:
        assert main(["triage", "-i", str(plate), "-m", str(bundle), "--db", str(db), "--json", "-q",
                     "--absent-share", "season", *extra]) == code
        out = capsys.readouterr()
        return json.loads(out.out) if code == 0 else {"err": out.err}

    held = len(week1.read_text().split(">")) - 1
    first, second = triage(week1), triage(week2)
    refused = triage(again, code=2)["err"]
    assert refused.strip() == (
        f"error: {again}: collection week1 already holds another plate ({held} specimens from {week1}) and this "
        "file shares none of its specimens: give --collection NAME to keep them apart (--collection week1 adds it to "
        "that collection)"), refused
    with Database.open(db) as database:
        assert sorted(r.id for r in runs(database)) == [first["run_id"], second["run_id"]]  # nothing stored
    joined = triage(again, "--collection", "week1")  # said so: it joins, and week 1's first plate still counts
    assert joined["season_runs"] == [first["run_id"], second["run_id"]]
    assert main(["triage", "-i", str(later), "-m", str(bundle), "--db", str(db), "-q", "--collection", "week1",
                 "--absent-share", "season"]) == 0
    said = capsys.readouterr().out
    assert (f"{later} joined collection week1, which held another plate ({2 * held} specimens from {week1}, {again}) "
            "sharing none of its specimens; a collection of its own keeps plates apart (triage --collection NAME, "
            "or a file of another name)") in said, said
    assert (f"the share of this database's 3 other plates of this model (runs {first['run_id']}, {second['run_id']}, "
            f"{joined['run_id']}: ") in said, said


def test_evaluate_takes_several_splits_and_refuses_a_split_the_data_lacks(dataset, bundle, tmp_path, capsys) -> None:
    """ML review M1: ``--novel-split test_unseen+other_heldout`` printed "triaging 399", evaluated none of them
    (n_novel_split 0) and exited 0. Both splits are read with the project's one split parser (as
    ``--keys train+val``); a split the data holds no specimen of is one ``error:`` line naming it and the splits
    the data holds."""
    import csv

    from biodiscover.storage.bioscan import load_specimens

    rows = list(csv.DictReader((dataset / "metadata" / "BIOSCAN_5M_Insect_Dataset_metadata.csv").open()))
    # ML review L6: one test specimen whose barcode is too short to search is set aside, and the report says so
    short = {**next(r for r in rows if r["split"] == "test"), "processid": "SHORT1"}
    short["dna_barcode"] = short["dna_barcode"][:150]
    data = tmp_path / "with_short.csv"
    with data.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows, short])
    out = tmp_path / "plus.json"
    assert main(["evaluate", "--data", str(data), "--model", str(bundle), "--out", str(out),
                 "--novel-split", "test_unseen+other_heldout", "--no-cluster", "-q"]) == 0
    rep = json.loads(out.read_text())
    specs = load_specimens(dataset, "test+test_unseen+other_heldout")
    assert rep["n_known_split"] == sum(s.split == "test" for s in specs) > 0
    assert rep["n_novel_split"] == sum(s.split in ("test_unseen", "other_heldout") for s in specs)
    assert sum(s.split == "other_heldout" for s in specs) > 0 and sum(s.split == "test_unseen" for s in specs) > 0
    # both kinds of absent taxa measured: new species of known genera, and new genera
    assert {"absent_species_named", "absent_genus_named"} <= set(rep["naming"]["measured"])
    assert rep["set_aside"] == {"test": 1, "test_unseen": 0, "other_heldout": 0}
    md = out.with_suffix(".md").read_text()
    known = next(line for line in md.splitlines() if "known species named to the right species |" in line)
    assert known.endswith("; 1 specimen of test set aside (quarantined) before triage, not in this denominator |")
    assert "| test named to species (per specimen; 1 set aside, not counted) |" in md
    assert "| test_unseen+other_heldout named to species (per specimen) |" in md
    # e32 review R11: each TP / MC / UC / OC row says its own denominators (the species row counted fewer
    # specimens than the family row, and neither said so)
    for rank, e in rep["rank_errors"].items():
        assert (f"| {rank}: TP / MC / UC / OC rate (per specimen; TP, MC, UC of the {e['n_known']:,} whose {rank} is "
                f"in the reference, OC of the {e['n_novel']:,} whose {rank} is not") in md
    assert "the forecast rows weigh each taxon equally and count an absent species under a known genus)" in md
    capsys.readouterr()
    code = main(["evaluate", "--data", str(dataset), "--model", str(bundle), "--out", str(tmp_path / "x.json"),
                 "--novel-split", "test_unseen+key_unseen", "--no-cluster", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    holds = ", ".join(f"{sp} ({sum(r['split'] == sp for r in rows)})" for sp in sorted({r["split"] for r in rows}))
    assert code == 2 and len(err) == 1, err
    assert err[0] == (f"error: {dataset}: no specimens in split 'key_unseen' (--novel-split test_unseen+key_unseen); "
                      f"the data holds: {holds}")
    assert not (tmp_path / "x.json").exists()


def test_info_shows_the_forecast_at_another_level_and_names_the_levels_it_holds(bundle, tmp_path, capsys) -> None:
    """An ML engineer's review (L3): the bundle printed its own level's forecast only, though its naming model
    simulated ten levels; a reader choosing ``triage --level 0.9`` had no figure for it. ``info --level`` prints
    that level's forecast (the same lines, read from the engine's table), and a level never simulated is one error
    line naming those that were. (This small world's forecast reads 0 at every level: a copy's 0.9 is marked.)"""
    import shutil

    from biodiscover.discovery.engine import ENGINE_TABLE
    from biodiscover.discovery.naming import describe_expected
    from biodiscover.storage.bundle import Bundle

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    b = Bundle.open(copy)
    table = b.load_table(ENGINE_TABLE, expect=dict)
    table["naming"]["expected"]["0.9"]["known_species_right"]["rate"] = 0.625
    b.save_table(ENGINE_TABLE, table)
    assert main(["info", str(copy), "--level", "0.9"]) == 0
    out = capsys.readouterr().out
    # the level it shows and the bundle's inside the note's bracket, not after it (e33 review F14: "): — at --level")
    assert "expected at level 0.9," in out and "): —" not in out, out
    assert "a collection's figures can differ; shown at --level 0.9, the bundle names at 0.98):\n" in out, out
    lines = describe_expected(table["naming"]["expected"]["0.9"], 0.9)
    assert lines[0].startswith("known species named to the right species: 0.625 (")
    assert all(f"    {line}\n" in out for line in lines)
    assert main(["info", str(copy)]) == 0  # its own level, as before
    own = capsys.readouterr().out
    assert "expected at level 0.98," in own and "--level" not in own and "0.625" not in own
    assert main(["info", str(copy), "--level", "0.96"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: --level 0.96: the bundle's forecast was simulated at 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, "
        "0.995, 0.999 only"]
    # e31 review F14: info took 0.5, which triage refuses (a level must be over even odds); the list names only
    # the simulated levels triage takes
    for verb in (["info", str(copy)], ["triage", "-i", "x.fasta", "-m", str(copy)]):
        assert main([*verb, "--level", "0.5"]) == 2
        assert "error: invalid value for '--level': Input should be greater than or equal to 0.501 (see " \
            f"'biodiscover {verb[0]} --help')" in capsys.readouterr().err


def test_the_same_triage_again_into_the_same_database_is_refused_without_again(dataset, bundle, tmp_path,
                                                                               capsys) -> None:
    """The same ``triage`` command run a second time over its own database re-triaged the plate without a word,
    and every pending candidate of the first run came back under a new number (e31 review F5); ``run`` skips such
    a collection. A triage of the same bytes with the same model, level and share mode, with nothing reviewed
    since, is refused with one line saying where its candidates are; ``--again`` triages it again (not
    ``--force``: that also lets a run replace a user's file). Anything that changes what a triage gives (a review
    since, another --level) lets it run."""
    from biodiscover.storage.db import Database

    db = tmp_path / "lab.sqlite"
    argv = ["triage", "--input", str(dataset / "collection.fasta"), "--model", str(bundle), "--db", str(db), "-q"]
    assert main(argv + ["--json"]) == 0
    first = json.loads(capsys.readouterr().out)["run_id"]
    with Database.open(db, readonly=True) as database:
        runs, proposals = database.latest_run().id, database.proposal_queue(limit=500)[1]
    assert main(argv) == 2  # bad input: the exit code of every refusal of what was asked
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {dataset / 'collection.fasta'}: triaged into this database before as run {first} with "
                   "the same bytes, model and settings, nothing reviewed since: its candidates are there (`biodiscover "
                   f"review --db {db} --run {first}`); --again triages it again, and its pending candidates come back "
                   "under new numbers"]
    with Database.open(db, readonly=True) as database:
        assert (database.latest_run().id, database.proposal_queue(limit=500)[1]) == (runs, proposals)
    assert main(argv + ["--level", "0.95"]) == 0  # another level: another reading
    assert main(argv + ["--again"]) == 0
    with Database.open(db) as database:
        assert database.latest_run().id == runs + 2
        p = database.proposal_queue(status="pending", limit=1)[0][0]
        database.note(p.id, "W2: +4 ex.", reviewer="ana")
    assert main(argv) == 0  # reviewed since: triaged again
    with Database.open(db, readonly=True) as database:
        assert database.latest_run().id == runs + 3


def test_a_refused_repeat_triage_ingests_and_writes_nothing(dataset, bundle, tmp_path, cli) -> None:
    """A repeat ``triage`` was refused only after its ingest: it printed "ingest: 0/N", "ingest: N/N", then the
    refusal, having read and ingested a large plate for minutes to no end; and the same bytes under another file
    name (a copy, so another collection) were stored first, a new collection with its ingest, quarantined rows,
    quarantine report and a pre-ingest backup, by a triage that then refused (e35, found repeating the demo's
    triage). The refusal now comes before anything is ingested or written: no ingest progress, and every file
    beside the database (the database, its -wal and -shm, its backups, a quarantine report) byte for byte and
    time for time as before."""
    import hashlib
    import shutil

    db = tmp_path / "lab.sqlite"

    def files() -> dict[str, tuple[str, int]]:  # the database's folder, and the reports beside the inputs
        return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
                for p in sorted([*tmp_path.rglob("*"), *dataset.glob("collection.quarantine*")]) if p.is_file()}

    def triage(source: Path) -> Any:
        return cli("triage", "--input", str(source), "--model", str(bundle), "--db", str(db))

    first = triage(dataset / "collection.fasta")
    assert first.returncode == 0, first.stderr
    assert "ingest: 0/" in first.stderr  # progress is shown: its absence below is the refusal's, not -q's
    run = int(re.search(r"^triage run (\d+):", first.stdout, re.M).group(1))
    copy = tmp_path / "copy" / "week1-copy.fasta"  # the same bytes under another name: collection week1-copy
    copy.parent.mkdir()
    shutil.copyfile(dataset / "collection.fasta", copy)
    for source in (dataset / "collection.fasta", copy):
        before = files()
        again = triage(source)
        assert again.returncode == 2, again.stderr
        assert [line for line in again.stderr.splitlines() if not line.startswith("read: ")] == [
            f"error: {source}: triaged into this database before as run {run} with the same bytes, model and "
            f"settings, nothing reviewed since: its candidates are there (`biodiscover review --db {db} --run {run}`); "
            "--again triages it again, and its pending candidates come back under new numbers"]
        assert files() == before, source


def test_a_warning_on_stderr_reads_as_the_products_own_lines(dataset, bundle, tmp_path) -> None:
    """e31 review F14: a run left "running" by a killed process was reported in the logger's format,
    "WARNING biodiscover.storage.db.runs: run 1 was left running …", among the product's own lines. A real process
    (the console's logging is set up once per process, which the in-process runner cannot show)."""
    import subprocess
    import sys

    db = tmp_path / "lab.sqlite"
    make = ("import sys; from biodiscover.storage.db import Database; "
            "Database.open_or_create(sys.argv[1]).start_run('triage', {}, collection='gone', total=1)")
    subprocess.run([sys.executable, "-c", make, str(db)], check=True)  # its process is gone: the run is dead
    done = subprocess.run([sys.executable, "-m", "biodiscover.cli", "triage", "-i", str(dataset / "collection.fasta"),
                           "-m", str(bundle), "--db", str(db), "-q"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "warning: run 1 was left running by a dead process: marked interrupted" in done.stderr.splitlines()
    assert "WARNING" not in done.stderr, done.stderr


def test_info_refuses_a_bundle_missing_a_listed_file_or_holding_a_cut_one_as_triage_does(dataset, bundle, tmp_path,
                                                                                          capsys) -> None:
    """``info`` listed a bundle whose reference index had been deleted, or whose engine table was cut to 6 bytes,
    as complete (exit 0) while ``triage`` refused it (e34 attack I1). Both now give the same one error line, exit 2
    (a damaged bundle is a malformed input); an intact copy is still shown."""
    import shutil

    from biodiscover.discovery.engine import ENGINE_TABLE

    intact = tmp_path / "intact"
    shutil.copytree(bundle, intact)
    assert main(["info", str(intact)]) == 0
    capsys.readouterr()
    noarr, cut = tmp_path / "noarr", tmp_path / "cut"
    shutil.copytree(bundle, noarr)
    shutil.copytree(bundle, cut)
    array = next((noarr / "arrays").iterdir())
    array.unlink()
    table = cut / "tables" / f"{ENGINE_TABLE}.json"
    size = table.stat().st_size
    table.write_bytes(table.read_bytes()[:6])
    expected = {noarr: f"error: {array}: listed in bundle.json but missing (incomplete copy?)",
                cut: f"error: {table}: 6 bytes where bundle.json lists {size} (checksum mismatch: file changed or "
                     "truncated)"}
    for damaged, line in expected.items():
        for argv in (["info", str(damaged)], ["info", str(damaged), "--json"]):
            assert main(argv) == 2
            out, err = capsys.readouterr()
            assert out == "" and err.strip().splitlines() == [line], (argv, out, err)
    fasta = str(dataset / "collection.fasta")
    assert main(["triage", "-i", fasta, "-m", str(noarr), "--db", str(tmp_path / "t.sqlite")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == expected[noarr]


def test_a_bundle_path_that_does_not_exist_or_names_its_bundle_json_says_so(dataset, bundle, tmp_path, capsys) -> None:
    """``info nope`` and ``info model/bundle.json`` both said "not a model bundle (no bundle.json)" (e34 attack
    I2). The bundle opener says what was given instead, so every command that opens a bundle says it alike."""
    nope, manifest, fasta = tmp_path / "nope", bundle / "bundle.json", str(dataset / "collection.fasta")
    for argv in (["info", str(nope)], ["triage", "-i", fasta, "-m", str(nope), "--db", str(tmp_path / "t.db")]):
        assert main(argv) == 2
        assert capsys.readouterr().err.strip().splitlines() == [f"error: {nope}: no such folder"], argv
    for argv in (["info", str(manifest)],
                 ["evaluate", "-d", str(dataset), "-m", str(manifest), "-o", str(tmp_path / "e.json")]):
        assert main(argv) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"error: {manifest}: give the bundle's folder ({bundle}), not its bundle.json"], argv
    assert main(["info", str(tmp_path)]) == 2  # a folder without one: as before
    assert capsys.readouterr().err.strip() == f"error: {tmp_path}: not a model bundle (no bundle.json)"


def test_evaluate_refuses_splits_whose_specimens_carry_no_taxonomic_label(dataset, bundle, tmp_path, capsys) -> None:
    """``evaluate`` on test/test_unseen rows with order..species blank exited 0 with a report of dashes and
    "0 named" beside a rate named to species (e34 attack EV1). A split of no labelled specimen is refused, as a split
    the data lacks is, with one error line (exit 2) naming the splits, and no report is written."""
    import csv

    from biodiscover.storage.bioscan import find_metadata
    from biodiscover.storage.records import RANKS

    with find_metadata(dataset).open(newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    for blank, splits in ((("test", "test_unseen"), "test, test_unseen"), (("test_unseen",), "test_unseen")):
        data, out = tmp_path / f"nolabel-{len(blank)}.csv", tmp_path / f"nolabel-{len(blank)}.json"
        with data.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, header)
            writer.writeheader()
            writer.writerows({**r, **{rank: "" for rank in RANKS}} if r["split"] in blank else r for r in rows)
        assert main(["evaluate", "-d", str(data), "-m", str(bundle), "-o", str(out), "--no-cluster", "-q"]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"error: {data}: no specimen of split {splits} has a taxonomic label; evaluate measures against labels "
            "(triage names an unlabelled collection)"]
        assert not out.exists()
