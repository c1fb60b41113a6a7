"""``fasta``: a folder with one FASTA file per candidate species, and ``all_specimens.fasta`` with every
sequenced specimen of the run once, under its current determination (the archive's: a reviewer's where one
decided, the machine's otherwise) — a BOLD submitter uploads a plate, not only its candidates; a candidate's member
has there the header line it has in its candidate's file.

BOLD-style headers ``>processid|name|COI-5P|accession|candidate id|membership|BIN|parent taxon``,
one line per sequence (as BOLD writes). The first four fields are BOLD's own
(:data:`biodiscover.storage.fasta.BOLD_FIELDS`): the marker third and the GenBank
accession fourth, left empty because a collection gives none, so BOLD-aware tools
(and our own reader, ``triage --input``) read each field as what it is; ours follow.
Older exports put the parent taxon third, where BOLD reads the marker; it is now
last. Members without a barcode (image-only specimens), and candidates a reviewer
rejected or identified as a known species, are left out. File names are built
from the candidate's name made safe.

Deflines are ASCII and their first token (up to the first space) is the process id: ``>CHRFI703-11 |Smittia sp.
BD-0001|COI-5P||1|0.971||Smittia``. GenBank, BLAST and most aligners take that token as the sequence id and NCBI
takes ASCII only; BOLD's upload takes the process id followed by a pipe, an underscore or a space, and BOLD-aware
readers (ours included) split on the pipes and strip the fields. Before, the first token ran into the name
("CHRFI703-11|Smittia") and a reviewer's "Ødegaard" went in as written. The rest of the line is transliterated
(:func:`~biodiscover.storage.safetext.ascii_text`: "Odegaard"), not escaped: the name is read by people and an
escape would become part of it; the archive and the CSV keep the exact name. File names are transliterated too.

An accepted species' file of an export over several runs holds, after its members, the specimens the export's
later runs named as it from its keys (``dwca.named_later``), their membership field ``named by run 5`` where a
member's has its probability: the file is what a taxonomist takes for the species' description or its BOLD upload,
and the season's export gave 30 of the 71 specimens named as it (season review F4); the field tells the reviewed
members from the specimens the machine named later. One run's export has none: its files are as they were.

A read the triage found chimeric or unrelated to every reference key, or a candidate's evidence not usable as COI,
is left out as image-only specimens are
(the Darwin Core archive's remark says why; assignments.csv keeps the reason).

Each sequence is the barcode as submitted (cleaned of gaps and case, not cut to the
660 nt the analysis compared), as a BOLD or GenBank submission expects the read the lab
sequenced; the header does not change (BOLD's fields hold no remark), and the Darwin
Core archive says which were cut. A database written before schema 0006 kept only the
cut barcode: that is what goes (:func:`~biodiscover.workflows.export.tables.barcode_to_send`).
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

import pandas as pd

from biodiscover.storage.fasta import MARKER
from biodiscover.storage.fasta import write_fasta as write_fasta_records  # the BOLD-style writer
from biodiscover.storage.safetext import ascii_text
from biodiscover.workflows.export.metadata import ExportOptions
from biodiscover.workflows.export.registry import REGISTRY, ExportFormat
from biodiscover.workflows.export.safety import safe_member_name, unique_names
from biodiscover.workflows.export.tables import (NOT_CANDIDATES, RunExport, barcode_to_send, candidate_label,
                                                  plain_records)


def _field(value: Any) -> str:
    """A header field in ASCII: no ``|``, ``>`` or line breaks, so a hostile name cannot forge records."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return ascii_text(re.sub(r"[|\r\n>\t]+", " ", str(value)).strip())


def _id_token(processid: Any) -> str:
    """The defline's first token: the process id in ASCII, any whitespace in it an underscore."""
    return "_".join(_field(processid).split())


def _defline(fields_: list[Any]) -> str:
    """``CHRFI703-11 |name|COI-5P|…``: the process id as the first token, then BOLD's fields (the module docstring
    says why)."""
    return _id_token(fields_[0]) + " |" + "|".join(_field(f) for f in fields_[1:])


def _sequences(data: RunExport) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """processid → barcode as submitted (:func:`barcode_to_send`), and processid → BIN. A read the triage found
    chimeric or unrelated to every reference key, or its candidate's evidence not usable as COI
    (``dwca.unsent_reads``), is none: it is no barcode of the specimen,
    and all_specimens.fasta went into a tree pipeline with a weevil-moth chimera as one insect (e32 R21)."""
    from biodiscover.workflows.export.dwca import unsent_reads

    off = unsent_reads(data)
    barcodes = {r["processid"]: None if r["processid"] in off else barcode_to_send(r)[0]
                for r in plain_records(data.specimens)}
    return barcodes, dict(zip(data.specimens["processid"], data.specimens.get("dna_bin", pd.Series(dtype=object))))


