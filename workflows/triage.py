"""Triage pipeline: read a collection, name each specimen to its deepest confident
rank, flag novel species, cluster them into candidate species, store it all.

Why a pipeline module apart from the CLI verb: the batch runner
(``workflows.batch``) and the tests call the same function the ``triage`` verb
calls; the verb only parses options and prints the summary.

Stages (each logged and reported through ``progress``): read → ingest → triage
→ candidates → write. The run row's heartbeat carries the same stages, so the
review TUI and the batch runner can follow a long triage.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import shlex
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from biodiscover.discovery.clustering import ClusteringConfig, make_clusterer, run_record
from biodiscover.discovery.engine import DiscoveryModel, TriageResult, set_apart_kind
from biodiscover.discovery.naming import naming_limits, pooled_share
from biodiscover.discovery.proposals import CandidateProposal, candidate_species
from biodiscover.discovery.reference import while_aligning
from biodiscover.storage.bundle import Bundle, model_named
from biodiscover.storage.errors import InputError, StoppedAfterWork
from biodiscover.storage.evidence import beyond_cutoff_words
from biodiscover.storage.progress import Progress, no_progress
from biodiscover.storage.records import (PHOTO_SCORES, RANK_PLURALS, RANKS, Specimen, candidate_name, country_key,
                                          listed, named_ranks, plural)
from biodiscover.storage.safetext import neutralise_cell

if TYPE_CHECKING:  # storage.db is imported only with a database (~1 s CPU)
    from biodiscover.storage.db.runs import EarlierRun, Reclustered

log = logging.getLogger(__name__)


@dataclass
class TriageSummary:
    """What one triage did (the CLI prints it; ``--json`` writes it)."""

    run_id: int | None
    collection: str
    specimens: int
    quarantined: int
    triaged: int
    #: specimens without a usable barcode (those with a photograph call are triaged from it, the rest are not)
    no_usable_barcode: int
    named_to: dict[str, int]
    novel: int
    proposals: int
    seconds: dict[str, float] = field(default_factory=dict)
    #: specimens per evidence used: "dna", "dna+image", "image", "none" (no call: no usable barcode, or one set
    #: apart below)
    by_modality: dict[str, int] = field(default_factory=dict)
    #: of ``by_modality["image"]``, those named at the image classifier's own thresholds, not the level: a bundle
    #: fitted before its scores were calibrated to P(right) (``multimodal.photo_only_reason``)
    photos_at_thresholds: int = 0
    #: of ``triaged``, barcodes named nothing because of what they are (``engine.set_apart_kind``): chimeric (two
    #: specimens' DNA in one read) and unrelated to every reference key
    chimeric: int = 0
    unrelated: int = 0
    #: reference keys added from the members of candidates reviewers accepted (provisional species) or assigned (to
    #: a known or described species) in the database
    provisional_keys: int = 0
    quarantine_file: str | None = None
    #: photos set aside from specimens kept without them (in the quarantine report, not in ``quarantined``)
    photos_set_aside: int = 0
    #: problems of the input file itself (a gzip cut short: ``QuarantinedRecord.whole_file``), in the quarantine
    #: report but neither a specimen nor among ``quarantined``
    file_problems: int = 0
    #: per learned rank, the collection's estimated share of specimens absent from the reference, which its
    #: P(absent) assumes (``DiscoveryModel.adapt``; empty: a bundle that reads every collection at even odds)
    absent_share: dict[str, float] = field(default_factory=dict)
    #: the specimens ``absent_share`` was estimated over (those a learned rank placed: the rest, beyond a published
    #: cut-off, keep even odds and do not count) and the pseudo-specimens at even odds it is weighed against
    absent_share_over: int = 0
    absent_share_weight: float | None = None
    #: per learned rank, the share the collection's own specimens read, without the pseudo-specimens
    #: (``DiscoveryModel.collection_basis``): what the line sets beside ``absent_share`` where they differ
    absent_share_own: dict[str, float] = field(default_factory=dict)
    #: ``plate`` (pseudo-specimens at even odds) or ``season`` (at ``season_runs``' share: ``run_triage``)
    absent_share_mode: str = "plate"
    #: the forecast's figures a taxonomist checks first (``FORECAST_FIGURES``) at the run's level, with the simulated
    #: queries decided at ``absent_share`` (``NamingModel.expected_at``), and at even odds (what ``build-reference``
    #: printed); empty at even odds. ``forecast_at_share`` empty beside a share: a bundle built before the simulated
    #: queries were kept, whose forecast at the collection's shares is not available
    forecast_at_share: dict[str, float] = field(default_factory=dict)
    forecast_even_odds: dict[str, float] = field(default_factory=dict)
    forecast_level: float | None = None
    #: the database's other collections' newest runs with this model that recorded their share, and the specimens
    #: those shares rest on: what ``season`` pulled toward, or (``plate``) would have
    season_runs: list[int] = field(default_factory=list)
    season_specimens: int = 0
    #: of ``season_runs``, those read at even odds (no other plate of this model in the database yet, or
    #: ``--absent-share plate``), each with the triage command that reads it at the season's share (``season``
    #: mode only; ``season_even_odds``)
    season_even_odds: list[dict[str, Any]] = field(default_factory=list)
    #: specimens the same P(right) would name to species at each lower level of ``LOWER_LEVELS`` (empty at or
    #: under them): how many of the collection sit just under the level, before anyone re-runs it
    species_at_level: dict[str, int] = field(default_factory=dict)
    #: the collection's countries the reference holds no key from → its specimens collected there (empty: every
    #: country has keys, or the reference or the collection records none). Why: there a known species is met
    #: from another part of its range, and may be left unnamed or proposed as new (a Costa Rican plate against a
    #: reference from everywhere else: 0.774 of its known species named right, 0.086 flagged novel; RESULTS-
    #: discovery.md, "A collection from another country")
    countries_without_keys: dict[str, int] = field(default_factory=dict)
    #: of ``named_to["species"]``, the specimens named to a provisional species reviewers accepted in the database
    #: (``Hemiceras sp. BD-0001``, from the keys its members became): a species count that mixes them with the
    #: reference's species reads as more known species than there are
    named_to_provisional: int = 0
    #: the first record set aside, as one line (``QuarantinedRecord.message``: file, line, processid, reason); None
    #: when none was. Why: the batch names it under its table, and has no report at hand to read it from
    first_set_aside: str | None = None
    #: specimens named nothing because the shallowest rank a published cut-off decides (order, on a reference of
    #: two orders) gave them none, that rank, and its cut-off in words (``DiscoveryModel.unplaced``)
    unplaced: int = 0
    unplaced_rank: str | None = None
    unplaced_cutoff: str | None = None
    #: processids the ingest took from another collection with another barcode, one line each (capped, then how
    #: many more: ``IngestReport.moved_lines``)
    moved: list[str] = field(default_factory=list)
    #: what the run did to earlier runs' candidates and whose model those runs used, one line each
    #: (:func:`reclustered_line`, :func:`other_model_line`): first among the advisories
    reclustered: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def set_apart_line(self) -> str | None:
        """``6 barcodes named nothing for what they are: 2 chimeric (…), 4 unrelated to every reference key``
        (None: none was); each result's ``reason`` says why. Why: a lab re-sequences the chimeric wells, and
        only the per-specimen reasons named them (e32 review R3, R21)."""
        if not (self.chimeric or self.unrelated):
            return None
        # one is "it" (a week's one unrelated read printed "1 barcode … for what they are": e36 season review F10)
        n = self.chimeric + self.unrelated
        parts = [part for part in (
            f"{self.chimeric} chimeric (two specimens' DNA in one read: sequence "
            f"{'it' if self.chimeric == 1 else 'them'} again)" if self.chimeric else "",
            f"{self.unrelated} unrelated to every reference key" if self.unrelated else "") if part]
        it, its = ("it is", "its") if n == 1 else ("they are", "each result's")
        return (f"{plural(n, 'barcode')} triaged and named nothing for what {it}: " + ", ".join(parts)
                + f" ({its} reason says why)")

    def unplaced_line(self) -> str | None:
        """``in no order of the reference: 461 of 1,496 specimens …`` (None: none, or every rank learned). Why: on a
        moth-and-fly reference 447 of 450 beetles were among the 461 named nothing, and the summary said nothing of them
        while it printed the share of absent families over the rest (e33 review F5). What they may be in
        ``storage.evidence.beyond_cutoff_words``' words: "perhaps orders the reference lacks" every week of a
        season that held no other order had a taxonomist look for moths that were not there (e36 season review F4)."""
        if not self.unplaced or not self.unplaced_rank:
            return None
        rank = self.unplaced_rank
        return (f"in no {rank} of the reference: {self.unplaced:,} of {self.triaged:,} specimens, far from every key "
                f"(none within {self.unplaced_cutoff}) or with the nearest {RANK_PLURALS[rank]} in doubt (each one's "
                f"reason says which): {beyond_cutoff_words(rank, many=True)}")

    def references_line(self) -> str | None:
        """``references: + N members of candidates reviewers accepted or assigned`` (None: no such key added)."""
        if not self.provisional_keys:
            return None
        return f"references: + {plural(self.provisional_keys, 'member')} of candidates reviewers accepted or assigned"

    def lower_level_line(self) -> str | None:
        """How many the same P(right) names to species at each lower ``--level`` (None: at or under them)."""
        if not self.species_at_level:
            return None
        return "named to species at a lower --level (the same P(right)): " + ", ".join(
            f"{lv} {n}" for lv, n in self.species_at_level.items()) + f" (now {self.named_to.get('species', 0)})"

    def absent_share_line(self) -> str | None:
        """The collection's estimated share of absent taxa per rank, with what it rests on (None: even odds).

        Why the basis: a reviewer read "order 26 %" on a 96-well plate of known species (the 96 pseudo-specimens at
        even odds, printed as an estimate) and "family 36 %" on a plate 79 % of other orders (those the cut-off
        refused do not count), each time as a fact about the plate."""
        if not self.absent_share:
            return None
        n, w = self.absent_share_over, self.absent_share_weight
        basis = f"over the {plural(n, 'specimen')} a learned rank placed"
        runs = self.season_runs
        season = (f"this database's {plural(len(runs), 'other plate')} of this model (run{'s' * (len(runs) > 1)} "
                  + ", ".join(map(str, runs)) + f": {plural(self.season_specimens, 'specimen')})")
        pulled = self.absent_share_mode == "season" and runs
        if w:
            basis += f", weighed against {w:g} pseudo-specimens at " + (f"the share of {season}" if pulled
                                                                        else "even odds")
            if self.absent_share_mode == "season" and not runs:
                basis += " (no other plate of this model in the database yet)"
        own = self.absent_share_own

        def said(r: str, v: float) -> str:  # its specimens' own reading beside it, where the pseudo-specimens moved it
            return f"{r} {v:.0%}" + (f" (its specimens alone {own[r]:.0%})" if r in own and
                                     f"{own[r]:.0%}" != f"{v:.0%}" else "")

        line = (f"absent from the reference, this collection's estimated share (what its P(absent) assumes; {basis}): "
                + ", ".join(said(r, v) for r, v in self.absent_share.items()))
        if w and n < w:
            line += (f" — mostly the prior: {plural(n, 'specimen')} weigh less than the {w:g} pseudo-specimens; "
                     "triage a whole plate or batch as one collection")
        if w and runs and not pulled:
            line += (f"; `--absent-share season` weighs them at the share of {season} instead, so that the same "
                     "barcode is named alike from week to week")
        return line

    def season_even_odds_line(self) -> str | None:
        """The season's plates read at even odds, and the command that reads the first of them at the season's
        share (None: none, or ``plate`` mode, whose own line names ``--absent-share season``).

        Why: a season's first week has no other plate to lean on and is read at even odds; weeks 2–4 then read at
        the season's share, and re-reading week 1 at it changed the deepest rank of 70 of its 565 specimens. The
        help promised "named alike week to week", and nothing after week 1 said it was not (e31 review F6)."""
        if self.absent_share_mode != "season" or not self.season_even_odds:
            return None
        runs = self.season_even_odds
        named = ", ".join(f"{r['run']} (collection {r['collection']})" for r in runs[:3]) + \
            (f" and {plural(len(runs) - 3, 'more')}" if len(runs) > 3 else "")
        first = runs[0]
        redo = ("biodiscover " + shlex.join(["triage", "-i", first["input"], "-m", first["model"], "--db", first["db"],
                                             "--collection", first["collection"], "--absent-share", "season"])
                if first["input"] and first["model"] and first["db"] else "triage it again with --absent-share season")
        return (f"read at even odds, not at this season's share (no other plate of this model was in the database, or "
                f"`--absent-share plate`): run{'s' * (len(runs) > 1)} {named}; re-read "
                f"{'it' if len(runs) == 1 else 'each'} so that a barcode is named alike week to week: {redo}"
                + (" (likewise the others)" if len(runs) > 1 else ""))

    def forecast_line(self) -> str | None:
        """The forecast at the collection's estimated shares, the even-odds one in brackets (None: even odds).

        Why: triage decides the collection at its own shares, so what a user measures on it is this forecast and
        not the even-odds one build-reference printed (the same absent species were named to the right genus
        0.496 in one collection and 0.634 in another, against one even-odds forecast of 0.351: ML review M2)."""
        if not self.absent_share:
            return None
        head = "forecast at this collection's estimated shares"
        if not self.forecast_at_share:
            return (f"{head}: not available (the bundle predates the simulated queries it is drawn from; rebuild it "
                    "with `biodiscover build-reference`)")
        even = self.forecast_even_odds
        return (f"{head} (level {self.forecast_level:g}; at even odds in brackets): " + ", ".join(
            f"{words} {self.forecast_at_share[k]:.3f}" + (f" ({even[k]:.3f})" if k in even else "")
            for k, words in FORECAST_FIGURES if k in self.forecast_at_share))

    def no_key_line(self) -> str | None:
        """The collection's countries the reference holds no key from, with their specimens (None: none)."""
        away = self.countries_without_keys
        if not away:
            return None
        shown = ", ".join(f"{c} {n:,}" for c, n in list(away.items())[:5]) + \
            (f" and {plural(len(away) - 5, 'more country', 'more countries')}" if len(away) > 5 else "")
        return (f"collected where the reference holds no key: {shown} ({sum(away.values()):,} of "
                f"{self.specimens - self.quarantined:,} specimens): a known species met there from another part of "
                "its range may be left unnamed or proposed as new (the review's ⚑ line; filter `known=elsewhere`)")

    def advisories(self) -> list[str]:
        """What a person should know before reading the run's names, one line each: the reviewed keys added, the
        share of absent taxa the collection was read at and the forecast there, how many a lower ``--level`` names,
        the countries with no key, and the processids taken from another collection with another barcode (e31 review
        F22). ``triage`` prints this list after its counts, ``run`` under its table for each collection (a batch user
        acts on them most, and had none of them; a season batch that found no other plate of its model read a week
        at even odds and said nothing of it: e31 review F3): one list, so a line added here reaches both (e33).
        First, the earlier runs' pending candidates the run re-clustered under new numbers and another model's runs
        of the plate (e35 week-2 review, findings 3 and 6)."""
        return self.reclustered + [line for line in (
            self.set_apart_line(), self.unplaced_line(), self.references_line(), self.absent_share_line(),
            self.season_even_odds_line(), self.forecast_line(), self.lower_level_line(), self.no_key_line())
            if line] + self.moved


