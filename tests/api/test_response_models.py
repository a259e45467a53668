"""Every HTTP route declares the shape of its answer: a response_model that is a schema (or a list of one),
or a response class that is not JSON (a file, a page, a 204). The OpenAPI document shows those shapes."""
from __future__ import annotations

import typing

from fastapi.datastructures import DefaultPlaceholder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.responses import Response

from .utils import make_app


def http_routes(routes, prefix: str = ""):
    """(path, APIRoute) of every HTTP route, through included routers."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from http_routes(included.routes, prefix + route.include_context.prefix)
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


def is_schema(model) -> bool:
    if typing.get_origin(model) is list:
        (model,) = typing.get_args(model)
    return isinstance(model, type) and issubclass(model, BaseModel)


def answers_json(route: APIRoute) -> bool:
    """Unless the route declares a response class that is not JSON (a file, a page, an empty 204), or its
    function returns such a response."""
    declared = route.response_class
    if not isinstance(declared, DefaultPlaceholder) and not issubclass(declared, JSONResponse):
        return False
    returns = typing.get_type_hints(route.endpoint).get("return")
    return not (isinstance(returns, type) and issubclass(returns, Response))


def test_every_http_route_declares_its_answers_shape():
    routes = list(http_routes(make_app(admin_token="x" * 40).routes))
    assert len(routes) > 30  # the walk reaches the included routers
    missing = [f"{sorted(r.methods)} {path}" for path, r in routes
               if answers_json(r) and not is_schema(r.response_model)]
    assert missing == []


def test_the_openapi_document_shows_the_catalog_class_inspect_and_transfer_shapes(client):
    doc = client.get("/openapi.json").json()

    def answer(path: str, method: str = "get") -> dict:
        schema = doc["paths"][path][method]["responses"]
        schema = (schema.get("200") or schema["201"])["content"]["application/json"]["schema"]
        if schema.get("type") == "array":
            schema = schema["items"]
        return doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]

    assert set(answer("/api/catalog")["properties"]) == {"activations", "losses", "optimizers", "inits",
                                                          "regularizations", "datasets", "features", "dtypes",
                                                          "defaults", "limits", "mistake_kinds"}
    assert "architecture" in answer("/api/class/models")["properties"]
    assert set(answer("/api/class/curves")["properties"]) == {"id", "nickname", "step", "train_loss", "test_loss"}
    assert set(answer("/api/class/hidden-test", "put")["properties"]) == {"rows", "columns"}
    assert "neurons" in answer("/api/models/{model_id}/boundary")["properties"]
    assert set(answer("/api/models/{model_id}/data")["properties"]) == {"kind", "features", "train", "test"}
    assert set(answer("/api/models/{model_id}/checkpoints")["properties"]) == {"step", "created_at", "train_loss",
                                                                              "test_loss"}
    assert answer("/api/models/{model_id}")["properties"]["spec"] == {"$ref": "#/components/schemas/ModelSpec"}
    assert {"layers", "optimizer", "data"} <= set(doc["components"]["schemas"]["ModelSpec"]["properties"])
    assert set(doc["components"]["schemas"]["EvalHistory"]["properties"]) == {"step", "train_loss", "test_loss"}
