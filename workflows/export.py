"""Exports of one discovery run: CSV, Darwin Core Archive, FASTA, HTML report, JSON.

``biodiscover export --db DB --run ID --format csv|dwca|fasta|html|json --out PATH``
calls :func:`export_run`. The run is first read from the database into a
:class:`RunExport` (plain DataFrames), and every writer works on that, so the
writers are testable without a database and other areas (the demo, the
benchmarks) can export tables they built themselves.

Outputs, by format:

* ``csv``  → a directory: ``assignments.csv`` (one row per specimen: deepest
  confident rank and taxon, label and confidence at every rank, novelty, and the
  candidate species it belongs to), ``proposals.csv`` (one row per candidate),
  ``members.csv`` (candidate × specimen with membership probability);
* ``dwca`` → a zip: Occurrence core, Identification History and GBIF DNA-derived
  data extensions, ``meta.xml`` and ``eml.xml``. Candidates are written in open
  nomenclature: ``scientificName`` = the genus (or deepest confident taxon),
  ``identificationQualifier`` = ``sp.``, ``verbatimIdentification`` = the
  provisional name, ``taxonConceptID`` = the candidate id (or the BIN when the
  specimen is novel but in no candidate), ``identificationRemarks`` = method,
  model and confidence;
* ``fasta`` → a directory with one FASTA file per candidate species, BOLD-style
  headers ``>processid|provisional name|parent taxon|candidate id|membership|BIN``;
* ``html`` → one self-contained report (:mod:`biodiscover.workflows.report`);
* ``json`` → one document with the run, assignments and candidates (evidence included).

Hostile data: text cells that a spreadsheet would run as a formula (leading
``= + - @``, tab or carriage return) get a leading apostrophe
(:func:`neutralise_cell`); file and archive member names built from data go
through :func:`safe_member_name` and :func:`safe_join`, so they cannot leave the
output folder; an existing output is never replaced unless ``force=True``, and
every file is written to a temporary name and renamed into place, so a crash
never leaves half an export.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import pandas as pd

from biodiscover.storage.errors import InputError
from biodiscover.storage.records import RANKS, open_qualifier
from biodiscover.storage.jsonable import jsonable

log = logging.getLogger(__name__)

ExportFormat = Literal["csv", "dwca", "fasta", "html", "json"]
FORMATS: tuple[str, ...] = ("csv", "dwca", "fasta", "html", "json")
#: Leading characters that make a spreadsheet evaluate a cell (OWASP CSV injection).
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
MAX_MEMBER_NAME = 100

# -- the data every writer works on -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunExport:
    """One run's results as plain tables (what every writer consumes).

    * ``run``: id, kind, status, model_fingerprint, parameters, started_at, finished_at;
    * ``specimens``: ``processid`` + BIOSCAN-5M columns (the identification that
      came *with* the collection, coordinates, barcode, BIN);
    * ``assignments``: ``processid``, ``deepest_rank``, ``deepest_taxon``,
      ``novelty``, and ``label_<rank>`` / ``confidence_<rank>`` for every rank;
    * ``proposals``: ``proposal_id``, ``provisional_name``, ``parent_rank``,
      ``parent_taxon``, ``status``, ``version``, ``size``, ``evidence`` (dict);
    * ``members``: ``proposal_id``, ``processid``, ``probability``.
    """

    run: dict[str, Any]
    specimens: pd.DataFrame
    assignments: pd.DataFrame
    proposals: pd.DataFrame
    members: pd.DataFrame
    reviews: pd.DataFrame = field(default_factory=pd.DataFrame)

    def candidate_of(self) -> dict[str, Any]:
        """processid → proposal id of the candidate holding it (highest membership wins).

        A proposal a reviewer rejected is not a candidate species any more, so its
        members fall back to their plain identification.
        """
        if self.members.empty:
            return {}
        m = self.members
        if "status" in self.proposals and not self.proposals.empty:
            rejected = set(self.proposals.loc[self.proposals["status"] == "rejected", "proposal_id"])
            m = m[~m["proposal_id"].isin(rejected)]
        m = m.sort_values("probability", ascending=False) if "probability" in m else m
        return dict(m.drop_duplicates("processid")[["processid", "proposal_id"]].itertuples(index=False, name=None))


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote (for the CLI summary and ``--json``).

    ``proposals`` counts the candidate species (proposals a reviewer has not
    rejected); ``rejected`` the ones a reviewer rejected (still in csv / json,
    with their status, but no candidate species any more).
    """

    format: str
    out: Path
    files: tuple[Path, ...]
    specimens: int
    proposals: int
    rejected: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "out": str(self.out), "files": [str(f) for f in self.files],
                "specimens": self.specimens, "proposals": self.proposals, "rejected": self.rejected}


