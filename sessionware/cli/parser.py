"""The ``sessionware`` argument parser, built from one table of subcommands.

Each subcommand is a ``Command``: its name, help texts, a function adding its own
arguments, and the dotted path of its handler. Handlers are imported only when their
command runs, so ``sessionware --help`` loads argparse and nothing heavier.

Adding a subcommand means writing its module and adding one ``Command`` to ``COMMANDS``
(``run`` takes the program after ``--`` with ``argparse.REMAINDER``).
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from sessionware._version import __version__
from sessionware.cli.render import OutputFormat

__all__ = [
    "COMMANDS",
    "DEFAULT_STORE_URL",
    "STORE_ENV",
    "Command",
    "ExitCode",
    "build_parser",
]

#: The store every command reads when neither ``--store`` nor ``SESSIONWARE_STORE`` is
#: given: the SQLite file zero-code mode records into, in the working directory.
DEFAULT_STORE_URL = "sqlite:///./sessionware.db"
STORE_ENV = "SESSIONWARE_STORE"


class ExitCode(IntEnum):
    """What ``sessionware`` returns, for scripts."""

    OK = 0
    ERROR = 1
    """A runtime failure: unreadable or corrupt store, bad import file, id taken, I/O."""
    USAGE = 2
    """Bad arguments (argparse), including a store URL of an unknown kind."""
    NOT_FOUND = 3
    """The session id is not in the store."""


EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  runtime error: unreadable or corrupt store, invalid import file, id already taken
  2  usage error: bad arguments or an unknown kind of store URL
  3  not found: no session with that id in the store"""

STORE_HELP = (
    f"session store URL: sqlite:///path.db, redis://host:6379/0, memory:// "
    f"(default: ${STORE_ENV}, else {DEFAULT_STORE_URL})"
)


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: what ``--help`` says, its arguments, and its handler.

    ``handler`` is ``"module:function"``; the function takes an ``Invocation`` and
    returns an exit code.
    """

    name: str
    help: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]
    handler: str
    epilog: str = ""


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=[f.value for f in OutputFormat],
        default=None,
        help="output format (default: table on a terminal, tab-separated plain text when piped)",
    )
    parser.add_argument(
        "--no-header", action="store_true", help="omit the line of column titles in plain output"
    )


def _configure_sessions(parser: argparse.ArgumentParser) -> None:
    _add_output_options(parser)
    parser.add_argument("--limit", type=_positive_int, metavar="N", help="show only the N newest sessions")
    parser.add_argument("--parent", metavar="ID", help="show only the children of session ID")


def _configure_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", metavar="ID", help="the session to show")
    _add_output_options(parser)
    parser.add_argument(
        "--max-chars",
        type=_non_negative_int,
        default=2000,
        metavar="N",
        help="in a table, cut each event's text after N characters (0: never; default 2000)",
    )


def _configure_stats(parser: argparse.ArgumentParser) -> None:
    _add_output_options(parser)
    parser.add_argument(
        "--since", type=_day, metavar="YYYY-MM-DD", help="only events on or after this day (UTC)"
    )
    parser.add_argument(
        "--until", type=_day, metavar="YYYY-MM-DD", help="only events on or before this day (UTC)"
    )


def _configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", metavar="ID", help="the session to export")
    parser.add_argument(
        "--format",
        dest="export_format",
        choices=["jsonl", "json"],
        default="jsonl",
        help="jsonl: a header line then one line per event and page (default); json: one document",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


def _configure_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE", help="an export in jsonl or json format ('-' for standard input)"
    )
    parser.add_argument(
        "--as",
        dest="new_id",
        metavar="NEW_ID",
        help="store the session under NEW_ID instead of the id in the file",
    )


def _configure_ui(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    parser.add_argument(
        "--port", type=_port, default=8765, metavar="N", help="port to listen on (default 8765; 0: any free)"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="needed with a --host other machines can reach; it prints a warning",
    )


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError("must be at most 65535")
    return value


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--session", metavar="ID", help="record every call into session ID")
    parser.add_argument(
        "--mode",
        choices=["observe", "managed"],
        default=None,
        help=(
            "observe: record what the program sends (default); managed: send the context the "
            "session's virtual memory builds, within --budget"
        ),
    )
    parser.add_argument(
        "--budget", type=_positive_int, metavar="TOKENS", help="managed mode's input token budget"
    )
    parser.add_argument(
        "--otel",
        action="store_true",
        help="also export every call as OpenTelemetry spans (GenAI conventions) to the program's "
        "tracer provider",
    )
    parser.add_argument(
        "--propagate",
        action="store_true",
        help="also instrument the Python programs it starts (default: only the program itself)",
    )
    parser.add_argument(
        "program",
        nargs=argparse.REMAINDER,
        metavar="-- PROGRAM [ARGS]",
        help="the command to run, e.g. -- python app.py",
    )


_RUN_EPILOG = f"""\
The program runs with sessionware's sitecustomize first on PYTHONPATH, which records every
OpenAI, Anthropic and LiteLLM call into the store before the program's first line runs.

