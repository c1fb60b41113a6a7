"""Verbs: train, info — build a model bundle and show what is inside one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from biodiscover.storage.errors import InputError
from biodiscover.storage.records import LEVEL_MIN


def _load_config(preset: str, overrides: dict[str, Any]) -> Any:
    from biodiscover.encoders.config import load_preset

    try:
        config = load_preset(preset)
        if overrides:
            config = config.replace(train=overrides)
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from exc
    except (TypeError, ValueError) as exc:
        raise InputError(f"preset {preset!r}: {exc}") from exc
    return config


def _section(mapping: Any, key: str) -> dict[str, Any]:
    """``mapping[key]`` when it is a JSON object, else {} (a damaged or hand-edited bundle.json)."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, dict) else {}


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def retrieval_lines(evaluation: Any) -> list[str]:
    """CLIBD table rows: direction, rank, seen/unseen/HM micro and macro top-1 (damaged entries skipped)."""
    ev = evaluation if isinstance(evaluation, dict) else {}
    lines = []
    for direction, table in _section(ev, "retrieval").items():
        if not isinstance(table, dict):
            continue
        lines.append(f"  {direction}: rank        seen mi/ma      unseen mi/ma    HM mi/ma")
        for rank, row in table.items():
            cells = []
            for part in ("seen", "unseen", "hm"):
                r = _section(row, part)
                cells.append(f"{_fmt(r.get('micro')):>6} {_fmt(r.get('macro')):>6}")
            lines.append(f"    {rank:<18}" + "   ".join(cells))
    for name, r in _section(ev, "barcodebert_probes").items():
        r = r if isinstance(r, dict) else {}
        lines.append(f"  {name}: micro {_fmt(r.get('micro'))} macro {_fmt(r.get('macro'))} (n={r.get('n')})")
    for modality, per_rank in _section(ev, "clustering_ami").items():
        if isinstance(per_rank, dict):
            lines.append(f"  clustering AMI ({modality}): " + ", ".join(f"{k} {_fmt(v)}" for k, v in per_rank.items()))
    return lines


def held_reference(out: Path) -> tuple[int, str] | None:
    """(keys, the command that rebuilds it) when the bundle at ``out`` holds a reference ``build-reference`` fitted,
    else None (no bundle there, one of encoders alone, or one too damaged to read: --force replaces it anyway).

    Why: ``train --force`` replaces the whole bundle, as ``build-reference --force`` does; a reference fitted into
    it went with the old encoders and nothing said so, and triage then found no reference."""
    from biodiscover.storage.bundle import MANIFEST, Bundle
    from biodiscover.storage.errors import ModelBundleError

    if not (out / MANIFEST).is_file():
        return None
    try:
        discovery = Bundle.open(out).manifest.get("discovery")
    except ModelBundleError:
        return None
    if not isinstance(discovery, dict) or not isinstance(discovery.get("reference_keys"), int):
        return None
    built = _section(discovery, "reference")
    keys = f" --keys {built['keys']}" if isinstance(built.get("keys"), str) and built["keys"] else ""
    return (discovery["reference_keys"],
            f"biodiscover build-reference --data {built.get('data') or 'DATA'}{keys} --out {out}")