def live_candidates(proposals: pd.DataFrame) -> pd.DataFrame:
    """The proposals that are candidate species: every one a reviewer did not reject."""
    if proposals.empty or "status" not in proposals:
        return proposals
    return proposals[proposals["status"] != "rejected"]


# -- hostile-data safety ------------------------------------------------------------------------------------


def neutralise_cell(value: Any) -> Any:
    """Make a text cell inert in spreadsheets: prefix ``'`` when it starts with a formula trigger.

    Numbers stay numbers (a negative longitude is data, not a formula); only
    strings are touched, so every value round-trips except for the apostrophe.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Apply :func:`neutralise_cell` to every text cell (and header) of a frame."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise_cell)
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    return out


def safe_member_name(name: str, *, suffix: str = "", fallback: str = "unnamed") -> str:
    """A file / archive member name derived from data that cannot escape its folder.

    Unicode is NFKC-normalised and reduced to ``[A-Za-z0-9._-]``; path separators,
    ``..``, drive letters, control characters and leading dots disappear;
    Windows device names get a ``_`` prefix; the result is at most
    ``MAX_MEMBER_NAME`` characters plus ``suffix``.
    """
    text = unicodedata.normalize("NFKC", str(name))
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    text = re.sub(r"\.{2,}", ".", text).strip("._-")
    if not text:
        text = fallback
    if text.split(".")[0].upper() in _WINDOWS_RESERVED:
        text = "_" + text
    return text[:MAX_MEMBER_NAME] + suffix


def safe_join(root: Path, member: str) -> Path:
    """``root / member`` after checking the result stays inside ``root`` (else ``InputError``)."""
    root_resolved = root.resolve()
    target = (root_resolved / member).resolve()
    if target == root_resolved or root_resolved not in target.parents:
        raise InputError(f"refusing to write {member!r}: it would land outside {root}")
    return target


def _unique_names(names: Iterable[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        key = n.lower()  # case-insensitive file systems
        if key in seen:
            seen[key] += 1
            stem, dot, ext = n.rpartition(".")
            n = f"{stem}-{seen[key]}.{ext}" if dot else f"{n}-{seen[key]}"
        else:
            seen[key] = 0
        out.append(n)
    return out


#: Formats that write a folder (the rest write one file).
FOLDER_FORMATS = ("csv", "fasta")
#: Written into every folder export: which files it wrote, so ``--force`` replaces only an export.
MANIFEST = ".biodiscover-export.json"
_CSV_FILES = ("assignments.csv", "proposals.csv", "members.csv")


def _foreign_entries(out: Path, fmt: str | None) -> list[str]:
    """Entries of folder ``out`` that a previous ``fmt`` export did not write (empty: safe to replace)."""
    written: set[str] = set()
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(manifest, dict) and isinstance(manifest.get("files"), list):
            written = {str(f) for f in manifest["files"]}
    except (OSError, ValueError):
        pass
    if fmt == "csv":
        written |= set(_CSV_FILES)  # exports written before the manifest existed
    return sorted(e.name for e in out.iterdir() if e.name != MANIFEST and not (e.is_file() and e.name in written))


def check_output(out: Path, *, force: bool, fmt: str | None = None) -> None:
    """Refuse to replace an existing output unless ``force``; refuse a missing parent folder.

    A folder export (csv, fasta) replaces its whole folder, so even with ``force``
    it only replaces a folder that holds nothing but a previous export: pointed at
    a folder of one's own files (``--out ~/data --force``) it refuses and names
    them instead of deleting them. A file where a folder goes, or the reverse, is
    refused with or without ``force``.
    """
    if out.exists():
        if fmt in FOLDER_FORMATS and not out.is_dir():
            raise InputError(f"{out} is a file; the {fmt} export writes a folder (give a folder name)")
        if fmt is not None and fmt not in FOLDER_FORMATS and out.is_dir():
            raise InputError(f"{out} is a folder; the {fmt} export writes one file (give a file name)")
        if out.is_dir() and not any(out.iterdir()):
            return
        if not force:
            raise InputError(f"{out} already exists; pass --force to overwrite it")
        if out.is_dir():
            foreign = _foreign_entries(out, fmt)
            if foreign:
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                raise InputError(f"refusing to replace {out}: it holds files no {fmt or ''} export wrote "
                                 f"({shown}); choose a new or empty folder")
        return
    if not out.parent.exists():
        raise InputError(f"cannot write {out}: folder {out.parent} does not exist")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _replace_dir(out: Path, build: Callable[[Path], list[str]], fmt: str) -> tuple[Path, ...]:
    """Build a directory export in a temp sibling, then swap it into place (no half exports).

    The folder gets a manifest of what the export wrote; an existing ``out`` is
    removed only when it holds nothing else (checked again here, not only by the CLI).
    """
    if out.is_dir() and any(out.iterdir()) and _foreign_entries(out, fmt):
        check_output(out, force=True, fmt=fmt)  # raises, naming the files it would have deleted
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        names = build(tmp)
        (tmp / MANIFEST).write_text(json.dumps({"format": fmt, "files": names}), encoding="utf-8")
        if out.exists():
            if out.is_dir():
                shutil.rmtree(out)
            else:
                out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tuple(out / n for n in names)


# -- table shaping ------------------------------------------------------------------------------------------


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: NaN → None; numpy scalars and nested values converted where needed."""
    rows = _plain_records(frame)
    simple = (str, int, float, bool, type(None))
    for row in rows:
        for k, v in row.items():
            if not isinstance(v, simple) or isinstance(v, (np.integer, np.floating, np.bool_)):
                row[k] = jsonable(v)
    return rows


