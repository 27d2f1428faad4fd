"""`GET /docs`: the OpenAPI document as one self-contained HTML page, rendered here.

No scripts, no external styles or fonts: every value from the document is HTML-escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
SCHEMA_REF = "#/components/schemas/"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem;
       color: #1b1b1b; line-height: 1.45; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.5rem; }
section.operation { border: 1px solid #ddd; border-radius: 6px; padding: .5rem 1rem;
                    margin: 1rem 0; }
.method { display: inline-block; min-width: 4.5rem; font-weight: bold; text-transform: uppercase; }
.get { color: #0b6e4f; } .post { color: #1f4e9c; } .delete { color: #a4161a; }
code.path { font-size: 1.05rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
pre { background: #f6f8fa; padding: .5rem; overflow-x: auto; font-size: .85rem; }
details { margin: .3rem 0; }
"""


def docs_page(document: dict[str, Any]) -> str:
    """The whole document as HTML: operations first, then the schemas they name."""
    info = document.get("info", {})
    title = f"{info.get('title', 'API')} {info.get('version', '')}".strip()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    for key in ("summary", "description"):
        if info.get(key):
            parts.append(f"<p>{escape(str(info[key]))}</p>")
    parts.append(f"<p>OpenAPI {escape(str(document.get('openapi', '')))}; the document itself: "
                 '<a href="/openapi.json"><code>/openapi.json</code></a>.</p>')
    parts.append(_security(document))
    parts.append("<h2>Operations</h2>")
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                parts.append(_operation(document, str(path), method, item[method],
                                        item.get("parameters", [])))
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        parts.append("<h2>Schemas</h2>")
        for name, schema in schemas.items():
            parts.append(f'<section id="{escape(_schema_anchor(str(name)))}">'
                         f"<h3>{escape(str(name))}</h3>{_schema_block(schema)}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _security(document: dict[str, Any]) -> str:
    schemes = document.get("components", {}).get("securitySchemes", {})
    if not schemes:
        return ""
    rows = "".join(
        f"<tr><td>{escape(str(name))}</td><td>{escape(str(scheme.get('type', '')))} "
        f"{escape(str(scheme.get('scheme', '')))}</td>"
        f"<td>{escape(str(scheme.get('description', '')))}</td></tr>"
        for name, scheme in schemes.items())
    return ("<h2>Authentication</h2><table><tr><th>scheme</th><th>type</th>"
            f"<th>how</th></tr>{rows}</table>")


def _operation(document: dict[str, Any], path: str, method: str, operation: dict[str, Any],
               shared_parameters: list[dict[str, Any]]) -> str:
    anchor = _anchor(f"{method}-{path}")
    lines = [f'<section class="operation" id="{escape(anchor)}">',
             f'<h3><span class="method {escape(method)}">{escape(method.upper())}</span> '
             f'<code class="path">{escape(path)}</code></h3>']
    if operation.get("summary"):
        lines.append(f"<p><strong>{escape(str(operation['summary']))}</strong></p>")
    if operation.get("description"):
        lines.append(f"<p>{escape(str(operation['description']))}</p>")
    security = operation.get("security", document.get("security", []))
    names = sorted({str(name) for requirement in security for name in requirement})
    lines.append("<p>Authentication: "
                 f"{escape(', '.join(names)) if names else 'none'}</p>")
    parameters = [*shared_parameters, *operation.get("parameters", [])]
    if parameters:
        lines.append("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th>"
                     "<th>schema</th><th>description</th></tr>")
        for parameter in parameters:
            lines.append(
                f"<tr><td><code>{escape(str(parameter.get('name', '')))}</code></td>"
                f"<td>{escape(str(parameter.get('in', '')))}</td>"
                f"<td>{'yes' if parameter.get('required') else 'no'}</td>"
                f"<td><code>{escape(_compact(parameter.get('schema', {})))}</code></td>"
                f"<td>{escape(str(parameter.get('description', '')))}</td></tr>")
        lines.append("</table>")
    body = operation.get("requestBody")
    if body:
        required = " (required)" if body.get("required") else ""
        lines.append(f"<h4>Request body{escape(required)}</h4>")
        for media_type, content in body.get("content", {}).items():
            schema = content.get("schema", {})
            lines.append(f"<p><code>{escape(str(media_type))}</code> {_schema_name(schema)}</p>")
            resolved = _resolve(document, schema)
            if resolved is not schema or schema.get("type") == "object":
                lines.append(_schema_block(resolved))
    responses = operation.get("responses", {})
    if responses:
        lines.append("<h4>Responses</h4><table><tr><th>status</th><th>description</th>"
                     "<th>content</th></tr>")
        for status, response in responses.items():
            content = "<br>".join(
                f"<code>{escape(str(media_type))}</code> "
                f"{_schema_name(media.get('schema', {}))}"
                for media_type, media in response.get("content", {}).items())
            lines.append(f"<tr><td>{escape(str(status))}</td>"
                         f"<td>{escape(str(response.get('description', '')))}</td>"
                         f"<td>{content}</td></tr>")
        lines.append("</table>")
    lines.append("</section>")
    return "\n".join(lines)


def _schema_name(schema: dict[str, Any]) -> str:
    """A link to each named schema, or the schema itself, compact."""
    refs = _refs(schema)
    if refs:
        return " | ".join(f'<a href="#{escape(_schema_anchor(name))}">{escape(name)}</a>'
                          for name in refs)
    return f"<code>{escape(_compact(schema))}</code>"


def _refs(schema: dict[str, Any]) -> list[str]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(SCHEMA_REF):
        return [ref.removeprefix(SCHEMA_REF)]
    names = []
    for key in ("oneOf", "anyOf"):
        for branch in schema.get(key, []):
            if isinstance(branch, dict):
                names.extend(_refs(branch))
    return names


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(SCHEMA_REF):
        return document.get("components", {}).get("schemas", {}).get(
            ref.removeprefix(SCHEMA_REF), schema)
    return schema


def _schema_block(schema: Any) -> str:
    return f"<pre>{escape(json.dumps(schema, indent=2, ensure_ascii=False))}</pre>"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _anchor(text: str) -> str:
    return "".join(char if char.isalnum() else "-" for char in text).strip("-").lower()


def _schema_anchor(name: str) -> str:
    return f"schema-{_anchor(name)}"
