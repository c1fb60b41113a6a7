"""The per-run HTML report: plots a taxonomist would rather look at than read.

Why plain DataFrames in, PNG bytes out: every plot function takes the tables an
export already holds (assignments, proposals, members, specimens — see
:class:`biodiscover.workflows.export.RunExport`), so the plots are testable without a
database and reusable by the demo and the benchmarks. The HTML embeds each plot
as a base64 PNG so the report is one self-contained file that opens offline.

Plots:

* :func:`plot_naming_depth` — how deep specimens were named (deepest confident
  rank), split into known vs flagged novel;
* :func:`plot_novelty` — the novelty-probability distribution, with the decision
  threshold the run recorded;
* :func:`plot_barcode_gap` — within-candidate vs nearest-other-candidate
  distances (the "barcode gap": candidates are convincing when the two do not
  overlap);
* :func:`plot_proposal_sizes` — how many specimens each candidate species holds;
* :func:`plot_sites` — collection sites on a coarse world outline (hand-made
  polygons, no map download), coloured by novelty.

Every value from the data that reaches the HTML goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from biodiscover.storage.distance import p_distance
from biodiscover.storage.evidence import below_order_words
from biodiscover.storage.records import RANKS, listed, plural
from biodiscover.storage.review_log import MACHINE

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from biodiscover.workflows.export.metadata import ExportOptions
    from biodiscover.workflows.export.tables import ReviewTrail, RunExport

log = logging.getLogger(__name__)

DEPTH_ORDER: tuple[str, ...] = ("unnamed",) + RANKS
KNOWN_COLOUR = "#3b75af"
NOVEL_COLOUR = "#e1812c"
WITHIN_COLOUR = "#3a923a"
BETWEEN_COLOUR = "#c03d3e"

# Coarse continent outlines (lon, lat), drawn by hand from memory to a few
# degrees: enough to place collection sites at a glance, not a map projection.
WORLD_OUTLINE: dict[str, list[tuple[float, float]]] = {
    "North America": [(-168, 66), (-162, 70), (-141, 70), (-125, 70), (-95, 72), (-80, 73), (-62, 67),
                      (-64, 60), (-56, 52), (-66, 45), (-70, 42), (-76, 35), (-81, 31), (-80, 25),
                      (-83, 29), (-90, 30), (-97, 27), (-97, 22), (-92, 19), (-87, 21), (-88, 16),
                      (-83, 10), (-78, 8), (-80, 7), (-86, 11), (-92, 14), (-105, 20), (-110, 24),
                      (-115, 30), (-118, 34), (-124, 40), (-124, 48), (-133, 56), (-146, 60), (-158, 58),
                      (-166, 62)],
    "South America": [(-78, 8), (-72, 12), (-62, 10), (-52, 5), (-35, -5), (-39, -14), (-41, -22),
                      (-48, -26), (-53, -34), (-58, -38), (-65, -41), (-66, -47), (-69, -52), (-72, -54),
                      (-75, -50), (-73, -40), (-71, -30), (-70, -18), (-76, -14), (-81, -6), (-80, 0),
                      (-78, 8)],
    "Eurasia": [(-10, 36), (-9, 43), (-2, 44), (-5, 48), (2, 51), (8, 54), (10, 57), (5, 62), (15, 69),
                (28, 71), (42, 67), (60, 69), (70, 73), (100, 77), (130, 72), (160, 70), (180, 68),
                (178, 62), (163, 60), (157, 51), (143, 59), (135, 54), (140, 48), (130, 42), (127, 35),
                (122, 30), (120, 23), (110, 20), (106, 10), (100, 13), (99, 7), (103, 1), (98, 8),
                (93, 17), (88, 22), (80, 15), (77, 8), (72, 20), (66, 25), (57, 26), (52, 29), (48, 30),
                (56, 24), (59, 22), (52, 16), (43, 13), (39, 21), (35, 28), (34, 31), (35, 36), (28, 36),
                (26, 40), (23, 37), (20, 40), (13, 45), (16, 38), (12, 38), (8, 44), (3, 43), (-1, 37),
                (-6, 36), (-10, 36)],
    "Africa": [(-17, 21), (-16, 12), (-8, 4), (5, 5), (9, 4), (10, -2), (13, -8), (12, -17), (15, -27),
               (20, -35), (27, -34), (33, -26), (35, -20), (40, -15), (40, -5), (44, 2), (51, 11), (43, 12),
               (38, 18), (34, 27), (32, 31), (25, 32), (20, 31), (11, 33), (10, 37), (3, 37), (-6, 36),
               (-10, 30), (-17, 21)],
    "Australia": [(114, -22), (114, -34), (118, -35), (124, -33), (131, -31), (138, -35), (141, -38),
                  (147, -39), (150, -37), (153, -30), (153, -25), (146, -19), (142, -11), (136, -12),
                  (130, -12), (126, -14), (122, -18), (114, -22)],
    "Greenland": [(-55, 60), (-43, 60), (-38, 66), (-22, 70), (-18, 77), (-25, 82), (-45, 83), (-62, 82),
                  (-72, 78), (-66, 76), (-55, 70), (-52, 65), (-55, 60)],
    "Great Britain": [(-5, 50), (1, 51), (2, 53), (0, 54), (-2, 56), (-2, 58), (-5, 58.5), (-6, 56),
                      (-5, 54), (-3, 53), (-5, 51.5), (-5, 50)],
    "Japan": [(130, 31), (132, 34), (135, 34), (140, 35), (141, 38), (142, 41), (141, 45), (145, 44),
              (141, 41.5), (140, 38), (137, 37), (133, 35.5), (130, 33), (130, 31)],
    "Madagascar": [(44, -25), (47, -25), (50, -16), (49, -12), (44, -17), (44, -25)],
    "Borneo": [(109, 2), (113, 4), (117, 7), (119, 5), (118, 1), (116, -4), (110, -3), (109, 2)],
    "Sumatra": [(95, 5), (98, 4), (104, -2), (106, -6), (102, -4), (96, 2), (95, 5)],
    "New Guinea": [(131, -1), (138, -2), (146, -6), (150, -10), (143, -9), (138, -8), (133, -4), (131, -1)],
    "New Zealand": [(172, -34), (178, -38), (175, -41), (171, -44), (167, -46), (172, -41), (174, -38),
                    (172, -34)],
}


@dataclass(frozen=True)
class Plot:
    """One rendered plot: a title, a one-line caption and PNG bytes."""

    key: str
    title: str
    caption: str
    png: bytes

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _figure(width: float = 7.0, height: float = 4.2) -> "Figure":
    from matplotlib.figure import Figure  # the OO API needs no GUI backend

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig


def _png(fig: "Figure") -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=12, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _novel_mask(assignments: pd.DataFrame) -> np.ndarray:
    """The engine's own decision (``is_novel``, stored with every assignment); never re-derived from a
    threshold, because a fused DNA+image call may override it. Not recorded = not flagged."""
    if "is_novel" not in assignments:
        return np.zeros(len(assignments), dtype=bool)
    return assignments["is_novel"].astype("boolean").fillna(False).to_numpy(dtype=bool)


def naming_depth_counts(assignments: pd.DataFrame) -> pd.DataFrame:
    """Specimens per deepest confident rank (rows: unnamed, order … species; cols: known, novel)."""
    depth = assignments.get("deepest_rank", pd.Series([None] * len(assignments), dtype=object))
    depth = depth.where(depth.isin(RANKS), "unnamed")
    novel = _novel_mask(assignments)
    table = pd.DataFrame({"depth": depth.to_numpy(), "novel": np.where(novel, "novel", "known")})
    counts = pd.crosstab(table["depth"], table["novel"]).reindex(index=list(DEPTH_ORDER), columns=["known", "novel"])
    return counts.fillna(0).astype(int)


def plot_naming_depth(assignments: pd.DataFrame, threshold: float | None = None) -> Plot:
    """Horizontal stacked bars: how many specimens were named down to each rank.

    ``threshold``: the novelty threshold the run recorded (shown in the legend)."""
    counts = naming_depth_counts(assignments)
    fig = _figure()
    ax = fig.subplots()
    total = int(counts.to_numpy().sum())
    if total == 0:
        _empty(ax, "no assignments in this run")
    else:
        y = np.arange(len(counts))
        known, novel = ("known", "flagged novel") if threshold is None else \
            (f"known (novelty < {threshold:g})", f"flagged novel (novelty ≥ {threshold:g})")
        ax.barh(y, counts["known"], color=KNOWN_COLOUR, label=known)
        ax.barh(y, counts["novel"], left=counts["known"], color=NOVEL_COLOUR, label=novel)
        ax.set_yticks(y, [f"{r}" for r in counts.index])
        ax.invert_yaxis()
        for yi, n in zip(y, counts.sum(axis=1)):
            if n:
                share = 100 * n / total
                ax.text(n, float(yi), f"  {n} ({'<1' if share < 1 else f'{share:.0f}'}%)", va="center", fontsize=9)
        ax.set_xlim(0, counts.sum(axis=1).max() * 1.25)
        ax.set_xlabel("specimens")
        ax.set_ylabel("deepest confident rank")
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle("How deep each specimen could be named")
    return Plot("naming_depth", "Depth of naming",
                f"{plural(total, 'specimen')} by the deepest rank named with confidence.", _png(fig))


def plot_novelty(assignments: pd.DataFrame, threshold: float | None = None) -> Plot:
    """Histogram of novelty probabilities (log counts: the novel tail is small but matters), coloured by the
    engine's decision, with the run's recorded ``threshold`` drawn when there is one."""
    raw = pd.to_numeric(assignments.get("novelty", pd.Series([np.nan] * len(assignments), dtype=float)),
                        errors="coerce").to_numpy(dtype=float)
    has = ~np.isnan(raw)
    scores, flagged = raw[has], _novel_mask(assignments)[has]
    fig = _figure()
    ax = fig.subplots()
    if len(scores) == 0:
        _empty(ax, "no novelty scores in this run")
    else:
        bins = np.linspace(0, 1, 41).tolist()
        ax.hist(scores[~flagged], bins=bins, color=KNOWN_COLOUR, label="not flagged")
        ax.hist(scores[flagged], bins=bins, color=NOVEL_COLOUR, label="flagged novel")
        if threshold is not None:
            ax.axvline(threshold, color="black", ls="--", lw=1)
            ax.text(threshold + 0.008, 0.97, f"threshold {threshold:g}",
                    transform=ax.get_xaxis_transform(), rotation=90, va="top", ha="left", fontsize=9)
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability of a species outside the reference")
        ax.set_ylabel("specimens (log scale)")
        # between the two tails and left of the threshold's label, not over the bars: the flagged tail at 1.0 is the
        # tallest bar of a real collection (the legend at the upper right covered it)
        ax.legend(loc="upper left", bbox_to_anchor=(0.1, 1.0), frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
    n_novel = int(flagged.sum())
    ax.set_title("Novelty score distribution")
    # those without a score said, so the caption's total is the report's (a season's "349 of 1168 specimens flagged
    # novel" under "1169 specimens": a barcode unrelated to every reference key left out without a word, e36 F10)
    unscored = len(raw) - len(scores)
    has, its = ("has", "its") if unscored == 1 else ("have", "each one's")
    more = f"; {plural(unscored, 'specimen')} more {has} no novelty score ({its} reason says why), {len(raw)} in " \
        "all" if unscored else ""
    return Plot("novelty", "Novelty scores", f"{n_novel} of {plural(len(scores), 'specimen')} flagged novel{more}.",
                _png(fig))


def barcode_gap_distances(members: pd.DataFrame, barcodes: pd.Series, *, max_per_candidate: int = 12,
                          max_candidates: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Within-candidate pairwise and nearest-other-candidate distances from member barcodes.

    ``members`` has ``proposal_id`` and ``processid``; ``barcodes`` maps processid →
    barcode. Sampling caps (members per candidate, candidates) keep this to a
    few seconds on big runs; the caps are part of the plot's caption.
    Between: for each candidate, the smallest distance from its first member to
    the first member of any other candidate (nearest neighbour candidate).
    Distances are the p-distance the clustering cut at (``storage.distance``);
    pairs whose informative overlap is too short to compare are left out.
    """
    rng = np.random.default_rng(seed)
    groups: list[list[str]] = []
    for _, grp in members.groupby("proposal_id", sort=True):
        seqs = [barcodes.get(p) for p in grp["processid"]]
        seqs = [s for s in seqs if isinstance(s, str) and s]
        if seqs:
            if len(seqs) > max_per_candidate:
                seqs = list(rng.choice(np.array(seqs, dtype=object), max_per_candidate, replace=False))
            groups.append(seqs)
    if len(groups) > max_candidates:
        keep = rng.choice(len(groups), max_candidates, replace=False)
        groups = [groups[i] for i in sorted(keep)]
    within = [p_distance(g[i], g[j]) for g in groups for i in range(len(g)) for j in range(i + 1, len(g))]
    reps = [g[0] for g in groups]
    dist = np.full((len(reps), len(reps)), np.inf)
    for i in range(len(reps)):  # symmetric: align each pair once
        for j in range(i + 1, len(reps)):
            dist[i, j] = dist[j, i] = p_distance(reps[i], reps[j])
    between = dist.min(axis=1) if len(reps) > 1 else np.array([])
    w, b = np.asarray(within, dtype=float), np.asarray(between, dtype=float)
    return w[np.isfinite(w)], b[np.isfinite(b)]


