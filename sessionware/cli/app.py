"""Running one ``sessionware`` command: parse, pick the store, dispatch, map errors.

The store URL comes from ``--store``, else ``$SESSIONWARE_STORE``, else the zero-code
SQLite file in the working directory; it is read here, at run time, never at import.
Errors become one line on stderr and an exit code from ``ExitCode``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from sessionware.cli.parser import COMMANDS, DEFAULT_STORE_URL, STORE_ENV, ExitCode, build_parser
from sessionware.cli.render import OutputFormat, resolve_format

if TYPE_CHECKING:
    from sessionware.core.store.store import Store

__all__ = ["Invocation", "main", "report_error", "resolve_store_url"]

logger = logging.getLogger(__name__)

Handler = Callable[["Invocation"], int]


def resolve_store_url(option: str | None, environ: Mapping[str, str]) -> str:
    """``--store`` if given, else ``$SESSIONWARE_STORE``, else the default SQLite file."""
    return option or environ.get(STORE_ENV) or DEFAULT_STORE_URL


@dataclass
class Invocation:
    """One run of a subcommand: its arguments, streams and the stores it opened."""

    args: argparse.Namespace
    store_url: str
    stdout: TextIO
    stderr: TextIO
    _stores: list[Store] = field(default_factory=list, init=False, repr=False)

    @property
    def output_format(self) -> OutputFormat:
        requested = getattr(self.args, "format", None)
        return resolve_format(OutputFormat(requested) if requested else None, self.stdout)

    @property
    def header(self) -> bool:
        return not getattr(self.args, "no_header", False)

    @staticmethod
    def terminal_width() -> int:
        return shutil.get_terminal_size((100, 24)).columns

    def open_store(self, *, must_exist: bool = True) -> Store:
        """The store to read or write; with ``must_exist`` a missing SQLite file is an error
        (reading must not leave an empty database behind)."""
        from sessionware.core.errors import StorageError
        from sessionware.core.store.url import open_store

        store = open_store(self.store_url)
        self._stores.append(store)
        if must_exist and store.kind == "sqlite" and not Path(store.location).exists():
            store.flush()  # run in-process, the file may yet come from calls not written
            if not Path(store.location).exists():
                raise StorageError(
                    "open",
                    store.kind,
                    store.location,
                    f"no such file; nothing was recorded there (choose a store with --store or ${STORE_ENV})",
                )
        return store

    def write(self, text: str) -> None:
        """``text`` on stdout as whole lines (nothing at all for an empty text)."""
        if text:
            self.stdout.write(text if text.endswith("\n") else text + "\n")

    def write_json(self, value: Any) -> None:
        self.write(json.dumps(value, indent=2, ensure_ascii=False))

    def note(self, text: str) -> None:
        """A remark for the person at the terminal, on stderr so output stays clean."""
        self.stderr.write(f"sessionware: {text}\n")

    def close(self) -> None:
        from sessionware.core.errors import SessionwareError

        for store in self._stores:
            try:
                store.close()
            except SessionwareError as exc:
                logger.warning("could not close %r: %s", store, exc)
        self._stores.clear()


def _handler(name: str) -> Handler:
    command = next(c for c in COMMANDS if c.name == name)
    module_name, _, function = command.handler.partition(":")
    return cast(Handler, getattr(importlib.import_module(module_name), function))


def report_error(inv: Invocation, message: str, code: ExitCode) -> int:
    """Print ``message`` as the command's error on stderr; return ``code`` for ``main``."""
    inv.stderr.write(f"sessionware: error: {message}\n")
    return int(code)


def _dispatch(inv: Invocation) -> int:
    from sessionware.core.errors import InvalidSessionOperation, SessionNotFound, SessionwareError

    try:
        return _handler(inv.args.command)(inv)
    except SessionNotFound as exc:
        return report_error(inv, str(exc), ExitCode.NOT_FOUND)
    except InvalidSessionOperation as exc:
        # A store URL that names no known kind of store is a usage error, like argparse's.
        code = ExitCode.USAGE if exc.operation == "open_store" else ExitCode.ERROR
        return report_error(inv, exc.reason if code is ExitCode.USAGE else str(exc), code)
    except SessionwareError as exc:
        return report_error(inv, str(exc), ExitCode.ERROR)
    except BrokenPipeError:
        # The reader went away (``| head``): it has what it wanted. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        _silence_stdout(inv.stdout)
        return int(ExitCode.OK)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return report_error(inv, f"{where}{exc.strerror or exc}", ExitCode.ERROR)


def _silence_stdout(stream: TextIO) -> None:
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sessionware`` with ``argv`` (default: the process's arguments); return the exit code.

    >>> main(["--version"])  # doctest: +SKIP
    sessionware 0.1.0
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        if exc.code is None:
            return int(ExitCode.OK)
        return exc.code if isinstance(exc.code, int) else int(ExitCode.USAGE)
    inv = Invocation(
        args=args,
        store_url=resolve_store_url(args.store, os.environ),
        stdout=sys.stdout,
        stderr=sys.stderr,
    )
    try:
        return _dispatch(inv)
    except KeyboardInterrupt:
        inv.stderr.write("sessionware: interrupted\n")
        return 130
    finally:
        inv.close()
