"""The HTML report and CSV keep every candidate a reviewer decided, and say what to look at first.

Found by a taxonomist reviewing a real Costa Rican plate (117 proposals: 14 accepted, 9 assigned to known
species): the report's table stopped at 50 rows and its sections at 100, and the assigned candidates, listed
last, fell past both caps: not one of the 9 identifications (Gonodonta uxor, Memphis aulica, Amaxia apyga)
was in the report a PI reads. The header counted accepted and awaiting, never assigned. assignments.csv left
``proposal_id`` empty for the members of an assigned candidate. Each section lacked a line of flags a
reviewer can scan (no gap, a tie among known species, partial reads, why it was not named).
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from biodiscover.storage.db import Database
from biodiscover.workflows import report
from biodiscover.workflows.export import export_run, write_export
from fixtures.review_db import build_review_db
from fixtures.run_export import make_run_export


@pytest.fixture(scope="module")
def decided(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real reviewed database: one candidate accepted, one rejected, two assigned to their nearest known
    species, the rest pending."""
    root = tmp_path_factory.mktemp("decided")
    fx = build_review_db(root / "lab.sqlite")
    db = Database.open(fx.path)
    try:
        # the queue order: largest first, as the report lists candidates
        ids = sorted(fx.proposal_ids, key=lambda i: (-db.proposal(i).size, i))
        accepted, rejected = ids[0], ids[1]
        db.accept(accepted, db.proposal(accepted).version, reviewer="Ana Silva")
        db.reject(rejected, db.proposal(rejected).version, reviewer="Ben Ode")
        assigned = {}
        for pid in ids[2:4]:
            p = db.proposal(pid)
            tid = next(t for t, label in db.known_species(limit=5000, near=p.nearest_species)
                       if label.split("  (")[0] == p.nearest_species)
            db.note(pid, "keys from another country; checked genitalia", reviewer="Cy Roe")
            db.assign(pid, p.version, tid, reviewer="Cy Roe")
            assigned[pid] = (p.nearest_species, p.size, p.nearest_identity)
        pending = [i for i in ids if i not in (accepted, rejected, *assigned)]
    finally:
        db.close()
    return {"path": fx.path, "run": fx.run_id, "ids": ids, "accepted": accepted, "rejected": rejected,
            "assigned": assigned, "pending": pending}


def _section(page: str, pid: int) -> str:
    start = page.index(f"id='cand-{pid}'")
    return page[start: page.index("</section>", start)]


