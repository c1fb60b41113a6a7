"""``dwca``: a Darwin Core Archive (zip) a taxonomist can publish through GBIF.

* ``occurrence.txt`` (core): one row per specimen with its current determination —
  the reviewer's where a reviewer accepted a candidate species, identified it as
  a known species or rejected it (the machine's name then stands, reviewed; a specimen it named nowhere
  below class stays at class, and the status says so rather than claim a name):
  ``identifiedBy`` = the reviewer, ``dateIdentified`` = the decision, their notes,
  each quoted, in ``identificationRemarks``; else the machine's.
  Candidates are in open nomenclature: ``scientificName`` = the parent taxon,
  ``identificationQualifier`` = ``sp.`` (``gen. sp.`` above genus),
  ``verbatimIdentification`` = the candidate's name, ``taxonConceptID`` = the
  candidate in this database (:func:`concept_id`: stable across re-exports); a
  candidate a reviewer assigned to an accepted one placed above genus is written
  the same way (``_placed_in``). Ranks order … genus including ``subfamily``; an
  accepted candidate's members carry the ranks of where it is placed (a reviewer's move or
  new genus included: ``_placed_ranks``), not the machine's labels; a pending candidate's
  members keep their own deepest confident rank, the candidate linked beside it (``_as_candidate``).
  The barcode is in the DNA extension, tied to its occurrence by id;
  ``associatedSequences`` is not written: it would cite a record elsewhere (``BOLD:<id>``),
  and the ingest keeps a file path per specimen, never that the record came from BOLD.
  ``recordedBy`` is not written either: no reader keeps a collector.
* ``identification.txt`` (Identification History): every determination —
  the one supplied with the collection, the machine's where a reviewer's
  replaced it, each name a reviewer gave that a later review replaced (a
  rename: who gave it, when, and which review replaced it), and last the current
  one, repeated from the core as GBIF's extension asks ("All identifications
  including the most current one should be listed"; a harvester reading the
  extension alone lost it and who made it), its ``identificationRemarks`` beginning
  :data:`CURRENT_REMARK`. Its ``identificationID`` is the one it keeps once
  superseded (the machine's ``<id>:run<run>``, one a reviewer's decision made current ``<id>:review<review>``:
  :func:`_reviewed_id`; a rejection's too, the machine's name reviewed), so one identification has one id, and one
  content, across exports.
* ``dna.txt`` (GBIF DNA-derived data): the COI barcode of every sequenced specimen (not a read the triage found
  chimeric or unrelated to every reference key, :func:`unusable_read`: no barcode of it) as it was submitted
  (cleaned of gaps and case, not cut: :func:`~biodiscover.workflows.export.tables.barcode_to_send`); where
  the analysis compared only its first 660 nt, ``otu_seq_comp_appr`` (MIxS: how sequences were compared)
  says so with both lengths, and it says so too where an older database never recorded the read's length.
  The extension has no free remarks term, and that is the term that describes the comparison.
* ``eml.xml``: title, creator, metadata provider, contact and licence from ``--metadata`` / flags; the coverage
  (the occurrences' bounding box and countries, the orders they are named to) and the methods (how the run named
  and grouped them, from what it recorded) from the run itself (:func:`eml_coverage`, :func:`eml_methods`).
"""

from __future__ import annotations

import io
import json
import re
import stat
import zipfile
from datetime import datetime, UTC
from typing import Any, Iterable, Mapping, Sequence
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import pandas as pd

from biodiscover.storage.evidence import member_quality
from biodiscover.storage.records import (COMPARED_WORDS, DESCRIBED, EPITHET_PATTERN, GENUS_PATTERN, OPEN_SP_WORD,
                                         PHOTO_ONLY, PHOTO_SCORES, RANKS, SENSU_PATTERN, candidate_name,
                                         is_filler_name, listed, named_ranks, open_qualifier, plural)
from biodiscover.storage.review_log import UNDOING
from biodiscover.workflows.export.metadata import LICENCES, DatasetMetadata, ExportOptions, Person
from biodiscover.workflows.export.registry import REGISTRY, ExportFormat
from biodiscover.workflows.export.safety import FORMULA_PREFIXES
from biodiscover.workflows.export.tables import (ABOVE_GENUS, REFERENCE_KEY, ReviewAction, RunExport, ReviewTrail,
                                                  assigned_kind, barcode_to_send, candidate_label, counts_text,
                                                  model_description, not_coi_candidates, plain_records,
                                                  proposal_counts, review_histories, review_trails, set_aside_text)

DWC = "http://rs.tdwg.org/dwc/terms/"
GBIF = "http://rs.gbif.org/terms/"
MIXS = "https://w3id.org/mixs/"
OCCURRENCE_ROWTYPE = DWC + "Occurrence"
IDENTIFICATION_ROWTYPE = DWC + "Identification"
DNA_ROWTYPE = "http://rs.gbif.org/terms/1.0/DNADerivedData"

OCCURRENCE_TERMS: tuple[tuple[str, str], ...] = tuple((t, DWC + t) for t in (
    "occurrenceID", "basisOfRecord", "catalogNumber", "country", "stateProvince",
    "decimalLatitude", "decimalLongitude", "geodeticDatum", "kingdom", "phylum", "class", "order", "family",
    "subfamily", "genus", "scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification",
    "taxonConceptID", "identifiedBy", "dateIdentified", "identificationRemarks",
    "identificationVerificationStatus"))
#: The occurrence terms an export over several runs adds after ``basisOfRecord``: which collection (and triage run)
#: each specimen came from (:func:`dataset_name`).
DATASET_TERMS: tuple[tuple[str, str], ...] = tuple((t, DWC + t) for t in ("datasetID", "datasetName"))


def occurrence_terms(data: RunExport) -> tuple[tuple[str, str], ...]:
    """The core's terms: :data:`OCCURRENCE_TERMS`, with :data:`DATASET_TERMS` in an export over several runs (one
    run's archive is unchanged: its eml.xml names its one collection)."""
    if not data.runs:
        return OCCURRENCE_TERMS
    return OCCURRENCE_TERMS[:2] + DATASET_TERMS + OCCURRENCE_TERMS[2:]


IDENTIFICATION_TERMS: tuple[tuple[str, str], ...] = tuple((t, DWC + t) for t in (
    "identificationID", "scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification",
    "taxonConceptID", "identifiedBy", "dateIdentified", "identificationRemarks",
    "identificationVerificationStatus", "identificationReferences"))
DNA_TERMS: tuple[tuple[str, str], ...] = (
    ("DNA_sequence", GBIF + "dna_sequence"),
    ("target_gene", MIXS + "0000044"),
    ("target_subfragment", MIXS + "0000045"),
    ("otu_class_appr", MIXS + "0000085"),
    ("otu_seq_comp_appr", MIXS + "0000086"),
    ("otu_db", MIXS + "0000087"),
)
#: Archive members are fixed names, never built from data.
MEMBERS = ("meta.xml", "eml.xml", "occurrence.txt", "identification.txt", "dna.txt")
MACHINE = "biodiscover"
#: identificationVerificationStatus of a specimen whose candidate a reviewer rejected: the determination is the
#: machine's name, reviewed (identifiedBy / dateIdentified: the reviewer and the day), not a new species.
REJECTED_STATUS = "candidate species rejected by reviewer (the machine's name stands)"
#: The same, for a specimen the machine named nowhere below class (an unplaced candidate): its row is the class
#: GBIF needs, which is no name the machine gave, so it must not claim one (an Australian plate's #53 did).
REJECTED_UNNAMED_STATUS = ("candidate species rejected by reviewer (the specimen stays at class: nothing below it "
                           "was named)")
#: identificationVerificationStatus of a specimen whose candidate a reviewer identified as a described species the
#: reference lacks (one the reviewer added): named as the species (taxonRank species, no qualifier), and saying no
#: reference key stood behind it, never that it is provisional (a tropical plate's 371 Aedes aegypti).
DESCRIBED_STATUS = "identified by reviewer (described species, not in the reference)"
#: open nomenclature's parts are ``storage.records``'s (``GENUS_PATTERN`` and those beside it), which the analysis
#: reads names with too: a genus with a qualifier ("Harpalus sp.", "Carabus cf. …")
_QUALIFIERS = "|".join((OPEN_SP_WORD, *COMPARED_WORDS))
_OPEN_NOMENCLATURE = re.compile(rf"^({GENUS_PATTERN})\s+({_QUALIFIERS})\.(\s.*)?$")
#: a species named with a doubt before its epithet ("Carabus cf. granulatus", "Amara aff. aenea")
_QUALIFIED_SPECIES = re.compile(rf"^({GENUS_PATTERN})\s+({'|'.join(COMPARED_WORDS)})\.\s*({EPITHET_PATTERN})$")
#: a species in a wide or a strict sense ("Culex pipiens s.l.", "Anopheles maculipennis s. str.", "… agg.")
_SENSU = re.compile(rf"^({GENUS_PATTERN}\s+{EPITHET_PATTERN})\s+({SENSU_PATTERN})$")
_SENSU_WORDS = {"sensu lato": "s.l.", "sensu stricto": "s.str.", "s.s.": "s.str."}


def open_name(name: str) -> tuple[str, str, str] | None:
    """``(scientificName, taxonRank, identificationQualifier)`` of a name in open nomenclature, None for any other:
    ``Harpalus sp.`` / ``Pterostichus sp. 3`` / ``Zyeria sp. BIOUG63189-C12`` → (``Harpalus``, genus, ``sp.``);
    ``Carabus cf. granulatus`` → (``Carabus granulatus``, species, ``cf.``); ``Culex pipiens s.l.`` → (``Culex
    pipiens``, species, ``s.l.``). The name as written goes in ``verbatimIdentification``. Why: names supplied
    with a collection ("Harpalus sp.", "Carabus cf. granulatus") went to GBIF whole as scientificName at rank
    species, which it matches to nothing, while the machine's own interim names were split so (e31 F13)."""
    text = " ".join(str(name).split())
    m = _QUALIFIED_SPECIES.match(text)
    if m:
        return f"{m.group(1)} {m.group(3)}", "species", f"{m.group(2)}."
    m = _SENSU.match(text)
    if m:
        said = m.group(2).replace(" ", "")
        return m.group(1), "species", _SENSU_WORDS.get(m.group(2), _SENSU_WORDS.get(said, said))
    m = _OPEN_NOMENCLATURE.match(text)
    if m:
        return m.group(1), "genus", f"{m.group(2)}."
    return None