def set_aside_lines(shown: Sequence[str], listed: int, report: str | None, source: str = "") -> list[str]:
    """What a triage says of the records it set aside: ``warning: <file:line (processid 'X'): reason>`` for each
    of ``shown`` (``QuarantinedRecord.message``), then ``… and N more; see <report>`` for the rest of ``listed``
    (none shown: ``warning: <source>: N records set aside; see <report>``).

    Why ``warning:``: the triage went on without them (exit 0); ``error:`` is the one-line form of a failure
    (e33 review F13). Why one owner: ``triage`` and ``run`` said the same row two ways, ``run`` as an ``error:``
    line naming the file by its name alone (e35 review Q3); ``run`` shows the first record of each collection,
    ``triage`` the first ten of its one."""
    lines = [f"warning: {line}" for line in shown]
    if listed > len(shown):
        rest, see = listed - len(shown), f"; see {report}" if report else ""
        lines.append(f"… and {rest} more{see}" if shown else
                     f"warning: {source + ': ' if source else ''}{plural(rest, 'record')} set aside{see}")
    return lines


#: the forecast's figures ``TriageSummary.forecast_line`` gives, in a taxonomist's words (``naming._EXPECTED_NAMES``
#: has them all): how often a known species is named right, and what becomes of a species or genus not in the reference
FORECAST_FIGURES = (("known_species_right", "known species named right"),
                    ("absent_species_named", "absent species named to a species"),
                    ("absent_species_genus_right", "absent species named to the right genus"),
                    ("absent_genus_named", "absent genera named to a genus"))


