"""Hypothesis strategies that generate instances of our published JSON Schemas.

It covers exactly the keywords the schemas use (types, enum/const, patterns, bounds, properties,
required, additionalProperties, propertyNames, items, anyOf, $ref through the registry, and the
discriminated ``allOf``/``if``/``then`` with ``x-discriminator``), so the round-trip tests
exercise the schema files themselves rather than the models they came from.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from fleetforge import schemas

__all__ = ["instances", "json_values"]

json_scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)

_ANNOTATIONS = {"description", "title", "default", "examples"}
_timestamps = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())


def instances(name: str) -> st.SearchStrategy[Any]:
    """Instances valid under the published schema ``name``."""
    doc = schemas.load(name)
    resolver = schemas.registry().resolver(base_uri=doc["$id"])
    return _strategy(doc, resolver)


def _strategy(schema: Any, resolver: Any) -> st.SearchStrategy[Any]:
    if not isinstance(schema, dict) or set(schema) <= _ANNOTATIONS:
        return json_values
    if "$ref" in schema:
        resolved = resolver.lookup(schema["$ref"])
        return _strategy(resolved.contents, resolved.resolver)
    if "x-discriminator" in schema:
        prop, mapping = (
            schema["x-discriminator"]["propertyName"],
            schema["x-discriminator"]["mapping"],
        )
        return st.sampled_from(sorted(mapping)).flatmap(
            lambda value: _strategy({"$ref": mapping[value]}, resolver).map(
                lambda obj: {**obj, prop: value}
            )
        )
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([_strategy(s, resolver) for s in schema["anyOf"]])
    if "if" in schema and "then" in schema and "type" not in schema:
        # an input value: a literal, or a reference object
        return json_scalars | _strategy(schema["then"], resolver)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return _object(schema, resolver)
    if kind == "array":
        return st.lists(
            _strategy(schema.get("items", {}), resolver),
            min_size=schema.get("minItems", 0),
            max_size=max(schema.get("minItems", 0), 3),
        )
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -(10**6) - 1) + 1)
        return st.integers(low, schema.get("maximum", 10**6))
    if kind == "number":
        return st.floats(
            min_value=schema.get("minimum", schema.get("exclusiveMinimum", -1e6)),
            max_value=schema.get("maximum", 1e6),
            exclude_min="exclusiveMinimum" in schema,
            allow_nan=False,
            allow_infinity=False,
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    raise AssertionError(f"schema keyword set not covered by the test strategy: {sorted(schema)}")


def _string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if schema.get("format") == "date-time":
        return _timestamps
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if "pattern" in schema:
        strategy = st.from_regex(schema["pattern"], fullmatch=True)
        if "minLength" in schema or high is not None:
            strategy = strategy.filter(lambda s: low <= len(s) <= (high or len(s)))
        return strategy
    return st.text(min_size=low, max_size=min(high or 40, low + 12))


def _object(schema: dict[str, Any], resolver: Any) -> st.SearchStrategy[Any]:
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    fixed = {k: _strategy(v, resolver) for k, v in props.items() if k in required}
    optional = {k: _strategy(v, resolver) for k, v in props.items() if k not in required}
    base = st.fixed_dictionaries(fixed, optional=optional)
    if "not" in schema:
        forbidden = Draft202012Validator(schema["not"])
        base = base.filter(lambda obj: not forbidden.is_valid(obj))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and not props:
        keys = _string(schema.get("propertyNames", {"type": "string", "maxLength": 8}))
        return st.dictionaries(keys, _strategy(extra, resolver), max_size=3)
    return base
