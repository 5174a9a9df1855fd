// The pairing screen: poll until an admin claims our code, then become that display.
// The private secret is an HttpOnly cookie scoped to /pair: this script never sees it.
(function () {
  "use strict";
  var body = document.body;
  var pollMs = Math.max(1, parseInt(body.dataset.pollS || "2", 10)) * 1000;
  var status = document.getElementById("pair-status");
  var failures = 0;

  function later() {
    // Back off while the server is unreachable, so a fleet of screens does not hammer it.
    var delay = Math.min(30000, pollMs * Math.pow(2, Math.min(failures, 4)));
    setTimeout(poll, delay + Math.random() * 500);
  }

  function poll() {
    fetch("/pair/status", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (data) {
        failures = 0;
        if (data.state === "paired" && typeof data.kiosk_path === "string" &&
            data.kiosk_path.indexOf("/kiosk/") === 0) {
          status.textContent = "Paired. Loading…";
          location.replace(data.kiosk_path);
          return;
        }
        if (data.state === "expired" || data.state === "unknown") {
          location.reload();  // a fresh code
          return;
        }
        later();
      })
      .catch(function () {
        failures++;
        status.textContent = "Server unreachable; retrying…";
        later();
      });
  }
  setTimeout(poll, pollMs);
})();