_WHITESPACE_BREAKS = re.compile(r"[\t\r\n]+")


def dwc_cell(value: Any) -> str:
    """Tab-separated text cell: no tabs or line breaks inside, formulas neutralised."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.6g}"
    text = value if isinstance(value, str) else str(value)
    if "\t" in text or "\n" in text or "\r" in text:
        text = _WHITESPACE_BREAKS.sub(" ", text)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _tsv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    lines = ["\t".join(header)]
    lines.extend("\t".join(dwc_cell(v) for v in row) for row in rows)
    return ("\n".join(lines) + "\n").encode("utf-8")


def concept_id(run: Mapping[str, Any], proposal_id: Any) -> str:
    """The ``taxonConceptID`` of a candidate species: ``biodiscover:db-3f2a9c1e0b7d:candidate:17``, the database's
    identity (``Database.database_id``) and the candidate's proposal id.

    Stable across re-exports of the same decisions, from the database or a copy of it: a proposal's id never
    changes, and an accepted, assigned or rejected one is never re-clustered. A pending candidate that a later
    triage run re-clusters becomes a new proposal (a new concept, its members regrouped) and gets a new id; an
    independent triage into another database gives other ids. Tables built without a database (the demo, tests)
    fall back to the run's id (``biodiscover:run:7:candidate:5``), unique only within them."""
    database = run.get("database_id")
    return (f"biodiscover:{database}:candidate:{proposal_id}" if database
            else f"biodiscover:run:{run.get('id')}:candidate:{proposal_id}")


def package_id(run: Mapping[str, Any]) -> str:
    """eml.xml's ``packageId``: ``biodiscover-db-3f2a9c1e0b7d-run-1``, unique across databases for the reason
    :func:`concept_id` is (every database numbers its runs from 1); ``biodiscover-run-1`` without one. Of an export
    over several runs: ``…-runs-5-6-7``."""
    database = run.get("database_id")
    ids = run.get("runs")
    which = "runs-" + "-".join(str(i) for i in ids) if isinstance(ids, (list, tuple)) else f"run-{run.get('id')}"
    return f"biodiscover-{database}-{which}" if database else f"biodiscover-{which}"


def dataset_name(run: Mapping[str, Any]) -> str:
    """``datasetName`` of a specimen in an export over several runs: the collection its run triaged (the week's
    plate file), else ``run 5``.

    Why these terms: Darwin Core's ``datasetName`` / ``datasetID`` name "the data set from which the record was
    derived", which a collection file is (``datasetID`` is that run's own archive's packageId, :func:`package_id`,
    so a record leads back to the one-run export of its week). ``eventID`` would claim a sampling event (one place
    and time) biodiscover does not know — a plate may hold several traps — and ``collectionCode`` is an
    institution's collection; the triage run itself is in ``identificationRemarks`` as in every archive."""
    return str(run.get("collection") or f"run {run.get('id')}")


def reference_data(run: Mapping[str, Any]) -> str:
    """What a run named from, for GBIF: the reference barcodes (the file's name, the split used as keys, how many)
    and the model (:func:`~biodiscover.workflows.export.tables.model_description`): ``reference barcodes
    ref_train_val.csv (train split, 21,280 barcodes); biodiscover model sha256:4e2d…``. dna.txt's ``otu_db`` (MIxS:
    the reference database and its version) and the machine's ``identificationReferences``. Why: both said only
    the model's hash, or nothing (e32 R22); the file's name only, never the path it was read from on a lab's disk."""
    raw = run.get("parameters")
    data = raw.get("data") if isinstance(raw, Mapping) else None
    said = []
    if isinstance(data, Mapping) and isinstance(data.get("data"), str) and data["data"]:
        how = [f"{data['keys']} split" if isinstance(data.get("keys"), str) and data["keys"] else None,
               f"{int(data['n_keys']):,} barcodes" if isinstance(data.get("n_keys"), (int, float)) else None]
        name = re.split(r"[\\/]", data["data"])[-1]  # the file's name, whichever system wrote the path
        said.append(f"reference barcodes {name}"
                    + (f" ({', '.join(h for h in how if h)})" if any(how) else ""))
    return "; ".join([*said, f"biodiscover model {model_description(run)}"])


def _remarks(run: Mapping[str, Any], rank: str | None, conf: Any, novelty: Any,
             assignment: Mapping[str, Any] | None = None) -> str:
    parts = [f"method=biodiscover {run.get('kind', 'triage')} run {run.get('id', '?')}",
             f"model={model_description(run)}"]
    evidence = _evidence(assignment or {})
    if evidence:
        parts.append(f"evidence={evidence}")
    if rank and conf is not None and conf == conf:
        if at_image_thresholds(assignment or {}):  # a score, not P(right): named at its own threshold
            parts.append(f"image score={float(conf):.3f} at {rank}")
        else:
            parts.append(f"confidence={float(conf):.3f} at {rank}")
    if (assignment or {}).get("modality") == "image":
        parts.append(photo_only_words((assignment or {}).get("reason")))
    if novelty is not None and novelty == novelty:
        parts.append(f"novelty={float(novelty):.3f}")
    return "; ".join(parts)


def at_image_thresholds(assignment: Mapping[str, Any]) -> bool:
    """Whether a photograph-only assignment was named at the image classifier's own thresholds, its confidence a
    score (a bundle fitted before the scores were calibrated, or a run stored before triage wrote a reason), not
    the P(right) calibrated from it that a photograph is named by at the level."""
    reason = assignment.get("reason")
    return assignment.get("modality") == "image" and (not isinstance(reason, str) or PHOTO_SCORES in reason
                                                      or PHOTO_ONLY not in reason)


def photo_only_words(reason: Any) -> str:
    """What the remarks of a specimen named from its photograph alone say of how it was named: the triage's
    sentence (:data:`PHOTO_ONLY`: its P(right) calibrated from the image score against the level, or, from a bundle
    fitted before that calibration, the image classifier's threshold it was named at), or, for a run
    stored before triage wrote one, the same in general words. Why: "confidence=0.657 at species" read as a
    species named below the level 0.98 (e35 week-2 review F5): the image score is no P(right)."""
    text = reason if isinstance(reason, str) else ""
    at = text.find(PHOTO_ONLY + ":")
    return (text[at:] if at >= 0 else
            f"{PHOTO_ONLY}: named at the image classifier's own threshold per rank, not at the level: {PHOTO_SCORES}")


#: How the triage's reason begins for a read it would not name from (``discovery.engine``: two specimens' DNA in
#: one read; a read no closer to any reference key than shuffled barcodes come): neither read is a barcode of the
#: specimen, so no export sends it as one (dna.txt, all_specimens.fasta) and the archive says why.
CHIMERIC_READ = "chimeric barcode"
UNRELATED_READ = "barcode unrelated to every reference key"


def unusable_read(a: Mapping[str, Any]) -> str | None:
    """The triage's reason where it found a specimen's read chimeric or unrelated to every reference key
    (:data:`CHIMERIC_READ`, :data:`UNRELATED_READ`), else None."""
    reason = a.get("reason")
    return reason if isinstance(reason, str) and reason.startswith((CHIMERIC_READ, UNRELATED_READ)) else None


#: what the archive adds to the remarks of a specimen whose read it does not send (:func:`unsent_reads`)
READ_HELD_BACK = "its read is not sent as its DNA sequence (dna.txt) nor in all_specimens.fasta: not a barcode of it"


def unsent_reads(data: RunExport) -> set[str]:
    """The specimens whose read no export sends as their COI barcode (dna.txt, all_specimens.fasta, a candidate's
    FASTA file): the triage found it chimeric or unrelated to every key (:func:`unusable_read`), or a candidate's
    evidence finds it nearer chance than identity to every key (``storage.evidence.unusable_reads``: "barcode not
    usable as COI", the archive's remark for it). Why: GBIF and a tree pipeline read each as the specimen's COI."""
    from biodiscover.storage.evidence import unusable_reads
    from biodiscover.workflows.export.flags import evidence_of

    out = {str(r["processid"]) for r in plain_records(data.assignments) if unusable_read(r)}
    if not data.proposals.empty and "evidence" in data.proposals:
        for ev in data.proposals["evidence"]:
            out.update(unusable_reads(evidence_of(ev).member_hits))
    return out


def _evidence(a: Mapping[str, Any]) -> str | None:
    """What the machine named a specimen from, in words (None for a run stored before schema 0005 kept it).

    Why in the archive: a photograph-only call (the demo's: family right 90 % of the time) and a barcode at
    99.8 % to a key are not one kind of identification, and GBIF users filter on how a record was identified."""
    modality, identity, overlap, key = (a.get(k) for k in ("modality", "identity", "overlap", "top_hit"))
    if not isinstance(modality, str):
        return None
    barcode = None
    if isinstance(identity, (int, float)) and identity == identity:
        # a member of a candidate a reviewer decided is a key too (``tables.key_source``: the csv's words)
        source = a.get("top_hit_source")
        to = f"{key} ({source})" if isinstance(source, str) and source != REFERENCE_KEY else f"reference {key}"
        barcode = f"COI barcode {100 * float(identity):.1f} % identical to {to}"
        if isinstance(overlap, (int, float)) and overlap == overlap:
            barcode += f" over {int(overlap)} bases"
    if modality == "image":
        return "photograph alone (no usable barcode)" + (f", nearest reference {key}" if key else "")
    if modality == "dna+image":
        return f"{barcode or 'COI barcode'} and photograph"
    if modality == "dna":
        return barcode or "COI barcode"
    return unusable_read(a) or "no call (no usable barcode or photograph)"


def _day(stamp: Any) -> str | None:
    text = str(stamp or "")
    return text[:10] if re.match(r"^\d{4}-\d{2}-\d{2}", text) else None


