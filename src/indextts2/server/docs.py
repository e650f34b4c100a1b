"""The API docs page: a self-contained HTML page rendered from the OpenAPI schema.

Litestar's bundled doc viewers (Swagger UI, ReDoc...) load their JavaScript from public CDNs, which a
server on a closed network cannot reach, so none of them is served: this page needs nothing but the
server itself, and ``/docs/openapi.json`` feeds any other viewer.
"""

from __future__ import annotations

import html
import json
from typing import Any

from litestar import Request
from litestar.openapi.plugins import OpenAPIRenderPlugin

__all__ = ["OfflineDocsPlugin"]

_SCRIPT = """
const schema = JSON.parse(document.getElementById("schema").textContent);
const root = document.getElementById("api");
const code = (text) => (text || "").replace(/`([^`]+)`/g, "<code>$1</code>");
const ref = (s) => (s && s.$ref) ? schema.components.schemas[s.$ref.split("/").pop()] : s;
function typeOf(s) {
  s = ref(s) || {};
  if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map(typeOf).join(" | ");
  if (s.type === "array") return typeOf(s.items) + "[]";
  if (s.format === "binary") return "file";
  return s.type || (s.properties ? "object" : "any");
}
function fields(s) {
  s = ref(s);
  if (!s || !s.properties) return "";
  const req = new Set(s.required || []);
  const rows = Object.entries(s.properties).map(([n, p]) =>
    `<tr><td><code>${n}</code>${req.has(n) ? " *" : ""}</td><td>${typeOf(p)}</td>` +
    `<td>${code((ref(p) || {}).description)}</td></tr>`).join("");
  return `<table><tr><th>field</th><th>type</th><th>meaning</th></tr>${rows}</table>`;
}
for (const [path, ops] of Object.entries(schema.paths)) {
  for (const [method, op] of Object.entries(ops)) {
    if (typeof op !== "object" || !op.responses) continue;
    const section = document.createElement("section");
    let body = "";
    const content = (op.requestBody || {}).content || {};
    for (const [type, media] of Object.entries(content)) {
      body += `<p>Body (<code>${type}</code>):</p>` + fields(media.schema);
    }
    const params = (op.parameters || []).map((p) =>
      `<li><code>${p.name}</code> (${p.in}) ${p.description || ""}</li>`).join("");
    const codes = Object.entries(op.responses).map(([c, r]) => `<li>${c}: ${r.description}</li>`).join("");
    const badge = `<span class="m ${method}">${method.toUpperCase()}</span>`;
    section.innerHTML = `<h2>${badge} <code>${path}</code></h2>` +
      `<p><b>${op.summary || ""}</b></p><p>${code(op.description)}</p>` +
      (params ? `<ul>${params}</ul>` : "") + body + `<p>Answers:</p><ul>${codes}</ul>`;
    root.appendChild(section);
  }
}
"""

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
section{border-top:1px solid #ddd;padding:.5rem 0}
h2{font-size:1.05rem} table{border-collapse:collapse} td,th{border:1px solid #ddd;padding:.2rem .5rem}
.m{display:inline-block;min-width:4.5rem;color:#fff;border-radius:4px;padding:0 .4rem;text-align:center}
.get{background:#2b7bb9}.post{background:#2e8b57}.delete{background:#c0392b}
"""


class OfflineDocsPlugin(OpenAPIRenderPlugin):
    """Renders the schema into one HTML page with an inline script (no external assets)."""

    def __init__(self, *, path: str = "/") -> None:
        super().__init__(path=path)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        info = openapi_schema.get("info", {})
        base = html.escape(request.url.path.rstrip("/"))
        title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}")
        schema_json = json.dumps(openapi_schema).replace("</", "<\\/")
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
            f"<p>{html.escape(info.get('description', ''))}</p>"
            f"<p>Machine-readable: <a href='{base}/openapi.json'>openapi.json</a></p>"
            f"<div id='api'></div><script id='schema' type='application/json'>{schema_json}</script>"
            f"<script>{_SCRIPT}</script></body></html>"
        )
        return page.encode("utf-8")