def evidence_gap_distances(proposals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-candidate max within-distance and nearest-other-candidate distance from stored evidence.

    ``discovery.proposals`` records ``within_distance.max`` and
    ``between_distance.distance`` for every candidate, exact and over all
    members; use them when present instead of re-aligning a sample. None when
    the run's evidence has neither.
    """
    if "evidence" not in proposals or proposals.empty:
        return None
    within, between = [], []
    for ev in proposals["evidence"]:
        if not isinstance(ev, dict):
            continue
        w, b = ev.get("within_distance"), ev.get("between_distance")
        if isinstance(w, dict) and isinstance(w.get("max"), (int, float)):
            within.append(float(w["max"]))
        if isinstance(b, dict) and isinstance(b.get("distance"), (int, float)):
            between.append(float(b["distance"]))
    if not within and not between:
        return None
    return np.asarray(within, dtype=float), np.asarray(between, dtype=float)


def evidence_threshold(proposals: pd.DataFrame) -> float | None:
    """The species threshold the run's candidates were cut at (their evidence's ``threshold``, the most common
    one), as a fraction; None when not recorded. What the barcode-gap plot draws its line at: the sentence on
    each candidate judges a gap against it, and a reader of the plot could not see where it lay."""
    if "evidence" not in proposals or proposals.empty:
        return None
    seen = [float(t) for ev in proposals["evidence"]
            if isinstance(ev, dict) and isinstance(t := ev.get("threshold"), (int, float)) and t == t]
    return max(set(seen), key=seen.count) if seen else None


def nearest_known_gaps(proposals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate: (widest within distance or NaN, distance to its nearest known species), as the candidate's
    flag reads them (``discovery.barcode_gap.gap_of``: the nearest known species' aligned distance, else
    ``1 − nearest_identity``); candidates without one are left out. A candidate whose nearest known species is
    within the species threshold, or no farther than its own members are from each other, has no barcode gap to
    that species: maybe not new at all (``BarcodeGap.no_gap``, what the caption counts)."""
    from biodiscover.discovery.barcode_gap import gap_of

    if proposals.empty or "nearest_identity" not in proposals:
        return np.array([]), np.array([])
    within, nearest = [], []
    evidence = proposals["evidence"] if "evidence" in proposals else pd.Series([None] * len(proposals))
    for ident, ev in zip(pd.to_numeric(proposals["nearest_identity"], errors="coerce"), evidence):
        if ident != ident:
            continue
        gap = gap_of(ev, ident)
        if gap.nearest is None:
            continue
        within.append(np.nan if gap.within_max is None else gap.within_max)
        nearest.append(gap.nearest)
    return np.asarray(within, dtype=float), np.asarray(nearest, dtype=float)