def _placed_in(parent_name: Any, parent_rank: Any, machine: Mapping[str, Any]) -> tuple[Any, Any, str]:
    """``(scientificName, taxonRank, identificationQualifier)`` of an undescribed species placed in a taxon.

    The one open-nomenclature rule of a candidate species, pending or accepted, and of
    a later candidate a reviewer assigned to an accepted one: the parent taxon at its
    own rank, ``sp.`` after a genus and ``gen. sp.`` above
    (:func:`~biodiscover.storage.records.open_qualifier`), so GBIF matches the parent
    and the candidate's name travels as ``verbatimIdentification``. With no parent,
    or a rank filler for one, the machine's deepest higher taxon (``machine``'s
    name, e.g. Insecta at class) with ``gen. sp.``: GBIF needs a scientificName.
    """
    if not parent_name or parent_rank not in RANKS or is_filler_name(parent_name):
        return machine["scientificName"], machine["taxonRank"], "gen. sp."
    return parent_name, parent_rank, open_qualifier(parent_rank)


def _placed_ranks(row: dict[str, Any], p: Mapping[str, Any]) -> None:
    """The rank columns of a candidate's member from where the candidate is placed (``parent_lineage``: a
    reviewer's move or new genus included), not the machine's labels: a provisional genus under Arctiinae reached
    GBIF with an empty genus column and no family. Ranks below the placement are left empty (the candidate is
    named at its parent's rank); without a recorded lineage (an older export table) the machine's stay."""
    lineage = p.get("parent_lineage")
    if not isinstance(lineage, Mapping) or not lineage:
        return
    for rank in ("order", "family", "subfamily", "genus"):
        name = lineage.get(rank)
        row[rank] = None if name is None or is_filler_name(name) else name


def _added_parent(p: Mapping[str, Any]) -> str:
    """A remark when the candidate's parent is a taxon a reviewer added (a genus the reference lacks): GBIF matches
    the name, and a reader must know no reference record stood behind it; a provisional one is said to be, a
    described one (*Cleora* Curtis, 1825) is not."""
    what = {"provisional": "is provisional", DESCRIBED: "is described"}.get(str(p.get("parent_status")))
    if what is None:
        return ""
    return (f"; {p.get('parent_rank')} {p.get('parent_taxon')} {what}: added by a reviewer, not in the "
            "reference the run searched")


def _reviewed(row: dict[str, Any], trail: ReviewTrail | None, verification: str) -> None:
    """Make ``row`` the reviewer's determination (who, when, their notes): an accepted, assigned or rejected
    candidate alike, so each decision says who made it and on what day (the machine's row goes to the history)."""
    row["identificationVerificationStatus"] = verification
    if trail is None or not trail.decided_by:
        return
    row["identifiedBy"] = trail.decided_by
    row["dateIdentified"] = _day(trail.decided_at) or row.get("dateIdentified")
    _noted(row, trail)


def _noted(row: dict[str, Any], trail: ReviewTrail | None) -> None:
    """Add the reviewers' notes on the candidate to ``row``'s remarks, and the reviews a later run carried to it as
    the database's actions, unquoted (none: unchanged)."""
    if trail is not None and trail.notes:
        row["identificationRemarks"] = (row.get("identificationRemarks") or "") + \
            f"; reviewer notes: {trail.notes_text()}"
    if trail is not None and trail.carried:
        row["identificationRemarks"] = (row.get("identificationRemarks") or "") + f"; {trail.carried_text()}"


def _rejected_by(trail: ReviewTrail | None) -> str:
    """``rejected by Kari Nordmann on 2026-12-06``: who rejected a candidate and when (``a reviewer`` where the log
    does not say)."""
    if trail is None or not trail.decided_by:
        return "rejected by a reviewer"
    day = _day(trail.decided_at)
    return f"rejected by {trail.decided_by}" + (f" on {day}" if day else "")


def _rejection(row: dict[str, Any], trail: ReviewTrail | None, verification: str) -> None:
    """Make ``row`` a member of a rejected candidate: the machine's determination stands, so ``identifiedBy`` and
    ``dateIdentified`` stay the machine's (dwc:identifiedBy is who assigned the taxon: a reviewer who rejected a
    candidate did not assign the machine's name; a real Norwegian plate's member read "Kari Nordmann" for
    "Diptera", beside her own note "Micropsectra sp. by morphology", e27 F11); the status says it was rejected, the
    remarks by whom, when (:func:`_rejected_by`) and the reviewer's notes."""
    row["identificationVerificationStatus"] = verification
    _noted(row, trail)


#: identificationVerificationStatus of a member of a pending candidate a reviewer moved: the placement is theirs,
#: the candidate is not decided yet
MOVED_STATUS = "placed by reviewer (candidate species pending review)"

#: identificationVerificationStatus of a member of a provisional species: of the candidate a reviewer accepted as
#: one, and of a candidate assigned to it (by a reviewer, or by the carry of their decision to a later run). One
#: wording: run 1 of a real plate said "accepted by reviewer (provisional species)" and run 2, which carried the
#: acceptance, "identified by reviewer (provisional species)" for the same specimen and species (e27, F11).
ACCEPTED_STATUS = "identified by reviewer (provisional species)"


def decision_status(p: Mapping[str, Any], named: bool = True) -> str:
    """The identificationVerificationStatus of a reviewer's decision on proposal ``p`` (a ``proposals`` row:
    ``status``, ``assigned_provisional``, ``assigned_status``): one owner of the words, whichever run's export
    writes the decision (the run that proposed it, or a later one that named its members again). ``named``:
    whether the machine named the specimen below class (a rejected candidate's row then keeps that name)."""
    status = str(p.get("status"))
    if status == "accepted":
        return ACCEPTED_STATUS
    if status == "assigned":
        if _assigned_provisional(p):
            return ACCEPTED_STATUS
        return DESCRIBED_STATUS if p.get("assigned_status") == DESCRIBED else "identified by reviewer (known species)"
    if status == "rejected":
        return REJECTED_STATUS if named else REJECTED_UNNAMED_STATUS
    raise ValueError(f"proposal {p.get('proposal_id')}: status {status!r} is no reviewer's decision")


def _assigned_provisional(p: Mapping[str, Any]) -> bool:
    """Whether a reviewer assigned ``p`` to a provisional species accepted in this database."""
    made = p.get("assigned_provisional")
    return made is not None and made == made  # NaN in a frame column of ints and Nones


def _as_candidate(row: dict[str, Any], p: Mapping[str, Any], proposal_id: Any, machine: Mapping[str, Any],
                  run: Mapping[str, Any], remarks: str, a: Mapping[str, Any], deepest: str | None,
                  of_run: str = "", history: Sequence[ReviewAction] = ()) -> None:
    """Write ``row`` as a member of candidate species ``p``, linked to it by ``verbatimIdentification`` (its name)
    and ``taxonConceptID``. ``of_run``: `` of run 1`` where an earlier run proposed it; ``history``: its reviews.

    Accepted, or moved by a reviewer (``history``), the candidate's placement is a reviewer's determination of
    every member: in open nomenclature under where it is placed. Pending where the machine placed it, it is not
    one: the member keeps its own deepest confident rank (``machine``), open nomenclature at that rank, and the
    remark says where the candidate is placed where that differs. Why: a
    pending candidate placed at order Diptera published five members the machine had named to subfamily
    Syrphinae as "Diptera", and one placed at family Chironomidae published a member named only to order as a
    Chironomidae whose own remark read "confidence … at order" (e32 R1)."""
    parent_rank = p.get("parent_rank") if p.get("parent_rank") in RANKS else deepest
    parent_name, parent_rank, qualifier = _placed_in(p.get("parent_taxon") or a.get("deepest_taxon"),
                                                     parent_rank, machine)
    said = (remarks + f"; candidate species {proposal_id}{of_run} (status {p.get('status')}, version "
            f"{p.get('version')})")
    if str(p.get("status")) == "accepted" or _moved(history):
        _placed_ranks(row, p)
        row.update(scientificName=parent_name, taxonRank=parent_rank, identificationQualifier=qualifier)
        move = next((a for a in reversed(history) if a.action == "move" and a.undone_by is None), None)
        if str(p.get("status")) != "accepted" and move is not None:
            # the placement is the reviewer's, so is the determination: it read "identifiedBy biodiscover,
            # unverified (machine prediction)" for a candidate a reviewer had moved into another order (e36 rev3 F1)
            row.update(identifiedBy=move.reviewer or "a reviewer", identificationVerificationStatus=MOVED_STATUS,
                       dateIdentified=_day(move.at) or row.get("dateIdentified"))
    else:
        own_rank = machine["taxonRank"]
        row.update(identificationQualifier=_own_qualifier(machine))
        if (parent_name, parent_rank) != (machine["scientificName"], own_rank):
            said += (f"; the candidate is placed at {parent_rank} {parent_name}, this specimen alone at {own_rank} "
                     f"{machine['scientificName']}")
    row.update(verbatimIdentification=candidate_label(p), taxonConceptID=concept_id(run, proposal_id),
               identificationRemarks=said + _added_parent(p) + _quality(p, row.get("occurrenceID")))


def _since_merge(history: Sequence[ReviewAction], source: Any) -> tuple[Sequence[ReviewAction], str]:
    """The reviews of a candidate (``history``) from the one in force that merged candidate ``source`` into it on,
    and that merge in words (`` (review 1: merge (Ana Silva, 2026-12-07))``): a specimen merged in bore none of the
    names given before it. The whole history and no words where the log does not hold the merge."""
    at = next((i for i in reversed(range(len(history))) if history[i].action == "merge"
               and history[i].undone_by is None and any(str(o) == str(source) for o, _ in history[i].others)), None)
    return (history, "") if at is None else (history[at:], f" ({history[at].in_words()})")


def _own_qualifier(machine: Mapping[str, Any]) -> Any:
    """The qualifier of a pending candidate's member at its own rank: the machine's at species, ``sp.`` at genus,
    ``gen. sp.`` above (class included: ``open_qualifier`` knows only the ranks order … species)."""
    return {"species": machine.get("identificationQualifier"), "genus": "sp."}.get(machine["taxonRank"], "gen. sp.")


