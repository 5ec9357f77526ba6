"""The review page: one self-contained HTML file (inline CSS and JavaScript, no network) around the data.

The data (`build.page_data`) sits in a `<script type="application/json">` element; the script (`page_js.JS`)
renders one page of cards at a time, so 50,000 rows load as fast as 60. Served (`mlrelabel-review`), the page
reads and appends decisions through the server; opened from `file://` (`--no-serve`) it keeps them in the
browser's localStorage, says so when that is unavailable, and exports them as a decisions file.
"""

from __future__ import annotations

import json

from mlrelabel.io_utils import atomic_write_text
from mlrelabel.review.page_js import JS

CSS = """
:root { --ok: #1a7f37; --no: #c62828; --line: #d0d7de; --muted: #57606a; --focus: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: #1f2328; background: #f6f8fa; }
header { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line);
  padding: 8px 16px; display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; }
header h1 { font-size: 16px; margin: 0 8px 0 0; }
header label { color: var(--muted); }
header select, header input { font: inherit; padding: 2px 4px; }
header input[type=number] { width: 5em; }
#counts { font-weight: 600; }
#keys { width: 100%; color: var(--muted); font-size: 12px; }
kbd { border: 1px solid var(--line); border-bottom-width: 2px; border-radius: 4px; padding: 0 4px;
  background: #f6f8fa; font-size: 12px; }
.banner { margin: 8px 16px; padding: 8px 12px; border-radius: 6px; background: #fff8c5;
  border: 1px solid #d4a72c; }
.banner.error { background: #ffebe9; border-color: var(--no); }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px; padding: 12px 16px; }
.card { background: #fff; border: 2px solid var(--line); border-radius: 8px; padding: 8px; cursor: pointer; }
.card.current { border-color: var(--focus); box-shadow: 0 0 0 3px #0969da33; }
.card.accept { background: #dafbe1; }
.card.reject { background: #ffebe9; }
.pic { position: relative; width: 100%; aspect-ratio: 1; background: #000; border-radius: 4px; overflow: hidden; }
.pic img { width: 100%; height: 100%; object-fit: fill; image-rendering: pixelated; display: block; }
.box { position: absolute; border: 2px solid #ffd33d; box-shadow: 0 0 0 1px #000; }
.what { font-weight: 600; margin-top: 6px; }
.what .add { color: var(--ok); } .what .remove, .what .replace { color: var(--no); }
.meta { color: var(--muted); font-size: 12px; word-break: break-all; }
.state { font-size: 12px; font-weight: 600; min-height: 1.4em; }
.accept .state { color: var(--ok); } .reject .state { color: var(--no); }
.buttons { display: flex; gap: 6px; margin-top: 4px; }
.buttons button { flex: 1; font: inherit; padding: 3px; border: 1px solid var(--line); border-radius: 4px;
  background: #f6f8fa; cursor: pointer; }
nav { display: flex; gap: 12px; justify-content: center; align-items: center; padding: 8px 16px 24px; }
nav button, header button { font: inherit; padding: 2px 10px; }
"""

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Review: {title}</title>
<style>{css}</style></head>
<body>
<header>
  <h1>Review: {title}</h1>
  <span id="counts"></span>
  <label>Kind <select id="f-kind"><option value="">all</option><option value="0">add</option>
    <option value="1">remove</option><option value="2">replace</option></select></label>
  <label>Class <select id="f-class"><option value="">all</option></select></label>
  <label>Score <input id="f-min" type="number" min="0" max="1" step="0.05" value="0"> to
    <input id="f-max" type="number" min="0" max="1" step="0.05" value="1"></label>
  <label>Show <select id="f-show"><option value="todo">undecided</option><option value="all">all</option>
    <option value="done">decided</option></select></label>
  <label>Order <select id="f-sort"><option value="uncertain">most uncertain first</option>
    <option value="score">highest score first</option><option value="image">by image</option></select></label>
  <button id="export" type="button">Export decisions</button>
  <div id="keys"><kbd>a</kbd> accept · <kbd>r</kbd> reject · <kbd>s</kbd> skip · <kbd>u</kbd> undo ·
    <kbd>j</kbd>/<kbd>&rarr;</kbd> next · <kbd>k</kbd>/<kbd>&larr;</kbd> previous ·
    <kbd>]</kbd>/<kbd>[</kbd> next/previous page · click a card to select it</div>
</header>
<div id="banner" class="banner" hidden></div>
<main id="cards" aria-live="polite"></main>
<nav><button id="prev" type="button">&larr; Previous page</button><span id="pageinfo"></span>
<button id="next" type="button">Next page &rarr;</button></nav>
<script id="data" type="application/json">{data}</script>
<script>{js}</script>
</body></html>
"""


def render(data: dict) -> str:
    """The page's HTML for `data` (`build.page_data`)."""
    text = json.dumps(data, separators=(',', ':')).replace('</', '<\\/')
    title = _escape(str(data.get('title', '')))
    return TEMPLATE.format(title=title, css=CSS, data=text, js=JS)


def write(path: str, data: dict) -> None:
    atomic_write_text(path, render(data))


def _escape(text: str) -> str:
    return text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;')
