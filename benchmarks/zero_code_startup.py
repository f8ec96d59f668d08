"""What ``sessionware run`` adds to a program's start-up.

An app that never calls an LLM (it prints a line and exits) is started many times, the
variants interleaved run by run so drift hits them alike:

* **python app.py**: the baseline;
* **bootstrap only**: ``python app.py`` with the bootstrap directory on ``PYTHONPATH`` and
  the settings in the environment, as ``sessionware run`` leaves them: what the
  ``sitecustomize`` costs inside the program;
* **sessionware run -- python app.py**: the whole command, the ``sessionware`` CLI's own
  start included (on POSIX it then ``exec``s the program).

For reference it also times an app that imports ``openai`` without calling it, bare and
under ``sessionware run``: there the post-import hook loads the adapters as ``openai``
finishes loading. Reported: the median wall time of each, and what ``sessionware run``
adds. Bar: <= 200 ms added for the app that never calls an LLM.

Run it from the repository root (about a minute)::

    python benchmarks/zero_code_startup.py
    python benchmarks/zero_code_startup.py --runs 10   # quicker, noisier
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BAR_SECONDS = 0.200
PLAIN_APP = "import json, sys\nprint(json.dumps({'ok': True}))\n"
OPENAI_APP = "import openai\nprint(openai.__version__)\n"


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per variant (default 30)")
    args = parser.parse_args()

    from sessionware._bootstrap import BOOTSTRAP_DIR

    python = sys.executable
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARE_") and k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "app.py").write_text(PLAIN_APP)
        (cwd / "openai_app.py").write_text(OPENAI_APP)
        bootstrapped = {**base_env, "PYTHONPATH": BOOTSTRAP_DIR, "SESSIONWARE_STORE": f"sqlite:///{cwd}/x.db"}
        run = [python, "-m", "sessionware", "run", "--"]
        variants: dict[str, tuple[list[str], dict[str, str]]] = {
            "python app.py": ([python, "app.py"], base_env),
            "bootstrap only": ([python, "app.py"], bootstrapped),
            "sessionware run -- python app.py": ([*run, python, "app.py"], base_env),
            "python openai_app.py": ([python, "openai_app.py"], base_env),
            "sessionware run -- python openai_app.py": ([*run, python, "openai_app.py"], base_env),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for argv, env in variants.values():  # warm the file cache and bytecode
            timed(argv, env, cwd)
        order = list(variants)
        for _ in range(args.runs):
            random.shuffle(order)
            for name in order:
                argv, env = variants[name]
                times[name].append(timed(argv, env, cwd))

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"start-up of a program, median of {args.runs} runs each")
    for name, value in medians.items():
        print(f"  {name:<42} {value * 1e3:8.1f} ms")
    plain = medians["python app.py"]
    added = medians["sessionware run -- python app.py"] - plain
    inside = medians["bootstrap only"] - plain
    print(f"  sessionware run adds {added * 1e3:+.1f} ms ({added / plain:+.0%} of python app.py):")
    cli = added - inside
    print(
        f"    the bootstrap inside the program {inside * 1e3:+.1f} ms, the CLI before it {cli * 1e3:+.1f} ms"
    )
    with_openai = medians["sessionware run -- python openai_app.py"] - medians["python openai_app.py"]
    print(
        f"  for an app importing openai it adds {with_openai * 1e3:+.1f} ms (the adapters load with openai)"
    )
    print(f"  bar: <= {BAR_SECONDS * 1e3:.0f} ms added -> {'met' if added <= BAR_SECONDS else 'NOT met'}")


if __name__ == "__main__":
    main()
