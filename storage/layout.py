"""Where a BIOSCAN-5M-layout dataset keeps its files: metadata, images, split names.

Why its own module: the collection reader (a dataset root handed to ``validate`` or
``triage``) and the metadata reader (``storage.bioscan``) both need to find a root's
metadata and images; with the layout here, below both, neither imports the other.
Nothing here reads a row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from biodiscover.storage.errors import InputError
from biodiscover.storage.records import DEFAULT_IMAGE_PACKAGE, chunk_for, resolve_splits

OFFICIAL_METADATA = Path("bioscan5m", "metadata", "csv", "BIOSCAN_5M_Insect_Dataset_metadata.csv")
METADATA_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".tsv", ".tsv.gz")


def wanted_splits(splits: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The split names a split, metasplit, ``a+b`` expression or list of them means; None = every split."""
    if splits is None or splits == "all":
        return None
    try:
        if isinstance(splits, str):
            return resolve_splits(splits)
        return tuple(s for part in splits for s in resolve_splits(part))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _metadata_candidates(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(METADATA_SUFFIXES))


def find_metadata(root: Path) -> Path:
    """The metadata file of a dataset root (our layout or the official ``bioscan5m/`` one)."""
    root = Path(root)
    if root.is_file():
        return root
    if not root.is_dir():
        raise InputError(f"{root}: no such metadata file or dataset directory")
    for official in (root / OFFICIAL_METADATA, root / OFFICIAL_METADATA.with_suffix(".csv.gz")):
        if official.is_file():
            return official
    for folder in (root / "metadata", root / "bioscan5m" / "metadata"):
        found = _metadata_candidates(folder)
        if len(found) > 1:
            named = [p for p in found if "metadata" in p.name.lower()]
            found = named if named else found
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InputError(
                f"{folder}: several metadata files ({', '.join(p.name for p in found[:5])}); pass the one to read"
            )
    raise InputError(
        f"{root}: no metadata found (looked for metadata/*.csv[.gz]|*.tsv and {OFFICIAL_METADATA})"
    )


def is_dataset_root(path: Path) -> bool:
    """A directory holding ``metadata/`` or the official ``bioscan5m/metadata``."""
    path = Path(path)
    return path.is_dir() and ((path / "metadata").is_dir() or (path / "bioscan5m" / "metadata").is_dir())


def find_image_dir(root: Path, package: str = DEFAULT_IMAGE_PACKAGE) -> Path | None:
    """``<root>/images/<package>`` or ``<root>/bioscan5m/images/<package>``, if present."""
    root = Path(root)
    for base in (root / "images", root / "bioscan5m" / "images"):
        if (base / package).is_dir():
            return base / package
    return None


def image_path(image_dir: Path | None, processid: str, split: str | None, chunk: str | None = None) -> Path | None:
    """Where the image of a specimen is expected under ``image_dir`` (whether or not it exists)."""
    if image_dir is None or not split:
        return None
    ch = chunk if chunk else chunk_for(processid, split)
    base = image_dir / split
    return (base / ch / f"{processid}.jpg") if ch else base / f"{processid}.jpg"