def _as_proposed(held: Any, history: Sequence[ReviewAction], run: Mapping[str, Any],
                 machine: Mapping[str, Any]) -> dict[str, Any]:
    """The candidate link of the machine's row in the history of a specimen a reviewer's decision on candidate
    ``held`` re-determined: the candidate's name before its first review and its concept, as the export before
    that review wrote the same ``identificationID`` (e32 R9: ``CHRSV021-08:run3`` read "Chironomidae gen. sp.
    cand2" before the review and "Chironominae gen. sp." after). Nothing where the log holds no earlier name."""
    named = next((a.before_name for a in history if a.before_name), None)
    if held is None or named is None:
        return {}
    return {"verbatimIdentification": named, "taxonConceptID": concept_id(run, held),
            "identificationQualifier": _own_qualifier(machine)}


def _moved(history: Sequence[ReviewAction]) -> bool:
    """Whether a reviewer's move of the candidate is in force (its placement is then theirs, not the machine's)."""
    return any(a.action == "move" and a.undone_by is None for a in history)


def _quality(p: Mapping[str, Any], processid: Any) -> str:
    """``; barcode not usable as COI: …`` / ``; matches ZYPAN924-10 …``: what the candidate's evidence says of this
    member's data (``storage.evidence.member_quality``), empty where it says nothing."""
    from biodiscover.workflows.export.flags import evidence_of

    said = member_quality(evidence_of(p.get("evidence")), str(processid)) if processid else []
    return "".join(f"; {line}" for line in said)


def _as_assigned(row: dict[str, Any], p: Mapping[str, Any], decided: Any, machine: Mapping[str, Any],
                 run: Mapping[str, Any], remarks: str, of_run: str = "") -> None:
    """Write ``row`` as a member of candidate ``p`` a reviewer identified as a species (known, described or
    accepted here). ``of_run``: `` of run 1`` where an earlier run proposed it."""
    known = p.get("provisional_name")
    interim = open_name(known) if isinstance(known, str) else None
    made = p.get("assigned_provisional")
    provisional = _assigned_provisional(p)
    if provisional or p.get("parent_rank") in ABOVE_GENUS:
        # a species a reviewer accepted here is undescribed whatever its name ("Bactrocera aquilonis", a
        # reviewer's binomial, reached GBIF as a described species beside its own 24 specimens written
        # "Bactrocera sp."), as is one with no genus ("Phoridae gen. sp. BD-0002"): written as the
        # accepted candidate itself is
        name, rank, qualifier = _placed_in(p.get("parent_taxon"), p.get("parent_rank"), machine)
    elif interim:  # an interim name ("Zyeria sp. BIOUG63189-C12", "Megaselia sp. BD-0007"), as the machine's
        name, rank, qualifier = interim
    else:
        # a described species a reviewer added is written as any described one (it is not provisional); the
        # status says that no reference key stood behind it
        name, rank, qualifier = known, "species", None
    _placed_ranks(row, p)  # the assigned species' own genus and the ranks above it
    row.update(scientificName=name, taxonRank=rank, identificationQualifier=qualifier,
               verbatimIdentification=known,
               taxonConceptID=concept_id(run, int(made)) if provisional and made else None,
               identificationRemarks=remarks + f"; candidate species {decided}{of_run} identified by a reviewer as "
                                               f"{assigned_kind(p)}" + _added_parent(p)
               # what the candidate's evidence says of this member (a dropped record of the species it matches: what
               # the reviewer assigned on) stays when the name changes
               + _quality(p, row.get("occurrenceID")))


def _as_decided(row: dict[str, Any], e: Mapping[str, Any], machine: Mapping[str, Any], run: Mapping[str, Any],
                remarks: str, a: Mapping[str, Any], deepest: str | None) -> None:
    """Write ``row`` as the earlier run's export wrote a member of ``e`` (an ``earlier`` row: accepted or
    assigned), its remarks saying which run proposed it."""
    of_run = f" of run {e.get('run_id')}"
    if str(e.get("status")) == "accepted":
        _as_candidate(row, e, e["proposal_id"], machine, run, remarks, a, deepest, of_run)
    else:
        _as_assigned(row, e, e["proposal_id"], machine, run, remarks, of_run)


def _standing_decision(decisions: Sequence[Mapping[str, Any]], named: Mapping[str, Any], deepest: str | None,
                       taxon: Any) -> Mapping[str, Any] | None:
    """The newest of ``decisions`` (``earlier`` rows of one specimen: reviewers' accepted or assigned candidates of
    earlier runs holding it) that this run's name (``named``: rank → name, ``deepest``, ``taxon``) leaves standing,
    else None: the same species, or a shallower name on the decided species' lineage (``decided_lineage``), or no
    name below class.

    Why: a machine's shallower name does not contradict a determination, it only says less. A reviewer assigned
    10 specimens to *Tiaopsis* sp. BIOUG57720-B08; the re-triage of the week named them genus *Tiaopsis* (P(right)
    0.37–0.92 at species), and its exports then wrote the machine's "Tiaopsis sp." as their determination, the
    reviewer's only in the history (e35 week-2 review, finding 1) — while the same specimen proposed again, its
    decision carried, kept the reviewer's. A name that contradicts the decision (another species, another genus)
    is the machine's determination, and the reviewer's goes to the history (:func:`_earlier_decision_row`)."""
    for e in reversed(decisions):
        if deepest == "species":
            if e.get("decided_taxon") == taxon:
                return e
            continue
        lineage = e.get("decided_lineage") or {}
        if deepest is None or all(lineage.get(r) == v for r, v in named.items() if v):
            return e
    return None


def _standing_words(run: Mapping[str, Any], deepest: str | None, taxon: Any, e: Mapping[str, Any],
                    a: Mapping[str, Any]) -> str:
    """The remark that says what run ``run`` named a specimen whose reviewer's decision ``e`` stands
    (:func:`_standing_decision`), with how sure it was of the reviewer's species where it named less (``a``: its
    assignment row)."""
    if deepest == "species":
        return f"run {run.get('id')} named the specimen {taxon} again from the reviewer's determination"
    said = f"only to {deepest} {taxon}" if deepest else "to nothing below class"
    sure = a.get("confidence_species")
    sure_words = f" (P(right) {float(sure):.2f} at species)" if isinstance(sure, (int, float)) and sure == sure else ""
    return (f"run {run.get('id')} named the specimen {said}{sure_words}, which does not contradict the reviewer's "
            f"determination {e.get('decided_taxon')}: it stands")


def _carried_source(p: Mapping[str, Any] | None) -> Any:
    """The id of the earlier candidate whose reviewer's decision the database carried to proposal ``p``
    (``run_tables``' ``carried_from``), else None."""
    c = (p or {}).get("carried_from")
    if isinstance(c, str) and c.strip():
        c = json.loads(c)
    return c.get("proposal_id") if isinstance(c, Mapping) else None


def _earlier_decision_row(pid: str, e: Mapping[str, Any], machine: Mapping[str, Any], run: Mapping[str, Any],
                          remarks: str, a: Mapping[str, Any], deepest: str | None, core: Mapping[str, Any],
                          trails: Mapping[Any, ReviewTrail]) -> dict[str, Any]:
    """An Identification History row for a reviewer's decision of an earlier run that is not the specimen's
    current determination (this run named it otherwise): written as that run's export wrote it, so the
    reviewer's identification is not lost from the archive, with what this run named it instead."""
    old: dict[str, Any] = dict(machine)
    _as_decided(old, e, machine, run, remarks, a, deepest)
    _reviewed(old, trails.get(e["proposal_id"]), decision_status(e))
    instead = core.get("verbatimIdentification") or core.get("scientificName")
    old["identificationRemarks"] = (
        f"determined by a reviewer in run {e.get('run_id')} (candidate species {e['proposal_id']}); run "
        f"{run.get('id')} named the specimen {instead} instead" + "; " + str(old.get("identificationRemarks") or ""))
    return {"id": pid, "identificationID": f"{pid}:run{e.get('run_id')}:candidate{e['proposal_id']}",
            **{k: old.get(k) for k, _ in IDENTIFICATION_TERMS if k not in ("identificationID",
                                                                         "identificationReferences")}}


