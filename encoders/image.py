"""Image tower and preprocessing in PIL + torch (no torchvision in the default install).

Preprocessing follows BIOSCAN-5M's recipe: resize, crop, random flips and
rotation for training, then normalisation with the dataset's RGB mean/std
(``storage.records.RGB_MEAN`` / ``RGB_STDEV``). Models: a small CNN (default,
trains from scratch on CPU), a small ViT, or a timm backbone loaded only from a
LOCAL safetensors file (extra ``timm``; never downloads, never unpickles).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn

from biodiscover.encoders.config import ImageConfig
from biodiscover.storage.errors import InputError, ModelBundleError
from biodiscover.storage.records import RGB_MEAN, RGB_STDEV

log = logging.getLogger(__name__)

_MEAN = torch.tensor(RGB_MEAN).view(3, 1, 1)
_STD = torch.tensor(RGB_STDEV).view(3, 1, 1)
_FILL = tuple(int(round(255 * m)) for m in RGB_MEAN)


def load_image(path: Path | str) -> Image.Image:
    """Open an image as RGB, or raise :class:`InputError` naming the file."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise InputError(f"{path}: image file not found") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: unreadable image ({exc})") from exc


class ImageTransform:
    """PIL image → normalised float tensor [3, size, size].

    ``train=True`` adds random resized crop (scale 0.7–1), horizontal/vertical
    flips and a rotation of up to ``max_rotation`` degrees — specimens are
    photographed in arbitrary orientation on a plate.
    """

    def __init__(self, size: int, train: bool = False, max_rotation: float = 30.0, seed: int | None = None) -> None:
        self.size = size
        self.train = train
        self.max_rotation = max_rotation
        self.rng = random.Random(seed)

    def __call__(self, img: Image.Image, rng: random.Random | None = None) -> torch.Tensor:
        """``rng``: the draws of this one item (``data.item_rng``); without it, the transform's own generator."""
        if self.train:
            rng = rng or self.rng
            img = self._random_resized_crop(img, rng)
            if rng.random() < 0.5:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if rng.random() < 0.5:
                img = img.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
            angle = rng.uniform(-self.max_rotation, self.max_rotation)
            img = img.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=_FILL)
        else:
            img = self._resize_center_crop(img)
        return to_tensor(img)

    def _resize_center_crop(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        scale = self.size / min(w, h)
        nw, nh = max(self.size, round(w * scale)), max(self.size, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BILINEAR)
        left, top = (nw - self.size) // 2, (nh - self.size) // 2
        return img.crop((left, top, left + self.size, top + self.size))

    def _random_resized_crop(self, img: Image.Image, rng: random.Random) -> Image.Image:
        w, h = img.size
        side = min(w, h) * (rng.uniform(0.7, 1.0) ** 0.5)
        left = rng.uniform(0, w - side)
        top = rng.uniform(0, h - side)
        box = (round(left), round(top), round(left + side), round(top + side))
        return img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image → [3, H, W] float tensor normalised with BIOSCAN-5M mean/std."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    return (tensor - _MEAN) / _STD


class SmallCNN(nn.Module):
    """Conv-BN-ReLU stages with max-pooling, global average pool: trains on CPU in minutes."""

    def __init__(self, config: ImageConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for out_ch in config.channels:
            layers += [
                nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
                nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.output_dim = in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


class SmallViT(nn.Module):
    """Patch embedding + class token + pre-norm transformer (ViT-B when hidden 768, 12 layers)."""

    def __init__(self, config: ImageConfig) -> None:
        super().__init__()
        n_patches = (config.image_size // config.patch) ** 2
        self.patch_embed = nn.Conv2d(3, config.hidden, config.patch, stride=config.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden))
        self.pos_embed = nn.Parameter(torch.randn(1, n_patches + 1, config.hidden) * 0.02)
        layer = nn.TransformerEncoderLayer(
            config.hidden, config.heads, 4 * config.hidden, config.dropout, batch_first=True, norm_first=True,
            activation="gelu"
        )
        self.blocks = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.hidden)
        self.output_dim = config.hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))[:, 0]


class TimmBackbone(nn.Module):
    """A timm model (``num_classes=0``) with weights from a local safetensors file.

    Import guarded: the default install has no timm. Never downloads
    (``pretrained=False``) and never unpickles (safetensors only).
    """

    def __init__(self, config: ImageConfig, load_weights: bool = True) -> None:
        super().__init__()
        try:
            import timm
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise ModelBundleError("image.arch 'timm' needs the optional extra: "
                                   "pip install 'biodiscover[timm]'") from exc
        if not config.timm_name:
            raise ModelBundleError("image.arch 'timm' needs image.timm_name")
        self.model = timm.create_model(config.timm_name, pretrained=False, num_classes=0)
        if load_weights and config.timm_weights:
            from safetensors.torch import load_file

            path = Path(config.timm_weights)
            if path.suffix != ".safetensors" or not path.is_file():
                raise ModelBundleError(f"{path}: timm weights must be a local .safetensors file")
            missing, unexpected = self.model.load_state_dict(load_file(str(path)), strict=False)
            log.info("timm %s: loaded %s (missing %d, unexpected %d keys)", config.timm_name, path, len(missing),
                     len(unexpected))
        self.output_dim = int(self.model.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_image_encoder(config: ImageConfig, load_weights: bool = True) -> nn.Module:
    """The image tower named by ``config.arch``; each exposes ``output_dim``."""
    if config.arch == "cnn":
        return SmallCNN(config)
    if config.arch == "vit":
        return SmallViT(config)
    return TimmBackbone(config, load_weights=load_weights)