def plot_barcode_gap(within: Sequence[float] | np.ndarray, between: Sequence[float] | np.ndarray, *,
                     per_candidate: bool = False,
                     nearest_known: tuple[Sequence[float] | np.ndarray, Sequence[float] | np.ndarray] | None = None,
                     threshold: float | None = None, not_coi: int = 0, uncompared: int = 0,
                     decided: tuple[int, int] = (0, 0)) -> Plot:
    """Overlaid histograms of within- and between-candidate distances (and, given ``nearest_known`` from
    :func:`nearest_known_gaps`, each candidate's distance to its nearest known species), in % divergence.
    ``not_coi``: how many candidates the caller left out because none of their members' reads is usable COI
    (:func:`usable_coi`); ``uncompared``: how many drawn candidates of several barcoded members have no within
    distance (``storage.evidence.uncompared``); the caption says both. ``decided``: (proposals a reviewer rejected
    or assigned, all proposals), which the plot leaves out and the caption says (:func:`decided_left_out`)."""
    w = np.asarray([x for x in within if x == x], dtype=float) * 100
    b = np.asarray([x for x in between if x == x], dtype=float) * 100
    kw, kn = (np.asarray(nearest_known[0], dtype=float), np.asarray(nearest_known[1], dtype=float) * 100) \
        if nearest_known is not None else (np.array([]), np.array([]))
    fig = _figure()
    ax = fig.subplots()
    if len(w) == 0 and len(b) == 0 and len(kn) == 0:
        _empty(ax, "no candidate species with barcodes in this run")
        caption = "No distances to show."
    else:
        top = max(np.max(w) if len(w) else 0, np.max(b) if len(b) else 0, np.max(kn) if len(kn) else 0, 1.0)
        bins = np.linspace(0, top * 1.05, 40).tolist()
        # Shares, not counts: within-pairs outnumber candidates quadratically.
        if len(w):
            w_label = f"largest within a candidate ({plural(len(w), 'candidate')})" if per_candidate \
                else f"within a candidate ({len(w)} pairs)"
            ax.hist(w, bins=bins, weights=np.full(len(w), 1 / len(w)), color=WITHIN_COLOUR, alpha=0.75,
                    label=w_label)
        if len(b):
            ax.hist(b, bins=bins, weights=np.full(len(b), 1 / len(b)), color=BETWEEN_COLOUR, alpha=0.6,
                    label=f"to nearest other candidate ({plural(len(b), 'candidate')})")
        if len(kn):
            ax.hist(kn, bins=bins, weights=np.full(len(kn), 1 / len(kn)), histtype="step", lw=1.8,
                    color=KNOWN_COLOUR, label=f"to nearest known species ({plural(len(kn), 'candidate')})")
        gap = (float(np.max(w)) if len(w) else 0.0, float(np.min(b)) if len(b) else math.inf)
        if len(w) and len(b) and gap[1] > gap[0]:
            ax.axvspan(gap[0], gap[1], color="#e4e4e4", zorder=0, label=f"barcode gap ({gap[0]:.1f}–{gap[1]:.1f}%)")
        if threshold is not None:
            ax.axvline(100 * threshold, color="black", ls="--", lw=1,
                       label=f"species threshold learned from the reference ({100 * threshold:.1f}%)")
        ax.set_xlabel("p-distance between barcodes (% divergence)")
        ax.set_ylabel("share of distances")
        ax.legend(frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        caption = (f"Max within {np.max(w):.1f}%" if len(w) else "No within-candidate pairs") + (
            f", min between {np.min(b):.1f}%." if len(b) else ".")
        if threshold is not None:
            caption += f" Dashed: the species threshold learned from the reference, {100 * threshold:.1f}%."
        if len(kn):
            from biodiscover.discovery.barcode_gap import BarcodeGap

            no_gap = sum(BarcodeGap(None if x != x else float(x), float(n) / 100, threshold).no_gap
                         for x, n in zip(kw, kn))
            caption += (f" No barcode gap in {no_gap} of {plural(len(kn), 'candidate')}: the nearest known species "
                        "no farther away than the species threshold or than the members are from each other "
                        "(flagged \"no barcode gap\": check them first; each is listed below whatever its size).")
    if uncompared:
        caption += (f" {plural(uncompared, 'candidate')} of several barcoded members "
                    f"{'has' if uncompared == 1 else 'have'} no within distance: "
                    f"{'its' if uncompared == 1 else 'their'} members' barcodes share too little sequence to be "
                    f"compared (see {'its' if uncompared == 1 else 'their'} flags).")
    if not_coi:
        its = "its" if not_coi == 1 else "their"
        caption += (f" {plural(not_coi, 'candidate')} left out: none of {its} members' reads is usable COI (nearer "
                    f"chance than identity to every key; see {its} section).")
    ax.set_title("Barcode gap of candidate species")
    return Plot("barcode_gap", "Barcode gap", caption + decided_left_out(*decided), _png(fig))


def decided_left_out(left: int, proposed: int) -> str:
    """`` Left out: 3 proposals a reviewer rejected or assigned to a known species (the cards count all 143).``:
    what a plot of candidate species leaves out, said under it ("" when nothing is).

    Why: the cards said "143 candidate species proposed" and the captions under the plots "141 candidates", with no
    word of the 2 rejected (e31 review F16)."""
    if not left:
        return ""
    return (f" Left out: {plural(left, 'proposal')} a reviewer rejected or assigned to a known species (the cards "
            f"count all {proposed:,}).")


def usable_coi(proposals: pd.DataFrame) -> pd.Series:
    """Per candidate: False where none of its members' reads is usable COI (``discovery.barcode_gap.gap_of``'s
    verdict "not COI": every best hit nearer the identity unrelated sequence reaches than identity), else True.
    Why: such a candidate has no barcode gap to read — its section says "data quality" — and its distances (a
    real plate's two, 39.5 % from anything known) are not a species' spread."""
    from biodiscover.discovery.barcode_gap import gap_of

    evidence = proposals["evidence"] if "evidence" in proposals else pd.Series([None] * len(proposals),
                                                                              index=proposals.index)
    return pd.Series([gap_of(ev).verdict != "not COI" for ev in evidence], index=proposals.index, dtype=bool)


def plot_proposal_sizes(proposals: pd.DataFrame, decided: tuple[int, int] = (0, 0)) -> Plot:
    """Bar chart of candidate sizes (how many candidates have 1, 2, … specimens); ``decided`` as
    :func:`plot_barcode_gap`'s."""
    sizes = pd.to_numeric(proposals.get("size", pd.Series(dtype=float)), errors="coerce").dropna().astype(int)
    fig = _figure()
    ax = fig.subplots()
    if sizes.empty:
        _empty(ax, "no candidate species in this run")
    else:
        edges = [1, 2, 3, 5, 10, 20, 50, 100, 1_000_000]
        labels = ["1", "2", "3–4", "5–9", "10–19", "20–49", "50–99", "100+"]
        binned = pd.cut(sizes, bins=edges, right=False, labels=labels).value_counts().reindex(labels).fillna(0)
        last = max(3, int(np.flatnonzero(binned.to_numpy())[-1]) + 1)  # no row of empty bins past the largest
        binned, labels = binned.iloc[:last], labels[:last]
        x = np.arange(len(labels))
        bars = ax.bar(x, binned.to_numpy(), color=NOVEL_COLOUR)
        ax.bar_label(bars, labels=[str(int(v)) if v else "" for v in binned.to_numpy()], fontsize=9)
        ax.set_xticks(x, labels)
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no "2.5 candidate species"
        ax.set_xlabel("specimens in the candidate species")
        ax.set_ylabel("candidate species")
        ax.spines[["top", "right"]].set_visible(False)
    ax.set_title("Candidate species sizes")
    n_single = int((sizes == 1).sum()) if not sizes.empty else 0
    return Plot("proposal_sizes", "Proposal sizes",
                f"{plural(len(sizes), 'candidate')}, {plural(n_single, 'singleton')} "
                "(kept: a single specimen can be a new species)." + decided_left_out(*decided),
                _png(fig))


#: The whole world as the sites map draws it: (lon min, lon max, lat min, lat max).
WORLD_EXTENT: tuple[float, float, float, float] = (-180.0, 180.0, -60.0, 85.0)
#: Sites spread wider than this (degrees of longitude, of latitude) span continents: the world map is kept.
WORLD_SPAN: tuple[float, float] = (100.0, 60.0)
#: A zoomed map's width : height on the page, its least height in degrees of latitude, and the share of it
#: left as margin around the sites.
MAP_ASPECT = 2.0
MIN_MAP_HEIGHT = 2.0
MAP_MARGIN = 0.3


def _lon_arc(lon: np.ndarray) -> tuple[float, float]:
    """(west, east) of the shortest arc of longitude holding every site; east > 180 where the arc crosses the
    antimeridian (Fiji's sites at 178.4°E and 179.9°W: 178.4, 180.1), so it is drawn in one piece."""
    u = np.unique(lon)
    gaps = np.diff(np.append(u, u[0] + 360.0))  # the last one: across ±180 back to the first site
    widest = int(np.argmax(gaps))
    if gaps[-1] >= gaps[widest]:  # the widest gap is across ±180 itself: the arc does not cross it
        return float(u[0]), float(u[-1])
    return float(u[widest + 1]), float(u[widest] + 360.0)


def site_extent(lat: pd.Series, lon: pd.Series) -> tuple[float, float, float, float]:
    """(lon min, lon max, lat min, lat max) the sites map shows: the sites' extent with a margin, at the map's
    width : height (longitude degrees widened by 1/cos(latitude), so a degree east is as long as one north);
    the world when the sites span continents (or there are none: :data:`WORLD_EXTENT`, reaching further towards
    a pole where a site lies beyond it). Why: a plate from one country drawn on the world map was one blob over
    Costa Rica. Sites both sides of ±180° are one arc (lon max then lies past 180: :func:`_lon_arc`); a zoomed map
    stays between the poles."""
    lat, lon = pd.to_numeric(lat, errors="coerce"), pd.to_numeric(lon, errors="coerce")
    ok = lat.between(-90, 90) & lon.between(-180, 180)
    if not ok.any():
        return WORLD_EXTENT
    y0, y1 = float(lat[ok].min()), float(lat[ok].max())
    x0, x1 = _lon_arc(lon[ok].to_numpy(dtype=float))
    if x1 - x0 > WORLD_SPAN[0] or y1 - y0 > WORLD_SPAN[1]:
        wx0, wx1, wy0, wy1 = WORLD_EXTENT
        return wx0, wx1, max(-90.0, min(wy0, y0 - 3.0)), min(90.0, max(wy1, y1 + 3.0))
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    stretch = 1 / max(math.cos(math.radians(cy)), 0.2)  # degrees of longitude per degree of latitude on the page
    height = max(y1 - y0, (x1 - x0) / (MAP_ASPECT * stretch), MIN_MAP_HEIGHT) * (1 + MAP_MARGIN)
    width = height * MAP_ASPECT * stretch
    # beside a pole the window slides back onto the globe (it would reach 91°S)
    cy = min(max(cy, -90.0 + height / 2), 90.0 - height / 2)
    return cx - width / 2, cx + width / 2, cy - height / 2, cy + height / 2


def _wrap_lon(value: float) -> float:
    """A longitude drawn past ±180° (a map across the antimeridian) as the one it is: 184 → -176."""
    return (value + 180.0) % 360.0 - 180.0 if value > 180.0 or value < -180.0 else value


def _degrees(value: float, axis: str) -> str:
    hemisphere = ("W", "E") if axis == "lon" else ("S", "N")
    value = _wrap_lon(value) if axis == "lon" else value
    return f"{abs(value):.1f}°{hemisphere[0] if value < 0 else hemisphere[1] if value > 0 else ''}"


#: A zoomed map at least this high (degrees of latitude) keeps the outline; a lower one gets the world beside it.
OUTLINE_MIN_HEIGHT = 20.0


def _draw_outline(ax) -> None:
    for poly in WORLD_OUTLINE.values():
        xs, ys = zip(*poly)
        ax.fill(xs, ys, color="#ececec", ec="#9a9a9a", lw=0.6, zorder=0)


def plot_sites(specimens: pd.DataFrame, assignments: pd.DataFrame | None = None) -> Plot:
    """Collection sites on a coarse outline: marker area = specimens, colour = share flagged novel; zoomed to the
    sites (:func:`site_extent`), the world only when they span continents."""
    lat = pd.to_numeric(specimens.get("coord-lat", pd.Series(dtype=float)), errors="coerce")
    lon = pd.to_numeric(specimens.get("coord-lon", pd.Series(dtype=float)), errors="coerce")
    ok = lat.between(-90, 90) & lon.between(-180, 180)
    novel = pd.Series(False, index=specimens.index)
    if assignments is not None and "processid" in specimens and len(assignments):
        novel_ids = set(assignments.loc[_novel_mask(assignments), "processid"])
        novel = specimens["processid"].isin(novel_ids)
    from matplotlib.patches import Rectangle

    extent = site_extent(lat, lon)
    x0, x1, y0, y1 = extent
    world = (x0, x1) == WORLD_EXTENT[:2]
    lon = lon.where(~(lon < x0), lon + 360.0)  # a map across ±180°: the sites east of it drawn past 180
    fig = _figure(9.0, 4.2)
    # The hand-drawn outline is right to a few degrees: on a map a few degrees high it would put sites at sea, so
    # a zoomed map has none and a small world map beside it shows where it lies.
    outline = world or y1 - y0 >= OUTLINE_MIN_HEIGHT
    where = None
    if outline:
        ax = fig.subplots()
    else:
        ax, where = fig.subplots(1, 2, width_ratios=[4, 1])
        _draw_outline(where)
        for shift in (0.0, -360.0) if x1 > 180 else (0.0,):  # across ±180°: both edges of the small map
            where.add_patch(Rectangle((x0 + shift, y0), x1 - x0, y1 - y0, fill=False, ec=NOVEL_COLOUR, lw=1.5,
                                      zorder=2))
        where.plot([_wrap_lon((x0 + x1) / 2)], [(y0 + y1) / 2], marker="o", ms=4, color=NOVEL_COLOUR, zorder=3)
        where.set_xlim(-180, 180)
        where.set_ylim(min(-60, y0), max(85, y1))
        where.set_aspect(1.0)
        where.set_xticks([])
        where.set_yticks([])
        where.set_title("where", fontsize=9)
    if outline:
        _draw_outline(ax)
    if world:
        for value in (-60, -30, 0, 30, 60):
            ax.axhline(value, color="#f2f2f2", lw=0.5, zorder=-1)
    if ok.sum() == 0:
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, "no coordinates in this collection", ha="center", va="center",
                fontsize=12, color="#666")
    else:
        # Specimens of one trap share coordinates: one marker per site (a cell of 0.5° on the world map, a 50th of
        # the map's height zoomed in), area ∝ specimens, colour = share flagged novel, so a dense site does not
        # hide the others.
        cell = 0.5 if world else max((y1 - y0) / 50, 0.001)
        sites = pd.DataFrame({"lat": (lat[ok] / cell).round() * cell, "lon": (lon[ok] / cell).round() * cell,
                              "novel": novel[ok].astype(float)})
        agg = sites.groupby(["lat", "lon"]).agg(n=("novel", "size"), share=("novel", "mean")).reset_index()
        agg = agg.sort_values("n", ascending=False)  # small sites drawn last, on top
        from matplotlib.colors import LinearSegmentedColormap

        cmap = LinearSegmentedColormap.from_list("novelty", [KNOWN_COLOUR, "#d9c26a", NOVEL_COLOUR])
        # not clipped: the window stops at ±90°, so a site at a pole lies on its edge and was cut in half; every
        # site lies inside the window (site_extent), so nothing else can spill past it
        sc = ax.scatter(agg["lon"], agg["lat"], s=18 + 10 * np.sqrt(agg["n"]), c=agg["share"], cmap=cmap,
                        vmin=0, vmax=1, ec="black", lw=0.4, alpha=0.9, zorder=3, clip_on=False)
        cbar = fig.colorbar(sc, ax=ax if where is None else [ax, where], shrink=0.8, pad=0.01, aspect=25)
        cbar.set_label("share of specimens flagged novel")
        for n in sorted({int(agg["n"].max()), max(1, int(agg["n"].median()))}, reverse=True):
            ax.scatter([], [], s=18 + 10 * np.sqrt(n), color="#bbbbbb", ec="black", lw=0.4,
                       label=plural(n, "specimen"))
        ax.legend(loc="lower left", frameon=True, fontsize=8, title=plural(len(agg), "site"), title_fontsize=8)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(1.0 if world else 1 / max(math.cos(math.radians((y0 + y1) / 2)), 0.2))
    from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

    if world:
        ax.xaxis.set_major_locator(MultipleLocator(60))
        ax.yaxis.set_major_locator(MultipleLocator(30))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(6, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_major_locator(MaxNLocator(5, steps=[1, 2, 2.5, 5, 10]))
        ax.grid(color="#f2f2f2", lw=0.5, zorder=-1)
    digits = 0 if world or y1 - y0 >= 10 else 1
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{abs(_wrap_lon(v)):.{digits}f}°{'W' if _wrap_lon(v) < 0 else 'E' if _wrap_lon(v) > 0 else ''}"))
    ax.yaxis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{abs(v):.{digits}f}°{'S' if v < 0 else 'N' if v > 0 else ''}"))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title("Collection sites")
    missing = int((~ok).sum())
    shown = "the whole world" if world else \
        (f"lat {_degrees(y0, 'lat')}–{_degrees(y1, 'lat')}, lon {_degrees(x0, 'lon')}–{_degrees(x1, 'lon')}")
    drawn = " (outline is approximate)" if outline else " (no coastline at this scale; the small map shows where)"
    return Plot("sites", "Collection sites",
                f"{plural(int(ok.sum()), 'specimen')} with coordinates, {missing} without; the map shows "
                f"{shown}{drawn}.", _png(fig))


def _table(frame: pd.DataFrame, columns: Iterable[str], limit: int = 50) -> str:
    cols = [c for c in columns if c in frame.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for _, row in frame.head(limit).iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, float):
                text = "" if math.isnan(v) else f"{v:.3g}"
            else:
                text = "" if v is None else str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p class='note'>Showing {limit} of {len(frame)}.</p>" if len(frame) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} .sub{color:#666;margin-top:0}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{background:#f6f6f6;border-radius:8px;padding:.8rem 1.2rem}
.card b{display:block;font-size:1.6rem}
figure{margin:1.5rem 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#555}
table{border-collapse:collapse;font-size:.85rem}
td,th{border-bottom:1px solid #ddd;padding:.25rem .5rem;text-align:left}
.note{color:#777;font-size:.85rem}
.cand{border-top:1px solid #ddd;margin-top:1.5rem}.facts th{width:12rem;color:#555;font-weight:normal}
.photos{display:flex;gap:.6rem;flex-wrap:wrap;margin:.6rem 0}.photo{margin:0}.photo img{border:1px solid #ddd}
.photo figcaption{font-size:.75rem;color:#666}.notes{margin:.4rem 0}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:.5rem .8rem;border-radius:6px}
"""


def render_plots(data: "RunExport") -> list[Plot]:
    """All report plots for one run's export tables."""
    from biodiscover.storage.evidence import uncompared
    from biodiscover.workflows.export.flags import evidence_of
    from biodiscover.workflows.export.tables import live_candidates

    assignments, specimens = data.assignments, data.specimens
    # Candidate species are the proposals a reviewer did not reject; rejected ones stay out of the plots.
    proposals = live_candidates(data.proposals)
    decided = (len(data.proposals) - len(proposals), len(data.proposals))
    members = data.members
    if "proposal_id" in proposals and "proposal_id" in members:
        members = members[members["proposal_id"].isin(set(proposals["proposal_id"]))]
    barcodes = specimens.set_index("processid")["dna_barcode"] if {"processid", "dna_barcode"} <= set(specimens) \
        else pd.Series(dtype=object)
    coi = usable_coi(proposals)
    gapped = proposals[coi]
    if "proposal_id" in gapped and "proposal_id" in members:
        members = members[members["proposal_id"].isin(set(gapped["proposal_id"]))]
    from_evidence = evidence_gap_distances(gapped)
    if from_evidence is not None:
        within, between = from_evidence
    else:
        within, between = barcode_gap_distances(members, barcodes) if len(members) else (np.array([]), np.array([]))
    return [
        plot_naming_depth(assignments, data.run.get("novelty_threshold")),
        plot_novelty(assignments, data.run.get("novelty_threshold")),
        plot_barcode_gap(within, between, per_candidate=from_evidence is not None,
                         nearest_known=nearest_known_gaps(gapped), threshold=evidence_threshold(proposals),
                         not_coi=int((~coi).sum()), uncompared=sum(uncompared(evidence_of(ev)) for ev in
                                                                    gapped.get("evidence", ())),
                         decided=decided),
        plot_proposal_sizes(proposals, decided),
        plot_sites(specimens, assignments),
    ]


def _when(stamp: object) -> str:
    """``2026-11-23T09:36:43.128278Z`` → ``2026-11-23 09:36 UTC`` (stored timestamps are UTC)."""
    text = str(stamp or "")
    if len(text) < 16 or text[10] != "T":
        return text
    return f"{text[:10]} {text[11:16]}" + (" UTC" if text.endswith("Z") or text.endswith("+00:00") else "")


#: The table's known-species column: the machine's nearest one, or the one a reviewer assigned the candidate to.
KNOWN_SPECIES = "nearest known species (or the one assigned)"


#: The table's column naming each candidate's run and collection, in an export over several runs.
RUN_COLUMN = "run (collection)"


def candidate_table(proposals: pd.DataFrame,
                    named_later: Mapping[int, Sequence[tuple[str, int]]] | None = None,
                    order_cutoffs: Sequence[float | None] = ()) -> pd.DataFrame:
    """The report's candidate table: human headers, open-nomenclature names, evidence a reader sorts by.

    ``named_later`` (``RunExport.named_later``, an export over several runs): an accepted species' specimens cell
    says its reviewed members and the specimens later runs named as it ("30 reviewed + 41 named by runs 2, 5 and
    6"), sorted by its members.
    ``order_cutoffs`` (each row's run's, ``export.tables.order_cutoffs``): a nearest known species below it says so
    in its identity cell (``below_order_words``), a moth at 82.8 % to beetles saying nothing of their order.

    Candidates first (largest first), proposals a reviewer rejected or assigned to a known species after them.
    One a reviewer assigned gives that species and the identity to it, as its section does
    (:func:`~biodiscover.workflows.export.flags.assigned_identity`), not the machine's nearest species.
    """
    from biodiscover.workflows.export.dwca import named_later_text
    from biodiscover.workflows.export.flags import assigned_identity, carried_identity
    from biodiscover.workflows.export.tables import NOT_CANDIDATES, candidate_label, placement

    rows = []
    for n, p in enumerate(proposals.to_dict("records")):
        species, ident = p.get("nearest_species") or "", p.get("nearest_identity")
        cut = order_cutoffs[n] if n < len(order_cutoffs) else None
        if p.get("status") == "assigned" and p.get("provisional_name"):
            species, ident = f"{p['provisional_name']} (assigned)", assigned_identity(p)
        ident = None if ident is None or ident != ident else (ident * 100 if ident <= 1 else ident)
        novelty = p.get("novelty")
        rows.append({
            "#": p.get("proposal_id"),
            RUN_COLUMN: f"run {p.get('run_id')} ({p.get('collection') or 'no collection'})",
            "name": candidate_label(p),
            "placed in": placement(p),
            "specimens": named_later_text(p.get("size"), (named_later or {}).get(int(p["proposal_id"]), ()))
            if named_later and p.get("proposal_id") is not None else p.get("size"),
            "_size": p.get("size"),
            KNOWN_SPECIES: species,
            # a carried assignment with no identity to its species here: the one the decision it carries rested on
            "identity": (carried_identity(p) or "") if ident is None else f"{ident:.1f}%" + (
                f" ({below})" if p.get("status") != "assigned"
                and (below := below_order_words(ident / 100, cut, placed=placement(p) != "unplaced")) else ""),
            "novelty": "" if novelty is None or novelty != novelty else f"{novelty:.2f}",
            "status": p.get("status") or "",
        })
    # an export over several runs (a week's batch): which run and collection each candidate came from, as
    # proposals.csv's run_id and collection (a table of three plates' candidates said nothing of it)
    several = "run_id" in proposals
    table = pd.DataFrame(rows, columns=["#", *([RUN_COLUMN] if several else []), "name", "placed in", "specimens",
                                        "_size", KNOWN_SPECIES, "identity", "novelty", "status"])
    if table.empty:
        return table.drop(columns="_size")
    table["_set_aside"] = table["status"].isin(NOT_CANDIDATES)
    table = table.sort_values(["_set_aside", "_size", "#"], ascending=[True, False, True], kind="stable")
    return table.drop(columns=["_set_aside", "_size"])


#: Pending candidates given a row of the report's table and a section of their own (the largest); every one a
#: reviewer decided is shown whatever these say. The rest are in the CSV and JSON exports, and the report says so.
TABLE_LIMIT = 50
DETAIL_LIMIT = 100
#: Photographs per candidate section.
PHOTOS_PER_CANDIDATE = 4
THUMBNAIL_PX = 180


def _thumbnail(path: object) -> str | None:
    """A data URI of a small JPEG of the photograph at ``path``; None when it is missing or unreadable."""
    from pathlib import Path

    try:
        from PIL import Image

        p = Path(str(path))
        if not p.is_file():
            return None
        with Image.open(p) as im:
            im.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="JPEG", quality=80)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    except Exception:  # a bad photo never stops a report
        log.debug("no thumbnail for %s", path, exc_info=True)
        return None


def _dict(value: object) -> dict:
    """``value`` when it is a JSON object, else an empty one (an export's evidence may lack any part)."""
    return value if isinstance(value, dict) else {}


def _photo_paths(p: dict, members: pd.DataFrame, images: dict) -> list[tuple[str, object]]:
    """(processid, path) of a candidate's photographs: the evidence's representative images first."""
    out: list[tuple[str, object]] = []
    ev = _dict(p.get("evidence"))
    for r in ev.get("representative_images") or []:
        if isinstance(r, dict) and r.get("processid") and r.get("path"):
            out.append((str(r["processid"]), r["path"]))
    seen = {pid for pid, _ in out}
    for pid in members["processid"] if "processid" in members else []:
        if pid not in seen and images.get(pid):
            out.append((pid, images[pid]))
    return out[:PHOTOS_PER_CANDIDATE]


def _facts_table(facts: list[tuple[str, str]]) -> str:
    e = html.escape
    return "<table class='facts'>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts) + \
        "</table>"


def _notes_html(trail: ReviewTrail | None) -> str:
    """The reviewers' notes, quoted and signed (a carried one saying where it was written), then the reviews a later
    run carried here as the database's actions, unquoted: "rename carried from #2 by run 5" read as the reviewer's
    words, backdated, in a season's report (e29 F9); each saying whose review it repeats, when, and on which
    candidate (a review carried twice named only the machine and the intermediate candidate, e31 F4)."""
    e = html.escape
    if trail is None or not (trail.notes or trail.carried):
        return ""
    return "<ul class='notes'>" + "".join(
        f"<li>“{e(n.text)}” <span class='note'>{e(n.reviewer)}, {e(_when(n.at))}"
        + (f", {e(n.on)}" if n.on else "") + "</span></li>" for n in trail.notes) + "".join(
        f"<li class='carried'>{e(what)} <span class='note'>{e(MACHINE)}" + (f", {e(_when(at))}" if at else "")
        + f"; {e(whose)}</span></li>" for at, what, whose in trail.carried) + "</ul>"


def _decision(trail: ReviewTrail | None) -> list[tuple[str, str]]:
    if trail is None or not trail.decision:
        return []
    return [("decision", f"{trail.decision} by {trail.decided_by}, {_when(trail.decided_at)}")]


def candidate_section(p: dict, members: pd.DataFrame, specimens: dict, trail: ReviewTrail | None,
                      images: dict, met_here: Mapping[str, Mapping[str, int]] | None = None,
                      later: Sequence[tuple[str, int]] = (), merged_in: Sequence[str] = (),
                      order_cutoff: float | None = None) -> str:
    """One candidate: name and placement, a line of flags to scan, the barcode gap with its numbers, why it
    was not named, BINs and places, what reviewers decided and noted, member photographs and the member list.
    ``later``: of an accepted species in an export over several runs, the specimens other runs named as it
    (``RunExport.named_later``): its specimens fact counts them beside the members, and a line lists them by run,
    after the member list (the members are what the reviewer decided on; the taxonomist describing the species
    wants every specimen named as it, season review F4). ``order_cutoff``: its run's (``export.tables.order_cutoffs``):
    a nearest known species below it says so, as the table and the review's header do (e33 review F4)."""
    from biodiscover.discovery.barcode_gap import gap_of
    from biodiscover.workflows.export.dwca import named_later_text
    from biodiscover.workflows.export.flags import candidate_flags
    from biodiscover.workflows.export.tables import candidate_label, display_text, placement

    e = html.escape
    ev = _dict(p.get("evidence"))
    facts: list[tuple[str, str]] = [
        ("placed in", placement(p)),
        ("status", f"{p.get('status')} (version {p.get('version')})"),
        ("specimens", named_later_text(p.get("size"), later)),
        ("flags", " · ".join(candidate_flags(p, met_here)) or "none"),
    ]
    if merged_in:  # the candidates a reviewer folded into it (``tables.merge_text``): where their members came from
        facts.append(("merged in", "; ".join(merged_in)))
    ident = p.get("nearest_identity")
    if p.get("nearest_species"):
        pct = "" if ident is None or ident != ident else f" at {ident * 100 if ident <= 1 else ident:.1f}% identity"
        below = None if ident is None or ident != ident else \
            below_order_words(ident if ident <= 1 else ident / 100, order_cutoff, placed=placement(p) != "unplaced")
        facts.append(("nearest known species", f"{p['nearest_species']}{pct}" + (f", {below}" if below else "")))
    gap = gap_of(ev, ident)  # a candidate no member of which is usable COI has no gap to read: the data is the fact
    facts.append(("data quality" if gap.verdict == "not COI" else "barcode gap", gap.sentence()))
    near = _dict(ev.get("nearest_known"))
    if isinstance(near.get("not_named_because"), str) and near["not_named_because"].strip():
        facts.append(("not named because", near["not_named_because"]))
    b = ev.get("bin")
    if isinstance(b, dict) and b.get("dominant"):
        agree = b.get("agreement")
        facts.append(("BIN", f"{b['dominant']}" + (f", {agree * 100:.0f}% of members with a BIN"
                                                   if isinstance(agree, (int, float)) else "")))
    geo = _dict(ev.get("geography"))
    if _dict(geo.get("countries")):  # a hand-edited record may hold a list here: no "where", not a traceback
        places = "; ".join(f"{k} {v}" for k, v in geo["countries"].items())
        box = geo.get("bbox")
        if isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box):
            places += f" (lat {box[0]:.2f}…{box[1]:.2f}, lon {box[2]:.2f}…{box[3]:.2f})"
        facts.append(("where", places))
    facts += _decision(trail)
    photos = []
    for pid, path in _photo_paths(p, members, images):
        uri = _thumbnail(path)
        if uri:
            photos.append(f"<figure class='photo'><img alt='{e(pid)}' src='{uri}'><figcaption>{e(pid)}"
                          "</figcaption></figure>")
    photo_html = f"<div class='photos'>{''.join(photos)}</div>" if photos else \
        "<p class='note'>No photograph of these members was found.</p>"
    mem_rows = []
    for m in members.to_dict("records")[:30]:
        s = specimens.get(m["processid"], {})
        prob = m.get("probability")
        mem_rows.append(f"<tr><td>{e(str(m['processid']))}</td><td>{e(display_text(s.get('country')))}</td>"
                        f"<td>{e(display_text(s.get('dna_bin')))}</td>"
                        f"<td>{'' if prob is None or prob != prob else f'{prob:.2f}'}</td></tr>")
    more = f"<p class='note'>{len(members) - 30} more members in the CSV export.</p>" if len(members) > 30 else ""
    return (f"<section class='cand' id='cand-{e(str(p.get('proposal_id')))}'>"
            f"<h3>#{e(str(p.get('proposal_id')))} {e(candidate_label(p))}</h3>"
            f"{_facts_table(facts)}{_notes_html(trail)}{photo_html}"
            "<table><thead><tr><th>member</th><th>country</th><th>BIN</th><th>membership</th></tr></thead>"
            f"<tbody>{''.join(mem_rows)}</tbody></table>{more}{_named_later_html(later)}</section>")


def _named_later_html(later: Sequence[tuple[str, int]]) -> str:
    """The line under an accepted species' members listing, by run, the specimens later runs named as it."""
    if not later:
        return ""
    by_run: dict[int, list[str]] = {}
    for specimen, run in later:
        by_run.setdefault(run, []).append(specimen)
    each = "; ".join(f"run {run}: {len(ids)} ({', '.join(ids[:10])}"
                     + (f" and {len(ids) - 10} more)" if len(ids) > 10 else ")") for run, ids in sorted(by_run.items()))
    return (f"<p class='note'>Also named as this species by later runs of this export, from its keys (not members: "
            f"no reviewer grouped them): {html.escape(each)}. members.csv lists them with named_by_run, and this "
            "species' FASTA file holds them.</p>")


def assigned_section(p: dict, members: pd.DataFrame, trail: ReviewTrail | None) -> str:
    """A candidate a reviewer identified as a known species, short: which species, how many specimens (named),
    how close their barcodes are to that species as the evidence says, who decided when and their notes.
    What a PI checks of an identification; the full evidence is in the CSV / JSON export."""
    from biodiscover.workflows.export.flags import carried_identity, evidence_of, identity_to
    from biodiscover.workflows.export.tables import assigned_kind, carried_text

    e = html.escape
    species = str(p.get("provisional_name") or "")
    ids = [str(x) for x in members["processid"]] if "processid" in members else []
    carried = carried_text(p)
    facts = [("identified as", f"{species} ({assigned_kind(p)})"), ("specimens", str(p.get("size"))),
             *([("carried from", f"{carried}: a later triage proposed its specimens again")] if carried else []),
             ("identity to it", carried_identity(p) or identity_to(evidence_of(p.get("evidence")), species))]
    if ids:
        facts.append(("members", ", ".join(ids[:30]) + (f" and {len(ids) - 30} more" if len(ids) > 30 else "")))
    facts += _decision(trail)
    pid = e(str(p.get("proposal_id")))
    return (f"<section class='cand assigned' id='cand-{pid}'><h3>#{pid} {e(species)}</h3>"
            f"{_facts_table(facts)}{_notes_html(trail)}</section>")


def _pending(status: object) -> bool:
    """Not decided by a reviewer yet (the one status a cap may leave out of the report)."""
    from biodiscover.workflows.export.tables import awaiting_review

    return awaiting_review(status)


def candidate_sections(data: "RunExport", limit: int | None = None) -> str:
    """A section per proposal: candidates largest first, then the ones reviewers set aside. Every one a reviewer
    decided is shown (a candidate assigned to a known species in short, :func:`assigned_section`); of the
    pending ones the largest ``limit`` (default :data:`DETAIL_LIMIT`), and a note says how many more and where."""
    if data.proposals.empty:
        return ""
    limit = DETAIL_LIMIT if limit is None else limit
    specimens = {r["processid"]: r for r in data.specimens.to_dict("records")} if "processid" in data.specimens \
        else {}
    images = {pid: r.get("image_path") for pid, r in specimens.items() if r.get("image_path")}
    trails = data.trails()
    props = {p["proposal_id"]: p for p in data.proposals.to_dict("records")}
    by_prop = {k: g for k, g in data.members.groupby("proposal_id")} if not data.members.empty else {}
    from biodiscover.workflows.export.tables import merge_text, merged_into, order_cutoffs

    parts, left = [], 0
    flagged = check_first_ids(data.proposals, data.met_here)
    cutoffs = dict(zip(data.proposals["proposal_id"], order_cutoffs(data)))
    folded = merged_into(data)
    for i in candidate_table(data.proposals, data.named_later)["#"].tolist():
        p = props.get(i)
        if p is None:
            continue
        members = by_prop.get(i, data.members.iloc[0:0])
        if p.get("status") == "assigned":
            parts.append(assigned_section(p, members, trails.get(i)))
        elif not _pending(p.get("status")) or limit > 0 or i in flagged:
            limit -= int(_pending(p.get("status")) and i not in flagged)
            parts.append(candidate_section(p, members, specimens, trails.get(i), images, data.met_here,
                                           data.named_later.get(int(i), ()),
                                           [merge_text(m, holder=True) for m in folded.get(i, ())], cutoffs.get(i)))
        else:
            left += 1
    more = (f"<p class='note'>{plural(left, 'more pending candidate')} (the smallest, none flagged to check first) "
            f"{'is' if left == 1 else 'are'} not shown in detail here: see the CSV export (proposals.csv, "
            "members.csv) or the JSON export.</p>") if left else ""
    return "<h2>Candidate species in detail</h2>" + "".join(parts) + more


def check_first_ids(proposals: pd.DataFrame,
                    met_here: Mapping[str, Mapping[str, int]] | None = None) -> set[Any]:
    """The proposals whose flags say they may not be new (``export.flags.check_first``): the report lists them
    whatever their size, in its table and in detail."""
    from biodiscover.workflows.export.flags import check_first

    if proposals.empty or "proposal_id" not in proposals:
        return set()
    return {p["proposal_id"] for p in proposals.to_dict("records") if check_first(p, met_here)}


def report_table(proposals: pd.DataFrame, limit: int | None = None,
                 named_later: Mapping[int, Sequence[tuple[str, int]]] | None = None,
                 met_here: Mapping[str, Mapping[str, int]] | None = None,
                 order_cutoffs: Sequence[float | None] = ()) -> tuple[pd.DataFrame, int]:
    """:func:`candidate_table` with every decided row, every pending one flagged to check first
    (:func:`check_first_ids`) and the largest ``limit`` other pending ones (default :data:`TABLE_LIMIT`), and how
    many pending rows were left out."""
    table = candidate_table(proposals, named_later, order_cutoffs)
    if table.empty:
        return table, 0
    limit = TABLE_LIMIT if limit is None else limit
    flagged = table["#"].isin(check_first_ids(proposals, met_here))
    pending = table["status"].map(_pending) & ~flagged
    keep = ~pending | (pending.cumsum() <= limit)
    return table[keep], int((~keep).sum())


def _dataset_line(options: "ExportOptions | None") -> str:
    if options is None:
        return ""
    meta = options.metadata
    parts = []
    if meta.creators:
        parts.append("by " + ", ".join(c.display_name or "" for c in meta.creators))
    if meta.licence:
        parts.append(f"licence {meta.licence}")
    return " · ".join(parts)


def _partial_text(run: dict) -> str:
    done, total = run.get("done"), run.get("total")
    count = f": {done:,} of {total:,} specimens" if isinstance(done, int) and isinstance(total, int) else ""
    return f"This run did not complete (status {run.get('status')}{count}): this report is partial."


#: the most provisional species (accepted in the database) and the reference's interim species the line under the
#: cards names (:func:`open_names_text`); the rest are counted
PROVISIONAL_SHOWN = 10
INTERIM_SHOWN = 3


def open_names_text(names: Sequence[str], provisional: Mapping[str, Any]) -> str:
    """``12 to species accepted in this database (4 Psocodea gen. sp. BD-0004, …), 20 to the reference's interim
    species (8 Breuops sp. BIOUG97171-F01, … and 4 more)``: the open-nomenclature species ``names`` (one per
    specimen, the determinations' ``verbatimIdentification``) with their counts, most first, those of
    ``provisional`` (``RunExport.concepts``) apart. Why: week 2's report said "(… sp. BD-0002, … sp. BIOUG…)", a
    species none of its specimens carried, and none of the three the csv gave 11 of them (e35 week-2 review, F9)."""
    counts = pd.Series(list(names), dtype=object).value_counts(sort=False)
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")  # most first, then by name
    parts = []
    for mine, what, shown in ((True, "species accepted in this database", PROVISIONAL_SHOWN),
                              (False, "the reference's interim species", INTERIM_SHOWN)):
        these = counts[[(n in provisional) == mine for n in counts.index]]
        if these.empty:
            continue
        listed_ = [f"{int(c)} {n}" for n, c in these.items()]
        more = f" and {len(listed_) - shown} more" if len(listed_) > shown else ""
        parts.append(f"{int(these.sum())} to {what} ({', '.join(listed_[:shown])}{more})")
    return ", ".join(parts)


def _after_review(data: "RunExport", machine: int) -> str:
    """The line under the cards: they and the depth plot count the machine's naming; after review the determinations
    the archive writes (``dwca.determinations``) name this many to species. Why: a real plate's report said "1005
    named to species" where its archive and assignments.csv said 1,016, and neither said which was which."""
    from biodiscover.workflows.export.dwca import determinations

    det = determinations(data) if not data.assignments.empty else pd.DataFrame(
        columns=["processid", "taxonRank", "verbatimIdentification"])
    reviewed = int((det["taxonRank"] == "species").sum())
    # e31 review F16: "1015 named to species by the machine", then "after review … 1003": review seemed to have
    # un-named 12, who were named to an accepted provisional species, which the archive writes at its parent's rank
    machine_named = data.assignments.loc[data.assignments.get("deepest_rank", pd.Series(dtype=object)) == "species",
                                         ["processid", "deepest_taxon"]] if not data.assignments.empty else None
    names: list[str] = []
    if machine_named is not None and not machine_named.empty:
        both = machine_named.merge(det, on="processid")
        names = list(both.loc[(both["taxonRank"] != "species")
                              & (both["verbatimIdentification"] == both["deepest_taxon"]), "verbatimIdentification"])
    open_named = len(names)
    one = open_named == 1
    placed = (f"; {plural(open_named, 'specimen')} the machine named to a provisional or interim species "
              f"{'counts' if one else 'count'} at the rank the archive places {'it' if one else 'them'} in: "
              + open_names_text(names, data.concepts) if open_named else "")
    return ("The cards and the first plot are the machine's naming, before review; after review (the determinations "
            f"of the archive and assignments.csv) {plural(reviewed, 'specimen')} {'is' if reviewed == 1 else 'are'} "
            f"named to species{placed}."
            if reviewed != machine else
            "The cards and the first plot are the machine's naming; no review changed how many are named to species.")


def merged_away_line(data: "RunExport") -> str | None:
    """``Besides these, 1 candidate of this export was merged by a reviewer into another candidate (#29 into #2,
    accepted): see "Merged by a reviewer".``; None when none was. Why: the cards count live candidates only, and
    week 2's report after its #29 went into week 1's accepted #2 said "0 accepted" and nothing else (e32 R26)."""
    from biodiscover.workflows.export.tables import merged_away

    away = merged_away(data)
    if not away:
        return None
    pairs = "; ".join(f"#{m['source_id']} into #{m['into_id']}, {m['into_status']}" for m in away)
    return (f"Besides these, {plural(len(away), 'candidate')} of this export {'was' if len(away) == 1 else 'were'} "
            f"merged by a reviewer into another candidate ({pairs}): see \"Merged by a reviewer\" below.")


def merges_html(data: "RunExport") -> str:
    """The list of merges touching the export's candidates (``tables.merge_text``), under the candidate table: a
    merged candidate has no row or section of its own, and a name written down from an earlier export ("cand29")
    must lead somewhere (e32 review R6)."""
    from biodiscover.workflows.export.tables import merge_text

    if data.merges.empty:
        return ""
    items = "".join(f"<li>{html.escape(merge_text(m))}</li>" for m in data.merges.to_dict("records"))
    return ("<h3>Merged by a reviewer</h3><p class='note'>A candidate merged into another is no longer a candidate of "
            f"its own: its specimens are the other's members.</p><ul>{items}</ul>")


def summary_cards(data: "RunExport") -> list[tuple[str, int]]:
    """The report's cards, (label, figure) each: specimens, named to species, novel, then the proposals as
    :func:`~biodiscover.workflows.export.tables.counts_text` counts them (the command line's and eml.xml's words)."""
    from biodiscover.workflows.export.tables import proposal_counts

    novel = int(_novel_mask(data.assignments).sum())
    species = int((data.assignments.get("deepest_rank", pd.Series(dtype=object)) == "species").sum())
    counts = proposal_counts(data.proposals)
    decided = [(label, counts[key]) for label, key in (("assigned to a known species", "assigned"),
                                                       ("rejected by a reviewer", "rejected")) if counts[key]]
    # the candidates card is the sum of the cards that break it down (it counted the live ones alone: "5 candidate
    # species" above 1 accepted, 4 awaiting, 1 assigned and 1 rejected, on the weekly-batch review)
    cards = [("specimens", len(data.assignments)), ("named to species by the machine", species),
             ("flagged novel", novel), ("candidate species proposed", counts["proposed"]),
             ("accepted by a reviewer", counts["accepted"]), ("awaiting review", counts["pending"])]
    if counts["not_coi"]:  # pending, but not candidate species: none of their reads is usable COI (e32 review R13)
        cards.append(("candidates of reads not usable as COI, not counted as species", counts["not_coi"]))
    # what reviewers set aside counts too: an identification of a known species is a result a PI checks
    return cards + decided


def build_html(data: "RunExport", options: "ExportOptions | None" = None) -> str:
    """One self-contained HTML page for a run (plots embedded as base64 PNG)."""
    from biodiscover.workflows.export.dwca import joined_runs_text, run_specimens_words
    from biodiscover.workflows.export.dwca import method_steps, set_aside_sentences
    from biodiscover.workflows.export.tables import model_description, order_cutoffs, set_aside_note

    run = data.run
    plots = render_plots(data)
    cards = summary_cards(data)
    species = dict((label, n) for label, n in cards)["named to species by the machine"]
    card_html = "".join(f"<div class='card'><b>{n}</b>{html.escape(label)}</div>" for label, n in cards)
    figs = "".join(
        f"<figure id='{p.key}'><img alt='{html.escape(p.title)}' src='{p.data_uri()}'>"
        f"<figcaption>{html.escape(p.caption)}</figcaption></figure>" for p in plots)
    ids = listed([r.get("id") for r in data.runs])
    which = f"runs {ids}" if data.runs else f"run {run.get('id', '')}"
    if options is not None and options.metadata.title:
        heading = options.metadata.title
    elif data.runs:  # an export over several runs (a week's batch): each run and its collection
        heading = f"Discovery runs {ids} · {run.get('collection')}"
    else:
        heading = f"Discovery run {run.get('id', '')}" + (f" · {run['collection']}" if run.get("collection") else "")
    if data.runs:
        models = list(dict.fromkeys(model_description(r) for r in data.runs))
        meta = [*(f"run {r.get('id')}: {r.get('collection') or 'no collection'}, {r.get('status')}, "
                  f"{run_specimens_words(r)}" for r in data.runs),
                f"model{'s' if len(models) > 1 else ''} {listed(models)}"]
    else:
        meta = [f"{run.get('kind', 'triage')} run, {run.get('status', 'status unknown')}",
                *([f"collection {run['collection']}"] if run.get("collection") else []),
                f"model {model_description(run)}"]
    if run.get("started_at"):
        meta.append(f"started {_when(run.get('started_at'))}")
    if run.get("finished_at"):
        meta.append(f"finished {_when(run.get('finished_at'))}")
    table, left_out = report_table(data.proposals, named_later=data.named_later, met_here=data.met_here,
                                   order_cutoffs=order_cutoffs(data))
    left_note = (f"The other {plural(left_out, 'pending candidate')} (the smallest, none flagged to check first) "
                 f"{'is' if left_out == 1 else 'are'} in the CSV export (proposals.csv) and the JSON export."
                 if left_out else "")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>biodiscover {html.escape(which)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(str(heading))}</h1>"
        f"<p class='sub'>{html.escape(' · '.join(meta))}</p>"
        + (f"<p class='{'warn' if data.partial else 'note'}'>{html.escape(joined_runs_text(data.runs))}</p>"
           if data.runs else "")
        + (f"<p class='warn'>{html.escape(_partial_text(run))}</p>" if data.partial and not data.runs else "")
        + "".join(f"<p class='note'>{html.escape(said)}.</p>" for said in set_aside_sentences(run, data.runs))
        + f"<div class='cards'>{card_html}</div>"
        + f"<p class='note'>{html.escape(_after_review(data, species))}</p>"
        + (f"<p class='note'>{html.escape(away)}</p>" if (away := merged_away_line(data)) else "") + figs
        + "<h2>How the names were made</h2>"
        + "".join(f"<p class='note'>{html.escape(step)}</p>" for step in method_steps(run, data.runs))
        + "<h2>Candidate species, largest first</h2>"
        + (f"<p class='note'>{html.escape(set_aside_note(data.proposals))}</p>" if set_aside_note(data.proposals)
           else "")
        + _table(table, list(table.columns), limit=len(table))
        + (f"<p class='note'>{html.escape(left_note)}</p>" if left_note else "")
        + merges_html(data)
        + "<p class='note'>Generated by biodiscover. Candidate species are proposals for a taxonomist to review, "
          "not described species; identity is to the nearest species in the reference (to the species a reviewer "
          "assigned, for one marked assigned; for one carried from an earlier run that this run's evidence does not "
          "measure, what that run's decision rested on, as the cell says).</p>"
        + candidate_sections(data)
        + (f"<p class='note'>{html.escape(_dataset_line(options))}</p>" if _dataset_line(options) else "")
        + "</body></html>"
    )