environment (options win):
  {STORE_ENV}      the store (default: {DEFAULT_STORE_URL})
  SESSIONWARE_SESSION    like --session
  SESSIONWARE_MODE       like --mode
  SESSIONWARE_BUDGET     like --budget
  SESSIONWARE_PROVIDERS  comma-separated SDKs to instrument (default: openai,anthropic,litellm)
  SESSIONWARE_PROPAGATE  1: like --propagate
  SESSIONWARE_OTEL       1: like --otel
  SESSIONWARE_DISABLED   1: the kill switch; the program runs with nothing patched

The exit code is the program's (126/127: it could not be run or found). If sessionware
cannot start inside the program, it prints one warning line and the program runs unrecorded."""


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _day(text: str) -> str:
    from datetime import date

    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day in YYYY-MM-DD form: {text!r}") from None


_PLAIN_NOTE = "Plain output is tab-separated, one record per line, tabs and newlines escaped as \\t and \\n."

COMMANDS: tuple[Command, ...] = (
    Command(
        name="run",
        help="run a program with every LLM call recorded (zero-code)",
        description=(
            "Run an unmodified program with its OpenAI, Anthropic and LiteLLM calls recorded into "
            "the store: sessionware run -- python app.py"
        ),
        configure=_configure_run,
        handler="sessionware.cli.run:run",
        epilog=_RUN_EPILOG,
    ),
    Command(
        name="sessions",
        help="list recorded sessions, newest first",
        description="List the store's sessions, newest first, with their turns, tokens and cost.",
        configure=_configure_sessions,
        handler="sessionware.cli.commands:sessions",
        epilog=(
            "columns: id, started (UTC), turns (user messages), tokens in, tokens out, cost, model, parent.\n"
            "In a table a cost ending in '+' leaves out calls whose model has no known price, and '?'\n"
            "means no call had one; plain output adds the count as a last column, unpriced_calls.\n"
            + _PLAIN_NOTE
        ),
    ),
    Command(
        name="show",
        help="show one session as a timeline",
        description=(
            "Show a session's conversation as a timeline: messages, tool calls with arguments and "
            "results, usage and cost per call, errors, branches, page faults and compactions."
        ),
        configure=_configure_show,
        handler="sessionware.cli.commands:show",
        epilog="json prints the whole session: header, totals, children and every event.\n" + _PLAIN_NOTE,
    ),
    Command(
        name="stats",
        help="token and cost totals by model and by day",
        description=(
            "Totals over every session in the store: calls, tokens in (cached included), cached, "
            "tokens out and cost, by model and by day (UTC), and overall."
        ),
        configure=_configure_stats,
        handler="sessionware.cli.commands:stats",
        epilog=(
            "plain columns: group (model, day or total), key, sessions, calls, tokens_in, cached, "
            "cache_write, tokens_out, cost, unpriced_calls, errors.\n" + _PLAIN_NOTE
        ),
    ),
    Command(
        name="ui",
        help="browse the sessions in a local web page (read-only)",
        description=(
            "Serve a read-only web page over the store: sessions with search and sort, each "
            "session's timeline, per-call token, cost and latency charts, the context each call "
            "was sent, and totals by model and by day. It listens on 127.0.0.1 by default."
        ),
        configure=_configure_ui,
        handler="sessionware.cli.ui.command:ui",
        epilog=(
            "Open the printed address in a browser; Ctrl-C stops the server. The page loads nothing\n"
            "from elsewhere. Any other --host needs --allow-remote: there is no login."
        ),
    ),
    Command(
        name="export",
        help="export one session losslessly (jsonl or json)",
        description=(
            "Write a session's header, every event exactly as stored and its memory pages, in a "
            "form 'sessionware import' reads back unchanged."
        ),
        configure=_configure_export,
        handler="sessionware.cli.commands:export",
        epilog=(
            'jsonl: first line {"kind": "session", "export_version": 1, ...header}, then one\n'
            '{"kind": "event", ...} line per event in seq order, then one {"kind": "page", ...} per page.\n'
            "json: the same as one document with 'session', 'events' and 'pages'."
        ),
    ),
    Command(
        name="import",
        help="import a session from an export file",
        description=(
            "Read a file written by 'sessionware export' and store the session. An id already in "
            "the store is refused unless --as gives a new one."
        ),
        configure=_configure_import,
        handler="sessionware.cli.commands:import_",
        epilog="The whole file is checked before anything is written; the session is written in one batch.",
    ),
)


def _add_store_option(parser: argparse.ArgumentParser, *, default: object) -> None:
    parser.add_argument("--store", metavar="URL", default=default, help=STORE_HELP)


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """The parser of ``sessionware``; ``args.command`` names the chosen ``Command``."""
    parser = argparse.ArgumentParser(
        prog="sessionware",
        description=(
            "Run a program with its LLM calls recorded; inspect, export and import the sessions "
            "sessionware recorded."
        ),
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_store_option(parser, default=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    for command in commands:
        child = sub.add_parser(
            command.name,
            help=command.help,
            description=textwrap.fill(command.description, 79),
            epilog="\n\n".join(p for p in (command.epilog, EXIT_CODES_HELP) if p),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # SUPPRESS: a --store given after the subcommand wins, one given before it is kept.
        _add_store_option(child, default=argparse.SUPPRESS)
        command.configure(child)
        child.set_defaults(command=command.name)
    return parser
