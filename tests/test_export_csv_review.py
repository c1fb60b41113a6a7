"""What a data manager reads in the CSV export of a reviewed plate: the identity to an assigned candidate's own
species, the nearest known species list, the report's flags, rounded numbers.

Found by a taxonomist reviewing a real Costa Rican plate (second review, S6): proposals.csv and the report's table
still gave an assigned candidate's old machine nearest species and identity ("name=Amaxia apyga, status=assigned,
nearest_species=Amaxia rocioecheverriae, nearest_identity=0.9498479962348938") while the report's short section said
"identity to it 95.0%"; the nearest species list (keys, countries) and the flags the report shows were only in the
JSON, so nobody could filter a spreadsheet on them; identities were written with 16 decimals. Real SQLite files.
"""

from __future__ import annotations

import csv
import html
import re
from pathlib import Path

import pytest

from biodiscover.storage.db import Database
from biodiscover.workflows.export import export_run
from biodiscover.storage.evidence import NearSpecies
from fixtures.db_views import proposal_members
from fixtures.review_db import GONODONTA, build_review_db, gonodonta_plate, plate_evidence


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / name, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def _by_id(folder: Path) -> dict[int, dict[str, str]]:
    return {int(r["proposal_id"]): r for r in _rows(folder, "proposals.csv")}


def _described(folder: Path, column: str) -> str:
    text = (folder / "columns.txt").read_text(encoding="utf-8")
    found = re.search(rf"^  {re.escape(column)} — (.*)$", text, flags=re.M)
    assert found, f"{column} is not in columns.txt"
    return found.group(1)


