"""The one specimen record type and the BIOSCAN-5M constants every layer shares.

Why one module: readers, the synthetic generator, the database, encoders and the
TUI all talk about the same specimen; keeping its fields, the 23 BIOSCAN-5M
columns and their official dtypes in one place means a column rename is one edit.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

#: The 23 columns of ``BIOSCAN_5M_Insect_Dataset_metadata.csv`` in file order.
BIOSCAN_COLUMNS: tuple[str, ...] = (
    "processid",
    "sampleid",
    "taxon",
    "phylum",
    "class",
    "order",
    "family",
    "subfamily",
    "genus",
    "species",
    "dna_bin",
    "dna_barcode",
    "country",
    "province_state",
    "coord-lat",
    "coord-lon",
    "image_measurement_value",
    "area_fraction",
    "scale_factor",
    "inferred_ranks",
    "split",
    "index_bioscan_1M_insect",
    "chunk",
)

#: pandas dtypes used by the official ``bioscan-dataset`` loader (COLUMN_DTYPES),
#: so label indices (category codes, -1 = missing) compare one to one.
COLUMN_DTYPES: dict[str, str] = {
    "processid": "str",
    "sampleid": "str",
    "taxon": "category",
    "phylum": "category",
    "class": "category",
    "order": "category",
    "family": "category",
    "subfamily": "category",
    "genus": "category",
    "species": "category",
    "dna_bin": "category",
    "dna_barcode": "str",
    "country": "category",
    "province_state": "category",
    "coord-lat": "float",
    "coord-lon": "float",
    "image_measurement_value": "float",
    "area_fraction": "float",
    "scale_factor": "float",
    "inferred_ranks": "uint8",
    "split": "str",
    "index_bioscan_1M_insect": "Int64",
    "chunk": "str",
}

#: Ranks the product names specimens at, shallow to deep.
RANKS: tuple[str, ...] = ("order", "family", "subfamily", "genus", "species")
#: the plural of each rank's name, for sentences about taxa of it
RANK_PLURALS = {"order": "orders", "family": "families", "subfamily": "subfamilies", "genus": "genera",
                "species": "species"}
#: the lowest naming level (P(right) a rank needs to be named) any verb takes: a level must be over even odds.
#: ``triage``, ``run``, ``build-reference`` and ``info --level`` share it (``info`` took 0.5, which triage refuses:
#: e31 review F14)
LEVEL_MIN = 0.501
#: All taxonomy columns of the metadata, shallow to deep.
TAXONOMY_COLUMNS: tuple[str, ...] = ("phylum", "class") + RANKS

SPLITS: tuple[str, ...] = (
    "pretrain",
    "train",
    "val",
    "test",
    "key_unseen",
    "val_unseen",
    "test_unseen",
    "other_heldout",
)
METASPLITS: dict[str, tuple[str, ...]] = {
    "seen": ("train", "val", "test"),
    "unseen": ("key_unseen", "val_unseen", "test_unseen"),
    "all": SPLITS,
}
#: Splits whose images sit in a chunk directory, and how many md5 hex chars it has.
CHUNK_WIDTH: dict[str, int] = {"pretrain": 2, "train": 1, "other_heldout": 1}

MAX_NUCLEOTIDES = 660
MIN_BARCODE_LENGTH = 200
#: IUPAC nucleotide codes accepted in a barcode (gaps are removed before checking).
IUPAC = frozenset("ACGTURYSWKMBDHVN")
#: BIOSCAN-5M image normalisation (bioscan-dataset RGB_MEAN / RGB_STDEV).
RGB_MEAN = (0.7628, 0.7650, 0.7637)
RGB_STDEV = (0.1421, 0.1564, 0.1731)
DEFAULT_IMAGE_PACKAGE = "cropped_256"


def resolve_splits(selection: str | None) -> tuple[str, ...]:
    """Expand a split or metasplit expression (``seen``, ``train+val``, ``a+b``).

    Raises ``ValueError`` naming the unknown part, so a typo never silently
    selects nothing.
    """
    if selection is None or selection == "":
        return SPLITS
    out: list[str] = []
    for part in selection.split("+"):
        part = part.strip()
        if part in METASPLITS:
            out.extend(METASPLITS[part])
        elif part in SPLITS:
            out.append(part)
        else:
            known = ", ".join(list(SPLITS) + list(METASPLITS))
            raise ValueError(f"unknown split {part!r} (known: {known})")
    return tuple(dict.fromkeys(out))


def chunk_for(processid: str, split: str | None) -> str:
    """The image sub-directory BIOSCAN-5M uses: md5 prefix for chunked splits, else ''."""
    width = CHUNK_WIDTH.get(split or "", 0)
    if not width:
        return ""
    return hashlib.md5(processid.encode("utf-8")).hexdigest()[:width]


def image_relpath(processid: str, split: str | None, package: str = DEFAULT_IMAGE_PACKAGE) -> Path:
    """``images/<package>/<split>/<chunk>/<processid>.jpg`` relative to a dataset root."""
    parts = ["images", package, split or "unsplit"]
    chunk = chunk_for(processid, split)
    if chunk:
        parts.append(chunk)
    return Path(*parts) / f"{processid}.jpg"


#: The status of a taxon a reviewer added under its published name, that the reference lacks (``Aedes aegypti``,
#: *Cleora* Curtis, 1825): a described taxon, never a provisional one (the taxa table's, and what every export reads
#: to call it so; here, beside the other naming rules, so the exports need not import the database's models).
DESCRIBED = "described"

#: The orders of class Insecta (Misof et al. 2014's 28, with the names BOLD and older keys still use for some:
#: Phasmatodea, Isoptera, Psocoptera, Phthiraptera, Grylloblattodea, Mantophasmatodea, Thysanura), lower-cased.
#: Why a list and not an ending: most end in -ptera, but Odonata, Mantodea, Phasmida, Blattodea, Psocodea,
#: Zygentoma and Archaeognatha do not, and a genus may end in -ptera (*Macroptera*); a name on this list typed in
#: the review is an order, placed under the class (e33 review F1: "Coleoptera" typed for 28 beetles of an order
#: the reference lacked was offered only as a genus, under Lepidoptera or Diptera).
INSECT_ORDERS: frozenset[str] = frozenset(n.lower() for n in (
    "Archaeognatha", "Zygentoma", "Thysanura", "Ephemeroptera", "Odonata", "Plecoptera", "Orthoptera", "Phasmida",
    "Phasmatodea", "Embioptera", "Grylloblattodea", "Mantophasmatodea", "Notoptera", "Dermaptera", "Zoraptera",
    "Mantodea", "Blattodea", "Isoptera", "Psocodea", "Psocoptera", "Phthiraptera", "Thysanoptera", "Hemiptera",
    "Hymenoptera", "Raphidioptera", "Megaloptera", "Neuroptera", "Strepsiptera", "Coleoptera", "Trichoptera",
    "Lepidoptera", "Diptera", "Mecoptera", "Siphonaptera"))


def determination(labels: Mapping[str, Any], deepest_rank: str | None,
                  deepest_taxon: str | None = None) -> dict[str, str]:
    """A specimen's own determination above species, order first: its labels down to its deepest confident rank
    (genus at most: a candidate's species is what is in question), that rank's taxon ``deepest_taxon`` where the
    labels lack it; empty for one named to no rank."""
    if deepest_rank not in RANKS:
        return {}
    depth = min(RANKS.index(str(deepest_rank)), RANKS.index("genus"))
    out = {r: str(labels[r]) for r in RANKS[:depth + 1] if isinstance(labels.get(r), str) and labels[r]}
    if deepest_taxon and deepest_rank != "species":
        out.setdefault(str(deepest_rank), deepest_taxon)
    return out


def placement(determinations: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Where a candidate whose members are so determined (:func:`determination`) is placed, rank → name, order
    first (empty: unplaced): down to the deepest rank at which more than half of *all* its members are named to one
    taxon and no member to another. A member named to no rank, or not so deep, counts against (it does not reach
    the place), a rank no member is named at is passed over (BOLD leaves subfamily blank).

    Why a majority of all members: the vote among named members it replaces placed e33's #44 at subfamily
    Eristalinae by 1 of 4 (a 1-1 tie with family Syrphidae, won by the first member; the other 2 given no order) and
    two candidates of beetles in Lepidoptera by 1 member of 2; a taxonomist places a species where its specimens,
    counted all, say it is."""
    n = len(determinations)
    lineage: dict[str, str] = {}
    for rank in RANKS[:RANKS.index("species")]:
        names = Counter(d[rank] for d in determinations if d.get(rank))
        if not names:
            continue
        (name, count), *others = names.most_common()
        if others or 2 * count <= n:
            break
        lineage[rank] = name
    return lineage


def placement_words(rank: str, name: str, determinations: Sequence[Mapping[str, str]]) -> str:
    """``placed at family Syrphidae by 3 of 4 members; 1 not given an order``: how many members' own determinations
    reach a candidate's place (the review header's line; e33 review F6)."""
    reach = sum(1 for d in determinations if d.get(rank) == name)
    unnamed = sum(1 for d in determinations if not d)
    return (f"placed at {rank} {name} by {reach} of {len(determinations)} members"
            + (f"; {unnamed} not given an order" if unnamed else ""))


#: the class every order of :data:`INSECT_ORDERS` is in: where a reviewer's order goes (the taxonomy's orders are
#: its roots; the exports write it in ``class``)
INSECT_CLASS = "Insecta"


def open_qualifier(rank: str | None) -> str:
    """Open-nomenclature qualifier of an undescribed species placed in a taxon of ``rank``.

    ``sp.`` after a genus; ``gen. sp.`` after a family-group or higher name,
    because the genus is unknown too ("Phoridae gen. sp."). Shared by the
    reviewer's name suggestions and the Darwin Core export so both agree.
    """
    return "gen. sp." if rank in RANKS[: RANKS.index("genus")] else "sp."


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 specimen`` / ``3 specimens`` (``nouns`` when the plural is not ``noun + 's'``: taxon/taxa):
    the one way every message counts things, so none reads "1 candidates"."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


#: the most characters of one value a message quotes (:func:`quoted`)
QUOTED_MAX = 40


def quoted(value: str, limit: int = QUOTED_MAX) -> str:
    """``'AACTTTATAT…' (600 characters)``: ``value`` as a message quotes it, cut after ``limit`` characters.

    Why: a bare sequence read as a header, or a 500-character processid, was printed whole inside a one-line error
    (e31 review F14); the file and line say where the rest is."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value):,} characters)"


def listed(items: Sequence[Any]) -> str:
    """``5``, ``5 and 6``, ``5, 6 and 7``: the one way a message lists runs or collections."""
    words = [str(i) for i in items]
    return ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else "".join(words)


def candidate_name(provisional_name: str | None, parent_name: str | None, parent_rank: str | None,
                   proposal_id: Any) -> str:
    """The one name a candidate species goes by, on screen and in every export.

    Its provisional name once a reviewer gave one (``Megaselia sp. BD-0007``), else a
    working label in open nomenclature that never changes while it waits for review:
    ``<parent> sp. cand<id>`` (``gen. sp.`` under a family or subfamily; the proposal
    id makes it stable, unlike the next free BD number, which moves as others are
    accepted).
    """
    if isinstance(provisional_name, str) and provisional_name.strip():
        return provisional_name
    parent = parent_name if isinstance(parent_name, str) and parent_name.strip() else "Unplaced"
    return f"{parent} {open_qualifier(parent_rank)} cand{proposal_id}"


def named_ranks(deepest_rank: Any) -> tuple[str, ...]:
    """The ranks a specimen named down to ``deepest_rank`` has a name at: order down to it; none where it was named
    at no rank. The one rule of which ``label_<rank>`` an output gives (``triage --results``, assignments.csv, the
    JSON export, the archive's rank columns). Why: below it a label is the model's best guess, not a
    determination: a real plate's 120 specimens not named to species all carried a ``label_species`` at P(right)
    0.0015-0.01, 88 of them a wrong species, and a spreadsheet pivoted on the column counted them (e27, F8);
    ``confidence_<rank>`` says how unsure it was, ``reason`` names the rivals."""
    return RANKS[: RANKS.index(deepest_rank) + 1] if deepest_rank in RANKS else ()


def country_key(name: str) -> str:
    """How two country names are compared (never shown): case, accents and runs of spaces ignored, so a plate's
    ``PANAMA`` or ``Panamá`` is the reference's ``Panama``. Why: compared as written, a collection keyed in capitals
    read "collected where the reference holds no key: PANAMA 15, panama 15, Panamá 15", and its candidates got a
    ⚑ for a species whose keys came from Panama (QA of the ⚑, twenty-third session)."""
    plain = unicodedata.normalize("NFKD", name)
    return " ".join("".join(c for c in plain if not unicodedata.combining(c)).casefold().split())


def is_filler_name(name: Any) -> bool:
    """True for rank fillers such as ``unassigned Sciaridae`` / ``unclassified Diptera``.

    BIOSCAN-5M and BOLD put these where a rank was never assigned; they are not
    taxon names, so naming a specimen "unassigned Sciaridae" names nothing and a
    score must not count it as naming a subfamily.
    """
    return isinstance(name, str) and name.strip().lower().startswith(("unassigned", "unclassified"))


#: How a species label as collection databases write it was read (:func:`read_species_label`): the rule's
#: name, as build-reference counts them.
AUTHORSHIP, OPEN_SP, OPEN_CF, SENSU_LATO = "author", "sp.", "cf.", "s.l."
#: Open nomenclature as regular-expression parts, one owner for its two readers: :func:`read_species_label` (what
#: the analysis reads) and the Darwin Core export's ``open_name`` (how GBIF is told), each composing its own rule
#: from them. Why: each kept its own copy of sp./cf./aff./nr./s.l./agg., and a qualifier added to one would have
#: been read by one and not the other. A genus, an epithet:
GENUS_PATTERN, EPITHET_PATTERN = r"[A-Z][a-z]+", r"[a-z][a-z-]+"
#: ``sp.``: a specimen of the genus not determined to species (``spp.``: of several)
OPEN_SP_WORD = "sp"
#: ``cf. cruciferae``, ``aff. cruciferae``, ``nr. cruciferae``: compared with a species, not determined as it
COMPARED_WORDS = ("cf", "aff", "nr")
#: how the reason of a specimen named from its photograph alone begins (``discovery.multimodal.photo_only_reason``):
#: its P(right) calibrated from the image score against the level; the Darwin Core remarks carry it
PHOTO_ONLY = "photograph only"
#: what that reason says where a bundle fitted before the calibration named it at the image classifier's own
#: thresholds instead: its confidences are scores, not P(right) (the export and triage's summary read it)
PHOTO_SCORES = "image scores are not P(right)"
#: a species in a wide or a strict sense: ``s.l.``, ``s. str.``, ``s.s.``, ``sensu lato``, ``sensu stricto``, ``agg.``
SENSU_PATTERN = r"s\.\s?l\.|s\.\s?(?:str|s)\.|sensu\s+lato|sensu\s+stricto|agg\."
_LABEL = re.compile(rf"^({GENUS_PATTERN})\s+(.+?)\s*$")
_EPITHET = re.compile(rf"^({EPITHET_PATTERN})(?:\s+(.*))?$")
#: ``sp.``, ``spp.``, ``sp. 3``, ``sp.3``, ``sp. A``: a specimen of the genus not determined to species. A longer
#: tail (``sp. BIOUG63189-C12``, ``sp. BD-0007``) is an interim name of one species, kept as written.
_OPEN_SP = re.compile(rf"^{OPEN_SP_WORD}p?\.(?:\s*(?:\d+|[A-Z]))?$")
#: ``cf. cruciferae`` and the other ``COMPARED_WORDS``, or ``near cruciferae``
_OPEN_CF = re.compile(rf"^(?:(?:{'|'.join(COMPARED_WORDS)})\.|near\s)\s*\S")
#: ``SENSU_PATTERN``, in any case, and ``s. lat.``
_SENSU = re.compile(rf"^(?:s\.\s?lat\.|{SENSU_PATTERN})$", re.IGNORECASE)
_PARTICLES = frozenset({"de", "da", "del", "della", "der", "den", "di", "du", "la", "le", "van", "von", "y", "d'",
                        "et", "al.", "al", "&", "and", "in", "ex"})
_YEAR = re.compile(r"^\[?\d{4}\]?[a-z]?$")


def _is_authorship(text: str) -> bool:
    """``(De Geer, 1774)``, ``Linnaeus, 1758``, ``Smith & Jones``, ``Fabricius et al.``, ``van Dyke``: capitalised
    words, particles and years only, so a lower-case third word (a subspecies) is never taken for an author."""
    words = re.sub(r"[(),]", " ", text).replace("&", " & ").split()
    return bool(words) and all(w[0].isupper() or w.lower() in _PARTICLES or _YEAR.match(w) for w in words)


def read_species_label(label: Any) -> tuple[str | None, str | None]:
    """The species a label names, as the analysis reads it, and the rule that read it (None: as written).

    Why: collection databases write a species with its author, and open nomenclature beside determinations. Read
    verbatim, half the keys of *Coccinella septempunctata* written "Coccinella septempunctata (De Geer, 1774)" were
    a second species and none of its 25 specimens reached species; "Bembidion sp." and "Phyllotreta cf.
    cruciferae" became species that 51 specimens were named to (e31 F25). So:

    * ``Genus species (Author, 1774)`` / ``Genus species Author, 1774`` / ``Genus species Author``: the species
      (rule ``author``); a trinomial keeps its third word, as it always did, and loses only an author after it;
    * ``Genus sp.``, ``Genus spp.``, ``Genus sp. 3``: no species (``sp.``): the genus column says the rest;
    * ``Genus cf. species``, ``aff.``, ``nr.``: no species (``cf.``): not a determination to that species;
    * ``Genus species s.l.`` (``s. str.``, ``sensu lato``, ``agg.``): the species (``s.l.``);
    * anything else, BOLD's interim names included (``Zyeria sp. BIOUG63189-C12``), as written.

    Only the reading: where the label is stored (the specimens table) it stays as supplied. The Darwin Core export
    writes such a name its own way (``workflows.export.dwca.open_name``: an interim name is genus + ``sp.``, a
    "cf." one the species with its qualifier), since GBIF wants the qualifier beside the name, not the name dropped.
    """
    if not isinstance(label, str):
        return None, None
    m = _LABEL.match(label)
    if m is None:
        return label, None
    genus, rest = m.groups()
    if _OPEN_SP.match(rest):
        return None, OPEN_SP
    if _OPEN_CF.match(rest):
        return None, OPEN_CF
    e = _EPITHET.match(rest)
    if e is None or e.group(1) in (OPEN_SP_WORD, OPEN_SP_WORD + "p", *COMPARED_WORDS) or not e.group(2):
        return label, None
    epithet, tail = e.groups()
    if _SENSU.match(tail):
        return f"{genus} {epithet}", SENSU_LATO
    if _is_authorship(tail):
        return f"{genus} {epithet}", AUTHORSHIP
    third = _EPITHET.match(tail)
    if third is not None and third.group(2) and _is_authorship(third.group(2)):
        return f"{genus} {epithet} {third.group(1)}", AUTHORSHIP
    return label, None


def read_lineage(labels: Mapping[str, Any]) -> dict[str, str | None]:
    """Labels at the product's ranks (order … species) as the analysis reads them: the species through
    :func:`read_species_label`, the ranks above as given (blank = None)."""
    out = {rank: (labels.get(rank) or None) for rank in RANKS}
    out["species"] = read_species_label(out["species"])[0]
    return out


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str) and value.strip() == "":
        return True
    try:  # pandas.NA / NaT without importing pandas here
        return bool(value != value)  # NaN is the one value not equal to itself
    except (TypeError, ValueError):
        # pandas.NA: its comparisons give NA, whose truth value raises; it was stored as the text "<NA>"
        return type(value).__name__ == "NAType"


@dataclass(slots=True)
class Specimen:
    """One specimen, from any source (BIOSCAN-5M, a collection CSV, FASTA, images).

    Field names follow the BIOSCAN-5M columns with ``-`` → ``_`` and ``class`` →
    ``class_``. Missing values are ``None``; every modality is optional.
    ``source`` / ``line`` say where the record came from so an error can name it.
    """

    processid: str
    sampleid: str | None = None
    taxon: str | None = None
    phylum: str | None = None
    class_: str | None = None
    order: str | None = None
    family: str | None = None
    subfamily: str | None = None
    genus: str | None = None
    species: str | None = None
    dna_bin: str | None = None
    dna_barcode: str | None = None
    country: str | None = None
    province_state: str | None = None
    coord_lat: float | None = None
    coord_lon: float | None = None
    image_measurement_value: float | None = None
    area_fraction: float | None = None
    scale_factor: float | None = None
    inferred_ranks: int | None = None
    split: str | None = None
    index_bioscan_1M_insect: int | None = None
    chunk: str | None = None
    image_path: Path | None = None
    #: The barcode as submitted: cleaned like ``dna_barcode`` (gaps, case, U, end N runs) but not cut to
    #: :data:`MAX_NUCLEOTIDES`; None when not known (a database written before schema 0006). The analysis
    #: reads ``dna_barcode`` only; the exports send this on (``validation.barcode_as_submitted``). Not
    #: compared, like ``source``: equal records are what the analysis reads alike (the database's record
    #: hash does cover a read that was cut, so a re-called tail is a new version there).
    submitted_barcode: str | None = field(default=None, compare=False)
    source: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)

    # -- conversions -----------------------------------------------------------------
    @staticmethod
    def field_for_column(column: str) -> str:
        return {"class": "class_", "coord-lat": "coord_lat", "coord-lon": "coord_lon"}.get(column, column)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, source: str | None = None, line: int | None = None) -> "Specimen":
        """Build from a metadata row (BIOSCAN column names); unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in row.items():
            name = cls.field_for_column(str(key))
            if name not in names or name in ("source", "line", "submitted_barcode"):
                continue  # a table's own column of that name is no cleaned read (validation sets it)
            if _missing(value):
                continue
            if name in ("coord_lat", "coord_lon", "image_measurement_value", "area_fraction", "scale_factor"):
                value = float(value)
            elif name in ("inferred_ranks", "index_bioscan_1M_insect"):
                value = int(float(value))
            elif name == "image_path":
                value = Path(value)
            else:
                value = str(value)
            kwargs[name] = value
        if "processid" not in kwargs:
            raise ValueError("record has no processid")
        return cls(**kwargs, source=source, line=line)

    def to_row(self) -> dict[str, Any]:
        """The record as a BIOSCAN-5M metadata row (23 columns, ``None`` = missing)."""
        return {col: getattr(self, self.field_for_column(col)) for col in BIOSCAN_COLUMNS}

    def lineage(self) -> dict[str, str | None]:
        """Labels at the product's ranks (order … species), the species as read (:func:`read_lineage`)."""
        return read_lineage({rank: getattr(self, rank) for rank in RANKS})

    def ranks(self) -> tuple[str | None, ...]:
        """:meth:`lineage` in ``RANKS`` order: what a reference key and a calibration truth hold (a species written
        with its author is the species, "Genus sp." names none: e31 F25)."""
        return tuple(self.lineage().values())

    @property
    def deepest_label(self) -> tuple[str, str] | None:
        """(rank, name) of the deepest provided rank, or None when unlabelled."""
        for rank in reversed(RANKS):
            value = getattr(self, rank)
            if value:
                return rank, value
        return None

    @property
    def where(self) -> str:
        """Human-readable location of the record for error messages."""
        loc = self.source or "<memory>"
        if self.line is not None:
            loc += f":{self.line}"
        return f"{loc} (processid {quoted(self.processid)})"