def fasta_records(data: RunExport) -> dict[Any, list[tuple[str, str]]]:
    """proposal id → [(header, sequence)] for every candidate species with a barcoded member."""
    barcodes, bins = _sequences(data)
    out: dict[Any, list[tuple[str, str]]] = {}
    props = data.proposals.set_index("proposal_id", drop=False)
    for pid, grp in data.members.groupby("proposal_id", sort=True):
        prop = props.loc[pid] if pid in props.index else {}
        if len(prop) and prop.get("status") in NOT_CANDIDATES:
            continue  # a reviewer said this is not a new species
        recs = []
        name = candidate_label({**dict(prop), "proposal_id": pid}) if len(prop) else None
        for _, m in grp.sort_values("processid").iterrows():
            seq = barcodes.get(m["processid"])
            if not isinstance(seq, str) or not seq:
                continue
            prob = m.get("probability")
            fields_ = [m["processid"], name, MARKER, None,  # BOLD's four; no accession to give
                       pid, f"{float(prob):.3f}" if prob is not None and prob == prob else "", bins.get(m["processid"]),
                       prop.get("parent_taxon")]
            recs.append((_defline(fields_), re.sub(r"\s+", "", seq)))
        for specimen, run in data.named_later.get(int(pid), ()):
            seq = barcodes.get(specimen)
            if isinstance(seq, str) and seq:
                fields_ = [specimen, name, MARKER, None, pid, f"named by run {run}", bins.get(specimen),
                           prop.get("parent_taxon")]
                recs.append((_defline(fields_), re.sub(r"\s+", "", seq)))
        out[pid] = recs
    return out


#: the file of every sequenced specimen; no candidate's file can be called so (theirs begin with the candidate id)
ALL_SPECIMENS = "all_specimens.fasta"


def all_specimen_records(data: RunExport, records: dict[Any, list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """Every specimen with a barcode, once, by processid: a live candidate's member as in its candidate's file
    (``records``, :func:`fasta_records`), any other under its current determination
    (``dwca.determinations``: the open-nomenclature label where it has one, else the name) with BOLD's four
    fields and its BIN."""
    from biodiscover.workflows.export.dwca import determinations

    barcodes, bins = _sequences(data)
    held = {header.split(" ", 1)[0]: (header, seq) for recs in records.values() for header, seq in recs}
    named = {r["processid"]: r.get("verbatimIdentification") or r.get("scientificName")
             for r in plain_records(determinations(data))}
    out = []
    for pid in sorted(barcodes):
        seq = barcodes[pid]
        if not isinstance(seq, str) or not seq:
            continue
        if _id_token(pid) in held:
            out.append(held[_id_token(pid)])
            continue
        fields_ = [pid, named.get(pid), MARKER, None, None, None, bins.get(pid), None]
        out.append((_defline(fields_), re.sub(r"\s+", "", seq)))
    return out


def render(data: RunExport, options: ExportOptions) -> dict[str, bytes]:
    records = fasta_records(data)
    names_by_id = {p["proposal_id"]: candidate_label(p) for p in data.proposals.to_dict("records")}
    pids = [p for p in records if records[p]]
    # ids zero-padded to the widest, so a file listing sorts 01, 02 … 10 rather than 1, 10, 2
    width = max((len(str(p)) for p in pids), default=1)
    files = unique_names([safe_member_name(ascii_text(f"{str(p).zfill(width)}_{names_by_id.get(p) or 'candidate'}"),
                                           suffix=".fasta") for p in pids])
    out: dict[str, bytes] = {}
    for pid, name in zip(pids, files):
        buf = io.StringIO()
        write_fasta_records(records[pid], buf)
        out[name] = buf.getvalue().encode("utf-8")
    every = all_specimen_records(data, records)
    if every:
        buf = io.StringIO()
        write_fasta_records(every, buf)
        out[ALL_SPECIMENS] = buf.getvalue().encode("utf-8")
    return out


FORMAT = REGISTRY.register(ExportFormat(
    "fasta", "one FASTA file per candidate species and all_specimens.fasta, BOLD-style headers",
    "folder", render))
