"""Run a function right after a module is imported, and stop doing so exactly.

``PostImportFinder`` sits first on ``sys.meta_path``. For a watched module name it asks
the other finders for the real spec and wraps its loader: once the module has executed,
the loader is put back on the module (``__loader__`` and ``__spec__.loader``, so nothing
can tell it was wrapped) and the hook runs. ``remove()`` takes the finder off the meta
path again, which is all there is to undo. A hook that fails is reported to the
``on_error`` callback; it never breaks the app's import.
"""

from __future__ import annotations

import importlib.machinery
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

__all__ = ["PostImportFinder"]

Hook = Callable[[ModuleType], None]


class _HookedLoader:
    """The real loader, plus the hook once the module has run.

    Loaders and finders are duck-typed (no ``importlib.abc`` base): that module costs the
    interpreter's start more than this whole one.
    """

    def __init__(self, loader: Any, hook: Hook, on_error: Callable[[str, BaseException], None]) -> None:
        self._loader = loader
        self._hook = hook
        self._on_error = on_error

    def __getattr__(self, name: str) -> Any:
        # Resource readers, ``is_package``, ``get_code``... of the real loader.
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        try:
            self._hook(module)
        except Exception as exc:
            self._on_error(module.__name__, exc)


class PostImportFinder:
    """Calls ``hooks[name](module)`` when module ``name`` has been imported."""

    def __init__(self, hooks: Mapping[str, Hook], on_error: Callable[[str, BaseException], None]) -> None:
        self.hooks = dict(hooks)
        self._on_error = on_error
        self._local = threading.local()

    def install(self) -> None:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def remove(self) -> None:
        while self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        hook = self.hooks.get(fullname)
        if hook is None or getattr(self._local, "busy", False):
            return None
        self._local.busy = True
        try:
            spec = self._real_spec(fullname, path, target)
        finally:
            self._local.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = cast("Loader", _HookedLoader(spec.loader, hook, self._on_error))
        return spec

    def _real_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find(fullname, path, target)
            if spec is not None:
                return spec
        return None