#: Ranks above genus: a species placed only there has no genus either ("Phoridae gen. sp.").
ABOVE_GENUS: tuple[str, ...] = tuple(RANKS[: RANKS.index("genus")])


def candidate_label(proposal: Mapping[str, Any]) -> str:
    """The name a candidate goes by: its provisional name once a reviewer gave one, else an
    open-nomenclature working label ``<parent> sp. cand<id>`` (``gen. sp.`` under a family or
    subfamily; stable: the proposal id)."""
    name = proposal.get("provisional_name")
    if isinstance(name, str) and name.strip():
        return name
    parent = proposal.get("parent_taxon")
    parent = parent if isinstance(parent, str) and parent.strip() else "Unplaced"
    return f"{parent} {open_qualifier(proposal.get('parent_rank'))} cand{proposal.get('proposal_id')}"


def assignment_table(data: RunExport) -> pd.DataFrame:
    """Assignments joined with the candidate each specimen belongs to (the CSV's main table)."""
    table = data.assignments.drop(columns=["id"], errors="ignore")  # the row id is internal to the database
    cand = data.candidate_of()
    ids = pd.Series([cand.get(p) for p in table["processid"]], index=table.index, dtype=object)
    if ids.notna().any() and all(isinstance(v, (int, np.integer)) for v in ids.dropna()):
        ids = ids.astype("Int64")  # keep integer ids integer next to the NaNs of uncandidated rows
    table["proposal_id"] = ids
    if not data.proposals.empty:
        names = {p["proposal_id"]: candidate_label(p) for p in data.proposals.to_dict("records")}
        table["provisional_name"] = table["proposal_id"].map(names)
    else:
        table["provisional_name"] = None
    return table


_SCALAR = (str, int, float, bool)
#: Evidence entries that are small records (flattened one level into CSV columns). Others that are
#: mappings are keyed by data (``alignment``: processid → sequence) and stay in the JSON export.
FLAT_EVIDENCE = ("within_distance", "between_distance", "nearest_known", "bin", "geography", "size_summary")


def _counts_text(value: Mapping[str, Any]) -> str:
    return "; ".join(f"{a}: {b:g}" if isinstance(b, (int, float)) else f"{a}: {b}" for a, b in value.items())


