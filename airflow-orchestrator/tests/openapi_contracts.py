"""Consumer-side checks of HTTP exchanges against the providers' vendored OpenAPI documents.

The providers' documents live in ``contracts/`` (vendored copies of each service's
``openapi.json``, plus a hand-written subset of MLflow's REST API). ``Contract`` answers the
questions a consumer contract test asks: does this path and method exist, does this request
(query, headers, security, JSON body) satisfy the operation, does this response match the
documented schema for its status, and does the schema hold every field the DAG code reads.
Schemas are checked with ``openapi-schema-validator`` (OpenAPI 3.1 = JSON Schema 2020-12).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS31Validator

CONTRACTS_DIR = Path(__file__).resolve().parents[1] / "contracts"
# stub service name (tests/stubs) -> the provider's document in contracts/
DOCUMENTS = {
    "training": "ml-training-service.openapi.json",
    "serving": "ml-serving-service.openapi.json",
    "mlflow": "mlflow-rest.openapi.json",
}


def load_document(service: str) -> dict[str, Any]:
    """A fresh (mutable) copy of a provider's document."""
    return copy.deepcopy(_read(DOCUMENTS[service]))


@cache
def _read(filename: str) -> dict[str, Any]:
    return json.loads((CONTRACTS_DIR / filename).read_text())


@cache
def contract(service: str) -> Contract:
    """One provider's contract: its vendored document."""
    return Contract(load_document(service))


@dataclass(frozen=True)
class Match:
    template: str
    operation: dict[str, Any]


