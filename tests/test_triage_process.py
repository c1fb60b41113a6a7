"""What a DNA-only triage process loads: no torch, no encoders, the reference memory-mapped (real CLI, subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from biodiscover.discovery.engine import DiscoveryModel, EngineConfig
from biodiscover.discovery.kmer import KmerConfig
from fixtures.discovery import make_world

PROBE = """
import json, sys
from biodiscover.cli.main import main
rc = main(sys.argv[1:])
mods = set(sys.modules)
print(json.dumps({"rc": rc, "torch": "torch" in mods, "lightning": "lightning" in mods,
                  "clustering stack": sorted(m for m in ("sklearn", "scipy.stats", "scipy.cluster", "hdbscan")
                                             if m in mods),
                  "database": "biodiscover.storage.db" in mods or "sqlalchemy" in mods,
                  "encoders": sorted(m for m in mods if m.startswith("biodiscover.encoders"))}))
"""


def test_dna_only_triage_never_imports_torch_or_encoders(tmp_path: Path) -> None:
    world = make_world(seed=8)
    model = DiscoveryModel(EngineConfig(kmer=KmerConfig(ks=(5,)), n_search=40, max_candidates=15))
    model.fit(world["train"], world["val"] + world["val_unseen"], world["other_heldout"][:20])
    model.save(tmp_path / "bundle")
    fasta = tmp_path / "c.fasta"
    fasta.write_text("".join(f">{s.processid}\n{s.dna_barcode}\n" for s in world["test"] + world["test_unseen"]))
    proc = subprocess.run([sys.executable, "-c", PROBE, "triage", "--input", str(fasta), "--model",
                           str(tmp_path / "bundle"), "--db", str(tmp_path / "t.db"), "--results",
                           str(tmp_path / "r.jsonl"), "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    seen.pop("clustering stack")
    assert seen == {"rc": 0, "torch": False, "lightning": False, "database": True, "encoders": []}, seen
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == len(world["test"]) + len(world["test_unseen"])
    # results only: the database layer (SQLAlchemy, Alembic: ~1 s of CPU) is not even imported
    proc = subprocess.run([sys.executable, "-c", PROBE, "triage", "--input", str(fasta), "--model",
                           str(tmp_path / "bundle"), "--results", str(tmp_path / "r2.jsonl"), "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    # nor scikit-learn and hdbscan: without a database only the candidates' partition is written, and
    # HDBSCAN (memberships, outlier scores) never moves it (``partition_only``)
    assert not {"sklearn", "scipy.stats", "hdbscan"} & set(seen.pop("clustering stack")), seen
    assert seen == {"rc": 0, "torch": False, "lightning": False, "database": False, "encoders": []}, seen
    assert (tmp_path / "r2.jsonl").read_text() == (tmp_path / "r.jsonl").read_text()
    # no clustering: hdbscan, scikit-learn and SciPy's stats and clustering (~1.5 s of CPU) are not imported;
    # the clustering imports them only where it uses them (issue 13's triage-vs-SINTAX figure)
    proc = subprocess.run([sys.executable, "-c", PROBE, "triage", "--input", str(fasta), "--model",
                           str(tmp_path / "bundle"), "--results", str(tmp_path / "r3.jsonl"), "--no-cluster", "-q"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"rc": 0, "torch": False, "lightning": False, "clustering stack": [], "database": False,
                    "encoders": []}, seen


def test_the_clusterer_prepares_hdbscan_ahead_only_when_its_memberships_are_read() -> None:
    """``prepare`` (run by triage while a forked child aligns) imports HDBSCAN ahead of the fit, and not when
    only the partition is read (``partition_only``, a triage without a database): nothing ran it under test
    before (seed 2606: ``not self.partition_only`` -> ``self.partition_only`` was never executed)."""
    probe = ("import sys\n"
             "from biodiscover.discovery.clustering_methods.threshold_hdbscan import CandidateSpeciesClusterer\n"
             "c = CandidateSpeciesClusterer()\n"
             "c.partition_only = sys.argv[1] == 'partition'\n"
             "before = 'hdbscan' in sys.modules\n"
             "c.prepare()\n"
             "print(before, 'hdbscan' in sys.modules, 'scipy.cluster.hierarchy' in sys.modules)\n")
    seen = {how: subprocess.run([sys.executable, "-c", probe, how], capture_output=True, text=True, timeout=120,
                                check=True).stdout.split() for how in ("whole", "partition")}
    assert seen == {"whole": ["False", "True", "True"], "partition": ["False", "False", "True"]}, seen
