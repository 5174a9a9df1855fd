// "Free now on other floors": the kiosk's side panel (docs/protocol.md, the `floors` message).
//
// The server counts, per other floor of the building, the rooms free now by group, and only
// from rooms its feed vouches for; a floor it cannot vouch for arrives as "unknown" and is shown
// so. This script only draws: it reads the first list from the kiosk-snapshot block, then every
// `snapshot` and `floors` message kiosk.js shares as a "signage:message" event. When the page
// itself has lost the server as long as kiosk.js allows (no_contact_s), every floor turns
// unknown, as the rooms on the map do. Server strings go in through textContent only.
(function () {
  "use strict";

  var doc = document;
  var GROUPS = ["meet", "focus", "work", "social", "other"];
  var KINDS = ["stairs", "lift"];

  function readJSON(id) {
    var node = doc.getElementById(id);
    try { return node ? JSON.parse(node.textContent) : null; } catch (e) { return null; }
  }
  function num(v, fallback) { var n = parseFloat(v); return isFinite(n) ? n : fallback; }

  var box = doc.getElementById("other-floors");
  if (!box) return;
  var config = readJSON("kiosk-config") || {};
  var M = readJSON("kiosk-messages") || {};
  var snapshot = readJSON("kiosk-snapshot");
  // Test knobs only when the server runs in test mode (config.test), as in kiosk.js.
  var knobs = config.test || null;
  var testOpts = knobs ? window.__SIGNAGE_TEST__ || {} : {};
  // The same threshold kiosk.js turns its rooms unknown at.
  var NO_CONTACT_S = num(testOpts.noContactS, num(knobs && knobs.no_contact_s, 120));

  function t(key, values) {
    var text = M[key] !== undefined ? M[key] : key;
    Object.keys(values || {}).forEach(function (k) { text = text.split("{" + k + "}").join(String(values[k])); });
    return text;
  }
  function el(tag, cls, text) {
    var node = doc.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  var floors = null;  // the last list the server sent; null: no panel (a one-floor building)
  var drawnKey = null;

  function lostServer() {
    var kiosk = window.signageKiosk;
    if (!kiosk || typeof kiosk.state !== "function") return false;
    var s = kiosk.state();
    // Restored from the offline cache, or silent too long: what we hold may be old news.
    return !!s.restored || !(s.sinceContactS < NO_CONTACT_S);
  }

  function known(floor) {
    if (floor.state !== "known" || !floor.free || typeof floor.free !== "object") return false;
    return GROUPS.every(function (g) { return floor.free[g] === undefined || typeof floor.free[g] === "number"; });
  }

  function exits() {
    var way = config.wayfinding;
    var list = way && Array.isArray(way.exits) ? way.exits : [];
    return list.filter(function (e) { return e && KINDS.indexOf(e.kind) >= 0; })
      .sort(function (a, b) { return num(a.units, Infinity) - num(b.units, Infinity); });
  }

  function floorItem(floor, lost) {
    var ok = !lost && known(floor);
    var li = el("li", "of-floor");
    li.setAttribute("data-floor-id", String(floor.id || ""));
    li.setAttribute("data-state", ok ? "known" : "unknown");
    li.setAttribute("data-feed", lost ? "stale" : String(floor.feed || "stale"));
    var head = el("div", "of-head");
    head.appendChild(el("span", "of-name", String(floor.name || "")));
    if (!lost && floor.state === "not_available") {
      // An emergency override on that floor: its free rooms are not to be walked to.
      li.setAttribute("data-state", "not-available");
      head.appendChild(el("span", "of-total of-unknown", t("floors_not_available")));
      li.appendChild(head);
      li.appendChild(el("p", "of-groups of-hint", t("floors_not_available_hint")));
      return li;
    }
    if (!ok) {
      head.appendChild(el("span", "of-total of-unknown", t("floors_unknown")));
      li.appendChild(head);
      li.appendChild(el("p", "of-groups of-hint", t("floors_unknown_hint")));
      return li;
    }
    var total = 0;
    GROUPS.forEach(function (g) { total += floor.free[g] || 0; });
    head.appendChild(el("span", "of-total" + (total ? "" : " of-none"),
      total ? t("floors_free", { n: total }) : t("floors_none")));
    li.appendChild(head);
    if (total) {
      var groups = el("p", "of-groups");
      GROUPS.forEach(function (g) {
        var n = floor.free[g] || 0;
        if (!n) return;
        var chip = el("span", "of-group");
        chip.setAttribute("data-group", g);
        chip.setAttribute("data-count", String(n));
        chip.appendChild(el("b", "", String(n)));
        chip.appendChild(doc.createTextNode(" " + t("floors_g_" + g)));
        if (groups.firstChild) groups.appendChild(doc.createTextNode(" "));  // where a line may break
        groups.appendChild(chip);
      });
      li.appendChild(groups);
    }
    return li;
  }

  function draw() {
    var list = Array.isArray(floors) ? floors.filter(function (f) { return f && typeof f === "object"; }) : [];
    var lost = lostServer();
    var key = lost + "|" + JSON.stringify(list);
    if (key === drawnKey) return;
    drawnKey = key;
    while (box.firstChild) box.removeChild(box.firstChild);
    if (!list.length) { box.hidden = true; box.removeAttribute("data-floors"); return; }
    box.setAttribute("data-floors", String(list.length));
    box.setAttribute("aria-label", t("floors_title"));
    box.appendChild(el("h2", "of-title", t("floors_title")));
    var ul = el("ul", "of-list");
    list.forEach(function (floor) { ul.appendChild(floorItem(floor, lost)); });
    box.appendChild(ul);
    var way = exits();
    if (way.length) {
      var p = el("p", "of-way");
      var seen = {};
      way.forEach(function (e) {
        if (seen[e.kind]) return;  // the nearest of each kind
        seen[e.kind] = true;
        var m = num(e.m, null);
        var kind = t("floors_" + e.kind);
        // Rounded as the free list and the plan's signs round (kiosk.js): one number per place.
        var shown = m < 20 ? Math.max(1, Math.round(m)) : Math.round(m / 5) * 5;
        var span = el("span", "of-exit", m === null ? kind : t("floors_way", { kind: kind, m: shown }));
        span.setAttribute("data-kind", e.kind);
        p.appendChild(span);
      });
      box.appendChild(p);
    }
    box.hidden = false;
  }

  function take(list) {
    floors = Array.isArray(list) ? list : null;
    draw();
  }

  doc.addEventListener("signage:message", function (ev) {
    var msg = ev.detail;
    if (!msg || typeof msg !== "object") return;
    if ((msg.type === "floors" || msg.type === "snapshot") && "other_floors" in msg) take(msg.other_floors);
  });

  take(snapshot && snapshot.other_floors);
  setInterval(draw, 1000);
})();