def test_every_decided_candidate_is_in_the_report_past_any_cap(tmp_path: Path, decided: dict,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # caps far below the number of candidates, as 50 and 100 were below the real plate's 117
    monkeypatch.setattr(report, "TABLE_LIMIT", 2)
    monkeypatch.setattr(report, "DETAIL_LIMIT", 1)
    out = tmp_path / "r.html"
    export_run(decided["path"], decided["run"], "html", out)
    page = out.read_text(encoding="utf-8")
    table = page[page.index("<table><thead><tr><th>#</th>"):]
    table = table[: table.index("</table>")]
    listed = [int(x) for x in re.findall(r"<tr><td>(\d+)</td>", table)]
    # every decided one in the table, and the largest pending ones up to the cap
    for pid in (decided["accepted"], decided["rejected"], *decided["assigned"]):
        assert pid in listed, pid
        assert f"id='cand-{pid}'" in page, pid
    assert [p for p in listed if p in decided["pending"]] == decided["pending"][:2]
    n_pending = len(decided["pending"])
    assert (f"The other {n_pending - 2} pending candidates (the smallest, none flagged to check first) are in the "
            "CSV export (proposals.csv) and the JSON export.") in page
    # sections: every decided one, the largest pending one, and a count of the rest and where they are
    assert f"id='cand-{decided['pending'][0]}'" in page and f"id='cand-{decided['pending'][1]}'" not in page
    assert (f"{n_pending - 1} more pending candidates (the smallest, none flagged to check first) are not shown in "
            "detail here: see the CSV export (proposals.csv, members.csv) or the JSON export.") in page
    # the header counts what reviewers did, assigned included
    assert "<div class='card'><b>2</b>assigned to a known species</div>" in page
    assert "<div class='card'><b>1</b>rejected by a reviewer</div>" in page
    assert f"<div class='card'><b>{n_pending}</b>awaiting review</div>" in page
    # and the candidates card is the sum of the cards that break it down (the weekly-batch review read "5
    # candidate species" above 1 accepted, 4 awaiting, 1 assigned and 1 rejected)
    total = n_pending + 1 + 1 + len(decided["assigned"])
    assert f"<div class='card'><b>{total}</b>candidate species proposed</div>" in page


def test_an_assigned_candidate_says_which_species_how_many_how_close_and_who(tmp_path: Path, decided: dict) -> None:
    out = tmp_path / "r.html"
    export_run(decided["path"], decided["run"], "html", out)
    page = out.read_text(encoding="utf-8")
    for pid, (species, size, identity) in decided["assigned"].items():
        section = _section(page, pid)
        assert f"#{pid} {species}" in section
        assert f"<th>identified as</th><td>{species} (a known species)</td>" in section
        assert f"<th>specimens</th><td>{size}</td>" in section
        assert f"<th>identity to it</th><td>{100 * identity:.1f}% (the nearest known species)</td>" in section
        assert re.search(r"<th>decision</th><td>assign by Cy Roe, \d{4}-\d\d-\d\d \d\d:\d\d UTC</td>", section)
        assert "keys from another country; checked genitalia" in section


def test_assignments_csv_keeps_an_assigned_candidates_members_linked_to_it(tmp_path: Path, decided: dict) -> None:
    export_run(decided["path"], decided["run"], "csv", tmp_path / "csv")
    with open(tmp_path / "csv" / "assignments.csv", newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and "processid" in rows[0]
    for pid, (species, size, _) in decided["assigned"].items():
        linked = [r for r in rows if r["proposed_in"] == str(pid)]
        assert len(linked) == size
        assert {(r["proposal_id"], r["candidate_status"], r["provisional_name"]) for r in linked} == \
            {(str(pid), "assigned", species)}
    # a rejected candidate is no group of anything: its members keep only where they were proposed
    rejected = [r for r in rows if r["proposed_in"] == str(decided["rejected"])]
    assert rejected and {(r["proposal_id"], r["candidate_status"]) for r in rejected} == {("", "rejected")}


# -- flags ----------------------------------------------------------------------------------------------------

def _with_evidence(evidence: dict, **fields) -> tuple:
    data = make_run_export(n_known=3, n_candidates=1, seed=0)
    props = data.proposals.copy()
    props["evidence"] = [evidence]
    for k, v in fields.items():
        props[k] = [v]
    return replace(data, proposals=props), int(props["proposal_id"].iloc[0])


def _flags(tmp_path: Path, evidence: dict, **fields) -> str:
    data, pid = _with_evidence(evidence, **fields)
    write_export(data, "html", tmp_path / "r.html")
    section = _section((tmp_path / "r.html").read_text(encoding="utf-8"), pid)
    found = re.search(r"<tr><th>flags</th><td>(.*?)</td></tr>", section)
    return found.group(1) if found else ""


REASON = ("species Gonodonta bidens at 99.1% identity: P(right) 0.14 below the level 0.98, P(absent from the "
          "reference) 0.85; Gonodonta uxor lies within 0.0%; farther than Gonodonta bidens's own members lie from "
          "each other (≈0.8%)")


def test_flags_say_no_gap_and_a_tie_among_known_species(tmp_path: Path) -> None:
    """The real plate's #80: 99.1 % to G. bidens, G. uxor tied (the truth), members 0.5 % apart."""
    ev = {"threshold": 0.0275, "within_distance": {"mean": 0.002, "max": 0.0456},
          "nearest_known": {"species": "Gonodonta bidens", "genus": "Gonodonta", "identity": 0.9909,
                            "not_named_because": REASON},
          "nearest_known_distances": [0.0091]}
    flags = _flags(tmp_path, ev, nearest_species="Gonodonta bidens", nearest_identity=0.9909,
                   parent_rank="genus", parent_taxon="Gonodonta")
    assert "no barcode gap" in flags
    assert "tie: Gonodonta bidens / Gonodonta uxor (99.1%)" in flags
    assert "another part of its range" not in flags  # evidence of format 3: no keys' countries to tell from
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f"<th>not named because</th><td>{REASON.replace(chr(39), '&#x27;')}</td>" in page


def test_flags_read_the_nearest_species_list_as_the_review_does(tmp_path: Path) -> None:
    """Evidence format 4: the tie and the "met from elsewhere" flag come from the nearest species list, by the
    review header's rules (``tied_species``, ``known_elsewhere``), so the report and the screen agree."""
    ev = {"threshold": 0.0275, "within_distance": {"mean": 0.002, "max": 0.004},
          "nearest_known": {"species": "Gonodonta bidens", "genus": "Gonodonta", "identity": 0.9909},
          "near_species": [
              {"species": "Gonodonta bidens", "genus": "Gonodonta", "identity": 0.9909, "n_keys": 9,
               "countries": {"Brazil": 6, "Jamaica": 1, "Mexico": 1, "Venezuela": 1}},
              {"species": "Gonodonta uxor", "genus": "Gonodonta", "identity": 0.9905, "n_keys": 1, "countries": {}},
              {"species": "Gonodonta immacula", "genus": "Gonodonta", "identity": 0.988, "n_keys": 2,
               "countries": {"Brazil": 1, "Suriname": 1}}],
          "geography": {"countries": {"Costa Rica": 4}}}
    flags = _flags(tmp_path, ev, nearest_species="Gonodonta bidens", nearest_identity=0.9909,
                   parent_rank="genus", parent_taxon="Gonodonta")
    assert "tie: Gonodonta bidens / Gonodonta uxor (99.1%)" in flags and "immacula" not in flags.split("·")[1]
    assert ("may be Gonodonta bidens met from another part of its range (99.1%; 9 keys: Brazil 6, Jamaica 1, "
            "Mexico 1, Venezuela 1, none from where the members were caught; 0.9% apart, within the 3% one "
            "species usually spans)") in flags
    # caught where G. bidens's keys were: the next one no key rules out is G. uxor (its one key has no country)
    ev["geography"] = {"countries": {"Brazil": 4}}
    (tmp_path / "again").mkdir()
    flags = _flags(tmp_path / "again", ev, nearest_species="Gonodonta bidens", nearest_identity=0.9909,
                   parent_rank="genus", parent_taxon="Gonodonta")
    assert "may be Gonodonta uxor met from another part of its range (99.1%; 1 key, no country," in flags
    assert "may be Gonodonta bidens" not in flags


def test_flags_say_a_tie_from_the_members_own_hits(tmp_path: Path) -> None:
    ev = {"threshold": 0.0275, "within_distance": {"mean": 0.0, "max": 0.001},
          "nearest_known": {"species": "Memphis proserpina", "genus": "Memphis", "identity": 0.967},
          "member_hits": {"A1-24": {"species": "Memphis proserpina", "identity": 0.967},
                          "A2-24": {"species": "Memphis aulica", "identity": 0.9665},
                          "A3-24": {"species": "Gonodonta sicheas", "identity": 0.967}}}
    flags = _flags(tmp_path, ev, nearest_species="Memphis proserpina", nearest_identity=0.967)
    # congeners tie; a species of another genus as far away says nothing is close, not which species it may be
    assert "tie: Memphis proserpina / Memphis aulica (96.7%)" in flags and "sicheas" not in flags
    assert "no barcode gap" not in flags  # 3.3 % away, members ≤ 0.1 % apart, threshold 2.75 %: a gap


def test_flags_say_partial_reads_and_short_overlap(tmp_path: Path) -> None:
    """The real plate's #20: one 266-base read and two 407-base fragments among 658-base barcodes."""
    full, part = "ACGT" * 164 + "AC", "N" * 392 + "ACGT" * 66 + "AC"
    frag = "-" * 251 + "ACGT" * 101 + "ACG"
    ev = {"threshold": 0.0275, "within_distance": {"mean": 0.008, "max": 0.004},
          "nearest_known": {"species": "Hemiceras losa", "identity": 0.932,
                            "not_named_because": "family Notodontidae at 93.2% identity: P(right) 0.32 below the "
                                                 "level 0.98, P(absent from the reference) 0.01; Noctuidae lies "
                                                 "within 0.4%; only 266 informative bases shared with the best key"},
          "alignment": {"F1": full, "F2": full, "P1": part, "P2": frag, "P3": frag}}
    flags = _flags(tmp_path, ev, nearest_species="Hemiceras losa", nearest_identity=0.932)
    assert "partial reads: 3 of 5 members under 500 bases (266–407)" in flags
    assert "short overlap: 266 bases shared with the best key" in flags
    assert "tie" not in flags  # a rival family 0.4 % behind is no tie
    assert "no barcode gap" not in flags


def test_partial_reads_are_counted_over_every_member_not_the_aligned_sample(tmp_path: Path) -> None:
    """A real tropical plate's 317-member *Ae. albopictus* candidate read "partial reads: 49 of 50 members under
    500 bases (439–445)": the 50 rows the alignment keeps, reported as the whole. Every member's best hit records
    the bases it shares with its key (``MemberHit.overlap``), the one rule for a short read (``short_reads``)."""
    full = "ACGT" * 164 + "AC"
    hits = {f"M{i:03d}": {"species": "Aedes vexans", "genus": "Aedes", "processid": "K1", "identity": 0.9,
                          "overlap": 418 + i if i < 55 else 640} for i in range(60)}
    ev = {"threshold": 0.0275, "within_distance": {"mean": 0.001, "max": 0.003},
          "nearest_known": {"species": "Aedes vexans", "identity": 0.9},
          "member_hits": hits, "alignment": {f"M{i:03d}": full for i in range(50)}}
    flags = _flags(tmp_path, ev, nearest_species="Aedes vexans", nearest_identity=0.9, size=60)
    assert "partial reads: 55 of 60 members share under 500 bases with their best key (418–472)" in flags
    # evidence from before overlaps were recorded: the aligned rows, said to be a sample when they are one
    for h in hits.values():
        del h["overlap"]
    ev["alignment"] = {f"M{i:03d}": ("N" * 200 + full[200:]) if i < 49 else full for i in range(50)}
    (tmp_path / "old").mkdir()
    flags = _flags(tmp_path / "old", ev, nearest_species="Aedes vexans", nearest_identity=0.9, size=60)
    assert "partial reads: 49 of the 50 members aligned (of 60) under 500 bases (458)" in flags


def test_a_candidate_with_nothing_to_flag_says_none(tmp_path: Path) -> None:
    ev = {"threshold": 0.0275, "within_distance": {"mean": 0.001, "max": 0.003},
          "nearest_known": {"species": "Hemiceras nigrescens", "genus": "Hemiceras", "identity": 0.926}}
    assert _flags(tmp_path, ev, nearest_species="Hemiceras nigrescens", nearest_identity=0.926,
                  parent_rank="genus", parent_taxon="Hemiceras") == "none"


# -- the collection-sites map ---------------------------------------------------------------------------------

def test_the_sites_map_zooms_to_one_countrys_sites_and_keeps_the_world_across_continents() -> None:
    """The real plate: 21 sites in Guanacaste, drawn as one blob on a world map."""
    lat = pd.Series([10.80, 11.04, 10.36, 10.92])
    lon = pd.Series([-85.45, -85.27, -84.63, -85.60])
    x0, x1, y0, y1 = report.site_extent(lat, lon)
    assert x0 < -85.60 and x1 > -84.63 and y0 < 10.36 and y1 > 11.04
    assert x1 - x0 <= 8 and y1 - y0 <= 8  # a country, not the world
    assert (x1 - x0) / (y1 - y0) == pytest.approx(2.0, rel=0.05)  # the map's own width:height
    # Canada and Costa Rica: one continent, zoomed; Canada and Kenya: the world
    x0, x1, y0, y1 = report.site_extent(pd.Series([43.0, 10.5]), pd.Series([-80.0, -85.0]))
    assert x0 < -85 and x1 > -80 and y0 < 10.5 and y1 > 43 and y1 - y0 < 60 and x1 - x0 < 180
    assert report.site_extent(pd.Series([43.0, -1.3]), pd.Series([-80.0, 36.8])) == report.WORLD_EXTENT
    specimens = pd.DataFrame({"processid": [f"P{i}" for i in range(4)], "coord-lat": lat, "coord-lon": lon})
    plot = report.plot_sites(specimens)
    assert "4 specimens with coordinates, 0 without" in plot.caption
    assert "the map shows lat 9.4°N–12.0°N, lon 87.8°W–82.5°W" in plot.caption


def test_a_candidate_whose_nearest_species_list_does_not_read_is_reported_without_it(tmp_path: Path) -> None:
    """One candidate's malformed evidence (a hand-edited or damaged database) must not stop the report: it read
    ``near_species: [{}]`` with a KeyError and the export ended in a traceback."""
    ev = {"threshold": 0.0275, "near_species": [{"genus": "Aus"}], "geography": {"countries": ["Peru"]}}
    assert _flags(tmp_path, ev, nearest_species="Aus bus", nearest_identity=0.93) == "none"


def test_the_sites_map_zooms_across_the_antimeridian() -> None:
    """Fiji's sites lie both sides of ±180°: the map was the whole world with half a marker at each edge (the
    widest longitude span, 359.8°, read as sites on two continents) — the blob the zoom was made to end."""
    lat = pd.Series([-17.7, -16.5, -18.1, -17.0, -16.8])
    lon = pd.Series([178.4, 179.9, -179.9, -179.8, 179.5])
    x0, x1, y0, y1 = report.site_extent(lat, lon)
    assert x0 < 178.4 and x1 > 180.2 and x1 - x0 < 10  # east of 180° is west of -180°, drawn past it
    assert y0 < -18.1 and y1 > -16.5
    plot = report.plot_sites(pd.DataFrame({"processid": [f"P{i}" for i in range(5)], "coord-lat": lat,
                                           "coord-lon": lon}))
    assert re.search(r"the map shows lat [\d.]+°S–[\d.]+°S, lon 17\d\.\d°E–17\d\.\d°W", plot.caption), plot.caption


def test_the_sites_map_holds_sites_near_the_poles() -> None:
    """The world map stopped at 60°S and 85°N: an Antarctic plate's sites (77.8°S, the pole itself) were counted
    in the caption and drawn off the map."""
    x0, x1, y0, y1 = report.site_extent(pd.Series([-89.9, -77.8, -77.85, 10.0]), pd.Series([0.0, 166.7, 166.6, -84.0]))
    assert (x0, x1) == (-180.0, 180.0) and -90.0 <= y0 <= -89.9 and y1 >= 85.0
    _, _, y0, y1 = report.site_extent(pd.Series([89.9, 90.0]), pd.Series([-170.0, 170.0]))
    assert y1 == 90.0 and y0 <= 89.9
    # zoomed beside the pole, the map stays on the globe
    _, _, y0, y1 = report.site_extent(pd.Series([-89.5, -89.9]), pd.Series([10.0, 11.0]))
    assert -90.0 <= y0 < -89.9 and y1 > -89.5



def _marker_pixels(lat: list[float], lon: list[float]) -> tuple[int, int]:
    """(rows, pixels) of the sites map, left of its colour bar, drawn in a known site's colour (KNOWN_COLOUR at
    the markers' alpha 0.9 on white)."""
    import io

    import numpy as np
    from PIL import Image

    plot = report.plot_sites(pd.DataFrame({"processid": [f"P{i}" for i in range(len(lat))], "coord-lat": lat,
                                           "coord-lon": lon}))
    rgb = np.asarray(Image.open(io.BytesIO(plot.png)).convert("RGB")).astype(int)
    marker = (np.abs(rgb - np.array([79, 131, 183])).max(axis=2) <= 12)[:, : rgb.shape[1] * 4 // 5]
    return int(marker.any(axis=1).sum()), int(marker.sum())


def test_a_site_at_a_pole_is_drawn_whole_not_cut_in_half_by_the_maps_edge() -> None:
    """The map's window stops at ±90°, so a site at exactly 90°N or 90°S sat on its edge and half its marker was
    clipped away (zoomed: 2 of the 7 rows a site inside the map takes, 8 of its 37 pixels), on the world map too:
    it is drawn whole (the edge line shows through it, as through any marker, at alpha 0.9)."""
    rows, pixels = _marker_pixels([45.0], [0.0])
    assert rows >= 5 and pixels > 20
    for pole in (90.0, -90.0):
        at_pole = _marker_pixels([pole], [0.0])
        assert at_pole[0] >= rows - 1 and at_pole[1] >= 0.7 * pixels, (pole, at_pole, rows, pixels)
    _, world = _marker_pixels([60.0, -10.0], [0.0, 120.0])  # sites on two continents: the world map
    for pole in (90.0, -90.0):
        _, at_pole = _marker_pixels([pole, -pole / 9], [0.0, 120.0])
        assert at_pole >= 0.78 * world, (pole, at_pole, world)  # clipped: 42 and 48 of 68


def test_the_report_names_the_collection_its_run_triaged(tmp_path: Path) -> None:
    """The weekly-batch review: "the HTML report is titled `biodiscover run 6 …` and never names
    2026-w01-costa-rica.csv" — with seven collections in one database, a run id alone says nothing. The run's
    collection is in the report's heading and its run line, and in eml.xml's methods."""
    from biodiscover.storage.db import Database
    from biodiscover.storage.records import Specimen
    from biodiscover.workflows.export.pipeline import export_run, load_run_export
    from biodiscover.workflows.export.dwca import eml_methods

    path = tmp_path / "weeks.sqlite"
    with Database.create(path) as db:
        db.ingest([Specimen(processid="A1", dna_barcode="ACGT" * 150)], collection="2026-w01-costa-rica",
                  backup=False)
        run = db.start_run("triage", {}, collection="2026-w01-costa-rica", backup=False)
        db.write_assignments(run, [{"processid": "A1", "deepest_rank": "order", "deepest_taxon": "Lepidoptera",
                                    "novelty": 0.1, "labels": {"order": "Lepidoptera"}}])
        db.write_proposals(run, [])
        db.finish_run(run, "completed")
    assert load_run_export(path, run).run["collection"] == "2026-w01-costa-rica"
    export_run(path, run, "html", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<h1>Discovery run 1 · 2026-w01-costa-rica</h1>" in page
    assert "collection 2026-w01-costa-rica" in page
    assert "(triage run 1 of collection 2026-w01-costa-rica," in eml_methods(load_run_export(path, run).run)


def test_the_report_says_its_counts_are_the_machines_before_review_and_how_the_names_were_made(
        decided: dict, tmp_path: Path) -> None:
    """The export review's F6: the report's "1005 named to species" and its depth plot were the machine's naming,
    while the archive and assignments.csv, after review, said 1,016; and the report never said which reference,
    level or cut made the names (eml.xml's methods did). The card says whose count it is, the line under the cards
    gives the count after review (the determinations the archive writes), and a method paragraph says how the names
    were made, in eml.xml's words."""
    import html

    from biodiscover.workflows.export.dwca import method_steps
    from biodiscover.workflows.export.pipeline import load_run_export

    out = tmp_path / "r.html"
    export_run(decided["path"], decided["run"], "html", out)
    page = out.read_text(encoding="utf-8")
    data = load_run_export(decided["path"], decided["run"])
    machine = int((data.assignments["deepest_rank"] == "species").sum())
    export_run(decided["path"], decided["run"], "csv", tmp_path / "csv")
    with (tmp_path / "csv" / "assignments.csv").open(encoding="utf-8-sig", newline="") as fh:
        reviewed = sum(r["taxonRank"] == "species" for r in csv.DictReader(fh))
    assert reviewed != machine  # the two assigned candidates' members are named to species by the reviewer
    assert f"<div class='card'><b>{machine}</b>named to species by the machine</div>" in page
    assert html.escape(f"The cards and the first plot are the machine's naming, before review; after review (the "
                       f"determinations of the archive and assignments.csv) {reviewed} specimens are named to "
                       "species.") in page
    steps = method_steps(data.run)
    assert steps and all(html.escape(step) in page for step in steps)
    assert "<h2>How the names were made</h2>" in page


def test_the_plots_say_which_proposals_they_leave_out_of_the_cards_count(decided: dict, tmp_path: Path) -> None:
    """e31 review F16: the cards said "143 candidate species proposed" and the captions under the plots "141
    candidates", with no word of the 2 rejected: each caption of a plot of candidate species says what it leaves
    out (here the rejected one and the two assigned) and that the cards count them all."""
    import html

    out = tmp_path / "r.html"
    export_run(decided["path"], decided["run"], "html", out)
    page = out.read_text(encoding="utf-8")
    total = len(decided["ids"])
    assert f"<div class='card'><b>{total}</b>candidate species proposed</div>" in page
    said = html.escape(f" Left out: 3 proposals a reviewer rejected or assigned to a known species (the cards count "
                       f"all {total}).")
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert sum(said in c for c in captions) == 2, captions  # the barcode gap's and the sizes'
    sizes = next(c for c in captions if "singleton" in c)
    assert sizes.startswith(f"{total - 3} candidates, "), sizes
