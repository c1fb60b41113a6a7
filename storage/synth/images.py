"""Procedural insect photographs in the style of BIOSCAN-5M ``cropped_256``.

Why procedural and inherited: an image encoder can only learn taxonomy from
pictures if appearance follows the tree. Each node of the taxonomy perturbs a
latent trait vector of its parent (orders differ a lot, congeners little), so
congeneric species look alike; a few *cryptic* species copy a congener's traits
exactly and can only be told apart by DNA. Nuisance — pose, position, lighting,
background tint, sensor noise, individual variation — keeps the task from being
trivial. The drawing's organism mask gives the size columns, so
``image_measurement_value`` / ``scale_factor`` / ``area_fraction`` agree with
what is drawn.

Size convention (documented here because BIOSCAN's is only loosely described):
the "original" photo is 1024×768 at :data:`PX_PER_MM` pixels per millimetre; the
crop around the organism was resized so its shorter side is ``size`` px;
``scale_factor`` = crop shorter side / ``size``; ``area_fraction`` = crop area /
original area; ``image_measurement_value`` = organism pixels in the original
= organism pixels drawn in the saved image × ``scale_factor``².
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

ORIGINAL_SIZE = (1024, 768)
PX_PER_MM = 80.0
N_TRAITS = 18
#: Standard deviation of the trait perturbation added at each rank.
RANK_SPREAD = {"order": 1.0, "family": 0.65, "subfamily": 0.35, "genus": 0.35, "species": 0.2}
#: Order body plans: (wings drawn: 0 none/elytra, 1 one pair, 2 two pairs; wing style; antenna scale).
BODY_PLANS: dict[str, tuple[int, str, float]] = {
    "Diptera": (1, "narrow", 0.5),
    "Hymenoptera": (2, "narrow", 1.2),
    "Hemiptera": (2, "folded", 0.9),
    "Lepidoptera": (2, "broad", 1.0),
    "Coleoptera": (0, "elytra", 0.8),
    "Psocodea": (2, "folded", 1.3),
    "Thysanoptera": (2, "fringe", 0.6),
    "Trichoptera": (2, "folded", 1.6),
    "Orthoptera": (2, "folded", 1.8),
    "Blattodea": (0, "elytra", 1.7),
    "Ephemeroptera": (2, "broad", 0.3),
    "Neuroptera": (2, "broad", 1.0),
    "Plecoptera": (2, "folded", 1.2),
    "Odonata": (2, "narrow", 0.2),
    "Mantodea": (2, "folded", 0.7),
}


@dataclass(frozen=True)
class Traits:
    """Per-species appearance: latent traits (n, N_TRAITS), body plan per species,
    pattern kind per species (0 plain, 1 banded, 2 spotted)."""

    latent: np.ndarray
    n_wing_pairs: np.ndarray
    wing_style: np.ndarray
    antenna_scale: np.ndarray
    pattern: np.ndarray
    cryptic_of: np.ndarray  # species id whose look it copies, or -1


def species_traits(taxa: pd.DataFrame, rng: np.random.Generator, cryptic_fraction: float) -> Traits:
    """Inherit latent traits down order → family → subfamily → genus → species."""
    dim = N_TRAITS
    node_vec: dict[int, np.ndarray] = {}
    node_pattern: dict[int, int] = {}

    def vec(node: int, parent: np.ndarray | None, rank: str) -> np.ndarray:
        if node not in node_vec:
            base = np.zeros(dim) if parent is None else parent
            node_vec[node] = base + rng.normal(0, RANK_SPREAD[rank], size=dim)
        return node_vec[node]

    n = len(taxa)
    latent = np.empty((n, dim))
    pattern = np.empty(n, dtype=np.int64)
    for i, row in enumerate(taxa.itertuples(index=False)):
        o = vec(row.order_id, None, "order")
        f = vec(row.family_id, o, "family")
        s = vec(row.subfamily_id, f, "subfamily")
        g = vec(row.genus_id, s, "genus")
        latent[i] = g + rng.normal(0, RANK_SPREAD["species"], size=dim)
        if row.family_id not in node_pattern:
            node_pattern[row.family_id] = int(rng.choice(3, p=[0.4, 0.35, 0.25]))
        if row.genus_id not in node_pattern:
            fp = node_pattern[row.family_id]
            node_pattern[row.genus_id] = fp if rng.random() < 0.85 else int(rng.integers(3))
        pattern[i] = node_pattern[row.genus_id]
    cryptic_of = np.full(n, -1, dtype=np.int64)
    genus_ids = taxa["genus_id"].to_numpy()
    template = np.zeros(n, dtype=bool)
    for c in np.flatnonzero(rng.random(n) < cryptic_fraction).tolist():
        if template[c]:
            continue  # already copied by a cryptic sibling; keep its look stable
        congeners = np.flatnonzero((genus_ids == genus_ids[c]) & (np.arange(n) != c) & (cryptic_of == -1))
        if len(congeners):
            j = int(rng.choice(congeners))
            latent[c] = latent[j]
            pattern[c] = pattern[j]
            cryptic_of[c] = j
            template[j] = True
    plans = [BODY_PLANS.get(o, (2, "folded", 1.0)) for o in taxa["order"]]
    return Traits(
        latent=latent,
        n_wing_pairs=np.array([p[0] for p in plans]),
        wing_style=np.array([p[1] for p in plans]),
        antenna_scale=np.array([p[2] for p in plans]),
        pattern=pattern,
        cryptic_of=cryptic_of,
    )


def body_length_mm(latent: np.ndarray) -> np.ndarray:
    """Species body length (mm) from the size trait: ≈0.8–10 mm, median ≈2.5 mm."""
    return 2.5 * np.exp(0.55 * latent[..., 0])


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 20) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


@dataclass
class Rendered:
    image: Image.Image
    organism_pixels: int


def render(latent: np.ndarray, n_wing_pairs: int, wing_style: str, antenna_scale: float,
           pattern: int, rng: np.random.Generator, size: int = 256) -> Rendered:
    """Draw one specimen. ``latent`` already includes individual variation."""
    w, h = int(round(size * 4 / 3)), size
    t = latent
    # Body in its own frame: x along the body (head at +x), unit = body length.
    abd_len = 0.45 + 0.08 * math.tanh(t[1])
    abd_w = 0.10 + 0.05 * _sig(t[2])
    thx_len = 0.22 + 0.05 * math.tanh(t[3])
    thx_w = 0.09 + 0.04 * _sig(t[3] + t[2])
    head_r = 0.06 + 0.03 * _sig(t[4])
    leg_len = 0.25 + 0.25 * _sig(t[5])
    ant_len = antenna_scale * (0.12 + 0.25 * _sig(t[6]))
    wing_len = 0.45 + 0.35 * _sig(t[7])
    hue = _sig(t[8]) * 0.16 + (0.55 if t[9] > 1.2 else 0.0)  # browns/yellows, rarely blue-green
    body_rgb = _rgb(hue, 0.35 + 0.5 * _sig(t[10]), 0.15 + 0.6 * _sig(t[11]))
    pat_rgb = _rgb(hue + 0.1 * t[12], 0.5 + 0.4 * _sig(t[12]), 0.35 + 0.6 * _sig(-t[11]))
    wing_alpha = int(40 + 120 * _sig(t[13]))
    wing_rgb = _rgb(hue, 0.2 * _sig(t[13]), 0.55 + 0.4 * _sig(t[14]))
    n_bands = 3 + int(4 * _sig(t[15]))
    leg_w = max(1, int(round(size * (0.006 + 0.008 * _sig(t[16])))))

    # Pose and scale nuisance: organism spans ~70–85% of the crop, any rotation.
    body_px = h * rng.uniform(0.62, 0.8)
    angle = rng.uniform(0, 2 * np.pi)
    ca, sa = math.cos(angle), math.sin(angle)
    cx = w / 2 + rng.normal(0, w * 0.03)
    cy = h / 2 + rng.normal(0, h * 0.03)

    def tf(pts: np.ndarray) -> list[tuple[float, float]]:
        x = pts[:, 0] - 0.05  # centre the body roughly on the thorax
        y = pts[:, 1]
        return list(zip((cx + body_px * (ca * x - sa * y)).tolist(), (cy + body_px * (sa * x + ca * y)).tolist()))

    # Background: pale, slightly tinted, with a lighting gradient and noise (BIOSCAN plates are near white).
    bg = np.array(_rgb(rng.uniform(0.05, 0.15), rng.uniform(0.02, 0.12), rng.uniform(0.78, 0.95)), dtype=np.float32)
    img = Image.new("RGB", (w, h), tuple(int(c) for c in bg))
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img, "RGBA")
    m = ImageDraw.Draw(mask)

    thorax_x = 0.05
    abd_cx = thorax_x - thx_len / 2 - abd_len / 2 + 0.02
    head_cx = thorax_x + thx_len / 2 + head_r * 0.8

    def poly(pts: np.ndarray, fill: tuple[int, ...], alpha: int = 255) -> None:
        p = tf(pts)
        d.polygon(p, fill=fill + (alpha,))
        m.polygon(p, fill=255)

    def line(pts: np.ndarray, fill: tuple[int, ...], width: int) -> None:
        p = tf(pts)
        d.line(p, fill=fill + (255,), width=width, joint="curve")
        m.line(p, fill=255, width=width)

    # Legs (3 pairs) and antennae under the body.
    leg_dark = tuple(int(c * 0.7) for c in body_rgb)
    for k, lx in enumerate((thorax_x + thx_len * 0.3, thorax_x, thorax_x - thx_len * 0.3)):
        for side in (-1, 1):
            spread = (0.6 - 0.6 * k) + rng.normal(0, 0.08)
            knee = np.array([lx + 0.3 * leg_len * math.sin(spread), side * (thx_w + 0.35 * leg_len)])
            foot = knee + np.array([0.5 * leg_len * math.sin(spread * 1.4) - 0.1 * leg_len * k,
                                    side * 0.45 * leg_len])
            line(np.array([[lx, 0.0], knee, foot]), leg_dark, leg_w)
    for side in (-1, 1):
        bend = rng.normal(0, 0.1)
        mid = np.array([head_cx + head_r + ant_len * 0.5, side * (head_r * 0.6 + ant_len * (0.3 + bend))])
        tip = np.array([head_cx + head_r + ant_len, side * (head_r + ant_len * (0.55 + bend))])
        line(np.array([[head_cx + head_r * 0.7, side * head_r * 0.4], mid, tip]), leg_dark, max(1, leg_w - 1))

    # Body: abdomen with bands/spots, thorax, head, eyes.
    poly(_ellipse(abd_cx, 0, abd_len / 2, abd_w), body_rgb)
    if pattern == 1:
        for b in range(n_bands):
            bx = abd_cx - abd_len / 2 + abd_len * (b + 0.5) / n_bands
            band = np.array([[bx - 0.3 * abd_len / n_bands, -abd_w], [bx + 0.15 * abd_len / n_bands, -abd_w],
                             [bx + 0.15 * abd_len / n_bands, abd_w], [bx - 0.3 * abd_len / n_bands, abd_w]])
            # clip band to the abdomen ellipse approximately by scaling its half-width
            frac = max(0.0, 1 - ((bx - abd_cx) / (abd_len / 2)) ** 2) ** 0.5
            band[:, 1] *= frac * 0.95
            poly(band, pat_rgb)
    elif pattern == 2:
        for b in range(n_bands):
            bx = abd_cx - abd_len / 3 + (abd_len * 0.66) * b / max(n_bands - 1, 1)
            for side in (-1, 1):
                poly(_ellipse(bx, side * abd_w * 0.45, abd_w * 0.22, abd_w * 0.22, 10), pat_rgb)
    poly(_ellipse(thorax_x, 0, thx_len / 2, thx_w), tuple(int(c * 0.85) for c in body_rgb))
    poly(_ellipse(head_cx, 0, head_r, head_r * 1.1), tuple(int(c * 0.9) for c in body_rgb))
    eye_rgb = _rgb(0.02 + 0.05 * _sig(t[17]), 0.8, 0.3 + 0.4 * _sig(t[17]))
    for side in (-1, 1):
        poly(_ellipse(head_cx + head_r * 0.3, side * head_r * 0.65, head_r * 0.45, head_r * 0.4, 12), eye_rgb)

    # Wings over the body (translucent), or elytra (opaque covers) for beetle-like plans.
    if wing_style == "elytra":
        for side in (-1, 1):
            el = _ellipse(abd_cx + 0.03, side * abd_w * 0.5, abd_len * 0.55, abd_w * 0.55)
            poly(el, tuple(int(c * 0.95) for c in pat_rgb) if pattern else body_rgb)
    else:
        wide = {"broad": 0.32, "narrow": 0.12, "folded": 0.09, "fringe": 0.05}[wing_style]
        spread = {"broad": 0.9, "narrow": 0.45, "folded": 0.12, "fringe": 0.2}[wing_style]
        for pair in range(n_wing_pairs):
            wl = wing_len * (1.0 if pair == 0 else 0.75)
            for side in (-1, 1):
                a = side * (spread + rng.normal(0, 0.05) + 0.25 * pair)
                base = np.array([thorax_x + 0.02, 0.0])
                pts = _ellipse(-wl / 2, 0, wl / 2, wide * (1.0 if pair == 0 else 0.8) / 2, 18)
                # Wings hinge on the thorax and sweep back over the abdomen (−x), opened by ``a``.
                rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
                pts = pts @ rot.T + base
                poly(pts, wing_rgb, wing_alpha)
                if pattern == 2 and wing_style == "broad":
                    spot = pts.mean(axis=0)
                    poly(_ellipse(spot[0], spot[1], wide * 0.15, wide * 0.15, 10), pat_rgb, 200)

    # Lighting gradient, exposure and sensor noise.
    arr = np.asarray(img, dtype=np.float32)
    gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None, None]
    light = rng.uniform(0.85, 1.1) + rng.uniform(-0.08, 0.08) * gx + rng.uniform(-0.08, 0.08) * gy
    arr = arr * light.astype(np.float32) + 4.0 * rng.standard_normal(size=(h, w, 1), dtype=np.float32)
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    organism = int((np.asarray(mask) > 127).sum())
    return Rendered(image=out, organism_pixels=organism)


def size_columns(length_mm: float, organism_pixels: int, body_px_fraction: float,
                 size: int = 256) -> tuple[float, float, float]:
    """(image_measurement_value, area_fraction, scale_factor) for one drawing.

    ``body_px_fraction`` is not needed by callers that pass the rendered image's
    organism pixel count; the scale follows from the real length in the original.
    """
    w = size * 4 / 3
    body_px_image = size * body_px_fraction
    scale = float(np.clip(length_mm * PX_PER_MM / body_px_image, 0.2, ORIGINAL_SIZE[1] / size))
    area_fraction = float(min(1.0, (w * scale) * (size * scale) / (ORIGINAL_SIZE[0] * ORIGINAL_SIZE[1])))
    return float(organism_pixels * scale * scale), area_fraction, scale
