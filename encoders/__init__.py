"""biodiscover encoders layer: DNA, image and text towers in one aligned space (see DESIGN.md).

Public API (import from the submodules; this package imports nothing heavy so
inference does not pull in Lightning):

- ``encoders.embed.load_encoders(bundle, device=None) -> Encoders`` with
  ``embed_dna(seqs)``, ``embed_images(paths)``, ``embed_text(lineages)`` and
  ``dna_features(seqs)`` — float32, L2-normalised.
- ``encoders.training.train_bundle(data_dir, out, config, resume=..., ...)`` — the ``train`` verb.
- ``encoders.evaluation`` — BarcodeBERT probes, CLIBD retrieval, zero-shot clustering AMI.
- ``encoders.config.load_preset("tiny" | "small" | "base" | path) -> ModelConfig``.
- ``encoders.tokenizer.KmerTokenizer`` — BarcodeBERT k-mer tokenizer.
"""
