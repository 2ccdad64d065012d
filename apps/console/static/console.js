// Progressive enhancement only: every page works without this file.
// - [data-copy]: a Copy button for the short URL (shown only with JS).
// - form[data-confirm]: asks before a destructive submit.
// - the stats range picker: custom dates only when "custom" is chosen, and
//   a change of range applies at once.
(function () {
  "use strict";

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = button.getAttribute("data-copy");
      var done = function () {
        var label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () {});
      } else {
        var field = document.getElementById(button.getAttribute("aria-controls"));
        if (field) { field.select(); document.execCommand("copy"); done(); }
      }
    });
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  var range = document.getElementById("range");
  if (range) {
    var custom = document.querySelectorAll(".custom-range");
    var sync = function () {
      custom.forEach(function (el) { el.hidden = range.value !== "custom"; });
    };
    var bucket = document.getElementById("bucket");
    range.addEventListener("change", function () {
      sync();
      // Each range's own default bucket: hours up to a week, days beyond.
      if (bucket) { bucket.value = (range.value === "24h" || range.value === "7d") ? "hour" : "day"; }
      if (range.value !== "custom") { range.form.submit(); }
    });
    sync();
  }
})();