def _assigned_plate(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """The Gonodonta plate with candidate A (nearest G. bidens 99.12 %) identified as G. uxor (99.04 %)."""
    path = tmp_path / "plate.sqlite"
    ids = gonodonta_plate(path)
    with Database.open(path) as db:
        db.assign(ids["A"], db.proposal(ids["A"]).version, "Gonodonta uxor", reviewer="ana")
    return path, ids


def test_an_assigned_candidate_gives_the_identity_to_its_own_species(tmp_path: Path) -> None:
    path, ids = _assigned_plate(tmp_path)
    export_run(path, 1, "csv", tmp_path / "csv")
    rows = _by_id(tmp_path / "csv")
    a = rows[ids["A"]]
    assert (a["name"], a["status"]) == ("Gonodonta uxor", "assigned")
    # the machine's evidence stays what it was (the nearest species when proposed) ...
    assert (a["nearest_species"], a["nearest_identity"]) == ("Gonodonta bidens", "0.9912")
    # ... and the identity to the species a reviewer named is its own column, as the review header gives it
    assert a["identity_to_assigned"] == "0.9904"
    assert rows[ids["B"]]["identity_to_assigned"] == ""  # not assigned: nothing to measure against
    assert "when it was proposed" in _described(tmp_path / "csv", "nearest_species")
    assert "not the species a reviewer assigned" in _described(tmp_path / "csv", "nearest_species")
    assert "assigned" in _described(tmp_path / "csv", "identity_to_assigned")
    # the JSON export, for scripts: the same figure, unrounded
    import json

    export_run(path, 1, "json", tmp_path / "run.json")
    doc = {p["proposal_id"]: p for p in json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["proposals"]}
    assert doc[ids["A"]]["identity_to_assigned"] == 0.9904 and doc[ids["B"]]["identity_to_assigned"] is None


def test_the_report_table_row_of_an_assigned_candidate_agrees_with_its_section(tmp_path: Path) -> None:
    path, ids = _assigned_plate(tmp_path)
    export_run(path, 1, "html", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    table = page[page.index("<table><thead><tr><th>#</th>"):]
    table = table[: table.index("</table>")]
    row = re.search(rf"<tr><td>{ids['A']}</td>(.*?)</tr>", table)
    assert row, table
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    assert "Gonodonta uxor (assigned)" in cells and "99.0%" in cells
    assert "Gonodonta bidens" not in row.group(1) and "99.1%" not in row.group(1)
    start = page.index(f"id='cand-{ids['A']}'")
    assert "<th>identity to it</th><td>99.0%" in page[start: page.index("</section>", start)]
    # a pending candidate's row keeps its nearest known species
    pending = re.search(rf"<tr><td>{ids['B']}</td>(.*?)</tr>", table)
    assert pending and "<td>Gonodonta sicheas</td><td>95.0%</td>" in pending.group(1)


def _report_flags(page: str, pid: int) -> str | None:
    start = page.index(f"id='cand-{pid}'")
    shown = re.search(r"<tr><th>flags</th><td>(.*?)</td></tr>", page[start: page.index("</section>", start)])
    return html.unescape(shown.group(1)) if shown else None


def test_proposals_csv_lists_the_nearest_species_and_the_reports_flags(tmp_path: Path) -> None:
    path = tmp_path / "plate.sqlite"
    ids = gonodonta_plate(path)
    # D: one more candidate whose nearest species is G. bidens (95 %), keys from Brazil and Mexico only
    bidens = NearSpecies("Gonodonta bidens", "Gonodonta", 0.95, 9, {"Brazil": 6, "Mexico": 3}, {"B1": 0.95})
    with Database.open(path) as db:
        (ids["D"],) = db.write_proposals(1, [{"members": ["B1"], "parent_lineage": GONODONTA,
                                              "nearest_species": bidens.species, "nearest_identity": 0.95,
                                              "evidence": plate_evidence((bidens,), ["B1"])}])
    export_run(path, 1, "csv", tmp_path / "csv")
    export_run(path, 1, "html", tmp_path / "r.html")
    rows = _by_id(tmp_path / "csv")
    assert rows[ids["A"]]["near_species"] == (
        "Gonodonta bidens 99.1% (9 keys: Brazil 6, Jamaica 1, Mexico 1, Venezuela 1); "
        "Gonodonta uxor 99.0% (1 key, no country); Gonodonta immacula 98.8% (2 keys: Brazil 1, Suriname 1)")
    assert rows[ids["C"]]["near_species"] == "Abax parallelepipedus 88.0% (40 keys: Germany 40)"
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    for letter, pid in ids.items():
        # the report's flags line, flag for flag (flags.py is their one owner; its wording may change)
        assert (rows[pid]["review_flags"] or "none") == _report_flags(page, pid), letter
    # A's and D's nearest species has no key from Costa Rica, where their members were caught: flagged, naming
    # it; B's nearest species has a Costa Rican key: no flag names it
    assert "Gonodonta bidens" in rows[ids["A"]]["review_flags"]
    assert "Gonodonta bidens" in rows[ids["D"]]["review_flags"]
    assert "sicheas" not in rows[ids["B"]]["review_flags"]
    for column in ("near_species", "review_flags"):
        assert "not described" not in _described(tmp_path / "csv", column)
    # a reviewer assigns A to G. bidens: the species is known from Costa Rica now, and D's flag about it goes, in
    # the report and in the CSV alike (the review's rule: where assigned candidates were caught counts)
    with Database.open(path) as db:
        db.assign(ids["A"], db.proposal(ids["A"]).version, "Gonodonta bidens", reviewer="ana")
    export_run(path, 1, "csv", tmp_path / "csv2")
    export_run(path, 1, "html", tmp_path / "r2.html")
    rows, page = _by_id(tmp_path / "csv2"), (tmp_path / "r2.html").read_text(encoding="utf-8")
    for letter in ("B", "C", "D"):
        assert (rows[ids[letter]]["review_flags"] or "none") == _report_flags(page, ids[letter]), letter
    assert "Gonodonta bidens" not in rows[ids["D"]]["review_flags"]


def test_a_long_nearest_species_list_is_cut_to_what_the_review_lists() -> None:
    """A real plate's lists ran to 12 species, most of other genera at 89-91 %: one cell gives the first five
    and says how many more the JSON holds."""
    from biodiscover.storage.evidence import Evidence, NearSpecies
    from biodiscover.workflows.export.csv import near_species_text

    near = tuple(NearSpecies(f"Aus s{i}", "Aus", 0.95 - i / 100, 1, {"Peru": 1}) for i in range(7))
    text = near_species_text(Evidence(near_species=near).to_dict())
    assert text is not None and text.split("; ")[0] == "Aus s0 95.0% (1 key: Peru 1)"
    assert text.count("Aus s") == 5 and text.endswith("; 2 more in the JSON export")
    assert near_species_text({}) is None  # a record before the list existed


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CSV export of a real database filled by discovery (identities and probabilities of every length)."""
    root = tmp_path_factory.mktemp("rounding")
    fx = build_review_db(root / "lab.sqlite")
    with Database.open(fx.path) as db:
        pid = fx.proposal_ids[0]
        p = db.proposal(pid)
        tid = next(t for t, label in db.known_species(limit=5000, near=p.nearest_species)
                   if label.split("  (")[0] == p.nearest_species)
        db.assign(pid, p.version, tid, reviewer="Cy Roe")
    export_run(fx.path, fx.run_id, "csv", root / "csv")
    return root / "csv"


#: Columns holding coordinates: 6 decimals (about 0.1 m); every other fraction: 4.
COORDINATES = re.compile(r"_(lat|lon)(_min|_max)?$|centroid_(lat|lon)$")
_NUMBER = re.compile(r"^-?\d+(\.(\d+))?$")


@pytest.mark.parametrize("name", ["assignments.csv", "proposals.csv", "members.csv"])
def test_every_number_is_written_to_a_stated_precision(synthetic_csv: Path, name: str) -> None:
    rows = _rows(synthetic_csv, name)
    longest: dict[str, int] = {}
    for r in rows:
        for col, value in r.items():
            m = _NUMBER.match(value or "")
            if m and m.group(2):
                longest[col] = max(longest.get(col, 0), len(m.group(2)))
    assert longest, name  # the file has fractions to check
    too_long = {c: n for c, n in longest.items() if n > (6 if COORDINATES.search(c) else 4)}
    assert not too_long, too_long
    text = (synthetic_csv / "columns.txt").read_text(encoding="utf-8")
    assert "rounded to 4 decimals" in text and "coordinates to 6" in text
    if name == "proposals.csv":
        assert any(r["identity_to_assigned"] for r in rows)


# -- taxonConceptID -------------------------------------------------------------------------------------------

def _member(archive: Path, name: str) -> str:
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        return zf.read(name).decode("utf-8")


def _concepts(tmp_path: Path, db: Path, name: str) -> dict[str, str]:
    """processid → taxonConceptID of the Darwin Core archive's core."""
    export_run(db, 1, "dwca", tmp_path / f"{name}.zip")
    lines = _member(tmp_path / f"{name}.zip", "occurrence.txt").splitlines()
    head = lines[0].split("\t")
    rows = [dict(zip(head, line.split("\t"))) for line in lines[1:]]
    return {r["id"]: r["taxonConceptID"] for r in rows}


def test_a_candidates_concept_id_is_the_databases_own_and_survives_re_export_and_a_copy(tmp_path: Path) -> None:
    """Two databases of one lab numbered their first run and candidates alike, so both archives gave a different
    candidate the same ``biodiscover:run:1:candidate:1``: GBIF would read them as one concept. The id names the
    database (kept by a copy of its file) and the candidate (whatever run it was proposed in)."""
    import shutil

    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    ids = gonodonta_plate(tmp_path / "one" / "plate.sqlite")
    assert gonodonta_plate(tmp_path / "two" / "plate.sqlite") == ids  # the same numbers in both
    shutil.copytree(tmp_path / "one", tmp_path / "copy")
    first = _concepts(tmp_path, tmp_path / "one" / "plate.sqlite", "first")
    members = ["A0", "A1"]
    concept = first["A0"]
    assert concept and {first[m] for m in members} == {concept}
    assert len({first[m] for m in ("A0", "B0", "C0")}) == 3  # one concept per candidate
    assert _concepts(tmp_path, tmp_path / "one" / "plate.sqlite", "again")["A0"] == concept
    assert _concepts(tmp_path, tmp_path / "copy" / "plate.sqlite", "copy")["A0"] == concept
    other = _concepts(tmp_path, tmp_path / "two" / "plate.sqlite", "other")
    assert other["A0"] and other["A0"] != concept
    # the dataset's packageId in eml.xml, for the same reason
    packages = [re.search(r'packageId="([^"]+)"', _member(tmp_path / f"{n}.zip", "eml.xml")).group(1)
                for n in ("first", "copy", "other")]
    assert packages[0] == packages[1] != packages[2]
    # proposals.csv gives each candidate the id its members carry in the archive (a join a data manager makes)
    export_run(tmp_path / "one" / "plate.sqlite", 1, "csv", tmp_path / "csv")
    rows = _by_id(tmp_path / "csv")
    assert rows[ids["A"]]["taxonConceptID"] == concept
    assert "not described" not in _described(tmp_path / "csv", "taxonConceptID")


def test_a_split_part_names_the_reviewer_who_split_it_and_the_name_it_was_under(tmp_path: Path) -> None:
    """The export review's F11: #8, split off #3 by Kari Nordmann, had ``reviewers`` and ``previous_names`` empty in
    proposals.csv (the JSON had the split in its history): a reader of the sheet saw a candidate nobody had touched,
    under no earlier name. The split is a review of both candidates: the part names its reviewer, and the name its
    members were under (the candidate it was split from)."""
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=3)
    with Database.open(fx.path) as db:
        source = next(i for i in fx.proposal_ids if db.proposal(i).size >= 2)
        before = db.proposal(source).name
        one = proposal_members(db, source)[0]
        part = db.split(source, db.proposal(source).version, [one], reviewer="Kari Nordmann").new_proposal_id
        assert part is not None
    export_run(fx.path, fx.run_id, "csv", tmp_path / "csv")
    rows = _by_id(tmp_path / "csv")
    assert (rows[part]["reviewers"], rows[part]["previous_names"]) == ("Kari Nordmann", before)
    assert rows[source]["reviewers"] == "Kari Nordmann"
    assert rows[part]["decision"] == rows[part]["review_notes"] == ""  # a split decides nothing, notes nothing


def test_a_reviewers_quotes_reach_the_csv_and_the_archive_as_typed() -> None:
    """e32 review R7: a reject reason typed ``contaminant, see "lab note" 3`` read, in proposals.csv and the archive's
    remarks, ``"contaminant, see \\"lab note\\" 3"`` (JSON's escapes). Now in typographic quotes, as the report shows
    it, the reviewer's own quotes as typed; a line break stays one line (``\\n``)."""
    from biodiscover.workflows.export.tables import ReviewTrail, TrailNote

    trail = ReviewTrail(notes=(TrailNote("2026-12-07T10:00:00", "Ana Silva", 'contaminant, see "lab note" 3'),
                               TrailNote("2026-12-07T11:00:00", "Ana Silva", "genitalia prep\nneeded")))
    assert trail.notes_text() == ('“contaminant, see "lab note" 3” (Ana Silva, 2026-12-07); '
                                  "“genitalia prep\\nneeded” (Ana Silva, 2026-12-07)")
