"""Tool parameter schemas from elsewhere (MCP servers), made acceptable to Kimi.

Kimi checks tool parameters against "Moonshot Flavored JSON Schema" (reference §9.3): the root is an object,
every (nested) schema names its `type` unless it is a `$ref` or a combination, and `anyOf` carries the types in
its branches, not beside them. Schemas written for other models break these rules all the time (a property
typed `Any` has no type at all), and one bad tool would fail every request. No library knows MFJS, so this is
the small rewrite Moonshot's own kosong client does: infer the missing types, push a parent type into the
`anyOf` branches, and leave everything else as the server wrote it.
"""

from __future__ import annotations

from typing import Any

_COMBINERS = ("anyOf", "oneOf", "allOf")
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
               type(None): "null"}


def moonshot_schema(schema: Any) -> dict[str, Any]:
    """The schema as a valid MFJS object schema (a copy; the input is not changed)."""
    fixed = _fix(schema if isinstance(schema, dict) else {})
    if fixed.get("type") != "object":
        fixed = {"type": "object", "properties": {}}
    fixed.setdefault("properties", {})
    return fixed


def _fix(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    for combiner in _COMBINERS:
        if isinstance(out.get(combiner), list):
            parent_type = out.pop("type", None) if combiner == "anyOf" else None
            out[combiner] = [_fix(_with_type(branch, parent_type)) for branch in out[combiner]
                             if isinstance(branch, dict)]
            return out
    if "$ref" in out:
        return out
    if "type" not in out:
        out["type"] = _inferred_type(out)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: _fix(prop if isinstance(prop, dict) else {})
                             for name, prop in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _fix(out["items"])
    for key in ("$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {name: _fix(sub if isinstance(sub, dict) else {}) for name, sub in out[key].items()}
    return out


def _with_type(branch: dict[str, Any], parent_type: Any) -> dict[str, Any]:
    if parent_type is None or "type" in branch or any(c in branch for c in (*_COMBINERS, "$ref")):
        return branch
    return {**branch, "type": parent_type}


def _inferred_type(schema: dict[str, Any]) -> str:
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    samples = [schema["const"]] if "const" in schema else list(schema.get("enum") or [])
    types = {_JSON_TYPES.get(type(value), "string") for value in samples}
    if len(types) == 1:
        return types.pop()
    # Untyped ("any value"): a string is what a model can always produce and the server can parse.
    return "string"
