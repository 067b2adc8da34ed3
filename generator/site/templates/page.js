// The page's filters. Without JavaScript the page shows every cell and the form stays hidden.
// The filters live in the query string (?cloud=azure&ext=flash-attn&acc=GPU_8xH100), so a filtered view
// is a link that can be shared; a value no option has is ignored.
(function () {
  "use strict";
  var form = document.getElementById("filters");
  var shown = document.getElementById("shown");
  var none = document.getElementById("none");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#cells tbody tr[data-slug]"));
  var sections = Array.prototype.slice.call(document.querySelectorAll("section.cell[data-slug]"));
  var selects = Array.prototype.slice.call(form.querySelectorAll("select"));
  var search = form.querySelector("input[name=q]");
  // Attributes holding a space-separated list: a cell matches when the chosen value is one of them.
  var LISTS = { ext: true, acc: true };

  function chosen() {
    var wanted = {};
    selects.forEach(function (s) { if (s.value) { wanted[s.name] = s.value; } });
    var q = search.value.trim().toLowerCase();
    if (q) { wanted.q = q; }
    return wanted;
  }

  function matches(el, wanted) {
    for (var key in wanted) {
      var have = key === "q" ? el.dataset.slug : el.dataset[key];
      if (have === undefined) { return false; }
      if (key === "q") {
        if (have.indexOf(wanted.q) < 0) { return false; }
      } else if (LISTS[key]) {
        if (have.split(" ").indexOf(wanted[key]) < 0) { return false; }
      } else if (have !== wanted[key]) {
        return false;
      }
    }
    return true;
  }

  function apply() {
    var wanted = chosen();
    var count = 0;
    rows.forEach(function (row) {
      var ok = matches(row, wanted);
      row.hidden = !ok;
      if (ok) { count += 1; }
    });
    sections.forEach(function (section) { section.hidden = !matches(section, wanted); });
    shown.textContent = count + " of " + rows.length + " cells";
    none.hidden = count > 0;
    var params = new URLSearchParams();
    Object.keys(wanted).forEach(function (key) { params.set(key, wanted[key]); });
    var query = params.toString();
    try {
      history.replaceState(null, "", (query ? "?" + query : location.pathname) + location.hash);
    } catch (e) {
      // Some browsers refuse to rewrite a file:// address; the filters work the same without it.
    }
  }

  function fromAddress() {
    var params = new URLSearchParams(location.search);
    selects.forEach(function (s) {
      var value = params.get(s.name);
      var known = Array.prototype.some.call(s.options, function (o) { return o.value === value; });
      s.value = value !== null && known ? value : "";
    });
    search.value = params.get("q") || "";
  }

  form.hidden = false;
  form.addEventListener("change", apply);
  form.addEventListener("input", apply);
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  form.addEventListener("reset", function () { setTimeout(apply, 0); });
  fromAddress();
  apply();

  // Copy buttons for the air.yaml blocks; the clipboard may be refused (file://, old browsers): then the
  // text is selected for a manual copy.
  Array.prototype.forEach.call(document.querySelectorAll("button.copy"), function (button) {
    var pre = document.getElementById(button.getAttribute("data-copy"));
    button.hidden = false;
    button.addEventListener("click", function () {
      var select = function () {
        var range = document.createRange();
        range.selectNodeContents(pre);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(pre.textContent).then(function () { button.textContent = "Copied"; }, select);
      } else {
        select();
      }
    });
  });
})();
