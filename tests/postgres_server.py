"""A real PostgreSQL server for tests and benchmarks: Debian's ``postgresql`` binaries,
initialised on a temporary folder, listening on 127.0.0.1 at a free port.

``initdb`` refuses to run as root, and CI runs as root: the server then runs as an
unprivileged user (``postgres`` when the package created it, else ``nobody``), which
owns the temporary folder. Authentication is ``trust`` on loopback only; nothing
outside this machine can reach it.

>>> with PostgresServer.start() as server:  # doctest: +SKIP
...     url = server.url  # postgresql://sessionware@127.0.0.1:PORT/sessionware
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresMissing", "PostgresServer", "find_bin_dir"]

SUPERUSER = "sessionware"
DATABASE = "sessionware"
_START_SECONDS = 30.0


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bin_dir() -> Path:
    """The folder holding ``initdb`` and ``postgres``: on PATH, else Debian's newest."""
    on_path = shutil.which("initdb")
    if on_path is not None and shutil.which("postgres") is not None:
        return Path(on_path).resolve().parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresMissing("PostgreSQL is not installed (apt-get install postgresql)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged account to run as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresMissing("running as root, and neither a 'postgres' nor a 'nobody' account exists")


@dataclass
class PostgresServer:
    """A running server; ``stop()`` (or leaving the ``with`` block) ends it and removes its files."""

    port: int
    root: Path
    process: subprocess.Popen[bytes] | None
    bin_dir: Path
    user: pwd.struct_passwd | None
    durable: bool = False

    @property
    def url(self) -> str:
        return self.url_for(DATABASE)

    def url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresServer:
        """Initialise and start a server. ``durable=False`` (tests) turns fsync off;
        benchmarks pass ``durable=True`` to measure what a production server does."""
        bin_dir = find_bin_dir()
        user = _run_as()
        root = Path(tempfile.mkdtemp(prefix="sessionware-pg-"))
        data, sockets = root / "data", root / "sock"
        sockets.mkdir()
        if user is not None:
            for path in (root, sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
        ids = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []} if user else {}
        try:
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                env=_env(),
                cwd=root,
                **ids,  # type: ignore[arg-type]
            )
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresMissing(f"initdb failed: {exc.stderr.decode(errors='replace')[-2000:]}") from exc
        server = cls(port=_free_port(), root=root, process=None, bin_dir=bin_dir, user=user, durable=durable)
        try:
            server._launch()
            server._psql("postgres", f"CREATE DATABASE {DATABASE}")
        except BaseException:
            server.stop()
            raise
        return server

    def _launch(self) -> None:
        settings = [
            "listen_addresses=127.0.0.1",
            f"unix_socket_directories={self.root / 'sock'}",
            "max_connections=200",
            "shared_buffers=64MB",
            "log_min_messages=warning",
        ]
        if not self.durable:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        args = [str(self.bin_dir / "postgres"), "-D", str(self.root / "data"), "-p", str(self.port)]
        for setting in settings:
            args += ["-c", setting]
        ids = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []} if self.user else {}
        with open(self.root / "server.log", "ab") as log:
            self.process = subprocess.Popen(  # type: ignore[call-overload]
                args, stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=self.root, **ids
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise PostgresMissing(f"postgres exited at start:\n{self.log_tail()}")
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise PostgresMissing(f"postgres did not accept connections within {_START_SECONDS:.0f} s")

    def _psql(self, database: str, sql: str) -> None:
        subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
        )

    def create_database(self, name: str) -> str:
        """A new empty database on this server; its URL."""
        self._psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self) -> None:
        """Take the server down (fast shutdown: every connection cut), keeping its files."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def restart(self) -> None:
        """Start the server again on the same files and port."""
        self._launch()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
