"""Provider changes that are announced but not yet in the vendored documents of ``contracts/``.

Issue #9: ml-serving-service adds a ``live`` section to ``GET /v1/model`` (team brief,
"Session 2 additions"). The DAGs already read it, so the consumer's expectations and the stub's
answers are held to the announced schema, written here as OpenAPI 3.1 components, until the
provider's exported document is vendored. Each change applies only while the vendored document
lacks it: after the refresh the provider's own schema is checked, and this entry is dead weight
to delete (``test_consumer_contracts`` reports which entries still apply).
"""

from __future__ import annotations

import copy
from typing import Any

_NULLABLE_NUMBER = {"anyOf": [{"type": "number"}, {"type": "null"}]}

# GET /v1/model -> "live": {"window", "accuracy": {"<version>": {...}}, "drift": {...}}
LIVE_SCHEMAS: dict[str, dict[str, Any]] = {
    "AnnouncedLiveAccuracy": {
        "type": "object",
        "properties": {
            "feedback": {"type": "integer", "minimum": 0},
            "correct": {"type": "integer", "minimum": 0},
            "accuracy": _NULLABLE_NUMBER,
        },
        "required": ["feedback", "correct", "accuracy"],
    },
    "AnnouncedInputDrift": {
        "type": "object",
        "properties": {
            "version": {"type": "string"},
            "instances": {"type": "integer", "minimum": 0},
            "score": _NULLABLE_NUMBER,
            "reference": {"type": "boolean"},
        },
        "required": ["version", "instances", "score", "reference"],
    },
    "AnnouncedLiveSection": {
        "type": "object",
        "properties": {
            "window": {"type": "integer", "minimum": 1},
            "accuracy": {
                "type": "object",
                "additionalProperties": {"$ref": "#/components/schemas/AnnouncedLiveAccuracy"},
            },
            # null until a model is loaded (as the provider's work-in-progress document says)
            "drift": {
                "anyOf": [{"$ref": "#/components/schemas/AnnouncedInputDrift"}, {"type": "null"}]
            },
        },
        "required": ["window", "accuracy", "drift"],
    },
}


def _model_info(document: dict[str, Any]) -> dict[str, Any]:
    ref = document["paths"]["/v1/model"]["get"]["responses"]["200"]["content"]["application/json"]
    name = ref["schema"]["$ref"].rsplit("/", 1)[-1]
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def pending_changes(service: str, document: dict[str, Any]) -> list[str]:
    """The announced changes that the vendored ``document`` does not have yet."""
    if service == "serving" and "live" not in _model_info(document).get("properties", {}):
        return ["ml-serving-service GET /v1/model: live section (issue #9)"]
    return []


def with_announced_changes(service: str, document: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` completed by the announced changes it still lacks."""
    if not pending_changes(service, document):
        return document
    document = copy.deepcopy(document)
    document["components"]["schemas"].update(copy.deepcopy(LIVE_SCHEMAS))
    model_info = _model_info(document)
    model_info["properties"]["live"] = {"$ref": "#/components/schemas/AnnouncedLiveSection"}
    # Required, as the provider will have it; the DAG still copes with an older service.
    model_info.setdefault("required", []).append("live")
    return document
