"""The naming model's small parts, each on hand-made inputs whose answer follows from its contract
(``discovery/naming.py``): the forecast of what the walk does with simulated queries (``_outcomes``:
every group weighs the same), the lines ``build-reference`` and ``info`` print from it, novelty as the
largest P(absent) of the ranks that count, the settings' checks, internal spreads shrunk toward their
rank's mean, the distance and parent helpers.

The world-level tests (test_naming.py) show the model names well; these pin what each part promises, so
that a slip in one (a rank index, a group weight, a comparison at the level) cannot hide behind a
world where it happens not to matter.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from biodiscover.discovery.naming import (EPS, PUBLISHED_CUTOFFS, ROOT, Hits, NamingConfig, NamingModel, SimQuery,
                                          TaxonSpread, _outcomes, _parent, describe_expected, describe_support,
                                          log_distance)
from biodiscover.storage.records import RANKS

ALL = ("order", "family", "subfamily", "genus", "species")


def _q(truth: tuple, scenario: str, group: str) -> SimQuery:
    return SimQuery(0, None, truth, scenario, group, tuple(bool(t) for t in truth))


def _conf(**by_rank: float) -> dict[str, float]:
    return {r: by_rank.get(r, 0.99) for r in ALL}


def test_outcomes_count_each_scenario_and_weigh_every_group_the_same() -> None:
    lin = ("O1", "F", "S", "G", "G s")
    queries, tops, conf = [], [], []

    def add(truth, scenario, group, top, c):
        queries.append(_q(truth, scenario, group))
        tops.append(top)
        conf.append(c)

    # known species: sp1 named right; sp2 twice: once named to a wrong species, once only to genus
    add(lin, "present", "sp1", lin, _conf())
    add(("O1", "F", "S", "G", "G t"), "present", "sp2", ("O1", "F", "S", "G", "G s"), _conf())
    add(("O1", "F", "S", "G", "G t"), "present", "sp2", ("O1", "F", "S", "G", "G t"), _conf(species=0.5))
    # a present specimen labelled only to genus: no species to be right or wrong about
    add(("O1", "F", "S", "G", None), "present", "gen-only", ("O1", "F", "S", "G", None), _conf())
    # absent species of two orders: a1 (order O1) named to a species at exactly the level, genus right;
    # a2 (order O2) stops at genus, a wrong genus; a3 has no genus label: counted as named or not only
    add(("O1", "F", "S", "G", "G new"), "absent:species", "a1", lin, _conf(species=0.98))
    add(("O2", "F2", None, "H", "H new"), "absent:species", "a2", ("O2", "F2", None, "K", "K x"),
        _conf(species=0.97))
    add(("O2", "F2", None, None, "new"), "absent:species", "a3", ("O2", "F2", None, "K", "K x"),
        _conf(species=0.1, genus=0.1))
    # an absent genus stopped at family; an absent order stopped before any rank
    add(("O1", "F", "S", "Gnew", "Gnew a"), "absent:genus", "g1", lin, _conf(genus=0.3))
    add(("Onew", "X", None, "Y", "Y z"), "absent:order", "o1", lin, _conf(order=0.2))

    out = _outcomes(queries, tops, conf, 0.98, ("subfamily",))
    assert out["known_species_right"] == {"rate": pytest.approx(0.5), "n": 3, "groups": 2}
    assert out["known_species_wrong"] == {"rate": pytest.approx(0.25), "n": 3, "groups": 2}
    assert out["absent_species_named"] == {"rate": pytest.approx(1 / 3), "n": 3, "groups": 3}
    assert out["absent_species_genus_right"] == {"rate": pytest.approx(0.5), "n": 2, "groups": 2}
    assert out["absent_species_genus_wrong"] == {"rate": pytest.approx(0.5), "n": 2, "groups": 2}
    assert out["absent_genus_named"] == {"rate": 0.0, "n": 1, "groups": 1}
    assert out["absent_order_named"] == {"rate": 0.0, "n": 1, "groups": 1}
    by_order = out["absent_species_named_by_order"]
    assert set(by_order) == {"O1", "O2"}
    assert by_order["O1"]["rate"] == 1.0 and by_order["O2"] == {"rate": 0.0, "n": 2, "groups": 2}
    assert "absent_family_named" not in out and "absent_species_named@O1" not in out
    # one notch stricter than a1's species P(right): a1 is no longer named to a species
    stricter = _outcomes(queries, tops, conf, 0.981, ("subfamily",))
    assert stricter["absent_species_named"]["rate"] == 0.0
    assert stricter["absent_species_genus_right"]["rate"] == pytest.approx(0.5)  # its genus still named
    # a failing subfamily stops the walk unless it is optional
    sub = _outcomes(queries[:1], tops[:1], [_conf(subfamily=0.1)], 0.98, ())
    assert sub["known_species_right"]["rate"] == 0.0


def test_the_expected_lines_say_each_rate_with_its_queries_and_taxa() -> None:
    at = {"known_species_right": {"rate": 0.9512, "n": 40, "groups": 20},
          "absent_species_named": {"rate": 0.0149, "n": 30, "groups": 10},
          "absent_genus_named": {"rate": 0.0, "n": 9, "groups": 3},
          "absent_species_named_by_order": {"Diptera": {"rate": 0.02, "n": 10, "groups": 4},
                                            "Coleoptera": {"rate": 0.01, "n": 20, "groups": 6}}}
    lines = describe_expected(at)
    assert lines == [
        "known species named to the right species: 0.951 (40 queries of 20 taxa)",
        "absent species named to a species (over-classification): 0.015 (30 queries of 10 taxa)",
        "absent genera named to a genus: 0.000 (9 queries of 3 taxa)",
        "absent species named to a species, by order: Coleoptera 0.010, Diptera 0.020",
    ]
    one_order = {**at, "absent_species_named_by_order": {"Diptera": {"rate": 0.02, "n": 10, "groups": 4}}}
    assert len(describe_expected(one_order)) == 3  # one order: nothing to break down
    assert describe_expected({}) == []


def test_the_support_lines_say_learned_or_which_cutoff_and_why() -> None:
    support = {"order": {"learned": False, "why": "order: the reference holds 1 order taxa"},
               "family": {"learned": True, "leave_out_taxa": 7},
               "genus": {"learned": False}}
    lines = list(describe_support(support))
    assert len(lines) == len(RANKS)
    assert lines[0] == "order: the reference holds 1 order taxa"
    assert lines[1] == "family: learned from 7 left-out taxa"
    assert lines[2] == f"subfamily: published cut-off {PUBLISHED_CUTOFFS['subfamily']:.2f}"  # nothing known
    assert lines[3] == f"genus: published cut-off {PUBLISHED_CUTOFFS['genus']:.2f}"


def test_novelty_is_the_largest_p_absent_of_the_learned_non_optional_labelled_ranks() -> None:
    m = NamingModel(NamingConfig())
    m.models_ = {"family": object(), "subfamily": object(), "genus": object(), "species": object()}
    assert m.walk_optional == ("order", "subfamily")  # order by cut-off, subfamily optional
    p = {"order": 0.99, "family": 0.1, "subfamily": 0.95, "genus": 0.3, "species": None}
    assert m.novelty(p) == pytest.approx(0.3)
    assert m.novelty({**p, "species": 0.6}) == pytest.approx(0.6)
    assert m.novelty({r: None for r in RANKS}) == 1.0  # no hit at all: nothing known
    assert m.novelty({"order": 0.7}) == 1.0  # only a cut-off rank: no learned evidence of presence


def test_naming_settings_refuse_levels_that_would_let_naming_and_novelty_disagree() -> None:
    for level in (0.5, 0.3, 1.2):
        with pytest.raises(ValueError, match="level must be in"):
            NamingConfig(level=level)
    assert NamingConfig(level=1.0).level == 1.0
    for prior in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="absent_prior must be in"):
            NamingConfig(absent_prior=prior)
    cfg = NamingConfig(level=0.9, optional_ranks=("subfamily", "family"), min_leaf=7)
    state = json.loads(json.dumps(cfg.to_dict()))
    assert state["optional_ranks"] == ["subfamily", "family"]
    back = NamingConfig.from_dict({**state, "a_setting_of_a_later_version": 3})
    assert back == cfg and isinstance(back.optional_ranks, tuple)


def test_internal_spread_is_shrunk_toward_its_ranks_mean_and_round_trips() -> None:
    s = TaxonSpread()
    assert s.rank_mean("genus") == pytest.approx(math.log(0.1 + EPS))  # nothing seen: a 90 % identity
    s.add("genus", "A", -2.0)
    s.add("genus", "A", -4.0)
    s.add("genus", "B", -6.0)
    assert s.rank_mean("genus") == pytest.approx(-4.0)
    assert s.value("genus", "A", shrink=0.0) == (pytest.approx(-3.0), True)
    assert s.value("genus", "A", shrink=1.0) == (pytest.approx((-6.0 - 4.0) / 3), True)
    assert s.value("genus", "A", shrink=0.0, own=-2.0) == (pytest.approx(-4.0), True)  # its own sample out
    assert s.value("genus", "B", shrink=0.0, own=-6.0) == (pytest.approx(-4.0), False)  # nothing left
    assert s.value("genus", "C", shrink=2.0) == (pytest.approx(-4.0), False)
    assert s.value("genus", None, shrink=2.0) == (pytest.approx(-4.0), False)
    back = TaxonSpread.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.value("genus", "A", 1.0) == s.value("genus", "A", 1.0) and back.counts == {"genus": {"A": 2, "B": 1}}


def test_distance_is_a_clipped_log_and_parents_skip_blank_ranks() -> None:
    assert log_distance(1.0) == pytest.approx(math.log(EPS))
    assert log_distance(1.3) == pytest.approx(math.log(EPS))  # not below identity 1
    assert log_distance(0.9) == pytest.approx(math.log(0.1 + EPS))
    assert log_distance(-2.0) == pytest.approx(math.log(1.0 + EPS))
    assert np.allclose(log_distance(np.array([0.99, 0.8])), np.log(np.array([0.01, 0.2]) + EPS))
    lin = ("O", "F", None, "G", "G s")
    assert _parent(lin, RANKS.index("species")) == ("genus", "G")
    assert _parent(lin, RANKS.index("genus")) == ("family", "F")  # blank subfamily skipped
    assert _parent(lin, 0) == (ROOT, ROOT)
    assert _parent((None, None, None, "G", "G s"), RANKS.index("genus")) == (ROOT, ROOT)


def test_empty_hits_have_no_top_and_full_support() -> None:
    h = Hits.empty(321)
    assert h.top == -1 and h.query_length == 321 and len(h.positions) == len(h.identities) == 0
    assert h.support([("O",) * 5], 0) == 1.0
    lins = [("O1", "F", None, "G", "G a"), ("O2", "F", None, "G", "G b"), ("O1", "F", None, "G", "G c")]
    h = Hits(np.array([2, 1, 0]), np.array([0.99, 0.98, 0.97]), 600, np.array([0.5, 0.3, 0.2]))
    assert h.top == 2
    assert h.support(lins, 0) == pytest.approx(0.7)  # O1 holds candidates 2 and 0
    assert h.support(lins, 1) == pytest.approx(1.0) and h.support(lins, 4) == pytest.approx(0.5)
