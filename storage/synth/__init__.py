"""Synthetic BIOSCAN-5M-like collections: taxonomy, COI barcodes, images, geography, splits.

Public API: :class:`SynthConfig`, :func:`generate` (writes the BIOSCAN-5M layout and
``metadata/truth.csv``), :func:`generate_frame` (tables in memory, no images),
:class:`SynthResult`, :func:`load_truth`.
"""

from biodiscover.storage.synth.config import SynthConfig
from biodiscover.storage.synth.generator import (
    CONFIG_NAME,
    METADATA_NAME,
    TRUTH_COLUMNS,
    TRUTH_NAME,
    SynthResult,
    generate,
    generate_frame,
    load_truth,
)

__all__ = [
    "CONFIG_NAME",
    "METADATA_NAME",
    "TRUTH_COLUMNS",
    "TRUTH_NAME",
    "SynthConfig",
    "SynthResult",
    "generate",
    "generate_frame",
    "load_truth",
]
