"""From a Python function to a validating arguments model and a JSON schema.

The model is built with ``pydantic.create_model`` from the signature and type hints
(``Annotated[x, Field(description=...)]`` and defaults are honoured). Parameter
descriptions may also come from a Google-style ``Args:`` section of the docstring.
Fields get internal names and the parameter names as aliases, so a parameter may be
called anything (``json``, ``model_id``, ``_x``) without clashing with pydantic.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PydanticUserError, create_model
from pydantic.fields import FieldInfo

from sessionware.core.errors import InvalidSessionOperation

__all__ = ["ArgumentsSpec", "describe", "parse_docstring"]

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?):\s*$")
_ARG_SECTIONS = ("Args", "Arguments", "Parameters")
_PARAM = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The summary (text before the first section) and the ``Args:`` descriptions.

    >>> parse_docstring('''Add numbers.
    ...
    ... Args:
    ...     a: the first
    ...     b (float): the second,
    ...         continued
    ... ''')
    ('Add numbers.', {'a': 'the first', 'b': 'the second, continued'})
    """
    if not doc:
        return "", {}
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    param_indent: int | None = None
    for raw in inspect.cleandoc(doc).splitlines():
        line = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        header = _SECTION.match(line)
        if header and indent == 0:
            section, current, param_indent = header.group(1), None, None
            continue
        if section is None:
            summary.append(line)
            continue
        if section not in _ARG_SECTIONS or not line:
            continue
        match = _PARAM.match(line)
        if match and (param_indent is None or indent <= param_indent):
            param_indent = indent
            current = match.group(1).lstrip("*")
            params[current] = match.group(2).strip()
        elif current is not None:
            params[current] = f"{params[current]} {line}".strip()
    return " ".join(" ".join(summary).split()), params


def _strip_titles(schema: Any) -> Any:
    """Drop pydantic's generated ``title`` keys; they cost prompt tokens and tell the model nothing."""
    if isinstance(schema, list):
        return [_strip_titles(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {name: _strip_titles(sub) for name, sub in value.items()}
        elif key == "title" and isinstance(value, str):
            continue
        else:
            out[key] = _strip_titles(value)
    return out


class ArgumentsSpec:
    """The validated arguments of one function: a pydantic model and its JSON schema."""

    def __init__(self, model: type[BaseModel], names: dict[str, str]) -> None:
        self.model = model
        self._names = names  # internal field name -> parameter name
        self.schema: dict[str, Any] = _strip_titles(model.model_json_schema(by_alias=True))
        self.schema.setdefault("properties", {})

    def validate(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the function, defaults filled in; raises ``pydantic.ValidationError``.

        Values keep their validated Python types (a nested model stays a model).
        """
        instance = self.model.model_validate(arguments)
        return {param: getattr(instance, field) for field, param in self._names.items()}


def _field(param: inspect.Parameter, annotation: Any, doc: str | None) -> tuple[Any, FieldInfo]:
    default = param.default
    if isinstance(default, FieldInfo):
        # ``x: int = Field(3, description=...)``: keep it, adding only the alias.
        annotation = Annotated[annotation, default]
        default = inspect.Parameter.empty
    kwargs: dict[str, Any] = {"alias": param.name}
    if doc:
        kwargs["description"] = doc
    if default is inspect.Parameter.empty:
        return annotation, Field(**kwargs)
    return annotation, Field(default, **kwargs)


def _parameter_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved type hints of the parameters only: the return annotation may name a type
    that cannot be resolved here (a local class under ``from __future__ import annotations``)
    and the schema does not need it."""
    target: Any = fn.func if isinstance(fn, functools.partial) else fn
    if inspect.isclass(target):
        target = target.__init__
    elif not inspect.isroutine(target):
        target = type(target).__call__  # a callable object: its hints are on ``__call__``
    target = inspect.unwrap(target)
    annotations = {k: v for k, v in getattr(target, "__annotations__", {}).items() if k != "return"}
    carrier = types.FunctionType((lambda: None).__code__, getattr(target, "__globals__", {}))
    carrier.__annotations__ = annotations
    closure = inspect.getclosurevars(target).nonlocals if inspect.isfunction(target) else {}
    return typing.get_type_hints(carrier, localns=dict(closure), include_extras=True)


def describe(fn: Callable[..., Any], name: str) -> tuple[str, ArgumentsSpec]:
    """The docstring summary of ``fn`` and the spec of its arguments.

    Raises ``InvalidSessionOperation`` for signatures a model cannot call with a JSON
    object: ``*args``, ``**kwargs``, positional-only parameters, unresolvable hints.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise InvalidSessionOperation("register_tool", f"{name}: no inspectable signature ({exc})") from None
    try:
        hints = _parameter_hints(fn)
    except Exception as exc:  # NameError, TypeError... from evaluating the annotations
        raise InvalidSessionOperation(
            "register_tool", f"{name}: cannot resolve the type hints ({type(exc).__name__}: {exc})"
        ) from None
    summary, docs = parse_docstring(inspect.getdoc(fn))
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    for index, param in enumerate(signature.parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise InvalidSessionOperation(
                "register_tool",
                f"{name}: parameter {param.name!r} is {param.kind.description}; "
                "a tool takes named parameters only",
            )
        internal = f"p{index}"
        fields[internal] = _field(param, hints.get(param.name, Any), docs.get(param.name))
        names[internal] = param.name
    try:
        model = create_model(
            f"{name}_arguments", __config__=ConfigDict(extra="forbid", validate_by_name=False), **fields
        )
        return summary, ArgumentsSpec(model, names)
    except PydanticUserError as exc:  # a parameter type JSON cannot describe or carry
        reason = str(exc).splitlines()[0]
        raise InvalidSessionOperation(
            "register_tool", f"{name}: no JSON schema for its parameters ({reason})"
        ) from None
