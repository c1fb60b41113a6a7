"""Who made a dataset and under which licence: what a publishable export carries.

A Darwin Core Archive a taxonomist can publish (GBIF) needs a creator, a contact
and one of GBIF's three licences in its ``eml.xml``; the other formats carry the
same facts where they have room (the HTML report's footer, the JSON header).
They come from ``--metadata FILE`` (TOML or JSON) and / or flags::

    # dataset.toml
    title = "Malaise trap 7, Guanacaste, 2026"
    licence = "CC-BY-4.0"                     # CC0-1.0 | CC-BY-4.0 | CC-BY-NC-4.0
    abstract = "Optional text put before the generated description."
    [[creator]]
    name = "Ada Lovelace"
    organization = "Natural History Museum"
    email = "ada@example.org"
    orcid = "0000-0002-1825-0097"
    [[creator]]
    given = "Ana María"                       # a name's parts, where splitting at the last
    surname = "Silva Pérez"                   # space would be wrong (two surnames, "van der …")
    [contact]                                 # optional: the first creator otherwise
    position = "Collections desk"             # a role, not a person: never split into names
    organization = "Natural History Museum"
    email = "collections@example.org"

A creator or contact has a ``name`` (split at its last space into given name and
surname, for eml.xml, unless ``given`` / ``surname`` say otherwise), or ``given`` +
``surname``, or an ``organization``, or a ``position``; ``email`` and ``orcid`` are
optional. The contact is also eml.xml's metadata provider.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from biodiscover.storage.errors import InputError

#: GBIF accepts exactly these licences (id → (title, legal code URL)).
LICENCES: dict[str, tuple[str, str]] = {
    "CC0-1.0": ("Public Domain (CC0 1.0)", "http://creativecommons.org/publicdomain/zero/1.0/legalcode"),
    "CC-BY-4.0": ("Creative Commons Attribution (CC-BY) 4.0", "http://creativecommons.org/licenses/by/4.0/legalcode"),
    "CC-BY-NC-4.0": ("Creative Commons Attribution Non Commercial (CC-BY-NC) 4.0",
                     "http://creativecommons.org/licenses/by-nc/4.0/legalcode"),
}
_ALIASES = {re.sub(r"[^a-z0-9]", "", k.lower()): k for k in LICENCES} | {"cc0": "CC0-1.0", "ccby": "CC-BY-4.0",
                                                                         "ccbync": "CC-BY-NC-4.0"}
_ORCID = re.compile(r"^(https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
#: The keys of a creator or contact in a metadata file (``organisation`` is read as ``organization`` too).
PERSON_KEYS: tuple[str, ...] = ("name", "given", "surname", "organization", "position", "email", "orcid")


@dataclass(frozen=True)
class Person:
    """A creator or contact: at least a name, a surname, an organisation or a position.

    eml.xml names a person by given name and surname, and GBIF cites a dataset from them
    ("Silva Pérez A. M."). No rule splits every written name right ("Ana María Silva Pérez"
    has two surnames, "Ludwig van Beethoven" a particle), so ``given`` / ``surname`` say it
    where the metadata file gives them; only without them is ``name`` split at its last space
    (:meth:`name_parts`). ``position`` is a role rather than a person ("Collections desk", EML's
    ``positionName``), so a desk is never written as given name "Collections", surname "desk".
    """

    name: str | None = None
    organization: str | None = None
    email: str | None = None
    orcid: str | None = None
    given: str | None = None
    surname: str | None = None
    position: str | None = None

    @property
    def display_name(self) -> str | None:
        """How people read who this is: the name as written, else its parts, else the organisation or position."""
        parts = " ".join(p for p in (self.given, self.surname) if p)
        return self.name or parts or self.organization or self.position

    def name_parts(self) -> tuple[str | None, str] | None:
        """(given name or None, surname) of a person; None for an organisation or a position alone.

        The explicit parts when given; else ``name`` split at its last space, the fallback
        that is right for "Ada Lovelace" and wrong for "Ana María Silva Pérez"."""
        if self.surname:
            return self.given, self.surname
        if self.name:
            given, _, surname = self.name.rpartition(" ")
            return given or None, surname
        return None

    def label(self) -> str:
        who = self.display_name or "?"
        return who + (f" <{self.email}>" if self.email else "")

    def as_json(self) -> dict[str, str | None]:
        """The person as eml.xml writes them, for the JSON export: the name as read, its parts (eml.xml's
        individualName), organisation, position, e-mail and the ORCID iD as its URL (eml.xml's userId in the
        https://orcid.org/ directory). Every key always present (None: not given), so a reader needs no guard.
        Why: the JSON wrote "Name <e-mail>" strings and lost the organisations, ORCID iDs and contact that eml.xml
        kept (e27, F11)."""
        parts = self.name_parts()
        return {"name": self.display_name, "given": parts[0] if parts else None,
                "surname": parts[1] if parts else None, "organization": self.organization,
                "position": self.position, "email": self.email,
                "orcid": f"https://orcid.org/{self.orcid}" if self.orcid else None}


@dataclass(frozen=True)
class DatasetMetadata:
    title: str | None = None
    abstract: str | None = None
    licence: str | None = None
    creators: tuple[Person, ...] = ()
    contact: Person | None = None

    @property
    def complete(self) -> bool:
        """Enough for GBIF: a creator and a licence."""
        return bool(self.creators) and self.licence is not None

    @property
    def answers(self) -> Person | None:
        """Who answers for the dataset (eml.xml's contact and metadataProvider, the JSON's ``contact``): the
        contact, else the first creator, as GBIF's IPT does; None without either."""
        return self.contact or (self.creators[0] if self.creators else None)

    def missing(self) -> list[str]:
        return [what for what, ok in (("creator", bool(self.creators)),
                                      ("licence", self.licence is not None)) if not ok]


@dataclass(frozen=True)
class ExportOptions:
    """Everything an export format may need besides the run's tables."""

    metadata: DatasetMetadata = field(default_factory=DatasetMetadata)


def normalise_licence(value: str, where: str = "--licence") -> str:
    key = re.sub(r"[^a-z0-9]", "", str(value).lower())
    if key not in _ALIASES:
        raise InputError(f"{where}: licence {value!r} is not one GBIF accepts (use {', '.join(LICENCES)})")
    return _ALIASES[key]


def _person(raw: Any, where: str) -> Person:
    if isinstance(raw, str):
        return parse_person(raw, where)
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: expected a table with {', '.join(PERSON_KEYS)}, got {raw!r}")
    unknown = sorted(set(raw) - {*PERSON_KEYS, "organisation"})
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} ({', '.join(PERSON_KEYS)})")
    p = Person(name=_text(raw.get("name"), where), organization=_text(raw.get("organization")
               or raw.get("organisation"), where), email=_text(raw.get("email"), where),
               orcid=_text(raw.get("orcid"), where), given=_text(raw.get("given"), where),
               surname=_text(raw.get("surname"), where), position=_text(raw.get("position"), where))
    return _checked(p, where)


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{where}: expected text, got {value!r}")
    return value.strip() or None