def register(app: typer.Typer) -> None:
    """Attach this module's verbs to the root app."""

    @app.command("train")
    def train(
        data: Path = typer.Option(..., "--data", help="Dataset root in BIOSCAN-5M layout (metadata/…csv + images/…)."),
        out: Path = typer.Option(..., "--out", help="Model bundle directory to write."),
        preset: str = typer.Option("small", "--preset", help="tiny | small | base, or a preset JSON file."),
        resume: bool = typer.Option(False, "--resume",
                                    help="Continue from the last Lightning checkpoint of an interrupted run."),
        overwrite: bool = typer.Option(False, "--force", help="Replace an existing bundle at --out (a reference "
                                       "build-reference fitted into it too: fit it again after)."),
        old_overwrite: bool = typer.Option(False, "--overwrite", hidden=True),  # the older name: say the new one
        checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir",
                                                      help="Where training checkpoints go "
                                                           "(default: <out>.checkpoints)."),
        pretrain_epochs: Optional[int] = typer.Option(None, "--pretrain-epochs", min=0,
                                                      help="Override the preset's DNA pretraining epochs."),
        align_epochs: Optional[int] = typer.Option(None, "--align-epochs", min=1,
                                                   help="Override the preset's alignment epochs."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Override the preset's seed."),
        progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                                help="Progress bars (default: when stderr is a terminal)."),
        as_json: bool = typer.Option(False, "--json", help="Print the bundle's metrics as JSON."),
    ) -> None:
        """Pretrain the DNA encoder (masked k-mers), align DNA/image/text, evaluate, write a bundle."""
        from biodiscover.encoders.training import train_bundle

        if old_overwrite:
            raise InputError("--overwrite is now --force (as in every other command)")
        overrides = {k: v for k, v in {"pretrain_epochs": pretrain_epochs, "align_epochs": align_epochs,
                                       "seed": seed}.items() if v is not None}
        config = _load_config(preset, overrides)
        show = (sys.stderr.isatty() and not as_json) if progress is None else progress
        # a bundle already there is replaced whole (--resume writes its own too)
        replaced = held_reference(out) if overwrite or resume else None
        if replaced is not None:  # before the hours of training, while Ctrl-C still keeps it
            flag = "--force" if overwrite else "--resume"
            typer.echo(f"warning: {out} holds a reference ({replaced[0]} keys, from build-reference): {flag} "
                       f"replaces the whole bundle, the reference with it; run `{replaced[1]}` after training "
                       "to name specimens with the new bundle", err=True)
        if not as_json:
            typer.echo(f"training preset {config.name!r} on {data} → {out}", err=True)
        result = train_bundle(data, out, config, resume=resume, overwrite=overwrite, progress=show,
                              checkpoint_dir=checkpoint_dir)
        if as_json:
            typer.echo(json.dumps({"bundle": str(result.bundle_path), "metrics": result.metrics,
                                   "replaced_reference_keys": replaced[0] if replaced else None}, indent=2))
            return
        stats = result.metrics.get("training", {})
        gone = (f"; the reference it held ({replaced[0]} keys) was replaced: run `{replaced[1]}` to fit one into "
                "the new bundle" if replaced else "")
        typer.echo(
            f"wrote {result.bundle_path}: pretrained on {stats.get('pretrain_sequences')} barcodes "
            f"({stats.get('pretrain_seconds', 'resumed')} s), aligned {stats.get('align_specimens')} specimens "
            f"({stats.get('align_seconds')} s){gone}"
        )
        for line in retrieval_lines(result.metrics.get("evaluation", {})):
            typer.echo(line)

    def _as_level(key: Any) -> float | None:
        try:
            return float(key)
        except (TypeError, ValueError):
            return None

    def _forecast_at(b: Any, level: float) -> dict[str, Any]:
        """The forecast the bundle's naming model simulated at ``level`` (its engine table keeps one per level of
        ``naming.LEVEL_GRID``). Why: the bundle prints its own level's only, and a reader choosing ``triage
        --level`` had no figure for the level chosen (an ML engineer's review, L3)."""
        from biodiscover.discovery.engine import ENGINE_TABLE

        if ENGINE_TABLE not in b.names("tables"):
            raise InputError(f"{b.path}: no discovery engine in this bundle (build-reference writes one): no "
                             "forecast to show at --level")
        naming = b.load_table(ENGINE_TABLE, expect=dict).get("naming")
        expected = naming.get("expected") if isinstance(naming, dict) else None
        if not isinstance(expected, dict) or not expected:
            raise InputError(f"{b.path}: its naming model holds no forecast (built before build-reference simulated "
                             "one): rebuild it")
        found = next((v for k, v in expected.items() if _as_level(k) == level), None)
        if not isinstance(found, dict):
            levels = sorted(x for x in (_as_level(k) for k in expected) if x is not None and x >= LEVEL_MIN)
            raise InputError(f"--level {level:g}: the bundle's forecast was simulated at "
                             + ", ".join(f"{x:g}" for x in levels) + " only")
        return found

    @app.command("info")
    def info(
        bundle: Path = typer.Argument(..., help="Model bundle directory."),
        as_json: bool = typer.Option(False, "--json", help="Print bundle.json (config, fingerprint, metrics, files)."),
        level: Optional[float] = typer.Option(None, "--level", min=LEVEL_MIN, max=1.0,
                                              help="Show the forecast at this naming level instead of the bundle's "
                                                   "(one of the levels build-reference simulated; what "
                                                   "`triage --level` would give)."),
    ) -> None:
        """Show a model bundle's config, training-data fingerprint, metrics and contents."""
        from biodiscover.storage.bundle import Bundle

        b = Bundle.open(bundle)
        at_level = _forecast_at(b, level) if level is not None else None
        if as_json:
            typer.echo(json.dumps(b.manifest, indent=2))
            return
        m = b.manifest
        # Bundle.open checks the top-level sections (its accessors are JSON objects); what is nested inside
        # them is read with _section, so a hand-edited bundle.json shows what it can instead of a traceback
        cfg = b.config
        typer.echo(f"bundle {b.path}  (format {m.get('format_version')}, created {m.get('created')})")
        if cfg and "dna" in cfg:
            dna, img, al = _section(cfg, "dna"), _section(cfg, "image"), _section(cfg, "align")
            typer.echo(
                f"config: preset {cfg.get('name')!r}; DNA k={dna.get('k')} hidden={dna.get('hidden')} "
                f"layers={dna.get('layers')} "
                f"heads={dna.get('heads')}; image {img.get('arch')} {img.get('image_size')}px; shared dim "
                f"{al.get('embed_dim')}"
            )
        elif cfg:
            typer.echo("config: " + ", ".join(f"{k}={v}" for k, v in cfg.items() if not isinstance(v, (dict, list)))
                       or "config: (nested)")
        standard = {"format", "format_version", "created", "config", "packages", "data_fingerprint", "metrics", "files"}
        disc = m.get("discovery")
        if isinstance(disc, dict) and "support" in disc:
            from biodiscover.discovery.naming import describe_expected, describe_support, expected_mix_note

            typer.echo(f"discovery: {disc.get('reference_keys')} reference keys; naming level {disc.get('level')}")
            ref = disc.get("reference")
            if isinstance(ref, dict) and ref:  # a bundle from before the record has none
                typer.echo("  reference: " + ", ".join(f"{k}={v}" for k, v in ref.items()
                                                       if not isinstance(v, (dict, list))))
            built = disc.get("level")
            built = float(built) if isinstance(built, (int, float)) and not isinstance(built, bool) else None
            shown = level if at_level is not None else built
            for line in describe_support(disc["support"], shown):
                typer.echo(f"  {line}")
            expected = at_level if at_level is not None else disc.get("expected")
            if expected:
                typer.echo(f"  {expected_mix_note(shown)}" + (f" — at --level {level:g}; the bundle names at "
                                                               f"{built:g}" if at_level is not None and built
                                                               else ""))
                for line in describe_expected(expected, shown):
                    typer.echo(f"    {line}")
            if disc.get("first_key") == "containment":
                typer.echo("  candidate keys: a species' first by k-mer containment")
            else:  # a bundle from before the choice existed: triage keeps cosine's, which its model was fitted on
                typer.echo("  candidate keys: a species' first by cosine (built before containment_first; rebuild "
                           "with `biodiscover build-reference` so a shorter identical key is not passed over)")
            weight = disc.get("collection_weight")
            if isinstance(weight, (int, float)) and not isinstance(weight, bool):
                typer.echo(f"  P(absent): per collection, at its own share of absent taxa per rank (estimated from "
                           f"its specimens, weighed against {weight:g} pseudo-specimens at the simulation's even "
                           "odds)")
            else:  # a bundle from before: every specimen at the simulation's odds, whatever the collection holds
                typer.echo("  P(absent): at the simulation's even odds for every collection (built before collection "
                           "priors; rebuild with `biodiscover build-reference` to read each collection's own share "
                           "of absent taxa)")
            audit = disc.get("audit")
            if isinstance(audit, dict):
                from biodiscover.discovery.audit import describe_audit

                for line in describe_audit(audit):
                    typer.echo(f"  {line}")
            else:
                typer.echo("  reference audit: not in this bundle (built before it); rebuild with "
                           "`biodiscover build-reference` to list keys far from the rest of their species")
            standard = standard | {"discovery"}
        for key in sorted(set(m) - standard):
            value = m[key]
            text = ", ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, (dict, list))) \
                if isinstance(value, dict) else str(value)
            typer.echo(f"{key}: {text}")
        typer.echo(f"fingerprint: {b.fingerprint}")
        fp = b.data_fingerprint
        if fp:
            splits = ", ".join(f"{k} {v}" for k, v in _section(fp, "splits").items())
            if "specimens" in fp:
                typer.echo(f"data: sha256 {str(fp.get('sha256', ''))[:16]}…  {fp.get('specimens')} specimens "
                           f"({splits}); "
                           f"{fp.get('with_dna')} with DNA, {fp.get('with_image')} with images; from "
                           f"{fp.get('source', '?')}")
            else:
                typer.echo("data: " + ", ".join(f"{k}={str(v)[:16] + '…' if k == 'sha256' and v else v}"
                                                for k, v in fp.items()))
        typer.echo("packages: " + ", ".join(f"{k} {v}" for k, v in b.packages.items()))
        stats = _section(b.metrics, "training")
        if stats:
            typer.echo(f"training: {stats.get('pretrain_sequences')} barcodes pretrained, "
                       f"{stats.get('align_specimens')} specimens aligned, "
                       f"temperature {_fmt(stats.get('temperature'))}")
        lines = retrieval_lines(_section(_section(m, "metrics"), "evaluation"))
        if lines:
            typer.echo("metrics:")
            for line in lines:
                typer.echo(line)
        for kind in ("weights", "arrays", "tables"):
            names = b.names(kind)
            if names:
                typer.echo(f"{kind}: {', '.join(names)}")
