// 资金流向: draws each Sankey diagram of a page (ECharts, served from /static/vendor) from the
// JSON in its <script type="application/json"> element: {title, nodes: [{name, title, depth,
// href?}], links: [{source, target, value (元), fen}]}.  Parts loaded by htmx are drawn
// when they arrive; a refusal inside a part shows its message there.
(function () {
  "use strict";

  function yuan(fen) {
    // fen (an integer) as 元 with two decimals and thousands separators, never via a float
    var sign = fen < 0 ? "-" : "";
    fen = Math.abs(Math.round(fen));
    var whole = Math.floor(fen / 100), cents = fen % 100;
    return sign + String(whole).replace(/\B(?=(\d{3})+(?!\d))/g, ",") + "." +
      (cents < 10 ? "0" : "") + cents;
  }

  function titles(data) {
    var out = {};
    data.nodes.forEach(function (n) { out[n.name] = n.title; });
    return out;
  }

  function draw(el) {
    if (el.getAttribute("data-drawn") || typeof echarts === "undefined") return;
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var names = titles(data);
    el.style.height = (+el.getAttribute("data-height") || 420) + "px";
    el.setAttribute("data-drawn", "1");
    // a label may run as far as the next column (the last column has the right margin)
    var columns = 1 + data.nodes.reduce(function (m, n) { return Math.max(m, n.depth || 0); }, 0);
    var right = 200;
    var room = columns > 1 ? (el.clientWidth - 8 - right) / (columns - 1) - 22 : right;
    data.nodes.forEach(function (n) {
      n.label = { width: Math.max(60, (n.depth === columns - 1 ? right - 10 : room)) | 0 };
    });
    var chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption({
      animation: false,
      aria: { enabled: false },
      tooltip: {
        trigger: "item",
        confine: true,
        formatter: function (p) {
          if (p.dataType === "edge") {
            return names[p.data.source] + " → " + names[p.data.target] + "<br>" + yuan(p.data.fen) + " 元";
          }
          return p.data.title + "<br>" + yuan(Math.round(p.value * 100)) + " 元";
        }
      },
      series: [{
        type: "sankey",
        data: data.nodes,
        links: data.links,
        nodeAlign: "left",
        left: 8, right: right, top: 10, bottom: 10,
        nodeWidth: 14, nodeGap: 8, layoutIterations: 48,
        draggable: false,
        emphasis: { focus: "adjacency" },
        label: {
          color: "#1f2328", fontSize: 12,
          overflow: "truncate", ellipsis: "…",
          formatter: function (p) { return p.data.title; }
        },
        lineStyle: { color: "gradient", curveness: 0.5, opacity: 0.35 }
      }]
    });
    chart.on("click", function (p) {
      if (p.dataType === "node" && p.data.href) window.location.href = p.data.href;
    });
    window.addEventListener("resize", function () { chart.resize(); });
    window.addEventListener("beforeprint", function () { chart.resize(); });
  }

  function drawAll(root) {
    var scope = root && root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches("[data-chart]")) draw(scope);
    Array.prototype.forEach.call(scope.querySelectorAll("[data-chart]"), draw);
  }

  if (typeof htmx !== "undefined") {
    htmx.onLoad(drawAll);
    // a refusal (4xx) or a failure inside a part: show the refusal's own text in the part
    document.addEventListener("htmx:beforeSwap", function (e) {
      var status = e.detail.xhr && e.detail.xhr.status;
      if (status >= 400 && e.detail.target && e.detail.target.classList.contains("mr-part")) {
        e.detail.shouldSwap = true;
        e.detail.isError = false;
        e.detail.ignoreTitle = true;
        if (status < 500) {
          e.detail.selectOverride = ".refused";
        } else {
          e.detail.serverResponse = '<p class="bad" role="alert">服务器出错，请稍后重试。</p>';
        }
      }
    });
  }
  // printed, the diagrams' tables are opened beside the drawings
  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(document.querySelectorAll("details.mr-details"),
      function (d) { d.open = true; });
  });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
})();
