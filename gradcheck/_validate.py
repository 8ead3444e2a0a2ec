"""Input checks shared by the network and the checker: real, finite arrays."""

from __future__ import annotations

from typing import Any

import numpy as np


def first_non_finite(array: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN or infinity in `array`, or None if all are finite."""
    values = _as_floats(array) if array.dtype == object else array
    bad = ~np.isfinite(values)
    return tuple(int(i) for i in np.argwhere(bad)[0]) if bad.any() else None


def is_real(array: np.ndarray) -> bool:
    """Floats or integers; or an object array of real numbers of arbitrary precision (mpmath's, which
    gradcheck's precision check passes through the models' own functions: `gradcheck._precision`)."""
    if array.dtype == object:
        return array.size > 0 and all(_is_real_number(v) for v in array.ravel())
    return bool(np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer))


def _is_real_number(value: object) -> bool:
    if isinstance(value, (complex, str, bytes)) or not hasattr(value, "__float__"):
        return False
    return bool(getattr(value, "imag", 0) == 0)


def _as_floats(array: np.ndarray) -> np.ndarray:
    return np.array([float(v) for v in array.ravel()], dtype=np.float64).reshape(array.shape)


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
    if array.dtype == object and not is_real(array):
        raise ValueError(
            f"`{label}` must be an array (data, targets, integer labels or indices), got {type(value).__name__} "
            f"{value!r:.80}. Bind options that are not arrays (a dict of settings, a string, a flag) with "
            "functools.partial: check_gradients(partial(loss_fn, conv_param=...), partial(grad_fn, conv_param=...), "
            "params, x)."
        )
    return real_finite(label, array).astype(np.float64)
