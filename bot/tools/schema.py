"""Derives a tool's JSON schema and argument binding from a typed async function and its docstring.

The schema follows Moonshot's MFJS rules: the root is an object, every property carries a "type" and no
anyOf is emitted (optional parameters use the plain type and are simply not required).
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import TypeAdapter, ValidationError


class ToolConfigError(Exception):
    """A configured tool cannot be used (bad path, signature, name, ...)."""


class ToolError(Exception):
    """Raised by a tool to report a failure to the model in the tool's own words."""


class ArgumentError(ValueError):
    """The model's arguments do not fit the tool's signature; the message is meant for the model."""


@dataclass(frozen=True)
class ToolContext:
    """Injected into a tool parameter annotated `ToolContext`; never part of the schema."""

    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SECTION_RE = re.compile(r"^\s*([A-Z][A-Za-z ]*):\s*$")
_ARGS_HEADERS = frozenset({"Args", "Arguments", "Parameters"})
_ARG_LINE_RE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class _Param:
    name: str
    adapter: TypeAdapter[Any]
    required: bool
    # Optional parameters without a default still need a value when the model leaves them out.
    fill_none: bool


@dataclass(frozen=True)
class FunctionSignature:
    description: str
    parameters: dict[str, Any]
    params: tuple[_Param, ...]
    context_params: tuple[str, ...]

    def bind(self, arguments: Mapping[str, Any], context: ToolContext) -> dict[str, Any]:
        """Validate the model's arguments and return keyword arguments for the call."""
        known = {p.name for p in self.params}
        problems = [f"unknown argument {name!r}" for name in arguments if name not in known]
        kwargs: dict[str, Any] = {}
        for param in self.params:
            if param.name not in arguments:
                if param.required:
                    problems.append(f"missing required argument {param.name!r}")
                elif param.fill_none:
                    kwargs[param.name] = None
                continue
            try:
                kwargs[param.name] = param.adapter.validate_python(arguments[param.name])
            except ValidationError as exc:
                problems.extend(_describe_errors(param.name, exc))
        if problems:
            raise ArgumentError("; ".join(problems))
        for name in self.context_params:
            kwargs[name] = context
        return kwargs


def _describe_errors(name: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        where = name + "".join(f"[{part!r}]" for part in err.get("loc", ()))
        out.append(f"{where!s}: {err.get('msg', 'invalid value')}")
    return out


def describe_function(fn: Callable[..., Any]) -> FunctionSignature:
    """Build the schema and binder for `fn`. Raises ToolConfigError for anything it cannot express."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise ToolConfigError(f"cannot resolve type annotations: {exc}") from exc
    description, arg_docs = parse_docstring(inspect.getdoc(fn) or "")
    if not description:
        raise ToolConfigError("has no docstring; the model needs a description to use it")

    properties: dict[str, Any] = {}
    required: list[str] = []
    params: list[_Param] = []
    context_params: list[str] = []
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolConfigError(f"parameter {name!r}: *args, **kwargs and positional-only are unsupported")
        if name not in hints:
            raise ToolConfigError(f"parameter {name!r} has no type annotation")
        annotation = hints[name]
        if annotation is ToolContext:
            context_params.append(name)
            continue
        schema, nullable = schema_for(annotation, name)
        has_default = param.default is not inspect.Parameter.empty
        if name in arg_docs:
            schema = {**schema, "description": arg_docs[name]}
        if has_default and param.default is not None:
            schema = {**schema, "default": _json_default(name, param.default)}
        is_required = not has_default and not nullable
        if is_required:
            required.append(name)
        properties[name] = schema
        params.append(_Param(name, TypeAdapter(annotation), is_required, nullable and not has_default))

    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return FunctionSignature(description, parameters, tuple(params), tuple(context_params))


def _json_default(name: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ToolConfigError(f"parameter {name!r}: default {value!r} is not JSON-serialisable") from exc


def schema_for(annotation: Any, name: str) -> tuple[dict[str, Any], bool]:
    """Return (schema, nullable) for one annotation."""
    if annotation in _JSON_TYPES:
        return {"type": _JSON_TYPES[annotation]}, False
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if len(members) != 1:
            raise ToolConfigError(f"parameter {name!r}: unions other than `X | None` are unsupported")
        schema, _ = schema_for(members[0], name)
        return schema, True
    if origin is Literal:
        return _literal_schema(args, name)
    if origin is list and len(args) == 1:
        items, _ = schema_for(args[0], name)
        return {"type": "array", "items": items}, False
    if origin is dict and len(args) == 2 and args[0] is str:
        values, _ = schema_for(args[1], name)
        return {"type": "object", "additionalProperties": values}, False
    raise ToolConfigError(f"parameter {name!r}: unsupported annotation {annotation!r}")


def _literal_schema(values: tuple[Any, ...], name: str) -> tuple[dict[str, Any], bool]:
    nullable = None in values
    members = [v for v in values if v is not None]
    kinds = {_JSON_TYPES.get(type(v)) for v in members}
    if not members or len(kinds) != 1 or None in kinds:
        raise ToolConfigError(f"parameter {name!r}: Literal values must share one of str, int, float, bool")
    return {"type": kinds.pop(), "enum": members}, nullable


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {parameter: description})."""
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION_RE.match(line):
            break
        summary.append(line.strip())
    return " ".join(summary), _parse_args_section(lines)


def _parse_args_section(lines: list[str]) -> dict[str, str]:
    start = next(
        (i for i, line in enumerate(lines) if (m := _SECTION_RE.match(line)) and m.group(1) in _ARGS_HEADERS),
        None,
    )
    if start is None:
        return {}
    header_indent = _indent(lines[start])
    entry_indent: int | None = None
    docs: dict[str, list[str]] = {}
    current: str | None = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = _indent(line)
        if indent <= header_indent:
            break
        if entry_indent is None:
            entry_indent = indent
        match = _ARG_LINE_RE.match(line.strip())
        if indent == entry_indent and match:
            current = match.group(1)
            docs[current] = [match.group(2).strip()] if match.group(2).strip() else []
        elif current is not None:
            docs[current].append(line.strip())
    return {name: " ".join(parts) for name, parts in docs.items() if parts}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
