// The kiosk page (and the phone view): keeps the server-rendered floor live.
//
// Plain JS, no framework, no build step; runs in Chromium on a Raspberry Pi. Every string that
// comes from the server (room names above all: they come from Density) goes into the page
// through textContent or setAttribute, never innerHTML. The protocol is docs/protocol.md.
//
// Time: room ages (since_s) and the server's heard_age_s are advanced with performance.now(),
// never with the device clock; the displayed clock follows the server's clock (server_time),
// since a Raspberry Pi may have no real-time clock. Tests can inject a clock and time zone:
//   window.__SIGNAGE_TEST_CLOCK__ = {now: "2025-01-15T22:30:00Z", timeZone: "Europe/Berlin"}
//   window.__SIGNAGE_TEST__ = {noContactS: 3, reloadMinUptimeS: 0, reloadHour: 3, reloadMinute: 0,
//                              idleS: 1.5}
// (or the query parameters clock, tz, no_contact_s), and window.signageKiosk.setClock(iso).
// All of these only when the server runs in test mode (SIGNAGE_TEST_MODE): it then puts the
// URL's knobs, parsed, in config.test. The page never reads them from its own URL, and without
// config.test it ignores the window hooks too, so a production URL cannot change its rules.
(function () {
  "use strict";

  var doc = document;
  var root = doc.documentElement;
  var SVGNS = "http://www.w3.org/2000/svg";
  var STATES = ["free", "occupied", "unknown"];
  var GROUP_ORDER = ["meet", "focus", "work", "social", "other"];
  var FUNCTION_GROUP = {
    meeting_room: "meet", conference_room: "meet", boardroom: "meet", event_space: "meet",
    phone_booth: "focus", focus_room: "focus", quiet_room: "focus", wellness_room: "focus",
    library: "focus", desk_neighborhood: "work", open_collaboration_space: "work", desk: "work",
    lounge: "social", kitchen: "social", cafe: "social", break_room: "social",
    games_room: "social", reception: "social"
  };
  var ZONE_GAP = 14, ROOM_GAP = 8, LABEL_BAND = 34, NAME_FS = 26;

  function $(id) { return doc.getElementById(id); }
  function readJSON(id) {
    var node = $(id);
    try { return node ? JSON.parse(node.textContent) : null; } catch (e) { return null; }
  }
  function perf() { return performance.now(); }

  var config = readJSON("kiosk-config") || {};
  var M = readJSON("kiosk-messages") || {};
  var embedded = readJSON("kiosk-snapshot");
  var isPhone = config.mode === "phone";
  var settings = config.settings || {};
  var params = new URLSearchParams(location.search);
  var knobs = config.test || null;  // present only in test mode
  var testOpts = knobs ? window.__SIGNAGE_TEST__ || {} : {};
  var testClock = knobs ? window.__SIGNAGE_TEST_CLOCK__ || {} : {};
  var startedAt = perf();
  // The kiosk kit's session test (test mode, ?hang=1): a page stuck in a busy loop once it has
  // drawn, for the Pi watchdog to find through Chromium's remote-debugging port.
  if (knobs && knobs.hang) setTimeout(function () { for (;;) { /* hung on purpose */ } }, 1000);

  function num(v, fallback) { var n = parseFloat(v); return isFinite(n) ? n : fallback; }
  var HEARTBEAT_S = num(config.heartbeat_s, 15);
  var NO_CONTACT_S = num(testOpts.noContactS, num(knobs && knobs.no_contact_s, 120));
  var POLL_S = isPhone ? 5 : 3;
  var SEND_HEARTBEAT_S = num(testOpts.sendHeartbeatS, 30);
  var RELOAD_HOUR = num(testOpts.reloadHour, 3);
  var RELOAD_MINUTE = num(testOpts.reloadMinute, Math.floor(Math.random() * 45));
  var RELOAD_MIN_UPTIME_S = num(testOpts.reloadMinUptimeS, 3600);

  function t(key, values) {
    var text = M[key] !== undefined ? M[key] : key;
    if (values) {
      Object.keys(values).forEach(function (k) { text = text.split("{" + k + "}").join(String(values[k])); });
    }
    return text;
  }

  // -- clock: the server's (or a test's), advanced with performance.now() -------------------
  var clockBase = null;
  function setClock(value, isTest) {
    var ms = typeof value === "number" ? value : Date.parse(value);
    if (!isFinite(ms)) return;
    clockBase = { wall: ms, at: perf(), test: !!isTest };
  }
  if (testClock.now !== undefined) setClock(testClock.now, true);
  else if (knobs && knobs.clock) setClock(knobs.clock, true);
  function serverClock(iso) {
    if (!iso || (clockBase && clockBase.test)) return;
    setClock(iso, false);
  }
  function wallNow() { return clockBase ? clockBase.wall + (perf() - clockBase.at) : Date.now(); }

  var testTz = testClock.timeZone || (knobs && knobs.tz) || null;
  var formatters = {};
  function tz() { return testTz || (model.floor && model.floor.time_zone) || undefined; }
  function formatter(kind) {
    var zone = tz() || "local";
    var key = kind + "|" + zone;
    if (!formatters[key]) {
      var opts = kind === "time" ? { hour: "2-digit", minute: "2-digit" }
        : kind === "date" ? { weekday: "long", day: "numeric", month: "long" }
        : { hour: "numeric", minute: "numeric", year: "numeric", month: "numeric", day: "numeric", hourCycle: "h23" };
      if (zone !== "local") opts.timeZone = zone;
      try { formatters[key] = new Intl.DateTimeFormat(config.lang || "en", opts); }
      catch (e) { delete opts.timeZone; formatters[key] = new Intl.DateTimeFormat(config.lang || "en", opts); }
    }
    return formatters[key];
  }
  function fmtTime(ms) { return formatter("time").format(new Date(ms)); }
  function localParts(ms) {
    var out = {};
    formatter("parts").formatToParts(new Date(ms)).forEach(function (p) { out[p.type] = p.value; });
    return { hour: parseInt(out.hour, 10) % 24, minute: parseInt(out.minute, 10), day: out.year + "-" + out.month + "-" + out.day };
  }

  // -- the model: what the server last told us ----------------------------------------------
  var model = {
    epoch: null, seq: -1, feed: null, feedReason: null, heardAge: null, heardAt: 0,
    floor: null, display: null, rooms: {}, contactAt: null, contactWall: null, version: null
  };
  var link = { socketLive: false, pollOkAt: null, restored: false, unpaired: false, everLive: false };
  var stats = { messages: 0, applyMs: 0, maxApplyMs: 0, relayouts: 0, resyncs: 0, reloads: 0, hyphensPending: 0, resizes: 0 };

  function contact(msg) {
    model.contactAt = perf();
    if (msg && msg.server_time) serverClock(msg.server_time);
    model.contactWall = wallNow();
  }

  function applyRoom(room, at) {
    if (!room || typeof room.id !== "string") return;
    room._at = at;
    model.rooms[room.id] = room;
  }

  function applyMeta(msg) {
    if (msg.feed) model.feed = msg.feed;
    model.feedReason = msg.feed_reason || null;
    if (msg.heard_age_s !== undefined) { model.heardAge = msg.heard_age_s; model.heardAt = perf(); }
    if (msg.epoch) model.epoch = msg.epoch;
    if (typeof msg.seq === "number") model.seq = msg.seq;
  }

  function applySnapshot(msg) {
    var at = perf();
    model.rooms = {};
    Object.keys(msg.rooms || {}).forEach(function (id) { applyRoom(msg.rooms[id], at); });
    if (msg.floor) model.floor = msg.floor;
    if (msg.display) model.display = msg.display;
    applyMeta(msg);
    if (roomIdsKey() !== Object.keys(tiles).sort().join(",")) layoutMap(true);
    renderAll();
  }

  function roomIdsKey() { return visibleRooms().map(function (r) { return r.id; }).sort().join(","); }

  // -- messages ----------------------------------------------------------------------------
  function onMessage(data, via) {
    var t0 = perf();
    var msg;
    try { msg = typeof data === "string" ? JSON.parse(data) : data; } catch (e) { return; }
    if (!msg || typeof msg !== "object") return;
    stats.messages++;
    var kind = msg.type;
    // Other scripts on the page (announcements, other floors) read the same messages.
    try { doc.dispatchEvent(new CustomEvent("signage:message", { detail: msg })); } catch (e) { /* a listener's fault */ }
    if (kind === "reload") { safeReload("command"); return; }
    if (kind === "identify") { identify(); return; }
    if (kind !== "snapshot" && kind !== "update" && kind !== "heartbeat") return;
    contact(msg);
    if (via === "poll") link.pollOkAt = perf();
    if (kind === "snapshot") {
      applySnapshot(msg);
      if (via === "socket") {
        link.socketLive = true;
        link.everLive = true;
        failures = 0;
        stopPolling();
        sendHeartbeat();
      }
      link.restored = false;
      checkConfig(msg);
    } else if (kind === "update") {
      if (msg.epoch !== model.epoch) { resync(); }
      else if (msg.seq <= model.seq) { /* already have it */ }
      else {
        var gap = msg.seq !== model.seq + 1;
        var at = perf();
        var changed = Object.keys(msg.rooms || {});
        var hidden = hiddenSet();
        var added = changed.some(function (id) { return !hidden[id] && (planMap ? !model.rooms[id] : !tiles[id]); });
        changed.forEach(function (id) { applyRoom(msg.rooms[id], at); });
        var feedChanged = msg.feed !== model.feed;
        applyMeta(msg);
        if (added) { layoutMap(true); renderAll(); }
        else {
          changed.forEach(function (id) { renderTile(id); });
          changed.forEach(renderShape);
          renderList();
          if (feedChanged) renderFreshness();
        }
        if (gap) resync();
      }
    } else {
      var missed = msg.epoch !== model.epoch || msg.seq > model.seq;
      var prevFeed = model.feed, prevReason = model.feedReason;
      model.feed = msg.feed || model.feed;
      model.feedReason = msg.feed_reason || null;
      if (msg.heard_age_s !== undefined) { model.heardAge = msg.heard_age_s; model.heardAt = perf(); }
      if (missed) resync();
      if (prevFeed !== model.feed) renderAll();
      else if (prevReason !== model.feedReason) renderList();  // "waiting" became "unreachable"
    }
    if (msg.version) checkVersion(msg.version);
    renderFreshness();
    scheduleSave();
    var spent = perf() - t0;
    stats.applyMs = spent;
    if (spent > stats.maxApplyMs) stats.maxApplyMs = spent;
  }

  function stableJSON(v) {
    if (Array.isArray(v)) return "[" + v.map(stableJSON).join(",") + "]";
    if (v && typeof v === "object") {
      return "{" + Object.keys(v).sort().map(function (k) { return JSON.stringify(k) + ":" + stableJSON(v[k]); }).join(",") + "}";
    }
    return JSON.stringify(v);
  }

  function checkConfig(msg) {
    // The page was rendered with the display's settings: when they change, render it again.
    if (isPhone || !msg.display) return;
    if (stableJSON(msg.display.settings || {}) !== stableJSON(settings) ||
        (config.display_name && msg.display.name !== config.display_name)) {
      safeReload("settings");
    }
  }

  function checkVersion(version) {
    if (config.version && version !== config.version) safeReload("version");
  }

  // -- the socket ----------------------------------------------------------------------------
  var ws = null, failures = 0, reconnectTimer = null, lastMsgAt = 0, lastResync = -1e9;

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (link.unpaired || ws) return;
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + config.socket;
    var sock;
    try { sock = new WebSocket(url); } catch (e) { onClosed(0); return; }
    ws = sock;
    lastMsgAt = perf();
    sock.onopen = function () { lastMsgAt = perf(); };
    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      lastMsgAt = perf();
      onMessage(ev.data, "socket");
    };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      onClosed(ev.code);
    };
  }

  function drop() {
    // A socket that stopped talking (half-open link, stuck handshake): abandon it and go on.
    var sock = ws;
    if (!sock) return;
    ws = null;
    sock.onopen = sock.onmessage = sock.onclose = null;
    try { sock.close(); } catch (e) { /* already gone */ }
    onClosed(0);
  }

  function onClosed(code) {
    link.socketLive = false;
    // 4410: a console preview ran out; like a revoked credential it stops (but no pairing).
    if (code === 4401 || code === 4410) { unpair(); return; }
    failures++;
    var delay;
    if (code === 1012) delay = 300 + Math.random() * 2700;
    else if (code === 1008 || code === 1009) delay = 5000 + Math.random() * 5000;
    else {
      var cap = Math.min(5000, 250 * Math.pow(2, failures));
      delay = cap / 2 + Math.random() * cap / 2;
    }
    if (failures >= 2) startPolling();
    reconnectTimer = setTimeout(connect, delay);
    renderAll();
  }

  function send(obj) {
    if (ws && ws.readyState === 1) {
      try { ws.send(JSON.stringify(obj)); return true; } catch (e) { return false; }
    }
    return false;
  }

  function resync() {
    if (perf() - lastResync < 1000) return;
    lastResync = perf();
    stats.resyncs++;
    if (!send({ type: "resync" }) && polling) { etag = null; }
  }

  var lastHeartbeatSent = -1e9;
  function sendHeartbeat() {
    lastHeartbeatSent = perf();
    var msg = {
      type: "heartbeat",
      uptime_s: Math.round((perf() - startedAt) / 1000),
      screen: screen.width + "x" + screen.height,
      viewport: innerWidth + "x" + innerHeight,
      version: config.version || "",
      feed: root.dataset.feed,
      night: root.dataset.night === "on"
    };
    if (performance.memory) msg.heap = Math.round(performance.memory.usedJSHeapSize / 104857.6) / 10;
    send(msg);
  }

  // -- the HTTP fallback ---------------------------------------------------------------------
  var polling = false, pollTimer = null, etag = null;
  function startPolling() {
    if (polling || link.unpaired) return;
    polling = true;
    poll();
  }
  function stopPolling() {
    polling = false;
    clearTimeout(pollTimer);
    link.pollOkAt = null;
  }
  function poll() {
    clearTimeout(pollTimer);
    var headers = etag ? { "If-None-Match": etag } : {};
    fetch(config.state, { headers: headers, cache: "no-store", credentials: "omit" })
      .then(function (res) {
        if (res.status === 304) { link.pollOkAt = perf(); contact(null); return null; }
        if (res.status === 404 || res.status === 410) { unpair(); return null; }
        if (!res.ok) throw new Error("status " + res.status);
        etag = res.headers.get("ETag");
        return res.json();
      })
      .then(function (msg) { if (msg) onMessage(msg, "poll"); })
      .catch(function () { /* counted as no contact; keep trying */ })
      .then(function () {
        renderFreshness();
        if (polling) pollTimer = setTimeout(poll, POLL_S * 1000 * (0.8 + Math.random() * 0.4));
      });
  }

  // -- what the screen shows -----------------------------------------------------------------
  function linkUp() {
    if (link.unpaired || link.restored) return false;
    if (link.socketLive) return true;
    return link.pollOkAt !== null && perf() - link.pollOkAt < POLL_S * 2500;
  }
  function sinceContactS() { return model.contactAt === null ? Infinity : (perf() - model.contactAt) / 1000; }
  function noContact() { return sinceContactS() >= NO_CONTACT_S; }

  function pageFeed() {
    if (!linkUp() || model.feed === "stale" || noContact() || !model.feed) return "stale";
    if (model.feed === "polling" || (!link.socketLive && !isPhone)) return "polling";
    return "live";
  }

  function heardWall() {
    if (model.heardAge === null || model.heardAge === undefined || model.contactWall === null) return null;
    return wallNow() - model.heardAge * 1000 - (perf() - model.heardAt);
  }

  function hiddenSet() {
    var h = {};
    (settings.hidden_rooms || []).forEach(function (id) { h[id] = true; });
    return h;
  }
  function visibleRooms() {
    var hidden = hiddenSet();
    return Object.keys(model.rooms).filter(function (id) { return !hidden[id]; })
      .map(function (id) { return model.rooms[id]; });
  }

  function view(room) {
    if (noContact()) {
      var last = room.state === "free" || room.state === "occupied" ? room.state : room.last_known;
      return { state: "unknown", reason: "no_contact", last: last, at: model.contactWall };
    }
    var state = STATES.indexOf(room.state) >= 0 ? room.state : "unknown";
    if (state !== "unknown") return { state: state, reason: null };
    var reason = room.reason || "no_data";
    return { state: state, reason: reason, last: reason === "stale" ? room.last_known : null, at: heardWall() };
  }

  function stateLabel(v) {
    return v.state === "unknown" ? t("reason_" + v.reason) : t("state_" + v.state);
  }

  // -- bookings beside the sensors (docs/bookings.md) -------------------------------------------
  // The rule of signage/core/rooms.py (booking_status), applied with this display's settings:
  // the sensors lead, a booking only says until when, since when, or that nobody turned up.
  // The room dict carries times only (bookings, next_booking, next_booking_end), never a title.
  var BOOKING = {
    margin: num(settings.booking_margin_min, 10) * 60000,
    grace: num(settings.booking_grace_min, 10) * 60000,
    offerEmpty: settings.offer_booked_empty === true,
    freeFor: num(settings.free_for_min, 0) * 60000
  };

  function bookingStatus(room, v) {
    v = v || view(room);
    var free = v.state === "free";
    // Unknown to the sensors (or to this page): no booking words either.
    if ((!free && v.state !== "occupied") || !room.bookings) return { kind: "none", offered: free };
    if (room.bookings !== "ok") return { kind: "unavailable", offered: free };
    var now = wallNow();
    var start = room.next_booking ? Date.parse(room.next_booking) : NaN;
    var end = room.next_booking_end ? Date.parse(room.next_booking_end) : NaN;
    // A booking that has just ended: the server names the next one at its next tick.
    if (isFinite(end) && end <= now) return { kind: "none", offered: free };
    var current = isFinite(start) && start <= now;
    if (!free) return { kind: current ? "in_use_booked" : "in_use_unbooked", at: start };
    if (!isFinite(start)) return { kind: "free", offered: true, freeFor: Infinity };
    if (current) {
      if (now - start < BOOKING.grace) return { kind: "booked_soon", at: start, offered: false, freeFor: 0 };
      // Nobody here since the booking began, or since the room emptied if that was later.
      var since = room.since_s === null || room.since_s === undefined ? null : room.since_s + (perf() - room._at) / 1000;
      var emptied = since === null ? start : now - since * 1000;
      return { kind: "booked_empty", at: Math.max(start, emptied), offered: BOOKING.offerEmpty, freeFor: 0 };
    }
    if (start - now <= BOOKING.margin) return { kind: "booked_soon", at: start, offered: false, freeFor: start - now };
    return { kind: "free_until", at: start, offered: true, freeFor: start - now };
  }

  function sameLocalDay(a, b) { return localParts(a).day === localParts(b).day; }

  // The words for a room: its booking's when a calendar speaks, else the sensors' alone.
  function roomWords(room, v) {
    v = v || view(room);
    var b = bookingStatus(room, v);
    switch (b.kind) {
      case "free_until":
        return sameLocalDay(b.at, wallNow()) ? t("booking_free_until", { time: fmtTime(b.at) }) : t("state_free");
      case "booked_soon": return t("booking_soon", { time: fmtTime(b.at) });
      case "booked_empty": return t("booking_empty", { time: fmtTime(b.at) });
      case "in_use_unbooked": return t("booking_unbooked");
      case "unavailable": return t("booking_unavailable", { state: stateLabel(v) });
      default: return stateLabel(v);
    }
  }

  // data-booking on tiles, plan shapes, list items and the card: how the styles tell them apart.
  var BOOKING_ATTR = { booked_soon: "soon", booked_empty: "empty", in_use_unbooked: "unbooked", unavailable: "unavailable" };
  function markBooking(el, room, v) {
    if (!el) return;
    var kind = room ? BOOKING_ATTR[bookingStatus(room, v).kind] : null;
    if (!kind) { if (el.hasAttribute("data-booking")) el.removeAttribute("data-booking"); }
    else if (el.getAttribute("data-booking") !== kind) el.setAttribute("data-booking", kind);
  }

  // Whether a visitor may be sent to the room: free to the sensors, not booked within the
  // margin, and not a booked room nobody turned up to (unless this display offers those).
  function offerable(room) { return !!room && bookingStatus(room).offered; }

  // "Free for at least N minutes" first: 0 known long enough, 1 not known (no calendar),
  // 2 known to be booked sooner.
  function freeTier(room) {
    if (BOOKING.freeFor <= 0) return 0;
    var b = bookingStatus(room);
    if (b.freeFor === undefined) return 1;
    return b.freeFor >= BOOKING.freeFor ? 0 : 2;
  }

  // The whole page's word when no calendar can be read: the rooms then speak for their
  // sensors only, and the screen says why the times are gone.
  function bookingsUnavailable() {
    var withCalendar = 0, unavailable = 0;
    Object.keys(model.rooms).forEach(function (id) {
      var r = model.rooms[id];
      if (!r.bookings) return;
      withCalendar++;
      if (r.bookings !== "ok") unavailable++;
    });
    return withCalendar > 0 && unavailable === withCalendar && !noContact();
  }

  var bookingNote = null, bookingsKey = "";
  function renderBookingNote() {
    var off = bookingsUnavailable();
    if (!bookingNote && off) {
      bookingNote = doc.createElement("p");
      bookingNote.id = "bookings-note";
      bookingNote.className = "bookings-note";
      bookingNote.setAttribute("role", "status");
      var anchor = $("free-count");
      if (anchor && anchor.parentNode) anchor.parentNode.insertBefore(bookingNote, anchor.nextSibling);
      else if ($("free-box")) $("free-box").insertBefore(bookingNote, $("free-box").firstChild);
    }
    if (!bookingNote) return;
    if (bookingNote.textContent !== t("bookings_unavailable")) bookingNote.textContent = t("bookings_unavailable");
    if (bookingNote.hidden === off) bookingNote.hidden = !off;
  }

  // Booking words change with the clock alone (a margin reached, a grace period over): look
  // each second, and render again only when some room's words would change.
  function tickBookings() {
    var key = Object.keys(model.rooms).map(function (id) {
      var r = model.rooms[id];
      if (!r.bookings) return "";
      var b = bookingStatus(r);
      var minute = b.at ? Math.floor(b.at / 60000) : "";
      return id + ":" + b.kind + ":" + minute + ":" + (b.kind === "free_until" && sameLocalDay(b.at, wallNow()));
    }).join("|");
    if (key === bookingsKey) return;
    bookingsKey = key;
    renderAll();
  }

  // -- the floor map -------------------------------------------------------------------------
  var map = $("map");
  var tiles = {};
  var plan = null;

  function groupOf(fn) { return FUNCTION_GROUP[fn] || "other"; }
  function weight(room) { var c = room.capacity || 1; return Math.sqrt(Math.max(c, 1)) + 0.6; }
  function need(room) {
    var n = Array.from(room.name || "").length;  // code points, as Python's len()
    return (0.6 * NAME_FS * n) * (1.2 * NAME_FS) * 2.4 + (4 * NAME_FS) * (4 * NAME_FS);
  }
  function worst(row, side) {
    var total = 0, i;
    for (i = 0; i < row.length; i++) total += row[i];
    var biggest = Math.max.apply(null, row), smallest = Math.min.apply(null, row);
    return Math.max(biggest * side * side / (total * total), total * total / (side * side * smallest));
  }
  function squarify(values, rect) {
    var total = 0, i;
    for (i = 0; i < values.length; i++) total += values[i];
    if (total <= 0 || rect.w <= 0 || rect.h <= 0) return values.map(function () { return { x: rect.x, y: rect.y, w: 0, h: 0 }; });
    var scale = rect.w * rect.h / total;
    var areas = values.map(function (v) { return v * scale; });
    var out = [], x = rect.x, y = rect.y, w = rect.w, h = rect.h, row = [];
    i = 0;
    while (i < areas.length || row.length) {
      var side = Math.min(w, h);
      if (i < areas.length && (!row.length || worst(row.concat([areas[i]]), side) <= worst(row, side))) {
        row.push(areas[i]);
        i++;
        continue;
      }
      var rowTotal = 0, j;
      for (j = 0; j < row.length; j++) rowTotal += row[j];
      if (w >= h) {
        var colW = rowTotal / h, cy = y;
        for (j = 0; j < row.length; j++) { var ch = row[j] / colW; out.push({ x: x, y: cy, w: colW, h: ch }); cy += ch; }
        x += colW; w -= colW;
      } else {
        var rowH = rowTotal / w, cx = x;
        for (j = 0; j < row.length; j++) { var cw = row[j] / rowH; out.push({ x: cx, y: y, w: cw, h: rowH }); cx += cw; }
        y += rowH; h -= rowH;
      }
      row = [];
    }
    return out;
  }
  function r1(v) { return Math.floor(v * 10 + 0.5) / 10; }
  function cmp(a, b) { return a < b ? -1 : a > b ? 1 : 0; }

  function layout(rooms, width, height) {
    var needTotal = 0, weightTotal = 0, value = {};
    rooms.forEach(function (room) { needTotal += need(room); weightTotal += weight(room); });
    var spare = Math.max(0, width * height * 0.8 - needTotal);
    rooms.forEach(function (room) { value[room.id] = need(room) + spare * weight(room) / weightTotal; });
    var groups = {};
    rooms.forEach(function (room) { var g = groupOf(room.function); (groups[g] = groups[g] || []).push(room); });
    var ordered = [];
    GROUP_ORDER.forEach(function (name, index) {
      var members = groups[name];
      if (!members) return;
      members = members.slice().sort(function (a, b) {
        return (value[b.id] - value[a.id]) || cmp(a.name || "", b.name || "") || cmp(a.id, b.id);
      });
      var total = 0;
      members.forEach(function (r) { total += value[r.id]; });
      ordered.push({ total: total, index: index, name: name, members: members });
    });
    ordered.sort(function (a, b) { return (b.total - a.total) || (a.index - b.index); });
    var half = ZONE_GAP / 2;
    var zoneRects = squarify(ordered.map(function (g) { return g.total; }),
      { x: -half, y: -half, w: width + ZONE_GAP, h: height + ZONE_GAP });
    var zones = [], out = [];
    ordered.forEach(function (grp, k) {
      var zr = zoneRects[k];
      var zone = { x: zr.x + half, y: zr.y + half, w: zr.w - ZONE_GAP, h: zr.h - ZONE_GAP };
      zones.push({ group: grp.name, x: r1(zone.x), y: r1(zone.y), w: r1(zone.w), h: r1(zone.h) });
      var g = ROOM_GAP / 2;
      var inner = { x: zone.x, y: zone.y + LABEL_BAND, w: zone.w, h: zone.h - LABEL_BAND };
      var padded = { x: inner.x + 10 - g, y: inner.y - g, w: inner.w - 20 + ROOM_GAP, h: inner.h - 10 + ROOM_GAP };
      var cells = squarify(grp.members.map(function (r) { return value[r.id]; }), padded);
      grp.members.forEach(function (room, n) {
        var c = cells[n];
        out.push({
          id: room.id, group: grp.name,
          x: r1(c.x + g), y: r1(c.y + g), w: r1(Math.max(0, c.w - ROOM_GAP)), h: r1(Math.max(0, c.h - ROOM_GAP))
        });
      });
    });
    return { width: width, height: height, zones: zones, tiles: out };
  }

  function svgEl(tag, attrs, parent) {
    var node = doc.createElementNS(SVGNS, tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) parent.appendChild(node);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function bindTile(g) {
    var ref = {
      g: g, id: g.getAttribute("data-space-id"),
      name: g.querySelector(".tile-name"), icon: g.querySelector(".tile-icon"),
      label: g.querySelector(".tile-state"), note: g.querySelector(".tile-note"),
      seats: g.querySelector(".tile-seats"),
      state: g.getAttribute("data-state"), labelText: null, noteText: "", number: 0
    };
    if (!ref.seats) ref.seats = svgEl("text", { "class": "tile-seats" }, g);
    var bg = g.querySelector(".tile-bg");
    ref.x = num(bg.getAttribute("x"), 0);
    ref.y = num(bg.getAttribute("y"), 0);
    ref.w = num(bg.getAttribute("width"), 0);
    ref.h = num(bg.getAttribute("height"), 0);
    ref.labelText = ref.label.textContent;
    tiles[ref.id] = ref;
    return ref;
  }

  // -- text that fits: wrapped names at a readable size, else a number and a legend entry ------
  // The smallest name is 20 CSS px per 1080 px of the screen's short side (14 px on a phone).
  // Break points come from the server (soft hyphens per language, signage/core/floormap.py);
  // widths from a canvas, which measures without forcing the page's layout.
  var hyph = config.hyphens || {};
  var hyphWanted = {}, hyphTimer = null;
  var measureCtx = null, fontFamily = null, widthCache = {};
  var tileScale = 1;
  var numbersBox = $("map-numbers");

  function minNamePx() { return isPhone ? 14 : 20 * Math.min(innerWidth, innerHeight) / 1080; }
  // A state's icon is never drawn smaller than this: 24 px per 1080 px (18 px on a phone).
  function minIconPx() { return isPhone ? 18 : 24 * Math.min(innerWidth, innerHeight) / 1080; }
  // No word anywhere smaller than this: 16 px per 1080 px, never under 12 px (notes and seats
  // shrank to 0.7 of the names' floor, 9 px on a 720p screen).
  function minTextPx() { return isPhone ? 12 : Math.max(12, 16 * Math.min(innerWidth, innerHeight) / 1080); }
  function textWidth(text, weight, fs) {
    if (!measureCtx) {
      measureCtx = doc.createElement("canvas").getContext("2d");
      fontFamily = getComputedStyle(doc.body).fontFamily || "sans-serif";
    }
    var key = weight + "|" + text;
    var w = widthCache[key];
    if (w === undefined) {
      measureCtx.font = weight + " 100px " + fontFamily;
      w = widthCache[key] = measureCtx.measureText(text).width;
    }
    return w * fs / 100 * 1.03;  // a little slack for the renderer's hinting
  }
  function breakable(name) {
    if (hyph[name] === undefined && config.hyphens_url && name) {
      hyphWanted[name] = true;
      if (!hyphTimer) hyphTimer = setTimeout(fetchHyphens, 0);
    }
    return hyph[name] || name;
  }
  function fetchHyphens() {
    hyphTimer = null;
    var names = Object.keys(hyphWanted).slice(0, 200);
    hyphWanted = {};
    if (!names.length) return;
    stats.hyphensPending++;
    fetch(config.hyphens_url, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ names: names })
    }).then(function (r) { return r.ok ? r.json() : {}; }).then(function (body) {
      var got = (body && body.hyphens) || {};
      names.forEach(function (n) { hyph[n] = typeof got[n] === "string" ? got[n] : n; });
      fitTiles();
      scheduleShapes();
      renderList();
    }).catch(function () {
      names.forEach(function (n) { hyph[n] = n; });
    }).then(function () { stats.hyphensPending--; });
  }
  // Up to maxLines lines no wider than maxW, breaking at spaces, after hyphens and at soft
  // hyphens (which then show as "-"); null if a piece alone is too wide or lines run out.
  function wrap(text, weight, fs, maxW, maxLines, force) {
    var pieces = [], cur = "", i, ch;
    var chars = Array.from(text);
    for (i = 0; i < chars.length; i++) {
      ch = chars[i];
      if (ch === "\u00ad") { pieces.push({ t: cur, brk: "soft" }); cur = ""; }
      else if (ch === " ") { if (cur) pieces.push({ t: cur, brk: "space" }); cur = ""; }
      else if ((ch === "-" || ch === "/") && cur) { pieces.push({ t: cur + ch, brk: "hard" }); cur = ""; }
      else cur += ch;
    }
    pieces.push({ t: cur, brk: "end" });
    var lines = [], line = "", prev = null;
    for (i = 0; i < pieces.length; i++) {
      var p = pieces[i];
      var tail = p.brk === "soft" ? "-" : "";
      var candidate = line + (line && prev === "space" ? " " : "") + p.t;
      if (line && textWidth(candidate + tail, weight, fs) <= maxW) line = candidate;
      else {
        if (line) {
          lines.push(line + (prev === "soft" ? "-" : prev === "space" ? " " : ""));
          if (lines.length >= maxLines) return null;
        }
        line = p.t;
        // A piece alone too wide: no fit, or (forced) cut where it must, with a hyphen.
        while (textWidth(line + tail, weight, fs) > maxW) {
          if (!force) return null;
          var cut = Array.from(line), k = cut.length - 1;
          while (k > 1 && textWidth(cut.slice(0, k).join("") + "-", weight, fs) > maxW) k--;
          if (k <= 1) return null;
          lines.push(cut.slice(0, k).join("") + "-");
          if (lines.length >= maxLines) return null;
          line = cut.slice(k).join("");
        }
      }
      prev = p.brk;
    }
    if (line) lines.push(line);
    return lines.length <= maxLines ? lines : null;
  }
  function setLines(node, lines, x, y, fs, lead) {
    clear(node);
    node.setAttribute("font-size", r1(fs));
    node.setAttribute("x", r1(x));
    node.setAttribute("y", r1(y));
    lines.forEach(function (text, i) {
      var span = svgEl("tspan", { x: r1(x), y: r1(y + i * fs * lead) }, node);
      span.textContent = text;
    });
  }

  function measureTileScale() {
    var box = $("map-box");
    if (!box || !plan || !plan.width) return;
    var bw = box.clientWidth, bh = box.clientHeight;
    if (bw && bh) tileScale = Math.min(bw / plan.width, bh / plan.height);
  }

  // Lays out one tile's words; returns false when the name needs its legend entry.
  function fitTile(ref) {
    var room = model.rooms[ref.id];
    if (!room) return true;
    var minU = minNamePx() / tileScale, minT = minTextPx() / tileScale;
    var w = ref.w, h = ref.h, x0 = ref.x, y0 = ref.y;
    var pad = Math.min(18, Math.max(6, Math.min(w, h) * 0.09));
    var inner = w - 2 * pad, bottom = y0 + h - pad * 0.6;
    var name = room.name || "", broken = breakable(name), label = ref.labelText || "";
    var top = Math.max(minU, Math.min(58, h * 0.3)), fs = top, best = null, nameOnly = null;
    var force = false, stackOK = false;
    for (var guard = 0; guard < 80; guard++) {
      var lines = wrap(broken, 750, fs, inner, 3, force);
      if (lines) {
        var nameY = y0 + pad + fs * 0.92, lastY = nameY + (lines.length - 1) * fs * 1.1;
        var sFs = Math.max(minT, Math.min(fs * 0.7, 30));
        var icon = Math.max(sFs * 1.15, minIconPx() * 1.2 / tileScale);
        var st = wrap(label, 650, sFs, inner - icon * 1.3, 2), stacked = false;
        // The icon is centred on the state's first line, and clear of the name above it.
        var stateY = lastY + fs * 0.28 + Math.max(sFs * 1.2, icon / 2 + sFs * 0.35 + 2);
        var iconY = stateY - sFs * 0.35 - icon / 2;
        if (!st && label && stackOK) {
          // Too narrow for the icon beside the word ("Belegt" in a small tile lost both): the
          // word goes under the icon, across the tile's width.
          st = wrap(label, 650, sFs, inner, 3);  // "No / recent / data" at the 12 px floor
          stacked = !!st;
          iconY = lastY + fs * 0.28 + 2;
          stateY = iconY + icon + sFs * 1.05;
        }
        var stBottom = st ? Math.max(stateY + (st.length - 1) * sFs * 1.15 + sFs * 0.28, iconY + icon) : 0;
        if (st && stBottom <= bottom) {
          best = { fs: fs, lines: lines, nameY: nameY, sFs: sFs, st: st, stateY: stateY, icon: icon,
                   iconY: iconY, labelX: stacked ? 0 : icon * 1.3, bottom: stBottom };
          break;
        }
        if (!nameOnly && lastY + fs * 0.28 <= bottom) nameOnly = { fs: fs, lines: lines, nameY: nameY };
      }
      if (fs <= minU) {
        if (force || nameOnly) {
          // The name fits but not the state beside its icon: once more with the word under
          // the icon, before the tile shows a name alone.
          if (stackOK || !label || best) break;
          stackOK = true;
          fs = top;
          continue;
        }
        // Nothing fits at the break points: once more, cutting words where they must be
        // cut, before the name goes to the legend.
        force = true;
        fs = top;
        continue;
      }
      fs = Math.max(minU, fs * 0.9);
    }
    var fits = !!(best || nameOnly);
    var chosen = best || nameOnly;
    if (!chosen) {
      // A number in the tile, the name in the legend under the map.
      var digits = String(ref.number || "?");
      var nFs = Math.max(Math.min(h - 2 * pad, 58, inner / (0.7 * digits.length)), Math.min(minU, h * 0.7));
      chosen = { fs: nFs, lines: [digits], nameY: y0 + pad + nFs * 0.92 };
    }
    setLines(ref.name, chosen.lines, x0 + pad, chosen.nameY, chosen.fs, 1.1);
    ref.g.toggleAttribute("data-numbered", !fits);
    var used = chosen.nameY + (chosen.lines.length - 1) * chosen.fs * 1.1 + chosen.fs * 0.28;
    if (best) {
      setLines(ref.label, best.st, x0 + pad + best.labelX, best.stateY, best.sFs, 1.15);
      ref.icon.setAttribute("x", r1(x0 + pad));
      ref.icon.setAttribute("y", r1(best.iconY));
      ref.icon.setAttribute("width", r1(best.icon));
      ref.icon.setAttribute("height", r1(best.icon));
      ref.icon.removeAttribute("display");
      ref.label.removeAttribute("display");
      used = best.bottom;
    } else {
      ref.label.setAttribute("display", "none");
      ref.icon.setAttribute("display", "none");
    }
    // "Last known: Free, 07:21" under the state, and the seats at the foot, where they fit.
    var small = Math.max(minT, (best ? best.sFs : chosen.fs) * 0.75);
    var note = best && ref.noteText ? wrap(ref.noteText, 500, small, inner, 2) : null;
    var noteY = used + small * 1.1;
    if (note && noteY + (note.length - 1) * small * 1.15 + small * 0.28 <= bottom) {
      setLines(ref.note, note, x0 + pad, noteY, small, 1.15);
      used = noteY + (note.length - 1) * small * 1.15 + small * 0.28;
      ref.note.removeAttribute("display");
    } else { clear(ref.note); ref.note.setAttribute("display", "none"); }
    var seats = best ? seatsLabel(room.capacity) : "";
    var seatsY = y0 + h - pad;
    if (seats && seatsY - small * 0.95 > used + small * 0.3 && textWidth(seats, 600, small) <= inner) {
      setLines(ref.seats, [seats], x0 + pad, seatsY, small, 1);
      ref.seats.removeAttribute("display");
    } else { clear(ref.seats); ref.seats.setAttribute("display", "none"); }
    return fits;
  }

  function fitZones() {
    var labels = map ? map.querySelectorAll("#map-zones .zone") : [];
    var minU = minNamePx() / tileScale, minT = minTextPx() / tileScale;
    for (var i = 0; i < labels.length; i++) {
      var bg = labels[i].querySelector(".zone-bg"), text = labels[i].querySelector(".zone-label");
      var room = num(bg.getAttribute("width"), 0) - 28;
      var word = text.textContent.toUpperCase();
      // Uppercase with letter spacing: measured as such, then shrunk to the zone, or dropped.
      var fs = Math.max(minT, Math.min(24, Math.max(19, minU * 0.75)));  // in the band above the rooms
      var wide = textWidth(word, 700, fs) * 1.12;
      if (wide > room) fs = fs * room / wide;
      text.style.fontSize = r1(fs) + "px";
      text.setAttribute("y", r1(num(bg.getAttribute("y"), 0) + 6 + fs * 0.95));
      // Too long for its zone at the smallest size a word may have: not shown (the rooms say it).
      if (fs < minT - 0.01) text.setAttribute("display", "none"); else text.removeAttribute("display");
    }
  }

  // Every tile's words; rooms whose names cannot fit get a number and a legend entry. The
  // legend takes height from the map, so a change in it measures the map once more.
  function fitTiles(fresh) {
    if (!map || planMap) return;
    measureTileScale();
    var ids = plan && plan.tiles ? plan.tiles.map(function (tl) { return tl.id; }) : Object.keys(tiles);
    var n = 0;
    ids.forEach(function (id) { if (tiles[id]) tiles[id].number = ++n; });
    var numbered = [];
    ids.forEach(function (id) { if (tiles[id] && !fitTile(tiles[id])) numbered.push(id); });
    var wasShown = numbersBox && !numbersBox.hidden;
    renderNumbers(numbered, fresh);
    if (numbersBox && wasShown !== !numbersBox.hidden) {
      var before = tileScale;
      measureTileScale();
      if (Math.abs(before - tileScale) > 1e-3) {
        numbered = [];
        ids.forEach(function (id) { if (tiles[id] && !fitTile(tiles[id])) numbered.push(id); });
        renderNumbers(numbered, false);
      }
    }
    fitZones();
  }
  // Shown when a name needs it; hidden again only with a new layout (fresh), so that the
  // map's size does not swing back and forth with it.
  function renderNumbers(ids, fresh) {
    if (!numbersBox) return;
    var key = ids.join(",");
    if (numbersBox.getAttribute("data-key") !== key) {
      numbersBox.setAttribute("data-key", key);
      clear(numbersBox);
      ids.forEach(function (id) {
        var li = doc.createElement("li");
        li.className = "map-number";
        li.setAttribute("data-legend-for", id);
        ["map-number-n", "map-number-name", "map-number-state"].forEach(function (cls) {
          var span = doc.createElement("span");
          span.className = cls;
          li.appendChild(span);
        });
        numbersBox.appendChild(li);
      });
    }
    if (ids.length) numbersBox.hidden = false;
    else if (fresh) numbersBox.hidden = true;
    renderNumberStates();
  }
  function renderNumberStates() {
    if (!numbersBox) return;
    var items = numbersBox.children;
    for (var i = 0; i < items.length; i++) {
      var id = items[i].getAttribute("data-legend-for"), ref = tiles[id] || shapes[id], room = model.rooms[id];
      if (!ref || !room) continue;
      var parts = items[i].children, v = view(room);
      items[i].setAttribute("data-state", v.state);
      if (parts[0].textContent !== String(ref.number)) parts[0].textContent = String(ref.number);
      if (parts[1].textContent !== (room.name || "")) parts[1].textContent = room.name || "";
      var label = roomWords(room, v);
      if (parts[2].textContent !== label) parts[2].textContent = label;
      markBooking(items[i], room, v);
    }
  }

  // Measuring the list forces a layout: do it once per frame, after the state is on the page.
  var fitList_ = false, fitFrame = 0;
  function scheduleFit() {
    fitList_ = true;
    if (!fitFrame) fitFrame = requestAnimationFrame(runFits);
  }
  function runFits() {
    fitFrame = 0;
    if (fitList_) { fitList_ = false; fitList(); }
  }

  function mapTarget() {
    var box = $("map-box");
    if (!box || isPhone) return plan ? { w: plan.width, h: plan.height } : { w: 1000, h: 1250 };
    var bw = box.clientWidth, bh = box.clientHeight;
    if (!bw || !bh) return null;
    var aspect = bw / bh;
    return aspect >= 1 ? { w: Math.round(1000 * aspect), h: 1000 } : { w: 1000, h: Math.round(1000 / aspect) };
  }

  function layoutMap(force) {
    if (!map) return;
    var target = mapTarget();
    if (!target) return;
    if (!force && plan && Math.abs(plan.width / plan.height - target.w / target.h) < 0.04 * (target.w / target.h)) return;
    stats.relayouts++;
    plan = layout(visibleRooms(), target.w, target.h);
    map.setAttribute("viewBox", "0 0 " + target.w + " " + target.h);
    var zonesG = $("map-zones"), roomsG = $("map-rooms");
    clear(zonesG);
    clear(roomsG);
    tiles = {};
    plan.zones.forEach(function (z) {
      var g = svgEl("g", { "class": "zone", "data-group": z.group }, zonesG);
      svgEl("rect", { "class": "zone-bg", x: z.x, y: z.y, width: z.w, height: z.h, rx: 16 }, g);
      svgEl("text", { "class": "zone-label", x: r1(z.x + 14), y: r1(z.y + 24) }, g).textContent = t("group_" + z.group);
    });
    var frag = doc.createDocumentFragment();
    plan.tiles.forEach(function (tile) {
      var room = model.rooms[tile.id];
      var name = room.name || "";
      var g = svgEl("g", { "class": "tile", "data-space-id": tile.id, "data-state": "unknown" }, frag);
      svgEl("rect", { "class": "tile-bg", x: tile.x, y: tile.y, width: tile.w, height: tile.h, rx: 10 }, g);
      svgEl("rect", { "class": "tile-pattern", x: tile.x, y: tile.y, width: tile.w, height: tile.h, rx: 10 }, g);
      svgEl("text", { "class": "tile-name" }, g).textContent = name;
      svgEl("use", { "class": "tile-icon", href: "#i-unknown" }, g);
      svgEl("text", { "class": "tile-state" }, g);
      svgEl("text", { "class": "tile-note" }, g);
      var ref = bindTile(g);
      ref.state = null;
    });
    roomsG.appendChild(frag);
    routeKey = null;  // the tapped room's mark goes on the new tiles
    Object.keys(tiles).forEach(function (id) { renderTile(id, true); });
    fitTiles(true);
  }

  function bindServerList() {
    if (!list) return;
    var nodes = list.querySelectorAll(".free-item");
    for (var i = 0; i < nodes.length; i++) {
      var item = bindItem(nodes[i]);
      item.nameText = item.name.textContent;
      items[nodes[i].getAttribute("data-space-id")] = item;
    }
  }

  function bindServerMap() {
    if (!map) return;
    var vb = (map.getAttribute("viewBox") || "").split(/\s+/);
    var nodes = map.querySelectorAll("#map-rooms .tile");
    if (!nodes.length) return;
    plan = { width: num(vb[2], 1500), height: num(vb[3], 1000) };
    for (var i = 0; i < nodes.length; i++) bindTile(nodes[i]);
  }

  function renderTile(id, noFit) {
    var ref = tiles[id];
    var room = model.rooms[id];
    if (!ref || !room) return;
    var v = view(room);
    if (ref.state !== v.state) {
      ref.state = v.state;
      ref.g.setAttribute("data-state", v.state);
      ref.icon.setAttribute("href", "#i-" + v.state);
    }
    markBooking(ref.g, room, v);
    var label = roomWords(room, v);
    var note = v.last && v.at ? t("last_known", { state: t("state_" + v.last), time: fmtTime(v.at) }) : "";
    var name = room.name || "";
    if (ref.labelText === label && ref.noteText === note && ref.nameText === name) return;
    ref.labelText = label;
    ref.noteText = note;
    ref.nameText = name;
    if (noFit) return;
    var was = ref.g.hasAttribute("data-numbered");
    if (fitTile(ref) === was) scheduleTiles();
    else renderNumberStates();
  }
  var tilesFrame = 0;
  function scheduleTiles() {
    if (!tilesFrame) tilesFrame = requestAnimationFrame(function () { tilesFrame = 0; fitTiles(); });
  }

  // -- the free list ---------------------------------------------------------------------------
  var list = $("free-list");
  var items = {};
  var listOrder = "", lastFitOrder = null;

  function listFilter() {
    var fns = settings.functions && settings.functions.length ? settings.functions : null;
    var minCap = settings.min_capacity || 0;
    return function (room) {
      if (fns && fns.indexOf(room.function) < 0) return false;
      return (room.capacity || 0) >= minCap;
    };
  }

  function kindLabel(fn) { return M["fn_" + fn] !== undefined ? M["fn_" + fn] : t("fn_other"); }
  function seatsLabel(n) { return n === 1 ? t("seats_one") : t("seats", { n: n || "–" }); }

  function freeFor(room) {
    if (room.since_s === null || room.since_s === undefined) return "";
    var s = room.since_s + (perf() - room._at) / 1000;
    if (s < 60) return t("free_just_now");
    // "Since 10:42", not "for 12 min": "free for" would promise how long it stays free. Past
    // half a day a clock time could be yesterday's, so it says how long instead.
    if (s >= 12 * 3600) return t("free_since_long", { h: 12 });
    return t("free_since", { time: fmtTime(wallNow() - s * 1000) });
  }

  // The list's second line: until when a calendar says, else since when the sensors say (a
  // calendar that cannot be read is said on the room's tile or shape and its card).
  function listWords(room) {
    var b = bookingStatus(room);
    if (b.kind === "booked_empty") return roomWords(room);
    if (b.kind === "free_until" && sameLocalDay(b.at, wallNow())) return roomWords(room);
    return freeFor(room);
  }

  function makeItem(id) {
    var li = doc.createElement("li");
    li.className = "free-item";
    li.setAttribute("data-space-id", id);
    li.setAttribute("data-state", "free");
    var icon = doc.createElementNS(SVGNS, "svg");
    icon.setAttribute("class", "free-icon");
    icon.setAttribute("aria-hidden", "true");
    icon.setAttribute("viewBox", "0 0 24 24");
    svgEl("use", { href: "#i-free" }, icon);
    li.appendChild(icon);
    ["free-name", "free-meta", "free-since", "free-distance"].forEach(function (cls) {
      var span = doc.createElement("span");
      span.className = cls;
      li.appendChild(span);
    });
    return li;
  }

  function bindItem(li) {
    var dist = li.querySelector(".free-distance");
    if (!dist) { dist = doc.createElement("span"); dist.className = "free-distance"; li.appendChild(dist); }
    return { li: li, name: li.querySelector(".free-name"), meta: li.querySelector(".free-meta"), since: li.querySelector(".free-since"), dist: dist, distText: "", sinceText: null, metaText: null, nameText: null };
  }

  function renderList() {
    if (!list) return;
    var keep = listFilter();
    var free = visibleRooms().filter(function (r) { return offerable(r) && keep(r); });
    free.sort(function (a, b) {
      return (freeTier(a) - freeTier(b)) ||
        (GROUP_ORDER.indexOf(groupOf(a.function)) - GROUP_ORDER.indexOf(groupOf(b.function))) ||
        cmp(a.name || "", b.name || "") || cmp(a.id, b.id);
    });
    // With a "you are here", nearest first by walking distance; rooms without a route after.
    var ranked = !!routesFrom();
    if (ranked) {
      var pos = {};
      free.forEach(function (r, i) { pos[r.id] = i; });
      free.sort(function (a, b) {
        var ra = routeOf(a.id), rb = routeOf(b.id);
        // Rooms free for the display's "at least N minutes" first, nearest first within.
        var tier = freeTier(a) - freeTier(b);
        if (tier) return tier;
        if (ra && rb) return (ra.units - rb.units) || (pos[a.id] - pos[b.id]);
        if (ra || rb) return ra ? -1 : 1;
        return pos[a.id] - pos[b.id];
      });
    }
    idleTarget = null;
    freeHere = free.length;
    for (var f = 0; f < free.length && ranked; f++) { if (routeOf(free[f].id)) { idleTarget = free[f].id; break; } }
    var seen = {}, reworded = false;
    free.forEach(function (room) {
      seen[room.id] = true;
      var item = items[room.id];
      if (!item) { item = items[room.id] = bindItem(makeItem(room.id)); }
      var name = room.name || "";
      var shown = breakable(name);  // soft hyphens: a long word breaks where it may
      if (item.nameText !== shown) { item.nameText = shown; item.name.textContent = shown; reworded = true; }
      var meta = kindLabel(room.function) + " · " + seatsLabel(room.capacity);
      if (item.metaText !== meta) { item.metaText = meta; item.meta.textContent = meta; reworded = true; }
      var since = listWords(room);
      if (item.sinceText !== since) { item.sinceText = since; item.since.textContent = since; }
      markBooking(item.li, room);
      // No walking distances while the page cannot vouch for the state (no routes then either).
      var dist = ranked && pageFeed() !== "stale" ? distanceText(routeOf(room.id)) : "";
      if (item.distText !== dist) { item.distText = dist; item.dist.textContent = dist; reworded = true; }
    });
    Object.keys(items).forEach(function (id) {
      if (!seen[id]) { if (items[id].li.parentNode) items[id].li.parentNode.removeChild(items[id].li); delete items[id]; }
    });
    var order = free.map(function (r) { return r.id; }).join(",");
    if (order !== listOrder || list.children.length !== free.length) {
      listOrder = order;
      free.forEach(function (room) { list.appendChild(items[room.id].li); });
    }
    var count = $("free-count");
    var hasData = Object.keys(model.rooms).length > 0;
    var unknownWhy = hasData && !free.length ? availabilityUnknown() : null;
    var countText = !hasData ? t("no_data") : unknownWhy ? "" : free.length === 1 ? t("free_count_one") : t("free_count", { n: free.length });
    if (count && count.textContent !== countText) count.textContent = countText;
    var empty = $("free-empty");
    if (empty) {
      empty.hidden = !hasData || free.length > 0;
      renderEmpty(empty, unknownWhy);
    }
    var note = $("free-note");
    var approx = ranked && WF.approximate && free.some(function (r) { return routeOf(r.id); });
    if (note && note.hidden === approx) { note.hidden = !approx; scheduleFit(null); }
    if (ranked !== list.classList.contains("ranked")) list.classList.toggle("ranked", ranked);
    // New words (a name's break points arriving, a distance) change the entries' heights.
    if (order !== lastFitOrder || reworded) { lastFitOrder = order; scheduleFit(null); }
    renderRoute();
  }

  // Why no room can be called free, when the truth is "we cannot tell" rather than "nothing
  // is free": the page lost the server, or the server lost Density. Null otherwise.
  function availabilityUnknown() {
    if (noContact()) return t("free_unknown_no_contact", { time: model.contactWall ? fmtTime(model.contactWall) : "–" });
    if (model.feed !== "stale") return null;
    var heard = heardWall();
    if (heard) return t("free_unknown_since", { time: fmtTime(heard) });
    return waitingForDensity() ? t("free_unknown_waiting") : t("free_unknown");
  }

  function waitingForDensity() {
    // The server's feed has not heard from Density yet and does not count it as down yet.
    return heardWall() === null && (model.feedReason === "starting" || model.feedReason === "waiting");
  }

  function renderEmpty(empty, unknownWhy) {
    var head = unknownWhy || t("none_free");
    var hint = unknownWhy ? "" : t("none_free_hint");
    var strong = empty.querySelector("strong"), span = empty.querySelector("span");
    if (strong && strong.textContent !== head) strong.textContent = head;
    if (span && span.textContent !== hint) { span.textContent = hint; span.hidden = !hint; }
    if (empty.classList.contains("unknown") !== !!unknownWhy) empty.classList.toggle("unknown", !!unknownWhy);
  }

  function fitList() {
    // On a kiosk nobody scrolls: show as many whole rooms as fit, in the list's order, and say
    // how many more the map has. Measured, not estimated: the box is laid out with the first k
    // rooms and the "+N" line it would need (k found by halving; more rooms never take less
    // height), and the largest k that does not overflow is kept. The straight-line note is in
    // the box too, so it keeps its room.
    var more = $("free-more");
    if (isPhone || !more || !list) return;
    var box = $("free-box");
    var children = list.children, n = children.length;
    var onMap = planMap && WF ? WF.rooms || {} : null;
    function show(k) {
      var offMap = false;  // a room the drawn plan does not outline is not "on the map"
      for (var i = 0; i < n; i++) {
        children[i].hidden = i >= k;
        if (i >= k && onMap && !onMap[children[i].getAttribute("data-space-id")]) offMap = true;
      }
      more.hidden = k >= n;
      if (k < n) more.textContent = t(offMap ? "more_free" : "more_on_map", { n: n - k });
    }
    function fits() { return box.scrollHeight <= box.clientHeight; }
    show(n);
    if (fits()) return;
    var lo = 0, hi = n - 1;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      show(mid);
      if (fits()) lo = mid; else hi = mid - 1;
    }
    show(lo);
  }

  function tickList() {
    Object.keys(items).forEach(function (id) {
      var item = items[id], room = model.rooms[id];
      if (!room) return;
      var since = listWords(room);
      if (item.sinceText !== since) { item.sinceText = since; item.since.textContent = since; }
    });
  }

  // -- the plan map and wayfinding -------------------------------------------------------------
  // With a layout that outlines rooms, the map is the floor's own plan with those outlines
  // coloured by state. Routes come from the server (signage/core/wayfinding.py, in kiosk-config);
  // the page only chooses which one to draw, and never one to a room that is not free now.
  var WF = config.wayfinding || null;
  var planMap = $("plan-map");
  var mapCard = $("map-card");
  var IDLE_S = num(testOpts.idleS, num(config.idle_s, 15));
  var shapes = {};
  var shapesKey = null;
  var unitPx = 1;
  var selected = null, idleTimer = null, routeKey = null, idleTarget = null, cardKey = null;

  function routesFrom() {
    // The routes the free list may rank by: only with a "you are here" on the layout.
    return WF && WF.here && WF.routes && Object.keys(WF.routes).length ? WF.routes : null;
  }
  function routeOf(id) { var r = routesFrom(); return r && r[id] && r[id].points && r[id].points.length >= 2 ? r[id] : null; }
  function fmtMetres(m) { return m < 20 ? Math.max(1, Math.round(m)) : Math.round(m / 5) * 5; }
  function fmtMinutes(seconds) {
    // Half minutes under five (a whole "1 min" spanned 6 m to 55 m), whole minutes after.
    var halves = Math.max(1, Math.round(seconds / 30));
    if (halves >= 10) return String(Math.round(seconds / 60));
    var whole = Math.floor(halves / 2);
    return (whole ? String(whole) : "") + (halves % 2 ? "\u00bd" : "");
  }
  function distanceText(route) {
    if (!route || route.m === null || route.m === undefined) return "";
    return t("distance", { m: fmtMetres(route.m), min: fmtMinutes(route.s || route.m / 1.2) });
  }
  function pts(list) { return list.map(function (p) { return r1(p[0]) + "," + r1(p[1]); }).join(" "); }

  function shapeIds() {
    if (!planMap || !WF) return [];
    var hidden = hiddenSet();
    return Object.keys(WF.rooms || {}).filter(function (id) { return model.rooms[id] && !hidden[id]; }).sort();
  }

  function measureScale() {
    var box = $("map-box");
    if (!box || !WF) return 1;
    var bw = box.clientWidth, bh = box.clientHeight;
    if (!bw || !bh) return unitPx;
    return Math.min(bw / WF.width, bh / WF.height);
  }
  // Sizes on the plan are asked for in screen pixels (readable across a lobby at 1080p and
  // scaled with the screen) and turned into plan units, whatever the plan's own size.
  function pxBase() { return isPhone ? 0.42 : Math.max(0.5, Math.min(innerWidth, innerHeight) / 1080); }
  function px(n) { return n * pxBase() / unitPx; }

  // keepNumbers: the numbers' legend stays as it is (a rebuild because it appeared).
  function buildPlanMap(keepNumbers) {
    if (!planMap || !WF) return;
    if (isPhone) { var pbox = $("map-box"); if (pbox) pbox.style.aspectRatio = WF.width + " / " + WF.height; }
    unitPx = measureScale();
    // One screen pixel in plan units, for the outlines' widths and dashes in kiosk.css.
    planMap.style.setProperty("--u", px(1).toFixed(3) + "px");
    scalePatterns();
    var roomsG = $("plan-rooms");
    clear(roomsG);
    shapes = {};
    var ids = shapeIds();
    shapesKey = ids.join(",");
    ids.forEach(function (id) {
      var geo = WF.rooms[id], room = model.rooms[id];
      var g = svgEl("g", { "class": "room-shape", "data-space-id": id, "data-state": "unknown" }, roomsG);
      var points = pts(geo.outline);
      svgEl("polygon", { "class": "shape-bg", points: points, "stroke-width": r1(px(3)) }, g);
      svgEl("polygon", { "class": "shape-pattern", points: points }, g);
      var ref = { id: id, g: g, state: null, label: svgEl("g", { "class": "shape-label" }, g), number: 0 };
      ref.icon = svgEl("use", { "class": "shape-icon", href: "#i-unknown" }, ref.label);
      ref.name = svgEl("text", { "class": "shape-name" }, ref.label);
      ref.why = svgEl("text", { "class": "shape-why", "text-anchor": "middle" }, ref.label);
      ref.nameText = room.name || "";
      ref.whyText = "";
      shapes[id] = ref;
    });
    Object.keys(shapes).forEach(function (id) { renderShape(id, true); });
    // "You are here" first: the rooms' words are placed clear of it.
    drawHere();
    drawLandmarks();
    fitShapes(!keepNumbers);
    routeKey = null;
    renderShapes();
  }

  // The stripes and dots at a size set in screen pixels (as on the automatic map at 1080p; a
  // little finer on a phone), whatever the plan's own units: on a large plan shown small they
  // shrank to hairlines that no longer told "in use" from "unknown".
  function scalePatterns() {
    var defs = planMap.querySelector("defs");
    if (!defs) return;
    var k = (isPhone ? 0.7 : pxBase()) / unitPx;
    ["occupied", "unknown"].forEach(function (state) {
      var base = $("p-" + state), id = "p-plan-" + state, pat = $(id);
      if (!base) return;
      if (!pat) {
        pat = base.cloneNode(true);
        pat.id = id;
        defs.appendChild(pat);
      }
      pat.setAttribute("patternTransform", "scale(" + k.toFixed(4) + ") " + (base.getAttribute("patternTransform") || ""));
    });
  }

  // Every room's words on the plan; the rooms whose names cannot fit are numbered, reading
  // order (top to bottom, then left to right), with their names in the legend under the map.
  // The legend takes height from the map: when it appears the plan is drawn again at its size.
  var rebuilding = false;
  function fitShapes(fresh) {
    var ids = Object.keys(shapes).sort(function (a, b) {
      var p = WF.rooms[a].outline[0], q = WF.rooms[b].outline[0];
      return cmp(Math.round(p[1] / 40), Math.round(q[1] / 40)) || cmp(p[0], q[0]) || cmp(a, b);
    });
    ids.forEach(function (id, i) { shapes[id].number = i + 1; });
    var avoid = planObstacles();
    var numbered = ids.filter(function (id) { return !placeLabel(shapes[id], WF.rooms[id], avoid); });
    var wasShown = numbersBox && !numbersBox.hidden;
    renderNumbers(numbered, fresh);
    if (numbersBox && wasShown !== !numbersBox.hidden && !rebuilding && Math.abs(measureScale() - unitPx) > 1e-3) {
      rebuilding = true;
      try { buildPlanMap(true); } finally { rebuilding = false; }
    }
  }
  var shapesFrame = 0;
  function scheduleShapes() {
    if (!planMap || shapesFrame) return;
    shapesFrame = requestAnimationFrame(function () {
      shapesFrame = 0;
      // A map that changed size draws again (the marker and signs are sized in screen pixels).
      if (Math.abs(measureScale() - unitPx) > 1e-3) buildPlanMap(true); else fitShapes(false);
    });
  }

  // What a room's words must not cover, in plan units: every point and leg of a route the plan
  // may draw (to any room, or to the stairs and lifts: the one drawn changes with a tap or the
  // idle cycle, the words stay), "you are here" (its dot and its pill) and the stairs and lift
  // signs.
  function planObstacles() {
    var out = { dots: [], legs: [], boxes: [] }, seen = {};
    if (!WF) return out;
    var ways = Object.keys(WF.routes || {}).map(function (id) { return WF.routes[id]; }).concat(WF.exits || []);
    var dotR = px(8), legR = px(8);  // the line is 9 px wide, its casing 16
    ways.forEach(function (way) {
      var p = (way && way.points) || [];
      for (var i = 0; i < p.length; i++) {
        var key = r1(p[i][0]) + "," + r1(p[i][1]);
        if (!seen[key]) { seen[key] = 1; out.dots.push({ x: p[i][0], y: p[i][1], r: dotR }); }
        if (!i) continue;
        var leg = key + "<" + r1(p[i - 1][0]) + "," + r1(p[i - 1][1]);
        if (!seen[leg]) { seen[leg] = 1; out.legs.push({ a: p[i - 1], b: p[i], r: legR }); }
      }
    });
    // The dot (r 12 and its white ring); its faint halo may pass behind words.
    if (WF.here) out.dots.push({ x: WF.here[0], y: WF.here[1], r: px(18) });
    // The stairs and lift signs (drawn before the rooms' words are placed).
    landmarks.forEach(function (m) {
      out.boxes.push({ x: m.x - m.size / 2, y: m.y - m.size / 2, w: m.size, h: m.size });
    });
    var pill = doc.querySelector("#you-are-here .here-pill");
    if (pill) {
      var m = px(4);
      out.boxes.push({ x: num(pill.getAttribute("x"), 0) - m, y: num(pill.getAttribute("y"), 0) - m,
        w: num(pill.getAttribute("width"), 0) + 2 * m, h: num(pill.getAttribute("height"), 0) + 2 * m });
    }
    return out;
  }
  // The obstacles near one room (most rooms have none: their words take the centre at once).
  function obstaclesIn(avoid, x0, y0, w, h) {
    var near = { dots: [], legs: [], boxes: [] };
    if (!avoid) return near;
    avoid.dots.forEach(function (d) {
      if (d.x + d.r > x0 && d.x - d.r < x0 + w && d.y + d.r > y0 && d.y - d.r < y0 + h) near.dots.push(d);
    });
    avoid.legs.forEach(function (l) {
      if (Math.max(l.a[0], l.b[0]) + l.r > x0 && Math.min(l.a[0], l.b[0]) - l.r < x0 + w &&
          Math.max(l.a[1], l.b[1]) + l.r > y0 && Math.min(l.a[1], l.b[1]) - l.r < y0 + h) near.legs.push(l);
    });
    avoid.boxes.forEach(function (b) { if (overlap(b, { x: x0, y: y0, w: w, h: h })) near.boxes.push(b); });
    near.any = near.dots.length + near.legs.length + near.boxes.length > 0;
    return near;
  }
  function segmentHitsBox(a, b, box) {
    // Liang-Barsky: does the segment a-b enter the box?
    var t0 = 0, t1 = 1, dx = b[0] - a[0], dy = b[1] - a[1];
    var p = [-dx, dx, -dy, dy], q = [a[0] - box.x, box.x + box.w - a[0], a[1] - box.y, box.y + box.h - a[1]];
    for (var i = 0; i < 4; i++) {
      if (p[i] === 0) { if (q[i] < 0) return false; continue; }
      var r = q[i] / p[i];
      if (p[i] < 0) { if (r > t1) return false; if (r > t0) t0 = r; } else { if (r < t0) return false; if (r < t1) t1 = r; }
    }
    return true;
  }
  function boxClear(box, near) {
    for (var i = 0; i < near.dots.length; i++) {
      var d = near.dots[i];
      if (boxDistance(box, d.x, d.y) < d.r) return false;
    }
    for (i = 0; i < near.legs.length; i++) {
      var l = near.legs[i];
      if (segmentHitsBox(l.a, l.b, { x: box.x - l.r, y: box.y - l.r, w: box.w + 2 * l.r, h: box.h + 2 * l.r })) return false;
    }
    for (i = 0; i < near.boxes.length; i++) if (overlap(box, near.boxes[i])) return false;
    return true;
  }
  // Where a block of w x h goes inside the area [ax, ay, aw, ah]: at the preferred centre (px,
  // py) if that is clear, else the clear place nearest to it on a 9 x 9 grid of the area; null
  // when none is (the caller tries smaller words, then the room's number).
  var SPOTS = [0, -0.25, 0.25, -0.5, 0.5, -0.75, 0.75, -1, 1];
  function clearSpot(w, h, ax, ay, aw, ah, pcx, pcy, near) {
    var lx = ax + w / 2, hx = ax + aw - w / 2, ly = ay + h / 2, hy = ay + ah - h / 2;
    if (hx < lx) { lx = hx = ax + aw / 2; }
    if (hy < ly) { ly = hy = ay + ah / 2; }
    var cx = Math.max(lx, Math.min(hx, pcx)), cy = Math.max(ly, Math.min(hy, pcy));
    if (!near || !near.any) return [cx, cy];
    var best = null;
    SPOTS.forEach(function (fx) {
      SPOTS.forEach(function (fy) {
        var x = fx < 0 ? cx + fx * (cx - lx) : cx + fx * (hx - cx);
        var y = fy < 0 ? cy + fy * (cy - ly) : cy + fy * (hy - cy);
        var d = Math.hypot(x - cx, y - cy);
        if (best && d >= best.d) return;
        if (boxClear({ x: x - w / 2, y: y - h / 2, w: w, h: h }, near)) best = { d: d, at: [x, y] };
      });
    });
    return best && best.at;
  }

  // A room's words on the plan: its icon (never smaller than a thumb's width of the screen), its
  // name on up to three lines at the smallest readable size or larger (as on the automatic map),
  // and, for a room of unknown state, why. The icon goes beside the name where the room is wide
  // enough, above it where not. The block sits at the room's centre, or where a route or "you
  // are here" would be under it, at the nearest clear place in the room (as the editor moves its
  // labels off corridor points). Returns false when the name fits nowhere: the room then shows
  // its number, and the legend its name.
  function placeLabel(ref, geo, avoid) {
    var xs = geo.outline.map(function (p) { return p[0]; }), ys = geo.outline.map(function (p) { return p[1]; });
    var x0 = Math.min.apply(null, xs), y0 = Math.min.apply(null, ys);
    var w = Math.max.apply(null, xs) - x0, h = Math.max.apply(null, ys) - y0;
    var c = geo.center || [x0 + w / 2, y0 + h / 2];
    var innerW = w * 0.88 - px(6), innerH = h * 0.88 - px(6);
    var ax = x0 + (w - innerW) / 2, ay = y0 + (h - innerH) / 2;
    var near = obstaclesIn(avoid, x0, y0, w, h);
    var minU = minNamePx() / unitPx, minT = minTextPx() / unitPx, iconMin = Math.max(px(isPhone ? 22 : 28), minIconPx() * 1.2 / unitPx);
    var broken = breakable(ref.nameText), why = ref.whyText;
    var top = Math.max(minU, Math.min(px(44), h * 0.34));
    function attempt(fs, stacked, withWhy, force, maxLines) {
      var icon = Math.min(Math.max(iconMin, fs * 1.1), px(48)), gap = fs * 0.32;
      var lw = stacked ? innerW : innerW - icon - gap;
      if (lw <= 0) return null;
      var lines = wrap(broken, 800, fs, lw, maxLines, force);
      if (!lines) return null;
      var wFs = Math.max(minT, fs * 0.6);
      var whyLines = withWhy && why ? wrap(why, 650, wFs, innerW, 2) : [];
      if (!whyLines) return null;
      var textH = lines.length * fs * 1.1;
      var head = stacked ? icon + gap * 0.5 + textH : Math.max(icon, textH);
      var total = head + (whyLines.length ? fs * 0.2 + whyLines.length * wFs * 1.15 : 0);
      if (total > innerH) return null;
      var textW = Math.max.apply(null, lines.map(function (l) { return textWidth(l, 800, fs); }));
      var whyW = whyLines.length ? Math.max.apply(null, whyLines.map(function (l) { return textWidth(l, 650, wFs); })) : 0;
      var blockW = Math.max(stacked ? Math.max(icon, textW) : icon + gap + textW, whyW);
      var at = clearSpot(blockW, total, ax, ay, innerW, innerH, c[0], c[1], near);
      if (!at) return null;
      return { fs: fs, icon: icon, gap: gap, lines: lines, stacked: stacked, textH: textH, textW: textW,
        head: head, total: total, wFs: wFs, whyLines: whyLines, at: at };
    }
    // One line while the size stays large ("Glacier", not "Gla-cier"), then up to three lines
    // down to the smallest size, then words cut where they must be; the reason is dropped
    // last (a tap's card still says it).
    var passes = [[1, Math.max(minU, top * 0.65), false], [3, minU, false], [3, minU, true]];
    var best = null;
    [true, false].some(function (withWhy) {
      return passes.some(function (pass) {
        for (var fs = top, guard = 0; guard < 40 && !best; guard++) {
          best = attempt(fs, false, withWhy, pass[2], pass[0]) || attempt(fs, true, withWhy, pass[2], pass[0]);
          if (fs <= pass[1]) break;
          fs = Math.max(pass[1], fs * 0.9);
        }
        return !!best;
      });
    });
    var fits = !!best;
    if (!best) {
      // The number, as large as the room allows (smaller, down to the names' floor, where only
      // a smaller one is clear of the routes), with the icon above it where there is room.
      var digits = String(ref.number || "?");
      var nFs0 = Math.max(Math.min(innerH * 0.45, px(44), innerW / (0.75 * digits.length)), Math.min(minU, h * 0.6));
      var numberAt = function (nFs, withIcon, clearOf) {
        var nIcon = withIcon ? Math.min(iconMin, innerW, innerH - nFs * 1.1) : 0;
        if (nIcon < minIconPx() / unitPx) nIcon = 0;  // too small to read: none
        var b = { fs: nFs, icon: nIcon, gap: nIcon ? nFs * 0.2 : 0, lines: [digits], stacked: true,
          textH: nFs * 1.1, textW: textWidth(digits, 800, nFs), whyLines: [], wFs: 0 };
        b.head = b.total = b.icon + b.gap * 0.5 + b.textH;
        b.at = clearSpot(Math.max(b.icon, b.textW), b.total, ax, ay, innerW, innerH, c[0], c[1], clearOf);
        return b.at ? b : null;
      };
      var floorN = Math.min(nFs0, Math.max(minU, minT));
      for (var nFs = nFs0; !best; nFs = Math.max(floorN, nFs * 0.85)) {
        best = numberAt(nFs, true, near) || numberAt(nFs, false, near);
        if (nFs <= floorN) break;
      }
      if (!best) best = numberAt(nFs0, true, null);  // nowhere clear: centred, as before
    }
    ref.g.toggleAttribute("data-numbered", !fits);
    // The block centred on its place, which is inside the room's inner box.
    var bx = best.at[0], topY = best.at[1] - best.total / 2;
    var nameTop, nameX, anchor;
    if (best.stacked) {
      ref.icon.setAttribute("x", r1(bx - best.icon / 2));
      ref.icon.setAttribute("y", r1(topY));
      nameTop = topY + best.icon + best.gap * 0.5;
      nameX = bx;
      anchor = "middle";
    } else {
      var left = bx - (best.icon + best.gap + best.textW) / 2;
      ref.icon.setAttribute("x", r1(left));
      ref.icon.setAttribute("y", r1(topY + (best.head - best.icon) / 2));
      nameTop = topY + (best.head - best.textH) / 2;
      nameX = left + best.icon + best.gap;
      anchor = "start";
    }
    ref.icon.setAttribute("width", r1(best.icon));
    ref.icon.setAttribute("height", r1(best.icon));
    if (best.icon) ref.icon.removeAttribute("display"); else ref.icon.setAttribute("display", "none");
    ref.name.setAttribute("text-anchor", anchor);
    setLines(ref.name, best.lines, nameX, nameTop + best.fs * 0.92, best.fs, 1.1);
    ref.name.removeAttribute("display");
    if (best.whyLines.length) {
      setLines(ref.why, best.whyLines, bx, topY + best.head + best.fs * 0.2 + best.wFs * 0.92, best.wFs, 1.15);
      ref.why.removeAttribute("display");
    } else { clear(ref.why); ref.why.setAttribute("display", "none"); }
    return fits;
  }

  function drawHere() {
    var layer = $("plan-here");
    if (!layer) return;
    clear(layer);
    if (!WF.here) return;
    var x = WF.here[0], y = WF.here[1];
    var g = svgEl("g", { id: "you-are-here", "class": "here" }, layer);
    svgEl("circle", { "class": "here-halo", cx: x, cy: y, r: r1(px(26)) }, g);
    svgEl("circle", { "class": "here-dot", cx: x, cy: y, r: r1(px(12)), "stroke-width": r1(px(4)) }, g);
    var fs = Math.max(px(isPhone ? 30 : 24), minTextPx() / unitPx);
    var pill = svgEl("rect", { "class": "here-pill", rx: r1(fs * 0.5) }, g);
    var label = svgEl("text", { "class": "here-label", "font-size": r1(fs) }, g);
    label.textContent = t("you_are_here");
    var len = fs * 0.6 * label.textContent.length;
    try { len = label.getComputedTextLength() || len; } catch (e) { /* not laid out */ }
    var pw = len + fs * 1.2, ph = fs * 1.6;
    // Above the dot if it fits, else below, beside; and off the stairs and lift signs (drawn
    // under the marker), which it would otherwise hide.
    var signs = (WF.landmarks || []).map(function (m) {
      var r = px(28), at = signAt(num(m.x, 0), num(m.y, 0), px(25));
      return { x: at[0] - r, y: at[1] - r, w: 2 * r, h: 2 * r };
    });
    var up = y - px(34) - ph, down = y + px(34);
    var spots = [
      { x: x - pw / 2, y: up }, { x: x - px(20), y: up }, { x: x + px(20) - pw, y: up },
      { x: x - pw / 2, y: down }, { x: x - px(20), y: down }, { x: x + px(20) - pw, y: down },
      { x: x + px(34), y: y - ph / 2 }, { x: x - px(34) - pw, y: y - ph / 2 }
    ];
    var pick = null;
    spots.forEach(function (p, i) {
      var box = { x: Math.max(0, Math.min(WF.width - pw, p.x)), y: p.y, w: pw, h: ph };
      var score = (box.y < 0 || box.y + ph > WF.height ? 1e9 : 0) + i;
      signs.forEach(function (b) { score += overlap(box, b) * 10; });
      if (!pick || score < pick.score) pick = { score: score, box: box };
    });
    var py = pick.box.y, pxl = pick.box.x;
    pill.setAttribute("x", r1(pxl)); pill.setAttribute("y", r1(py));
    pill.setAttribute("width", r1(pw)); pill.setAttribute("height", r1(ph));
    label.setAttribute("x", r1(pxl + fs * 0.6));
    label.setAttribute("y", r1(py + ph / 2 + fs * 0.36));
  }

  // -- stairs and lifts on the plan ------------------------------------------------------------
  // Every stairs and lift node of the layout is drawn as a sign: a drawn icon on a badge and its
  // word, so it never rests on colour alone. The nearest of each kind (WF.exits) is larger and
  // says how far it is. Signs lie under the route and "you are here", so they never hide either;
  // their labels step aside from both.
  var LANDMARK_KINDS = ["stairs", "lift"];
  var landmarks = [];
  var otherFree = false;  // the other-floors panel has rooms free now elsewhere
  var freeHere = 0;  // rooms the free list shows on this floor

  function knownFloor(f) {
    // floors.js's reading: a floor the server vouches for, every group's count a number.
    if (!f || f.state !== "known" || !f.free || typeof f.free !== "object") return false;
    return GROUP_ORDER.every(function (g) { return f.free[g] === undefined || typeof f.free[g] === "number"; });
  }

  function listedGroups() {
    // Other floors arrive as counts by group, so the display's functions filter is applied by
    // group: a screen listing meeting rooms must not send people upstairs to a free kitchen.
    var fns = settings.functions && settings.functions.length ? settings.functions : null;
    return fns ? GROUP_ORDER.filter(function (g) { return fns.some(function (fn) { return groupOf(fn) === g; }); }) : GROUP_ORDER;
  }

  function otherFloorsFree(list) {
    if (!Array.isArray(list)) return false;
    var groups = listedGroups();
    return list.some(function (f) {
      return knownFloor(f) && groups.some(function (g) { return f.free[g] > 0; });
    });
  }
  otherFree = otherFloorsFree(embedded && embedded.other_floors);
  doc.addEventListener("signage:message", function (ev) {
    var msg = ev.detail;
    if (!msg || (msg.type !== "floors" && msg.type !== "snapshot") || !("other_floors" in msg)) return;
    otherFree = otherFloorsFree(msg.other_floors);
    if (msg.type === "floors") renderRoute();  // a snapshot renders everything anyway
  });

  function nearestExits() {
    var out = {};
    ((WF && WF.exits) || []).forEach(function (e) {
      if (e && LANDMARK_KINDS.indexOf(e.kind) >= 0 && !out[e.kind]) out[e.kind] = e;
    });
    return out;
  }

  function exitToShow() {
    // Nothing free on this floor but free rooms elsewhere: the way to the nearest stairs or lift.
    // Never while the page cannot vouch for what it shows, nor while a room is chosen.
    // Only on the drawn plan: a line is what makes "Stairs · 16 m" findable.
    if (!planMap || !WF || !WF.here || selected || freeHere > 0 || !otherFree || pageFeed() === "stale") return null;
    var best = null, near = nearestExits();
    LANDMARK_KINDS.forEach(function (kind) {
      var e = near[kind];
      if (e && e.points && e.points.length >= 2 && (!best || num(e.units, Infinity) < num(best.units, Infinity))) best = e;
    });
    return best;
  }

  function signAt(x, y, half) {
    // Where a sign is drawn: at its node, unless "you are here" (dot and halo) would sit on it;
    // then beside the marker, away from it, so both stay whole (a screen beside the stairs).
    if (!WF || !WF.here) return [x, y];
    var hx = WF.here[0], hy = WF.here[1], need = half + px(16);  // the dot: r 12, stroke 4
    var dx = x - hx, dy = y - hy;
    if (Math.abs(dx) >= need || Math.abs(dy) >= need) return [x, y];
    var horiz = Math.abs(dx) >= Math.abs(dy) && dx !== 0;
    var sign = horiz ? (dx > 0 ? 1 : -1) : (dy > 0 ? 1 : -1);
    var limit = horiz ? WF.width : WF.height, base = horiz ? hx : hy;
    // The side it stands on, unless the plan's edge is there; then the other side.
    if (base + sign * need < half || base + sign * need > limit - half) sign = -sign;
    return horiz ? [hx + sign * need, y] : [x, hy + sign * need];
  }

  function landmarkIcon(kind, g) {
    // Drawn on a 24-unit grid and scaled with the badge: the signs seen in any building.
    if (kind === "stairs") {
      svgEl("path", { "class": "landmark-fg", d: "M4 20V16.5H8.3V12.8H12.5V9H16.7V5.2H20.5V20Z" }, g);
    } else {
      svgEl("rect", { "class": "landmark-fg-line", x: 5.5, y: 3, width: 13, height: 18, rx: 1.2 }, g);
      svgEl("path", { "class": "landmark-fg", d: "M12 5.6L15.6 10.3H8.4Z" }, g);
      svgEl("path", { "class": "landmark-fg", d: "M12 18.4L15.6 13.7H8.4Z" }, g);
    }
  }

  function landmarkText(mark, exit) {
    var kind = t("floors_" + mark.kind);
    var m = exit ? num(exit.m, null) : null;
    return m === null ? kind : t("floors_way", { kind: kind, m: fmtMetres(m) });
  }

  function drawLandmarks() {
    var routeLayer = $("plan-route");
    var layer = $("plan-landmarks");
    if (!layer && routeLayer) {
      layer = svgEl("g", { id: "plan-landmarks" });
      routeLayer.parentNode.insertBefore(layer, routeLayer);
    }
    landmarks = [];
    if (!layer) return;
    clear(layer);
    var near = nearestExits();
    ((WF && WF.landmarks) || []).forEach(function (mark) {
      if (!mark || LANDMARK_KINDS.indexOf(mark.kind) < 0) return;
      var x = num(mark.x, NaN), y = num(mark.y, NaN);
      if (!isFinite(x) || !isFinite(y)) return;
      var exit = near[mark.kind] && near[mark.kind].id === mark.id ? near[mark.kind] : null;
      var size = px(exit ? 50 : 38), fs = Math.max(px(exit ? 25 : 21), minTextPx() / unitPx);
      var at = signAt(x, y, px(25));
      x = at[0]; y = at[1];
      var g = svgEl("g", { "class": "landmark", "data-kind": String(mark.kind), "data-node-id": String(mark.id) }, layer);
      if (exit) g.setAttribute("data-nearest", "true");
      var leader = svgEl("line", { "class": "landmark-leader", display: "none", "stroke-width": r1(px(2.5)) }, g);
      var sign = svgEl("g", {
        "class": "landmark-sign",
        transform: "translate(" + r1(x - size / 2) + " " + r1(y - size / 2) + ") scale(" + (size / 24).toFixed(4) + ")"
      }, g);
      svgEl("rect", { "class": "landmark-badge", width: 24, height: 24, rx: 5 }, sign);
      landmarkIcon(mark.kind, sign);
      var pill = svgEl("rect", { "class": "landmark-pill", rx: r1(fs * 0.45), "stroke-width": r1(px(exit ? 3 : 2)) }, g);
      var label = svgEl("text", { "class": "landmark-label", "font-size": r1(fs) }, g);
      label.textContent = landmarkText(mark, exit);
      var len = fs * 0.58 * label.textContent.length;
      try { len = label.getComputedTextLength() || len; } catch (e) { /* not laid out */ }
      landmarks.push({
        x: x, y: y, size: size, fs: fs, w: len + fs * 1.1, h: fs * 1.55, nearest: !!exit,
        g: g, pill: pill, label: label, leader: leader
      });
    });
    placeLandmarkLabels(null);
  }

  function boxDistance(box, x, y) {
    var dx = Math.max(box.x - x, 0, x - box.x - box.w), dy = Math.max(box.y - y, 0, y - box.y - box.h);
    return Math.hypot(dx, dy);
  }
  function overlap(a, b) {
    var w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
    var h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
    return w > 0 && h > 0 ? w * h : 0;
  }
  function crossesBox(box, points) {
    // How many route segments pass through the box (sampled: routes are a few straight runs).
    var hits = 0;
    for (var i = 1; points && i < points.length; i++) {
      var a = points[i - 1], b = points[i];
      if (Math.max(a[0], b[0]) < box.x || Math.min(a[0], b[0]) > box.x + box.w ||
          Math.max(a[1], b[1]) < box.y || Math.min(a[1], b[1]) > box.y + box.h) continue;
      var steps = Math.max(2, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / Math.max(1, box.h / 3)));
      for (var s = 0; s <= steps; s++) {
        var qx = a[0] + (b[0] - a[0]) * s / steps, qy = a[1] + (b[1] - a[1]) * s / steps;
        if (qx >= box.x && qx <= box.x + box.w && qy >= box.y && qy <= box.y + box.h) { hits++; break; }
      }
    }
    return hits;
  }
  function hereBox() {
    var here = $("you-are-here");
    if (!here) return null;
    // With a margin for the halo, which pulses beyond its drawn size.
    var m = px(12);
    try {
      var b = here.getBBox();
      if (b.width) return { x: b.x - m, y: b.y - m, w: b.width + 2 * m, h: b.height + 2 * m };
    } catch (e) { /* not laid out */ }
    var r = px(34) + m;
    return { x: WF.here[0] - r, y: WF.here[1] - r, w: 2 * r, h: 2 * r };
  }

  function placeLandmarkLabels(routePoints) {
    // Each label goes to the side of its sign that is inside the plan and clear of "you are
    // here", the route drawn now and the other signs; nearest signs choose first.
    if (!landmarks.length) return;
    var avoid = [], here = hereBox();
    landmarks.forEach(function (m) {
      avoid.push({ x: m.x - m.size / 2, y: m.y - m.size / 2, w: m.size, h: m.size, own: m, sign: true });
    });
    var order = landmarks.slice().sort(function (a, b) { return (b.nearest - a.nearest); });
    order.forEach(function (m) {
      var gap = px(6), half = m.size / 2, step = px(14);
      var sides = [];
      // Beside, below, above, then at the corners; a step further out each round, which
      // costs a little.
      for (var k = 0; k < 7; k++) {
        var d = gap + k * step;
        var right = m.x + half + d, left = m.x - half - d - m.w, below = m.y + half + d, above = m.y - half - d - m.h;
        sides.push(
          { x: right, y: m.y - m.h / 2 }, { x: left, y: m.y - m.h / 2 },
          { x: m.x - m.w / 2, y: below }, { x: m.x - m.w / 2, y: above },
          { x: right, y: below }, { x: left, y: below }, { x: right, y: above }, { x: left, y: above }
        );
      }
      var best = null;
      sides.forEach(function (p, i) {
        var box = { x: p.x, y: p.y, w: m.w, h: m.h };
        var out = Math.max(0, -box.x) + Math.max(0, box.x + box.w - WF.width) +
          Math.max(0, -box.y) + Math.max(0, box.y + box.h - WF.height);
        var score = out * 1000 + (here ? overlap(box, here) * 50 : 0) + crossesBox(box, routePoints) * 1e6 + i * 10;
        // Hiding another sign is worse than crowding another label; a label nearer to another
        // sign than to its own would be read as that sign's.
        var own = boxDistance(box, m.x, m.y);
        avoid.forEach(function (a) {
          if (a.own === m) return;
          score += overlap(box, a) * (a.sign ? 60 : 20);
          if (a.sign && boxDistance(box, a.own.x, a.own.y) < own) score += 5e5;
        });
        if (!best || score < best.score) best = { score: score, box: box };
      });
      var b = best.box;
      // Kept inside the plan even when every side is tight.
      b.x = Math.max(0, Math.min(WF.width - b.w, b.x));
      b.y = Math.max(0, Math.min(WF.height - b.h, b.y));
      avoid.push({ x: b.x, y: b.y, w: b.w, h: b.h, own: m });
      // A label pushed away from its sign keeps a thin line to it.
      var far = boxDistance(b, m.x, m.y) > half + gap * 1.5;
      var nx = Math.max(b.x, Math.min(b.x + b.w, m.x)), ny = Math.max(b.y, Math.min(b.y + b.h, m.y));
      m.leader.setAttribute("x1", r1(m.x)); m.leader.setAttribute("y1", r1(m.y));
      m.leader.setAttribute("x2", r1(nx)); m.leader.setAttribute("y2", r1(ny));
      if (far) m.leader.removeAttribute("display"); else m.leader.setAttribute("display", "none");
      m.pill.setAttribute("x", r1(b.x)); m.pill.setAttribute("y", r1(b.y));
      m.pill.setAttribute("width", r1(b.w)); m.pill.setAttribute("height", r1(b.h));
      m.label.setAttribute("x", r1(b.x + m.fs * 0.55));
      m.label.setAttribute("y", r1(b.y + b.h / 2 + m.fs * 0.36));
    });
  }

  function trimEnd(points, by) {
    // The arrow stops at the edge of the sign it points to, not on top of its icon.
    var out = points.slice(0, -1), a = points[points.length - 2], b = points[points.length - 1];
    var len = Math.hypot(b[0] - a[0], b[1] - a[1]);
    if (len <= by) return points;
    var k = (len - by) / len;
    out.push([a[0] + (b[0] - a[0]) * k, a[1] + (b[1] - a[1]) * k]);
    return out;
  }

  // What a booking adds under a room's name on the plan ("Free until 14:00"); nothing when
  // the calendar has nothing to add to the sensors' state.
  function shapeBookingWords(room, v) {
    var kind = bookingStatus(room, v).kind;
    if (kind === "none" || kind === "in_use_booked" || kind === "free") return "";
    var words = roomWords(room, v);
    return words === stateLabel(v) ? "" : words;
  }

  function renderShape(id, noFit) {
    var ref = shapes[id], room = model.rooms[id];
    if (!ref || !room) return;
    var v = view(room);
    if (ref.state !== v.state) {
      ref.state = v.state;
      ref.g.setAttribute("data-state", v.state);
      ref.icon.setAttribute("href", "#i-" + v.state);
    }
    // An unknown room says why under its name ("Sensor offline"), not a bare icon.
    var name = room.name || "", why = v.state === "unknown" ? stateLabel(v) : shapeBookingWords(room, v);
    markBooking(ref.g, room, v);
    if (ref.nameText === name && ref.whyText === why) return;
    ref.nameText = name;
    ref.whyText = why;
    if (noFit) return;
    var was = ref.g.hasAttribute("data-numbered");
    if (placeLabel(ref, WF.rooms[id]) === was) scheduleShapes();
    else renderNumberStates();
  }
  function renderShapes() {
    if (!planMap) return;
    if (shapeIds().join(",") !== shapesKey) { buildPlanMap(); return; }
    Object.keys(shapes).forEach(renderShape);
    renderRoute();
  }

  function canRoute(id) {
    // Honesty: a route only to a room the page would show as free this very moment.
    var room = model.rooms[id];
    return !!(room && offerable(room) && pageFeed() !== "stale" && routeOf(id));
  }

  function alternativeTo(id) {
    // For a tapped room that is not free: the nearest room the page would route to, among those
    // the display lists (its filter), preferring one with at least as many seats.
    var room = model.rooms[id], keep = listFilter(), hidden = hiddenSet();
    var need = (room && room.capacity) || 0, best = null, bestBig = null;
    if (!routesFrom()) {
      // A map without corridors (the automatic map) knows no "nearest": the free list's first
      // room instead, by the list's own order, again preferring one with enough seats.
      if (!list || pageFeed() === "stale") return null;
      var ranked = Array.prototype.map.call(list.querySelectorAll(".free-item"), function (li) {
        return li.getAttribute("data-space-id");
      }).filter(function (rid) {
        var r = model.rooms[rid];
        return rid !== id && r && !hidden[rid] && keep(r) && offerable(r) && view(r).state === "free";
      });
      return ranked.filter(function (rid) { return (model.rooms[rid].capacity || 0) >= need; })[0] || ranked[0] || null;
    }
    Object.keys(model.rooms).forEach(function (rid) {
      var r = model.rooms[rid];
      if (rid === id || hidden[rid] || !keep(r) || !canRoute(rid)) return;
      var units = routeOf(rid).units;
      if (!best || units < routeOf(best).units) best = rid;
      if ((r.capacity || 0) >= need && (!bestBig || units < routeOf(bestBig).units)) bestBig = rid;
    });
    return bestBig || best;
  }

  function renderRoute() {
    var focus = selected || idleTarget;
    var alt = null, drawn = focus && canRoute(focus) ? focus : null;
    if (!drawn && selected && model.rooms[selected] && !offerable(model.rooms[selected])) {
      alt = alternativeTo(selected);
      drawn = alt && routeOf(alt) ? alt : null;  // a way only where the map has corridors
    }
    var exit = focus ? null : exitToShow();
    var key = drawn + "|" + alt + "|" + focus + "|" + (focus && model.rooms[focus] ? view(model.rooms[focus]).state : "") +
      "|" + (exit ? exit.kind + ":" + exit.id : "");
    if (key !== routeKey) {
      routeKey = key;
      var layer = $("plan-route");
      if (layer) {
        clear(layer);
        if (drawn) {
          var p = pts(routeOf(drawn).points);
          svgEl("polyline", { "class": "route-casing", points: p, "stroke-width": r1(px(16)) }, layer);
          var line = svgEl("polyline", {
            id: "route", "class": "route-line", "data-space-id": drawn, points: p,
            "stroke-width": r1(px(9)), "marker-end": "url(#route-arrow)"
          }, layer);
          line.setAttribute("data-selected", alt ? "alternative" : selected ? "tap" : "idle");
          if (alt) line.setAttribute("data-instead-of", selected);
        } else if (exit) {
          var sign = landmarks.filter(function (m) { return m.nearest && m.g.getAttribute("data-node-id") === exit.id; })[0];
          var way = exit.points;
          var last = way[way.length - 1];
          // A sign drawn aside from its node (beside "you are here"): the line ends at the sign.
          if (sign && (last[0] !== sign.x || last[1] !== sign.y)) way = way.concat([[sign.x, sign.y]]);
          var q = pts(sign ? trimEnd(way, sign.size * 0.62) : way);
          svgEl("polyline", { "class": "route-casing", points: q, "stroke-width": r1(px(16)) }, layer);
          svgEl("polyline", {
            id: "exit-route", "class": "route-line exit-line", "data-kind": exit.kind, "data-node-id": exit.id,
            points: q, "stroke-width": r1(px(9)), "marker-end": "url(#route-arrow)",
            // Dotted: the way off the floor is not to be taken for the way to a room.
            "stroke-dasharray": "0.1 " + r1(px(20))
          }, layer);
        }
      }
      landmarks.forEach(function (m) {
        if (exit && m.nearest && m.g.getAttribute("data-node-id") === exit.id) m.g.setAttribute("data-route", "true");
        else m.g.removeAttribute("data-route");
      });
      placeLandmarkLabels(drawn ? routeOf(drawn).points : exit ? exit.points : null);
      Object.keys(tiles).forEach(function (id) {
        tiles[id].g.toggleAttribute("data-selected", id === selected);
        tiles[id].g.toggleAttribute("data-alternative", id === alt);
      });
      Object.keys(shapes).forEach(function (id) {
        if (id === focus) shapes[id].g.setAttribute("data-selected", "true");
        else shapes[id].g.removeAttribute("data-selected");
        if (id === alt) shapes[id].g.setAttribute("data-alternative", "true");
        else shapes[id].g.removeAttribute("data-alternative");
      });
      Object.keys(items).forEach(function (id) {
        if (id === drawn) items[id].li.setAttribute("data-selected", "true");
        else items[id].li.removeAttribute("data-selected");
      });
    }
    renderCard(focus, drawn, exit, alt);
    if (selected) swapQR(selected, drawn);
  }

  function roomInfo(room, route) {
    // "Meeting room · 8 seats · 34 m · 1½ min": what a passer-by needs to decide.
    var parts = [kindLabel(room.function), seatsLabel(room.capacity)];
    var way = distanceText(route);
    if (way) parts.push(way);
    return parts.join(" · ");
  }
  function setParts(el, text) {
    // Lines break only between the parts, never inside "30 m" or "½ min".
    if (el.textContent === text) return;
    clear(el);
    text.split(" · ").forEach(function (part, i) {
      if (i) el.appendChild(doc.createTextNode(" · "));
      var span = doc.createElement("span");
      span.className = "map-card-part";
      span.textContent = part;
      el.appendChild(span);
    });
  }

  function renderCard(focus, drawn, exit, alt) {
    if (!mapCard) return;
    var room = focus && model.rooms[focus];
    var text = "", state = "", info = "", altText = null, altName = "";
    if (exit && !room) {
      // The way off this floor, said in words beside the line: why it leads to the stairs.
      room = { name: t("exit_card") };
      state = "free";
      text = landmarkText(exit, exit);
      markBooking(mapCard, null);
    } else if (room) {
      var v = view(room);
      state = v.state;
      // A booking's words where the calendar adds to the sensors ("Free · booked at 14:00").
      text = v.state === "unknown" ? t("card_unknown", { why: stateLabel(v) }) : roomWords(room, v);
      markBooking(mapCard, room, v);
      if (drawn === focus) info = roomInfo(room, routeOf(drawn));
      else {
        info = kindLabel(room.function) + " · " + seatsLabel(room.capacity);
        if (offerable(room) && WF) info += " · " + t("no_route");
      }
      if (!offerable(room) && focus === selected) {
        // Never a way to this room; the nearest free one instead, or why there is none.
        var other = alt && model.rooms[alt];
        altText = other ? t(routesFrom() ? "card_instead" : "card_instead_listed") : availabilityUnknown() || t("card_no_alternative");
        altName = other ? (other.name || "") + " · " + roomInfo(other, routeOf(alt)) : "";
      }
    }
    var key = [focus, state, text, info, altText, altName, room ? room.name : ""].join("|");
    if (key === cardKey) return;
    cardKey = key;
    mapCard.hidden = !room;
    if (!room) return;
    mapCard.setAttribute("data-state", state);
    // Tapped, the card takes the legend's place; at rest (the nearest free room) it sits beside it.
    if (focus && focus === selected) mapCard.setAttribute("data-tapped", "true");
    else mapCard.removeAttribute("data-tapped");
    mapCard.querySelector(".map-card-icon use").setAttribute("href", "#i-" + state);
    mapCard.querySelector(".map-card-name").textContent = room.name || "";
    mapCard.querySelector(".map-card-state").textContent = text;
    var infoEl = mapCard.querySelector(".map-card-info");
    setParts(infoEl, info);
    infoEl.hidden = !info;
    var altEl = mapCard.querySelector(".map-card-alt");
    altEl.hidden = altText === null;
    if (alt && altText !== null) altEl.setAttribute("data-space-id", alt);
    else altEl.removeAttribute("data-space-id");
    altEl.setAttribute("data-state", alt ? "free" : "none");
    altEl.querySelector(".map-card-alt-label").textContent = altText || "";
    setParts(altEl.querySelector(".map-card-alt-name"), altName);
  }

  function select(id) {
    if (!id || !model.rooms[id] || hiddenSet()[id]) { goIdle(); return; }
    selected = id;
    restartIdle();
    renderRoute();
  }
  function goIdle() {
    clearTimeout(idleTimer);
    idleTimer = null;
    selected = null;
    swapQR(null);
    renderRoute();
  }
  function restartIdle() {
    // A kiosk in a lobby returns to its resting view (the nearest free room) after a while;
    // a phone is one person's: it keeps what they chose.
    if (isPhone || !selected) return;
    clearTimeout(idleTimer);
    idleTimer = setTimeout(goIdle, IDLE_S * 1000);
  }

  var qrBox = doc.querySelector("#qr .qr-code");
  var qrTitle = $("qr-title"), qrHint = $("qr-hint");
  var qrDefault = { title: qrTitle ? qrTitle.textContent : "", hint: qrHint ? qrHint.textContent : "" };
  var qrKey = null;
  function swapQR(id, drawn) {
    // The caption says what the code opens: the phone shows the way to a room only when that
    // room is free and routed now; otherwise the code opens the room to follow it live.
    if (!qrBox || !config.qr) return;
    var target = drawn || id;
    var room = id ? model.rooms[target] : null;
    var title = !id ? qrDefault.title
      : t(drawn ? "qr_room_title" : "qr_follow_title", { name: room && room.name ? room.name : "" });
    var key = target + "|" + title;
    if (key === qrKey) return;
    qrKey = key;
    var inline = qrBox.querySelector("svg");
    var img = qrBox.querySelector("img.qr-room");
    if (!id) {
      if (img) qrBox.removeChild(img);
      if (inline) inline.removeAttribute("hidden");
      if (qrTitle) qrTitle.textContent = qrDefault.title;
      if (qrHint) qrHint.textContent = qrDefault.hint;
      return;
    }
    if (!img) {
      img = doc.createElement("img");
      img.className = "qr-room";
      img.setAttribute("alt", "");
      qrBox.appendChild(img);
    }
    img.setAttribute("src", config.qr + "?room=" + encodeURIComponent(target));
    img.setAttribute("data-space-id", target);
    if (inline) inline.setAttribute("hidden", "");
    if (qrTitle) qrTitle.textContent = title;
    if (qrHint) qrHint.textContent = t(drawn ? "qr_room_hint" : "qr_follow_hint");
  }

  function bindTouch() {
    if (map) {
      // The automatic map: a tap opens the room's card (with no way drawn: it has no corridors).
      map.addEventListener("click", function (ev) {
        var g = ev.target.closest ? ev.target.closest(".tile") : null;
        select(g ? g.getAttribute("data-space-id") : null);
      });
    }
    if (planMap) {
      planMap.addEventListener("click", function (ev) {
        var g = ev.target.closest ? ev.target.closest(".room-shape") : null;
        select(g ? g.getAttribute("data-space-id") : null);
      });
    }
    if (list) {
      list.addEventListener("click", function (ev) {
        var li = ev.target.closest ? ev.target.closest(".free-item") : null;
        if (li) select(li.getAttribute("data-space-id"));
      });
    }
    // Any touch while a room is chosen keeps it chosen a while longer.
    doc.addEventListener("pointerdown", function () { wake(); restartIdle(); }, true);
    // Panels that other scripts fill (other floors, announcements) change the list's room.
    var box = $("free-box");
    if (box && window.ResizeObserver) new ResizeObserver(function () { scheduleFit(null); }).observe(box);
    // A banner or the numbers' legend changes the map's size, and with it the text's scale.
    var mapBox = $("map-box"), lastBox = "";
    if (mapBox && window.ResizeObserver) {
      new ResizeObserver(function () {
        var size = mapBox.clientWidth + "x" + mapBox.clientHeight;
        // A new shape may want a new layout (which fits its text); else the text alone.
        if (size !== lastBox) { lastBox = size; layoutMap(false); scheduleTiles(); scheduleShapes(); }
      }).observe(mapBox);
    }
  }

  // -- freshness, clock, night ---------------------------------------------------------------
  var freshText = $("freshness-text");
  var lastFreshText = null;

  function freshness(feed) {
    if (link.unpaired) return t(isPhone ? "phone_revoked" : config.preview ? "preview_ended" : "unpaired");
    if (model.contactAt === null && !Object.keys(model.rooms).length) return t("feed_connecting");
    var contactTime = model.contactWall ? fmtTime(model.contactWall) : "–";
    if (noContact()) return t("feed_no_contact", { time: contactTime });
    if (!linkUp()) return t("feed_reconnecting", { time: contactTime });
    if (feed === "stale") {
      // Connected, so say what the server knows about Density, not "connecting".
      if (!model.feed) return t("feed_connecting");
      if (waitingForDensity()) return t("feed_waiting");
      var heard = heardWall();
      return heard ? t("feed_density_since", { time: fmtTime(heard) }) : t("feed_density");
    }
    if (feed === "polling") {
      var age = model.heardAge === null || model.heardAge === undefined ? sinceContactS()
        : model.heardAge + (perf() - model.heardAt) / 1000;
      age = Math.max(0, Math.round(age));
      return age < 120 ? t("feed_updated_s", { n: age }) : t("feed_updated_min", { n: Math.round(age / 60) });
    }
    return t("feed_live");
  }

  var wasNoContact = false;
  function renderFreshness() {
    var feed = pageFeed();
    if (root.dataset.feed !== feed) {
      var wasStale = root.dataset.feed === "stale";
      root.dataset.feed = feed;
      if (wasStale !== (feed === "stale") && routesFrom()) renderList();
    }
    var text = freshness(feed);
    if (freshText && text !== lastFreshText) { lastFreshText = text; freshText.textContent = text; }
    var nc = noContact();
    if (nc !== wasNoContact) { wasNoContact = nc; Object.keys(tiles).forEach(function (id) { renderTile(id); }); renderShapes(); renderList(); }
    renderRoute();
  }

  function renderAll() {
    Object.keys(tiles).forEach(function (id) { renderTile(id); });
    renderShapes();
    renderList();
    renderFreshness();
    renderBookingNote();
    var floorName = $("floor-name");
    if (floorName && model.floor && model.floor.name && floorName.textContent !== model.floor.name) floorName.textContent = model.floor.name;
  }

  var clockTime = $("clock-time"), clockDate = $("clock-date"), nightClock = $("night-clock");
  var lastClock = "", lastDate = "";
  function parseHM(s) {
    var m = /^(\d{1,2}):(\d{2})$/.exec(s || "");
    return m ? parseInt(m[1], 10) * 60 + parseInt(m[2], 10) : null;
  }
  function isNight(parts) {
    var night = settings.night;
    if (!night || isPhone) return false;
    var start = parseHM(night.start), end = parseHM(night.end);
    if (start === null || end === null || start === end) return false;
    var m = parts.hour * 60 + parts.minute;
    return start < end ? m >= start && m < end : m >= start || m < end;
  }

  // A touch at night shows the floor for the idle period; each further touch extends it.
  var wokenUntil = -1;
  function wake() {
    var asleep = root.dataset.night === "on";
    if (!asleep && wokenUntil < perf()) return;
    wokenUntil = perf() + IDLE_S * 1000;
    if (asleep) tickClock();
  }

  var shift = { x: 0, y: 0, at: -1e9 };
  function tickClock() {
    var now = wallNow();
    var time = fmtTime(now);
    if (time !== lastClock) {
      lastClock = time;
      if (clockTime) clockTime.textContent = time;
      if (nightClock) nightClock.textContent = time;
    }
    var date = formatter("date").format(new Date(now));
    if (date !== lastDate) { lastDate = date; if (clockDate) clockDate.textContent = date; }
    var parts = localParts(now);
    var night = isNight(parts) && perf() >= wokenUntil ? "on" : "off";
    if (root.dataset.night !== night) root.dataset.night = night;
    // A slow pixel shift against burn-in: a step of a few pixels each minute (night clock)
    // or every ten minutes (the day layout).
    var every = night === "on" ? 60e3 : 600e3;
    if (perf() - shift.at > every) {
      shift.at = perf();
      var span = night === "on" ? 60 : 3;
      shift.x = Math.max(-span, Math.min(span, shift.x + Math.round((Math.random() - 0.5) * span)));
      shift.y = Math.max(-span, Math.min(span, shift.y + Math.round((Math.random() - 0.5) * span)));
      root.style.setProperty("--shift-x", shift.x + "px");
      root.style.setProperty("--shift-y", shift.y + "px");
    }
    return parts;
  }

  // -- self-healing ----------------------------------------------------------------------------
  var reloading = false;
  function safeReload(why) {
    // Only reload when the server answers the page: a reload into a dead server would show a
    // browser error page (the service worker covers that, but only in a secure context).
    if (reloading) return;
    reloading = true;
    stats.reloads++;
    var delay = why === "version" ? Math.random() * 2000 : 0;
    setTimeout(function () {
      // A console preview's page is the admin's (their session's cookie asks for it); a
      // screen's page needs no cookie.
      fetch(location.href, { cache: "no-store", credentials: config.preview ? "same-origin" : "omit" })
        .then(function (res) {
          if (!res.ok) throw new Error("status " + res.status);
          save();
          location.reload();
        })
        .catch(function () { reloading = false; });
    }, delay);
  }

  var nightlyKey = (config.storage_key || "signage") + ":nightly";
  function nightlyReload(parts) {
    if (isPhone || reloading) return;
    if (parts.hour !== RELOAD_HOUR || parts.minute < RELOAD_MINUTE) return;
    if ((perf() - startedAt) / 1000 < RELOAD_MIN_UPTIME_S) return;
    try {
      if (localStorage.getItem(nightlyKey) === parts.day) return;
      localStorage.setItem(nightlyKey, parts.day);
    } catch (e) { return; }
    safeReload("nightly");
  }

  var identifyTimer = null;
  function identify() {
    var box = $("identify");
    if (!box) return;
    box.hidden = false;
    root.dataset.identify = "on";
    clearTimeout(identifyTimer);
    identifyTimer = setTimeout(function () { box.hidden = true; root.dataset.identify = "off"; }, 8000);
  }

  function unpair() {
    link.unpaired = true;
    link.socketLive = false;
    stopPolling();
    clearTimeout(reconnectTimer);
    if (ws) { var s = ws; ws = null; s.onclose = null; try { s.close(); } catch (e) { /* gone */ } }
    root.dataset.paired = "no";
    var box = $("unpaired");
    if (box) box.hidden = false;
    renderFreshness();
    // The server answered (it refused the credential): hand the screen back to pairing so
    // it shows a new code instead of waiting for someone to come and reload it.
    // A console preview stays where it is: the console's browser is no screen to pair.
    if (!isPhone && !config.preview) setTimeout(function () { location.assign("/pair"); }, 5000);
  }

  // -- localStorage: never blank after a reload ------------------------------------------------
  var saveTimer = null;
  function scheduleSave() {
    if (saveTimer) return;
    saveTimer = setTimeout(function () { saveTimer = null; save(); }, 3000);
  }
  function save() {
    if (!config.storage_key || !Object.keys(model.rooms).length || model.contactAt === null) return;
    var now = perf();
    var rooms = {};
    Object.keys(model.rooms).forEach(function (id) {
      var r = model.rooms[id], copy = {};
      Object.keys(r).forEach(function (k) { if (k !== "_at") copy[k] = r[k]; });
      if (typeof r.since_s === "number") copy.since_s = r.since_s + (model.contactAt - r._at) / 1000;
      rooms[id] = copy;
    });
    var data = {
      type: "snapshot", epoch: model.epoch, seq: model.seq, feed: model.feed, feed_reason: model.feedReason,
      heard_age_s: model.heardAge === null ? null : model.heardAge + (model.contactAt - model.heardAt) / 1000,
      floor: model.floor, display: model.display, rooms: rooms,
      server_time: new Date(model.contactWall).toISOString(),
      saved_at: Date.now() - (now - model.contactAt)
    };
    try { localStorage.setItem(config.storage_key, JSON.stringify(data)); } catch (e) { /* full or off */ }
  }
  function load() {
    try { return JSON.parse(localStorage.getItem(config.storage_key) || "null"); } catch (e) { return null; }
  }

  // -- the accent on the contrast theme ----------------------------------------------------------
  // The accent as lines on black: lightened in OKLab until it reaches 4.5:1, in the steps of
  // signage/core/branding.py's legible_on (the console checks that colour; a test compares the
  // two). The default blue is 3.10:1 on black as it is.
  function lin(c) { c /= 255; return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }
  function hexRGB(hex) { return [1, 3, 5].map(function (i) { return parseInt(hex.substr(i, 2), 16); }); }
  function lum(hex) { var c = hexRGB(hex).map(lin); return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; }
  function ratio(a, b) { var x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); }
  function fromOKLab(L, a, b) {
    var l = Math.pow(L + 0.3963377774 * a + 0.2158037573 * b, 3);
    var m = Math.pow(L - 0.1055613458 * a - 0.0638541728 * b, 3);
    var s = Math.pow(L - 0.0894841775 * a - 1.2914855480 * b, 3);
    return "#" + [
      4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
      -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
      -0.0043196266 * l - 0.7034186147 * m + 1.7076147010 * s
    ].map(function (v) {
      v = Math.min(Math.max(v, 0), 1);
      v = Math.min(Math.max(v <= 0.0031308 ? 12.92 * v : 1.055 * Math.pow(v, 1 / 2.4) - 0.055, 0), 1);
      return ("0" + Math.floor(v * 255 + 0.5).toString(16)).slice(-2);
    }).join("");
  }
  function legibleOn(hex, bg) {
    hex = hex.toLowerCase();
    if (ratio(hex, bg) >= 4.5) return hex;
    var c = hexRGB(hex).map(lin);
    var q = [
      0.4122214708 * c[0] + 0.5363325363 * c[1] + 0.0514459929 * c[2],
      0.2119034982 * c[0] + 0.6806995451 * c[1] + 0.1073969566 * c[2],
      0.0883024619 * c[0] + 0.2817188376 * c[1] + 0.6299787005 * c[2]
    ].map(function (v) { return Math.pow(Math.max(v, 0), 1 / 3); });
    var L = 0.2104542553 * q[0] + 0.7936177850 * q[1] - 0.0040720468 * q[2];
    var a = 1.9779984951 * q[0] - 2.4285922050 * q[1] + 0.4505937099 * q[2];
    var b = 0.0259040371 * q[0] + 0.7827717662 * q[1] - 0.8086757660 * q[2];
    for (var step = 1; step <= 100; step++) {
      var out = fromOKLab(L + (1 - L) * step / 100, a, b);
      if (ratio(out, bg) >= 4.5) return out;
    }
    return "#ffffff";
  }

  // -- start -----------------------------------------------------------------------------------
  function applyLook() {
    if (settings.brand_color && /^#[0-9a-fA-F]{6}$/.test(settings.brand_color)) {
      root.style.setProperty("--brand", settings.brand_color);
    }
    if (root.dataset.theme === "contrast") {
      var brand = getComputedStyle(root).getPropertyValue("--brand").trim();
      if (/^#[0-9a-fA-F]{6}$/.test(brand)) root.style.setProperty("--brand-legible", legibleOn(brand, "#000000"));
    }
    if (!settings.orientation && !isPhone) {
      var rot = parseInt(root.dataset.rotation || "0", 10);
      var w = rot === 90 || rot === 270 ? innerHeight : innerWidth;
      var h = rot === 90 || rot === 270 ? innerWidth : innerHeight;
      var o = w >= h ? "landscape" : "portrait";
      if (root.dataset.orientation !== o) root.dataset.orientation = o;
    }
  }

  function start() {
    applyLook();
    var fromCache = root.dataset.shell === "cache";
    var stored = isPhone ? null : load();
    var initial = embedded;
    var restored = fromCache;
    if (stored && stored.rooms && (!embedded || fromCache || Date.parse(stored.server_time) > Date.parse(embedded.server_time))) {
      initial = stored;
      restored = true;
    }
    bindServerMap();
    bindServerList();
    bindTouch();
    if (initial) {
      model.floor = initial.floor || null;
      model.display = initial.display || null;
      var at = perf();
      Object.keys(initial.rooms || {}).forEach(function (id) { applyRoom(initial.rooms[id], at); });
      applyMeta(initial);
      if (restored) {
        // How long ago we last heard from the server, by the device clock (all there is
        // across a reload); a clock that went backwards counts as too long ago.
        var ago = initial.saved_at ? (Date.now() - initial.saved_at) / 1000 : Infinity;
        if (!(ago >= 0)) ago = Infinity;
        model.contactAt = isFinite(ago) ? perf() - ago * 1000 : -1e12;
        setClock(Date.parse(initial.server_time) + (isFinite(ago) ? ago * 1000 : 0), false);
        if (testClock.now !== undefined) setClock(testClock.now, true);
        model.contactWall = Date.parse(initial.server_time);
        model.epoch = null; // the next snapshot replaces everything
      } else {
        contact(initial);
        if (isPhone) link.pollOkAt = perf();
      }
    }
    link.restored = restored;
    var ids = roomIdsKey();
    var have = Object.keys(tiles).sort().join(",");
    layoutMap(ids !== have);
    Object.keys(tiles).forEach(function (id) { renderTile(id, true); });
    fitTiles(true);
    buildPlanMap();
    renderAll();
    tickClock();
    var wanted = isPhone ? params.get("room") : null;
    if (wanted && model.rooms[wanted]) {
      // Opened from a kiosk's QR code: show that room and the way to it from the kiosk.
      select(wanted);
      var panel = $("map-box");
      if (panel && panel.scrollIntoView) panel.scrollIntoView({ block: "center" });
    }

    if (isPhone) startPolling();
    else {
      connect();
      registerServiceWorker();
    }
    setInterval(tick, 1000);
    var resizeTimer = null;
    addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        applyLook(); layoutMap(false); fitTiles(); buildPlanMap(); scheduleFit(null);
        stats.resizes++;  // for tests: the page has laid itself out for its new size
      }, 200);
    });
    addEventListener("pagehide", save);
  }

  function tick() {
    var parts = tickClock();
    if (ws && ws.readyState === 1 && perf() - lastMsgAt > (3 * HEARTBEAT_S + 1) * 1000) drop();
    else if (ws && ws.readyState === 0 && perf() - lastMsgAt > 8000) drop();
    if (!isPhone && link.socketLive && perf() - lastHeartbeatSent > SEND_HEARTBEAT_S * 1000) sendHeartbeat();
    renderFreshness();
    tickList();
    tickBookings();
    nightlyReload(parts);
  }

  function registerServiceWorker() {
    if (!config.sw || !("serviceWorker" in navigator) || !window.isSecureContext) return;
    navigator.serviceWorker.register(config.sw, { scope: "/kiosk/" }).catch(function () { /* optional */ });
  }

  window.signageKiosk = {
    layout: layout,
    setClock: function (v) { setClock(v, true); tick(); },
    apply: function (msg) { onMessage(msg, "test"); },
    select: function (id) { select(id); },
    idle: function () { goIdle(); },
    stats: stats,
    state: function () {
      return {
        feed: root.dataset.feed, serverFeed: model.feed, epoch: model.epoch, seq: model.seq,
        socketLive: link.socketLive, polling: polling, restored: link.restored,
        sinceContactS: sinceContactS(), rooms: Object.keys(model.rooms).length, failures: failures
      };
    }
  };

  start();
})();
