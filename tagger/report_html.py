"""`tagger report --html`: one self-contained page (inline CSS, JS and SVG; nothing fetched) with charts.

The page carries the report as the JSON `tagger report --format json` prints and draws from it in the
browser, so the page and the JSON cannot disagree. Charts: genre shares (what the files now contain
beside what the model proposed), mood shares (the same two for the MOOD field), the confidence histogram,
genres per top-level folder; then the uncertain and the failed tracks.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from pathlib import Path

from tagger.report import LibraryReport

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.charts { display: flex; flex-wrap: wrap; gap: 2em; } .charts > div { flex: 1 1 26em; }
svg text { font: 12px system-ui, sans-serif; fill: #222; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; border-bottom: 1px solid #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .empty { color: #777; }
"""

# Drawn in the browser from the embedded JSON; every element built with createElement/textContent (no
# innerHTML), so a file name or genre cannot inject markup.
_JS = r"""
const data = JSON.parse(document.getElementById("report-data").textContent);
const SVG = "http://www.w3.org/2000/svg";
const palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                 "#9c755f", "#bab0ac"];
const names = [...new Set([...data.genres, ...data.proposed].map(r => r.genre))].sort();
const colour = g => palette[names.indexOf(g) % palette.length];
function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
const pct = x => (100 * x).toFixed(1) + "%";
function bars(id, rows, label) {  // horizontal bars, one per row: {key, value, width (0..1), text, attrs}
  const box = document.getElementById(id);
  if (!rows.length) { box.append(el("p", {class: "empty"}, "none")); return; }
  const h = 22, svg = el("svg:svg", {width: 460, height: rows.length * h + 4, role: "img", "aria-label": label});
  rows.forEach((r, i) => {
    const g = el("svg:g", r.attrs);
    g.append(el("svg:text", {x: 0, y: i * h + 15}, r.key));
    g.append(el("svg:rect", {x: 130, y: i * h + 3, height: h - 6, width: Math.max(1, 200 * r.width),
                             fill: r.fill || "#4e79a7"}));
    g.append(el("svg:text", {x: 136 + 200 * r.width, y: i * h + 15, class: "value"}, r.text));
    svg.append(g);
  });
  box.append(svg);
}
bars("files-chart", data.genres.map(r => ({key: r.genre, width: r.share, fill: colour(r.genre),
  text: `${r.tracks} (${pct(r.share)})`,
  attrs: {"data-chart": "files", "data-genre": r.genre, "data-tracks": r.tracks, "data-ours": r.ours}})),
  "genres in the files now");
bars("model-chart", data.proposed.map(r => ({key: r.genre, width: r.share, fill: colour(r.genre),
  text: `${r.tracks} (${pct(r.share)}, mean ${r.mean_confidence.toFixed(2)})`,
  attrs: {"data-chart": "model", "data-genre": r.genre, "data-tracks": r.tracks}})),
  "genres the model proposed");
const moodNames = [...new Set([...data.moods, ...data.proposed_moods].map(r => r.mood))].sort();
const moodColour = m => palette[(moodNames.indexOf(m) + 4) % palette.length];
bars("mood-files-chart", data.moods.map(r => ({key: r.mood, width: r.share, fill: moodColour(r.mood),
  text: `${r.tracks} (${pct(r.share)})`,
  attrs: {"data-chart": "mood-files", "data-mood": r.mood, "data-tracks": r.tracks, "data-ours": r.ours}})),
  "moods in the files now");
bars("mood-model-chart", data.proposed_moods.map(r => ({key: r.mood, width: r.share, fill: moodColour(r.mood),
  text: `${r.tracks} (${pct(r.share)}, mean ${r.mean_confidence.toFixed(2)})`,
  attrs: {"data-chart": "mood-model", "data-mood": r.mood, "data-tracks": r.tracks}})),
  "moods the model proposed");

(function histogram() {
  const counts = data.confidence_histogram, top = Math.max(1, ...counts), w = 40, hmax = 120;
  const svg = el("svg:svg", {width: counts.length * w + 10, height: hmax + 40, role: "img",
                             "aria-label": "confidence histogram"});
  counts.forEach((n, i) => {
    const h = hmax * n / top, g = el("svg:g", {"data-chart": "confidence", "data-bin": i, "data-count": n});
    g.append(el("svg:rect", {x: i * w + 4, y: hmax - h + 14, width: w - 6, height: h, fill: "#59a14f"}));
    g.append(el("svg:text", {x: i * w + 8, y: hmax - h + 10, class: "value"}, String(n)));
    g.append(el("svg:text", {x: i * w + 6, y: hmax + 30}, (i / counts.length).toFixed(1)));
    svg.append(g);
  });
  document.getElementById("confidence-chart").append(svg);
})();

(function folders() {  // one stacked bar per top-level folder: the genres its files now contain
  const box = document.getElementById("folder-chart"), entries = Object.entries(data.folders);
  if (!entries.length) { box.append(el("p", {class: "empty"}, "none")); return; }
  const h = 24, svg = el("svg:svg", {width: 640, height: entries.length * h + 4, role: "img",
                                     "aria-label": "genres per folder"});
  entries.forEach(([folder, counts], i) => {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const row = el("svg:g", {"data-folder": folder, "data-total": total});
    row.append(el("svg:text", {x: 0, y: i * h + 16}, folder));
    let x = 160;
    for (const [genre, n] of Object.entries(counts)) {
      const width = 400 * n / total, seg = el("svg:g", {"data-genre": genre, "data-tracks": n});
      seg.append(el("svg:rect", {x, y: i * h + 3, width, height: h - 6, fill: colour(genre)}));
      seg.append(el("svg:title", {}, `${genre}: ${n}`));
      row.append(seg); x += width;
    }
    row.append(el("svg:text", {x: x + 6, y: i * h + 16, class: "value"}, String(total)));
    svg.append(row);
  });
  box.append(svg);
  const legend = el("p");
  names.forEach(g => { const s = el("span", {style: `color:${colour(g)}`}, "\u25A0 "); legend.append(s, g + "  "); });
  box.append(legend);
})();

function table(id, rows, columns) {
  const box = document.getElementById(id);
  if (!rows.length) { box.append(el("p", {class: "empty"}, "none")); return; }
  const t = el("table"), head = el("tr");
  columns.forEach(([name]) => head.append(el("th", {}, name)));
  t.append(head);
  rows.forEach(r => {
    const tr = el("tr", {"data-row": id});
    columns.forEach(([name, f, numeric]) =>
      tr.append(el("td", numeric ? {class: "n", "data-k": name} : {"data-k": name}, f(r))));
    t.append(tr);
  });
  box.append(t);
}
table("uncertain", data.low_confidence, [["path", r => r.path], ["genre", r => r.genre],
                                         ["confidence", r => r.confidence.toFixed(2), true]]);
table("failed", [...data.failures.map(r => ({...r, what: "not classified"})),
                 ...data.tag_failures.map(r => ({...r, what: "not tagged"}))],
      [["path", r => r.path], ["what", r => r.what], ["reason", r => r.reason]]);

const summary = document.getElementById("summary");
for (const key of ["tracks", "classified", "failed", "tag_failed", "gone", "no_genre", "no_mood", "moods_uncertain"]) {
  summary.append(el("span", {"data-k": key}, `${key.replace("_", " ")}: ${data[key]}`), "  ");
}
document.body.setAttribute("data-rendered", "yes");
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>genre-tagger report</title><style>{css}</style></head>
<body>
<h1>genre-tagger report{vocabulary}</h1>
<p id="summary"></p>
<noscript>The charts are drawn by the page's own script; the figures are in the report-data block.</noscript>
<h2>Genre shares</h2>
<div class="charts">
<div><h3>What the files now contain</h3><div id="files-chart"></div></div>
<div><h3>What the model proposed</h3><div id="model-chart"></div></div>
</div>
<h2>Mood shares</h2>
<div class="charts">
<div><h3>What the files' MOOD fields now say</h3><div id="mood-files-chart"></div></div>
<div><h3>What the model proposed</h3><div id="mood-model-chart"></div></div>
</div>
<h2>Confidence of the model's top genre</h2><div id="confidence-chart"></div>
<h2>Per top-level folder (genres in the files)</h2><div id="folder-chart"></div>
<h2>Uncertain tracks</h2><div id="uncertain"></div>
<h2>Failed tracks</h2><div id="failed"></div>
<script type="application/json" id="report-data">{data}</script>
<script>{js}</script>
</body></html>
"""


def render_html(report: LibraryReport) -> str:
    """The page for ``report``: no external resource (a Content-Security-Policy forbids any fetch)."""
    # "</" inside the JSON would close the script element early; "<\\/" is the same JSON string.
    data = json.dumps(report.to_dict(), ensure_ascii=False).replace("</", "<\\/")
    vocabulary = f" ({html.escape(report.vocabulary)})" if report.vocabulary else ""
    return _PAGE.format(css=_CSS, js=_JS, data=data, vocabulary=vocabulary)


def write_html(report: LibraryReport, path: Path) -> None:
    """Write the page to ``path`` through a temp file and a rename: an existing page is never left half-written."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(render_html(report))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