class Contract:
    """One provider's OpenAPI document, with the checks a consumer needs."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.title = document.get("info", {}).get("title", "?")
        self._components = document.get("components", {})

    # -- lookup --------------------------------------------------------------------------
    def find(self, method: str, path: str) -> Match | None:
        """The operation serving ``method path`` (a concrete path, e.g. /v1/jobs/abc)."""
        # Literal paths before templated ones, so /v1/jobs wins over /v1/{x}.
        for template in sorted(self.document.get("paths", {}), key=lambda t: t.count("{")):
            if _template_regex(template).fullmatch(path):
                operation = self.document["paths"][template].get(method.lower())
                if operation is not None:
                    return Match(template, operation)
        return None

    def operation(self, method: str, template: str) -> dict[str, Any] | None:
        return self.document.get("paths", {}).get(template, {}).get(method.lower())

    # -- schemas -------------------------------------------------------------------------
    def schema_errors(self, schema: dict[str, Any], instance: Any) -> list[str]:
        """Validation errors of ``instance`` against a schema of this document."""
        # Refs are '#/components/...': keep the components beside the schema so they resolve.
        wrapped = {"allOf": [schema], "components": self._components}
        validator = OAS31Validator(wrapped)
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '<body>'}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        ]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"only local refs are supported, got {ref}")
            node: Any = self.document
            for part in ref[2:].split("/"):
                node = node[part]
            schema = node
        return schema

    def json_schema(self, holder: dict[str, Any]) -> dict[str, Any] | None:
        """The application/json schema of a requestBody or a response (None if none)."""
        content = holder.get("content", {})
        media = content.get("application/json")
        return None if media is None else media.get("schema", {})

    # -- requests ------------------------------------------------------------------------
    def request_violations(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> list[str]:
        """What is wrong with this request according to the provider's document."""
        where = f"{method} {path} ({self.title})"
        match = self.find(method, path)
        if match is None:
            return [f"{where}: no such operation in the provider's document"]
        operation = match.operation
        query = query or {}
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        problems = []
        for param in operation.get("parameters", []):
            source = {"query": query, "header": lowered}.get(param["in"])
            if source is None:
                continue  # path parameters matched the template already
            key = param["name"].lower() if param["in"] == "header" else param["name"]
            if key not in source:
                if param.get("required"):
                    problems.append(f"{where}: required {param['in']} {param['name']} missing")
                continue
            value = _coerce(source[key], self.resolve(param.get("schema", {})))
            for error in self.schema_errors(param.get("schema", {}), value):
                problems.append(f"{where}: {param['in']} {param['name']}: {error}")
        declared_query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        for name in sorted(set(query) - declared_query):
            problems.append(f"{where}: query parameter {name} is not declared")
        if self.needs_bearer(operation) and not lowered.get("authorization", "").startswith(
            "Bearer "
        ):
            problems.append(f"{where}: the provider declares Bearer security; no Bearer sent")
        request_body = operation.get("requestBody")
        if request_body is None:
            if body not in (None, "", {}):
                problems.append(f"{where}: sends a body the operation does not declare")
        elif body is None:
            if request_body.get("required"):
                problems.append(f"{where}: required JSON body missing")
        else:
            schema = self.json_schema(request_body)
            if schema is None:
                problems.append(f"{where}: operation takes no application/json body")
            else:
                problems.extend(f"{where}: body {e}" for e in self.schema_errors(schema, body))
        return problems

    def needs_bearer(self, operation: dict[str, Any]) -> bool:
        schemes = self._components.get("securitySchemes", {})
        requirements = operation.get("security", self.document.get("security", []))
        return any(
            schemes.get(name, {}).get("scheme", "").lower() == "bearer"
            for requirement in requirements
            for name in requirement
        )

    def declares_header(self, operation: dict[str, Any], header: str) -> bool:
        """A header the consumer relies on is part of the operation's contract."""
        if header.lower() == "authorization":
            return self.needs_bearer(operation)
        return any(
            p["in"] == "header" and p["name"].lower() == header.lower()
            for p in operation.get("parameters", [])
        )

    # -- responses -----------------------------------------------------------------------
    def response_spec(self, operation: dict[str, Any], status: int) -> dict[str, Any] | None:
        responses = operation.get("responses", {})
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                return responses[key]
        return None

    def response_violations(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """What is wrong with this response according to the provider's document."""
        where = f"{method} {path} -> {status} ({self.title})"
        match = self.find(method, path)
        if match is None:
            return [f"{where}: no such operation in the provider's document"]
        spec = self.response_spec(match.operation, status)
        if spec is None:
            return [f"{where}: status {status} is not documented"]
        schema = self.json_schema(spec)
        if schema is None:
            return []  # e.g. /metrics: text, no JSON schema to hold it to
        return [f"{where}: {e}" for e in self.schema_errors(schema, body)]

    def missing_fields(
        self, method: str, template: str, status: int, fields: tuple[str, ...]
    ) -> list[str]:
        """Fields the consumer reads that the response cannot hold.

        ``a.b`` is a property of a property, ``items[].key`` a property of each list item and
        ``by_version{}.key`` a property of each value of a map (``additionalProperties``).
        """
        operation = self.operation(method, template)
        where = f"{method} {template} ({self.title})"
        if operation is None:
            return [f"{where}: no such operation in the provider's document"]
        spec = self.response_spec(operation, status)
        if spec is None:
            return [f"{where}: status {status} is not documented"]
        schema = self.json_schema(spec) or {}
        return [
            f"{where}: response field {field!r} is not in the {status} schema"
            for field in fields
            if not self._has_field(schema, field.split("."))
        ]

    def _has_field(self, schema: dict[str, Any], parts: list[str]) -> bool:
        schema = self.resolve(schema)
        if not parts:
            return True
        for combinator in ("anyOf", "oneOf", "allOf"):
            if any(self._has_field(branch, parts) for branch in schema.get(combinator, [])):
                return True
        head, rest = parts[0], parts[1:]
        name, container = (head[:-2], head[-2:]) if head[-2:] in ("[]", "{}") else (head, "")
        child: dict[str, Any] | None = schema.get("properties", {}).get(name)
        if child is None:
            return False
        if container == "[]":
            child = self._array_items(child)
        elif container == "{}":
            child = self._map_values(child)
        if child is None:
            return False
        return self._has_field(child, rest)

    def _array_items(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        schema = self.resolve(schema)
        if "items" in schema:
            return schema["items"]
        for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
            items = self._array_items(branch)
            if items is not None:
                return items
        return None

    def _map_values(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        schema = self.resolve(schema)
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            return values
        for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
            values = self._map_values(branch)
            if values is not None:
                return values
        return None


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    found = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        found |= _types(branch)
    return found


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    """Query and header values arrive as text: read them as the schema's scalar type."""
    kinds = _types(schema)
    try:
        if "integer" in kinds and re.fullmatch(r"-?\d+", value):
            return int(value)
        if "number" in kinds:
            return float(value)
    except ValueError:
        return value
    if "boolean" in kinds and value in ("true", "false"):
        return value == "true"
    return value
