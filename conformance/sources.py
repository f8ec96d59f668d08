"""Source releases of the SDKs, downloaded once into a cache outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
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
    """The unpacked source release ``dist==release`` (downloaded with pip on first use)."""
    tree = cache / f"{dist}-{release}"
    if (tree / "tests").is_dir():
        return tree
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
                str(cache),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not archive.exists():
            raise SourceError(
                f"pip could not download the source release of {dist} {release}: {done.stderr[-800:]}"
            )
    with tarfile.open(archive) as bundle:
        bundle.extractall(cache, filter="data")
    if not (tree / "tests").is_dir():
        raise SourceError(
            f"the source release of {dist} {release} has no tests/ folder; use its repository's tag"
        )
    return tree
