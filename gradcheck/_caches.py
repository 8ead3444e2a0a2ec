"""Every cache of the package, registered where it is made: `clear` empties each one.

A cache is registered by the module that owns it (``_EVALUATIONS = _caches.registered(OrderedDict())``),
so a cache added later cannot be missed by `clear`, and tests and benchmarks that want a first check
("as a new process would run it") get one.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar


class _Clearable(Protocol):
    def clear(self) -> None: ...


C = TypeVar("C", bound=_Clearable)

_REGISTRY: list[_Clearable] = []


def registered(cache: C) -> C:
    """`cache` (anything with a ``clear()``: a dict, a set, an ``lru_cache``'s ``cache_clear`` wrapped), kept
    for `clear`."""
    _REGISTRY.append(cache)
    return cache


class _LruCache:
    """An ``functools.lru_cache`` function as a cache with ``clear()``."""

    def __init__(self, function: Any) -> None:
        self.function = function

    def clear(self) -> None:
        self.function.cache_clear()


F = TypeVar("F")


def registered_function(function: F) -> F:
    """A function decorated with ``functools.lru_cache`` (or ``functools.cache``), its cache kept for `clear`."""
    _REGISTRY.append(_LruCache(function))
    return function


def clear() -> None:
    """Forget every trace, program, compiled function, evaluation, drawn problem and cost record: the next
    check is a first one."""
    for cache in _REGISTRY:
        cache.clear()