def _flat_evidence(ev: Mapping[str, Any]) -> dict[str, Any]:
    """One CSV row of evidence: scalars as they are, the records of :data:`FLAT_EVIDENCE` one level
    deep (``within_distance`` → ``evidence_within_distance_mean`` / ``_max``), a mapping of counts or
    statistics as ``"Canada: 4; Peru: 2"``; lists (distances) and alignments stay in the JSON export."""
    out: dict[str, Any] = {}
    for k, v in ev.items():
        if isinstance(v, _SCALAR) or (v is None and k not in FLAT_EVIDENCE):
            out[f"evidence_{k}"] = v
        elif k in FLAT_EVIDENCE and isinstance(v, Mapping):
            for k2, v2 in v.items():
                if isinstance(v2, _SCALAR) or v2 is None:
                    out[f"evidence_{k}_{k2}"] = v2
                elif isinstance(v2, Mapping) and v2 and all(isinstance(x, _SCALAR) for x in v2.values()):
                    out[f"evidence_{k}_{k2}"] = _counts_text(v2)
    return out


def proposal_table(data: RunExport) -> pd.DataFrame:
    """Candidates with the evidence flattened (see :func:`_flat_evidence`; the rest goes to JSON)."""
    props = data.proposals.drop(columns=["evidence"], errors="ignore").copy()
    if "evidence" in data.proposals:
        rows = [_flat_evidence(ev if isinstance(ev, Mapping) else {}) for ev in data.proposals["evidence"]]
        flat = pd.DataFrame(rows)
        for col in flat.columns:  # ids and counts stay integers next to the gaps of other candidates
            values = [r[col] for r in rows if r.get(col) is not None]
            if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
                flat[col] = pd.array([r.get(col) for r in rows], dtype="Int64")
        props = pd.concat([props.reset_index(drop=True), flat], axis=1)
    return props


