// apimon dashboard: the live call stream and tidy filter URLs. No dependencies, no inline code
// (the page's Content-Security-Policy allows only this file). Captured values are only ever
// set as textContent, never as HTML.
"use strict";
(function () {
  var MAX_ROWS = 500;

  var form = document.getElementById("filters");
  if (form) {
    form.addEventListener("submit", function () {
      // Leave unset filters out of the URL.
      Array.prototype.forEach.call(form.elements, function (el) {
        if ((el.tagName === "INPUT" || el.tagName === "SELECT") && el.value === "") el.disabled = true;
      });
    });
  }

  var live = document.getElementById("live");
  var table = document.getElementById("calls");
  if (!live || !table || !window.EventSource) return;
  var body = table.tBodies[0];
  var shown = document.getElementById("shown");

  function cell(row, text, className, href) {
    var td = row.insertCell(-1);
    if (className) td.className = className;
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
  }

  function add(call) {
    var row = body.insertRow(0);
    var href = "/calls/" + encodeURIComponent(String(call.id));
    row.className = "s" + Math.floor(call.status / 100) + " fresh";
    cell(row, String(call.id), "", href);
    cell(row, call.time, "");
    cell(row, call.direction === "Outgoing" ? "out" : "in", "dir");
    cell(row, call.verb, "");
    cell(row, call.path, "path", href);
    cell(row, call.route || "", "");
    cell(row, String(call.status), "status");
    cell(row, Number(call.duration_ms).toFixed(1), "num");
    cell(row, call.user_id || "", "");
    while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
    if (shown) shown.textContent = String(body.rows.length);
    var empty = document.getElementById("empty");
    if (empty) empty.remove();
  }

  var source = new EventSource(live.getAttribute("data-src"));
  source.addEventListener("open", function () { live.classList.add("on"); });
  source.addEventListener("error", function () { live.classList.remove("on"); });
  source.addEventListener("call", function (event) { add(JSON.parse(event.data)); });
})();
