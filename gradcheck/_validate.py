"""Input checks shared by the network and the checker: real, finite arrays."""

from __future__ import annotations

from typing import Any

import numpy as np


def first_non_finite(array: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN or infinity in `array`, or None if all are finite."""
    bad = ~np.isfinite(array)
    return tuple(int(i) for i in np.argwhere(bad)[0]) if bad.any() else None


def is_real(array: np.ndarray) -> bool:
    return bool(np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer))


def real_finite(label: str, value: Any) -> np.ndarray:
    """`value` as an array; ``ValueError`` naming `label`, the bad value and the fix otherwise."""
    array = np.asarray(value)
    if not is_real(array):
        raise ValueError(f"`{label}` must be a real array, got dtype {array.dtype} ({type(value).__name__}).")
    index = first_non_finite(array)
    if index is not None:
        raise ValueError(
            f"`{label}` must be finite, got {array[index].item()!r} at index {index}; "
            "replace non-finite entries before checking."
        )
    return array


def data_argument(label: str, value: Any) -> np.ndarray:
    """A data argument for the references: floats checked finite and made float64;
    integers and booleans (labels, masks) kept as they are."""
    array = np.asarray(value)
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer):
        return array
    return real_finite(label, array).astype(np.float64)
