"""Exports of an explorer's view: PNG or SVG at a chosen resolution, or a self-contained HTML page.

The HTML pages load nothing from the network (images are data URIs, the one script is inline) and
behave like the live widget: on the heatmap pages (head, all heads, rollout) a click on a thumbnail
opens that map, a click on a row or a query label chooses the query (outlined), a click on a cell or a
key label chooses the key, and the weight under the pointer or last clicked is shown. The generation
page holds the generated text and every step. Other views are embedded as SVG.

Letters: L layers, H heads, T tokens.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from lmlab.files import atomic_write
from lmlab.viz.live import LiveHeatmap
from lmlab.viz.neuron import plot_generation
from lmlab.viz.plots import figure_bytes, plot_query, thumbnail_png, token_label
from lmlab.viz.ui import NOTE, VIEWS
from lmlab.viz.views import figure, generation_html

__all__ = ["export"]

_STYLE = ("<style>body{font-family:sans-serif;margin:1em;max-width:1500px} .text{white-space:pre-wrap;"
          "font-family:monospace} .note{color:#555;font-size:13px} .wrap{display:flex;gap:1.5em;"
          "align-items:flex-start;flex-wrap:wrap} .thumbs{display:grid;gap:6px} .thumb{text-align:center;"
          "font-size:12px;cursor:pointer;border:3px solid transparent} .thumb.on{border-color:#d62728}"
          " .thumb img{width:96px;height:96px;display:block} .map{position:relative;display:inline-block}"
          " .map img{display:block;cursor:crosshair} .box{position:absolute;pointer-events:none;"
          "box-sizing:border-box} #row{border:2px solid #d62728} #col{border:2px dashed #fff;display:none}"
          " #readout{font-family:monospace;min-height:1.4em;margin:.4em 0} figure{margin:.5em 0}</style>")

# One script for the heatmap pages: the same clicks and readout as the live widget.
_SCRIPT = """
const D = JSON.parse(document.getElementById('data').textContent);
let panel = D.first, query = D.query, key = null;
const img = document.getElementById('map'), row = document.getElementById('row'), col = document.getElementById('col');
const out = document.getElementById('readout');
const pct = (v, n) => (100 * v / n) + '%';
function cellAt(ev) {
  const r = img.getBoundingClientRect(), s = D.width / r.width;
  const x = (ev.clientX - r.left) * s, y = (ev.clientY - r.top) * s, b = D.box, T = D.tokens.length;
  const j = Math.floor((x - b[0]) / (b[2] - b[0]) * T), i = Math.floor((y - b[1]) / (b[3] - b[1]) * T);
  let q = i >= 0 && i < T ? i : null, k = j >= 0 && j < T ? j : null;
  if (q !== null && k === null && j >= T) q = null;
  if (k !== null && q === null && i < 0) k = null;
  return [q, k];
}
function tok(i) { return i + " '" + D.tokens[i] + "'"; }
function say(q, k, what) {
  if (q === null && k === null) { out.textContent = ''; return; }
  if (q === null || k === null) { out.textContent = what + ': ' + (q === null ? 'key ' + tok(k) : 'query ' + tok(q)); return; }
  const w = D.panels[panel].w[q][k];
  out.innerHTML = what + ': query ' + tok(q) + ' \\u2192 key ' + tok(k) + ': <b>' + w.toFixed(3) + '</b> (' +
    D.panels[panel].name + ')';
}
function draw() {
  const b = D.box, T = D.tokens.length, c = (b[3] - b[1]) / T, cw = (b[2] - b[0]) / T;
  img.src = D.panels[panel].src;
  row.style.left = pct(b[0], D.width); row.style.width = pct(b[2] - b[0], D.width);
  row.style.top = pct(b[1] + query * c, D.height); row.style.height = pct(c, D.height);
  col.style.display = key === null ? 'none' : 'block';
  if (key !== null) {
    col.style.left = pct(b[0] + key * cw, D.width); col.style.width = pct(cw, D.width);
    col.style.top = pct(b[1], D.height); col.style.height = pct(b[3] - b[1], D.height);
  }
  document.querySelectorAll('.thumb').forEach(t => t.classList.toggle('on', t.dataset.key === panel));
  document.getElementById('query').textContent = 'query ' + tok(query);
}
img.addEventListener('mousemove', ev => { const [q, k] = cellAt(ev); say(q, k, 'under the pointer'); });
img.addEventListener('click', ev => {
  const [q, k] = cellAt(ev);
  if (q !== null) query = q;
  if (k !== null) key = k;
  draw(); say(query, key, 'selected');
});
document.querySelectorAll('.thumb').forEach(t => t.addEventListener('click', () => { panel = t.dataset.key; draw(); say(query, key, 'selected'); }));
draw();
"""

_STEPS_SCRIPT = """
const slider = document.getElementById('step'), steps = document.querySelectorAll('figure.step');
function show() { steps.forEach((f, i) => { f.style.display = (i + 1 == slider.value) ? '' : 'none'; });
  document.getElementById('stepno').textContent = slider.value; }
