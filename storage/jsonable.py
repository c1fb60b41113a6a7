"""Plain-JSON conversion shared by bundles, proposal evidence, exports and summaries.

Why one function: numpy scalars, arrays, paths, timestamps and NaN turn up in
every JSON the product writes, and strict JSON has no NaN — a reader in another
language (or ``json.loads(..., parse_constant=...)``) must not choke on a
summary because one rate had an empty denominator. NaN and ±inf become
``null``; anything else unknown becomes its ``str``.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Mapping

import numpy as np


def jsonable(value: Any) -> Any:
    """``value`` as nested dicts/lists of str, int, float (finite), bool and None."""
    if value is None or (isinstance(value, (bool, str, int)) and not isinstance(value, np.generic)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    try:  # pandas missing markers (pd.NA, pd.NaT); before dates: NaT is a datetime, and "NaT" is no date
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pass
    if isinstance(value, (PurePath, datetime, date)):
        return str(value)
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return str(value)
