"""Zero-code bootstrap: Python imports this ``sitecustomize`` at start-up when
``sessionware run`` has put its directory first on ``PYTHONPATH``.

In order, and only when imported under the name ``sitecustomize`` (importing it as
``sessionware._bootstrap.sitecustomize`` does nothing):

1. take this directory off ``sys.path`` and, unless ``SESSIONWARE_PROPAGATE`` is set,
   off ``PYTHONPATH`` too, so child processes run uninstrumented;
2. instrument the interpreter from the environment (``sessionware.adapters.instrument.zero_code``);
   if that fails for any reason, print one warning line on stderr and go on: the
   program runs exactly as it would without sessionware;
3. run the ``sitecustomize`` this one shadows, if there is one.

Only the standard library is used before step 2, so a broken installation cannot stop
the program.
"""

from __future__ import annotations

import os
import sys


def _same(path: str, here: str) -> bool:
    try:
        return os.path.normcase(os.path.abspath(path)) == here
    except (TypeError, ValueError):
        return False


def _leave_paths(here: str) -> None:
    sys.path[:] = [p for p in sys.path if not _same(p, here)]
    if os.environ.get("SESSIONWARE_PROPAGATE", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    entries = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    kept = [p for p in entries if p and not _same(p, here)]
    if kept:
        os.environ["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        os.environ.pop("PYTHONPATH", None)


def _start() -> None:
    try:
        from sessionware.adapters.instrument.zero_code import start

        start()
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(f"sessionware: not recording this run ({text}); the program runs as usual\n")


def _chain(here: str) -> None:
    """Run the ``sitecustomize`` further down the path, as Python would have."""
    import importlib.machinery
    import importlib.util

    spec = importlib.machinery.PathFinder.find_spec(
        "sitecustomize", [p for p in sys.path if not _same(p, here)]
    )
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


if __name__ == "sitecustomize":
    _here = os.path.normcase(os.path.dirname(os.path.abspath(__file__)))
    _leave_paths(_here)
    _start()
    _chain(_here)
