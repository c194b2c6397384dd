// 检查台: small behaviours without any outside script. Sortable tables: a header button
// sorts its column (numbers by data-v), a second click reverses.
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("button.sort").forEach(function (button) {
    button.addEventListener("click", function () {
      var col = +button.dataset.col, body = table.tBodies[0];
      var asc = button.dataset.dir !== "asc";
      button.dataset.dir = asc ? "asc" : "desc";
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        var vx = x.dataset.v !== undefined ? +x.dataset.v : x.textContent.trim();
        var vy = y.dataset.v !== undefined ? +y.dataset.v : y.textContent.trim();
        var c = (typeof vx === "number" && typeof vy === "number") ? vx - vy : String(vx).localeCompare(String(vy), "zh-CN");
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
