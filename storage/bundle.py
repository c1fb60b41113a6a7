"""Model bundle: a directory of safetensors weights, named arrays and JSON tables.

Layout::

    bundle.json                 format version, config, package versions, data fingerprint,
                                metrics, and the list of files with their sha256
    weights/<name>.safetensors  torch state dicts (encoders)
    arrays/<name>.safetensors   named numpy arrays (e.g. reference embeddings, added by discovery)
    tables/<name>.json          JSON tables (taxonomy table, calibration thresholds, vocabularies)

Why this shape: loading never unpickles (safetensors and JSON only, so a bundle
from a stranger cannot run code), tensors are stored on CPU so a CPU-trained
bundle loads on a GPU and back, and every file is hashed so a half-copied bundle
is refused with a clear message instead of producing silent garbage.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from biodiscover.storage.errors import ModelBundleError
from biodiscover.storage.jsonable import jsonable

log = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = 1
MANIFEST = "bundle.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_KINDS = {"weights": ".safetensors", "arrays": ".safetensors", "tables": ".json"}
_VERSIONED_PACKAGES = ("biodiscover", "torch", "numpy", "lightning", "safetensors", "faiss-cpu", "scikit-learn", "timm")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a bundle's numbers (absent ones omitted)."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Bundle:
    """A model bundle directory. Create with :meth:`create`, open with :meth:`open`.

    Writers (``save_*``) update ``bundle.json`` immediately, so the manifest on
    disk always lists exactly the files that are complete.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self.manifest = manifest

    # -- lifecycle ---------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: Path | str,
        *,
        config: Mapping[str, Any],
        fingerprint: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> "Bundle":
        """Start a new bundle at ``path`` (refuses to replace one unless ``overwrite``)."""
        path = Path(path)
        if (path / MANIFEST).exists() and not overwrite:
            raise ModelBundleError(f"{path}: a model bundle already exists (choose another --out or remove it)")
        if path.exists() and not path.is_dir():
            raise ModelBundleError(f"{path}: exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": "biodiscover-bundle",
            "format_version": BUNDLE_FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": dict(config),
            "packages": package_versions(),
            "data_fingerprint": dict(fingerprint or {}),
            "metrics": dict(metrics or {}),
            "files": {kind: {} for kind in _KINDS},
        }
        bundle = cls(path, manifest)
        bundle._write_manifest()
        return bundle

    @classmethod
    def open(cls, path: Path | str) -> "Bundle":
        """Open an existing bundle, checking its format and version."""
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise ModelBundleError(f"{path}: not a model bundle (no {MANIFEST})")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelBundleError(f"{manifest_path}: corrupt manifest ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != "biodiscover-bundle":
            raise ModelBundleError(f"{manifest_path}: not a biodiscover bundle manifest")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > BUNDLE_FORMAT_VERSION:
            raise ModelBundleError(
                f"{manifest_path}: bundle format version {version!r} is newer than this biodiscover supports "
                f"({BUNDLE_FORMAT_VERSION}); upgrade biodiscover"
            )
        manifest.setdefault("files", {})
        for kind in _KINDS:
            manifest["files"].setdefault(kind, {})
        return cls(path, manifest)

    # -- manifest sections -------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.manifest.get("metrics", {})

    @property
    def fingerprint(self) -> dict[str, Any]:
        return self.manifest.get("data_fingerprint", {})

    @property
    def packages(self) -> dict[str, str]:
        return self.manifest.get("packages", {})

    def names(self, kind: str) -> list[str]:
        """Names stored of one kind: ``weights``, ``arrays`` or ``tables``."""
        self._check_kind(kind)
        return sorted(self.manifest["files"][kind])

    def update_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Merge ``metrics`` (JSON-serialisable) into the manifest's metrics."""
        self.manifest.setdefault("metrics", {}).update(jsonable(dict(metrics)))
        self._write_manifest()

    def set_section(self, key: str, value: Any) -> None:
        """Store an extra JSON section in bundle.json (e.g. ``discovery`` settings)."""
        if key in ("format", "format_version", "files"):
            raise ValueError(f"{key!r} is reserved in bundle.json")
        self.manifest[key] = jsonable(value)
        self._write_manifest()

    # -- weights -----------------------------------------------------------------------
    def save_weights(self, name: str, state_dict: Mapping[str, Any]) -> Path:
        """Write a torch state dict as safetensors (tensors moved to CPU, made contiguous)."""
        from safetensors.torch import save

        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
        return self._store("weights", name, save(_untie(tensors)))

    def load_weights(self, name: str, device: str | Any = "cpu") -> dict[str, Any]:
        """Read a state dict; never unpickles. ``device`` may be ``cuda`` for a CPU-trained bundle."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        data = self._read("weights", name)
        try:
            tensors = load(data)
        except (SafetensorError, ValueError, OSError) as exc:
            raise ModelBundleError(
                f"{self._file('weights', name)}: not a safetensors file ({exc}); bundles never load pickled weights"
            ) from exc
        return {k: v.to(device) for k, v in tensors.items()}

    # -- arrays ------------------------------------------------------------------------
    def save_array(self, name: str, array: np.ndarray) -> Path:
        """Store a numeric numpy array (object arrays are refused: they would need pickle)."""
        from safetensors.numpy import save

        array = np.ascontiguousarray(array)
        if array.dtype == object:
            raise ModelBundleError(f"array {name!r}: object dtype cannot be stored without pickle; store strings in a table")
        return self._store("arrays", name, save({"data": array}))

    def load_array(self, name: str) -> np.ndarray:
        from safetensors import SafetensorError
        from safetensors.numpy import load

        try:
            return load(self._read("arrays", name))["data"]
        except (SafetensorError, ValueError, KeyError, OSError) as exc:
            raise ModelBundleError(f"{self._file('arrays', name)}: not a bundle array ({exc})") from exc

    # -- tables ------------------------------------------------------------------------
    def save_table(self, name: str, table: Any) -> Path:
        """Store any JSON-serialisable object (lists, dicts, numbers, strings)."""
        text = json.dumps(jsonable(table), ensure_ascii=False, indent=None, separators=(",", ":"))
        return self._store("tables", name, text.encode("utf-8"))

    def load_table(self, name: str) -> Any:
        try:
            return json.loads(self._read("tables", name).decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelBundleError(f"{self._file('tables', name)}: corrupt JSON table ({exc})") from exc

    # -- internals ---------------------------------------------------------------------
    def _check_kind(self, kind: str) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown bundle file kind {kind!r}")

    def _file(self, kind: str, name: str) -> Path:
        self._check_kind(kind)
        if not _NAME.match(name):
            raise ModelBundleError(f"invalid {kind} name {name!r} (letters, digits, '_', '.', '-')")
        return self.path / kind / f"{name}{_KINDS[kind]}"

    def _store(self, kind: str, name: str, data: bytes) -> Path:
        path = self._file(kind, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(path, data)
        self.manifest["files"][kind][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        self._write_manifest()
        log.debug("bundle %s: wrote %s", self.path, path.relative_to(self.path))
        return path

    def _read(self, kind: str, name: str) -> bytes:
        path = self._file(kind, name)
        entry = self.manifest["files"][kind].get(name)
        if entry is None:
            have = ", ".join(self.names(kind)) or "none"
            raise ModelBundleError(f"{self.path}: no {kind} named {name!r} (have: {have})")
        if not path.is_file():
            raise ModelBundleError(f"{path}: listed in {MANIFEST} but missing (incomplete copy?)")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise ModelBundleError(f"{path}: checksum mismatch with {MANIFEST} (file changed or truncated)")
        return data

    def _write_manifest(self) -> None:
        text = json.dumps(self.manifest, indent=2, sort_keys=False, ensure_ascii=False)
        _atomic_write_bytes(self.path / MANIFEST, (text + "\n").encode("utf-8"))


def _untie(tensors: dict[str, Any]) -> dict[str, Any]:
    """safetensors refuses shared storage; clone tensors that alias an earlier one."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for key, value in tensors.items():
        ident = (value.untyped_storage().data_ptr(), value.storage_offset())
        out[key] = value.clone() if ident in seen and value.numel() else value
        seen.add(ident)
    return out


