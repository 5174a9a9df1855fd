// Announcements on the kiosk (and phone) page: a banner above the map (#announcement) and the
// emergency override that takes the whole screen (#emergency).
//
// The server sends the whole current list for this display: in every snapshot
// (`announcements`, `announcements_rev`) and as {"type": "announcements", epoch, rev, items}
// when it changes. kiosk.js hands every message over as the document event "signage:message";
// the first snapshot is in the page's kiosk-snapshot block. Within one server epoch a list
// with a lower rev is older than the one shown and is ignored.
//
// Ending on time without the server: each item says how long it still runs (ends_in_s, at the
// moment the server built the list). The page turns that into a deadline on performance.now(),
// a clock that only moves forward and does not care whether the device's date is right (a
// Raspberry Pi may have no real-time clock). So a screen that lost its link still drops an
// emergency at its end, and never keeps one because its own calendar is wrong. Only a page
// served from the offline cache has no fresh list: it shows an item only while the device clock
// is plausibly right (not behind the cached snapshot) and before the item's end.
//
// Every server string enters the page through textContent, never innerHTML.
(function () {
  "use strict";

  var doc = document;
  var root = doc.documentElement;
  var banner = doc.getElementById("announcement");
  var overlay = doc.getElementById("emergency");
  if (!banner && !overlay) return;
  var SVGNS = "http://www.w3.org/2000/svg";
  var MAX_BANNERS = 3;

  function perf() { return performance.now(); }
  function readJSON(id) {
    var node = doc.getElementById(id);
    try { return node ? JSON.parse(node.textContent) : null; } catch (e) { return null; }
  }

  var shown = { epoch: null, rev: -1, items: [], key: "" };
  var timer = null;

  function clean(raw, deadline) {
    if (!raw || typeof raw !== "object" || typeof raw.title !== "string") return null;
    return {
      id: raw.id,
      kind: raw.kind === "emergency" ? "emergency" : "message",
      title: raw.title,
      body: typeof raw.body === "string" ? raw.body : "",
      deadline: deadline
    };
  }

  function accept(epoch, rev, items, deadlineOf) {
    if (!Array.isArray(items)) return;
    var sameEpoch = epoch && epoch === shown.epoch;
    if (sameEpoch && typeof rev === "number" && rev < shown.rev) return; // an older list
    if (epoch) shown.epoch = epoch;
    if (typeof rev === "number") shown.rev = rev;
    var list = [];
    items.forEach(function (raw) {
      var deadline = deadlineOf(raw);
      var item = clean(raw, deadline);
      if (item && deadline > perf()) list.push(item);
    });
    shown.items = list;
    render();
  }

  function fromServer(raw) {
    // Relative time from the server: immune to a wrong device clock.
    var left = Number(raw && raw.ends_in_s);
    return perf() + (isFinite(left) ? Math.max(0, left) : 0) * 1000;
  }

  function fromCache(snapshotTime) {
    return function (raw) {
      var end = Date.parse(raw && raw.ends_at);
      var now = Date.now();
      // A device clock behind the cached snapshot is wrong: show nothing rather than guess.
      if (!isFinite(end) || !(now >= snapshotTime)) return -Infinity;
      return perf() + (end - now);
    };
  }

  function expire() {
    var now = perf();
    var live = shown.items.filter(function (item) { return item.deadline > now; });
    if (live.length !== shown.items.length) {
      shown.items = live;
      render();
    } else {
      schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = null;
    if (!shown.items.length) return;
    var next = Math.min.apply(null, shown.items.map(function (item) { return item.deadline; }));
    timer = setTimeout(expire, Math.max(50, Math.min(next - perf() + 20, 60000)));
  }

  // -- drawing -----------------------------------------------------------------------------
  function el(tag, cls, text, parent) {
    var node = doc.createElement(tag);
    if (cls) node.className = cls;
    if (text) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function icon(cls, parent) {
    // A warning triangle with an exclamation mark: our own markup, no server text in it.
    var svg = doc.createElementNS(SVGNS, "svg");
    svg.setAttribute("class", cls);
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var path = doc.createElementNS(SVGNS, "path");
    path.setAttribute("d", "M12 2.5 1.5 21h21L12 2.5Zm-1.3 7h2.6l-.4 6.2h-1.8l-.4-6.2Zm1.3 7.8a1.5 1.5 0 1 1 0 3 1.5 1.5 0 0 1 0-3Z");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("fill-rule", "evenodd");
    svg.appendChild(path);
    parent.appendChild(svg);
    return svg;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function render() {
    var emergencies = shown.items.filter(function (i) { return i.kind === "emergency"; });
    var messages = shown.items.filter(function (i) { return i.kind !== "emergency"; });
    var key = JSON.stringify(shown.items.map(function (i) { return [i.id, i.kind, i.title, i.body]; }));
    if (key !== shown.key) {
      shown.key = key;
      if (overlay) drawEmergency(emergencies);
      if (banner) drawBanner(messages);
    }
    root.dataset.emergency = emergencies.length ? "on" : "off";
    schedule();
  }

  function drawEmergency(items) {
    clear(overlay);
    if (!items.length) { overlay.hidden = true; return; }
    var box = el("div", "emergency-box", "", overlay);
    icon("emergency-icon", box);
    items.forEach(function (item, index) {
      var part = el("section", index === 0 ? "emergency-main" : "emergency-more", "", box);
      part.setAttribute("data-announcement-id", String(item.id));
      el(index === 0 ? "h1" : "h2", "emergency-title", item.title, part);
      if (item.body) el("p", "emergency-body", item.body, part);
    });
    overlay.hidden = false;
  }

  function drawBanner(items) {
    clear(banner);
    if (!items.length) { banner.hidden = true; return; }
    items.slice(0, MAX_BANNERS).forEach(function (item) {
      var row = el("div", "announcement-item", "", banner);
      row.setAttribute("data-announcement-id", String(item.id));
      icon("announcement-icon", row);
      var text = el("p", "announcement-text", "", row);
      el("strong", "announcement-title", item.title, text);
      if (item.body) el("span", "announcement-body", item.body, text);
    });
    banner.hidden = false;
  }

  // -- messages ------------------------------------------------------------------------------
  doc.addEventListener("signage:message", function (ev) {
    var msg = ev.detail;
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "announcements") accept(msg.epoch, msg.rev, msg.items, fromServer);
    else if (msg.type === "snapshot" && Array.isArray(msg.announcements)) {
      accept(msg.epoch, msg.announcements_rev, msg.announcements, fromServer);
    }
  });

  var embedded = readJSON("kiosk-snapshot");
  if (embedded && Array.isArray(embedded.announcements)) {
    if (root.dataset.shell === "cache") {
      accept(null, null, embedded.announcements, fromCache(Date.parse(embedded.server_time)));
    } else {
      accept(embedded.epoch, embedded.announcements_rev, embedded.announcements, fromServer);
    }
  } else {
    root.dataset.emergency = "off";
  }

  window.signageAnnouncements = {
    state: function () {
      return {
        epoch: shown.epoch, rev: shown.rev,
        items: shown.items.map(function (i) { return { id: i.id, kind: i.kind, leftS: (i.deadline - perf()) / 1000 }; })
      };
    }
  };
})();