def occurrence_rows(data: RunExport) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Darwin Core rows (occurrence, identification history, DNA-derived) for every specimen."""
    occ, ident, dna, _ = _darwin_core(data)
    return occ, ident, dna


#: The occurrence terms that are a specimen's current determination: what it is called (in open nomenclature),
#: by whom, when and how sure. The per-specimen sheet (assignments.csv) carries exactly these, from
#: :func:`determinations`, so a collection manager reading it and GBIF reading the archive see one determination.
DETERMINATION_TERMS: tuple[str, ...] = ("scientificName", "taxonRank", "identificationQualifier",
                                        "verbatimIdentification", "identifiedBy", "dateIdentified",
                                        "identificationVerificationStatus")


def determinations(data: RunExport) -> pd.DataFrame:
    """Per specimen: ``processid``, the proposal it was proposed in whatever became of it (``proposed_in``) and
    that proposal's ``candidate_status`` (pending, accepted, rejected, assigned), then its current determination
    (:data:`DETERMINATION_TERMS`), taken from the Darwin Core occurrence rows themselves.

    The reviewer's determination replaces the machine's by rules that live once, in :func:`occurrence_rows`
    (open nomenclature, rank fillers, interim names, who decided when); the other exports read them from here
    rather than restating them."""
    occ, _, _, proposed = _darwin_core(data)
    status = ({r["proposal_id"]: r.get("status") for r in plain_records(data.proposals)}
              if not data.proposals.empty and "status" in data.proposals else {})
    rows = [{"processid": r["occurrenceID"], "proposed_in": proposed.get(r["occurrenceID"]),
             "candidate_status": status.get(proposed.get(r["occurrenceID"])),
             **{t: r.get(t) for t in DETERMINATION_TERMS}} for r in occ]
    frame = pd.DataFrame(rows, columns=["processid", "proposed_in", "candidate_status", *DETERMINATION_TERMS],
                         dtype=object)
    ids = [r["proposed_in"] for r in rows if r["proposed_in"] is not None]
    if ids and all(isinstance(v, (int, np.integer)) for v in ids):
        frame["proposed_in"] = pd.array([r["proposed_in"] for r in rows], dtype="Int64")  # integers next to gaps
    return frame


def named_later(data: RunExport) -> dict[int, tuple[tuple[str, int], ...]]:
    """Of an export over several runs: each accepted candidate's id → ``(processid, run id)`` of every specimen
    another run of the export named as its species (the occurrence's ``taxonConceptID`` is the candidate's, by the
    rules of :func:`occurrence_rows`) that is not one of the candidate's reviewed members, by process id.

    Why: a species accepted in week 1 (30 members) is named by its keys in the later weeks' runs, and the season's
    export gave its row, its FASTA file and its report section the 30 alone while the archive named 71 as it
    (season review F4). The members stay what a reviewer saw and decided on; these are said beside them. One run's
    export has none (its specimens named as an accepted species of its own are that candidate's members)."""
    if not data.runs or data.proposals.empty or "status" not in data.proposals:
        return {}
    accepted = [p["proposal_id"] for p in plain_records(data.proposals) if p.get("status") == "accepted"]
    if not accepted:
        return {}
    concepts = {concept_id(data.run, int(pid)): int(pid) for pid in accepted}
    members = set(zip(data.members["proposal_id"], data.members["processid"])) if not data.members.empty else set()
    run_of = dict(zip(data.assignments["processid"], data.assignments["run_id"])) \
        if "run_id" in data.assignments else {}
    out: dict[int, list[tuple[str, int]]] = {}
    for r in _darwin_core(data)[0]:
        pid, specimen = concepts.get(str(r.get("taxonConceptID"))), r["occurrenceID"]
        if pid is not None and (pid, specimen) not in members and run_of.get(specimen) is not None:
            out.setdefault(pid, []).append((str(specimen), int(run_of[specimen])))
    return {pid: tuple(sorted(rows)) for pid, rows in sorted(out.items())}


def named_later_text(size: Any, later: Sequence[tuple[str, int]]) -> str:
    """A candidate's specimens in words where other runs of the export named more as it (:func:`named_later`):
    ``30 reviewed + 41 named by runs 2, 5 and 6``; else its size. The one wording of the report's table, its
    section and proposals.csv's ``named_later_runs``."""
    if not later:
        return str(size)
    runs = sorted({r for _, r in later})
    return (f"{size} reviewed + {len(later)} named by run{'s' if len(runs) > 1 else ''} "
            f"{listed([str(r) for r in runs])}")


def _darwin_core(data: RunExport) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]],
                                           dict[str, Any]]:
    """:func:`occurrence_rows`, and processid → the proposal each specimen was proposed in (a live candidate,
    else one a reviewer rejected or assigned): the proposal its determination comes from."""
    today = datetime.now(UTC).isoformat()
    # Plain dicts (NaN → None) keyed by id: per-row pandas lookups cost ~1 ms each at 100k rows.
    spec = {r["processid"]: r for r in plain_records(data.specimens)}
    assign = {r["processid"]: r for r in plain_records(data.assignments)}
    cand = data.candidate_of()
    props = {r["proposal_id"]: r for r in plain_records(data.proposals)} if not data.proposals.empty else {}
    trails, histories = data.trails(), data.histories()
    unsent, not_coi = unsent_reads(data), not_coi_candidates(props)
    earlier: dict[str, list[dict[str, Any]]] = {}
    for e in plain_records(data.earlier):
        earlier.setdefault(e["processid"], []).append(e)
    earlier_trails, earlier_histories = review_trails(data.earlier_reviews), review_histories(data.earlier_reviews)
    folded = {f["processid"]: f for f in plain_records(data.merged)} if not data.merged.empty else {}
    retired: dict[str, list[dict[str, Any]]] = {}
    for g in plain_records(data.retired):
        retired.setdefault(g["processid"], []).append(g)
    # Members of a candidate a reviewer rejected or identified as a known species: their record says so.
    set_aside: dict[str, Any] = {}
    own = data.own_members()
    if not own.empty and props:
        decided_ids = {i for i, r in props.items() if r.get("status") in ("rejected", "assigned")}
        for m_pid, m_prop in own[["processid", "proposal_id"]].itertuples(index=False, name=None):
            if m_prop in decided_ids:
                set_aside.setdefault(m_pid, m_prop)
    occ, ident, dna = [], [], []
    proposed: dict[str, Any] = {}
    for pid, s in spec.items():
        a = assign.get(pid, {})
        # the run that named it (of an export over several runs, each specimen's own: its remarks and dataset)
        run = data.run_of(a.get("run_id"))
        when = str(run.get("finished_at") or run.get("started_at") or today)[:10]
        deepest = a.get("deepest_rank") if a.get("deepest_rank") in RANKS else None
        novelty = a.get("novelty")
        # A rank filler ("unassigned Gaeaxidae") names no taxon: never a dwc rank column or a scientificName.
        named = {r: None if is_filler_name(v := a.get(f"label_{r}")) else v
                 for r in named_ranks(deepest)}
        taxon = a.get("deepest_taxon") or (named.get(deepest) if deepest else None)
        if deepest and is_filler_name(taxon):  # named only down to a filler: its deepest real taxon is the name
            real = [r for r, v in named.items() if v]
            deepest = real[-1] if real else None
            taxon = named[deepest] if deepest else None
        row: dict[str, Any] = {
            "occurrenceID": pid, "basisOfRecord": "PreservedSpecimen", "catalogNumber": s.get("sampleid"),
            "country": s.get("country"), "stateProvince": s.get("province_state"),
            "decimalLatitude": s.get("coord-lat"), "decimalLongitude": s.get("coord-lon"),
            "geodeticDatum": "WGS84" if pd.notna(s.get("coord-lat")) else None,
            "kingdom": "Animalia", "phylum": s.get("phylum") or "Arthropoda", "class": s.get("class") or "Insecta",
            "order": named.get("order"), "family": named.get("family"), "subfamily": named.get("subfamily"),
            "genus": named.get("genus"), "identifiedBy": MACHINE, "dateIdentified": when,
            "identificationVerificationStatus": "unverified (machine prediction)",
        }
        if data.runs:
            row.update(datasetID=package_id(run), datasetName=dataset_name(run))
        conf = a.get(f"confidence_{deepest}") if deepest else None
        remarks = _remarks(run, deepest, conf, novelty, a)
        if pid in data.other_barcodes:  # another collection's read of this id: the export says so (e31 F22)
            remarks += f"; {data.other_barcodes[pid]}"
        barcode, compared = barcode_to_send(s)  # as submitted; what the analysis compared goes in words
        read_off = unusable_read(a)
        if pid in unsent and barcode:
            remarks += f"; {READ_HELD_BACK}"
        proposal_id = cand.get(pid)
        # a read unrelated to every insect key says nothing of the specimen's class: none is asserted
        matches_nothing = (read_off or "").startswith(UNRELATED_READ) or proposal_id in not_coi
        # the engine's own decision, stored with the assignment (a fused DNA+image call may override a threshold)
        novel = bool(a.get("is_novel")) if a.get("is_novel") is not None else False
        placeholder = open_name(taxon) if deepest == "species" and isinstance(taxon, str) else None
        # The machine's own determination (core when nobody reviewed it, history when a reviewer's replaced it).
        # a provisional species a reviewer accepted in this database: open nomenclature at the rank it is placed
        # in, the accepted candidate's concept (week 2's specimens of week 1's BD-0001 had none; one placed above
        # genus was written as a species named "Tenebrionidae gen. sp. BD-0004")
        made = data.concepts.get(taxon) if deepest == "species" and isinstance(taxon, str) else None
        if made is not None:
            above = [r for r in RANKS[:-1] if named.get(r)]
            placed = above[-1] if above else "class"
            row.update(scientificName=named[placed] if above else (s.get("class") or "Insecta"), taxonRank=placed,
                       identificationQualifier="sp." if placed == "genus" else "gen. sp.",
                       verbatimIdentification=taxon, taxonConceptID=concept_id(run, made),
                       identificationRemarks=remarks)
        elif placeholder:  # a BOLD-style interim name ("Zyeria sp. BIOUG63189-C12") is not a binomial
            row.update(scientificName=placeholder[0], taxonRank=placeholder[1],
                       identificationQualifier=placeholder[2], verbatimIdentification=taxon,
                       taxonConceptID=s.get("dna_bin"), identificationRemarks=remarks)
        elif deepest:
            # Named to genus: "Megaselia sp.". Novel and placed only in a family-group taxon: "Phoridae gen. sp.".
            qualifier = "sp." if deepest == "genus" else ("gen. sp." if novel and deepest in ABOVE_GENUS else None)
            row.update(scientificName=taxon, taxonRank=deepest, identificationQualifier=qualifier,
                       verbatimIdentification=f"{taxon} {qualifier}" if qualifier else taxon,
                       taxonConceptID=s.get("dna_bin") if novel else None, identificationRemarks=remarks)
        elif matches_nothing and not s.get("class"):
            row.update({"phylum": s.get("phylum"), "class": None}, scientificName="Animalia", taxonRank="kingdom",
                       identificationRemarks=remarks + "; not named: its read matches no reference barcode")
        else:
            row.update(scientificName="Insecta" if not s.get("class") else s.get("class"), taxonRank="class",
                       identificationRemarks=remarks + "; not named below class with confidence")
        machine = dict(row)
        decided = set_aside.get(pid)
        holder, held_history = None, None  # the other run's candidate this run's was merged into, and its reviews
        if proposal_id is not None or decided is not None:
            proposed[pid] = proposal_id if proposal_id is not None else decided
        if proposal_id in not_coi:
            row["identificationRemarks"] = (f"{row.get('identificationRemarks') or remarks}; grouped as candidate "
                                            f"species {proposal_id} (pending), not published as one: none of its "
                                            "members' reads is usable as COI" + _quality(props[proposal_id], pid))
        elif proposal_id is not None and proposal_id in props:
            p = props[proposal_id]
            _as_candidate(row, p, proposal_id, machine, run, remarks, a, deepest,
                          history=histories.get(proposal_id, ()))
            if str(p.get("status")) == "accepted":
                _reviewed(row, trails.get(proposal_id), decision_status(p))
        elif decided is not None and props.get(decided, {}).get("status") == "assigned":
            p = props[decided]
            _as_assigned(row, p, decided, machine, run, remarks)
            _reviewed(row, trails.get(decided), decision_status(p))
        elif decided is not None:  # rejected: the machine's name stands, and the reviewer who said so, when
            row["identificationRemarks"] = remarks + f"; proposed in candidate species {decided}, " \
                + _rejected_by(trails.get(decided)) + _quality(props[decided], pid)
            _rejection(row, trails.get(decided), decision_status(props[decided], named=bool(deepest)))
        elif pid in folded:  # its candidate of this run was merged into another run's: that one's determination
            f = folded[pid]
            holder, of_run = f["proposal_id"], f" of run {f.get('run_id')}"
            proposed[pid] = f["source_id"]
            # the holder's reviews are this specimen's history from the merge on (its move, its acceptance)
            whole = earlier_histories.get(holder) or histories.get(holder, ())
            since, merge_words = _since_merge(whole, f["source_id"])
            # its own candidate's names before the merge, then the holder's from it
            held_history = [*(b for b in histories.get(f["source_id"], ())
                              if b.review_id not in {c.review_id for c in since}), *since]
            if str(f.get("status")) in ("accepted", "pending"):
                _as_candidate(row, f, holder, machine, run, remarks, a, deepest, of_run, whole)
            elif str(f.get("status")) == "assigned":
                _as_assigned(row, f, holder, machine, run, remarks, of_run)
            row["identificationRemarks"] = (f"{row.get('identificationRemarks') or remarks}; proposed in candidate "
                                            f"species {f['source_id']} (run {run.get('id')}), merged into candidate "
                                            f"species {holder}{of_run}{merge_words}")
            if str(f.get("status")) in ("accepted", "assigned"):
                _reviewed(row, earlier_trails.get(holder), decision_status(f))
        # A reviewer's decision of an earlier run on this specimen: where this run named it that species again (from
        # its candidate-mates' keys: its own is never its evidence), or less deep on its lineage, the determination
        # is still the reviewer's (:func:`_standing_decision`)
        earlier_here = earlier.get(pid, [])
        again = (_standing_decision(earlier_here, named, deepest, taxon)
                 if proposal_id is None and decided is None and holder is None else None)
        if again is not None:
            _as_decided(row, again, machine, run, remarks, a, deepest)
            # ``_as_decided`` has said which candidate of which run: say only what this run did with it
            row["identificationRemarks"] += "; " + _standing_words(run, deepest, taxon, again, a)
            _reviewed(row, earlier_trails.get(again["proposal_id"]), decision_status(again))
        if proposal_id is None and decided is None:
            row["identificationRemarks"] = (row.get("identificationRemarks") or "") + "".join(
                _retired_remark(g, earlier_trails.get(g["proposal_id"])) for g in retired.get(pid, ()))
        if barcode and pid not in unsent:
            dna.append({"id": pid, "DNA_sequence": barcode, "target_gene": "COI",
                        "target_subfragment": "COI-5P", "otu_class_appr": "biodiscover "
                        f"{run.get('kind', 'triage')} (k-NN retrieval; P(right) per rank from a model "
                        "trained on queries simulated from the reference)",
                        "otu_seq_comp_appr": "FAISS retrieval, pairwise identity of top hits"
                                             + (f"; {compared}" if compared else ""),
                        "otu_db": reference_data(run)})
        occ.append(row)
        provided = {r: s.get(r) for r in RANKS if isinstance(s.get(r), str) and s.get(r) and not is_filler_name(s[r])}
        if provided:
            rank = [r for r in RANKS if r in provided][-1]
            supplied = str(provided[rank])
            name, rank, qualifier = (open_name(supplied) if rank == "species" else None) or (supplied, rank, None)
            ident.append({"id": pid, "identificationID": f"{pid}:provided", "scientificName": name,
                          "taxonRank": rank, "identificationQualifier": qualifier,
                          "verbatimIdentification": supplied, "identifiedBy": "provided with the collection",
                          "identificationVerificationStatus": "as supplied",
                          "identificationReferences": s.get("source") if "source" in s else None})
        first = len(ident)
        history = (held_history if held_history is not None else histories.get(proposed.get(pid), ())) \
            if again is None else earlier_histories.get(again["proposal_id"], ())
        ident.extend(_earlier_review_names(pid, row, history, run))
        # a decision carried to this run's candidate (its specimens proposed again), or the candidate this run's
        # was merged into, is the current row, not one this run named otherwise
        held = proposal_id if proposal_id is not None else decided
        carried = _carried_source(props.get(held)) if held is not None else None
        ident.extend(_earlier_decision_row(pid, e, machine, run, remarks, a, deepest, row, earlier_trails)
                     for e in earlier_here if e is not again and e["proposal_id"] not in (carried, holder))
        # the candidate the machine proposed it in (this run's, merged since or not)
        machines = held if held is not None else folded[pid]["source_id"] if holder is not None else None
        # a rejection leaves the machine's name, reviewed: the reviewer's row (its own id), the machine's as it was
        # (e32 R9: the 6 members of the batch's rejected #3 read "Udea sp. cand3", unverified, under ``…:run3``
        # before the review and "Udea sp.", rejected, after it)
        rejected = proposal_id is None and decided is not None and props.get(decided, {}).get("status") == "rejected"
        if row["identifiedBy"] != MACHINE or rejected:  # a reviewer's decision replaced the machine's: its history
            ident.append({"id": pid, "identificationID": f"{pid}:run{run.get('id')}", **{
                k: machine.get(k) for k in IDENTIFICATION_TERMS_OF_CORE},
                "identificationReferences": reference_data(run),
                **_as_proposed(machines, histories.get(machines) or earlier_histories.get(machines, ()), run,
                               machine)})
        if again is not None:
            current_id = f"{pid}:run{again.get('run_id')}:candidate{again['proposal_id']}"
        elif row["identifiedBy"] == MACHINE and not rejected:
            current_id = f"{pid}:run{run.get('id')}"
        else:
            current_id = _reviewed_id(pid, history, run)
        if current_id in {r["identificationID"] for r in ident[first:]}:  # never two rows under one id
            current_id = f"{pid}:run{run.get('id')}:current"
        ident.append({"id": pid, "identificationID": current_id,
                      **{k: row.get(k) for k in IDENTIFICATION_TERMS_OF_CORE},
                      "identificationRemarks": CURRENT_REMARK + str(row.get("identificationRemarks") or ""),
                      "identificationReferences": reference_data(run) if row["identifiedBy"] == MACHINE else None})
    return occ, ident, dna, proposed


