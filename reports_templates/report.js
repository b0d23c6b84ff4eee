// Optional: sort tables and filter by language. The page reads fully without it; the CSP allows only
// this exact script (by its hash), so nothing else on the page can run.
(function () {
  "use strict";
  document.documentElement.setAttribute("data-js", "on");
  function value(cell) {
    var v = cell.getAttribute("data-v");
    if (v !== null && v !== "" && !isNaN(Number(v))) { return Number(v); }
    var n = parseFloat(cell.textContent.replace(/[^0-9.+-]/g, ""));
    return isNaN(n) ? cell.textContent.trim().toLowerCase() : n;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, col) {
      th.setAttribute("aria-sort", "none");
      th.tabIndex = 0;
      function sort() {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = value(a.cells[col]), y = value(b.cells[col]);
          var r = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
          return asc ? r : -r;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
  });
  var tools = document.getElementById("tools");
  if (tools) {
    var input = document.createElement("input");
    input.type = "search";
    input.placeholder = "Filter languages (e.g. lv, Polski)";
    input.setAttribute("aria-label", "Filter languages");
    tools.appendChild(input);
    input.addEventListener("input", function () {
      var terms = input.value.toLowerCase().split(/[\s,]+/).filter(Boolean);
      document.querySelectorAll("[data-lang]").forEach(function (el) {
        var hay = el.getAttribute("data-lang").toLowerCase();
        var show = !terms.length || terms.some(function (t) { return hay.indexOf(t) !== -1; });
        el.classList.toggle("hidden", !show);
      });
    });
  }
  // Print everything: open collapsed examples before printing (CSS does it too where supported).
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.setAttribute("open", ""); });
  });
})();