def forecast_at(naming: Any, shares: Mapping[str, float], level: float) -> tuple[dict[str, float], dict[str, float]]:
    """``TriageSummary.forecast_at_share`` and ``forecast_even_odds``: ``FORECAST_FIGURES``' rates at ``level``
    with the simulated queries decided at ``shares`` and at even odds (both empty where ``shares`` is: the
    collection was read at even odds; the first empty where the bundle keeps no simulated queries)."""
    if not shares:
        return {}, {}
    even = naming.expected_.get(f"{level}") or naming.expected_at({}, level) or {}
    at = naming.expected_at(shares, level) or {}

    def rates(figures: Mapping[str, Any]) -> dict[str, float]:
        return {k: round(float(figures[k]["rate"]), 6) for k, _ in FORECAST_FIGURES if k in figures}

    return rates(at), rates(even)


def countries_without_keys(specimens: Sequence[Specimen], model: Any) -> dict[str, int]:
    """``TriageSummary.countries_without_keys``: the collection's countries with no reference key, each with its
    specimens, most first (an engine without ``key_countries``, e.g. one run through an executor, says none)."""
    places = model.key_countries() if hasattr(model, "key_countries") else None
    if places is None:
        return {}
    known = {country_key(c) for c in places}  # "PANAMA" and "Panamá" are the reference's "Panama"
    counts = Counter(s.country for s in specimens if s.country and country_key(s.country) not in known)
    return dict(counts.most_common())


#: the lower levels a triage summary counts species names at (``species_at_level``)
LOWER_LEVELS = (0.995, 0.99, 0.98, 0.95, 0.9)
#: how many of ``LOWER_LEVELS`` under the run's own level are counted: the nearest ones. Why not fixed: at
#: ``--level 0.999`` the line said what 0.95 and 0.9 would name and skipped 0.99 and 0.98, the choices a reader
#: weighs next (an ML engineer's review, L3)
LOWER_SHOWN = 2


def species_at_lower_levels(results: Sequence[TriageResult], level: float, optional: Sequence[str]
                            ) -> dict[str, int]:
    """Per level of ``LOWER_LEVELS`` under ``level`` (the ``LOWER_SHOWN`` nearest): how many of ``results`` their
    P(right) would name to species
    there (the walk of ``deepest_confident``, nothing refitted or re-estimated).

    Why: P(right) comes from queries simulated from the reference, and on a fauna the reference did not sample
    it errs low (a collection from Australia against the dev data: known species named to species 0.447 at the
    default 0.98, 0.755 at 0.9, no absent species named at either; benchmarks/RESULTS-discovery.md, "A collection
    from another country"). A taxonomist who sees how many sit between the levels can judge that collection."""
    from biodiscover.discovery.naming import deepest_confident

    return {f"{lv:g}": sum(deepest_confident(r.labels, r.confidence, lv, optional) == "species" for r in results)
            for lv in [x for x in LOWER_LEVELS if x < level][:LOWER_SHOWN]}


def assignment_row(r: TriageResult) -> dict[str, Any]:
    """One engine result as a database assignment row (C's ``write_assignments`` shape)."""
    dna = bool(r.top_hit) and r.modality in ("dna", "dna+image")  # identity is the barcode's, not a photograph's
    return {"processid": r.processid, "deepest_rank": r.deepest_rank, "deepest_taxon": r.deepest_label,
            "novelty": None if r.novelty != r.novelty else r.novelty,  # NaN → NULL
            "is_novel": r.is_novel,
            "labels": dict(r.labels), "confidences": r.labelled_confidence(),
            # what it was named from: a photograph-only call and a barcode at 99.8 % are not one kind of evidence
            "modality": r.modality, "identity": r.identity if dna else None, "overlap": r.overlap if dna else None,
            "top_hit": r.top_hit or None, "reason": r.reason}


#: ``--results`` by file name ending: delimited tables for a spreadsheet, JSON lines for a script.
RESULTS_DELIMITERS = {".csv": ",", ".tsv": "\t"}
RESULTS_JSON_SUFFIXES = ("", ".jsonl", ".ndjson", ".json")
#: one column each in a CSV/TSV results file, then the per-rank fields. ``overlap``: the informative bases the
#: ``identity`` was measured on (a read from other primers shares only part of itself with its best key). A field
#: assignments.csv (the export) gives too has its name there, which is the database's (``assignment_row``):
#: ``deepest_taxon``, and the candidate as ``proposal_id`` and ``provisional_name`` (e32 review R2: a user joining
#: this file to the export had to map ``candidate``, a name, to ids, and ``deepest_label`` to ``deepest_taxon``).
#: ``nearest_species`` / ``nearest_identity``: the nearest known species among the keys the barcode was aligned to
#: and the identity to its best key (``TriageResult.near``; proposals.csv's names); no ``top_similarity``, the
#: search's score of the best key, which only JSON lines keep (e33 review F15: 461 specimens not named had no
#: species in their row but ``top_hit``, a process id, beside a ``top_similarity`` of 0.609 that nothing explained)
RESULT_SCALARS = ("processid", "modality", "deepest_rank", "deepest_taxon", "novelty", "is_novel", "proposal_id",
                  "provisional_name", "identity", "overlap", "top_hit", "nearest_species", "nearest_identity",
                  "reason")
#: ``TriageResult`` fields a results row gives under the database's name
_RESULT_RENAMED = {"deepest_label": "deepest_taxon"}
#: the scalars of results tables earlier versions wrote (still recognised as triage's own): before the
#: nearest species was a column (e33), before the candidate was ``proposal_id`` and ``provisional_name`` (e33),
#: and before ``overlap`` was a column
_OLDER_RESULT_SCALARS = (("processid", "modality", "deepest_rank", "deepest_taxon", "novelty", "is_novel",
                          "proposal_id", "provisional_name", "identity", "overlap", "top_hit", "top_similarity",
                          "reason"),
                         ("processid", "modality", "deepest_rank", "deepest_label", "novelty", "is_novel", "candidate",
                          "identity", "overlap", "top_hit", "top_similarity", "reason"),
                         ("processid", "modality", "deepest_rank", "deepest_label", "novelty", "is_novel", "candidate",
                          "identity", "top_hit", "top_similarity", "reason"))


