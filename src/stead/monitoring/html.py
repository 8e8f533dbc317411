"""(layer: monitoring; reads package data, writes nothing) The self-contained HTML monitor report.

:func:`render_html` turns a monitor report (plus the stored drift history, past reports and alerts) into one
HTML page that needs no network: the chart library (uPlot, MIT, vendored under ``stead/static/vendor/uplot``
from the npm package) and its CSS are inlined, and so is the data. It shows:

- the verdict, the window and the per-feature drift table;
- per feature, the reference histogram (the training data's profile bins) against the current one;
- drift over time: each feature's statistic and the dataset's drifted share over the stored reports;
- performance over time: realized (labelled rows) and estimated (CBPE/DLE), over the window's parts and over
  the stored reports;
- the alerts.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import resources
from typing import Any

__all__ = ["UPLOT_VERSION", "render_html", "vendored"]

UPLOT_VERSION = "1.6.32"


def vendored(name: str) -> str:
    """The text of a vendored asset, e.g. ``vendored("uplot/uPlot.iife.min.js")``."""
    return resources.files("stead").joinpath("static", "vendor", name).read_text(encoding="utf-8")


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element (no "</script>", no "<!--")."""
    text = json.dumps(data, default=str, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _data(
    report: Mapping[str, Any],
    drift_history: Sequence[Mapping[str, Any]],
    reports: Sequence[Mapping[str, Any]],
    alerts: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    timeline = [{**t, "t": _epoch(t.get("end")) or float(i)} for i, t in enumerate(report.get("timeline") or [])]
    history: dict[str, list[tuple[float, float | None]]] = {}
    for point in drift_history:
        at = _epoch(point.get("at"))
        if at is not None:
            history.setdefault(str(point["feature"]), []).append((at, point.get("statistic")))
    past = []
    for r in reports:
        body = r.get("report") or {}
        past.append(
            {
                "t": _epoch(r.get("at")),
                "share": r.get("drift_share"),
                "performance": body.get("performance") or {},
                "estimated": body.get("estimated") or {},
            }
        )
    out: dict[str, Any] = _clean(
        {
            "report": {k: v for k, v in report.items() if k != "timeline"},
            "timeline": timeline,
            "history": history,
            "reports": [p for p in past if p["t"] is not None],
            "alerts": list(alerts),
        }
    )
    return out


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#1d2330;
padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e3e6ec;padding-bottom:4px}
.sub{color:#5b6475}.verdict{font-size:16px;margin:12px 0;padding:10px 14px;border-radius:6px}
.ok{background:#e8f6ee;color:#17603a}.bad{background:#fdecec;color:#8a1c1c}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f4}
th{color:#5b6475;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.yes{color:#b42318;font-weight:600}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.card{border:1px solid #e3e6ec;border-radius:6px;padding:8px}.card h3{font-size:14px;margin:0 0 4px}
.note{color:#5b6475;font-style:italic}
"""

_JS = r"""
(function () {
  const D = JSON.parse(document.getElementById("stead-data").textContent);
  const charts = (window.steadCharts = []);
  const REF = "#7f8ea3", CUR = "#d9480f", PALETTE = ["#1c7ed6", "#d9480f", "#2f9e44", "#ae3ec9", "#f08c00",
    "#0c8599", "#e64980", "#5c940d", "#364fc7", "#c92a2a"];
  const bars = uPlot.paths.bars;

  function width(el) { return Math.max(280, Math.floor(el.getBoundingClientRect().width) - 16); }
  function chart(el, opts, data) {
    opts.width = width(el); opts.height = opts.height || 200;
    const u = new uPlot(opts, data, el);
    charts.push(u);
    return u;
  }

  // per feature: reference histogram against the current one
  const hists = D.report.histograms || {};
  const grid = document.getElementById("histograms");
  Object.keys(hists).forEach(function (name) {
    const h = hists[name];
    const card = document.createElement("div"); card.className = "card";
    const title = document.createElement("h3"); title.textContent = name; card.appendChild(title);
    grid.appendChild(card);
    let xs, labels = null;
    if (h.kind === "numeric") {
      if (!h.edges || h.edges.length < 2) { card.appendChild(document.createTextNode("no values")); return; }
      xs = h.edges.slice(0, -1).map(function (e, i) { return (e + h.edges[i + 1]) / 2; });
    } else {
      labels = h.categories || []; xs = labels.map(function (_, i) { return i; });
    }
    const opts = {
      legend: { show: true },
      scales: { x: { time: false, range: function (u, lo, hi) {
        const pad = xs.length > 1 ? (xs[1] - xs[0]) / 2 : 0.5; return [lo - pad, hi + pad]; } } },
      axes: [ labels ? { values: function (u, vals) { return vals.map(function (v) {
                return Number.isInteger(v) && labels[v] !== undefined ? String(labels[v]).slice(0, 12) : ""; }); } }
              : {},
            { values: function (u, vals) { return vals.map(function (v) { return (v * 100).toFixed(0) + "%"; }); } } ],
      series: [ {},
        { label: "reference", stroke: REF, fill: REF + "88", paths: bars({ size: [0.45, 60], align: -1 }) },
        { label: "current", stroke: CUR, fill: CUR + "88", paths: bars({ size: [0.45, 60], align: 1 }) } ],
    };
    chart(card, opts, [xs, h.reference, h.current]);
  });

  // drift over time: one line per feature (its statistic), and the dataset's drifted share
  const hist = D.history || {};
  const names = Object.keys(hist);
  const driftEl = document.getElementById("drift-time");
  if (names.length) {
    const times = Array.from(new Set([].concat.apply([], names.map(function (n) {
      return hist[n].map(function (p) { return p[0]; }); })))).sort(function (a, b) { return a - b; });
    const series = [{}], data = [times];
    names.forEach(function (n, i) {
      const byT = new Map(hist[n]);
      data.push(times.map(function (t) { return byT.has(t) ? byT.get(t) : null; }));
      series.push({ label: n, stroke: PALETTE[i % PALETTE.length], spanGaps: true, points: { show: true } });
    });
    chart(driftEl, { series: series, scales: { x: { time: true } } }, data);
  } else {
    driftEl.innerHTML = '<p class="note">No stored reports yet: the controller stores one each tick.</p>';
  }

  // performance over time: realized and estimated, over the window's parts and over the stored reports
  function perfChart(el, rows, metric, label) {
    const xs = rows.map(function (r) { return r.t; });
    function pick(section) {
      return rows.map(function (r) { const v = (section(r) || {})[metric]; return v == null ? null : v; });
    }
    const real = pick(function (r) { return r.realized || r.performance; });
    const est = pick(function (r) { return r.estimated; });
    const empty = function (vs) { return vs.every(function (v) { return v == null; }); };
    if (!xs.length || (empty(real) && empty(est))) {
      el.innerHTML = '<p class="note">No ' + label + " to chart yet.</p>"; return;
    }
    chart(el, { scales: { x: { time: true } }, series: [ {},
      { label: metric + " realized", stroke: "#1c7ed6", spanGaps: true, points: { show: true } },
      { label: metric + " estimated", stroke: "#f08c00", dash: [6, 4], spanGaps: true, points: { show: true } } ] },
      [xs, real, est]);
  }
  const metric = D.report.task === "regression" ? "mae" : "accuracy";
  perfChart(document.getElementById("perf-window"), D.timeline, metric, "performance in this window");
  perfChart(document.getElementById("perf-reports"), D.reports.filter(function (r) { return r.t != null; }),
            metric, "stored reports");
  window.steadReady = true;
})();
"""


def _row(cells: Sequence[Any], nums: Sequence[int] = ()) -> str:
    out = []
    for i, cell in enumerate(cells):
        text = "-" if cell is None else f"{cell:.4g}" if isinstance(cell, float) else str(cell)
        cls = ' class="num"' if i in nums else ' class="yes"' if text == "yes" else ""
        out.append(f"<td{cls}>{html.escape(text)}</td>")
    return "<tr>" + "".join(out) + "</tr>"


def render_html(
    report: Mapping[str, Any],
    *,
    drift_history: Sequence[Mapping[str, Any]] = (),
    reports: Sequence[Mapping[str, Any]] = (),
    alerts: Sequence[Mapping[str, Any]] = (),
    title: str | None = None,
) -> str:
    """One self-contained HTML page for ``report`` (see the module docstring); it loads nothing from the network.

    >>> page = render_html({"window": {"rows": 0, "start": None, "end": None}, "drift": {"drifted": False,
    ...     "share": 0.0, "threshold": 0.3, "columns": {}, "problems": {}}, "performance": {}, "estimated": {},
    ...     "alerts": []})
    >>> page.startswith("<!DOCTYPE html>") and "http://" not in page.split("<script>")[0]
    True
    """
    drift = report.get("drift") or {}
    window = report.get("window") or {}
    name = str(report.get("deployment") or "")
    heading = title or f"stead monitor report{': ' + name if name else ''}"
    drifted = [n for n, c in (drift.get("columns") or {}).items() if c.get("drifted")]
    judged = len(drift.get("columns") or {})
    verdict_cls = "bad" if drift.get("drifted") else "ok"
    verdict = (
        f"{'Dataset drift' if drift.get('drifted') else 'No dataset drift'}: {len(drifted)} of {judged} features "
        f"drifted ({float(drift.get('share') or 0):.0%}, threshold {float(drift.get('threshold') or 0):.0%})"
        + (f" — {', '.join(drifted)}" if drifted else "")
    )
    rows = "".join(
        _row(
            [
                n,
                c.get("method"),
                c.get("statistic"),
                c.get("p_value"),
                c.get("threshold"),
                "yes" if c.get("drifted") else "no",
                c.get("reasons", ""),
            ],
            (2, 3, 4),
        )
        for n, c in (drift.get("columns") or {}).items()
    )
    rows += "".join(_row([n, "-", None, None, None, "-", p]) for n, p in (drift.get("problems") or {}).items())
    perf = report.get("performance") or {}
    est = report.get("estimated") or {}
    vs = report.get("estimate_vs_realized") or {}
    metrics = [k for k in {**perf, **est} if k not in ("labeled", "label_coverage")]
    perf_rows = "".join(_row([m, perf.get(m), est.get(m), (vs.get(m) or {}).get("error")], (1, 2, 3)) for m in metrics)
    pred = report.get("prediction_drift")
    pred_line = (
        f"<p>Prediction drift: {html.escape(str(pred.get('method')))} {pred.get('statistic') or 0:.4g} — "
        f"{'drifted' if pred.get('drifted') else 'steady'}.</p>"
        if pred
        else '<p class="note">No prediction drift: the reference predictions are not available.</p>'
    )
    alert_rows = "".join(
        _row(
            [
                a.get("id"),
                a.get("rule"),
                str(a.get("opened_at") or "")[:19],
                str(a.get("resolved_at") or "open")[:19],
                "yes" if a.get("acknowledged") else "no",
                (a.get("details") or {}).get("message", ""),
            ]
        )
        for a in alerts
    )
    firing = "".join(
        f"<li>{html.escape(str(a.get('rule')))}: {html.escape(str(a.get('message')))}</li>"
        for a in report.get("alerts") or []
    )
    notes = "".join(f'<p class="note">{html.escape(str(n))}</p>' for n in report.get("notes") or [])
    data = _script_json(_data(report, drift_history, reports, alerts))
    version = f"{report.get('model', '')}/{report.get('version', '')} · " if report.get("model") else ""
    subtitle = (
        f"{version}{window.get('rows', 0)} predictions from {str(window.get('start') or '-')[:19]} "
        f"to {str(window.get('end') or '-')[:19]} · reference: "
        f"{(report.get('reference') or {}).get('sample_rows', '-')} sampled rows"
    )
    alerts_block = (
        "<table><thead><tr><th>id</th><th>rule</th><th>opened</th><th>resolved</th><th>ack</th><th>message</th>"
        f"</tr></thead><tbody>{alert_rows}</tbody></table>"
        if alert_rows
        else '<p class="note">No alerts.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>{html.escape(heading)}</title>
<style>{vendored("uplot/uPlot.min.css")}</style><style>{_CSS}</style></head>
<body>
<h1>{html.escape(heading)}</h1>
<div class="sub">{html.escape(subtitle)}</div>
<div class="verdict {verdict_cls}">{html.escape(verdict)}</div>
{f"<h2>Alerts firing on this window</h2><ul>{firing}</ul>" if firing else ""}
<h2>Drift per feature</h2>
<table><thead><tr><th>feature</th><th>method</th><th>statistic</th><th>p-value</th><th>threshold</th><th>drifted</th>
<th>reasons</th></tr></thead><tbody>{rows}</tbody></table>
{pred_line}
<h2>Reference against current</h2><div class="grid" id="histograms"></div>
<h2>Drift over time</h2><div id="drift-time" class="card"></div>
<h2>Performance</h2>
<p>{perf.get("labeled", 0)} labelled rows ({float(perf.get("label_coverage") or 0):.1%} of the window).</p>
<table><thead><tr><th>metric</th><th>realized</th><th>estimated</th><th>estimate error (labelled rows)</th></tr></thead>
<tbody>{perf_rows}</tbody></table>
<h3>In this window</h3><div id="perf-window" class="card"></div>
<h3>Over the stored reports</h3><div id="perf-reports" class="card"></div>
<h2>Alerts</h2>
{alerts_block}
{notes}
<p class="sub">Charts: uPlot {UPLOT_VERSION} (MIT), inlined.</p>
<script id="stead-data" type="application/json">{data}</script>
<script>{vendored("uplot/uPlot.iife.min.js")}</script>
<script>{_JS}</script>
</body></html>
"""