#: The Identification History terms a determination shares with the occurrence core (not its id or references).
IDENTIFICATION_TERMS_OF_CORE: tuple[str, ...] = (
    "scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification", "taxonConceptID",
    "identifiedBy", "dateIdentified", "identificationRemarks", "identificationVerificationStatus")
#: How identification.txt marks the row of the current determination (the core's, repeated as GBIF's extension
#: asks): at the start of its ``identificationRemarks``. Not in ``identificationVerificationStatus``: that says how
#: the determination was verified and must read as the core's; being current is a fact of this export, not of it.
CURRENT_REMARK = "current determination (the occurrence core's); "


def _reviewed_id(pid: str, history: Sequence[ReviewAction], run: Mapping[str, Any]) -> str:
    """The ``identificationID`` of a reviewer's current determination: ``<pid>:review<id>`` of the last review in
    force that decided or renamed the specimen's candidate — the id :func:`_earlier_review_names` gives the same
    name once a later review replaces it, so one identification keeps one id. ``<pid>:run<run>:reviewed`` where
    the log holds no such review (a database written before the review log kept snapshots)."""
    gave = [a for a in history if a.action not in UNDOING and a.undone_by is None
            and (a.renames or a.action in ("accept", "reject", "assign", "merge"))]
    return f"{pid}:review{gave[-1].review_id}" if gave else f"{pid}:run{run.get('id')}:reviewed"


def _retired_remark(g: Mapping[str, Any], trail: ReviewTrail | None) -> str:
    """The remark on a specimen whose earlier candidate a later run retired (``Database.retire_unproposed``): which
    candidate it was and what the reviewers noted there. Why: a real US plate's note on #34 ("Amara
    ovata/similata/aenea within 1.2%; needs morphology") stayed on the retired candidate, and the second run's
    record of its specimen, now "Amara sp.", did not carry it."""
    name = candidate_name(g.get("provisional_name"), g.get("parent_name"), g.get("parent_rank"), g.get("proposal_id"))
    notes = trail.notes_text() if trail is not None else ""
    return (f"; proposed in run {g.get('run_id')} as candidate species {g.get('proposal_id')} ({name}), not "
            f"proposed again by run {g.get('retired_by')}" + (f"; reviewer notes there: {notes}" if notes else ""))


