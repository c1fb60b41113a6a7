"""Text that leaves biodiscover must not act: no spreadsheet formulas, no control characters.

Why one module in ``storage``: the quarantine report (:mod:`biodiscover.storage.validation`),
FASTA headers (:mod:`biodiscover.storage.fasta`) and every export write text that came
from a user's file. A cell starting with ``=`` runs as a formula when a taxonomist
opens the CSV in a spreadsheet (OWASP "CSV injection"); a NUL or a bidi override
in a processid corrupts FASTA headers and makes a terminal or a report lie about
what it shows. One definition keeps every writer in step.

* :func:`neutralise_cell` — prefix ``'`` to a text cell that a spreadsheet would evaluate;
* :func:`control_characters` — the control characters in a text (the validation rule);
* :func:`escape_controls` — show them as ``\\xNN`` / ``\\uNNNN`` instead of writing them;
* :func:`ascii_text` — the same text in ASCII letters, for readers that take nothing else (GenBank deflines).
"""

from __future__ import annotations

import re
from typing import Any

#: Leading characters that make a spreadsheet evaluate a cell (OWASP CSV injection).
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")

#: C0 controls (tab and line breaks included: no specimen field holds them), DEL, C1
#: controls, the Unicode line/paragraph separators, bidi embeddings/overrides/isolates
#: ("Trojan source") and the zero-width no-break space / BOM.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
#: The same less tab, newline and carriage return: what no exported free text (a reviewer's note or reason,
#: which keeps its lines) may carry. A bidi override in a note displays it reversed in every export.
TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def neutralise_cell(value: Any) -> Any:
    """Make a text cell inert in spreadsheets: prefix ``'`` when it starts with a formula trigger.

    Numbers stay numbers (a negative longitude is data, not a formula); only
    strings are touched, so every value round-trips except for the apostrophe.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def control_characters(text: str) -> list[str]:
    """The distinct control characters in ``text``, in order of first appearance."""
    return list(dict.fromkeys(_CONTROL.findall(text)))


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character written as a visible escape (``\\x00``, ``\\u202e``).

    ``keep_newlines`` leaves ``\\n`` alone (a multi-line raw record stays readable).
    """
    def _esc(m: re.Match[str]) -> str:
        ch = m.group(0)
        if keep_newlines and ch == "\n":
            return ch
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _CONTROL.sub(_esc, text)


def safe_text_cell(value: Any) -> Any:
    """A text cell for a CSV a person will open: controls escaped, formulas neutralised."""
    if isinstance(value, str):
        return neutralise_cell(escape_controls(value))
    return value


#: Letters and marks with no ASCII decomposition (NFKD leaves them whole), written as an ASCII-only reader writes
#: them: quotation marks of every language as ASCII quotes, dashes as hyphens, µ as u (as in "um"), × (a hybrid
#: formula) as x. Why the quotes and µ: a German name's „ and a processid's µ were written "U+201E" and "U+03BC"
#: into deflines and file names (e31 review F17).
_ASCII_LETTERS = str.maketrans({"Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "ß": "ss",
                                "Đ": "D", "đ": "d", "Ł": "L", "ł": "l", "Þ": "Th", "þ": "th", "Ð": "D", "ð": "d",
                                "ı": "i", "‘": "'", "’": "'", "‚": "'", "‛": "'", "‹": "'", "›": "'",
                                "“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"',
                                "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-",
                                "µ": "u", "μ": "u", "×": "x"})


def ascii_text(text: str) -> str:
    """``text`` in ASCII: accents dropped (``é`` → ``e``), letters with no decomposition transliterated (``Ø`` →
    ``O``, ``æ`` → ``ae``), anything else written as its code point (``U+2603``).

    Transliterated, not escaped: a name is read and searched by people ("Harpalinae gen. sp. Odegaard-1"), and an
    escape (``\\u00d8``) would become part of the name a receiver files. The exact text stays where UTF-8 is read
    (the Darwin Core archive, the CSV)."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", text.translate(_ASCII_LETTERS))
    return "".join(c if c.isascii() else f"U+{ord(c):04X}" for c in plain if not unicodedata.combining(c))
