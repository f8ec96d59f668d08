"""Source releases of the SDKs, downloaded once into a cache outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["SourceError", "cache_dir", "installed_version", "source_tree"]


class SourceError(RuntimeError):
    """A source release that cannot be had, or has no test suite."""


def cache_dir() -> Path:
    """``$SESSIONWARE_CONFORMANCE_CACHE``, else ``~/.cache/sessionware-conformance``."""
    configured = os.environ.get("SESSIONWARE_CONFORMANCE_CACHE")
    path = Path(configured) if configured else Path.home() / ".cache" / "sessionware-conformance"
    path.mkdir(parents=True, exist_ok=True)
    return path


def installed_version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def source_tree(dist: str, release: str, cache: Path) -> Path:
    """The unpacked source release ``dist==release`` (downloaded with pip on first use).

    The archive is downloaded and unpacked in a folder of this run's own, then moved into
    place whole, so runs started side by side never read a half-written tree.
    """
    tree = cache / f"{dist}-{release}"
    if (tree / "tests").is_dir():
        return tree
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{dist}-{release}-") as work:
        archive = cache / f"{dist}-{release}.tar.gz"
        if not archive.exists():
            print(f"downloading the source release of {dist} {release}", flush=True)
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    f"{dist}=={release}",
                    "--dest",
                    work,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            fetched = Path(work) / archive.name
            if done.returncode != 0 or not fetched.exists():
                raise SourceError(
                    f"pip could not download the source release of {dist} {release}: {done.stderr[-800:]}"
                )
            os.replace(fetched, archive)
        with tarfile.open(archive) as bundle:
            bundle.extractall(work, filter="data")
        unpacked = Path(work) / tree.name
        if not (unpacked / "tests").is_dir():
            raise SourceError(
                f"the source release of {dist} {release} has no tests/ folder; use its repository's tag"
            )
        try:
            unpacked.rename(tree)
        except OSError:
            if not (tree / "tests").is_dir():  # not another run's finished tree: a real error
                raise
    return tree