def _earlier_review_names(pid: str, core: Mapping[str, Any], history: Sequence[ReviewAction],
                          run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Identification History rows for the names reviewers gave a specimen's candidate that a later review
    replaced (``… sp. BD-0001`` renamed ``… sp. Kruger-1``): each with the reviewer and day that gave it, and
    the reviews that gave and replaced it in words. The current name is the core's (its row is written last, by
    :func:`_darwin_core`); undone reviews are left out (they never named anything in force)."""
    in_force = [a for a in history if a.action not in UNDOING and a.undone_by is None]
    out: list[dict[str, Any]] = []
    for i, act in enumerate(in_force):
        if not act.renames or act.after_name == core.get("verbatimIdentification"):
            continue
        later = next((b for b in in_force[i + 1:] if b.renames), None)
        rank, parent = act.after_parent
        remarks = f"given by {act.in_words()}" + (f"; replaced by {later.in_words()}" if later else "")
        out.append({"id": pid, "identificationID": f"{pid}:review{act.review_id}",
                    "scientificName": parent, "taxonRank": rank if rank in RANKS else None,
                    "identificationQualifier": open_qualifier(rank) if parent else None,
                    "verbatimIdentification": act.after_name, "taxonConceptID": core.get("taxonConceptID"),
                    "identifiedBy": act.author, "dateIdentified": _day(act.carried.at if act.carried is not None
                                                                      and act.carried.at else act.at),
                    "identificationRemarks": remarks,
                    "identificationVerificationStatus": f"superseded by a later review (run {run.get('id')})"})
    return out


def meta_xml(occurrence: Sequence[tuple[str, str]] = OCCURRENCE_TERMS) -> str:
    def fields_xml(terms: Sequence[tuple[str, str]]) -> str:
        return "".join(f'\n    <field index="{i + 1}" term="{uri}"/>' for i, (_, uri) in enumerate(terms))

    attrs = ('encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" '
             'ignoreHeaderLines="1"')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="eml.xml">\n'
        f'  <core {attrs} rowType="{OCCURRENCE_ROWTYPE}">\n    <files><location>occurrence.txt</location></files>\n'
        f'    <id index="0"/>{fields_xml(occurrence)}\n  </core>\n'
        f'  <extension {attrs} rowType="{IDENTIFICATION_ROWTYPE}">\n'
        f'    <files><location>identification.txt</location></files>\n'
        f'    <coreid index="0"/>{fields_xml(IDENTIFICATION_TERMS)}\n  </extension>\n'
        f'  <extension {attrs} rowType="{DNA_ROWTYPE}">\n    <files><location>dna.txt</location></files>\n'
        f'    <coreid index="0"/>{fields_xml(DNA_TERMS)}\n  </extension>\n'
        '</archive>\n'
    )


def _party(tag: str, p: Person) -> str:
    """One EML responsible party, its elements in the order the schema fixes (name, organisation, position,
    e-mail, user id)."""
    x = xml_escape
    parts = [f"    <{tag}>"]
    names = p.name_parts()
    if names is not None:
        given, sur = names
        parts.append("<individualName>" + (f"<givenName>{x(given)}</givenName>" if given else "")
                     + f"<surName>{x(sur)}</surName></individualName>")
    if p.organization:
        parts.append(f"<organizationName>{x(p.organization)}</organizationName>")
    if p.position:
        parts.append(f"<positionName>{x(p.position)}</positionName>")
    if p.email:
        parts.append(f"<electronicMailAddress>{x(p.email)}</electronicMailAddress>")
    if p.orcid:
        parts.append(f'<userId directory="https://orcid.org/">{x(p.orcid)}</userId>')
    parts.append(f"</{tag}>\n")
    return "".join(parts)


def _number(value: Any) -> float | None:
    """``value`` as a finite float, None where it is blank or not a number (a coordinate cell)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def eml_coverage(occurrences: Sequence[Mapping[str, Any]]) -> str:
    """eml.xml's ``coverage`` from the archive's own occurrence rows ('' where they give none): where (the bounding
    box of the rows with both coordinates, and the countries by count) and what (every order a row is named to).

    Why: GBIF's IPT asks a publisher for both, and they are facts of the rows, not of the publisher; a data
    manager exporting a 5,300-specimen US batch had to write them by hand. EML requires a bounding box in a
    geographic coverage, so where no row has coordinates there is none (and the countries, which it would name,
    are only in the occurrences). The box is plain min / max: a collection across the antimeridian reads as the
    whole band between."""
    if not occurrences:
        return ""
    x = xml_escape
    parts: list[str] = []
    points = [(lat, lon) for r in occurrences
              if (lat := _number(r.get("decimalLatitude"))) is not None
              and (lon := _number(r.get("decimalLongitude"))) is not None]
    countries: dict[str, int] = {}
    for r in occurrences:
        if isinstance(c := r.get("country"), str) and c.strip():
            countries[c.strip()] = countries.get(c.strip(), 0) + 1
    if points:
        lats, lons = [p[0] for p in points], [p[1] for p in points]
        where = ", ".join(f"{c} ({n:,})" for c, n in sorted(countries.items(), key=lambda kv: (-kv[1], kv[0])))
        text = (f"{len(points):,} of {len(occurrences):,} specimens with coordinates"
                + (f"; collected in {where}" if where else ""))
        parts.append(
            f"      <geographicCoverage>\n        <geographicDescription>{x(text)}</geographicDescription>\n"
            "        <boundingCoordinates>"
            f"<westBoundingCoordinate>{min(lons):.6g}</westBoundingCoordinate>"
            f"<eastBoundingCoordinate>{max(lons):.6g}</eastBoundingCoordinate>"
            f"<northBoundingCoordinate>{max(lats):.6g}</northBoundingCoordinate>"
            f"<southBoundingCoordinate>{min(lats):.6g}</southBoundingCoordinate>"
            "</boundingCoordinates>\n      </geographicCoverage>\n")
    orders: dict[str, int] = {}
    for r in occurrences:
        if isinstance(o := r.get("order"), str) and o:
            orders[o] = orders.get(o, 0) + 1
    classes = sorted({c for r in occurrences if isinstance(c := r.get("class"), str) and c})
    general = (f"{len(occurrences):,} specimens of {', '.join(classes) or 'arthropods'}"
               + (f", named to order or deeper: {', '.join(f'{o} ({n:,})' for o, n in sorted(orders.items()))}"
                  if orders else ", none named to an order")
               + (f"; {len(occurrences) - sum(orders.values()):,} not named to an order"
                  if orders and sum(orders.values()) < len(occurrences) else ""))
    parts.append("      <taxonomicCoverage>\n"
                 f"        <generalTaxonomicCoverage>{x(general)}</generalTaxonomicCoverage>\n"
                 + "".join(f"        <taxonomicClassification><taxonRankName>order</taxonRankName>"
                           f"<taxonRankValue>{x(o)}</taxonRankValue></taxonomicClassification>\n"
                           for o in sorted(orders))
                 + "      </taxonomicCoverage>\n")
    return "    <coverage>\n" + "".join(parts) + "    </coverage>\n"


def eml_methods(run: Mapping[str, Any], runs: Sequence[Mapping[str, Any]] = ()) -> str:
    """eml.xml's ``methods``: how this run named and grouped the specimens, from the settings it recorded (the
    reference's size, the level P(right) must reach, the novelty threshold, the grouping method and its learned
    barcode gap) and biodiscover's version; a run that recorded none says so rather than guess.

    Why: a determination "by biodiscover" is only checkable with the procedure beside it; the archive's
    ``otu_class_appr`` says it per sequence in a phrase, the methods say it once, with the numbers.

    ``runs`` (an export over several runs): a first step saying how they were joined (each collection named, which
    run's naming a specimen triaged twice keeps, whether their reference models differ, which did not complete),
    then one step per run."""
    return ("    <methods>\n" + "".join(f"      <methodStep><description><para>{xml_escape(step)}</para></description>"
                                      "</methodStep>\n" for step in method_steps(run, runs)) + "    </methods>\n")