# -- writers ------------------------------------------------------------------------------------------------


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    neutralise_frame(frame).to_csv(buf, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def write_csv(data: RunExport, out: Path) -> tuple[Path, ...]:
    """``assignments.csv``, ``proposals.csv`` and ``members.csv`` in directory ``out``."""
    def build(tmp: Path) -> list[str]:
        tables = {"assignments.csv": assignment_table(data), "proposals.csv": proposal_table(data),
                  "members.csv": data.members}
        for name, frame in tables.items():
            (tmp / name).write_bytes(_csv_bytes(frame))
        return list(tables)
    return _replace_dir(out, build, "csv")


def write_json(data: RunExport, out: Path) -> tuple[Path, ...]:
    """One JSON document: run, assignments, candidates (with evidence and members)."""
    members = data.members.groupby("proposal_id") if not data.members.empty else None
    proposals = []
    for row in _records(data.proposals):
        pid = row.get("proposal_id")
        if members is not None and pid in members.groups:
            row["members"] = _records(members.get_group(pid).drop(columns=["proposal_id"]))
        else:
            row["members"] = []
        proposals.append(row)
    doc = {"format": "biodiscover-run-export", "version": 1, "run": jsonable(data.run),
           "assignments": _records(data.assignments), "proposals": proposals}
    # No indent: the C encoder is ~5x faster, and 100k-specimen runs are common.
    _atomic_write(out, json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    return (out,)


def _fasta_field(value: Any) -> str:
    """A header field: no ``|``, ``>`` or line breaks, so a hostile name cannot forge records."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return re.sub(r"[|\r\n>\t]+", " ", str(value)).strip()


def fasta_records(data: RunExport) -> dict[Any, list[tuple[str, str]]]:
    """proposal id → [(header, sequence)] with BOLD-style headers.

    Header: ``processid|provisional name|parent taxon|candidate id|membership|BIN``.
    Members without a barcode (image-only specimens) and candidates a reviewer
    rejected are left out of the FASTA.
    """
    barcodes = dict(zip(data.specimens["processid"], data.specimens.get("dna_barcode", pd.Series(dtype=object))))
    bins = dict(zip(data.specimens["processid"], data.specimens.get("dna_bin", pd.Series(dtype=object))))
    out: dict[Any, list[tuple[str, str]]] = {}
    props = data.proposals.set_index("proposal_id", drop=False)
    for pid, grp in data.members.groupby("proposal_id", sort=True):
        prop = props.loc[pid] if pid in props.index else {}
        if len(prop) and prop.get("status") == "rejected":
            continue  # a reviewer said this is not a new species
        recs = []
        for _, m in grp.sort_values("processid").iterrows():
            seq = barcodes.get(m["processid"])
            if not isinstance(seq, str) or not seq:
                continue
            prob = m.get("probability")
            fields_ = [m["processid"], candidate_label({**dict(prop), "proposal_id": pid}) if len(prop) else None,
                       prop.get("parent_taxon"), pid,
                       f"{float(prob):.3f}" if prob is not None and prob == prob else "", bins.get(m["processid"])]
            recs.append(("|".join(_fasta_field(f) for f in fields_), re.sub(r"\s+", "", seq)))
        out[pid] = recs
    return out


def write_fasta(data: RunExport, out: Path) -> tuple[Path, ...]:
    """One ``.fasta`` per candidate species in directory ``out`` (names made safe and unique)."""
    records = fasta_records(data)
    names_by_id = {p["proposal_id"]: candidate_label(p) for p in data.proposals.to_dict("records")}
    pids = [p for p in records if records[p]]
    files = _unique_names(safe_member_name(f"{p}_{names_by_id.get(p) or 'candidate'}", suffix=".fasta") for p in pids)

    from biodiscover.storage.fasta import write_fasta as write_fasta_records  # A's BOLD-style writer

    def build(tmp: Path) -> list[str]:
        for pid, name in zip(pids, files):
            write_fasta_records(records[pid], safe_join(tmp, name))  # one line per sequence, as BOLD writes
        return files
    return _replace_dir(out, build, "fasta")


def write_html(data: RunExport, out: Path) -> tuple[Path, ...]:
    """The self-contained HTML report (:func:`biodiscover.workflows.report.build_html`)."""
    from biodiscover.workflows.report import build_html

    _atomic_write(out, build_html(data).encode("utf-8"))
    return (out,)


# -- Darwin Core Archive ------------------------------------------------------------------------------------

DWC = "http://rs.tdwg.org/dwc/terms/"
DC = "http://purl.org/dc/terms/"
GBIF = "http://rs.gbif.org/terms/"
MIXS = "https://w3id.org/mixs/"
OCCURRENCE_ROWTYPE = DWC + "Occurrence"
IDENTIFICATION_ROWTYPE = DWC + "Identification"
DNA_ROWTYPE = "http://rs.gbif.org/terms/1.0/DNADerivedData"

OCCURRENCE_TERMS: tuple[tuple[str, str], ...] = tuple((t, DWC + t) for t in (
    "occurrenceID", "basisOfRecord", "catalogNumber", "recordedBy", "country", "stateProvince",
    "decimalLatitude", "decimalLongitude", "geodeticDatum", "kingdom", "phylum", "class", "order", "family",
    "genus", "scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification",
    "taxonConceptID", "identifiedBy", "dateIdentified", "identificationRemarks",
    "identificationVerificationStatus", "associatedSequences"))
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
DWCA_MEMBERS = ("meta.xml", "eml.xml", "occurrence.txt", "identification.txt", "dna.txt")


_WHITESPACE_BREAKS = re.compile(r"[\t\r\n]+")


def _dwc_cell(value: Any) -> str:
    """Tab-separated text cell: no tabs or line breaks inside, formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, float):
        return "" if value != value else f"{value:.6g}"
    elif value is pd.NA:
        return ""
    else:
        text = str(value)
    if "\t" in text or "\n" in text or "\r" in text:
        text = _WHITESPACE_BREAKS.sub(" ", text)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def _tsv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    lines = ["\t".join(header)]
    lines.extend("\t".join(_dwc_cell(v) for v in row) for row in rows)
    return ("\n".join(lines) + "\n").encode("utf-8")


def model_description(run: Mapping[str, Any]) -> str:
    """The run's model fingerprint, else the bundle path it recorded, else 'unknown'.

    A fingerprint that is a whole settings record (a JSON object, or anything long)
    is shown as the bundle path plus a short hash of it: it goes into one-line
    remarks and the dataset abstract, where a JSON blob reads as noise.
    """
    params = run.get("parameters") if isinstance(run.get("parameters"), Mapping) else {}
    model = params.get("model")
    fingerprint = run.get("model_fingerprint")
    text = fingerprint.strip() if isinstance(fingerprint, str) else ""
    if text and (text.startswith(("{", "[")) or len(text) > 80 or "\n" in text):
        short = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        return f"{model} (fingerprint {short})" if model else f"fingerprint {short}"
    return str(text or model or "unknown")


_OPEN_NOMENCLATURE = re.compile(r"^([A-Z][a-z]+)\s+(sp|cf|aff|nr)\.(\s.*)?$")


def _remarks(run: Mapping[str, Any], rank: str | None, conf: Any, novelty: Any) -> str:
    parts = [f"method=biodiscover {run.get('kind', 'triage')} run {run.get('id', '?')}",
             f"model={model_description(run)}"]
    if rank and conf is not None and conf == conf:
        parts.append(f"confidence={float(conf):.3f} at {rank}")
    if novelty is not None and novelty == novelty:
        parts.append(f"novelty={float(novelty):.3f}")
    return "; ".join(parts)


def _plain_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with missing values (NaN, NA) as None."""
    out = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return out


def occurrence_rows(data: RunExport) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Darwin Core rows (occurrence, identification history, DNA-derived) for every specimen."""
    run = data.run
    when = str(run.get("finished_at") or run.get("started_at") or datetime.now(timezone.utc).isoformat())[:10]
    # Plain dicts (NaN → None) keyed by id: per-row pandas lookups cost ~1 ms each at 100k rows.
    spec = {r["processid"]: r for r in _plain_records(data.specimens)}
    assign = {r["processid"]: r for r in _plain_records(data.assignments)}
    cand = data.candidate_of()
    props = {r["proposal_id"]: r for r in _plain_records(data.proposals)} if not data.proposals.empty else {}
    # Members of a candidate a reviewer rejected: their record says so (it is provenance, not a candidate).
    rejected_of: dict[str, Any] = {}
    if not data.members.empty and props:
        rejected_ids = {i for i, r in props.items() if r.get("status") == "rejected"}
        for m_pid, m_prop in data.members[["processid", "proposal_id"]].itertuples(index=False, name=None):
            if m_prop in rejected_ids:
                rejected_of.setdefault(m_pid, m_prop)
    occ, ident, dna = [], [], []
    for pid, s in spec.items():
        a = assign.get(pid, {})
        deepest = a.get("deepest_rank") if a.get("deepest_rank") in RANKS else None
        novelty = a.get("novelty")
        named = {r: a.get(f"label_{r}") for r in RANKS[: RANKS.index(deepest) + 1]} if deepest else {}
        row: dict[str, Any] = {
            "occurrenceID": pid, "basisOfRecord": "PreservedSpecimen", "catalogNumber": s.get("sampleid"),
            "country": s.get("country"), "stateProvince": s.get("province_state"),
            "decimalLatitude": s.get("coord-lat"), "decimalLongitude": s.get("coord-lon"),
            "geodeticDatum": "WGS84" if pd.notna(s.get("coord-lat")) else None,
            "kingdom": "Animalia", "phylum": s.get("phylum") or "Arthropoda", "class": s.get("class") or "Insecta",
            "order": named.get("order"), "family": named.get("family"), "genus": named.get("genus"),
            "identifiedBy": "biodiscover", "dateIdentified": when,
            "identificationVerificationStatus": "unverified (machine prediction)",
        }
        conf = a.get(f"confidence_{deepest}") if deepest else None
        remarks = _remarks(run, deepest, conf, novelty)
        proposal_id = cand.get(pid)
        if proposal_id is None and pid in rejected_of:
            remarks += f"; proposed in candidate species {rejected_of[pid]}, rejected by a reviewer"
        taxon = a.get("deepest_taxon") or (named.get(deepest) if deepest else None)
        novel = novelty is not None and novelty == novelty and float(novelty) >= 0.5
        placeholder = _OPEN_NOMENCLATURE.match(taxon) if deepest == "species" and isinstance(taxon, str) else None
        if proposal_id is not None and proposal_id in props:
            p = props[proposal_id]
            parent_rank = p.get("parent_rank") if p.get("parent_rank") in RANKS else deepest
            row.update(scientificName=p.get("parent_taxon") or a.get("deepest_taxon"), taxonRank=parent_rank,
                       identificationQualifier=open_qualifier(parent_rank), verbatimIdentification=candidate_label(p),
                       taxonConceptID=f"biodiscover:run:{run.get('id')}:candidate:{proposal_id}",
                       identificationRemarks=remarks + f"; candidate species {proposal_id} (status {p.get('status')}, "
                                                       f"version {p.get('version')})")
            if str(p.get("status")) == "accepted":
                row["identificationVerificationStatus"] = "accepted by reviewer (provisional species)"
        elif placeholder:  # a BOLD-style interim name ("Zyeria sp. BIOUG63189-C12") is not a binomial
            row.update(scientificName=placeholder.group(1), taxonRank="genus",
                       identificationQualifier=f"{placeholder.group(2)}.", verbatimIdentification=taxon,
                       taxonConceptID=s.get("dna_bin"), identificationRemarks=remarks)
        elif deepest:
            # Named to genus: "Megaselia sp.". Novel and placed only in a family-group taxon: "Phoridae gen. sp.".
            qualifier = "sp." if deepest == "genus" else ("gen. sp." if novel and deepest in ABOVE_GENUS else None)
            row.update(scientificName=taxon, taxonRank=deepest, identificationQualifier=qualifier,
                       verbatimIdentification=f"{taxon} {qualifier}" if qualifier else taxon,
                       taxonConceptID=s.get("dna_bin") if novel else None,
                       identificationRemarks=remarks)
        else:
            row.update(scientificName="Insecta" if not s.get("class") else s.get("class"), taxonRank="class",
                       identificationRemarks=remarks + "; not named below class with confidence")
        if isinstance(s.get("dna_barcode"), str) and s.get("dna_barcode"):
            row["associatedSequences"] = f"BOLD:{pid}" if s.get("dna_bin") else None
            dna.append({"id": pid, "DNA_sequence": s.get("dna_barcode"), "target_gene": "COI",
                        "target_subfragment": "COI-5P", "otu_class_appr": "biodiscover "
                        f"{run.get('kind', 'triage')} (k-NN retrieval + calibrated per-rank thresholds)",
                        "otu_seq_comp_appr": "FAISS retrieval, pairwise identity of top hits",
                        "otu_db": f"model {model_description(run)}"})
        occ.append(row)
        provided = {r: s.get(r) for r in RANKS if isinstance(s.get(r), str) and s.get(r)}
        if provided:
            rank = [r for r in RANKS if r in provided][-1]
            ident.append({"id": pid, "identificationID": f"{pid}:provided", "scientificName": provided[rank],
                          "taxonRank": rank, "identifiedBy": "provided with the collection",
                          "identificationVerificationStatus": "as supplied",
                          "identificationReferences": s.get("source") if "source" in s else None})
        ident.append({"id": pid, "identificationID": f"{pid}:run{run.get('id')}", **{
            k: row.get(k) for k in ("scientificName", "taxonRank", "identificationQualifier", "verbatimIdentification",
                                    "taxonConceptID", "identifiedBy", "dateIdentified", "identificationRemarks",
                                    "identificationVerificationStatus")}})
    return occ, ident, dna


def _meta_xml() -> str:
    def fields_xml(terms: Sequence[tuple[str, str]]) -> str:
        return "".join(f'\n    <field index="{i + 1}" term="{uri}"/>' for i, (_, uri) in enumerate(terms))

    attrs = 'encoding="UTF-8" fieldsTerminatedBy="\\t" linesTerminatedBy="\\n" fieldsEnclosedBy="" ignoreHeaderLines="1"'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<archive xmlns="http://rs.tdwg.org/dwc/text/" metadata="eml.xml">\n'
        f'  <core {attrs} rowType="{OCCURRENCE_ROWTYPE}">\n    <files><location>occurrence.txt</location></files>\n'
        f'    <id index="0"/>{fields_xml(OCCURRENCE_TERMS)}\n  </core>\n'
        f'  <extension {attrs} rowType="{IDENTIFICATION_ROWTYPE}">\n'
        f'    <files><location>identification.txt</location></files>\n'
        f'    <coreid index="0"/>{fields_xml(IDENTIFICATION_TERMS)}\n  </extension>\n'
        f'  <extension {attrs} rowType="{DNA_ROWTYPE}">\n    <files><location>dna.txt</location></files>\n'
        f'    <coreid index="0"/>{fields_xml(DNA_TERMS)}\n  </extension>\n'
        '</archive>\n'
    )


