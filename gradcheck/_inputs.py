"""Inputs checked: the parameters flattened and named, and the user's gradient matched to them."""

from __future__ import annotations

import traceback
from typing import Any

import jax
import numpy as np

from gradcheck import _validate


def named_leaves(params: Any) -> tuple[list[str], list[np.ndarray], Any]:
    """The leaves of `params` with their names ("w1", "layers.0.w"), checked real and finite, as float64."""
    with_path, treedef = jax.tree_util.tree_flatten_with_path(params)
    if not with_path:
        raise ValueError(f"`params` holds no arrays (got {params!r}); pass a NamedTuple, dict or tuple of arrays.")
    names = [jax.tree_util.keystr(path, simple=True, separator=".") or "params" for path, _ in with_path]
    leaves = [
        _validate.real_finite(f"params.{name}", leaf).astype(np.float64) for name, (_, leaf) in zip(names, with_path)
    ]
    return names, leaves, treedef


def flatten_params(params: Any) -> tuple[list[str], list[np.ndarray], Any]:
    names, leaves, treedef = named_leaves(params)
    for name, leaf in zip(names, leaves):
        if leaf.size == 0:
            raise ValueError(
                f"`params.{name}` is empty (shape {leaf.shape}); every parameter needs at least one entry."
            )
    return names, leaves, treedef


def match_structure(
    names: list[str], leaves: list[np.ndarray], returned: Any, *, positional: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Pair the returned gradient with the parameters by name; collect problems.

    With `positional` (params and the result are both tuples or lists) entries
    are paired by position when the names differ, e.g. a tuple of four arrays
    for `mlp.Params`.
    """
    try:
        with_path, _ = jax.tree_util.tree_flatten_with_path(returned)
    except Exception as exc:  # noqa: BLE001 - any odd object is a user error here
        with_path = []
        structure_error = f"returned {type(returned).__name__}, which is not a pytree ({exc})"
    else:
        structure_error = f"returned {type(returned).__name__} with no entry for this parameter"
    got = {jax.tree_util.keystr(path, simple=True, separator=".") or "params": leaf for path, leaf in with_path}
    if set(got) != set(names):
        if positional and len(names) == len(with_path):
            got = dict(zip(names, (leaf for _, leaf in with_path)))
        elif got and not set(got) <= set(names):
            structure_error = f"returned entries {sorted(got)}, which do not match the parameters {sorted(names)}"
        elif got:
            structure_error = f"returned only {sorted(got)}, with no entry for this parameter"
    closed: dict[str, np.ndarray] = {}
    problems: dict[str, str] = {}
    for name, leaf in zip(names, leaves):
        if name not in got:
            problems[name] = f"`grad_fn` {structure_error}"
            continue
        value = np.asarray(got[name])
        if not _validate.is_real(value):
            problems[name] = f"`grad_fn` returned dtype {value.dtype} for `{name}`; expected real numbers"
            continue
        if value.shape != leaf.shape:
            problems[name] = f"`grad_fn` returned shape {value.shape} for `{name}`, expected {leaf.shape}"
        elif (index := _validate.first_non_finite(value)) is not None:
            problems[name] = f"`grad_fn` returned {value[index].item()!r} for `{name}` at index {index}"
        closed[name] = value  # kept even when wrong: the diagnosis may explain it
    return closed, problems


def describe_exception(exc: BaseException) -> str:
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n" + "".join(frames[-3:]).rstrip()
