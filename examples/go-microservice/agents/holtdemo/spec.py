"""Reading an OpenAPI 3 document and the design reviewers' checklists (concrete, repeatable findings)."""

from __future__ import annotations

from typing import Any

import yaml

from holtdemo.agent import AgentFailure

METHODS = ("get", "put", "post", "delete", "patch")
VERBS = {"create", "get", "list", "update", "delete", "remove", "add", "fetch", "new", "edit"}


def load(text: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentFailure("SpecUnreadable", f"the spec is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise AgentFailure("SpecUnreadable", "the spec is not a YAML mapping")
    return doc


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path, item in (doc.get("paths") or {}).items():
        if isinstance(item, dict):
            for method in METHODS:
                if isinstance(item.get(method), dict):
                    out.append((method.upper(), str(path), item[method]))
    return out


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    if isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        current: Any = doc
        for part in node["$ref"][2:].split("/"):
            current = current.get(part) if isinstance(current, dict) else None
        return current if current is not None else {}
    return node


def _param_names(doc: dict[str, Any], path_item: dict[str, Any], op: dict[str, Any]) -> set[str]:
    params = [*(path_item.get("parameters") or []), *(op.get("parameters") or [])]
    return {str(_resolve(doc, p).get("name", "")) for p in params if isinstance(_resolve(doc, p), dict)}


def _uses_error_schema(doc: dict[str, Any], response: Any) -> bool:
    if isinstance(response, dict) and "$ref" in response:
        response = _resolve(doc, response)
    content = (response or {}).get("content") or {} if isinstance(response, dict) else {}
    schema = (content.get("application/json") or {}).get("schema") or {}
    return isinstance(schema, dict) and str(schema.get("$ref", "")).endswith("/schemas/Error")


def _is_collection(doc: dict[str, Any], path_item: dict[str, Any], op: dict[str, Any]) -> bool:
    """A GET that lists: named list*, or answering an array or a page of items, or beside a POST."""
    if str(op.get("operationId", "")).lower().startswith("list") or "post" in path_item:
        return True
    ok = _resolve(doc, (op.get("responses") or {}).get("200")) or {}
    schema = _resolve(doc, (((ok.get("content") or {}).get("application/json") or {}).get("schema")) or {})
    if not isinstance(schema, dict):
        return False
    items = _resolve(doc, (schema.get("properties") or {}).get("items")) or {}
    return schema.get("type") == "array" or (isinstance(items, dict) and items.get("type") == "array")


def style_findings(doc: dict[str, Any]) -> list[str]:
    found: list[str] = []
    paths = doc.get("paths") or {}
    for method, path, op in operations(doc):
        where = f"{method} {path}"
        verbs = [seg for seg in path.strip("/").split("/") if seg.lower() in VERBS]
        if verbs:
            found.append(f"{where}: the path contains the verb '{verbs[0]}'; use the HTTP method on the "
                         f"collection instead (e.g. POST /{path.strip('/').split('/')[0]})")
        if not op.get("operationId"):
            found.append(f"{where}: no operationId")
        if method == "GET" and _is_collection(doc, paths.get(path) or {}, op):
            names = _param_names(doc, paths.get(path) or {}, op)
            if not {"limit", "cursor"} <= names:
                found.append(f"{where}: a collection needs cursor pagination (query parameters limit and cursor)")
        for code, response in (op.get("responses") or {}).items():
            if str(code).startswith("4") and not _uses_error_schema(doc, response):
                found.append(f"{where}: the {code} response has no body; use the shared Error schema "
                             "(code, message) for every 4xx")
    return found


def security_findings(doc: dict[str, Any]) -> list[str]:
    found: list[str] = []
    schemes = ((doc.get("components") or {}).get("securitySchemes") or {})
    bearer = [n for n, s in schemes.items() if isinstance(s, dict) and s.get("type") == "http"
              and str(s.get("scheme", "")).lower() == "bearer"]
    if not bearer:
        found.append("no authentication: declare a bearer token scheme (components.securitySchemes)")
    if not doc.get("security"):
        found.append("no global security requirement: every operation is public; require the bearer token "
                     "at the top level and opt out only the health check")
    for method, path, op in operations(doc):
        secured = bool(doc.get("security")) and op.get("security") != []
        if secured and "401" not in {str(c) for c in (op.get("responses") or {})}:
            found.append(f"{method} {path}: secured but no 401 response")
    for name, schema in ((doc.get("components") or {}).get("schemas") or {}).items():
        for prop, spec in ((schema or {}).get("properties") or {}).items():
            if not isinstance(spec, dict) or spec.get("type") != "string":
                continue
            if "maxLength" not in spec and spec.get("format") not in ("date-time", "date"):
                found.append(f"{name}.{prop}: unbounded string; set maxLength")
            if prop == "url" and spec.get("format") != "uri":
                found.append(f"{name}.{prop}: not declared format: uri, so any string is accepted as a URL")
    return found


def summary(doc: dict[str, Any]) -> list[str]:
    return [f"{m} {p} - {op.get('summary', '')}".rstrip(" -") for m, p, op in operations(doc)]


def response_of(doc: dict[str, Any], method: str, path: str, code: str) -> str | None:
    op = ((doc.get("paths") or {}).get(path) or {}).get(method.lower()) or {}
    response = _resolve(doc, (op.get("responses") or {}).get(code))
    if not isinstance(response, dict) or not response:
        return None
    return str(response.get("description", ""))
