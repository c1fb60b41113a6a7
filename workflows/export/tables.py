"""The tables every export format writes from, and the shaping the formats share.

A run is read from the database once into a :class:`RunExport` (plain
DataFrames: the shape ``Database.run_tables`` returns), so the writers are
testable without a database and other areas (the demo, the benchmarks) can
export tables they built themselves. What more than one format needs — which
proposals are candidate species, the name a candidate goes by, what reviewers
decided and noted, the model that made the run — lives here once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from biodiscover.storage.evidence import below_order_cutoff, run_order_cutoff
from biodiscover.storage.jsonable import jsonable
from biodiscover.storage.records import DESCRIBED, MAX_NUCLEOTIDES, RANKS, candidate_name, listed, plural
from biodiscover.storage.review_log import DECISIONS, MACHINE, UNDOING, Carried, carried, in_force, own_note

#: Proposal statuses that are not (or no longer) candidate new species: a reviewer rejected the
#: candidate, or identified its members as a known species.
NOT_CANDIDATES: tuple[str, ...] = ("rejected", "assigned")


@dataclass(frozen=True)
class RunExport:
    """One run's results as plain tables (what every writer consumes).

    * ``run``: id, kind, status, model_fingerprint, parameters, started_at, finished_at;
    * ``specimens``: ``processid`` + BIOSCAN-5M columns (the identification that
      came *with* the collection, coordinates, barcode, BIN) and, read from a database,
      ``submitted_barcode`` (:data:`SUBMITTED_BARCODE`; see :func:`barcode_to_send`);
    * ``assignments``: ``processid``, ``deepest_rank``, ``deepest_taxon``,
      ``novelty``, and ``label_<rank>`` / ``confidence_<rank>`` for every rank; read from a
      database, ``top_hit_source`` too (what the best key is, :func:`key_source`);
    * ``proposals``: ``proposal_id``, ``provisional_name``, ``parent_rank``,
      ``parent_taxon``, ``status``, ``version``, ``size``, ``evidence`` (dict);
    * ``members``: ``proposal_id``, ``processid``, ``probability``;
    * ``reviews``: the review log rows of these proposals (``Database.reviews`` shape);
    * ``met_here``: where reviewers' assigned candidates met each known species;
    * ``earlier`` / ``earlier_reviews``: earlier runs' decisions on these specimens and their review rows;
    * ``concepts``: provisional species name → the candidate that made it.
    """

    run: dict[str, Any]
    specimens: pd.DataFrame
    assignments: pd.DataFrame
    proposals: pd.DataFrame
    members: pd.DataFrame
    reviews: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: known species → {country: specimens} of the candidates reviewers assigned to it
    #: (``Database.assigned_countries``): what the flags read as keys from those countries
    #: (``flags.candidate_flags``), as the review does
    met_here: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: what reviewers decided in earlier runs about this run's specimens (``Database.earlier_decisions``): one row
    #: per specimen and accepted / assigned proposal of an earlier run holding it (``processid``, ``run_id``,
    #: ``decided_taxon``, ``decided_lineage``, then the ``proposals`` columns); the export credits the reviewer
    #: where this run named the specimen that species again or less deep on its lineage, and keeps the decision in
    #: the history where it named it otherwise
    earlier: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the review log rows of the proposals in ``earlier`` and ``retired`` (who decided, when, their notes)
    earlier_reviews: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the pending candidates of earlier runs holding this run's specimens that a later run retired
    #: (``Database.earlier_decisions``' ``retired``): the notes written on them follow the specimens' records
    retired: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: this run's specimens whose candidate a reviewer merged into another run's (``Database.earlier_decisions``'
    #: ``merged``: ``processid``, ``source_id``, ``run_id`` of the holder, its ``proposals`` columns): the holder's
    #: determination is theirs
    merged: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the merges in force touching this export's candidates (``Database.merges``: one row per candidate folded
    #: into another, with both ends' run, collection and name, and who merged it when): where each candidate a
    #: reviewer merged went, and what each holder took in
    merges: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: provisional species name → the candidate whose acceptance made it (``Database.provisional_concepts``): the
    #: concept of a specimen this run names that species
    concepts: Mapping[str, int] = field(default_factory=dict)
    #: proposal id → (the live proposal of another run holding its closest candidate, that run's collection), for
    #: the candidates whose closest candidate is another run's (``Database.closest_elsewhere``)
    elsewhere: Mapping[int, tuple[Any, str | None]] = field(default_factory=dict)
    #: proposal id → the live candidates of other runs that are probably its species (``Database.twins``)
    twins: Mapping[int, Sequence[Any]] = field(default_factory=dict)
    #: an export over several runs (a week's batch as one archive, :func:`~biodiscover.workflows.export.pipeline.
    #: combine_exports`): each run's own ``run`` record, oldest first; ``run`` then describes them together, each
    #: ``assignments`` row names its run (``run_id``) and each ``proposals`` row too (``run_id``, ``collection``).
    #: Empty for one run's export, whose bytes do not change
    runs: tuple[Mapping[str, Any], ...] = ()
    #: this run's rejected proposals a later run proposed again and recognised, itself rejected → those later
    #: proposals (``Database.run_tables``' ``rejected_again``): an export over several runs lists such a rejection
    #: once, as the latest of the export (:func:`~biodiscover.workflows.export.pipeline.combine_exports`); there it
    #: holds the ones it left out (their reviews stay in ``reviews``: the JSON gives their history on the later one)
    rejected_again: Mapping[int, Sequence[int]] = field(default_factory=dict)
    #: of an export over several runs: an accepted candidate's id → ``(processid, run id)`` of each specimen another
    #: run of the export named as its species that is not one of its reviewed members (``dwca.named_later``). Why:
    #: a species accepted in week 1 and named in weeks 2–4 by its keys counted 30 of its 71 specimens in its own
    #: row, file and section (season review F4). Empty for one run's export
    named_later: Mapping[int, Sequence[tuple[str, int]]] = field(default_factory=dict)
    #: of an export over several runs: processid → what an earlier run of the export read of it under another
    #: barcode (``also in week3, run 3, with another barcode: named Bitoma crenata there``), for a processid
    #: another collection brought again with another barcode. Why: the batch export gave FBCOC180-10 once, as week
    #: 3b's moth, with nothing saying week 3 had named a beetle from another read of that id (e31 review F22)
    other_barcodes: Mapping[str, str] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        """The run did not complete (killed, failed, still running): its tables may be incomplete. Of an export
        over several runs: one of them did not (:meth:`incomplete_runs`)."""
        if self.runs:
            return bool(self.incomplete_runs())
        return str(self.run.get("status") or "completed") != "completed"

    def incomplete_runs(self) -> list[Mapping[str, Any]]:
        """The runs of a multi-run export that did not complete (``--partial`` let them in)."""
        return [r for r in self.runs if str(r.get("status") or "completed") != "completed"]

    def run_of(self, run_id: Any) -> Mapping[str, Any]:
        """The record of the run that named a specimen (its assignment's ``run_id``): of a multi-run export, that
        run's own, so each specimen's remarks, DNA method and dataset say which run and collection it came from;
        else ``run``."""
        for r in self.runs:
            if r.get("id") == run_id:
                return r
        return self.run

    def own_members(self) -> pd.DataFrame:
        """``members`` as the specimen's own run sees them: of a multi-run export, only the rows whose candidate is
        of the run that named the specimen (its latest run here). Why: a specimen a later run triaged again is
        named as that run names it ("each specimen's latest completed run", as the review counts), and an earlier
        run's candidate still holding it reaches its record the way that later run's own export writes it (an
        earlier decision, a merge), never as a second determination."""
        m = self.members
        if not self.runs or m.empty or "run_id" not in self.proposals or "run_id" not in self.assignments:
            return m
        prop_run = dict(zip(self.proposals["proposal_id"], self.proposals["run_id"]))
        spec_run = dict(zip(self.assignments["processid"], self.assignments["run_id"]))
        keep = [prop_run.get(p) == spec_run.get(s) for p, s in zip(m["proposal_id"], m["processid"])]
        return m[keep]

    def candidate_of(self) -> dict[str, Any]:
        """processid → proposal id of the candidate holding it (highest membership wins).

        A proposal a reviewer rejected, or identified as a known species, is not a
        candidate species any more, so its members are not counted here.
        """
        m = self.own_members()
        if m.empty:
            return {}
        if "status" in self.proposals and not self.proposals.empty:
            gone = set(self.proposals.loc[self.proposals["status"].isin(NOT_CANDIDATES), "proposal_id"])
            m = m[~m["proposal_id"].isin(gone)]
        m = m.sort_values("probability", ascending=False) if "probability" in m else m
        return dict(m.drop_duplicates("processid")[["processid", "proposal_id"]].itertuples(index=False, name=None))

    def trails(self) -> dict[Any, "ReviewTrail"]:
        """proposal id → what reviewers decided and noted (see :func:`review_trails`)."""
        return review_trails(self.reviews)

    def histories(self) -> dict[Any, tuple["ReviewAction", ...]]:
        """proposal id → every review of it, undone ones included (see :func:`review_histories`)."""
        return review_histories(self.reviews)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote (for the CLI summary and ``--json``).

    ``proposals`` counts the candidate species (proposals a reviewer has not
    rejected or assigned to a known species), ``accepted`` those of them a reviewer
    accepted; ``rejected`` and ``assigned`` count each of the other two statuses on
    its own: a script reading ``rejected`` must not find the proposals a reviewer
    identified as a known species in it. proposals + rejected + assigned = every
    proposal in the export: what ``to_json``'s ``proposals`` counts, as the command line's "65 candidate species
    proposed (…)" does (its ``candidates`` is ``proposals`` here). Why: ``--json`` said "proposals": 63 where the
    line, the files and the report said 65, and accepted + pending + rejected + assigned did not add up to it (e32
    review R18).
    """

    format: str
    out: Path
    files: tuple[Path, ...]
    specimens: int
    proposals: int
    rejected: int = 0
    assigned: int = 0
    accepted: int = 0
    #: whether the run did not complete (``--partial``); required: an export must say it, never default it
    partial: bool = field(kw_only=True)
    #: the run's candidates a later run re-clustered (not in this export) and the ids of those runs
    superseded: int = field(kw_only=True)
    superseded_by: tuple[int, ...] = ()
    #: the triage runs exported (several: one export over them, ``RunExport.runs``)
    runs: tuple[int, ...] = ()
    #: of ``proposals``' pending ones, those whose reads are not usable COI (:func:`not_coi_candidates`): not
    #: published or counted as candidate species
    not_coi: int = 0
    #: each exported run and its model (``storage.bundle.model_named``) when the runs used more than one model
    models: tuple[tuple[int, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "out": str(self.out), "files": [str(f) for f in self.files],
                **({"runs": list(self.runs)} if len(self.runs) > 1 else {}),
                **({"models": {str(r): m for r, m in self.models}} if self.models else {}),
                "specimens": self.specimens, "proposals": self.proposals + self.rejected + self.assigned,
                "candidates": self.proposals, "accepted": self.accepted,
                "pending": self.proposals - self.accepted - self.not_coi, "not_coi": self.not_coi,
                "rejected": self.rejected, "assigned": self.assigned,
                "partial": self.partial, "superseded": self.superseded, "superseded_by": list(self.superseded_by)}

    def counts_text(self) -> str:
        """What the export's proposals became, in the words every format uses (:func:`counts_text`)."""
        return counts_text(self.accepted, self.proposals - self.accepted - self.not_coi, self.assigned, self.rejected,
                           self.not_coi)

    def superseded_note(self, run: int | str) -> str | None:
        """One line for the user when later runs took over some of the run's candidates, else None."""
        if not self.superseded:
            return None
        runs = ", ".join(str(r) for r in self.superseded_by)
        many = "s" if len(self.superseded_by) != 1 else ""
        of = f"runs {listed(self.runs)}" if len(self.runs) > 1 else f"run {run}"
        return (f"note: {self.superseded} candidate species of {of} were re-clustered by later run{many} "
                f"{runs} and are not in this export; export run{many} {runs} for the current grouping")

    def models_note(self) -> str | None:
        """``note: runs 2 and 3 used different models (run 2: model, sha256:2b748e10b35e…; run 3: model2, …)``: one
        line when the runs exported as one were triaged with more than one model, else None.

        Why: ``export --run 2 --run 3`` of one plate triaged with two model bundles wrote "134 specimens, 21
        candidate species" as one collection's, naming neither model (e35 week-2 review, F6)."""
        if not self.models:
            return None
        return (f"note: runs {listed([r for r, _ in self.models])} used different models ("
                + "; ".join(f"run {r}: {m}" for r, m in self.models)
                + "): their names are two models' readings, not one")


def merge_text(merge: Mapping[str, Any], holder: bool = False) -> str:
    """``#29 Chironominae gen. sp. cand29 (week2, run 5; 13 specimens) merged into #2 Chironominae gen. sp.
    "Tromsø, A" (week1, run 3; accepted) by Ana Silva, 2026-12-07``: one row of ``RunExport.merges`` as the report
    says it, both ends with their run and collection (a merge across weeks is the common case); ``holder``: as the
    holder's own section says it, without the holder (``#29 … (week2, run 5; 13 specimens) by Ana Silva, …``)."""
    def where(collection: Any, run: Any) -> str:
        return f"{collection}, run {run}" if isinstance(collection, str) and collection else f"run {run}"

    size = merge.get("source_size")
    brought = f"; {plural(int(size), 'specimen')}" if isinstance(size, (int, float)) and size == size else ""
    came = where(merge.get("source_collection"), merge["source_run"])
    into = "" if holder else (f" merged into #{merge['into_id']} {merge['into_name']} "
                              f"({where(merge.get('into_collection'), merge['into_run'])}; {merge.get('into_status')})")
    return (f"#{merge['source_id']} {merge['source_name']} ({came}{brought}){into} by "
            f"{merge.get('reviewer') or 'a reviewer'}, {str(merge.get('merged_at') or '')[:10]}")


def export_run_ids(data: RunExport) -> set[int]:
    """The runs an export holds: each of an export over several runs, else its one run."""
    ids = [r.get("id") for r in data.runs] if data.runs else [data.run.get("id")]
    return {int(i) for i in ids if isinstance(i, (int, np.integer))}


def merged_away(data: RunExport) -> list[dict[str, Any]]:
    """The export's own candidates a reviewer merged into another (``RunExport.merges`` whose source is of one of
    its runs): listed by the report and counted beside its proposals, as they are no longer candidates of their
    own (e32 review R26: week 2's export said "0 accepted" and listed neither its #29 nor the #2 it went to)."""
    if data.merges.empty:
        return []
    runs = export_run_ids(data)
    return [m for m in _records(data.merges) if int(m["source_run"]) in runs]


def merged_into(data: RunExport) -> dict[Any, list[dict[str, Any]]]:
    """Holder's proposal id → the merges that folded another candidate into it (its section says them)."""
    out: dict[Any, list[dict[str, Any]]] = {}
    for m in _records(data.merges) if not data.merges.empty else []:
        out.setdefault(m["into_id"], []).append(m)
    return out


def awaiting_review(status: object) -> bool:
    """Not decided by a reviewer yet: pending, or no status (a table built without one)."""
    return status in ("pending", None) or (isinstance(status, float) and status != status)


def not_coi_candidates(props: Mapping[Any, Mapping[str, Any]]) -> set[Any]:
    """The pending candidates none of whose members' reads is usable COI (``barcode_gap.gap_of``'s "not COI", the
    verdict the report leaves them out of the gap plot by): the archive does not publish them as candidate species
    (e32 R13: "Unplaced sp. cand40", 77 % to its nearest key, went to GBIF as a new species of Insecta), and no
    count calls them candidate species (:func:`proposal_counts`)."""
    from biodiscover.discovery.barcode_gap import gap_of

    return {i for i, p in props.items() if p.get("status") == "pending" and gap_of(p.get("evidence")).verdict
            == "not COI"}


def proposal_counts(proposals: pd.DataFrame) -> dict[str, int]:
    """The proposals of an export by what became of them: ``proposed`` (the candidate species: all but ``not_coi``),
    ``accepted`` (as new species), ``pending`` (awaiting review), ``assigned`` (to a known species), ``rejected``,
    and ``not_coi``: pending ones whose reads are not usable COI (:func:`not_coi_candidates`), not among
    ``proposed`` or ``pending``; what :func:`counts_text` says."""
    status = proposals["status"] if "status" in proposals and not proposals.empty else pd.Series(dtype=object)
    not_coi = len(not_coi_candidates(dict(enumerate(plain_records(proposals))))) if len(status) else 0
    pending = int(sum(1 for s in status if awaiting_review(s))) - not_coi
    return {"proposed": len(proposals) - not_coi, "accepted": int((status == "accepted").sum()), "pending": pending,
            "assigned": int((status == "assigned").sum()), "rejected": int((status == "rejected").sum()),
            "not_coi": not_coi}


def counts_text(accepted: int, pending: int, assigned: int, rejected: int, not_coi: int = 0) -> str:
    """``9 candidate species proposed (1 accepted by a reviewer, 2 awaiting review, 2 assigned to a known species,
    4 rejected by a reviewer)``: the one way the command line, eml.xml's abstract and the report's cards count an
    export's proposals, each figure saying what it counts; ``not_coi`` pending candidates of reads not usable as COI
    are said apart (the archive does not publish them as species: e33, e32 review R13). Why: one season's export
    said "3 candidate species (1 accepted, 2 not yet)" on the command line and in eml.xml, and "9 candidate species
    proposed · 1 accepted · 2 awaiting · 2 assigned · 4 rejected" in the report (season review F11). Assigned and
    rejected are said where there are any, as the report's cards show them."""
    proposed = accepted + pending + assigned + rejected
    parts = [f"{accepted} accepted by a reviewer", f"{pending} awaiting review",
             *([f"{assigned} assigned to a known species"] if assigned else []),
             *([f"{rejected} rejected by a reviewer"] if rejected else [])]
    return (f"{proposed} candidate species proposed" + (f" ({', '.join(parts)})" if proposed else "")
            + (f"; {plural(not_coi, 'candidate')} of reads not usable as COI, not counted as species (⚠COI in the "
               "review)" if not_coi else ""))


def live_candidates(proposals: pd.DataFrame) -> pd.DataFrame:
    """The proposals that are candidate species: every one a reviewer did not reject or assign."""
    if proposals.empty or "status" not in proposals:
        return proposals
    return proposals[~proposals["status"].isin(NOT_CANDIDATES)]


def order_cutoffs(data: "RunExport") -> list[float | None]:
    """Each proposal's run's order cut-off (``storage.evidence.run_order_cutoff``; None: its reference learned its
    orders), in ``data.proposals``' order: an export over several runs reads each candidate's own run's."""
    if not data.runs or "run_id" not in data.proposals:
        return [run_order_cutoff(data.run.get("parameters"))] * len(data.proposals)
    by_run = {str(r.get("id")): run_order_cutoff(r.get("parameters")) for r in data.runs}
    return [by_run.get(str(rid)) for rid in data.proposals["run_id"]]


def nearest_below(data: "RunExport") -> list[tuple[float | None, bool | None]]:
    """(the run's order cut-off, whether the nearest known species lies below it) per proposal, in
    ``data.proposals``' order (``storage.evidence.below_order_cutoff``; None: not known): proposals.csv's and the
    JSON's ``order_cutoff`` and ``nearest_below_order_cutoff``. Why: beetle candidates read a moth at 82.8 % as
    their nearest known species, and a spreadsheet had nothing to tell it from one at 95 % by (e33 review F4)."""
    idents = data.proposals["nearest_identity"] if "nearest_identity" in data.proposals else \
        [None] * len(data.proposals)
    out = []
    for ident, cut in zip(idents, order_cutoffs(data)):
        value = None if ident is None or pd.isna(ident) else float(ident)
        out.append((cut, below_order_cutoff(value, cut)))
    return out


def candidate_label(proposal: Mapping[str, Any]) -> str:
    """The one name of a candidate (an export row): :func:`~biodiscover.storage.records.candidate_name`,
    the function the review app uses too."""
    return candidate_name(proposal.get("provisional_name"), proposal.get("parent_taxon"), proposal.get("parent_rank"),
                          proposal.get("proposal_id"))


def display_text(value: Any) -> str:
    """``value`` as display text; None, NaN (a missing cell in a DataFrame) and blanks are ''."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def placement(proposal: Mapping[str, Any]) -> str:
    """Where a proposal sits, as a taxonomist reads it: ``genus Megaselia``; ``species Pterostichus
    niger (assigned by a reviewer)`` once a reviewer identified it as a known species; ``unplaced``
    when discovery could not put it under any known taxon (a missing parent is NaN in a DataFrame,
    which must never print as ``nan nan``)."""
    if proposal.get("status") == "assigned" and display_text(proposal.get("provisional_name")):
        carried = carried_text(proposal)
        return f"species {display_text(proposal.get('provisional_name'))} " + \
            (f"(carried from {carried})" if carried else "(assigned by a reviewer)")
    where = " ".join(t for t in (display_text(proposal.get("parent_rank")),
                                 display_text(proposal.get("parent_taxon"))) if t)
    return where or "unplaced"


def carried_text(proposal: Mapping[str, Any]) -> str | None:
    """``run 1's #7, accepted by Kari Nordmann``: the earlier candidate whose reviewer's decision the database carried
    to this assigned one (``carried_from``, a later triage proposed exactly its specimens again), in the words the
    report and proposals.csv share; None for any other proposal."""
    c = proposal.get("carried_from")
    if not isinstance(c, Mapping):
        return None
    who = c.get("reviewer") or "a reviewer"
    return f"run {c.get('run_id')}'s #{c.get('proposal_id')}, {c.get('decision')} by {who}"


#: ``top_hit_source`` of a best key that is the reference's (:func:`key_source`)
REFERENCE_KEY = "reference"


def key_source(reviewed: Mapping[str, Any] | None) -> str:
    """What a specimen's best key (``top_hit``) is, in the words every export gives (assignments.csv's and the
    JSON's ``top_hit_source``, the archive's evidence): :data:`REFERENCE_KEY`, or for a member of a candidate a
    reviewer decided (``Database.reviewed_keys``) ``a member of run 1's #5, accepted as Vymidae gen. sp. BD-0003 by
    W2 Reviewer`` / ``…, assigned to Tiaopsis sp. BIOUG57720-B08 by …``. Why: a triage names from those members as
    keys, and the archive called one a reference barcode (e35 week-2 review, finding 7)."""
    if not isinstance(reviewed, Mapping):
        return REFERENCE_KEY
    how = "accepted as" if reviewed.get("status") == "accepted" else "assigned to"
    return (f"a member of run {reviewed.get('run_id')}'s #{reviewed.get('proposal_id')}, {how} "
            f"{reviewed.get('taxon') or 'a species'} by {reviewed.get('reviewer') or 'a reviewer'}")


def with_key_sources(assignments: pd.DataFrame, reviewed: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """``assignments`` with ``top_hit_source`` after ``top_hit`` (:func:`key_source`; empty where no key was
    met), from the run's keys reviewers decided (``Database.reviewed_keys``): what the archive, assignments.csv and
    the JSON read, so the three say the same of a key."""
    if "top_hit" not in assignments or "top_hit_source" in assignments:
        return assignments
    out = assignments.copy()
    source = [key_source(reviewed.get(k)) if isinstance(k, str) and k else None for k in out["top_hit"]]
    out.insert(out.columns.get_loc("top_hit") + 1, "top_hit_source", pd.Series(source, index=out.index, dtype=object))
    return out


def assigned_kind(proposal: Mapping[str, Any]) -> str:
    """What a reviewer identified an assigned candidate's members as, in words the archive, the report and the
    sheets share: a species of the reference, one accepted in this database (provisional, undescribed) or a
    described one the reference lacks that the reviewer added (a tropical plate's 371 Aedes aegypti)."""
    made = proposal.get("assigned_provisional")
    if made is not None and made == made:  # NaN in a frame column of ints and Nones
        return "a provisional species accepted here"
    if proposal.get("assigned_status") == DESCRIBED:
        return "a described species not in the reference, added by the reviewer"
    return "a known species"


def set_aside_note(proposals: pd.DataFrame) -> str:
    """The sentence saying which proposals are no longer candidates (listed after the candidates), by
    what reviewers did to them; '' when none is."""
    if proposals.empty or "status" not in proposals:
        return ""
    counts = proposals["status"].value_counts()
    parts = []
    for status, words in (("rejected", "rejected"), ("assigned", "assigned to a known species")):
        n = int(counts.get(status, 0))
        if n:
            parts.append(f"{n} proposal{'s' if n != 1 else ''} {words} by a reviewer")
    return ("Listed last: " + " and ".join(parts) + ".") if parts else ""


def model_description(run: Mapping[str, Any]) -> str:
    """The run's model fingerprint, else the bundle path it recorded, else 'unknown'.

    A fingerprint that is a whole settings record (a JSON object, or anything long)
    is shown as the bundle path plus a short hash of it: it goes into one-line
    remarks and the dataset abstract, where a JSON blob reads as noise.
    """
    raw = run.get("parameters")
    params: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    model = params.get("model")
    fingerprint = run.get("model_fingerprint")
    text = fingerprint.strip() if isinstance(fingerprint, str) else ""
    if text and (text.startswith(("{", "[")) or len(text) > 80 or "\n" in text):
        short = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        return f"{model} (fingerprint {short})" if model else f"fingerprint {short}"
    return str(text or model or "unknown")


# -- the review log, per proposal -----------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """A reviewer's note on one line: line breaks and tabs written ``\\n``, ``\\r``, ``\\t``, the rest as typed."""
    return str(text).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


class TrailNote(NamedTuple):
    """A reviewer's note in force on a candidate: when, by whom, her text, and ``on``: where a carried one was
    written (``on #2: 5 specimens of week1``, :meth:`~biodiscover.storage.review_log.Carried.written_on`), None for
    one written on this candidate."""

    at: str
    reviewer: str
    text: str
    on: str | None = None


@dataclass(frozen=True)
class ReviewTrail:
    """What reviewers did to one proposal, undone reviews left out.

    ``decision``/``decided_by``/``decided_at``: the last accept / reject / assign in
    force (a decision a later run carried here is its reviewer's, made when she made it);
    ``reviewers``: everyone whose review is in force, first seen first;
    ``notes``: :class:`TrailNote` of every note in force, oldest first (a carried one says where it was written);
    ``carried``: (when, what, whose) of each review in force a later run carried here, as the database's action
    (``rename carried from #2 by run 5``), never quoted as a reviewer's note (e29 F9), and whose review it repeats,
    when and on which candidate (``Kari Nordmann's, 2026-12-01, on #2: 5 specimens of week1``,
    :meth:`~biodiscover.storage.review_log.Carried.origin`; e31 F4).
    """

    decision: str | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    reviewers: tuple[str, ...] = ()
    notes: tuple[TrailNote, ...] = ()
    carried: tuple[tuple[str, str, str], ...] = ()

    def notes_text(self) -> str:
        """All notes as one line: ``“text” (reviewer, 2026-11-23); …``, a carried one ``“text” (reviewer,
        2026-11-23, on #2: 5 specimens of week1)``.

        Each text is quoted: a note may hold ``; `` itself ("+1 female in ethanol; holotype candidate"), and
        joined bare with the separator the remarks use too, nobody could tell where one note ends. In typographic
        quotes, as the HTML report shows it, with the reviewer's own ``"`` as typed: JSON's escapes put backslashes
        in proposals.csv and the archive (``"contaminant, see \\"lab note\\" 3"``, e32 R7). A line break is
        ``\\n``, so a note stays one line of a remark.
        """
        return "; ".join(f"“{_one_line(n.text)}” ({n.reviewer}, {str(n.at)[:10]}"
                         + (f", {n.on})" if n.on else ")") for n in self.notes)

    def carried_text(self) -> str:
        """The carried reviews as one line of actions, unquoted and signed by the database, each saying whose review
        it repeats: ``rename carried from #2 by run 5 (biodiscover, 2026-12-07; Kari Nordmann's, 2026-12-01, on #1:
        5 specimens of week1)``."""
        return "; ".join(f"{what} ({MACHINE}" + (f", {str(at)[:10]}" if at else "") + f"; {whose})"
                         for at, what, whose in self.carried)

    def review_text(self) -> str:
        """:meth:`notes_text`, then :meth:`carried_text`: what proposals.csv's ``review_notes`` holds."""
        return "; ".join(t for t in (self.notes_text(), self.carried_text()) if t)


def review_trails(reviews: pd.DataFrame) -> dict[Any, ReviewTrail]:
    """proposal id → :class:`ReviewTrail` from the review log (an undo, a reopen or a withdrawal takes its target
    out; an undo of an undo puts it back)."""
    if reviews is None or reviews.empty or "proposal_id" not in reviews:
        return {}
    rows = sorted(_records(reviews), key=lambda r: r.get("id") or 0)
    active = in_force(rows)
    by_proposal: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        # a reopen in force is a review of its own (who reopened, and the note saying why), deciding nothing
        if r.get("action") not in ("undo", "withdraw") and active.get(r.get("id")) and \
                r.get("proposal_id") is not None:
            by_proposal.setdefault(r["proposal_id"], []).append(r)
            # a merge or split is a review of every candidate it touched (the log files it under one): the part
            # split off names its reviewer too (a real plate's split part read "reviewers" empty, e27 F11); it
            # decides nothing and notes nothing there
            for other in _touched(r)[1:]:
                by_proposal.setdefault(other, []).append({**r, "action": "touched", "note": None})
    out: dict[Any, ReviewTrail] = {}
    for pid, rs in by_proposal.items():
        made = [(r, carried(r)) for r in rs]
        decided = [(r, c) for r, c in made if r.get("action") in DECISIONS]
        last, how = decided[-1] if decided else (None, None)
        out[pid] = ReviewTrail(
            decision=last.get("action") if last else None,
            decided_by=(how.reviewer if how is not None and how.reviewer else last.get("reviewer")) if last else None,
            decided_at=(how.at if how is not None and how.at else last.get("created_at")) if last else None,
            reviewers=tuple(dict.fromkeys(str(_author(r, c)) for r, c in made if _author(r, c))),
            notes=tuple(_trail_note(r, c) for r, c in made if r.get("action") != "touched" and own_note(r)),
            carried=tuple((str(r.get("created_at") or "") if c.run is not None else "",
                           c.words(str(r.get("action"))), c.origin()) for r, c in made
                          if c is not None and r.get("action") not in ("note", "touched")))
    return out


def _author(review: Mapping[str, Any], how: Carried | None) -> Any:
    """Who a review in force is a review by: its reviewer, or the one whose review a later run carried (not the
    database that carried it)."""
    return how.reviewer if how is not None and how.reviewer else review.get("reviewer")


def _trail_note(review: Mapping[str, Any], how: Carried | None) -> TrailNote:
    """A review's own note as :class:`TrailNote`: a carried one signed and dated as its author wrote it, saying
    where."""
    text = own_note(review) or ""
    if how is None:
        return TrailNote(str(review.get("created_at") or ""), str(review.get("reviewer") or ""), text)
    return TrailNote(str(how.at or review.get("created_at") or ""), str(_author(review, how) or ""), text,
                     how.written_on())


@dataclass(frozen=True)
class ReviewAction:
    """One review of a candidate as the exports list it: what was done, by whom, when, and the candidate's
    name before and after (:func:`~biodiscover.storage.records.candidate_name`, the name the review app showed).

    The trail keeps only what is in force; this keeps everything, because a name once accepted (``… sp.
    BD-0001``) may be on labels and in letters after a rename, and a merge or split changes which candidate
    a specimen was in. ``others``: (id, name after) of the other candidates a merge or split touched;
    ``undone_by``: the id of the undo in force that took this review back, else None.
    """

    review_id: Any
    action: str
    reviewer: str | None
    at: str | None
    before_name: str | None
    after_name: str | None
    note: str | None = None
    others: tuple[tuple[Any, str | None], ...] = ()
    undoes: Any = None
    undone_by: Any = None
    #: (rank, name) of the taxon the candidate sat under after this review: what its name is open nomenclature in
    after_parent: tuple[str | None, str | None] = (None, None)
    #: for a review a later run carried onto this candidate (signed by the database, dated when carried): where it
    #: came from and whose it was (:func:`~biodiscover.storage.review_log.carried`)
    carried: Carried | None = None

    @property
    def author(self) -> str | None:
        """Whose review this is: its reviewer, or for a carried one the reviewer who made it where it was made."""
        return self.carried.reviewer if self.carried is not None and self.carried.reviewer else self.reviewer

    @property
    def renames(self) -> bool:
        """The candidate had another name after this review than before it (and had one before)."""
        return self.before_name is not None and self.after_name is not None and self.before_name != self.after_name

    def as_json(self) -> dict[str, Any]:
        c = self.carried
        return {"review_id": self.review_id, "action": self.action, "reviewer": self.reviewer, "at": self.at,
                "before_name": self.before_name, "after_name": self.after_name, "note": self.note,
                "others": [{"proposal_id": i, "name": n} for i, n in self.others], "undoes": self.undoes,
                "undone_by": self.undone_by,
                "carried": None if c is None else {
                    "words": c.words(self.action) if self.action != "note" else None, "from_proposal": c.source,
                    "by_run": c.run, "reviewer": c.reviewer, "at": c.at, "written_on": c.written_on()}}

    def in_words(self) -> str:
        """``review 7: rename Thopliaus sp. BD-0001 → Thopliaus sp. Kruger-1 (A. Taxonomist, 2026-12-01)``; a carried
        one ``review 22: rename carried from #2 by run 5 … (biodiscover, 2026-12-07)``."""
        names = f" {self.before_name} → {self.after_name}" if self.renames else ""
        what = self.carried.words(self.action) if self.carried is not None and self.action != "note" else self.action
        return f"review {self.review_id}: {what}{names} ({self.reviewer}, {str(self.at or '')[:10]})"


def _snapshot_name(snapshot: Any, proposal_id: Any) -> str | None:
    """The candidate's name in a review's before / after snapshot; None where it did not exist (or an older
    log kept no snapshot)."""
    props = snapshot.get("proposals") if isinstance(snapshot, Mapping) else None
    snap = props.get(str(proposal_id)) if isinstance(props, Mapping) else None
    if not isinstance(snap, Mapping):
        return None
    return candidate_name(snap.get("provisional_name"), snap.get("parent_name"), snap.get("parent_rank"),
                          proposal_id)


def _snapshot_parent(snapshot: Any, proposal_id: Any) -> tuple[str | None, str | None]:
    props = snapshot.get("proposals") if isinstance(snapshot, Mapping) else None
    snap = props.get(str(proposal_id)) if isinstance(props, Mapping) else None
    return (snap.get("parent_rank"), snap.get("parent_name")) if isinstance(snap, Mapping) else (None, None)


def _touched(review: Mapping[str, Any]) -> list[Any]:
    """The candidates review row ``review`` touched: the one it is filed under first, then, for a merge or a split,
    every other its after-snapshot holds."""
    touched = [review.get("proposal_id")]
    after = review.get("after")
    if review.get("action") in ("merge", "split") and isinstance(after, Mapping):
        touched += [int(k) for k in (after.get("proposals") or {}) if str(k) != str(review.get("proposal_id"))]
    return touched


def _review_id(value: Any) -> int | None:
    """A review id read from a frame: an int, None for a gap. Why: a column with gaps is float in pandas, and the
    JSON history said ``"undoes": 17.0`` for a review id (season review F11)."""
    return None if value is None or value != value else int(value)


def review_histories(reviews: pd.DataFrame) -> dict[Any, tuple[ReviewAction, ...]]:
    """proposal id → every review of it, oldest first, undone ones and undos included (see :class:`ReviewAction`).

    A merge or a split is listed for every candidate it touched (the log files it under one of them), so the part
    split off, or the candidate a merge kept, says where its members came from."""
    if reviews is None or reviews.empty or "proposal_id" not in reviews:
        return {}
    rows = sorted(_records(reviews), key=lambda r: r.get("id") or 0)
    active = in_force(rows)
    undone_by = {r.get("target_review_id"): r.get("id") for r in rows
                 if r.get("action") in UNDOING and active.get(r.get("id"))}
    out: dict[Any, list[ReviewAction]] = {}
    for r in rows:
        before, after = r.get("before"), r.get("after")
        touched = _touched(r)
        for pid in touched:
            if pid is None:
                continue
            others = tuple((o, _snapshot_name(after, o) or _snapshot_name(before, o)) for o in touched if o != pid)
            note = own_note(r) if pid == touched[0] else None
            out.setdefault(pid, []).append(ReviewAction(
                review_id=r.get("id"), action=str(r.get("action")), reviewer=r.get("reviewer"),
                at=r.get("created_at"), before_name=_snapshot_name(before, pid), after_name=_snapshot_name(after, pid),
                note=note, others=others, undoes=_review_id(r.get("target_review_id")),
                undone_by=None if active.get(r.get("id"), True) else undone_by.get(r.get("id")),
                after_parent=_snapshot_parent(after, pid), carried=carried(r)))
    return {pid: tuple(acts) for pid, acts in out.items()}


# -- table shaping --------------------------------------------------------------------------------------------


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with missing values (NaN, NA) as None."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: NaN → None; numpy scalars and nested values converted where needed."""
    rows = _records(frame)
    simple = (str, int, float, bool, type(None))
    for row in rows:
        for k, v in row.items():
            if not isinstance(v, simple) or isinstance(v, (np.integer, np.floating, np.bool_)):
                row[k] = jsonable(v)
    return rows


plain_records = _records

#: The specimens column (``Database.run_tables``) with the barcode as submitted: cleaned, not cut to the
#: 660 nt the analysis reads; None where the database never recorded it (written before schema 0006).
SUBMITTED_BARCODE = "submitted_barcode"


def barcode_to_send(specimen: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The barcode an export sends on for one specimen row, and what to say about it (None: nothing to say).

    Why the submitted read and not ``dna_barcode``: the analysis compares the first 660 nt (as BIOSCAN-5M's
    loader cuts them), but a taxonomist passes the archive and the FASTA on to GBIF and BOLD as the specimen's
    sequence, and a 1,500-nt full-length COI sent as 660 nt loses what the lab sequenced (the review of a real
    plate, C2). Where the read was cut, the note says what the analysis compared; where the database never
    recorded the read (an older biodiscover kept only the cut), the barcode it kept goes, and the note says so
    rather than claim that is the whole read. A table without the column (built in code, not read from a
    database) holds its barcodes as given: those are sent, with nothing to say.
    """
    analysed = specimen.get("dna_barcode")
    if not isinstance(analysed, str) or not analysed:
        return None, None
    if SUBMITTED_BARCODE not in specimen:
        return analysed, None
    submitted = specimen.get(SUBMITTED_BARCODE)
    if not isinstance(submitted, str) or not submitted:
        return analysed, (f"length as submitted not recorded (ingested by an earlier biodiscover, which kept at "
                          f"most the first {MAX_NUCLEOTIDES} nt)")
    if len(submitted) > len(analysed):
        return submitted, f"compared on the first {len(analysed):,} nt of the {len(submitted):,} nt submitted"
    return submitted, None

#: Ranks above genus: a species placed only there has no genus either ("Phoridae gen. sp.").
ABOVE_GENUS: tuple[str, ...] = tuple(RANKS[: RANKS.index("genus")])


def set_aside_text(run: Mapping[str, Any]) -> str | None:
    """``3 specimens of the collection were not triaged: barcode shorter than 200 nt (N runs trimmed) 2, neither
    barcode nor image 1 (listed in the quarantine report plate.quarantine.csv)``: what the run's ingest set aside
    (``run["set_aside"]``: :meth:`~biodiscover.storage.db.runs.RunsMixin.run_set_aside`); None where it set
    nothing aside or the table was built without a database.

    Why: a plate of 31 specimens was published as 29 with no word of the two whose barcodes failed (the data
    manager's review, F4). One owner of the sentence: eml.xml's abstract, columns.txt and the HTML report say it
    alike. The report is named, not its path: a published archive carries no local paths."""
    from biodiscover.storage.validation import KIND_LABELS

    held = run.get("set_aside")
    counts = held.get("counts") if isinstance(held, Mapping) else None
    if not counts:
        return None
    n = sum(counts.values())
    why = ", ".join(f"{KIND_LABELS.get(k, k)} {c:,}" for k, c in counts.items())
    text = f"{n:,} specimen{'' if n == 1 else 's'} of the collection {'was' if n == 1 else 'were'} not triaged: {why}"
    report = held.get("file") if isinstance(held, Mapping) else None
    return text + (f" (listed in the quarantine report {Path(str(report)).name})" if report else "")
