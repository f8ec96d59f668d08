"""``sessionware run -- PROGRAM [ARGS]``: run an unmodified program with every LLM call
recorded.

The program is started with ``sessionware/_bootstrap`` first on ``PYTHONPATH`` and the
settings in ``SESSIONWARE_*`` environment variables; the bootstrap's
``sitecustomize`` instruments the interpreter before the program's first line (see
``sessionware.adapters.instrument.zero_code``). On POSIX the program replaces this process
(``exec``), so its exit status, signals and pid are its own; elsewhere it runs as a
child and its exit code is returned.

Options the user typed are checked here (a bad one is a usage error and nothing runs);
values that only come from the environment are checked by the bootstrap, which warns
in one line and lets the program run unrecorded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

from sessionware.cli.app import Invocation, report_error
from sessionware.cli.parser import DEFAULT_STORE_URL, STORE_ENV, ExitCode

__all__ = ["child_environment", "run"]

# Shell conventions for a program that could not be started.
_NOT_EXECUTABLE = 126
_NOT_FOUND = 127


def child_environment(
    environ: Mapping[str, str],
    *,
    store: str | None,
    session: str | None,
    mode: str | None,
    budget: int | None,
    propagate: bool,
    otel: bool = False,
) -> dict[str, str]:
    """The program's environment: ``environ`` plus the bootstrap and the settings."""
    from sessionware._bootstrap import BOOTSTRAP_DIR
    from sessionware.adapters.instrument.zero_code import (
        BUDGET_ENV,
        DISABLED_ENV,
        MODE_ENV,
        OTEL_ENV,
        PROPAGATE_ENV,
        SESSION_ENV,
        is_true,
    )

    env = dict(environ)
    if is_true(env.get(DISABLED_ENV)):
        return env  # the kill switch: the program starts exactly as without sessionware
    env[STORE_ENV] = store or env.get(STORE_ENV) or DEFAULT_STORE_URL
    for name, value in ((SESSION_ENV, session), (MODE_ENV, mode)):
        if value is not None:
            env[name] = value
    if budget is not None:
        env[BUDGET_ENV] = str(budget)
    if propagate:
        env[PROPAGATE_ENV] = "1"
    if otel:
        env[OTEL_ENV] = "1"
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = BOOTSTRAP_DIR + (os.pathsep + existing if existing else "")
    return env


def _launch(inv: Invocation, argv: Sequence[str], env: Mapping[str, str]) -> int:
    for stream in (sys.stdout, sys.stderr, inv.stdout, inv.stderr):
        stream.flush()
    try:
        if os.name == "posix":
            os.execvpe(argv[0], list(argv), dict(env))
        return subprocess.call(list(argv), env=dict(env))
    except FileNotFoundError:
        report_error(inv, f"{argv[0]}: command not found", ExitCode.ERROR)
        return _NOT_FOUND
    except PermissionError:
        report_error(inv, f"{argv[0]}: permission denied", ExitCode.ERROR)
        return _NOT_EXECUTABLE
    except KeyboardInterrupt:
        return 130


def run(inv: Invocation) -> int:
    """Run the program after ``--`` with instrumentation; return its exit code."""
    from sessionware.adapters.instrument import check_mode
    from sessionware.core.errors import InvalidSessionOperation

    args = inv.args
    argv = list(args.program)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        return report_error(
            inv,
            "nothing to run: give the program after '--', e.g. sessionware run -- python app.py",
            ExitCode.USAGE,
        )
    if args.session is not None and not args.session.strip():
        return report_error(inv, "--session needs a non-empty id", ExitCode.USAGE)
    try:
        check_mode(args.mode or "observe", args.budget, operation="run")
    except InvalidSessionOperation as exc:
        return report_error(inv, exc.reason, ExitCode.USAGE)
    env = child_environment(
        os.environ,
        store=inv.store_url,
        session=args.session,
        mode=args.mode,
        budget=args.budget,
        propagate=args.propagate,
        otel=args.otel,
    )
    return _launch(inv, argv, env)