def method_steps(run: Mapping[str, Any], runs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """How the names were made, in words, one paragraph a step: eml.xml's ``methods`` (:func:`eml_methods`) and the
    HTML report's "How the names were made" say the same."""
    return [joined_runs_text(runs), *_grouped_methods(runs)] if runs else [" ".join(_method_sentences(run))]


def joined_runs_text(runs: Sequence[Mapping[str, Any]]) -> str:
    """How an export over several runs joined them, in words (eml.xml's first method step, the report's note)."""
    each = [_run_words(r) + (f" ({run_specimens_words(r)})" if isinstance(r.get("specimens"), int) else "")
            for r in runs]
    said = [f"This dataset joins {len(runs)} triage runs of one biodiscover database: {listed(each)}. A specimen "
            "triaged by more than one of them is given once, as the latest of them named it; a candidate species is "
            "given once, with its members from every run, and a rejected one a later run proposed again (and "
            "rejected again with the reviewer's reason) once, as the later one."]
    models: dict[str, list[Any]] = {}
    for r in runs:
        models.setdefault(model_description(r), []).append(r.get("id"))
    if len(models) > 1:
        said.append("The runs used different reference models: " + "; ".join(
            f"run{'s' if len(ids) > 1 else ''} {listed(ids)} model {m}" for m, ids in models.items())
            + ". Each specimen's identificationRemarks and DNA record name its own run's model.")
    for r in runs:
        if str(r.get("status") or "completed") != "completed":
            said.append(f"R{_run_words(r)[1:]} did not complete (status "
                        f"{r.get('status')}): it gives what it stored, and this dataset is partial.")
    return " ".join(said)


def set_aside_sentences(run: Mapping[str, Any], runs: Sequence[Mapping[str, Any]] = ()) -> list[str]:
    """What the run's ingest set aside (:func:`~biodiscover.workflows.export.tables.set_aside_text`), and of an
    export over several runs each run's, naming it: what eml.xml's abstract and the HTML report say (a plate of 31
    was published as 29 without a word)."""
    said = [t for t in [set_aside_text(run)] if t is not None]
    return said + [f"R{_run_words(r)[1:]}: {t}" for r in runs if (t := set_aside_text(r)) is not None]


def run_specimens_words(run: Mapping[str, Any]) -> str:
    """How many specimens an export over several runs takes from one of them, and how many of its own it gives as a
    later run's that triaged them again (``given_as``, :func:`~biodiscover.workflows.export.pipeline.
    combine_exports`): ``its 267 specimens triaged again by run 5, given as that run's``. Why: a plate re-run after
    a Ctrl-C read "run 4 of collection week3 (0 specimens)" in the report and eml.xml (season review F11)."""
    n = int(run.get("specimens") or 0)
    given = {int(k): int(v) for k, v in (run.get("given_as") or {}).items()}
    if not given:
        return plural(n, "specimen")
    again = sum(given.values())
    many = len(given) > 1
    by = f"run{'s' if many else ''} {listed(sorted(given))}, given as " + ("theirs" if many else "that run's")
    if n == 0:
        return f"its {plural(again, 'specimen')} triaged again by {by}"
    return f"{plural(n, 'specimen')}; {again:,} more triaged again by {by}"


def _run_words(run: Mapping[str, Any]) -> str:
    """``run 5 of collection 2026-w01-costa-rica``, or ``run 5`` where the run recorded no collection."""
    return f"run {run.get('id')}" + (f" of collection {run['collection']}" if run.get("collection") else "")


def _grouped_methods(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """One method step per procedure of an export over several runs: runs that named and grouped by the same
    settings and model share one (a week of five plates read as five copies of one paragraph)."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for r in runs:
        groups.setdefault(tuple(_method_sentences(r)[1:]) + (model_description(r),), []).append(r)
    steps = []
    for how, group in groups.items():
        first = _method_sentences(group[0])[0]
        if len(group) > 1:
            which = listed([_run_words(r).removeprefix("run ") for r in group])
            first = (f"Specimens were named with biodiscover {_version()} (triage runs {which}, model "
                     f"{model_description(group[0])}).")
        steps.append(" ".join([first, *how[:-1]]))
    return steps


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("biodiscover")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree never installed
        return "(version unknown)"


def _method_sentences(run: Mapping[str, Any]) -> list[str]:
    """:func:`eml_methods`' sentences for one run: who named them (this run, its collection and model), then how."""
    version = _version()
    raw = run.get("parameters")
    params: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    level, data, clustering = params.get("level"), params.get("data"), params.get("clustering")
    novelty = run.get("novelty_threshold")
    of = f" of collection {run['collection']}" if run.get("collection") else ""
    said = [f"Specimens were named with biodiscover {version} ({run.get('kind', 'triage')} run {run.get('id')}{of}, "
            f"model {model_description(run)})."]
    if level is None and not isinstance(data, Mapping) and not isinstance(clustering, Mapping):
        said.append("How it named and grouped them is not recorded with this run.")
    else:
        keys = data.get("n_keys") if isinstance(data, Mapping) else None
        said.append("Each COI-5P barcode was compared with "
                    + (f"{int(keys):,} reference barcodes" if isinstance(keys, (int, float)) else "the reference")
                    + " by k-mer search and alignment identity; "
                    + ("each rank the reference could teach" if _taught_all(params) is False else
                       "each rank, order to species,")
                    + " was named where a model learned from the reference itself (queries simulated by leaving "
                      "barcodes and taxa out, as PROTAX does) gave P(right)"
                    + (f" of at least {float(level):.2f}" if isinstance(level, (int, float)) else "")
                    + ", and the deepest such rank is the determination.")
        said.extend(_limit_sentences(params.get("naming_limits")))
        if isinstance(novelty, (int, float)):
            said.append(f"A specimen whose species the same model gives P(absent from the reference) of at least "
                        f"{float(novelty):.2f} was flagged novel.")
        if isinstance(clustering, Mapping) and clustering.get("method"):
            gap = clustering.get("learned_gap")
            gap_text = (f", with a barcode gap of {100 * float(gap['threshold']):.1f} % ({gap.get('linkage')} "
                        "linkage) learned from the reference" if isinstance(gap, Mapping)
                        and isinstance(gap.get("threshold"), (int, float)) else "")
            said.append(f"Novel specimens were grouped into candidate species by {clustering['method']}"
                        f"{gap_text}; candidates are in open nomenclature until a reviewer decides.")
    return said


def _taught_all(params: Mapping[str, Any]) -> bool | None:
    """Whether the run's reference taught every rank (None: a run from before, which did not record it)."""
    limits = params.get("naming_limits")
    if not isinstance(limits, Mapping):
        return None
    return not limits.get("fallback")


def _limit_sentences(limits: Any) -> list[str]:
    """What a run's reference could not teach and what it foresaw (``naming.naming_limits``, recorded at triage;
    nothing for a run from before): a reader of a Coleoptera-only run was told every rank had been learned."""
    if not isinstance(limits, Mapping):
        return []
    said = []
    fallback = limits.get("fallback")
    if isinstance(fallback, Mapping) and fallback:
        ranks = listed([str(r) for r in fallback])
        bars = listed([f"{r} at ≥ {100 * float(v):.1f} % identity" for r, v in fallback.items()
                       if isinstance(v, (int, float))])
        were = "it was" if len(fallback) == 1 else "they were"
        said.append(f"The reference held too few taxa to learn {ranks} from: {were} named only where the near-best "
                    f"reference barcodes agreed, {bars} (a published COI cut-off, "
                    "raised to the reference's own simulated absent taxa), so a specimen of a taxon the reference "
                    "lacks may be given one it holds.")
    expected = limits.get("expected")
    if isinstance(expected, Mapping) and expected:
        words = {"known_species_right": "known species named to the right species",
                 "absent_species_named": "species absent from the reference named to a species"}
        figures = listed([f"{words[k]} {float(v):.3f}" for k, v in expected.items()
                          if k in words and isinstance(v, (int, float))])
        if figures:
            said.append(f"Queries simulated from the reference foresaw, at that level: {figures} (at even odds that a "
                        "taxon is absent; each collection is decided at its own estimated share).")
    return said


def eml_xml(run: Mapping[str, Any], n_occ: int, proposals: pd.DataFrame, meta: DatasetMetadata,
            partial: bool = False, occurrences: Sequence[Mapping[str, Any]] = (),
            runs: Sequence[Mapping[str, Any]] = ()) -> str:
    """The dataset's eml.xml; ``runs``: the runs of an export over several (its title, abstract and methods name
    each run and collection)."""
    ids = listed([r.get("id") for r in runs])
    title = xml_escape(meta.title or (f"biodiscover runs {ids}" if runs else f"biodiscover run {run.get('id')}")
                       + ": identifications and candidate species")
    counts = proposal_counts(proposals)
    if runs:
        models = list(dict.fromkeys(model_description(r) for r in runs))
        collections = list(dict.fromkeys(dataset_name(r) for r in runs))
        by = (f"{plural(len(collections), 'collection')} ({listed(collections)}) named to their "
              f"deepest confident rank by biodiscover (triage runs {ids}, model{'s' if len(models) > 1 else ''} "
              f"{listed(models)})")
    else:
        by = (f"named to their deepest confident rank by biodiscover ({run.get('kind', 'triage')} "
              f"run {run.get('id')}, model {model_description(run)})")
    text = (f"{n_occ} specimens {'of ' if runs else ''}{by}; "
            + counts_text(counts["accepted"], counts["pending"], counts["assigned"], counts["rejected"],
                          counts["not_coi"]) + "."
            + (" The candidate species accepted or awaiting review are in open nomenclature (provisional names, not "
               "described species)." if counts["accepted"] + counts["pending"] else ""))
    if partial and runs:
        text += " " + " ".join(f"R{_run_words(r)[1:]} did not complete (status {r.get('status')})."
                               for r in runs if str(r.get("status") or "completed") != "completed") \
            + " This dataset is partial."
    elif partial:
        text += f" The run did not complete (status {run.get('status')}): this dataset is partial."
    text += "".join(f" {said}." for said in set_aside_sentences(run, runs))
    # the user's abstract and the run's own account, each its own paragraph: run together, "… "pilot" run" and
    # "1125 specimens …" read as "run 1125" (e32 R17)
    abstract = "".join(f"<para>{xml_escape(p)}</para>" for p in (meta.abstract, text) if p)
    today = datetime.now(UTC).date().isoformat()
    machine = Person(organization="biodiscover")
    creators = "".join(_party("creator", c) for c in meta.creators) or _party("creator", machine)
    # GBIF's IPT always writes a metadataProvider (who answers for this metadata): the contact, else the first
    # creator, as for the contact itself
    answers = meta.answers or machine
    provider, contact = _party("metadataProvider", answers), _party("contact", answers)
    if meta.licence:
        name, url = LICENCES[meta.licence]
        rights = (f'<para>This work is licensed under a <ulink url="{url}"><citetitle>{xml_escape(name)} '
                  f"License</citetitle></ulink>.</para>")
    else:
        rights = "<para>No licence given: set one with --licence or --metadata before publishing.</para>"
    # scope="system": the GBIF profile the schemaLocation names requires it (fixed value), as the IPT writes it
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<eml:eml xmlns:eml="eml://ecoinformatics.org/eml-2.1.1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="eml://ecoinformatics.org/eml-2.1.1 '
        'http://rs.gbif.org/schema/eml-gbif-profile/1.1/eml.xsd" '
        f'packageId="{xml_escape(package_id(run))}" system="biodiscover" scope="system" xml:lang="en">\n'
        f'  <dataset>\n    <title>{title}</title>\n{creators}{provider}'
        f'    <pubDate>{today}</pubDate>\n    <language>en</language>\n'
        f'    <abstract>{abstract}</abstract>\n'
        f'    <intellectualRights>{rights}</intellectualRights>\n{eml_coverage(occurrences)}{contact}'
        f'{eml_methods(run, runs)}  </dataset>\n</eml:eml>\n'
    )


def render(data: RunExport, options: ExportOptions) -> bytes:
    occ, ident, dna = occurrence_rows(data)
    terms = occurrence_terms(data)
    members = {
        "meta.xml": meta_xml(terms).encode("utf-8"),
        "eml.xml": eml_xml(data.run, len(occ), data.proposals, options.metadata,
                           data.partial, occ, data.runs).encode("utf-8"),
        "occurrence.txt": _tsv(["id"] + [t for t, _ in terms],
                               ([r["occurrenceID"]] + [r.get(t) for t, _ in terms] for r in occ)),
        "identification.txt": _tsv(["coreid"] + [t for t, _ in IDENTIFICATION_TERMS],
                                   ([r["id"]] + [r.get(t) for t, _ in IDENTIFICATION_TERMS] for r in ident)),
        "dna.txt": _tsv(["coreid"] + [t for t, _ in DNA_TERMS],
                        ([r["id"]] + [r.get(t) for t, _ in DNA_TERMS] for r in dna)),
    }
    buf = io.BytesIO()
    when = _zip_time(data.run)
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in MEMBERS:
            info = zipfile.ZipInfo(name, date_time=when)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, members[name])
    return buf.getvalue()


def _zip_time(run: Mapping[str, Any]) -> tuple[int, int, int, int, int, int]:
    """The time the archive's members carry: when the run finished (else started); 1980-01-01, the zip format's
    first day, where neither reads.

    Why with mode 0644 (``render``): written by name, members were stored 0600 and at the export's clock time; a
    real plate's archive unzipped on a shared IPT or web host was its owner's alone, and two exports of unchanged
    data differed as zips though every member was byte-identical (e27, F11)."""
    for key in ("finished_at", "started_at"):
        try:
            t = datetime.fromisoformat(str(run.get(key) or "").replace("Z", "+00:00"))
        except ValueError:
            continue
        if t.year >= 1980:
            return (t.year, t.month, t.day, t.hour, t.minute, t.second)
    return (1980, 1, 1, 0, 0, 0)


FORMAT = REGISTRY.register(ExportFormat(
    "dwca", "Darwin Core Archive: occurrences, identification history, DNA, eml.xml",
    "file", render, suffix=".zip", publishes_metadata=True,
    requires_suffix=True))