def _eml_xml(run: Mapping[str, Any], n_occ: int, candidates: pd.DataFrame) -> str:
    title = xml_escape(f"biodiscover run {run.get('id')}: identifications and candidate species")
    accepted = int((candidates["status"] == "accepted").sum()) if "status" in candidates else 0
    reviewed = f" ({accepted} accepted by a reviewer, {len(candidates) - accepted} not yet)" if len(candidates) else ""
    abstract = xml_escape(
        f"{n_occ} specimens named to their deepest confident rank by biodiscover ({run.get('kind', 'triage')} run "
        f"{run.get('id')}, model {model_description(run)}), with {len(candidates)} candidate new species{reviewed} "
        "in open nomenclature (provisional names, not described species).")
    today = datetime.now(timezone.utc).date().isoformat()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<eml:eml xmlns:eml="eml://ecoinformatics.org/eml-2.1.1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="eml://ecoinformatics.org/eml-2.1.1 http://rs.gbif.org/schema/eml-gbif-profile/1.1/eml.xsd" '
        f'packageId="biodiscover-run-{xml_escape(str(run.get("id")))}" system="biodiscover" xml:lang="en">\n'
        f'  <dataset>\n    <title>{title}</title>\n'
        '    <creator><organizationName>biodiscover</organizationName></creator>\n'
        f'    <pubDate>{today}</pubDate>\n    <language>en</language>\n'
        f'    <abstract><para>{abstract}</para></abstract>\n'
        '    <intellectualRights><para>To be set by the data owner before publication.</para></intellectualRights>\n'
        '    <contact><organizationName>biodiscover</organizationName></contact>\n'
        '  </dataset>\n</eml:eml>\n'
    )


