"""Inputs checked: the parameters flattened and named, and the user's gradient matched to them."""

from __future__ import annotations

import contextlib
import difflib
import traceback
from collections.abc import Callable
from pathlib import Path
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


#: Frames of the user's traceback shown (the innermost ones).
FRAMES_SHOWN = 8


def user_traceback(
    exc: BaseException, *, mine: Callable[[traceback.FrameSummary, Any], bool] | None = None, skip_first: bool = True
) -> str:
    """`exc` as Python prints it, with the user's frames only: the one formatter of a user's traceback.

    A frame is the user's when `mine(summary, frame)` says so; by default when the module running it is
    not one of gradcheck's own (`checker_frame`). With `skip_first`, the outermost frame (gradcheck's
    call of the user's function) is left out. A file under the current folder is named relative to it,
    as the user named it on the command line: the same text on every machine, and no home folder in a
    student's feedback. Without a frame of the user's (a call that failed before the function ran), the
    exception alone; where `mine` keeps none, the innermost frame.
    """
    tb = exc.__traceback__
    if skip_first and tb is not None:
        tb = tb.tb_next
    walked = list(traceback.walk_tb(tb))
    summaries = traceback.extract_tb(tb)  # with the columns of each frame's failing expression (its ^^^ marks)
    if mine is None:
        own = [s for s, (frame, _) in zip(summaries, walked) if not checker_frame(frame)]
    else:
        own = [s for s, (frame, _) in zip(summaries, walked) if mine(s, frame)] or list(summaries)[-1:]
    frames = traceback.format_list(own[-FRAMES_SHOWN:])
    head = ["Traceback (most recent call last):\n", *frames] if frames else []
    text = "".join([*head, *traceback.format_exception_only(type(exc), exc)]).rstrip()
    for filename in {f.filename for f in own}:
        text = text.replace(f'File "{filename}"', f'File "{_relative(filename)}"')
    return text


