"""Frozen configuration dataclasses for the encoders, loaded from preset JSON files.

Why data files: like open_clip's model configs, a preset is reviewable data, not
code; ``tiny`` keeps tests to seconds, ``small`` fits the CPU demo budget and
``base`` is the paper size (BarcodeBERT 8-4-4, k=8, hidden 768; ViT-B-like image
tower) for a GPU. The whole config is stored in the model bundle so a bundle
rebuilds exactly the modules whose weights it carries.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

PRESETS_DIR = Path(__file__).resolve().parent / "presets"

T = TypeVar("T", bound="DataclassInstance")


@dataclass(frozen=True)
class DNAConfig:
    """BarcodeBERT-style transformer over non-overlapping k-mers."""

    k: int = 4
    max_nucleotides: int = 660
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    ff: int = 128
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 12:
            raise ValueError(f"dna.k must be in 1..12, got {self.k}")
        if self.hidden % self.heads:
            raise ValueError(f"dna.hidden ({self.hidden}) must be divisible by dna.heads ({self.heads})")


@dataclass(frozen=True)
class ImageConfig:
    """Image tower: ``cnn`` (default), ``vit`` (small ViT) or ``timm`` (local weights only)."""

    arch: str = "cnn"
    image_size: int = 64
    channels: tuple[int, ...] = (16, 32, 64)
    patch: int = 8
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    timm_name: str | None = None
    timm_weights: str | None = None

    def __post_init__(self) -> None:
        if self.arch not in ("cnn", "vit", "timm"):
            raise ValueError(f"image.arch must be cnn, vit or timm, got {self.arch!r}")
        if self.arch == "vit" and self.image_size % self.patch:
            raise ValueError(f"image.image_size ({self.image_size}) must be a multiple of image.patch ({self.patch})")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))


@dataclass(frozen=True)
class TextConfig:
    """Taxonomy-string encoder: one token per rank, summed with rank embeddings."""

    hidden: int = 64
    dropout: float = 0.1


@dataclass(frozen=True)
class AlignConfig:
    """Shared embedding space and contrastive loss settings (CLIBD-style)."""

    embed_dim: int = 64
    temperature: float = 0.07
    learn_temperature: bool = True
    modalities: tuple[str, ...] = ("dna", "image", "text")

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        bad = set(self.modalities) - {"dna", "image", "text"}
        if bad:
            raise ValueError(f"align.modalities has unknown modality {sorted(bad)}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings for both stages (DNA masked-token pretraining, alignment)."""

    seed: int = 0
    batch_size: int = 32
    pretrain_epochs: int = 1
    align_epochs: int = 1
    pretrain_lr: float = 1e-3
    align_lr: float = 1e-3
    weight_decay: float = 0.01
    mask_ratio: float = 0.5
    pretrain_splits: tuple[str, ...] = ("pretrain", "other_heldout")
    align_splits: tuple[str, ...] = ("train", "pretrain")
    max_pretrain_specimens: int | None = None
    max_align_specimens: int | None = None
    num_workers: int = 0
    eval_max_queries: int = 2000

    def __post_init__(self) -> None:
        object.__setattr__(self, "pretrain_splits", tuple(self.pretrain_splits))
        object.__setattr__(self, "align_splits", tuple(self.align_splits))
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"train.mask_ratio must be in (0, 1), got {self.mask_ratio}")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild and retrain the encoders."""

    name: str = "custom"
    dna: DNAConfig = field(default_factory=DNAConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    text: TextConfig = field(default_factory=TextConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Build from a (possibly partial) dict; unknown keys are an error, not ignored."""
        sections = {"dna": DNAConfig, "image": ImageConfig, "text": TextConfig, "align": AlignConfig,
                    "train": TrainConfig}
        unknown = set(data) - set(sections) - {"name"}
        if unknown:
            raise ValueError(f"unknown config section(s): {sorted(unknown)}")
        kwargs: dict[str, Any] = {"name": str(data.get("name", "custom"))}
        for key, klass in sections.items():
            kwargs[key] = _build(klass, data.get(key, {}), key)
        return cls(**kwargs)

    def replace(self, **sections: Mapping[str, Any]) -> "ModelConfig":
        """A copy with some section fields overridden, e.g. ``replace(train={"align_epochs": 2})``."""
        data = self.to_dict()
        for key, values in sections.items():
            if key == "name":
                data["name"] = values
            else:
                data[key] = {**data[key], **dict(values)}
        return ModelConfig.from_dict(data)


def _build(klass: type[T], values: Mapping[str, Any], section: str) -> T:
    names = {f.name for f in fields(klass)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown key(s) in config section {section!r}: {sorted(unknown)}")
    return klass(**values)


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


def load_preset(name_or_path: str | Path) -> ModelConfig:
    """Load a preset by name (``tiny``, ``small``, ``base``) or from a JSON file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(f"unknown preset {str(name_or_path)!r} (available: {', '.join(available_presets())})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    data.setdefault("name", path.stem)
    return ModelConfig.from_dict(data)