def write_dwca(data: RunExport, out: Path) -> tuple[Path, ...]:
    """Darwin Core Archive zip with Occurrence core + Identification and DNA-derived extensions."""
    occ, ident, dna = occurrence_rows(data)
    members = {
        "meta.xml": _meta_xml().encode("utf-8"),
        "eml.xml": _eml_xml(data.run, len(occ), live_candidates(data.proposals)).encode("utf-8"),
        "occurrence.txt": _tsv(["id"] + [t for t, _ in OCCURRENCE_TERMS],
                               ([r["occurrenceID"]] + [r.get(t) for t, _ in OCCURRENCE_TERMS] for r in occ)),
        "identification.txt": _tsv(["coreid"] + [t for t, _ in IDENTIFICATION_TERMS],
                                   ([r["id"]] + [r.get(t) for t, _ in IDENTIFICATION_TERMS] for r in ident)),
        "dna.txt": _tsv(["coreid"] + [t for t, _ in DNA_TERMS],
                        ([r["id"]] + [r.get(t) for t, _ in DNA_TERMS] for r in dna)),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in DWCA_MEMBERS:
            zf.writestr(name, members[name])
    _atomic_write(out, buf.getvalue())
    return (out,)


WRITERS: dict[str, Callable[[RunExport, Path], tuple[Path, ...]]] = {
    "csv": write_csv, "dwca": write_dwca, "fasta": write_fasta, "html": write_html, "json": write_json,
}


def write_export(data: RunExport, fmt: str, out: Path, *, force: bool = False) -> ExportResult:
    """Write ``data`` as ``fmt`` to ``out`` (overwrite only with ``force``)."""
    if fmt not in WRITERS:
        raise InputError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    out = Path(out)
    check_output(out, force=force, fmt=fmt)
    files = WRITERS[fmt](data, out)
    log.info("exported run %s as %s to %s (%d files)", data.run.get("id"), fmt, out, len(files))
    live = len(live_candidates(data.proposals))
    return ExportResult(fmt, out, files, len(data.assignments), live, len(data.proposals) - live)


def export_run(db: Path, run_id: int, fmt: str, out: Path, *, force: bool = False) -> ExportResult:
    """``biodiscover export``: read run ``run_id`` from the database at ``db`` and write it."""
    if fmt not in WRITERS:
        raise InputError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    check_output(Path(out), force=force, fmt=fmt)
    data = load_run_export(db, run_id)
    return write_export(data, fmt, Path(out), force=force)


def load_run_export(db: Path, run_id: int) -> RunExport:
    """Read one run's specimens, assignments, candidates and members from the database.

    Goes through the storage API (``Database.open(readonly=True)`` refuses a
    corrupt file or a newer schema without writing a byte; ``run_tables`` reads
    one consistent snapshot, so a batch job writing at the same time neither
    blocks nor is blocked). Candidates are the run's *live* proposals (pending,
    accepted, rejected); merged / superseded / withdrawn versions are history.
    """
    from biodiscover.storage.db.database import Database

    database = Database.open(Path(db), readonly=True)
    try:
        tables = database.run_tables(int(run_id))
    finally:
        database.close()
    return RunExport(run=dict(tables["run"]), specimens=tables["specimens"], assignments=tables["assignments"],
                     proposals=tables["proposals"], members=tables["members"],
                     reviews=tables.get("reviews", pd.DataFrame()))