def _checked(p: Person, where: str) -> Person:
    if p.given and not p.surname:
        # eml.xml's individualName must have a surName; guessing it from ``name`` is what ``given`` is there to avoid
        raise InputError(f"{where}: given {p.given!r} needs a surname too")
    if not (p.name or p.surname or p.organization or p.position):
        raise InputError(f"{where}: a creator or contact needs a name or an organization (or given + surname, "
                         "or a position)")
    if p.email and not _EMAIL.match(p.email):
        raise InputError(f"{where}: {p.email!r} is not an e-mail address")
    if p.orcid:
        m = _ORCID.match(p.orcid)
        if not m:
            raise InputError(f"{where}: {p.orcid!r} is not an ORCID iD (0000-0002-1825-0097)")
        p = dataclasses.replace(p, orcid=m.group(2))
    return p


def parse_person(text: str, where: str = "--creator") -> Person:
    """``"Ada Lovelace <ada@example.org>"`` (the e-mail is optional) → :class:`Person`."""
    m = re.match(r"^\s*([^<>]*?)\s*(?:<([^<>]+)>)?\s*$", text or "")
    if not m or not (m.group(1) or "").strip():
        raise InputError(f"{where}: expected \"Name <e-mail>\", got {text!r}")
    return _checked(Person(name=m.group(1).strip(), email=(m.group(2) or "").strip() or None), where)


def load_metadata(path: Path) -> DatasetMetadata:
    """Read ``path`` (``.toml`` or ``.json``); every problem is one ``InputError`` naming the file and key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: metadata file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read metadata file ({exc})") from None
    # the ending says how to read it; an empty file gave the archive no creator or licence without a word on the
    # file (e34 attack E7: an empty file without an ending was reported as "not found")
    if Path(path).suffix.lower() not in (".toml", ".json"):
        raise InputError(f"{path}: not a .toml or .json file; --metadata reads one of those (name it so)")
    if not text.strip():
        raise InputError(f"{path}: is empty; --metadata needs the dataset's title, creator and licence")
    try:
        raw = json.loads(text) if Path(path).suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not valid {'JSON' if Path(path).suffix.lower() == '.json' else 'TOML'} "
                         f"({exc})") from None
    if not isinstance(raw, Mapping):
        raise InputError(f"{path}: expected a table of keys at the top")
    known = {"title", "abstract", "licence", "license", "creator", "creators", "contact"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    creators_raw = raw.get("creator", raw.get("creators", []))
    if isinstance(creators_raw, (Mapping, str)):
        creators_raw = [creators_raw]
    if not isinstance(creators_raw, list):
        raise InputError(f"{path}: creator must be a table or a list of tables")
    creators = tuple(_person(c, f"{path}: creator {i + 1}") for i, c in enumerate(creators_raw))
    licence = raw.get("licence", raw.get("license"))
    return DatasetMetadata(
        title=_text(raw.get("title"), f"{path}: title"), abstract=_text(raw.get("abstract"), f"{path}: abstract"),
        licence=normalise_licence(licence, f"{path}: licence") if licence is not None else None,
        creators=creators,
        contact=_person(raw["contact"], f"{path}: contact") if raw.get("contact") is not None else None)


def build_metadata(path: Path | None = None, *, creators: list[str] | None = None, licence: str | None = None,
                   title: str | None = None) -> DatasetMetadata:
    """``--metadata FILE`` with ``--creator`` / ``--licence`` / ``--title`` flags taking precedence."""
    base = load_metadata(path) if path is not None else DatasetMetadata()
    return DatasetMetadata(
        title=title or base.title, abstract=base.abstract,
        licence=normalise_licence(licence) if licence else base.licence,
        creators=tuple(parse_person(c) for c in creators) if creators else base.creators,
        contact=base.contact)
