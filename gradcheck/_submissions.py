"""Load a user's gradient function from ``path/to/file.py:function``."""

from __future__ import annotations

import glob
import importlib.util
import sys
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


class LoadError(Exception):
    """A submission that cannot be loaded; the message is for the user."""


def expand(specs: list[str]) -> list[str]:
    """Expand glob patterns in the FILE part of ``FILE:FUNC`` arguments, in sorted order."""
    out: list[str] = []
    for spec in specs:
        path, sep, func = spec.rpartition(":")
        if not sep or not path or not func:
            raise LoadError(f"`{spec}` must look like path/to/file.py:function_name")
        matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        if not matches:
            raise LoadError(f"`{path}` matches no file (in `{spec}`)")
        out.extend(f"{m}:{func}" for m in matches)
    return out


def load(spec: str) -> Callable[..., Any]:
    """Import the file in `spec` as a fresh module and return the named function."""
    path_text, _, name = spec.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise LoadError(f"cannot read `{path}`: no such file")
    module_name = f"gradcheck_submission_{uuid.uuid4().hex}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise LoadError(f"`{path}` is not a Python file that can be imported")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - the user's code (even SystemExit): show it as theirs
        sys.modules.pop(module_name, None)
        raise LoadError(f"importing `{path}` failed:\n{user_traceback(exc, str(path))}") from None
    func = getattr(module, name, None)
    if not callable(func):
        available = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise LoadError(f"`{path}` has no function `{name}`; it defines: {', '.join(available) or 'nothing callable'}")
    return func  # type: ignore[no-any-return]


def user_traceback(exc: BaseException, path: str) -> str:
    """The traceback from the user's own frames only, as Python would print it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path] or traceback.extract_tb(
        exc.__traceback__
    )[-1:]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()