def results_columns(scalars: Sequence[str] = RESULT_SCALARS) -> list[str]:
    """The header of a CSV/TSV results file: one column per field, ranks spread into ``label_<rank>``,
    ``confidence_<rank>`` and ``p_absent_<rank>``."""
    return [*scalars, *(f"{what}_{rank}" for what in ("label", "confidence", "p_absent") for rank in RANKS)]


def check_results_path(path: Path) -> None:
    """Refuse a ``--results`` name whose ending says a format triage does not write, before any work.

    Why: a user who names ``results.csv`` opens it in a spreadsheet; JSON lines there (what an
    earlier version wrote) looks like a broken file. ``.csv``/``.tsv`` get a table, ``.jsonl``
    (or no ending) JSON lines; anything else is one ``error:`` line naming the choices.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in RESULTS_DELIMITERS and suffix not in RESULTS_JSON_SUFFIXES:
        raise InputError(f"{path}: --results writes CSV (.csv), TSV (.tsv) or JSON lines (.jsonl), "
                         f"not {suffix!r}; rename the file")


def is_results_file(path: Path) -> bool:
    """True when ``path`` is a results file triage wrote (empty; JSON lines with a processid; or a table
    with triage's header)."""
    try:
        with Path(path).open("rb") as fh:
            first = fh.readline(1 << 20)
        if not first:
            return True
        delimiter = RESULTS_DELIMITERS.get(Path(path).suffix.lower())
        if delimiter is not None:
            header = first.decode("utf-8").rstrip("\r\n").split(delimiter)
            return header in (results_columns(), *(results_columns(old) for old in _OLDER_RESULT_SCALARS))
        return isinstance(json.loads(first), dict) and "processid" in json.loads(first)
    except (OSError, ValueError):
        return False


def _result_row(r: TriageResult, candidate: tuple[int, str] | None = None) -> dict[str, Any]:
    row = {_RESULT_RENAMED.get(k, k): v for k, v in r.to_dict().items()}
    if row["novelty"] != row["novelty"]:
        row["novelty"] = None
    row["confidence"] = r.labelled_confidence()  # no P(right) at a rank the lineage lacks, as the database
    # no label below the deepest rank named with confidence (``named_ranks``: assignments.csv's rule too)
    row["labels"] = {k: v for k, v in (row.get("labels") or {}).items() if k in named_ranks(row.get("deepest_rank"))}
    row["proposal_id"], row["provisional_name"] = candidate or (None, None)
    near = r.near[0] if r.near else None
    row["nearest_species"], row["nearest_identity"] = (near[0], near[3]) if near else (None, None)
    return row


def candidate_names(proposals: Sequence[CandidateProposal], ids: Sequence[Any] | None = None
                    ) -> dict[str, tuple[int, str]]:
    """processid → the id and the one name of the candidate species it was grouped into
    (``storage.records.candidate_name``: the database's proposal ids when stored, so the file, the export and the
    review screen agree; else 1, 2, … in order, the numbers of the working names' ``cand<N>``)."""
    ids = list(ids) if ids is not None else list(range(1, len(proposals) + 1))
    return {m.processid: (int(pid), candidate_name(p.provisional_name, p.parent_name, p.parent_rank, pid))
            for p, pid in zip(proposals, ids) for m in p.members}


def split_parts(specimens: Sequence[Specimen]) -> Callable[[CandidateProposal, Sequence[Sequence[str]], int],
                                                            list[Any]]:
    """The evidence of each part of a proposal that a reviewer's earlier split is carried to
    (``Database.write_proposals``' ``part_evidence``), recomputed from the part's specimens with discovery's own
    function as the review does after a split (``discovery.proposals.recompute_evidence``); each part's closest
    candidate is the other, named by the proposal being split and one of the other's specimens (which says later
    which proposal holds it), as after a reviewer's split."""
    from biodiscover.discovery.proposals import nearest_candidate, recompute_evidence

    by_id = {s.processid: s for s in specimens}

    def parts(p: CandidateProposal, groups: Sequence[Sequence[str]], proposal_id: int) -> list[Any]:
        prob = {m.processid: m.probability for m in p.members}
        out = []
        for group in groups:
            members = [by_id[pid] for pid in group if pid in by_id]
            out.append(recompute_evidence(members, [1.0 if prob.get(m.processid) is None else
                                                    float(prob[m.processid] or 0.0) for m in members], [p.evidence]))
        return [dataclasses.replace(e, between_distance=nearest_candidate(
            e.consensus_barcode or "", {proposal_id: out[1 - i].consensus_barcode or ""},
            {proposal_id: groups[1 - i][0]})) for i, e in enumerate(out)] if len(out) == 2 else out

    return parts


def closest_in_database(db: Any, run_id: int, proposals: Sequence[CandidateProposal]) -> list[CandidateProposal]:
    """The run's proposals with each one's closest candidate looked for among the live candidates of the
    database's other runs too (``discovery.proposals.nearest_in_database`` on ``Database.candidates_elsewhere``):
    a weekly batch's new species met again in week 2 reads "same as #10 (run 6, …)" in the review."""
    from biodiscover.discovery.proposals import nearest_in_database

    t = time.perf_counter()
    others, members = db.candidates_elsewhere(run_id)
    out = nearest_in_database(proposals, others, members)
    log.debug("closest candidates among %d of other runs: %.2f s", len(others), time.perf_counter() - t)
    return out


def write_results(results: Sequence[TriageResult], path: Path,
                  candidates: Mapping[str, tuple[int, str]] | None = None) -> Path:
    """One row per specimen: a CSV/TSV table for ``.csv``/``.tsv`` (cells that a spreadsheet would run as a
    formula neutralised), else one JSON object per line (NaN novelty → null / empty).

    ``candidates``: processid → the id and name of the candidate species it was grouped into
    (``candidate_names``; ``proposal_id`` and ``provisional_name``) — without ``--db`` this file is the only place a
    triage's candidate species are written."""
    member_of = candidates or {}
    delimiter = RESULTS_DELIMITERS.get(path.suffix.lower())
    with path.open("w", encoding="utf-8", newline="") as fh:
        if delimiter is None:
            for r in results:
                fh.write(json.dumps(_result_row(r, member_of.get(r.processid))) + "\n")
            return path
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(results_columns())
        for r in results:
            row = _result_row(r, member_of.get(r.processid))
            flat = [row[c] for c in RESULT_SCALARS]
            flat += [row[what][rank] if rank in (row[what] or {}) else None
                     for what in ("labels", "confidence", "p_absent") for rank in RANKS]
            writer.writerow(["" if v is None else neutralise_cell(v) for v in flat])
    return path


@dataclass
class ImageModel:
    """The bundle's image classifier with the encoders it was fitted with (``discovery.multimodal``)."""

    classifier: Any  # discovery.multimodal.CrossModalClassifier
    encoders: Any  # encoders.embed.Encoders

    @classmethod
    def load(cls, bundle: Bundle | Path) -> "ImageModel | None":
        """None when the bundle has no image classifier (a DNA-only ``build-reference`` bundle).

        Encoders (and torch) are imported only here, so DNA-only triage never loads them.
        """
        from biodiscover.discovery.multimodal import CrossModalClassifier, has_image_classifier

        bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
        if not has_image_classifier(bundle):
            return None
        from biodiscover.encoders.embed import load_encoders

        return cls(CrossModalClassifier.from_bundle(bundle), load_encoders(bundle))


def reference_images(bundle: Bundle) -> Callable[[str], str | None] | None:
    """processid → path of a reference specimen's photograph in the dataset the bundle was built from
    (its ``data`` / ``source`` fingerprint), or None when that dataset or its images are not on this machine.

    The review shows the nearest known species' photograph beside the members'; the
    bundle stores no images, so they are looked up where BIOSCAN-5M keeps them.
    """
    from biodiscover.storage.bioscan import BioscanDataset
    from biodiscover.storage.records import SPLITS

    try:
        fingerprint = bundle.data_fingerprint
        root = fingerprint.get("data") or fingerprint.get("source")  # build-reference / train record it so
        dataset = BioscanDataset(Path(root)) if root and Path(root).is_dir() else None
    except Exception:  # no dataset here: no reference photos, triage goes on
        log.debug("no reference images for %s", bundle.path, exc_info=True)
        return None
    if dataset is None or dataset.image_dir is None:
        return None

    def find(processid: str) -> str | None:
        for split in SPLITS:
            path = dataset.image_path(processid, split)
            if path is not None and path.is_file():
                return str(path)
        return None

    return find


#: (clustering method, evidence) pairs whose ``prepare`` this process has scheduled (``triage_specimens``)
_PREPARED: set[tuple[str, bool]] = set()


#: how a collection's share of absent taxa is estimated (``run_triage``'s ``absent_share``)
ABSENT_SHARES = ("plate", "season")


def check_absent_share(value: str) -> None:
    """Refuse an ``--absent-share`` that is none of ``ABSENT_SHARES`` before any work (triage, and a batch before
    its first collection)."""
    if value not in ABSENT_SHARES:
        raise InputError(f"--absent-share {value!r}: one of {', '.join(ABSENT_SHARES)}")


def triage_specimens(model: DiscoveryModel, specimens: Sequence[Specimen], *, cluster: bool = True,
                     progress: Progress | None = None, image_model: ImageModel | None = None,
                     clustering: ClusteringConfig = ClusteringConfig(),
                     reference_image: Callable[[str], str | None] | None = None,
                     evidence: bool = True, toward: Mapping[str, float] | None = None,
                     ) -> tuple[list[TriageResult], list[CandidateProposal], dict[str, float]]:
    """Engine (+ image classifier) + clustering on specimens already read (no I/O).

    Returns results, proposals and stage seconds. With ``image_model``, specimens
    with a photograph get an image call, fused with the DNA call or standing
    alone when the barcode is missing (``discovery.multimodal.combine_results``).
    ``evidence=False``: the candidate species without their evidence (consensus MSAs, distances,
    nearest known species; ``proposals.candidate_species``) — for a caller that stores none.
    ``toward``: per rank, the share of absent taxa the collection's own estimate is pulled toward (its season's
    earlier plates', ``naming.pooled_share``; default: even odds).
    """
    say = progress or no_progress
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    results: list[TriageResult] = []
    step = 2000
    # the clustering's imports (~1.5 s of CPU) are done while a forked child computes the identities
    # (once a process: a batch's later collections find them imported)
    ahead: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if cluster and (clustering.method, evidence) not in _PREPARED:
        _PREPARED.add((clustering.method, evidence))
        try:
            clusterer = make_clusterer(clustering)
            clusterer.partition_only = not evidence  # as candidate_species will fit it (no HDBSCAN import)
            ahead = while_aligning(clusterer.prepare)
        except (ValueError, TypeError):  # a method that cannot be built fails where it is used, as before
            pass
    with ahead:
        for start in range(0, len(specimens), step):
            results.extend(model.triage(specimens[start : start + step], collection=None))  # decided below
            say("triage", min(start + step, len(specimens)), len(specimens))
        # decided as one collection, under its own share of absent taxa per rank (not chunk by chunk)
        results = model.adapt(results, toward=toward)[0]
    seconds["triage"] = time.perf_counter() - t
    with_image = [i for i, s in enumerate(specimens) if s.image_path is not None]
    if image_model is not None and with_image:
        from biodiscover.discovery.multimodal import ModalityCall, combine_results

        t = time.perf_counter()
        calls = [ModalityCall.none(s.processid) for s in specimens]
        img_step = 512
        for start in range(0, len(with_image), img_step):
            part = with_image[start : start + img_step]
            for i, call in zip(part, image_model.classifier.predict([specimens[i] for i in part],
                                                                   image_model.encoders)):
                calls[i] = call
            say("images", min(start + img_step, len(with_image)), len(with_image))
        results = combine_results(results, calls, thresholds=image_model.classifier.thresholds_,
                                  level=model.config.naming.level, optional_ranks=model.naming_.walk_optional,
                                  p_right=getattr(image_model.classifier, "p_right_", None))
        seconds["images"] = time.perf_counter() - t
    proposals: list[CandidateProposal] = []
    if cluster:
        t = time.perf_counter()
        say("candidates", 0, 1)
        # a key's barcode and lineage by processid, read only for the candidates' nearest keys (the barcodes
        # stay memory-mapped: a dict of every one would read a million of them in)
        where = {pid: j for j, pid in enumerate(model.ref_ids_)} if evidence and hasattr(model, "ref_ids_") else {}
        seqs, lineages = (model.ref_seqs_, model.ref_lineages_) if where else ((), [])
        # each nearest species' keys and where they were collected (the review flags a known species whose every
        # key comes from elsewhere: ``storage.evidence.known_elsewhere``)
        census = model.species_keys() if where and hasattr(model, "species_keys") else {}
        proposals = candidate_species(specimens, results, threshold=getattr(model, "barcode_gap_", None),
                                      config=clustering,
                                      reference_barcode=lambda pid: seqs[where[pid]] if pid in where else None,
                                      reference_lineage=lambda pid: lineages[where[pid]] if pid in where else None,
                                      reference_image=reference_image, species_keys=census.get if census else None,
                                      chance_identity=getattr(model, "null_floor", None) if where else None,
                                      species_apart=getattr(model, "species_apart", None) if where else None,
                                      dropped_matches=getattr(model, "dropped_matches", None) if where else None,
                                      evidence=evidence)
        say("candidates", 1, 1)
        seconds["candidates"] = time.perf_counter() - t
    return results, proposals, seconds


def same_triage_before(db: Any, checksum: str, bundle: Bundle, params: Mapping[str, Any]) -> Any:
    """The completed triage run of this database that a triage recorded with ``params`` now would only repeat (its
    ``RunProgress``), else None: the same bytes (``checksum``) by the same model at the same level
    (``Database.triaged_input``), every setting it records the same (the input's and model's paths aside: the
    same bytes elsewhere are the same plate; the reviewed keys it names from, the season's share, the clustering
    are among them), and no review since it finished.

    Why: the same ``triage`` command run twice over one database re-triaged the plate without a word, and every
    pending candidate of the first run came back under a new number (e31 review F5); ``run`` skips such a
    collection (``workflows.batch``), and triage now refuses it without ``--again``."""
    done = db.triaged_input(checksum, bundle.fingerprints, params.get("level"))
    if done is None:
        return None
    recipe = {k: v for k, v in params.items() if k not in ("input", "model")}
    if json.loads(json.dumps(recipe, default=str)) != {k: done.parameters.get(k) for k in recipe}:
        return None
    newest = db.reviews(limit=1)
    if newest and (done.finished_at is None or newest[0]["created_at"] >= done.finished_at):
        return None
    return done


def season_even_odds(db: Any, season: Sequence[tuple[int, str, Any]]) -> list[dict[str, Any]]:
    """Of a season's plates (``Database.absent_share_bases``), those whose run read them at even odds: it pulled
    toward no other plate (``absent_share_from`` empty: the season's first week, or ``--absent-share plate``), with
    what a triage needs to read it again (its recorded input and model, the database, the collection).
    ``TriageSummary.season_even_odds_line`` says them (e31 review F6)."""
    out = []
    for run_id, collection, _basis in season:
        params = db.run_progress(run_id).parameters
        if params.get("absent_share_from"):
            continue
        given = {k: params.get(k) if params.get(k) not in (None, "None") else None for k in ("input", "model")}
        out.append({"run": run_id, "collection": collection, **given, "db": str(db.path)})
    return out


def other_plate_line(db: Any, name: str, given: Any, specimens: Sequence[Specimen], *, named: bool) -> list[str]:
    """The line for a file that shares no specimen with the collection of its name, which holds another plate
    (``Database.other_plate``); refused when the name was the file's (``named`` False): nothing is stored yet.

    Why: a collection is named after its file by default, and labs reuse file names (week1.csv every year,
    plate01.csv per project): a new plate joined the earlier plate's collection without a word, and exports read
    the two as one (e31 review F15). A taxonomist expects two plates to stay two unless she says otherwise, so
    ``triage`` refuses and names ``--collection``; where a name was given (``--collection``, or ``run``, which
    names each collection after its file) the plate joins and one line says so."""
    other = db.other_plate(name, [s.processid for s in specimens])
    if other is None:
        return []
    held, sources = other
    earlier = (f"{plural(held, 'specimen')} from {', '.join(sources[-2:])}" if sources
               else plural(held, "specimen"))
    if not named:
        raise InputError(f"{given}: collection {name} already holds another plate ({earlier}) and this file shares "
                         f"none of its specimens: give --collection NAME to keep them apart (--collection {name} "
                         "adds it to that collection)")
    return [f"{given} joined collection {name}, which held another plate ({earlier}) sharing none of its specimens; "
            "a collection of its own keeps plates apart (triage --collection NAME, or a file of another name)"]


#: how many ``#4→#33`` pairs the re-clustered line shows of one earlier run before "and N more"
RECLUSTERED_SHOWN = 5


def reclustered_line(reclustered: Sequence[Reclustered]) -> str | None:
    """``re-clustered 14 pending candidates of run 1 (demo-plate) under new numbers (#4→#33, #6→#34, … and 9
    more): none reviewed`` (None: the run re-clustered none): what a triage did to earlier runs' pending
    candidates (``Database.run_reclustered``), in one line, and whose reviews carried over.

    Why: re-triaging a reviewed week is legitimate (the members of reviewed candidates are keys for it, so names
    can change), but its pending candidates became ``superseded`` without a word; only a later export of the
    earlier run said "14 candidate species of run 1 were re-clustered by later run 3" (e35 week-2 review, F3),
    and a plate triaged again with another model lost its pending candidates the same way (F6)."""
    if not reclustered:
        return None
    parts = []
    for r in reclustered:
        pairs = [f"#{old}→#{new}" if new is not None else f"#{old}→none" for old, new in r.pairs]
        shown = ", ".join(pairs[:RECLUSTERED_SHOWN]) + (
            f" and {len(pairs) - RECLUSTERED_SHOWN} more" if len(pairs) > RECLUSTERED_SHOWN else "")
        where = f"run {r.run.id}" + (f" ({r.run.collection})" if r.run.collection else "")
        said = f"{plural(len(r.pairs), 'pending candidate')} of {where} under new numbers ({shown}"
        said += "; →none: this run named its members and proposed none of them)" if any(
            new is None for _, new in r.pairs) else ")"
        lost = [f"#{i}" for i in r.reviewed if i not in r.carried]
        kept = [f"#{i}" for i in r.carried]
        said += ": none reviewed" if not r.reviewed else ": " + "; ".join(text for text in (
            f"the reviews of {listed(kept)} carry over to the new numbers" if kept else "",
            f"those of {listed(lost)} not all: a merge the new grouping parts is not carried "
            f"({'their histories say' if len(lost) > 1 else 'its history says'} so)" if lost else "") if text)
        parts.append(said)
    return "re-clustered " + "; and ".join(parts)


def other_model_line(earlier: Sequence[EarlierRun], bundle: Bundle, model_path: Path | str, run_id: int
                     ) -> str | None:
    """``run 2 (week2) used another model (model, sha256:2b748e10b35e…) than this run (model2, sha256:5f5e2285…):
    …`` (None: each of ``earlier`` used this one, by ``Bundle.fingerprints``): ``earlier`` is the collection's
    triage before run ``run_id`` and those whose candidates it re-clustered (``Database.earlier_runs``).

    Why: the same plate triaged into one database with another model bundle replaced the first model's pending
    candidates without a word, and ``export --run 2 --run 3`` then read two models' names as one collection's
    (e35 week-2 review, F6)."""
    other = [r for r in earlier if r.model_fingerprint not in bundle.fingerprints]
    if not other:
        return None
    models = listed(list(dict.fromkeys(model_named(r.model, r.model_fingerprint) for r in other)))
    collections = listed(list(dict.fromkeys(r.collection for r in other if r.collection)))
    runs = f"run{'s' * (len(other) > 1)} {listed([r.id for r in other])}" + (f" ({collections})" if collections
                                                                            else "")
    both = " ".join(f"--run {i}" for i in (other[-1].id, run_id))
    return (f"{runs} used another model ({models}) than this run ({model_named(model_path, bundle.fingerprint)}): "
            f"{'its' if len(other) == 1 else 'their'} names are that model's, and an export of both (export {both}) "
            "mixes two models' names")


def run_triage(input_path: Path | None, model_path: Path, db_path: Path | None, *, images: Path | None = None,
               collection: str | None = None, cluster: bool = True, results_out: Path | None = None,
               progress: Progress | None = None, database: Any = None, use_images: bool = True,
               use_provisional: bool = True, model: Any = None,
               clustering: ClusteringConfig = ClusteringConfig(), bundle: Bundle | None = None,
               force: bool = False, level: float | None = None, absent_share: str = "plate",
               again: bool = False) -> TriageSummary:
    """The ``triage`` verb: collection file (+ images) → run, assignments, proposals in the database.

    ``db_path=None`` (and no ``database``) skips the database and only writes
    ``results_out`` (one result per specimen: CSV/TSV by its ending, else JSON lines). Photographs are used
    when the bundle has an image classifier, unless ``use_images`` is False.
    Members of candidate species a reviewer accepted in this database become
    reference keys named by their provisional species, and members of candidates a reviewer assigned keys of
    that species (``use_provisional``), so the next run names their relatives instead of proposing them again.
    ``model``: an engine already loaded from ``model_path`` (the batch runner
    passes one per batch, possibly wrapped to run through a Ray executor);
    ``bundle``: ``model_path`` already opened. The bundle is opened once and
    everything (engine, image classifier, encoders, fingerprints) is read from it.
    ``clustering``: the candidate-species method and settings, recorded with the run.
    Rows set aside go to ``<input>.quarantine.csv`` beside the input (else beside
    the database; ``quarantine_path_for`` says which name when another input of the
    same name has a report there); that file and ``results_out`` replace only files biodiscover
    wrote, unless ``force`` — both are checked before any work starts.
    ``level``: P(right) a rank needs to be named (default: the bundle's), recorded with the run.
    ``absent_share``: ``plate``, the collection's share of absent taxa is estimated from it alone (pulled toward
    even odds); ``season``, pulled toward the share the database's other collections read with this model
    (``Database.absent_share_bases``, ``naming.pooled_share``): weekly plates of one trap decided alike.
    ``again``: triage even what this database holds the same triage of (:func:`same_triage_before`, refused before
    anything is ingested or written; the CLI's ``--again``, not ``--force``, which would also let the run replace a
    user's file). The batch decides what it triages itself and passes True.
    """
    from biodiscover.storage.collections import check_input, read_collection
    from biodiscover.storage.validation import (
        check_output_path,
        is_quarantine_report,
        quarantine_path_for,
        unwritable_place,
    )

    check_absent_share(absent_share)
    if absent_share == "season" and db_path is None and database is None:
        raise InputError("--absent-share season reads the share of absent taxa from the database's other plates: "
                         "give --db")
    for given in (input_path, images):
        if given is not None:
            check_input(Path(given))
    if db_path is not None and database is None:
        # before the quarantine report's place is checked: with the input's folder read-only the report goes beside
        # the database, and an unwritable database folder was reported as the report's problem (e31 review F14)
        why = unwritable_place(Path(db_path))
        if why is not None:
            raise InputError(f"{db_path}: cannot write the database: {why}")
    qtarget = quarantine_path_for(Path(input_path or images or "collection"),
                                  fallback=Path(db_path).absolute().parent if db_path else
                                  Path(results_out).absolute().parent if results_out else None)
    # the input, the report, the results and the database: four places (e34 attack O1, O2), folders that exist (O3)
    inputs = (input_path, images)
    check_output_path(qtarget, what="quarantine report", force=force, ours=is_quarantine_report, inputs=inputs,
                      others={"database": db_path})
    if results_out is not None:
        check_results_path(Path(results_out))
        check_output_path(Path(results_out), what="results file", force=force, ours=is_results_file, inputs=inputs,
                          others={"quarantine report": qtarget, "database": db_path})
    say = progress or no_progress
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    bundle = bundle if bundle is not None else Bundle.open(model_path)
    model = model if model is not None else DiscoveryModel.from_bundle(bundle)
    if level is not None:
        model.set_level(level)
    seconds["load_model"] = time.perf_counter() - t
    own_file = Path(db_path) if database is None and db_path is not None else None
    own_db = own_file is not None
    db = database
    if own_file is not None:
        from biodiscover.storage.db import Database

        if own_file.is_file() and own_file.stat().st_size:
            # before the read: a damaged, read-only or newer database fails before a 200 MB collection is read
            db = Database.open(own_file)
    try:
        t = time.perf_counter()
        say("read", 0, 1)
        read = read_collection(input_path, images=images)
        seconds["read"] = time.perf_counter() - t
        say("read", 1, 1)  # each stage says it is done: "read: 0/1" alone read as a stall on a 5,300-specimen batch
    except BaseException:
        if own_db and db is not None:
            db.close()
        raise
    specimens = read.specimens
    image_model = None
    if use_images and any(s.image_path is not None for s in specimens):
        t = time.perf_counter()
        image_model = ImageModel.load(bundle)
        seconds["load_model"] += time.perf_counter() - t
        photo_only = sum(s.image_path is not None and not s.dna_barcode for s in specimens)
        if image_model is None and photo_only:  # else "N without a usable barcode" is all the user sees
            log.warning("%s specimens have a photograph but no usable barcode, and the bundle has no image "
                        "classifier (DNA-only): they are not named; build-reference into a bundle that "
                        "`biodiscover train` wrote names them from their photographs", f"{photo_only:,}")
    name = collection or (Path(input_path).name.split(".")[0] if input_path else Path(images or "images").name)
    if not specimens:
        if own_db and db is not None:
            db.close()
        if not read.quarantine:  # nothing set aside, so no report to point at
            raise InputError(f"{input_path or images}: no specimen to triage (the collection holds no records)")
        where = read.write_quarantine(qtarget, force=force).absolute()
        raise InputError(f"{input_path or images}: no valid specimen to triage "
                         f"({len(read.quarantine)} quarantined; see the quarantine report: {where})")
    quarantine_file = None
    provisional = 0
    provisional_names: frozenset[str] = frozenset()
    run_id = None
    stored = 0
    proposal_ids: list[int] | None = None
    season: list[tuple[int, str, dict[str, list[float]]]] = []
    even_odds: list[dict[str, Any]] = []
    toward: dict[str, float] = {}
    moved: list[str] = []
    reclustered: list[str] = []
    try:
        if own_file is not None and db is None:  # a new database is made only once there is something to put in it
            db = Database.open_or_create(own_file)
        if db is not None:
            # Everything the refusal of a repeated triage (``same_triage_before``) reads is read before anything is
            # ingested or written: a repeat refused after its ingest showed "ingest: 0/359 … 359/359" and then the
            # refusal, having spent the ingest's minutes on a large plate, and a copy of the plate under another
            # name had been stored as a new collection (its ingest, quarantined rows, report and backup) first.
            t = time.perf_counter()
            from biodiscover.storage.db.ingest import file_checksum  # storage.db: only with a database (~1 s CPU)

            checksum = file_checksum(Path(input_path), images) if input_path and Path(input_path).is_file() else None
            seconds["ingest"] = time.perf_counter() - t
            joined = other_plate_line(db, name, input_path or images, specimens, named=collection is not None)
            from biodiscover.storage.db.taxonomy import provisional_references, register_lineages

            # the reference's own keys: the reviewed keys added below join the same list
            reference_keys = len(model.ref_lineages_) if hasattr(model, "ref_lineages_") else None
            if use_provisional:
                reviewed = provisional_references(db)
                provisional = model.add_references(reviewed)
                provisional_names = frozenset(s.species for s in reviewed if s.species) & frozenset(
                    n.name for n in db.taxonomy().provisional() if n.rank == "species")
                if provisional:
                    log.info("%d members of candidates reviewers accepted or assigned added as reference keys",
                             provisional)
            season = db.absent_share_bases(bundle.fingerprints, plate=(s.processid for s in specimens))
            if absent_share == "season":
                even_odds = season_even_odds(db, season)
            weight = model.naming_.config.collection_weight
            if absent_share == "season" and weight is not None:
                toward = pooled_share((b for _, _, b in season), model.naming_.config.absent_prior, float(weight))
            params = {"input": str(input_path), "model": str(model_path),
                      "images": str(images) if images else None,
                      "data": bundle.data_fingerprint or None,
                      "provisional_keys": provisional,
                      "engine": model.config.to_dict(),
                      "level": model.config.naming.level,
                      "absent_share": absent_share,
                      "absent_share_toward": toward,
                      "absent_share_from": [r for r, _, _ in season] if absent_share == "season" else [],
                      "naming_limits": naming_limits(model.naming_),
                      "cluster": cluster,
                      "clustering": run_record(clustering, getattr(model, "barcode_gap_", None))}
            if checksum is not None and not again:
                before = same_triage_before(db, checksum, bundle, params)
                if before is not None:
                    db_arg = f"--db {db_path}" if db_path else "--db DB"
                    raise InputError(
                        f"{input_path}: triaged into this database before as run {before.id} with the same bytes, "
                        "model and settings, nothing reviewed since: its candidates are there (`biodiscover review "
                        f"{db_arg} --run {before.id}`); --again triages it again, and its pending candidates come "
                        "back under new numbers")
            t = time.perf_counter()
            say("ingest", 0, len(specimens))
            ingested = db.ingest(specimens, collection=name, source=input_path, checksum=checksum,
                                 quarantine=read.quarantine, quarantine_file=qtarget, force=force)
            quarantine_file = ingested.quarantine_file
            moved = ingested.moved_lines() + joined
            seconds["ingest"] += time.perf_counter() - t
            say("ingest", len(specimens), len(specimens))
            # The reference's known species in the taxonomy: the review tree shows them and a reviewer can
            # assign a candidate to one.
            if reference_keys is not None:
                register_lineages(db, model.ref_lineages_[:reference_keys],
                                  source=f"reference:{Path(model_path).name}")

            # a triage killed without warning (SIGKILL, a reboot) left its run "running" for good: db check warned
            # after every later run. Its pid is gone (or, from another host, its heartbeat is old): mark it.
            db.interrupt_dead_runs(("triage",), db.stale_after_s,
                                   message="process gone before the run finished; a later triage started afresh")
            run_id = db.start_run("triage", params,
                                  model_fingerprint=bundle.fingerprint,
                                  collection=name, total=len(specimens),
                                  novelty_threshold=model.novelty_threshold)
        if read.quarantine and not (quarantine_file and Path(quarantine_file).is_file()):
            # no database, or this input was ingested before and its report is gone: write it now
            quarantine_file = str(read.write_quarantine(qtarget, force=force).absolute())
        elif not read.quarantine:
            drop_stale_report(qtarget)

        def stage(st: str, done: float, total: float | None = None, message: str = "") -> None:
            say(st, done, total, message)
            if db is not None and run_id is not None:
                db.heartbeat(run_id, done=int(done) if st == "triage" else None, message=st)

        # without a database the candidate species are only named in the results file (their members):
        # their evidence (consensus MSAs, distances: ~1.3 s CPU on 1,666 queries) would be thrown away
        results, proposals, secs = triage_specimens(model, specimens, cluster=cluster, progress=stage,
                                                    image_model=image_model, clustering=clustering,
                                                    reference_image=reference_images(bundle),
                                                    evidence=db is not None, toward=toward)
        seconds.update(secs)
        basis = model.collection_basis(results)  # the collection's own share per rank, and what it rests on
        t = time.perf_counter()
        if db is not None and run_id is not None:
            db.write_assignments(run_id, (assignment_row(r) for r in results))
            stored = len(results)
            if proposals:
                proposals = closest_in_database(db, run_id, proposals)
                proposal_ids = db.write_proposals(run_id, proposals, part_evidence=split_parts(specimens))
            # the earlier runs' pending candidates this run triaged whole and proposes none of: out of the queue
            # (a run told not to propose candidates, --no-cluster, says nothing about them: they stay)
            if cluster:
                db.retire_unproposed(run_id)
            # what it did to the earlier runs' pending candidates, and whose model those runs used: one line each
            redone = db.run_reclustered(run_id)
            reclustered = [line for line in (
                reclustered_line(redone),
                other_model_line(db.earlier_runs(run_id, (r.run.id for r in redone)), bundle, model_path, run_id))
                if line]
            db.finish_run(run_id, "completed", message=f"{len(results)} specimens, "
                                                       f"{sum(r.is_novel for r in results)} novel, "
                                                       f"{len(proposals)} candidate species",
                          result={"absent_share": DiscoveryModel.collection_shares(results),
                                  "absent_share_basis": basis})
        if results_out is not None:
            names = candidate_names(proposals, proposal_ids)
            if db is not None and run_id is not None and proposals:  # as stored: a carried split's parts included
                names = {pid: (p.id, p.name) for pid, p in db.run_members(run_id).items()}
            write_results(results, Path(results_out), names)
        seconds["write"] = time.perf_counter() - t
    except BaseException as exc:
        if db is not None and run_id is not None:
            try:
                # the heartbeat counted specimens triaged in memory; the run keeps what it stored (the
                # assignments are written in one step at the end): an export must not read 1,500 of 1,500
                # done for a run that holds none
                db.heartbeat(run_id, done=stored)
                what = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                db.finish_run(run_id, what, message=f"triage {what} before its results were stored"
                              if not stored else f"triage {what} after storing {stored} assignments")
            except Exception:  # never hide the original error
                log.exception("could not mark run %s failed", run_id)
        raise
    finally:
        if own_db and db is not None:
            db.close()
    try:
        summary = _summary(run_id, name, specimens, read, results, proposals, seconds, quarantine_file,
                           provisional, model, provisional_names)
        return dataclasses.replace(summary, absent_share_mode=absent_share, season_runs=[r for r, _, _ in season],
                                   season_even_odds=even_odds,
                                   moved=moved,
                                   reclustered=reclustered,
                                   absent_share_own={r: v[0] for r, v in basis.items()},
                                   season_specimens=int(sum(max((v[1] for v in b.values()), default=0)
                                                            for _, _, b in season)))
    except KeyboardInterrupt:
        if database is not None:  # the batch runner's database: it keeps its own account of a Ctrl-C
            raise
        raise stopped_after_storing(run_id, db_path, results_out) from None


def drop_stale_report(report: Path) -> bool:
    """Remove the quarantine report an earlier read of this input left, now that it reads clean; True if removed.

    Why: a fixed file re-ran with nothing set aside, and its old report stayed beside it listing the two rows
    already fixed. Only a report biodiscover wrote (``is_quarantine_report``) is removed; ``report`` is the name
    ``quarantine_path_for`` gives this very input, never another input's of the same stem."""
    from biodiscover.storage.validation import is_quarantine_report

    if not (report.is_file() and is_quarantine_report(report)):
        return False
    try:
        report.unlink()
    except OSError as exc:  # a read-only share: the stale report stays, and the log says why
        log.warning("%s: could not remove the quarantine report of an earlier read (%s)", report, exc.strerror)
        return False
    log.info("%s: removed: the input now reads with nothing set aside", report)
    return True


def stopped_after_storing(run_id: int | None, db_path: Path | None, results_out: Path | None) -> StoppedAfterWork:
    """What a Ctrl-C after the run was stored says (its summary being counted or printed): that the run completed
    and where it is, and that nothing needs re-running (a re-run triages the collection again, as a new run)."""
    if run_id is not None and db_path is not None:
        done = (f"triage run {run_id} had completed and is stored in {db_path}; nothing to re-run (a re-run would "
                f"triage the collection again, as a new run): `biodiscover review --db {db_path}`, "
                f"`biodiscover export --db {db_path} --run {run_id}`")
    else:
        done = "the triage had finished" + (f" and written {results_out}" if results_out else "") + \
            "; nothing to re-run"
    return StoppedAfterWork(f"stopped (Ctrl-C) after the work was done: {done}")


def _summary(run_id: int | None, name: str, specimens: Sequence[Specimen], read: Any,
             results: Sequence[TriageResult], proposals: Sequence[CandidateProposal], seconds: dict[str, float],
             quarantine_file: str | None, provisional: int, model: Any,
             provisional_names: frozenset[str] = frozenset()) -> TriageSummary:
    """The run's summary, counted once its results are stored (``provisional_names``: the provisional species the
    run had keys of)."""
    from biodiscover.storage.validation import count_set_aside

    named = Counter(r.deepest_rank or "unnamed" for r in results)
    set_apart = [set_apart_kind(r.reason) if r.modality == "none" else None for r in results]
    shares, level = DiscoveryModel.collection_shares(results), model.config.naming.level
    at_share, even = forecast_at(model.naming_, shares, level)
    set_aside, photos = count_set_aside(read.quarantine)
    return TriageSummary(
        run_id=run_id, collection=name, specimens=len(specimens) + set_aside,
        quarantined=set_aside, photos_set_aside=photos, file_problems=sum(r.whole_file for r in read.quarantine),
        triaged=sum(r.modality != "none" or kind is not None for r, kind in zip(results, set_apart)),
        no_usable_barcode=sum("dna" not in r.modality and kind is None for r, kind in zip(results, set_apart)),
        chimeric=set_apart.count("chimeric"), unrelated=set_apart.count("unrelated"),
        by_modality=dict(Counter(r.modality for r in results)),
        photos_at_thresholds=sum(r.modality == "image" and PHOTO_SCORES in (r.reason or "") for r in results),
        named_to={rank: named.get(rank, 0) for rank in (*RANKS, "unnamed")}, novel=sum(r.is_novel for r in results),
        proposals=len(proposals), seconds={k: round(v, 2) for k, v in seconds.items()},
        quarantine_file=quarantine_file, provisional_keys=provisional,
        first_set_aside=next((r.message for r in read.quarantine if not r.whole_file), None)
        if set_aside or photos else None,
        named_to_provisional=sum(r.deepest_rank == "species" and r.deepest_label in provisional_names
                                 for r in results),
        absent_share=shares, forecast_at_share=at_share, forecast_even_odds=even, forecast_level=level,
        absent_share_over=model.placed_count(results, model.config.naming.level),
        **dict(zip(("unplaced", "unplaced_rank", "unplaced_cutoff"), model.unplaced(results, level))),
        absent_share_weight=model.naming_.config.collection_weight,
        species_at_level=species_at_lower_levels(results, model.config.naming.level, model.naming_.walk_optional),
        countries_without_keys=countries_without_keys(specimens, model))
