"""Explanation cache: hit latency (in-process LRU and the local Redis) against a recompute.

A hit costs hashing the request into a key (BLAKE3 over the canonical input bytes and
parameters), one backend lookup (a dict for the LRU, one Lua round trip for Redis) and
decoding the stored bytes. A miss costs the explanation itself; here that is the shap
library's TreeExplainer and KernelExplainer on a LightGBM model (the engine's own explainers
are measured in their own benchmarks). The script prints latency percentiles per path and
the speed-up of a hit over each recompute.

    .venv/bin/python benchmarks/bench_explanation_cache.py [--hits 2000] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import redis
from _common import percentile, print_machine, print_table

from synapsenet.core.circuit import CircuitBreaker
from synapsenet.services.explainability.cache import (
    CacheKey,
    ExplanationCache,
    InProcessLRUBackend,
    RedisBackend,
    decode_explanation,
    encode_explanation,
)
from synapsenet.services.explainability.models import Explanation, ExplanationType

N_FEATURES = 20
N_TRAIN = 2000
N_BACKGROUND = 50


@dataclass(frozen=True)
class Request:
    """One explanation request: its inputs, parameters and a way to recompute it."""

    label: str
    inputs: np.ndarray
    explainer: ExplanationType
    parameters: dict[str, object]
    compute: Callable[[], Explanation]


def _as_explanation(
    kind: ExplanationType, values: np.ndarray, base: float, parameters: dict[str, object]
) -> Explanation:
    values = np.asarray(values, dtype=np.float64)[:, :, None]
    base_values = np.full((values.shape[0], 1), float(base))
    return Explanation(
        type=kind,
        values=values,
        base_values=base_values,
        predictions=values.sum(axis=1) + base_values,
        feature_names=tuple(f"f{j}" for j in range(values.shape[1])),
        parameters=parameters,
    )


def build_requests() -> list[Request]:
    import lightgbm
    import shap

    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_TRAIN, N_FEATURES))
    y = x[:, 0] + 2 * x[:, 1] * x[:, 2] + np.sin(x[:, 3]) + 0.1 * rng.normal(size=N_TRAIN)
    # One thread: OpenMP workers spinning after each predict would steal the second core
    # from the hit loop that follows (visible as multi-millisecond p99s).
    model = lightgbm.LGBMRegressor(n_estimators=200, num_leaves=31, n_jobs=1, verbose=-1)
    model.fit(x, y)
    tree = shap.TreeExplainer(model)
    background = x[:N_BACKGROUND]
    kernel = shap.KernelExplainer(model.predict, background)
    tree_parameters: dict[str, object] = {"feature_perturbation": "tree_path_dependent"}
    kernel_parameters: dict[str, object] = {"nsamples": "auto", "background_rows": N_BACKGROUND}

    def tree_compute(rows: np.ndarray) -> Callable[[], Explanation]:
        def compute() -> Explanation:
            values = tree.shap_values(rows)
            return _as_explanation(
                ExplanationType.SHAP_TREE, values, tree.expected_value, tree_parameters
            )

        return compute

    def kernel_compute(rows: np.ndarray) -> Callable[[], Explanation]:
        def compute() -> Explanation:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = kernel.shap_values(rows, silent=True)
            return _as_explanation(
                ExplanationType.SHAP_KERNEL, values, kernel.expected_value, kernel_parameters
            )

        return compute

    one, batch = x[N_TRAIN - 1 :], x[N_TRAIN - 100 :]
    return [
        Request(
            "TreeSHAP, 1 row", one, ExplanationType.SHAP_TREE, tree_parameters,
            tree_compute(one),
        ),
        Request(
            "TreeSHAP, 100 rows", batch, ExplanationType.SHAP_TREE, tree_parameters,
            tree_compute(batch),
        ),
        Request(
            "KernelSHAP, 1 row", one, ExplanationType.SHAP_KERNEL, kernel_parameters,
            kernel_compute(one),
        ),
    ]  # fmt: skip


@dataclass(frozen=True)
class Timings:
    """Wall and CPU seconds of repeated calls."""

    wall: list[float]
    cpu: list[float]

    def p(self, q: float) -> float:
        return percentile(self.wall, q)

    def cpu_p(self, q: float) -> float:
        return percentile(self.cpu, q)


def time_calls(run: Callable[[], object], count: int) -> Timings:
    """Wall and CPU seconds of ``count`` calls of ``run`` (after up to 20 warm-up calls).

    CPU time is this process's: on a shared machine it is what a call costs without the
    time other processes held the core (a Redis round trip's wait is wall time only).
    """
    for _ in range(min(20, count)):
        run()
    wall, cpu = [], []
    for _ in range(count):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return Timings(wall, cpu)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=2000, help="cache hits timed per path")
    parser.add_argument("--recomputes", type=int, default=30, help="TreeSHAP recomputes timed")
    parser.add_argument("--kernel-recomputes", type=int, default=5, help="KernelSHAP recomputes")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    print_machine(["numpy", "blake3", "redis", "shap", "lightgbm"])
    info = redis.Redis.from_url(args.redis_url).info("server")
    print(f"Redis {info['redis_version']} at {args.redis_url}")
    requests = build_requests()

    prefix = f"synapsenet-bench:{uuid.uuid4().hex[:8]}:"
    caches = {
        "in-process LRU": ExplanationCache(InProcessLRUBackend()),
        "Redis (local)": ExplanationCache(RedisBackend(args.redis_url, prefix=prefix)),
    }
    dead = ExplanationCache(
        RedisBackend("redis://127.0.0.1:1/0"),
        breaker=CircuitBreaker(failure_threshold=1, reset_timeout=3600),
    )

    rows: list[list[object]] = []
    summary: list[list[object]] = []
    try:
        for request in requests:
            repeats = args.kernel_recomputes if "Kernel" in request.label else args.recomputes
            recompute = time_calls(request.compute, repeats)
            encoded = encode_explanation(request.compute())
            rows.append(
                [request.label, "recompute (shap)", repeats, ms(recompute.p(50)),
                 ms(recompute.p(90)), ms(recompute.p(99)), ms(recompute.cpu_p(50)),
                 f"{len(encoded):,}"]
            )  # fmt: skip

            def build_key(request: Request = request) -> CacheKey:
                return CacheKey.build(
                    "bench-model", "1", request.explainer, request.parameters, request.inputs
                )

            parts = {
                "  key: hash input + parameters": time_calls(build_key, args.hits),
                "  decode stored bytes": time_calls(
                    lambda encoded=encoded: decode_explanation(encoded), args.hits
                ),
            }
            for name, cache in caches.items():
                cache.get_or_compute(build_key(), request.compute)  # fill

                def hit(cache: ExplanationCache = cache, request: Request = request) -> None:
                    _, was_hit = cache.get_or_compute(build_key(request), request.compute)
                    assert was_hit

                hits = time_calls(hit, args.hits)
                parts[f"hit, {name} (key + lookup + decode)"] = hits
                summary.append(
                    [request.label, name, ms(recompute.p(50)), ms(recompute.cpu_p(50)),
                     ms(hits.p(50)), ms(hits.p(99)), f"{recompute.p(50) / hits.p(50):,.0f}",
                     f"{recompute.cpu_p(50) / hits.p(99):,.0f}"]
                )  # fmt: skip
            dead.get_or_compute(build_key(), request.compute)  # opens the breaker
            parts["Redis down (breaker open): recompute, uncached"] = time_calls(
                lambda request=request: dead.get_or_compute(build_key(request), request.compute),
                repeats,
            )
            for path, timings in parts.items():
                calls = len(timings.wall)
                rows.append(
                    [request.label, path, calls, ms(timings.p(50)), ms(timings.p(90)),
                     ms(timings.p(99)), ms(timings.cpu_p(50)), ""]
                )  # fmt: skip
    finally:
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
        client.close()
        for cache in caches.values():
            cache.close()
        dead.close()

    print()
    headers = ["request", "path", "calls", "p50 ms", "p90 ms", "p99 ms", "CPU p50 ms", "bytes"]
    print_table(headers, rows)
    print()
    print_table(
        ["request", "cache", "recompute p50 ms", "recompute CPU p50 ms", "hit p50 ms",
         "hit p99 ms", "speed-up (p50 / p50)", "speed-up (CPU p50 / hit p99)"],
        summary,
    )  # fmt: skip


if __name__ == "__main__":
    main()
