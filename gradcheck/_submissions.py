"""Load a user's gradient function from ``path/to/file.py:function``.

A submission is loaded as Python runs a script: while it is imported, and
again each time its function is called (a submission may import lazily), its
own folder comes first on ``sys.path``, so ``import network`` finds the
``network.py`` beside it. The modules that come from its folder are its own:
after each import or call they leave ``sys.modules`` and are kept with the
submission, and they come back only while it runs. Two students' ``helpers.py``
graded in one run never meet, and grading leaves ``sys.modules`` and
``sys.path`` as it found them.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import importlib.util
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from gradcheck import _inputs


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


class LoadedFunction:
    """A submission's function, run as if its file were the script being run.

    Calling it calls the function with the submission's folder first on
    ``sys.path`` and its private modules in ``sys.modules``; both are taken
    away again when the call returns or raises.
    """

    def __init__(self, func: Callable[..., Any], folder: Path, modules: dict[str, ModuleType]) -> None:
        self.func = func
        self.folder = folder
        #: The modules that came from `folder` (the submission's own file among
        #: them), by name; installed in ``sys.modules`` only while it runs.
        self.modules = modules
        #: The module names the folder defines, read once: a class's folder may hold hundreds of files.
        self.local = _local_names(folder)
        self.__wrapped__ = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with running_from(self.folder, self.modules, self.local):
            return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<submission {getattr(self.func, '__qualname__', self.func)!r} from {self.folder}>"


def load(spec: str, *, any_value: bool = False) -> Any:
    """Import the file in `spec` as a fresh module; return its named function as a `LoadedFunction`.

    With `any_value`, a name that is not a function (a Hypothesis strategy, a
    tuple of arrays) is returned as it is; a function is still a `LoadedFunction`.
    """
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name:
        raise LoadError(f"`{spec}` must look like path/to/file.py:name")
    path = Path(path_text)
    if not path.is_file():
        raise LoadError(f"cannot read `{path}`: no such file")
    folder = path.resolve().parent
    module_name = f"gradcheck_submission_{uuid.uuid4().hex}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise LoadError(f"`{path}` is not a Python file that can be imported")
    module = importlib.util.module_from_spec(module_spec)
    importlib.invalidate_caches()  # files written a moment ago (a test's tmp_path) must be seen
    modules: dict[str, ModuleType] = {module_name: module}
    try:
        with running_from(folder, modules):
            module_spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - the user's code (even SystemExit): show it as theirs
        raise LoadError(f"importing `{path}` failed:\n{user_traceback(exc, folder)}") from None
    value = getattr(module, name, None)
    if any_value and hasattr(module, name) and not callable(value):
        return value
    if not callable(value):
        public = {k: v for k, v in vars(module).items() if not k.startswith("_") and not isinstance(v, ModuleType)}
        available = sorted(k for k, v in public.items() if any_value or callable(v))
        kind = "" if any_value else "function "
        defines = ", ".join(available) or ("nothing" if any_value else "nothing callable")
        raise LoadError(f"`{path}` has no {kind}`{name}`; it defines: {defines}")
    return LoadedFunction(value, folder, modules)


@contextlib.contextmanager
def running_from(folder: Path, modules: dict[str, ModuleType], local: set[str] | None = None) -> Iterator[None]:
    """Put `folder` first on ``sys.path`` and `modules` in ``sys.modules``; undo both on exit.

    On exit, `modules` gains the modules that the code run inside imported
    from `folder`, and everything it holds leaves ``sys.modules``. What they
    displaced is put back. Modules imported from elsewhere (NumPy, say) stay,
    as they would in a script. `local`: the folder's module names (`_local_names`), if known.
    """
    entry = str(folder)
    local = _local_names(folder) if local is None else local
    # A module loaded from elsewhere under the name of a file in the folder
    # would hide that file from `import`; it steps aside while the code runs.
    # (A submodule is loaded only under its package, so only a package already loaded is searched.)
    shadowed = [
        n
        for top in local
        if top in sys.modules
        for n in [top, *(m for m in list(sys.modules) if m.startswith(top + "."))]
        if n not in modules
    ]
    displaced = {n: sys.modules[n] for n in (*modules, *shadowed) if n in sys.modules}
    for n in shadowed:
        del sys.modules[n]
    sys.modules.update(modules)
    before = set(sys.modules)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)  # the first occurrence: ours, unless the code put another before it
        # The modules the code imported are new since it began: only they, and its own, can be the folder's.
        for n in (sys.modules.keys() - before) | modules.keys():
            module = sys.modules.get(n)
            if module is not None and (n in modules or (n.partition(".")[0] in local and _comes_from(module, folder))):
                modules[n] = module
                del sys.modules[n]
        sys.modules.update(displaced)


def _local_names(folder: Path) -> set[str]:
    """Top-level module names that `folder` defines (``name.py``, or a package ``name/``).

    The standard library's names are left out (a script finds those already
    loaded, whatever its folder holds), and so is gradcheck's own: the
    checker never steps aside for a submission.
    """
    try:
        with os.scandir(folder) as scan:
            entries = [(e.name, e.is_dir()) for e in scan]
    except OSError:
        return set()
    names = {name[:-3] for name, is_dir in entries if not is_dir and name.endswith(".py")}
    names |= {name for name, is_dir in entries if is_dir and (folder / name / "__init__.py").is_file()}
    names = {n for n in names if n.isidentifier() and not n.startswith("__")}  # never __main__ or __init__
    return names - set(sys.stdlib_module_names) - set(sys.builtin_module_names) - {__name__.partition(".")[0]}


def _comes_from(module: Any, folder: Path) -> bool:
    """Whether `module` was loaded from a file (or, for a package, a folder) under `folder`."""
    places = [getattr(module, "__file__", None), *(getattr(module, "__path__", None) or ())]
    return any(isinstance(place, str) and _is_under(place, folder) for place in places)


def user_traceback(exc: BaseException, folder: Path) -> str:
    """The traceback from the user's own frames (files under `folder`) only, as Python would print it
    (`_inputs.user_traceback`, named relative to the current folder)."""
    return _inputs.user_traceback(exc, mine=lambda summary, _: _is_under(summary.filename, folder), skip_first=False)


def _is_under(filename: str, folder: Path) -> bool:
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>: no file at all
        return False
    try:
        return Path(filename).resolve().is_relative_to(folder)
    except (OSError, ValueError):
        return False
