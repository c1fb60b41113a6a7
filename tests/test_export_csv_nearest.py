"""proposals.csv names each candidate's closest other candidate by the proposal that holds it.

Found reviewing the demo's export (``biodiscover demo``, ``export -f csv``): the column
``evidence_between_distance_nearest_candidate`` holds the clustering's own number for the closest candidate
(:class:`biodiscover.storage.evidence.NearestCandidate`), not a proposal id. Candidate #13's read 5, and
proposal 5 is *Mioites sp. cand5*, another genus; the closest candidate (its member RVEBS5031-20, 4.6 %
away) is #7, *Tiaopsis sp. cand7*, as the review app says. The export now resolves the recorded member to
the proposal holding it, as the review app does.

Real SQLite database and the real CLI.
"""

from __future__ import annotations

import csv
from pathlib import Path

from fixtures.inprocess import run_cli
from fixtures.review_db import build_review_db


def test_the_closest_candidate_is_named_by_its_proposal(tmp_path: Path) -> None:
    fx = build_review_db(tmp_path / "lab.sqlite", max_proposals=8)
    out = tmp_path / "csv"
    proc = run_cli("export", "--db", str(fx.path), "--run", str(fx.run_id), "-f", "csv", "-o", str(out),
                   env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    with open(out / "proposals.csv", newline="", encoding="utf-8-sig") as fh:
        proposals = list(csv.DictReader(fh))
    with open(out / "members.csv", newline="", encoding="utf-8-sig") as fh:
        holder = {m["processid"]: m["proposal_id"] for m in csv.DictReader(fh)}
    name = {p["proposal_id"]: p["name"] for p in proposals}
    header = list(proposals[0])
    at = header.index("evidence_between_distance_member")
    assert header[at + 1: at + 3] == ["evidence_between_distance_proposal_id", "evidence_between_distance_name"]
    with_nearest = [p for p in proposals if p["evidence_between_distance_member"]]
    assert with_nearest
    resolved = [p for p in with_nearest if p["evidence_between_distance_member"] in holder]
    assert resolved
    for p in with_nearest:
        nearest = holder.get(p["evidence_between_distance_member"])
        if nearest is None:  # a candidate the fixture did not store (max_proposals): nothing to name
            assert p["evidence_between_distance_proposal_id"] == p["evidence_between_distance_name"] == ""
            continue
        assert nearest != p["proposal_id"]
        assert (p["evidence_between_distance_proposal_id"], p["evidence_between_distance_name"]) == \
            (nearest, name[nearest])
    # the clustering's numbers are not the proposal ids (what made the old column misleading)
    assert any(p["evidence_between_distance_nearest_candidate"] != p["evidence_between_distance_proposal_id"]
               for p in resolved)
    for p in proposals:
        if not p["evidence_between_distance_member"]:
            assert p["evidence_between_distance_proposal_id"] == p["evidence_between_distance_name"] == ""