slider.addEventListener('input', show); show();
"""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _page(ex: Any, title: str, body: list[str], script: str = "") -> str:
    head = f"<h1>{html.escape(title)}</h1><p class='text'>{html.escape(ex.text)}</p><p class='note'>{NOTE}</p>"
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>" + _STYLE +
            "</head><body>" + head + "".join(body) + (f"<script>{script}</script>" if script else "") +
            "</body></html>\n")


def _panels(ex: Any, view: str) -> tuple[list[tuple[str, str, Any]], str]:
    """(key, name, (T, T) matrix) of every map the page can show, and the key of the one to open."""
    L, H = ex.weights.shape[:2]
    if view == "rollout":
        return [(str(l), f"rollout through layers 0..{l}", ex.rollout(l)) for l in range(L)], str(ex.layer.value)
    m, kind = ex.matrix(), ("value-weighted" if ex.mode.value == "value-weighted" else "attention")
    return ([(f"{l}-{h}", f"layer {l}, head {h}, {kind}", m[l, h]) for l in range(L) for h in range(H)],
            f"{ex.layer.value}-{ex.head.value}")


def _heatmap_page(ex: Any, view: str, dpi: int) -> str:
    live = LiveHeatmap(ex.tokens, dpi)
    T = len(ex.tokens)
    width, height = live.ax.figure.canvas.get_width_height()
    (x0, top), (x1, bottom) = live.ax.transData.transform([(-0.5, -0.5), (T - 0.5, T - 0.5)])  # px, y up
    panels, first = _panels(ex, view)
    data = {"tokens": [token_label(t) for t in ex.tokens], "first": first, "query": ex.query.value,
            "width": width, "height": height, "box": [x0, height - top, x1, height - bottom], "panels": {}}
    thumbs = []
    for key, name, matrix in panels:
        png = live.render(matrix, name, None, None)
        data["panels"][key] = {"name": name, "src": _data_uri(png, "image/png"),
                               "w": [[round(v, 4) for v in r] for r in matrix.tolist()]}
        thumbs.append(f"<div class='thumb' data-key='{key}' title='{html.escape(name)}'>"
                      f"<img alt='{html.escape(name)}' src='{_data_uri(thumbnail_png(matrix), 'image/png')}'>"
                      f"{html.escape(name.split(',')[0] if view == 'rollout' else name.rsplit(',', 1)[0])}</div>")
    columns = ex.weights.size(1) if view != "rollout" else len(panels)
    body = ["<p>Click a map on the left to open it; click a row or a token to choose the query, a cell or a key "
            "to choose the key; point at a cell to read its weight. <b id='query'></b></p>",
            f"<div class='wrap'><div class='thumbs' style='grid-template-columns:repeat({columns}, auto)'>"
            + "".join(thumbs) + "</div><div><div class='map'><img id='map' alt='attention map' width='"
            f"{width}'><div id='row' class='box'></div><div id='col' class='box'></div></div>"
            "<div id='readout'></div></div></div>",
            "<script type='application/json' id='data'>" + json.dumps(data).replace("</", "<\\/") + "</script>"]
    return _page(ex, _title(ex), body, _SCRIPT)


def _title(ex: Any) -> str:
    L, H, T, _ = ex.weights.shape
    return f"Attention: {type(ex.model).__name__}, {L} layers x {H} heads, {T} tokens"


def _generation_page(ex: Any, dpi: int) -> str:
    trace, layer, head = ex.trace, ex.layer.value, ex.head.value
    overview = figure_bytes(plot_generation(trace, layer, head), "png", dpi)
    body = [f"<h2>Generated text ({trace.steps} new tokens, greedy)</h2>", generation_html(trace, None),
            "<h2>Every step</h2>", f"<img alt='every step' src='{_data_uri(overview, 'image/png')}'>",
            f"<h2>One step at a time</h2><p>step <input type='range' id='step' min='1' max='{trace.steps}' "
            f"value='1'> <b id='stepno'>1</b></p>"]
    for s in range(1, trace.steps + 1):
        q = trace.query_of(s)
        fig = plot_query(trace.tokens[: q + 1], trace.step_weights(s)[layer, head], q,
                         title=f"step {s}: '{token_label(trace.tokens[q + 1])}' chosen at position {q} "
                               f"(layer {layer}, head {head})")
        png = figure_bytes(fig, "png", dpi)
        body.append(f"<figure class='step'>{generation_html(trace, s)}<img alt='step {s}' "
                    f"src='{_data_uri(png, 'image/png')}'></figure>")
    return _page(ex, _title(ex) + ": generation", body, _STEPS_SCRIPT)


def _figure_for(ex: Any, view: str) -> Any:
    if view == "generation":
        if ex.trace is None:
            raise ValueError("nothing to export in the generation view yet: call generate() first")
        return plot_generation(ex.trace, ex.layer.value, ex.head.value, ex.step.value)
    if view in ("neuron", "ablation") and not ex.inspectable:
        raise ValueError(f"the {view} view needs an lmlab GPT or MaskedLM, or a GPT-2 or BERT style model")
    return figure(ex, view)


def export(ex: Any, path: str | os.PathLike, view: str, dpi: int = 150) -> Path:
    """Write ``view`` of explorer ``ex`` to ``path`` (.png, .svg or .html); see the module docstring."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "html", "htm"):
        raise ValueError(f"cannot tell the format from {path.name!r}: use a name ending in .png, .svg or .html")
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if not isinstance(dpi, int) or isinstance(dpi, bool) or not 20 <= dpi <= 600:
        raise ValueError(f"dpi must be an int from 20 to 600, got {dpi!r}")
    if fmt in ("png", "svg"):
        data = figure_bytes(_figure_for(ex, view), fmt, dpi)
    elif view in ("head", "grid", "rollout"):
        data = _heatmap_page(ex, view, dpi).encode("utf-8")
    elif view == "generation":
        _figure_for(ex, view)  # raises before a generation
        data = _generation_page(ex, dpi).encode("utf-8")
    else:
        svg = figure_bytes(_figure_for(ex, view), "svg", dpi)
        data = _page(ex, _title(ex), [f"<img alt='{view} view' src='{_data_uri(svg, 'image/svg+xml')}'>"]).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, data)
