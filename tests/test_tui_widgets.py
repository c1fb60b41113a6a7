"""Presentation pieces of the review app that need no database: pure functions and small widgets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from biodiscover.storage.errors import InputError
from biodiscover.tui.app import ReviewApp
from biodiscover.tui.commands import COMMANDS
from biodiscover.tui.keymap import load_keymap
from biodiscover.tui.screens.detail import DetailScreen
from biodiscover.tui.screens.queue import QueueQuery, QueueScreen, parse_filter
from biodiscover.tui.screens.taxonomy import TaxonomyScreen
from biodiscover.tui.widgets.dna_panel import DnaPanel, variable_sites
from biodiscover.tui.widgets.geography import render_geography
from biodiscover.tui.widgets.histogram import bin_distances, render_histogram
from biodiscover.tui.widgets.run_progress import render_counts, render_run


def test_variable_sites_ignore_ambiguous_bases() -> None:
    cons = "ACGTACGTAC"
    seqs = ["ACGTACGTAC", "ACCTACGTAC", "ACGTNCGTAA", "ACGTACG"]
    # col 2 (G→C) and col 9 (C→A); the N at col 4 and the short sequence are not variants
    assert variable_sites(cons, seqs) == [2, 9]
    assert variable_sites("ACGN", ["ACGT"]) == []


def test_bin_distances_counts_every_value_once() -> None:
    within = [0.0, 0.01, 0.012, 0.02]
    nearest = [0.08, 0.1, 0.1, 0.11]
    b = bin_distances(within, nearest, bins=5)
    # 0–11 % in at most 5 bins: 2.5 % wide, edges 0, 2.5, …, 12.5 %
    assert len(b.edges) == 6 and b.edges[0] == 0.0 and b.edges[-1] == pytest.approx(0.125)
    assert sum(b.within) == 4 and sum(b.nearest) == 4
    assert b.within[0] == 4 and b.nearest[-1] == 3  # the barcode gap: within left, nearest right
    assert bin_distances([], []).edges == ()
    same = bin_distances([0.05, 0.05], [])
    assert sum(same.within) == 2


def test_render_histogram_has_a_line_per_bin_and_counts() -> None:
    b = bin_distances([0.0, 0.01], [0.1, 0.1, 0.1], bins=4)
    lines = render_histogram(b).plain.splitlines()
    assert len(lines) == 1 + 3  # 0–10 % in at most 4 bins: three 5 % bins (0, 5, 10 %)
    assert [ln.split("│")[0].strip() for ln in lines[1:]] == ["0.0%", "5.0%", "10.0%"]
    assert lines[1].strip().startswith("0.0%") and lines[1].endswith("2/0")
    assert lines[-1].endswith("0/3")
    assert "no distances" in render_histogram(bin_distances([], [])).plain


def test_a_narrow_range_gets_round_distinct_bins_not_six_rows_of_one_distance() -> None:
    """A single specimen 0.7 % from its nearest known species is one row, not six rows labelled 0.7 %."""
    one = bin_distances([], [0.007])
    assert one.edges == pytest.approx((0.005, 0.01)) and one.nearest == (1,) and one.within == (0,)
    lines = render_histogram(one).plain.splitlines()
    assert len(lines) == 2 and lines[1].split("│")[0].strip() == "0.5%" and lines[1].endswith("0/1")
    # a tight candidate (members 0–0.4 % apart) 1.6–2.1 % from a known species: 0.5 % rows, labels distinct
    tight = bin_distances([0.0, 0.002, 0.004], [0.016, 0.021])
    labels = [ln.split("│")[0].strip() for ln in render_histogram(tight).plain.splitlines()[1:]]
    assert labels == ["0.0%", "0.5%", "1.0%", "1.5%", "2.0%"]
    assert tight.within == (3, 0, 0, 0, 0) and tight.nearest == (0, 0, 0, 1, 1)
    # every value lands in the bin whose lower edge it reaches, also at an exact edge
    edge = bin_distances([0.01, 0.02], [0.03], bins=3)
    assert edge.edges == pytest.approx((0.01, 0.02, 0.03, 0.04))
    assert edge.within == (1, 1, 0) and edge.nearest == (0, 0, 1)


def test_histogram_without_nearest_known_distances_says_so() -> None:
    """No empty magenta column with "n/0" counts when the evidence has no distances to known species."""
    text = render_histogram(bin_distances([0.0, 0.01, 0.012], [], bins=3)).plain
    lines = text.splitlines()
    assert "to nearest known" not in lines[0] and "/" not in "".join(lines[1:4])
    assert lines[1].endswith(" 1") and lines[-1] == "distances to the nearest known species: not recorded"


def test_geography_orders_by_count_and_folds_the_tail() -> None:
    text = render_geography([("Canada", 3), ("Costa Rica", 9), ("Kenya", 1), ("Peru", 1), ("Chile", 1),
                             ("Gabon", 1), ("Fiji", 1)], bbox=(9.1, 45.0, -83.0, -63.0), limit=3).plain
    lines = text.splitlines()
    assert lines[0].startswith("Costa Rica") and " 9 " in lines[0]
    assert lines[1].startswith("Canada")
    assert "+4 more places (4 specimens)" in text
    assert "lat 9.10…45.00" in lines[-1]
    assert "no locality" in render_geography([]).plain


def test_counts_and_run_lines() -> None:
    assert "pending 1,234 · accepted 2 · rejected 0" in render_counts({"pending": 1234, "accepted": 2,
                                                                        "rejected": 0}).plain
    line = render_run({"id": 3, "kind": "run", "status": "running", "done": 10, "total": 200, "stale": True}).plain
    assert "run 3 running 10/200" in line and "no heartbeat" in line
    assert render_run(None).plain == "no batch run"


def test_the_queue_status_line_keeps_the_counts_and_the_run_apart_at_80_columns() -> None:
    """A second review of a real plate read ``assigned 10run 1 completed 1,200/1,200`` at 80 columns."""
    from biodiscover.tui.widgets.run_progress import QueueStatus

    class _StatusApp(App[None]):
        CSS = "QueueStatus { padding: 0 1; }"  # as the queue screen pads it (tui/app.tcss #queue-status)

        def compose(self) -> ComposeResult:
            yield QueueStatus()

    async def run() -> str:
        app = _StatusApp()
        async with app.run_test(size=(80, 5)) as pilot:
            app.query_one(QueueStatus).show({"pending": 92, "accepted": 15, "rejected": 0, "assigned": 10},
                                            {"id": 1, "status": "completed", "done": 1200, "total": 1200})
            await pilot.pause()
            return "".join(seg.text for seg in app.screen._compositor.render_strips()[0])

    line = asyncio.run(run())
    assert "pending 92 · accepted 15 · rejected 0 · assigned 10 " in line, line
    assert "assigned 10 run 1 completed 1,200" in " ".join(line.split()), line  # one count when every one is done


def test_parse_filter_terms() -> None:
    q = parse_filter("size>=5 novelty>=0.9 identity<=97 parent=Megaselia status=all big wings", QueueQuery())
    assert (q.min_size, q.min_novelty, q.max_identity, q.parent, q.status, q.search) == (
        5, 0.9, pytest.approx(0.97), "Megaselia", None, "big wings")
    assert parse_filter("identity>=0.9", q).min_identity == pytest.approx(0.9)
    cleared = parse_filter("", q)
    assert cleared.min_size is None and cleared.parent is None and cleared.status is None
    with pytest.raises(ValueError, match="cannot read filter term 'size<=3'"):
        parse_filter("size<=3", QueueQuery())


def test_a_filter_term_that_would_silently_empty_the_queue_is_refused_naming_it() -> None:
    """``status=pendign`` (a typo) and ``novelty>=nan`` were taken as they were and the queue showed nothing, as if
    no candidate matched; an unclosed quote said only "No closing quotation". Each is one message naming what
    could not be read; a status or ``known=elsewhere`` in capitals is read as the lower-case one."""
    for text, term in (("status=pendign", "status=pendign"), ("size>=2 novelty>=nan", "novelty>=nan"),
                       ("identity<=inf", "identity<=inf")):
        with pytest.raises(ValueError, match=f"cannot read filter term '{term}'"):
            parse_filter(text, QueueQuery())
    with pytest.raises(ValueError, match="cannot read the filter: a quote is not closed"):
        parse_filter('parent="Megaselia', QueueQuery())
    q = parse_filter("status=Accepted known=Elsewhere", QueueQuery())
    assert (q.status, q.known_elsewhere) == ("accepted", True)
    assert parse_filter("status=merged", QueueQuery()).status == "merged"  # every status the database knows


def test_filter_dialog_text_round_trips_and_speaks_percent() -> None:
    """The filter dialog opens with the current filter; identity reads in percent like the table."""
    q = parse_filter("status=all size>=3 novelty>=0.8 identity<=95 parent='Dreum' wing 'dark spot'", QueueQuery())
    assert "identity<=95" in q.describe() and "status=all" in q.describe()
    again = parse_filter(q.filter_text(), QueueQuery(status="accepted"))
    assert again == q
    # A taxon picked in the tree (an id: its subtree) survives editing the filter around it.
    picked = QueueQuery(status=None, parent=7, parent_label="Megaselia")
    assert parse_filter(picked.filter_text() + " size>=2", picked).parent == 7


def test_queue_names_fit_their_column_with_an_ellipsis() -> None:
    from types import SimpleNamespace

    from biodiscover.tui.widgets.proposal_table import column_widths, row_cells

    narrow, wide = column_widths(80), column_widths(160)
    assert sum(narrow.values()) + 2 * len(narrow) <= 80 - 2
    assert wide["nearest"] > narrow["nearest"] and wide["taxon"] > narrow["taxon"]
    p = SimpleNamespace(id=44, status="accepted", provisional_name="Tiaopsis sp. BD-chiapas-highlands-1",
                            name="Tiaopsis sp. BD-chiapas-highlands-1",
                        parent_name="Tiaopsis", size=1, novelty=0.51, nearest_identity=0.994,
                        nearest_species="Thopliaus sp. BIOUG95524-A07")
    cells = [c.plain for c in row_cells(p, narrow)]
    assert cells[2].endswith("…") and len(cells[2]) == narrow["taxon"]
    assert cells[6].endswith("…") and len(cells[6]) == narrow["nearest"]
    assert cells[5] == " 99.4 "  # no order cut-off: a blank where ↓ would stand, the figures aligned
    assert [c.plain for c in row_cells(p, wide)][6] == "Thopliaus sp. BIOUG95524-A07"


def test_barcode_gap_is_judged_against_the_learned_threshold() -> None:
    """Issue 15 item 8: 0.8 % within vs 1.1 % to the nearest known species is no gap when the learned
    species threshold is 2.2 %; the line states the three numbers."""
    from biodiscover.storage.evidence import Evidence
    from biodiscover.tui.evidence import barcode_gap

    E = Evidence.from_dict

    close = barcode_gap(E({"within_distance": {"mean": 0.004, "max": 0.008}, "nearest_known_distances": [0.011, 0.02],
                           "threshold": 0.022}), 0.989)
    assert (close.within_max, close.nearest, close.threshold, close.verdict) == (0.008, 0.011, 0.022, "not separated")
    assert close.sentence() == "no gap: nearest known 1.1% away ≤ threshold 2.2%; members ≤ 0.8% apart"
    good = barcode_gap(E({"within_distances": [0.0, 0.004], "nearest_known_distances": [0.09, 0.08],
                          "threshold": 0.022}), 0.5)
    assert good.verdict == "gap"
    assert good.sentence() == "barcode gap: members ≤ 0.4% apart, nearest known 8.0% away (threshold 2.2%)"
    overlap = barcode_gap(E({"within_distance": {"mean": 0.01, "max": 0.06}, "threshold": 0.022}), 0.95)
    assert overlap.verdict == "no gap"
    assert overlap.sentence() == "no gap: nearest known 5.0% away, members ≤ 6.0% apart (threshold 2.2%)"
    wide = barcode_gap(E({"within_distance": {"mean": 0.01, "max": 0.03}, "threshold": 0.022}), 0.92)
    assert wide.verdict == "unknown" and wide.sentence() == ("unclear: members ≤ 3.0% apart > threshold 2.2%; nearest "
                                                             "known 8.0% away")
    no_threshold = barcode_gap(E({"within_distance": {"max": 0.004}}), 99.0)  # identity in percent
    assert no_threshold.nearest == pytest.approx(0.01) and no_threshold.verdict == "unknown"
    assert "(no learned threshold to judge a gap)" in no_threshold.sentence()
    assert all(len(barcode_gap(E(e), i).sentence()) <= 78 for e, i in
               (({"within_distance": {"max": 0.1234}, "threshold": 0.02}, 0.5),
                ({"within_distance": {"max": 0.2}}, 0.9)))
    assert "not recorded" in barcode_gap(Evidence(), None).sentence()


def test_why_lines_say_how_a_candidate_was_formed() -> None:
    from types import SimpleNamespace

    from biodiscover.storage.evidence import Evidence
    from biodiscover.tui.evidence import why_lines

    members = [SimpleNamespace(novelty=0.5), SimpleNamespace(novelty=0.75), SimpleNamespace(novelty=None)]
    lines = dict(why_lines(Evidence(threshold=0.03, linkage="single", hdbscan_agreement=1.0, mean_probability=0.9),
                           members))
    assert lines["novelty"] == "0.50–0.75 across members (mean 0.62)"
    assert lines["clustered"] == ("single linkage at ≤ 3.0% p-distance; HDBSCAN agrees 100%; mean membership 0.90 "
                                  "(P(same species) at each member's distance from the others, calibrated on the "
                                  "reference; ctr% in Members: each one's distance from the consensus)")
    # a record stored before evidence format 6: its figure averaged HDBSCAN's soft membership in, and says so
    old = Evidence.from_dict({"format": 5, "threshold": 0.03, "linkage": "single", "mean_probability": 0.49})
    assert dict(why_lines(old, members))["clustered"] == (
        "single linkage at ≤ 3.0% p-distance; clustering score 0.49 (stored by an earlier version: P(same species) "
        "by distance averaged with HDBSCAN's soft membership, ≈0 where HDBSCAN sees one cluster: not doubt; ctr% in "
        "Members: each one's distance from the consensus)")
    assert why_lines(Evidence(), []) == []
    from biodiscover.storage.evidence import NearestKnown

    reason = "P(right) 0.57 below the level 0.98, P(absent from the reference) 0.07"
    near = Evidence(nearest_known=NearestKnown(species="Zeopsis vosiaipes", identity=0.933, not_named_because=reason))
    assert dict(why_lines(near, []))["not named"] == reason


def test_keymap_file(tmp_path: Path) -> None:
    good = tmp_path / "keymap.toml"
    good.write_text('"proposal.accept" = "A"\n"proposal.reject" = "x,delete"\n')
    ids = ReviewApp.binding_ids()
    assert load_keymap(good, ids) == {"proposal.accept": "A", "proposal.reject": "x,delete"}
    bad = tmp_path / "bad.toml"
    bad.write_text('"proposal.acept" = "A"\n')
    with pytest.raises(InputError, match=r"bad.toml: unknown binding id\(s\) proposal.acept"):
        load_keymap(bad, ids)
    broken = tmp_path / "broken.toml"
    broken.write_text("proposal.accept = \n")
    with pytest.raises(InputError, match=r"broken.toml: not valid TOML"):
        load_keymap(broken, ids)
    with pytest.raises(InputError, match="keymap file not found"):
        load_keymap(tmp_path / "missing.toml")


def test_binding_ids_are_unique_per_screen_and_palette_actions_exist() -> None:
    for _, bindings in ReviewApp.binding_groups():
        ids = [b.id for b in bindings if b.id]
        assert len(ids) == len(set(ids))
    screens = (QueueScreen, DetailScreen, TaxonomyScreen)
    for text, action, _ in COMMANDS:
        noun, _, verb = text.partition(": ")
        assert noun and verb, text
        assert any(hasattr(s, f"action_{action.split('(')[0]}") for s in screens), text


class _DnaApp(App[None]):
    def compose(self) -> ComposeResult:
        yield DnaPanel()


def test_dna_panel_draws_consensus_marks_and_scrolls() -> None:
    async def run() -> None:
        app = _DnaApp()
        async with app.run_test(size=(40, 6)) as pilot:
            panel = app.query_one(DnaPanel)
            cons = "ACGT" * 30
            member = cons[:50] + "T" + cons[51:]  # one variant at column 50 (consensus G → T)
            panel.set_sequences(cons, [("SAMPLE-1", cons), ("SAMPLE-2", member)])
            await pilot.pause()
            assert panel.variable_site_count == 1
            text = lambda y: panel.render_line(y).text  # noqa: E731
            assert text(0).startswith("consensus ACGTACGT")
            assert text(2).startswith("SAMPLE-1")
            panel.scroll_to(x=45, animate=False)
            await pilot.pause()
            width = panel.scrollable_content_region.width - len("consensus ")
            assert text(0)[len("consensus "):] == cons[45:45 + width]
            assert text(1)[len("consensus ") + 5] == "^"  # column 50 marked on the sites line
            assert text(1).startswith(f"bp 46–{45 + width}")  # the ruler says which columns are in view
            assert text(3)[len("consensus ") + 5] == "T"

    asyncio.run(run())


def test_evidence_lines_from_discovery_keys() -> None:
    from biodiscover.storage.evidence import Evidence
    from biodiscover.tui.evidence import extra_lines

    lines = dict(extra_lines(Evidence.from_dict({
        "bin": {"dominant": "BOLD:AAA0001", "agreement": 0.75, "shared_with": [12]},
        "within_distance": {"mean": 0.004, "max": 0.011},
        "between_distance": {"nearest_candidate": 3, "distance": 0.052},
        "size_summary": {"image_measurement_value": {"n": 3, "median": 2100.0, "min": 1800.0, "max": 2500.0}},
    })))
    # a record naming no specimen of the candidates sharing its BIN: their numbers are the clustering's, no ids
    assert lines["BIN"] == "BOLD:AAA0001, 75% of members; also in 1 other candidate(s) of its run (over-split?)"
    assert lines["within"] == "mean 0.40%, max 1.10%"
    assert lines["closest candidate"] == "5.2% away"  # a record that does not say which
    from types import SimpleNamespace

    named = dict(extra_lines(Evidence.from_dict({"between_distance": {"nearest_candidate": 3, "distance": 0.052,
                                                                      "member": "S1"}}),
                             SimpleNamespace(id=14, name="Tiaopsis sp. cand14")))
    assert named["closest candidate"] == "#14 Tiaopsis sp. cand14, 5.2% away"
    shared = dict(extra_lines(Evidence.from_dict({"bin": {"dominant": "BOLD:AAA0001", "agreement": 1.0,
                                                          "shared_with": [12], "shared_members": ["S9"]}}),
                              bin_holders=[SimpleNamespace(id=7, name="x"), SimpleNamespace(id=9, name="y")]))
    assert shared["BIN"] == "BOLD:AAA0001, 100% of members; also in #7, #9 (over-split?)"
    assert lines["body area (px in image)"] == "median 2100 (min 1800, max 2500)"
    assert extra_lines(Evidence()) == []


def test_image_panel_grid_reference_zoom_and_broken_files(tmp_path: Path) -> None:
    from PIL import Image

    from biodiscover.tui.widgets.image_panel import ImagePanel

    good = tmp_path / "A-1.png"
    Image.new("RGB", (32, 24), (200, 40, 40)).save(good)
    broken = tmp_path / "A-3.jpg"
    broken.write_bytes(b"not a jpeg")
    ref = tmp_path / "K-9.png"
    Image.new("RGB", (32, 24), (40, 40, 200)).save(ref)

    class _App(App[None]):
        def compose(self) -> ComposeResult:
            yield ImagePanel(force_halfcell=True)

    async def run() -> None:
        app = _App()
        async with app.run_test(size=(90, 26)) as pilot:
            panel = app.query_one(ImagePanel)
            panel.set_images([("A-1", good), ("A-2", tmp_path / "A-2.jpg"), ("A-3", broken)], ("Megaselia k9", ref))
            await pilot.pause()
            assert panel.caption.startswith("photo 1/3: A-1") and panel.caption.endswith("drawn with half blocks")
            # the nearest known species beside a grid of the members; missing and broken files say so
            text = " ".join(str(w.render()) for w in panel.query(".tile-caption"))
            assert "nearest known species: Megaselia k9" in text and "▶ A-1" in text
            assert "(missing file A-2.jpg)" in text and "(unreadable" in text
            assert len(panel.query(".tile-view")) == 2  # A-1 and the reference are drawn
            panel.focus()
            await pilot.press("n")
            assert panel.caption.startswith("photo 2/3: A-2")
            await pilot.press("p", "z")
            await pilot.pause()
            assert panel.zoomed and len(panel.query(".zoom-view")) == 1 and "z: back to the grid" in panel.caption
            await pilot.press("z")
            await pilot.pause()
            assert not panel.zoomed and len(panel.query(".zoom-view")) == 0
            panel.set_images([])
            await pilot.pause()
            assert panel.caption == "no images for these members"

    asyncio.run(run())


def test_pale_photographs_stay_grey_in_a_256_colour_terminal() -> None:
    """A pale warm-grey background went to the nearest cube colour channel by channel (pink, #ffd7d7);
    mapped to the palette by distance first, it lands on the grey ramp and stays there."""
    from PIL import Image
    from rich.color import Color, ColorSystem

    from biodiscover.tui.widgets.image_panel import to_xterm256

    pale = (240, 226, 226)
    channelwise = Color.from_rgb(*pale).downgrade(ColorSystem.EIGHT_BIT).get_truecolor()
    assert tuple(channelwise) == (255, 215, 215)  # what the terminal used to show: pink
    mapped = to_xterm256(Image.new("RGB", (4, 4), pale)).getpixel((0, 0))
    assert mapped[0] == mapped[1] == mapped[2]  # a grey of the ramp
    again = Color.from_rgb(*mapped).downgrade(ColorSystem.EIGHT_BIT).get_truecolor()
    assert again[0] == again[1] == again[2] and abs(again[0] - mapped[0]) <= 10  # the terminal draws a grey
    red = to_xterm256(Image.new("RGB", (1, 1), (200, 40, 40))).getpixel((0, 0))
    assert red[0] > 150 and red[1] < 80  # colours stay colours


def test_split_and_merge_option_labels_fit_the_dialog() -> None:
    """Split options are aligned columns inside the 72-cell dialog; merge options name the nearest known species."""
    from types import SimpleNamespace

    from biodiscover.tui.decisions import member_label, proposal_label

    members = [SimpleNamespace(processid="RVEBS5120-20", dna_bin=None, country="Democratic Republic of the Congo",
                               probability=1.0, novelty=0.57),
               SimpleNamespace(processid="KNFZ945-20", dna_bin="BOLD:AAA0001", country="Pakistan",
                               probability=0.5, novelty=None)]
    labels = [member_label(m, centre=c) for m, c in zip(members, (0.0, 0.0033))]
    assert all(len(label) <= 62 for label in labels)
    assert labels[0].index("no BIN") == labels[1].index("BOLD:AAA0001")  # columns line up
    # each one's distance from the consensus, not the clustering's membership (e25 finding 8)
    assert labels[1].index("ctr 0.3%") == labels[0].index("ctr 0.0%") and labels[1].endswith("nov –")
    assert "ctr –     nov" in member_label(members[0])
    p = SimpleNamespace(id=21, provisional_name=None, parent_name="Tiaopsis", size=3, nearest_species="Tiaopsis xua",
                        nearest_identity=0.97, status="pending", name="Tiaopsis sp. cand21")
    assert proposal_label(p) == "#21 Tiaopsis sp. cand21 · n=3 · nearest Tiaopsis xua 97.0%"
    assert proposal_label(p, "family Phoridae").endswith("97.0% → under family Phoridae")


def test_queue_names_keep_the_part_that_tells_candidates_apart() -> None:
    """Found reviewing the demo at 80 columns: "Taeglaeocera sp. cand…" and "Gebeixinae gen. sp. c…" hid the
    candidate's own number; then (e33 review F8) the qualifier went first, and a season's queue read "Coenosiinae
    cand24" beside "Syrphinae gen. sp. cand23" (e36 season review, finding 7): the number and the qualifier stay,
    the taxon is shortened; the qualifier goes only where no letter of the taxon would be left."""
    from biodiscover.tui.widgets.proposal_table import fit_name

    assert fit_name("Taeglaeocera sp. cand16", 22) == "Taeglaeoce… sp. cand16"
    assert fit_name("Gebeixinae gen. sp. cand24", 22) == "Gebei… gen. sp. cand24"
    assert fit_name("Coenosiinae gen. sp. cand24", 26) == "Coenosiin… gen. sp. cand24"
    assert fit_name("Syrphinae gen. sp. cand23", 26) == "Syrphinae gen. sp. cand23"
    assert fit_name("Lepidoptera gen. sp. cand17", 17) == "Lepidopte… cand17"
    assert fit_name("Megaselia sp. cand7", 22) == "Megaselia sp. cand7"  # whole where it fits
    assert fit_name("Mioites sea", 22) == "Mioites sea"
    assert all(len(fit_name(n, 22)) <= 22 for n in ("Tiaopsisinae gen. sp. cand36", "Megaselia sp. BD-0007",
                                                    "Tiaopsis sp. BD-chiapas-highlands-1"))


def test_a_p_right_under_the_level_never_reads_as_reaching_it() -> None:
    """A third real-plate review (D2): "members' labels agree down to order Lepidoptera (P(right) 0.98, under the
    level)" for 0.977, and a Members column of 0.98s under a level of 0.98. Figures under the level are cut to two
    decimals, not rounded up to it."""
    from types import SimpleNamespace

    from biodiscover.tui.evidence import label_at, p_span, p_under

    assert p_under(0.977) == "0.97" and p_under(0.98) == "0.98" and p_under(0.3449) == "0.34"
    assert p_span([0.961, 0.979]) == "0.96–0.97" and p_span([0.975, 0.979]) == "0.97"
    member = SimpleNamespace(labels={"genus": "Urbanus"}, confidences={"genus": 0.9799})
    assert label_at(member, "genus") == "0.97 Urbanus"


def test_the_header_says_when_species_of_other_genera_are_as_near_as_the_one_it_names() -> None:
    """An Australian plate's #17: four species of four families at 91.5 % to its members, and the header said
    "nearest known Gonodonta bidens", a name a reviewer copies into a note (third real-plate review, A6)."""
    from biodiscover.storage.evidence import Evidence, NearSpecies
    from biodiscover.tui.evidence import nearest_header

    near = (NearSpecies("Gonodonta bidens", "Gonodonta", 0.915), NearSpecies("Chionodes sistrella", "Chionodes", 0.915),
            NearSpecies("Eilema plana", "Eilema", 0.9145), NearSpecies("Nystalea montana", "Nystalea", 0.910))
    assert nearest_header(Evidence(near_species=near), "Gonodonta bidens", 0.915) == (
        "Gonodonta bidens + 2 as near in other genera", 0.915)
    # a tie within the genus is named; species farther than the tie are not counted
    near = (NearSpecies("Gonodonta bidens", "Gonodonta", 0.991), NearSpecies("Gonodonta uxor", "Gonodonta", 0.9905),
            NearSpecies("Halysidota tessellaris", "Halysidota", 0.95))
    assert nearest_header(Evidence(near_species=near), "Gonodonta bidens", 0.991) == (
        "Gonodonta bidens / G. uxor", 0.991)


def test_the_help_says_what_every_queue_and_members_column_and_mark_means() -> None:
    """e33 review F9: the help listed keys by their ids and explained none of the screen's terms. Every column the
    queue and the members table title, and every mark the queue draws, is in the help's glossary."""
    from biodiscover.tui.screens.detail import MEMBER_COLUMNS
    from biodiscover.tui.screens.help import glossary_text
    from biodiscover.tui.widgets.proposal_table import COLUMNS

    said = str(glossary_text())
    titles = {title for _, title, _ in COLUMNS if title} | {title for _, title, _, _ in MEMBER_COLUMNS}
    titles -= {"#", "candidate", "processid", "BIN", "country", "area"}  # names, not terms
    missing = [t for t in titles | {"⚑", "⚐", "≡", "⚠COI", "⚠key", "✎", "378/0"} if t not in said]
    assert not missing, missing
