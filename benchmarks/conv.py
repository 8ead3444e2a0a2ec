"""A convolution's hand-written VJP: `jax.lax.conv_general_dilated` against its einsum twin, in one run.

The same convolution (``--images`` images of 3 x 8 x 8, 4 filters of 3 x 3, no
padding) written two ways, each checked with the same hand-written NumPy VJP
by ``check_vjp`` (default directions): as ``lax.conv_general_dilated`` and as
an einsum over the 3 x 3 patches. The finite differences of the conv form run
on the compiled path (the NumPy interpreter has no conv rule), vectorised over
their points: thousands at once make XLA's convolution a grouped one with a
group per point, far slower than the same work in chunks. The table gives
seconds per check (first check, compile included; the median of ``--repeats``
fresh processes' worth of caches cleared) for each chunk size
(`_finite_diff.VMAP_CHUNK`, "all" = no chunks), and the ratio to the einsum twin.

Run: python benchmarks/conv.py [--images 1] [--repeats 3] [--chunks all,64,8] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import _references, check_vjp
from gradcheck._references import _finite_diff


def conv(x: Any, w: Any) -> Any:
    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))


def conv_einsum(x: Any, w: Any) -> Any:
    """The same convolution as an einsum over the kernel's patches."""
    _, _, h, wd = x.shape
    o, c, kh, kw = w.shape
    patches = jnp.stack(
        [x[:, :, i : i + h - kh + 1, j : j + wd - kw + 1] for i in range(kh) for j in range(kw)], axis=2
    )
    return jnp.einsum("nckhw,ock->nohw", patches, w.reshape(o, c, kh * kw))


def conv_vjp(primals: tuple[np.ndarray, np.ndarray], dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hand-written backward pass, as a course writes it: one kernel offset at a time."""
    x, w = primals
    _, _, kh, kw = w.shape
    _, _, h, wd = x.shape
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for i in range(kh):
        for j in range(kw):
            window = (slice(None), slice(None), slice(i, i + h - kh + 1), slice(j, j + wd - kw + 1))
            dw[:, :, i, j] = np.einsum("nohw,nchw->oc", dout, x[window])
            dx[window] += np.einsum("nohw,oc->nchw", dout, w[:, :, i, j])
    return dx, dw


def seconds(f: Any, x: np.ndarray, w: np.ndarray, repeats: int) -> tuple[float, str]:
    times, verdict = [], ""
    for _ in range(repeats):
        _references.clear_caches()
        jax.clear_caches()
        start = time.perf_counter()
        verdict = check_vjp(f, conv_vjp, x, w).verdict
        times.append(time.perf_counter() - start)
    return statistics.median(times), verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunks", default="64,8", help="chunk sizes to time besides the default ('all': none)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(args.images, 3, 8, 8)), rng.normal(size=(4, 3, 3, 3))
    chosen = _finite_diff.VMAP_CHUNK
    twin, verdict = seconds(conv_einsum, x, w, args.repeats)
    rows = [("einsum twin", twin, verdict)]
    sizes = [10**9 if c == "all" else int(c) for c in args.chunks.split(",") if c]
    for chunk in [*(c for c in sizes if c != chosen), chosen]:
        _finite_diff.VMAP_CHUNK = chunk
        label = f"lax.conv, chunks of {'all' if chunk == 10**9 else chunk}" + (
            " (the default)" if chunk == chosen else ""
        )
        rows.append((label, *seconds(conv, x, w, args.repeats)))
    _finite_diff.VMAP_CHUNK = chosen
    if args.markdown:
        print(f"| check_vjp, {args.images} image(s) of 3x8x8, 4 filters 3x3 | s per check | x einsum | verdict |")
        print("|---|---|---|---|")
        for label, s, v in rows:
            print(f"| {label} | {s:.2f} | {s / twin:.1f} | {v} |")
    else:
        for label, s, v in rows:
            print(f"{label:40s} {s:8.2f} s  {s / twin:6.1f}x  {v}")


if __name__ == "__main__":
    main()