def own_frames(exc: BaseException) -> bool:
    """Whether `exc` was raised inside the user's function (not by the call itself)."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    return any(not checker_frame(frame) for frame, _ in traceback.walk_tb(tb))


def checker_frame(frame: Any) -> bool:
    """Whether `frame` runs gradcheck's own machinery: a private module of the package (``gradcheck._check``,
    ``gradcheck.cli._check``), known by the module that runs it, wherever its file lies. The public modules
    (``gradcheck.mlp``, whose functions users call and wrap) are not."""
    name = str(frame.f_globals.get("__name__", ""))
    parts = name.split(".")
    return parts[0] == __name__.split(".")[0] and any(p.startswith("_") for p in parts[1:])


def _relative(filename: str) -> str:
    """`filename` relative to the current folder if it lies under it, else as it is."""
    with contextlib.suppress(OSError, ValueError):
        return str(Path(filename).resolve().relative_to(Path.cwd().resolve()))
    return filename


def expected(names: list[str], leaves: list[np.ndarray]) -> str:
    """``w1 (3, 2), b1 (3,)``: the entries a gradient of the parameters has."""
    return ", ".join(f"{n} {leaf.shape}" for n, leaf in zip(names, leaves))


def call_failed(exc: BaseException, names: list[str], leaves: list[np.ndarray], args: tuple[np.ndarray, ...]) -> str:
    """Why `grad_fn` raised, with its traceback, and how it is called."""
    shapes = ", ".join(str(np.shape(a)) for a in args)
    further = f"and {len(args)} further argument{'s' if len(args) != 1 else ''} of shapes {shapes}" if args else "alone"
    trace = f"{user_traceback(exc)}\n" if own_frames(exc) else ""
    if own_frames(exc) and not isinstance(exc, TypeError):
        # It ran, and failed inside: the user's own error on these inputs, not a call of the wrong shape.
        return (
            f"`grad_fn` raised {type(exc).__name__}: {exc}\n{trace}"
            f"It failed inside your code, called as grad_fn(params, *args) with `params` ({expected(names, leaves)}) "
            f"{further}: fix the line above for inputs of these shapes."
        )
    return (
        f"`grad_fn` raised {type(exc).__name__}: {exc}\n{trace}"
        f"`grad_fn` is called as grad_fn(params, *args): here with `params` {further}. "
        "Make it take these arguments and return the gradient with the structure of `params` "
        f"({expected(names, leaves)}), or pass the arguments it takes."
    )


def not_a_gradient(returned: Any, names: list[str], leaves: list[np.ndarray]) -> str:
    """Why `returned` is not a gradient of the parameters, and what is expected instead."""
    try:
        got = [
            jax.tree_util.keystr(p, simple=True, separator=".")
            for p, _ in jax.tree_util.tree_flatten_with_path(returned)[0]
        ]
    except Exception:  # noqa: BLE001 - any odd object
        got = []
    hint = " (a missing `return`?)" if returned is None else ""
    entries = f" with entries {got}" if got and got != [""] else ""
    return (
        f"`grad_fn` returned {type(returned).__name__}{entries}{hint}, which is not a gradient of `params`: "
        f"no entry matches a parameter. Return the gradient with the structure of `params`, one array per "
        f"parameter: {expected(names, leaves)}."
    )


def accidental_float32(precision: np.dtype) -> str:
    """Why a closed form returned in `precision` for float64 parameters cannot pass, and the fix."""
    return (
        f"`grad_fn` returned {precision} for float64 parameters, so it could only be judged at {precision} "
        f"precision (resolution {float(np.finfo(precision).eps):.1e}), where a mistake of 1e-6 relative goes "
        "unseen: the derivation could not be checked to float64 precision. Return float64 arrays (drop the "
        f"cast to {precision}; with JAX, enable x64 or return NumPy float64), or pass {precision} parameters "
        f"to judge a {precision} closed form at {precision} precision on purpose."
    )


def entries_not_parameters(
    names: list[str], leaves: list[np.ndarray], returned: Any, *, positional: bool
) -> str | None:
    """Why `returned` is a wrong call when it has entries that are no parameter (a key-name slip, ``W1`` for
    ``w1``, or an extra entry): each named, with the parameter it likely means; None when every entry is one.

    Entries paired by position (`match_structure`'s `positional`) are parameters by definition.
    """
    try:
        with_path = jax.tree_util.tree_flatten_with_path(returned)[0]
    except Exception:  # noqa: BLE001 - not a pytree: `match_structure` says so
        return None
    got = [jax.tree_util.keystr(path, simple=True, separator=".") or "params" for path, _ in with_path]
    if positional and len(got) == len(names):
        return None
    unknown = [g for g in got if g not in names]
    if not unknown or (not set(got) & set(names) and not any(_likely(g, names) for g in unknown)):
        return None  # nothing matches at all: `not_a_gradient` tells that case
    missing = [n for n in names if n not in got]
    told = []
    for entry in unknown:
        # The same but for case, or the closest spelling; else, one entry for one missing parameter: that one.
        only = missing[0] if len(unknown) == len(missing) == 1 else None
        meant = _likely(entry, missing) or _likely(entry, names) or only
        told.append(f"`{entry}` (did you mean `{meant}`?)" if meant else f"`{entry}` (no such parameter)")
    return (
        f"`grad_fn` returned entries that are not parameters: {', '.join(told)}. Return one entry per parameter, "
        f"named as in `params`: {expected(names, leaves)}."
    )


def _likely(entry: str, names: list[str]) -> str | None:
    """The parameter name `entry` most likely means: the same but for case, else the closest spelling."""
    same = [n for n in names if n.lower() == entry.lower()]
    if same:
        return same[0]
    close = difflib.get_close_matches(entry, names, n=1, cutoff=0.75)
    return close[0] if close else None
