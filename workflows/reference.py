"""Build a DNA-only model bundle from a labelled BIOSCAN-5M-layout dataset.

Why: real-data triage must work without GPU training. The k-mer profile
embedder + exact identity needs no weights; this fits the discovery engine
(reference index; P(right) per rank from a model trained on queries simulated
from the reference; novelty = P(species absent)) and writes
it as a model bundle ``biodiscover triage`` / ``evaluate`` load.

Default protocol: keys = train + key_unseen (every labelled species a user
would want named). The naming model is trained on queries simulated from the
keys (leave-one-barcode-out, leave-clade-out at every rank); val + val_unseen
and a seeded sample of other_heldout, when the dataset has them, are extra
labelled examples searched against the keys as they are. The fit also learns the reference's
barcode gap (the species distance cut triage clusters novel specimens with) and
the bundle stores it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np

from biodiscover.discovery.audit import RefusedKey
from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
from biodiscover.discovery.reference import KeyColumns
from biodiscover.storage.bundle import sha256_of_file
from biodiscover.storage.errors import InputError
from biodiscover.storage.progress import Progress, log_progress, messages
from biodiscover.storage.records import (AUTHORSHIP, OPEN_CF, OPEN_SP, SENSU_LATO, Specimen, listed, plural,
                                         read_species_label, resolve_splits)
from biodiscover.storage.validation import QuarantinedRecord

log = logging.getLogger(__name__)


#: What a labelled dataset must have to be a reference (or be scored against one): checked in the header
#: by the one loader (``storage.bioscan.iter_specimens``) before a row is read.
REFERENCE_COLUMNS = ("split", "dna_barcode")


def reference_quarantine_path(out: Path) -> Path:
    """Where ``build-reference`` reports the rows it set aside: ``<bundle>.quarantine.csv`` beside the bundle."""
    out = Path(out).absolute()
    return out.with_name(out.name + ".quarantine.csv")


def refused_keys(data: Path, records: Sequence[QuarantinedRecord]) -> list[RefusedKey]:
    """The quarantined rows of ``data`` that still hold a barcode of IUPAC bases and a name, as the bundle keeps them
    (``discovery.audit.RefusedKey``): each row's own cells, read back from its raw line with the file's header, the
    barcode cleaned as a key's is. Rows without one (a blank barcode, characters outside IUPAC) match nothing and
    are left out, as are barcodes under ``MIN_INFORMATIVE`` called bases (no identity is measured over fewer); the
    report beside the bundle keeps every row."""
    import csv

    from biodiscover.storage.bioscan import find_metadata, read_header
    from biodiscover.storage.collections import sniff_format
    from biodiscover.storage.distance import MIN_INFORMATIVE
    from biodiscover.storage.validation import barcode_problems, clean_barcode

    rows = [r for r in records if r.raw and r.processid and not r.whole_file and not r.photo_only]
    if not rows:
        return []
    path = find_metadata(Path(data))
    header = read_header(path)
    delimiter = "\t" if sniff_format(path) == "tsv" else ","
    out: list[RefusedKey] = []
    for r in rows:
        cells = dict(zip(header, next(csv.reader([r.raw], delimiter=delimiter), [])))
        barcode = clean_barcode(cells.get("dna_barcode") or "", None)
        name = cells.get("species") or None
        bad = {kind for kind, _ in barcode_problems(barcode, min_length=0)}
        if len(barcode.replace("N", "")) < MIN_INFORMATIVE or bad or not name:
            continue
        out.append(RefusedKey(str(r.processid), name, cells.get("genus") or None, r.reason, barcode))
    return out


def sample(specimens: Sequence[Specimen], n: int, seed: int) -> list[Specimen]:
    if len(specimens) <= n:
        return list(specimens)
    idx = np.random.default_rng(seed).choice(len(specimens), size=n, replace=False)
    return [specimens[i] for i in sorted(idx)]


def build_reference(data: Path, out: Path, *, keys: str = "train+key_unseen", calibration: str = "val+val_unseen",
                    calibration_keys: str | None = "train", outliers: str = "other_heldout",
                    max_outliers: int = 3000, seed: int = 0, config: EngineConfig | None = None,
                    overwrite: bool = False, progress: Progress | None = None,
                    exclude_processids: Collection[str] = (), images: bool | None = None,
                    quarantine: list[QuarantinedRecord] | None = None) -> DiscoveryModel:
    """Fit the k-mer discovery engine on ``data`` and save it as a bundle at ``out``.

    Input is validated exactly like ``ingest`` (``storage.bioscan.load_specimens``): rows set
    aside are written to :func:`reference_quarantine_path` (and appended to
    ``quarantine`` for the caller), never fitted.

    ``exclude_processids``: specimens never used for fitting (e.g. those of the
    collection about to be triaged, so the novelty detector has not seen its
    species). ``images``: also fit the image classifier (image-only naming and
    DNA+image fusion in triage); None = when ``out`` already holds trained
    encoders (``biodiscover train``) and the dataset has images.
    """
    from biodiscover.storage.bioscan import iter_specimens
    from biodiscover.storage.bundle import MANIFEST
    from biodiscover.storage.validation import (
        check_output_path,
        is_quarantine_report,
        unwritable_place,
        write_quarantine,
    )

    report = progress or log_progress(log)
    say = messages(report, "reference")
    t0 = time.perf_counter()
    try:
        key_splits = resolve_splits(keys)
        # an empty expression means "no calibration" (as for outliers), not every split; a key split is
        # never also searched as calibration: its specimens would find themselves at 100 % identity
        asked = resolve_splits(calibration) if calibration else ()
        cal_splits = tuple(sp for sp in asked if sp not in key_splits)
        needed = set(key_splits) | set(cal_splits)
        if outliers:  # an empty expression means "no outliers", not every split
            needed |= set(resolve_splits(outliers))
        if calibration_keys:
            needed |= set(resolve_splits(calibration_keys))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    # the bundle asked for first: its report beside it would fail on the same folder, naming the wrong thing
    unwritable = unwritable_place(Path(out) / MANIFEST)
    if unwritable is not None:
        raise InputError(f"{out}: cannot write the bundle: {unwritable}")
    qpath = reference_quarantine_path(out)
    check_output_path(qpath, what="quarantine report", force=overwrite, ours=is_quarantine_report, new_folder=True)
    model = DiscoveryModel(config or EngineConfig())
    # The keys stream into compact columns (one per key split, joined in the order asked for); Specimen
    # objects are kept only for the calibration and outlier splits, and for the keys when the image
    # classifier will need them (a bundle with trained encoders).
    with_images = images is True or (images is None and not overwrite and _has_encoders(out))
    columns = {sp: KeyColumns() for sp in key_splits}
    kept_splits = set(cal_splits) | (set(resolve_splits(outliers)) if outliers else set())
    if with_images:  # cal_keys shape the image classifier only
        kept_splits |= set(key_splits) | (set(resolve_splits(calibration_keys)) if calibration_keys else set())
    if len(cal_splits) < len(asked):
        say(f"calibration splits {', '.join(sp for sp in asked if sp in key_splits)} are key splits: not also "
            "searched as calibration")
    say(f"reading {', '.join(sorted(needed))} from {data}")
    excluded = set(exclude_processids)
    set_aside: list[QuarantinedRecord] = []
    by_split: dict[str, list[Specimen]] = {}
    n_key_rows = 0
    key_rows: Counter[str] = Counter()  # per key split: why a named split of no row is said, not passed over
    readings: dict[str, Counter[str]] = {}  # rule -> species label as written -> keys it read
    for s in iter_specimens(data, "+".join(sorted(needed)), quarantine=set_aside, require=REFERENCE_COLUMNS):
        if s.processid in excluded:
            continue
        split = s.split or ""
        if split in columns:
            n_key_rows += 1
            key_rows[split] += 1
            if model.add_key(columns[split], s) and (rule := read_species_label(s.species)[1]):
                readings.setdefault(rule, Counter())[s.species or ""] += 1
        if split in kept_splits:
            by_split.setdefault(split, []).append(s)
    if quarantine is not None:
        quarantine.extend(set_aside)

    def pick(expr: str) -> list[Specimen]:
        return [s for sp in resolve_splits(expr) for s in by_split.get(sp, [])]

    if not n_key_rows:
        raise InputError(f"{data}: no specimens in the key splits {keys!r}")
    if empty := [sp for sp in key_splits if not key_rows[sp]]:
        # e31 review F14: --keys train+key_unseen on a CSV of no key_unseen row built silently, from train alone
        say(f"no specimens in key split{'s' * (len(empty) > 1)} {listed(empty)} (--keys {keys}): the keys are "
            + listed([f"{sp} ({key_rows[sp]:,})" for sp in key_splits if key_rows[sp]]) + "'s alone")
    ref_keys = columns[key_splits[0]]
    for sp in key_splits[1:]:
        ref_keys.extend(columns.pop(sp))
    if n_key_rows > len(ref_keys):
        log.warning("%d reference specimens without a usable barcode or any label were left out",
                    n_key_rows - len(ref_keys))
    ref = pick(keys) if with_images else []
    cal = pick("+".join(cal_splits)) if cal_splits else []
    if not cal:
        say(f"no specimens in the calibration splits {calibration!r}: the naming model learns from the "
            "reference alone (simulated queries)")
    out_l = sample(pick(outliers), max_outliers, seed) if outliers else []
    cal_keys = pick(calibration_keys) if calibration_keys and with_images else None
    read_lines = label_readings(readings)
    for line in read_lines:
        say(line)
    model.fit(ref_keys, cal, out_l, progress=say)
    model.refused_ = refused_keys(data, set_aside)  # kept in the bundle: triage says when a candidate matches one
    del columns, ref_keys
    fingerprint = {"data": str(Path(data).resolve()), "keys": keys, "calibration": calibration,
                   # the data's content, not only its path and counts: other rows of the same count at the same path
                   # read as the same data (a dataset root, a folder, is its metadata's path alone)
                   "sha256": sha256_of_file(Path(data)) if Path(data).is_file() else None,
                   "calibration_splits": list(cal_splits),
                   "calibration_keys": calibration_keys, "outliers": outliers, "max_outliers": max_outliers,
                   "seed": seed, "n_keys": n_key_rows, "n_calibration": len(cal), "n_outliers": len(out_l)}
    if excluded:
        fingerprint["excluded_processids"] = len(excluded)
    if readings:  # what `info` shows of the labels read otherwise than written
        fingerprint["species_labels_read"] = "; ".join(
            f"{rule} {plural(sum(c.values()), 'key')} ({plural(len(c), 'label')})"
            for rule in _READINGS if (c := readings.get(rule)))
    model.save(out, fingerprint=fingerprint, overwrite=overwrite)
    if images is not False and _has_encoders(out):
        fit_image_classifier(data, out, ref, cal, cal_keys, progress=report, required=bool(images))
    elif images:
        raise InputError(f"{out}: no trained encoders in the bundle; run `biodiscover train --out {out}` first "
                         "to name specimens from images")
    if set_aside:
        write_quarantine(set_aside, qpath, force=overwrite)  # the caller says so, once, with the path
    say(f"bundle written to {out} in {time.perf_counter() - t0:.1f}s")
    return model


def applied_settings(record: Mapping[str, Any], *, image_classifier: bool) -> dict[str, Any]:
    """The settings of a reference's record (``build_reference``'s fingerprint) that shaped the bundle, as ``info``
    prints them: a setting of a part never fitted is left out (no calibration splits: none of calibration's; no
    outliers: neither ``max_outliers`` nor their count; ``calibration_keys`` only where the image classifier was
    fitted with calibration specimens, the one part it shapes), a content hash only where the data was one file
    (shortened: the JSON keeps it whole).

    Why: a DNA-only bundle built with ``--calibration '' --outliers ''`` showed "calibration=, calibration_keys=
    train, outliers=, max_outliers=3000, … n_calibration=0, n_outliers=0", settings of parts it never fitted, read
    as if they had acted (e33 review F14). ``info --json`` prints the whole record."""
    left_out = set()
    if not record.get("calibration"):
        left_out |= {"calibration", "n_calibration"}
    if not (image_classifier and record.get("n_calibration")):
        left_out.add("calibration_keys")
    if not record.get("outliers"):
        left_out |= {"outliers", "max_outliers", "n_outliers"}
    if not record.get("sha256"):
        left_out.add("sha256")
    return {k: f"{v[:16]}…" if k == "sha256" else v for k, v in record.items()
            if k not in left_out and not isinstance(v, (dict, list))}


#: What build-reference says of each rule of ``storage.records.read_species_label`` that read a key's species.
_READINGS = {
    AUTHORSHIP: "species labels written with their author: {keys} of {labels} ({examples}) read as {species} "
                "without it",
    OPEN_SP: 'open-nomenclature labels "sp.": {keys} of {labels} ({examples}) name no species: keys of their genus '
             "only",
    OPEN_CF: 'labels "cf."/"aff."/"nr.": {keys} of {labels} ({examples}) name no species (compared with one, not '
             "determined as it): keys of their genus only",
    SENSU_LATO: 'labels "s.l."/"s. str."/"agg.": {keys} of {labels} ({examples}) read as {species}',
}


def label_readings(readings: dict[str, Counter[str]]) -> list[str]:
    """One line per rule that read reference keys' species otherwise than written: how many keys and labels, the
    commonest labels, and what they became. Why: a reference built from a collection database's export split
    *Coccinella septempunctata* in two by its author and made "Bembidion sp." a species, and nothing said so (e31
    F25)."""
    lines = []
    for rule, text in _READINGS.items():
        counts = readings.get(rule)
        if not counts:
            continue
        shown = [f'"{label}" {n}' for label, n in counts.most_common(3)]
        more = len(counts) - len(shown)
        species = {read_species_label(label)[0] for label in counts}
        lines.append(text.format(keys=plural(sum(counts.values()), "key"), labels=plural(len(counts), "label"),
                                 examples=listed(shown + ([f"{more} more"] if more else [])),
                                 species=plural(len(species), "species", "species")))
    return lines


def _has_encoders(bundle_dir: Path) -> bool:
    from biodiscover.encoders.embed import WEIGHTS_NAME
    from biodiscover.storage.bundle import MANIFEST, Bundle

    return (Path(bundle_dir) / MANIFEST).is_file() and WEIGHTS_NAME in Bundle.open(bundle_dir).names("weights")


def fit_image_classifier(data: Path, out: Path, ref: Sequence[Specimen], cal: Sequence[Specimen],
                         cal_keys: Sequence[Specimen] | None, *, progress: Progress | None = None,
                         required: bool = False) -> bool:
    """Fit the image classifier (``discovery.multimodal``) with the bundle's own encoders; store it there.

    Returns False (and says why) when the dataset has no images for the keys or
    the calibration splits, unless ``required``.
    """
    from biodiscover.discovery.multimodal import CrossModalClassifier
    from biodiscover.encoders.embed import load_encoders

    report = progress or log_progress(log)
    say = messages(report, "reference")
    # The one loader (storage.bioscan.load_specimens) already attached each image that exists.
    ref_i, cal_i, keys_i = list(ref), list(cal), (list(cal_keys) if cal_keys is not None else None)
    n_ref = sum(s.image_path is not None for s in ref_i)
    n_cal = sum(s.image_path is not None for s in cal_i)
    if n_ref == 0 or n_cal == 0:
        msg = (f"{data}: no images for the keys ({n_ref}) or the calibration specimens ({n_cal}); "
               "image classifier not fitted")
        if required:
            raise InputError(msg)
        say(msg)
        return False
    say(f"image classifier: embedding {n_ref} key and {n_cal} calibration images")
    encoders = load_encoders(out)
    clf = CrossModalClassifier().fit(encoders, ref_i, cal_i, calibration_keys=keys_i)
    clf.save(out)
    say(f"image classifier thresholds: {', '.join(f'{r} {t:.2f}' for r, t in clf.thresholds_.items())}")
    # the most a photograph alone can be named at: a level above a rank's names no photograph there (the demo's
    # 178 calibration photographs read order 0.962 at most: none named at the level 0.98)
    if clf.p_right_ is not None:
        say("a photograph alone is named at the level by the P(right) calibrated from its image score, at most: "
            + ", ".join(f"{r} {float(m.p_.max()):.3f}" for r, m in clf.p_right_.items()))
    return True
