/* stead web UI: draws the charts (uPlot, vendored), lineage hover, run compare and live refresh. No network. */
(function () {
  "use strict";
  var PALETTE = ["#1c7ed6", "#e8590c", "#2f9e44", "#7048e8", "#f08c00", "#0c8599", "#e64980", "#5c940d", "#364fc7", "#c92a2a"];
  var charts = (window.steadCharts = []);

  function num(v) {
    if (v == null) return "-";
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    return String(+v.toPrecision(4));
  }

  function draw(el) {
    var src = document.getElementById(el.getAttribute("data-chart"));
    if (!src) return;
    var spec = JSON.parse(src.textContent);
    var dashed = spec.dashed || [];
    var colorOf = {};
    var series = [{ label: spec.time ? "time" : (spec.xlabel || "step"), value: spec.time ? "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" : function (u, v) { return v == null ? "-" : v; } }];
    var data = [spec.x];
    spec.series.forEach(function (s, i) {
      // a version's p50 and p99 share its colour: the colour follows the label's first word
      var key = s.label.split(" ")[0];
      if (!(key in colorOf)) colorOf[key] = PALETTE[Object.keys(colorOf).length % PALETTE.length];
      var isDashed = dashed.indexOf(s.label) >= 0;
      series.push({
        label: s.label, stroke: colorOf[key], width: 2, spanGaps: !!spec.span_gaps,
        dash: isDashed ? [6, 4] : undefined,
        points: { show: spec.x.length <= 60, size: 5 },
        value: function (u, v) { return num(v); },
      });
      data.push(s.data);
    });
    var width = Math.max(280, Math.floor(el.getBoundingClientRect().width));
    var opts = {
      width: width, height: 220, series: series,
      scales: { x: { time: !!spec.time } },
      axes: [{ stroke: "#5b6475", grid: { stroke: "#eef0f4" } },
             { stroke: "#5b6475", grid: { stroke: "#eef0f4" }, size: 56, label: spec.ylabel || "", labelSize: spec.ylabel ? 18 : 0,
               values: function (u, vals) { return vals.map(num); } }],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    };
    var u = new uPlot(opts, data, el);
    var points = 0;
    spec.series.forEach(function (s) { s.data.forEach(function (v) { if (v != null) points++; }); });
    el.setAttribute("data-points", String(points));
    el.setAttribute("data-drawn", "1");
    charts.push(u);
  }

  function drawAll() {
    if (typeof uPlot === "undefined") return;
    Array.prototype.forEach.call(document.querySelectorAll("[data-chart]"), draw);
    var resize;
    window.addEventListener("resize", function () {
      clearTimeout(resize);
      resize = setTimeout(function () {
        charts.forEach(function (u) {
          var w = Math.max(280, Math.floor(u.root.parentNode.getBoundingClientRect().width));
          u.setSize({ width: w, height: 220 });
        });
      }, 150);
    });
  }

  function lineage() {
    var svg = document.getElementById("lineage");
    if (!svg) return;
    var edges = svg.querySelectorAll(".edge");
    function focus(id) {
      svg.classList.add("focus");
      var hot = {}; hot[id] = true;
      Array.prototype.forEach.call(edges, function (e) {
        var on = e.getAttribute("data-source") === id || e.getAttribute("data-target") === id;
        e.classList.toggle("hot", on);
        if (on) { hot[e.getAttribute("data-source")] = true; hot[e.getAttribute("data-target")] = true; }
      });
      Array.prototype.forEach.call(svg.querySelectorAll(".node"), function (n) {
        n.classList.toggle("hot", !!hot[n.getAttribute("data-id")]);
      });
    }
    Array.prototype.forEach.call(svg.querySelectorAll(".node"), function (n) {
      n.addEventListener("mouseenter", function () { focus(n.getAttribute("data-id")); });
      n.addEventListener("mouseleave", function () { svg.classList.remove("focus"); });
    });
    var start = svg.querySelector(".node.start");
    if (start) {  // a wide graph: bring the starting node into view when it would be off-screen
      var wrap = svg.parentNode, box = start.getBBox();
      if (box.x + box.width > wrap.clientWidth) wrap.scrollLeft = box.x - wrap.clientWidth / 3;
    }
  }

  function compare() {
    var form = document.getElementById("compare-form");
    if (!form) return;
    var button = document.getElementById("compare");
    function update() { button.disabled = form.querySelectorAll("input.pick:checked").length < 2; }
    form.addEventListener("change", update);
    update();
  }

  function live() {
    var box = document.getElementById("live");
    if (!box) return;
    var key = "stead-live:" + location.pathname;
    box.checked = window.localStorage && localStorage.getItem(key) === "1";
    var timer = null;
    function arm() {
      clearTimeout(timer);
      if (box.checked) timer = setTimeout(function () { location.reload(); }, 10000);
    }
    box.addEventListener("change", function () {
      if (window.localStorage) localStorage.setItem(key, box.checked ? "1" : "0");
      arm();
    });
    arm();
  }

  function ready() {
    drawAll(); lineage(); compare(); live();
    window.steadReady = true;
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready); else ready();
})();
