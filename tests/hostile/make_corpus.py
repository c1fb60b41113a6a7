"""Write the hostile-input corpus (run once; the small files it writes are committed).

Each file attacks one promise of docs/data-promises.md; ``EXPECTED`` in
``tests/test_hostile.py`` says what every verb must do with it. Files too big to
commit (a 10 MB barcode, a 20 MB line without a break) are made by the tests.

    python tests/hostile/make_corpus.py
"""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = "processid,sampleid,order,family,genus,species,dna_barcode,country,coord-lat,coord-lon"
RNG = random.Random(12)


def barcode(n: int = 420) -> str:
    return "".join(RNG.choice("ACGT") for _ in range(n))


def row(pid: str, *, species: str = "Megaselia sp1", bc: str | None = None, country: str = "Canada") -> str:
    genus = species.split()[0]
    return f"{pid},S-{pid},Diptera,Phoridae,{genus},{species},{bc or barcode()},{country},45.1,-75.2"


def write(name: str, lines: list[str], *, newline: str = "\n", bom: bool = False) -> None:
    data = newline.join(lines) + newline
    (HERE / name).write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))


def png(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width`` x ``height`` with one tiny IDAT: a decompression bomb to PIL."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


def main() -> None:
    species = [f"Megaselia sp{i % 4}" for i in range(49)]
    # 1. one stray quote on line 5 of a 49-row table (issue 12 item 3)
    rows = [row(f"SQ{i:03d}", species=species[i]) for i in range(49)]
    rows[3] = rows[3].replace(",Canada,", ',"Canada,')
    write("stray_quote.csv", [HEADER, *rows])
    # 2. a quote opened in the last row and never closed
    rows = [row(f"UQ{i:03d}") for i in range(5)]
    rows[-1] = rows[-1].replace(",S-UQ004,", ',"S-UQ004,')
    write("unclosed_last_line.csv", [HEADER, *rows])
    # 3. spreadsheet formulas in cells; the first four rows are also invalid (barcode too short)
    rows = [row('"=HYPERLINK(""http://evil.example"",""x"")"', bc="ACGT"), row("+SUM(A1:A9)", bc="ACGT"),
            row("@cmd|' /C calc'!A0", bc="ACGT"), row("-2+3", bc="ACGT"),
            row("FML001", country="=1+1"), row("FML002", country="+44 20")]
    write("formulas.csv", [HEADER, *rows])
    # 4. control characters: NUL, bidi override, bell, an ANSI escape; two clean rows
    rows = [row("CTL\x00001"), row("CTL\u202e002"), row("CTL003", country="Can\x07ada"),
            row("CTL004", species="Megaselia \x1b[31msp1"), row("CTL005"), row("CTL006")]
    write("control_chars.csv", [HEADER, *rows])
    # 5. a NUL in a FASTA header (not on line 1, which would make the whole file "binary")
    write("nul_header.fasta", [">FA001|Megaselia sp1", barcode(), ">FA\x00002|Megaselia sp1", barcode(),
                               ">FA003|Megaselia sp2", barcode()])
    # 6. barcodes: non-IUPAC characters, gaps and lower case (fine), all N, too short
    rows = [row("BC001", bc="ACGTXZ!!" + barcode(300)), row("BC002", bc="acg-t." + barcode(300).lower()),
            row("BC003", bc="N" * 500), row("BC004", bc="ACGTAC"), row("BC005")]
    write("bad_barcodes.csv", [HEADER, *rows])
    # 7. ten processids twice: five copies differing (both rows set aside: which is right cannot be known), five
    # exact repeats (the first kept, the repeat set aside); the differing copies of the last five are made and
    # dropped, so every later file draws the same barcodes
    firsts = [row(f"DUP{i:02d}") for i in range(10)]
    rows = firsts + [row(f"DUP{i:02d}", country="Peru") for i in range(10)][:5] + firsts[5:]
    write("duplicates.csv", [HEADER, *rows])
    # 8. one line that is not UTF-8
    lines = [HEADER, row("NU001"), row("NU002"), row("NU003")]
    data = ("\n".join(lines) + "\n").encode().replace(b"NU002,S-NU002", b"NU002,S-NU\xe9002")
    (HERE / "non_utf8.csv").write_bytes(data)
    # 9. byte-order mark and CRLF line ends: a valid file
    write("crlf_bom.csv", [HEADER, row("CR001"), row("CR002"), row("CR003")], newline="\r\n", bom=True)
    # 10. blank lines between rows, and a row with the wrong number of fields
    write("blank_lines.csv", [HEADER, row("BL001"), "", row("BL002"), "   ", row("BL003") + ",extra", row("BL004")])
    # 11. photographs: one good, a decompression bomb, a truncated JPEG, text named .jpg
    images = HERE / "images_images"
    images.mkdir(exist_ok=True)
    good = HERE.parent / "fixtures" / "readers" / "images" / "COLL001-24.jpg"
    (images / "IMG001.jpg").write_bytes(good.read_bytes())
    (images / "IMG002.png").write_bytes(png(40_000, 40_000))
    (images / "IMG003.jpg").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])
    (images / "IMG004.jpg").write_text("not a photograph\n")
    write("images.csv", [HEADER, *(row(f"IMG{i:03d}") for i in range(1, 5))])
    # 12. files that are no collection at all
    (HERE / "empty.csv").write_bytes(b"")
    write("header_only.csv", [HEADER])
    write("no_processid.csv", ["id,dna_barcode", "X1," + barcode()])
    write("header_quote.csv", ['processid,"dna_barcode', "HQ1," + barcode()])
    (HERE / "zip_archive.csv").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    (HERE / "binary.csv").write_bytes(bytes(RNG.randrange(256) for _ in range(4096)))
    # 13. rows appended to a generated reference dataset (tests/test_hostile.py): barcodes with XZ!!, 50
    #     processids that repeat the dataset's P00001..P00050 with other labels, a NUL, a stray quote
    ref = ["processid,order,family,genus,species,dna_barcode,split"]
    ref += [f"XZ{i:03d},Ord,Fam0,Gen0,Gen0 sp0,ACGTXZ!!{barcode(392)},train" for i in range(5)]
    ref += [f"P{i:05d},Ord,Fam1,Gen9,Gen9 sp9,{barcode(400)},train" for i in range(1, 51)]
    ref += [f"NUL\x00{i},Ord,Fam0,Gen0,Gen0 sp0,{barcode(400)},train" for i in range(2)]
    ref += [f'QT001,Ord,"Fam0,Gen0,Gen0 sp0,{barcode(400)},train']
    write("reference_rows.csv", ref)
    # 14. damaged bundle manifests for `info`
    base = {"format": "biodiscover-bundle", "format_version": 1, "created": "2026-12-01T00:00:00+00:00",
            "config": {"name": "tiny"}, "packages": {"biodiscover": "0.1.0"}, "data_fingerprint": {},
            "metrics": {}, "files": {"weights": {}, "arrays": {}, "tables": {}}}
    import json

    for name, change in (("config_list", {"config": ["k", 8]}), ("config_string", {"config": "tiny"}),
                         ("packages_list", {"packages": ["torch"]}),
                         ("metrics_nested_garbage", {"metrics": {"evaluation": {"retrieval": [1, 2]},
                                                                 "training": "fast"}}),
                         ("version_string", {"format_version": "1"}), ("version_float", {"format_version": 1.5})):
        folder = HERE / "bundles" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bundle.json").write_text(json.dumps({**base, **change}, indent=2))


if __name__ == "__main__":
    main()
