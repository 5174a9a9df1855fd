// The floor editor: room outlines, doors, corridors and "you are here" over a floor's plan.
// The drawing is kept as the very document the server checks (signage/core/layout.py) and is saved
// as the floor's draft (by itself every few seconds, or with Save draft) with the revision it was
// loaded at, so two admins never overwrite each other unnoticed. Screens keep the published layout
// until Publish (signage/actions/drafts.py). Every string from the server enters the page through
// textContent or setAttribute.
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var config = JSON.parse(document.getElementById("editor-config").textContent);
  var svg = document.getElementById("canvas");
  var root = document.getElementById("editor");
  var POLL_MS = 5000;
  var HISTORY = 100;
  var AUTOSAVE_MS = 2000;  // a draft is saved this long after the last change at the latest
  var SNAP_PX = 8;         // a point this close (screen pixels) to a corner or an edge lands on it
  var MIN_RECT_PX = 6;     // a drag shorter than this is a click, not a rectangle

  var HINTS = {
    select: "Click an outline, door, corridor node, segment or marker to select it; drag its " +
      "points to move them, or drag inside a room to move it whole (the arrow keys move the " +
      "selection too; Shift for bigger steps). Delete removes the selection (a point, a door or " +
      "the whole room).",
    rect: "Drag from one corner of a room to the opposite one, then choose its Density space. " +
      "Corners snap to the plan's edges and to other rooms' corners and walls (S turns snapping " +
      "on and off). Escape discards the outline.",
    room: "Click the corners of a room one by one (Backspace takes back the last). Click the " +
      "first point again (or press Enter) to close the outline, then choose its Density space. " +
      "Corners snap to the plan's edges and other rooms (S turns snapping on and off). Escape " +
      "discards the outline.",
    door: "Select a room (here, in the list or with Select), then click where its door is. " +
      "Routes on the kiosks end at the door. A door snaps onto a nearby wall (S turns snapping " +
      "on and off).",
    corridor: "Click to add corridor points; each click joins the previous one. Click an " +
      "existing point to join it. Escape ends the chain. Select a point to mark it as stairs or " +
      "lift. Points snap to nearby corners, walls and plan edges (S turns snapping on and off).",
    here: "Choose a display, then click where its screen stands. Kiosks draw routes from there."
  };

  var state = {
    version: 0,
    layout: null,
    plan: null,
    spaces: [],
    spacesKnown: true,
    displays: [],
    savedHere: {},
    tool: "select",
    selection: null,   // {type: "room", id, vertex?, door?} | {type: "node", id} | {type: "edge", index} | {type: "here", id}
    draft: [],         // the outline being drawn
    pending: null,     // a closed outline waiting for its space
    chain: null,       // the corridor node the next click joins
    history: [],
    dirty: false,
    live: {},
    drag: null,
    nudged: null,      // what the last arrow key moved (a held key is one Undo step)
    saving: false,
    warnings: [],      // what the server said at load (Density away, misplaced displays...)
    loadedGone: [],    // outlines whose space was not a room of the floor when loaded
    warningsKey: null,
    spaceChoiceKey: null,
    published: null,   // {version, updated_at, updated_by} of what screens show, or null
    publishedHere: {}, // display id -> "you are here" as published
    draftInfo: null,   // the server's view of the draft (revision, diff...), or null
    revision: 0,       // the draft's revision this drawing was loaded or saved at (0: none)
    savedKey: null,    // the drawing as last saved (or loaded): anything else is unsaved
    versions: [],
    snap: true,
    snapHit: null,     // where the pointer would land now: {p, kind}
    rect: null,        // the rectangle being dragged: {start, end}
    orientations: {}   // display id -> "landscape" | "portrait" | "" (follows its screen)
  };

  function $(id) { return document.getElementById(id); }

  function make(tag, attrs, parent) {
    var node = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function status(message, kind) {
    var box = $("editor-status");
    box.textContent = message || "";
    box.dataset.kind = kind || "info";
    box.setAttribute("role", kind === "error" ? "alert" : "status");
  }

  // A refusal in the status line. A conflict (409: the draft was published, saved or discarded
  // elsewhere; the server's message says which, by whom and when) offers Reload, which loads
  // the floor as it is now: this tab's drawing cannot be saved over it.
  function refused(prefix, res) {
    status(prefix + res.message, "error");
    if (res.status !== 409) return;
    var again = html("button", "Reload");
    again.type = "button";
    again.id = "status-reload";
    again.className = "status-reload";
    again.addEventListener("click", function () {
      status("Loading the floor as it is now…");
      load().then(function (ok) {
        if (ok) status("Reloaded: this is the floor's draft (or published layout) as it is now.", "ok");
        refreshPreview();
      });
    });
    var box = $("editor-status");
    box.appendChild(document.createTextNode(" "));
    box.appendChild(again);
  }

  // -- the model ---------------------------------------------------------------------------------
  function spaceName(id) {
    for (var i = 0; i < state.spaces.length; i++) {
      if (state.spaces[i].id === id) return shownName(state.spaces[i]);
    }
    return id;
  }

  function isGone(id) {
    if (!state.spacesKnown) return false;
    return !state.spaces.some(function (s) { return s.id === id; });
  }

  // Two decimals, as the server stores coordinates (layout.py), without float noise.
  function round2(v) { return Math.round(v * 100) / 100; }

  function goneIds() {
    return Object.keys(state.layout.rooms).filter(isGone);
  }

  // The arrow keys' step in plan units: about a pixel of a plan drawn at a usual size.
  function nudgeStep() {
    var side = Math.max(state.layout.width, state.layout.height);
    return Math.max(0.1, Math.pow(10, Math.floor(Math.log10(side / 200))));
  }
  // A room as the admin reads it: its display name in the browser's language (en/de/fr, as the
  // server picks for the console), else Density's name (kept in the room's title).
  var NAME_LANG = (navigator.languages || [navigator.language || "en"]).map(function (l) {
    return String(l).slice(0, 2).toLowerCase();
  }).filter(function (l) { return l === "en" || l === "de" || l === "fr"; })[0] || "en";
  function shownName(s) {
    return (s.display_names && s.display_names[NAME_LANG]) || s.name || s.id;
  }

  // One coordinate moved by d and kept on the plan (0..max); a point already off the plan (a
  // smaller plan was uploaded since) may come back towards it but never moves further away.
  function within(v, d, max) {
    return Math.min(Math.max(round2(v + d), Math.min(v, 0)), Math.max(v, max));
  }

  // Moves a room's outline and door together from where they were (`outline`, `door`) by
  // (dx, dy), held back at the plan's edges. The shift is limited, not each point, so the room
  // keeps its shape; one that overhangs moves freely back in but no further out (no jump).
  function shiftRoom(room, outline, door, dx, dy) {
    var L = state.layout;
    var all = door ? outline.concat([door]) : outline;
    var xs = all.map(function (p) { return p[0]; }), ys = all.map(function (p) { return p[1]; });
    dx = Math.min(Math.max(dx, -Math.max(0, Math.min.apply(null, xs))),
      Math.max(0, L.width - Math.max.apply(null, xs)));
    dy = Math.min(Math.max(dy, -Math.max(0, Math.min.apply(null, ys))),
      Math.max(0, L.height - Math.max.apply(null, ys)));
    function move(p) { return [within(p[0], dx, L.width), within(p[1], dy, L.height)]; }
    room.outline = outline.map(move);
    room.door = door ? move(door) : null;
  }

  function snapshot() {
    var heres = {};
    state.displays.forEach(function (d) { heres[d.id] = d.here; });
    return JSON.stringify({ layout: state.layout, heres: heres });
  }

  // Called before every change: what Undo goes back to.
  function remember() {
    state.history.push(snapshot());
    if (state.history.length > HISTORY) state.history.shift();
    state.dirty = true;
  }

  function undo() {
    var last = state.history.pop();
    if (!last) return;
    var saved = JSON.parse(last);
    state.layout = saved.layout;
    state.displays.forEach(function (d) { d.here = saved.heres[d.id] || null; });
    // A room still there stays selected, so the arrow keys go on moving it after an Undo.
    var sel = state.selection;
    var room = sel && sel.type === "room" ? state.layout.rooms[sel.id] : null;
    state.selection = room ? { type: "room", id: sel.id } : null;
    state.draft = [];
    state.chain = null;
    state.nudged = null;
    hidePending();
    state.dirty = true;
    syncFields();
    status("Undone.");
    render();
  }

  function nodeById(id) {
    var nodes = state.layout.nodes;
    for (var i = 0; i < nodes.length; i++) if (nodes[i].id === id) return nodes[i];
    return null;
  }

  function nextNodeId() {
    var max = 0;
    state.layout.nodes.forEach(function (n) {
      var m = /^n(\d+)$/.exec(n.id);
      if (m) max = Math.max(max, parseInt(m[1], 10));
    });
    return "n" + (max + 1);
  }

  function addEdge(a, b) {
    if (a === b) return;
    var exists = state.layout.edges.some(function (e) {
      return (e[0] === a && e[1] === b) || (e[0] === b && e[1] === a);
    });
    if (!exists) state.layout.edges.push([a, b]);
  }

  function centroid(points) {
    var x = 0, y = 0;
    points.forEach(function (p) { x += p[0]; y += p[1]; });
    return [x / points.length, y / points.length];
  }

  function inside(point, outline) {
    var hit = false;
    for (var i = 0, j = outline.length - 1; i < outline.length; j = i++) {
      var a = outline[i], b = outline[j];
      if ((a[1] > point[1]) !== (b[1] > point[1]) &&
          point[0] < (b[0] - a[0]) * (point[1] - a[1]) / (b[1] - a[1]) + a[0]) hit = !hit;
    }
    return hit;
  }

  // -- coordinates -------------------------------------------------------------------------------
  function unitsPerPixel() {
    var ctm = svg.getScreenCTM();
    return ctm && ctm.a ? 1 / ctm.a : 1;
  }

  function toPoint(evt) {
    var ctm = svg.getScreenCTM();
    var pt = svg.createSVGPoint();
    pt.x = evt.clientX;
    pt.y = evt.clientY;
    var p = pt.matrixTransform(ctm.inverse());
    var w = state.layout.width, h = state.layout.height;
    return [
      Math.round(Math.min(w, Math.max(0, p.x)) * 10) / 10,
      Math.round(Math.min(h, Math.max(0, p.y)) * 10) / 10
    ];
  }

  function near(a, b, px) {
    var k = unitsPerPixel();
    return Math.hypot(a[0] - b[0], a[1] - b[1]) <= px * k;
  }

  // The point of segment a-b nearest to p.
  function nearestOnSegment(p, a, b) {
    var dx = b[0] - a[0], dy = b[1] - a[1];
    var len = dx * dx + dy * dy;
    var t = len ? ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len : 0;
    t = Math.max(0, Math.min(1, t));
    return [a[0] + t * dx, a[1] + t * dy];
  }

  // Where a point drawn at p lands: on another room's corner, else on another room's wall, else
  // (each axis apart) on the plan's edge, when one is within SNAP_PX screen pixels. Rooms drawn
  // side by side then share their walls exactly, and no sliver is left between them. A door
  // (`wallsOnly`) lands on a wall, its own room's included, never on a corner: a door is in a
  // wall, and a corner would leave no side of it to walk through.
  function snapped(p, skipRoom, wallsOnly) {
    if (!state.snap || !state.layout) return { p: p, kind: null };
    var L = state.layout;
    var tol = SNAP_PX * unitsPerPixel();
    var best = null, bestD = tol;
    var ids = Object.keys(L.rooms).filter(function (sid) { return sid !== skipRoom; });
    if (!wallsOnly) ids.forEach(function (sid) {
      L.rooms[sid].outline.forEach(function (q) {
        var d = Math.hypot(q[0] - p[0], q[1] - p[1]);
        if (d <= bestD) { bestD = d; best = { p: [q[0], q[1]], kind: "corner" }; }
      });
    });
    if (best) return best;
    bestD = tol;
    ids.forEach(function (sid) {
      var o = L.rooms[sid].outline;
      for (var i = 0; i < o.length; i++) {
        var q = nearestOnSegment(p, o[i], o[(i + 1) % o.length]);
        var d = Math.hypot(q[0] - p[0], q[1] - p[1]);
        if (d <= bestD) { bestD = d; best = { p: [round2(q[0]), round2(q[1])], kind: "wall" }; }
      }
    });
    if (best || wallsOnly) return best || { p: p, kind: null };
    var x = p[0], y = p[1], hit = false;
    if (x <= tol) { x = 0; hit = true; } else if (L.width - x <= tol) { x = L.width; hit = true; }
    if (y <= tol) { y = 0; hit = true; } else if (L.height - y <= tol) { y = L.height; hit = true; }
    return { p: [x, y], kind: hit ? "edge" : null };
  }

  function rectCorners(a, b) {
    return [[a[0], a[1]], [b[0], a[1]], [b[0], b[1]], [a[0], b[1]]];
  }

  // Makes each room's name fit its room: smaller type down to MIN_LABEL_PX on screen, then the
  // name cut with "…" (the whole name stays in the room's tooltip and in the room list). A narrow
  // window shrinks the plan to a few hundred pixels, where 14 px names ran into each other.
  var MIN_LABEL_PX = 9;
  function fitLabels(labels) {
    var k = unitsPerPixel();
    labels.forEach(function (item) {
      var xs = item.outline.map(function (p) { return p[0]; });
      var ys = item.outline.map(function (p) { return p[1]; });
      var roomW = Math.max.apply(null, xs) - Math.min.apply(null, xs) - 6 * k;
      var roomH = Math.max.apply(null, ys) - Math.min.apply(null, ys) - 4 * k;
      var box;
      try { box = item.label.getBBox(); } catch (e) { return; }
      if (!box.width || (box.width <= roomW && box.height <= roomH)) return;
      var size = parseFloat(item.label.getAttribute("font-size"));
      // 0.95: type does not shrink exactly in proportion (hinting), and a name that only just
      // misses after scaling would otherwise lose its last letter to "…".
      var fit = 0.95 * Math.min(roomW / box.width, roomH / box.height);
      var scale = Math.max(MIN_LABEL_PX * k / size, fit);
      item.parts.forEach(function (node) {
        node.setAttribute("font-size", String(parseFloat(node.getAttribute("font-size")) * scale));
      });
      var full = item.label.textContent;
      var title = document.createElementNS(SVGNS, "title");
      title.textContent = full;
      var text = full;
      while (text.length > 1 && item.label.getComputedTextLength() > roomW) {
        text = text.slice(0, -1);
        item.label.textContent = text.replace(/\s+$/, "") + "…";
      }
      item.label.parentNode.appendChild(title);  // the room's tooltip (its name has none: no pointer)
      item.label.setAttribute("data-fitted", text === full ? "smaller" : "cut");
    });
  }

  // Moves each room's name off corridor points and off names already placed: tried at the
  // room's centre, then above and below it, then to the sides; the first place clear of them
  // all wins (else the centre). The boxes are the rendered text's own, so long names are
  // measured, not guessed.
  function placeLabels(labels) {
    var nodes = state.layout.nodes;
    var k = unitsPerPixel();
    var placed = [];
    labels.forEach(function (item) {
      var box;
      try { box = item.label.getBBox(); } catch (e) { return; }
      if (!box.width) return;
      var pad = 3 * k;
      function clear(dx, dy) {
        var x0 = box.x + dx, y0 = box.y + dy;
        var apart = placed.every(function (b) {
          return x0 + box.width + pad <= b.x || b.x + b.width + pad <= x0 ||
            y0 + box.height <= b.y || b.y + b.height <= y0;
        });
        return apart && nodes.every(function (n) {
          var r = (n.kind === "corridor" ? 5 : 9) * k + pad;
          var cx = Math.max(x0, Math.min(n.x, x0 + box.width));
          var cy = Math.max(y0, Math.min(n.y, y0 + box.height));
          return Math.hypot(n.x - cx, n.y - cy) > r;
        });
      }
      var h = box.height + 4 * k, w = box.width / 2 + 12 * k;
      var tries = [[0, 0], [0, -h], [0, h], [0, -2 * h], [0, 2 * h], [-w, 0], [w, 0],
        [-w, -h], [w, -h], [-w, h], [w, h]];
      var inRoom = tries.filter(function (t) {
        return inside([item.c[0] + t[0], item.c[1] + t[1]], item.outline);
      });
      var pick = inRoom.concat(tries).filter(function (t) { return clear(t[0], t[1]); })[0];
      if (!pick || (!pick[0] && !pick[1])) {
        placed.push(box);
        return;
      }
      item.parts.forEach(function (node) {
        node.setAttribute("x", String(parseFloat(node.getAttribute("x")) + pick[0]));
        node.setAttribute("y", String(parseFloat(node.getAttribute("y")) + pick[1]));
      });
      placed.push({ x: box.x + pick[0], y: box.y + pick[1], width: box.width, height: box.height });
      item.label.setAttribute("data-moved", "true");
    });
    return placed;
  }

  // Whether the segment a-b passes through the box (Liang-Barsky clipping).
  function segmentHitsBox(a, b, box) {
    var t0 = 0, t1 = 1, dx = b.x - a.x, dy = b.y - a.y;
    var p = [-dx, dx, -dy, dy];
    var q = [a.x - box.x, box.x + box.width - a.x, a.y - box.y, box.y + box.height - a.y];
    for (var i = 0; i < 4; i++) {
      if (p[i] === 0) {
        if (q[i] < 0) return false;
      } else {
        var r = q[i] / p[i];
        if (p[i] < 0) { if (r > t1) return false; if (r > t0) t0 = r; }
        else { if (r < t0) return false; if (r < t1) t1 = r; }
      }
    }
    return true;
  }

  // Places each "You are here: <display>" label beside its marker where it covers no corridor
  // point, corridor line, room name or other such label, and stays on the plan: tried to the
  // right (as before), left, above, below, then the diagonals and further out; the first clear
  // place wins (else the right). It sat on the corridor line its marker is usually put on.
  function placeHereLabels(items, taken) {
    var L = state.layout, k = unitsPerPixel(), pad = 3 * k, gap = 12 * k;
    var placed = taken.slice();
    items.forEach(function (item) {
      var box;
      try { box = item.label.getBBox(); } catch (e) { return; }
      if (!box.width) return;
      var w = box.width, h = box.height, mx = item.at[0], my = item.at[1];
      var spots = [
        [mx + gap, my - h / 2], [mx - gap - w, my - h / 2],
        [mx - w / 2, my - gap - h], [mx - w / 2, my + gap],
        [mx + gap * 0.7, my - gap * 0.7 - h], [mx + gap * 0.7, my + gap * 0.7],
        [mx - gap * 0.7 - w, my - gap * 0.7 - h], [mx - gap * 0.7 - w, my + gap * 0.7],
        [mx - w / 2, my - 2 * gap - 2 * h], [mx - w / 2, my + 2 * gap + h],
        [mx + gap, my - 2 * gap - h], [mx + gap, my + 2 * gap]
      ];
      function clear(x0, y0) {
        var b = { x: x0 - pad, y: y0 - pad, width: w + 2 * pad, height: h + 2 * pad };
        if (x0 < 0 || y0 < 0 || x0 + w > L.width || y0 + h > L.height) return false;
        var apart = placed.every(function (o) {
          return b.x + b.width <= o.x || o.x + o.width <= b.x ||
            b.y + b.height <= o.y || o.y + o.height <= b.y;
        });
        if (!apart) return false;
        var nodesClear = L.nodes.every(function (n) {
          var r = (n.kind === "corridor" ? 5 : 9) * k;
          var cx = Math.max(b.x, Math.min(n.x, b.x + b.width));
          var cy = Math.max(b.y, Math.min(n.y, b.y + b.height));
          return Math.hypot(n.x - cx, n.y - cy) > r;
        });
        return nodesClear && L.edges.every(function (e) {
          var a = nodeById(e[0]), c = nodeById(e[1]);
          return !a || !c || !segmentHitsBox(a, c, b);
        });
      }
      var pick = spots.filter(function (s) { return clear(s[0], s[1]); })[0] || spots[0];
      var dx = pick[0] - box.x, dy = pick[1] - box.y;
      item.label.setAttribute("x", String(parseFloat(item.label.getAttribute("x")) + dx));
      item.label.setAttribute("y", String(parseFloat(item.label.getAttribute("y")) + dy));
      placed.push({ x: pick[0], y: pick[1], width: w, height: h });
      if (pick !== spots[0]) item.label.setAttribute("data-moved", "true");
    });
  }

  // -- drawing -----------------------------------------------------------------------------------
  function render() {
    if (!state.layout) return;
    var L = state.layout;
    // The viewBox first: the scale is read from it (the page's first drawing read the
    // template's 1000×700, so type and dots came out 2.5 times too big on a 400-wide plan).
    svg.setAttribute("viewBox", "0 0 " + L.width + " " + L.height);
    var k = unitsPerPixel();
    while (svg.firstChild) svg.removeChild(svg.firstChild);

    var defs = make("defs", {}, svg);
    var step = Math.max(10, Math.round(Math.max(L.width, L.height) / 40));
    var pattern = make("pattern", { id: "grid", width: step, height: step, patternUnits: "userSpaceOnUse" }, defs);
    make("path", { d: "M " + step + " 0 L 0 0 0 " + step, "class": "grid-line" }, pattern);
    // Orphan outlines are hatched as well as red, so they stand out without colour vision.
    var hatch = make("pattern", {
      id: "orphan-hatch", width: 8 * k, height: 8 * k, patternUnits: "userSpaceOnUse",
      patternTransform: "rotate(45)"
    }, defs);
    make("line", { x1: 0, y1: 0, x2: 0, y2: 8 * k, "class": "hatch-line" }, hatch);
    make("rect", { x: 0, y: 0, width: L.width, height: L.height, "class": "backdrop" }, svg);
    if (state.plan && state.plan.url) {
      make("image", {
        href: state.plan.url, x: 0, y: 0, width: L.width, height: L.height,
        preserveAspectRatio: "xMidYMid meet", "class": "plan-image"
      }, svg);
    } else {
      make("rect", { x: 0, y: 0, width: L.width, height: L.height, fill: "url(#grid)", "class": "grid" }, svg);
    }

    var showLive = $("live").checked;
    var labels = [];
    var roomsLayer = make("g", { "class": "rooms" }, svg);
    Object.keys(L.rooms).forEach(function (sid) {
      var room = L.rooms[sid];
      var sel = state.selection && state.selection.type === "room" && state.selection.id === sid;
      var live = state.live[sid] && state.live[sid].state;
      var gone = isGone(sid);
      var g = make("g", {
        "class": "room-shape" + (sel ? " selected" : "") + (gone ? " gone" : ""),
        "data-space-id": sid,
        "data-state": showLive && live ? live : "none"
      }, roomsLayer);
      if (gone) g.setAttribute("data-orphan", "true");
      make("polygon", {
        points: room.outline.map(function (p) { return p[0] + "," + p[1]; }).join(" "),
        "data-role": "room", "data-room": sid
      }, g);
      var c = centroid(room.outline);
      var label = make("text", {
        x: c[0], y: c[1], "font-size": 14 * k, "class": "room-label", "data-label-for": sid
      }, g);
      label.textContent = (gone ? "⚠ " : "") + spaceName(sid);
      var parts = [label];
      if (gone) {
        var note = make("text", {
          x: c[0], y: c[1] + 17 * k, "font-size": 12 * k, "class": "room-label orphan-label"
        }, g);
        note.textContent = "not on this floor: reassign or delete";
        parts.push(note);
      }
      labels.push({ label: label, parts: parts, c: c, outline: room.outline });
      if (room.door) {
        make("circle", {
          cx: room.door[0], cy: room.door[1], r: 6 * k, "class": "door",
          "data-role": "door", "data-room": sid
        }, g);
      }
    });

    var corridors = make("g", { "class": "corridors" }, svg);
    L.edges.forEach(function (e, i) {
      var a = nodeById(e[0]), b = nodeById(e[1]);
      if (!a || !b) return;
      var sel = state.selection && state.selection.type === "edge" && state.selection.index === i;
      make("line", {
        x1: a.x, y1: a.y, x2: b.x, y2: b.y, "class": "edge" + (sel ? " selected" : ""),
        "data-role": "edge", "data-edge": i
      }, corridors);
    });
    L.nodes.forEach(function (n) {
      var sel = state.selection && state.selection.type === "node" && state.selection.id === n.id;
      var g = make("g", { "class": "node kind-" + n.kind + (sel ? " selected" : "") + (state.chain === n.id ? " chain" : "") }, corridors);
      make("circle", { cx: n.x, cy: n.y, r: (n.kind === "corridor" ? 5 : 9) * k, "data-role": "node", "data-node": n.id }, g);
      if (n.kind !== "corridor") {
        var t = make("text", { x: n.x, y: n.y, "font-size": 11 * k, "class": "node-label" }, g);
        t.textContent = n.kind === "stairs" ? "S" : "L";
      }
    });

    fitLabels(labels);
    var roomNames = placeLabels(labels);

    var heres = make("g", { "class": "heres" }, svg);
    var hereLabels = [];
    state.displays.forEach(function (d) {
      if (!d.here) return;
      var sel = state.selection && state.selection.type === "here" && state.selection.id === d.id;
      var g = make("g", { "class": "here-marker" + (sel ? " selected" : ""), "data-display-id": d.id }, heres);
      make("circle", { cx: d.here[0], cy: d.here[1], r: 8 * k, "data-role": "here", "data-display": d.id }, g);
      var t = make("text", { x: d.here[0] + 12 * k, y: d.here[1], "font-size": 13 * k, "class": "here-label" }, g);
      t.textContent = "You are here: " + d.name;
      hereLabels.push({ label: t, at: d.here });
    });
    placeHereLabels(hereLabels, roomNames);

    // Handles of the selected room: its corners can be dragged.
    if (state.selection && state.selection.type === "room" && L.rooms[state.selection.id]) {
      var handles = make("g", { "class": "handles" }, svg);
      L.rooms[state.selection.id].outline.forEach(function (p, i) {
        make("rect", {
          x: p[0] - 5 * k, y: p[1] - 5 * k, width: 10 * k, height: 10 * k,
          "class": "vertex" + (state.selection.vertex === i ? " selected" : ""),
          "data-role": "vertex", "data-room": state.selection.id, "data-index": i
        }, handles);
      });
    }

    var outline = state.draft.length ? state.draft : (state.pending || []);
    if (outline.length) {
      var draft = make("g", { "class": "draft" }, svg);
      make(state.pending || state.rect ? "polygon" : "polyline", {
        points: outline.map(function (p) { return p[0] + "," + p[1]; }).join(" ")
      }, draft);
      outline.forEach(function (p, i) {
        make("circle", { cx: p[0], cy: p[1], r: (i === 0 ? 8 : 5) * k, "class": i === 0 ? "start" : "" }, draft);
      });
    }
    snapMark = make("circle", { r: 7 * k, "class": "snap-mark", cx: -1000, cy: -1000 }, svg);
    showSnap(state.snapHit);
    renderSide();
  }

  var snapMark = null;

  // A ring where the pointer's point would snap to (nothing when it would not).
  function showSnap(hit) {
    state.snapHit = hit;
    if (!snapMark) return;
    var on = hit && hit.kind;
    snapMark.setAttribute("cx", on ? hit.p[0] : -1000);
    snapMark.setAttribute("cy", on ? hit.p[1] : -1000);
    snapMark.setAttribute("data-kind", on ? hit.kind : "");
  }

  function renderSide() {
    var L = state.layout;
    var list = $("room-list");
    while (list.firstChild) list.removeChild(list.firstChild);
    var drawn = L.rooms;
    state.spaces.forEach(function (s) {
      var li = html("li", null, "room-item" + (drawn[s.id] ? " drawn" : ""));
      li.dataset.spaceId = s.id;
      var name = html(drawn[s.id] ? "button" : "span", shownName(s), drawn[s.id] ? "link-button" : "");
      if (s.name && shownName(s) !== s.name) name.title = "Density: " + s.name;
      if (drawn[s.id]) {
        name.type = "button";
        name.addEventListener("click", function () { select({ type: "room", id: s.id }); });
      }
      li.appendChild(name);
      var live = state.live[s.id] && state.live[s.id].state;
      if (live) {
        var dot = html("span", live, "state state-" + live);
        li.appendChild(dot);
      }
      var tag = drawn[s.id] ? (drawn[s.id].door ? "drawn" : "drawn, no door") : "not drawn";
      li.appendChild(html("span", tag, "room-status"));
      list.appendChild(li);
    });
    Object.keys(drawn).forEach(function (sid) {
      if (!isGone(sid)) return;
      var li = html("li", null, "room-item gone");
      li.dataset.spaceId = sid;
      var name = html("button", "⚠ " + sid, "link-button");
      name.type = "button";
      name.addEventListener("click", function () { select({ type: "room", id: sid }); });
      li.appendChild(name);
      li.appendChild(html("span", "not a room of this floor any more: select it to give it to " +
        "one, or delete it", "room-status"));
      var del = html("button", "Delete", "danger small");
      del.type = "button";
      del.addEventListener("click", function () {
        remember();
        delete state.layout.rooms[sid];
        state.selection = null;
        render();
      });
      li.appendChild(del);
      list.appendChild(li);
    });
    if (!state.spaces.length && !Object.keys(drawn).length) {
      list.appendChild(html("li", "No rooms known for this floor.", "muted"));
    }

    var dl = $("display-list");
    while (dl.firstChild) dl.removeChild(dl.firstChild);
    state.displays.forEach(function (d) {
      var li = html("li", null, "display-item");
      li.dataset.displayId = d.id;
      li.appendChild(html("span", d.name));
      var was = state.publishedHere[String(d.id)] || null;
      var changed = JSON.stringify(d.here || null) !== JSON.stringify(was);
      li.appendChild(html("span", (d.here ? "placed" : "not placed") +
        (changed ? " (in the draft, not published)" : ""), "room-status"));
      dl.appendChild(li);
    });
    if (!state.displays.length) dl.appendChild(html("li", "No display is on this floor yet.", "muted"));

    var sel = state.selection;
    var panel = $("selection-panel");
    panel.hidden = !sel;
    $("node-kind").hidden = !(sel && sel.type === "node");
    renderRoomControls(sel && sel.type === "room" && L.rooms[sel.id] ? sel : null);
    renderWarnings();
    var text = "";
    if (sel && sel.type === "room") {
      text = "Room " + spaceName(sel.id) + (isGone(sel.id) ? " (not a room of this floor any more)" : "") +
        (sel.vertex !== undefined ? ", corner " + (sel.vertex + 1) : sel.door ? ", its door" : "");
    } else if (sel && sel.type === "node") {
      var n = nodeById(sel.id);
      text = "Corridor point " + sel.id + (n ? " (" + n.kind + ")" : "");
    } else if (sel && sel.type === "edge") {
      text = "Corridor segment";
    } else if (sel && sel.type === "here") {
      text = "You are here: " + displayById(sel.id).name;
    }
    $("selection-text").textContent = text;
    $("delete").disabled = !sel;
    $("undo").disabled = !state.history.length;

    var metres = L.metres_across;
    var hint = "";
    if (metres) {
      hint = "1 unit is " + (metres / L.width).toFixed(3) + " m; the floor is " +
        metres.toFixed(1) + " m × " + (metres * L.height / L.width).toFixed(1) + " m.";
    } else {
      hint = "Without it, kiosks show routes without distances.";
    }
    $("scale-hint").textContent = hint;
  }

  // The selected room's panel: how to move it, and the space its outline belongs to.
  function renderRoomControls(sel) {
    var box = $("room-controls");
    box.hidden = !sel;
    if (!sel) {
      state.spaceChoiceKey = null;
      return;
    }
    var step = nudgeStep();
    var what = sel.vertex !== undefined ? "this corner" : sel.door ? "the door" : "the room with its door";
    $("move-hint").textContent = "Drag inside the outline to move the room with its door. " +
      "Arrow keys move " + what + " by " + step + " unit" + (step === 1 ? "" : "s") +
      " (Shift: " + step * 10 + ").";
    // The floor's rooms without an outline, and the current one: an outline is one room's.
    var choices = state.spaces.filter(function (s) {
      return s.id === sel.id || !state.layout.rooms[s.id];
    });
    var key = sel.id + "|" + choices.map(function (s) { return s.id; }).join(",");
    var choose = $("room-space");
    if (key !== state.spaceChoiceKey) {
      // Rebuilt only when the choices change: the live poll must not reset what is chosen.
      state.spaceChoiceKey = key;
      while (choose.firstChild) choose.removeChild(choose.firstChild);
      // A space the list does not hold (gone from the floor, or Density away) is still shown.
      if (!choices.some(function (s) { return s.id === sel.id; })) {
        var current = html("option", sel.id + (isGone(sel.id) ? " (not on this floor)" : " (now)"));
        current.value = sel.id;
        choose.appendChild(current);
      }
      choices.forEach(function (s) {
        var opt = html("option", shownName(s) +
          (s.function ? " · " + s.function.replace(/_/g, " ") : "") +
          (s.id === sel.id ? " (now)" : ""));
        opt.value = s.id;
        choose.appendChild(opt);
      });
      choose.value = sel.id;
    }
    var others = choices.some(function (s) { return s.id !== sel.id; });
    choose.disabled = !others;
    $("room-reassign").disabled = !others;
    $("reassign-hint").textContent = !state.spacesKnown
      ? "The floor's rooms could not be loaded from Density: outlines can be given to another " +
        "space once it answers."
      : others ? "The outline keeps its shape and door."
        : "Every room of this floor has an outline: delete one to give this outline to it.";
  }

  function reassign() {
    var sel = state.selection;
    var L = state.layout;
    var sid = $("room-space").value;
    if (!sel || sel.type !== "room" || !L.rooms[sel.id] || !sid) return;
    if (sid === sel.id) {
      status("The outline already belongs to " + spaceName(sid) + ".");
      return;
    }
    if (L.rooms[sid]) {
      status(spaceName(sid) + " already has an outline: delete it first.", "error");
      return;
    }
    remember();
    var was = isGone(sel.id) ? sel.id : spaceName(sel.id);
    L.rooms[sid] = L.rooms[sel.id];
    delete L.rooms[sel.id];
    state.selection = { type: "room", id: sid };
    status("The outline of " + was + " now belongs to " + spaceName(sid) + ": it goes into the draft.");
    render();
  }

  // The rooms whose outline leaves the plan's drawing: the plan image is fitted into the layout
  // keeping its shape (as kiosks draw it), so a layout of another shape than its plan, or a plan
  // replaced by one of another shape, leaves bands where a room lies beside the floor.
  function offPlan() {
    var L = state.layout, plan = state.plan;
    var x0 = 0, y0 = 0, x1 = L.width, y1 = L.height;
    if (plan && plan.url && plan.width && plan.height) {
      var s = Math.min(L.width / plan.width, L.height / plan.height);
      x0 = (L.width - plan.width * s) / 2; x1 = L.width - x0;
      y0 = (L.height - plan.height * s) / 2; y1 = L.height - y0;
    }
    var tol = Math.max(L.width, L.height) / 500;  // rounding, not a room drawn on the edge
    return Object.keys(L.rooms).filter(function (sid) {
      return L.rooms[sid].outline.some(function (p) {
        return p[0] < x0 - tol || p[0] > x1 + tol || p[1] < y0 - tol || p[1] > y1 + tol;
      });
    }).map(spaceName).sort();
  }

  // The server's warnings, except its list of orphan outlines: that one follows the drawing, so
  // an outline given to a room of the floor leaves it at once.
  function renderWarnings() {
    var lines = state.warnings.filter(function (w) {
      return !state.loadedGone.some(function (id) { return w.indexOf(id) !== -1; });
    });
    var off = offPlan();
    if (off.length) {
      lines.push("Outside the plan: " + off.join(", ") + ". Screens would show " +
        (off.length === 1 ? "this room" : "these rooms") + " off the floor's drawing; move " +
        (off.length === 1 ? "it" : "them") + " onto the plan before publishing.");
    }
    var gone = goneIds();
    if (gone.length) {
      lines.push("Outlines of spaces that are not rooms of this floor any more: " + gone.join(", ") +
        ". Select each to give it to a room of this floor, or delete it, before saving.");
    }
    var key = JSON.stringify(lines);
    if (key === state.warningsKey) return;
    state.warningsKey = key;
    var box = $("editor-warnings");
    while (box.firstChild) box.removeChild(box.firstChild);
    lines.forEach(function (w) { box.appendChild(html("li", w)); });
  }

  // The form fields show the model (after loading and after Undo).
  function syncFields() {
    $("metres").value = state.layout.metres_across || "";
    $("layout-width").value = state.layout.width;
    $("layout-height").value = state.layout.height;
  }

  function displayById(id) {
    for (var i = 0; i < state.displays.length; i++) if (state.displays[i].id === id) return state.displays[i];
    return { name: String(id) };
  }

  function select(sel) {
    state.selection = sel;
    render();
  }

  function updateLive() {
    var showLive = $("live").checked;
    Array.prototype.forEach.call(svg.querySelectorAll("g.room-shape"), function (g) {
      var live = state.live[g.getAttribute("data-space-id")];
      g.setAttribute("data-state", showLive && live && live.state ? live.state : "none");
    });
  }

  // -- tools -------------------------------------------------------------------------------------
  function setSnap(on) {
    state.snap = on;
    $("snap").checked = on;
    if (!on) showSnap(null);
    status(on ? "Snapping on: points land on nearby corners, walls and plan edges."
      : "Snapping off: points land exactly where you click.");
  }

  function setTool(tool) {
    if (!HINTS[tool]) return;
    if ((state.tool === "room" || state.tool === "rect") && tool !== state.tool) state.draft = [];
    state.rect = null;
    state.snapHit = null;
    state.tool = tool;
    state.chain = null;
    Array.prototype.forEach.call(document.querySelectorAll(".tool"), function (b) {
      b.setAttribute("aria-pressed", b.dataset.tool === tool ? "true" : "false");
    });
    root.dataset.tool = tool;
    $("tool-hint").textContent = HINTS[tool];
    $("here-panel").hidden = tool !== "here";
    render();
  }

  function closeDraft() {
    if (state.draft.length < 3) {
      status("An outline needs at least three corners.", "error");
      return;
    }
    var free = state.spaces.filter(function (s) { return !state.layout.rooms[s.id]; });
    if (!free.length) {
      status(state.spacesKnown
        ? "Every room of this floor already has an outline: delete one to draw it again."
        : "The floor's rooms could not be loaded from Density, so new outlines cannot be assigned now.", "error");
      state.draft = [];
      render();
      return;
    }
    state.pending = state.draft;
    state.draft = [];
    var selectBox = $("assign-space");
    while (selectBox.firstChild) selectBox.removeChild(selectBox.firstChild);
    free.forEach(function (s) {
      var opt = html("option", shownName(s) + (s.function ? " · " + s.function.replace(/_/g, " ") : ""));
      opt.value = s.id;
      selectBox.appendChild(opt);
    });
    $("assign-panel").hidden = false;
    selectBox.focus();
    status("Choose which room this outline is.");
    render();
  }

  function hidePending() {
    state.pending = null;
    $("assign-panel").hidden = true;
  }

  function assign() {
    var sid = $("assign-space").value;
    if (!state.pending || !sid) return;
    remember();
    state.layout.rooms[sid] = { outline: state.pending, door: null };
    hidePending();
    state.selection = { type: "room", id: sid };
    status("Outline assigned to " + spaceName(sid) + ". Add its door with the Door tool.");
    render();
  }

  function deleteSelection() {
    var sel = state.selection;
    if (!sel) return;
    var L = state.layout;
    remember();
    if (sel.type === "room" && L.rooms[sel.id]) {
      var room = L.rooms[sel.id];
      if (sel.door) {
        room.door = null;
        state.selection = { type: "room", id: sel.id };
      } else if (sel.vertex !== undefined && room.outline.length > 3) {
        room.outline.splice(sel.vertex, 1);
        state.selection = { type: "room", id: sel.id };
      } else {
        delete L.rooms[sel.id];
        state.selection = null;
      }
    } else if (sel.type === "node") {
      L.nodes = L.nodes.filter(function (n) { return n.id !== sel.id; });
      L.edges = L.edges.filter(function (e) { return e[0] !== sel.id && e[1] !== sel.id; });
      if (state.chain === sel.id) state.chain = null;
      state.selection = null;
    } else if (sel.type === "edge") {
      L.edges.splice(sel.index, 1);
      state.selection = null;
    } else if (sel.type === "here") {
      displayById(sel.id).here = null;
      state.selection = null;
    }
    render();
  }

  function roomAt(point) {
    var found = null;
    Object.keys(state.layout.rooms).forEach(function (sid) {
      if (!found && inside(point, state.layout.rooms[sid].outline)) found = sid;
    });
    return found;
  }

  function onPointerDown(evt) {
    if (evt.button !== 0 || !state.layout || state.saving) return;
    var p = toPoint(evt);
    var target = evt.target.closest ? evt.target.closest("[data-role]") : null;
    var role = target ? target.getAttribute("data-role") : null;
    var L = state.layout;
    evt.preventDefault();

    if (state.tool === "select") {
      if (role === "vertex") {
        var rid = target.getAttribute("data-room"), index = parseInt(target.getAttribute("data-index"), 10);
        state.selection = { type: "room", id: rid, vertex: index };
        state.drag = { kind: "vertex", room: rid, index: index, moved: false };
      } else if (role === "door") {
        state.selection = { type: "room", id: target.getAttribute("data-room"), door: true };
        state.drag = { kind: "door", room: target.getAttribute("data-room"), moved: false };
      } else if (role === "node") {
        state.selection = { type: "node", id: target.getAttribute("data-node") };
        state.drag = { kind: "node", id: target.getAttribute("data-node"), moved: false };
      } else if (role === "here") {
        var did = parseInt(target.getAttribute("data-display"), 10);
        state.selection = { type: "here", id: did };
        state.drag = { kind: "here", id: did, moved: false };
      } else if (role === "edge") {
        state.selection = { type: "edge", index: parseInt(target.getAttribute("data-edge"), 10) };
      } else if (role === "room") {
        var sid0 = target.getAttribute("data-room"), room0 = L.rooms[sid0];
        state.selection = { type: "room", id: sid0 };
        // The whole room moves from where it was, so rounding never adds up along the way.
        state.drag = {
          kind: "room", room: sid0, start: p, clientX: evt.clientX, clientY: evt.clientY,
          outline: room0.outline.map(function (q) { return q.slice(); }),
          door: room0.door ? room0.door.slice() : null, moved: false
        };
      } else {
        state.selection = null;
      }
      if (state.drag) svg.setPointerCapture(evt.pointerId);
      render();
      return;
    }

    if (state.tool === "room") {
      if (state.pending) {
        status("Choose the outline's room first (or discard it).", "error");
        return;
      }
      if (state.draft.length >= 3 && near(p, state.draft[0], 12)) {
        closeDraft();
        return;
      }
      state.draft.push(snapped(p).p);
      render();
      return;
    }

    if (state.tool === "rect") {
      if (state.pending) {
        status("Choose the outline's room first (or discard it).", "error");
        return;
      }
      var start = snapped(p).p;
      state.rect = { start: start, end: start, clientX: evt.clientX, clientY: evt.clientY };
      state.draft = [];
      svg.setPointerCapture(evt.pointerId);
      render();
      return;
    }

    if (state.tool === "door") {
      var sid = state.selection && state.selection.type === "room" ? state.selection.id : roomAt(p);
      if (role === "room") sid = target.getAttribute("data-room");
      if (!sid || !L.rooms[sid]) {
        status("Select a room first: click inside its outline or its name in the list.", "error");
        return;
      }
      remember();
      L.rooms[sid].door = snapped(p, null, true).p;
      state.selection = { type: "room", id: sid, door: true };
      status("Door of " + spaceName(sid) + " placed.");
      render();
      return;
    }

    if (state.tool === "corridor") {
      remember();
      var id;
      if (role === "node") {
        id = target.getAttribute("data-node");
      } else {
        id = nextNodeId();
        var at = snapped(p).p;
        L.nodes.push({ id: id, x: at[0], y: at[1], kind: "corridor" });
      }
      if (state.chain) addEdge(state.chain, id);
      state.chain = id;
      state.selection = { type: "node", id: id };
      render();
      return;
    }

    if (state.tool === "here") {
      var value = $("here-display").value;
      if (!value) {
        status("No display is on this floor: create one first (Displays).", "error");
        return;
      }
      remember();
      var d = displayById(parseInt(value, 10));
      d.here = p;
      state.selection = { type: "here", id: d.id };
      status("“You are here” of " + d.name + " placed: publish to send it to its screens.");
      render();
    }
  }

  function onPointerMove(evt) {
    var drag = state.drag;
    if (state.rect) {
      var hit = snapped(toPoint(evt));
      state.rect.end = hit.p;
      state.draft = rectCorners(state.rect.start, hit.p);
      state.snapHit = hit;
      render();
      return;
    }
    if (!drag) {
      if ((state.tool === "room" || state.tool === "rect" || state.tool === "corridor") &&
          state.layout && !state.pending) {
        showSnap(snapped(toPoint(evt)));
      } else if (state.tool === "door" && state.layout) {
        showSnap(snapped(toPoint(evt), null, true));
      }
      return;
    }
    var p = toPoint(evt);
    // A click that trembles a pixel or two is a selection, not a move of the whole room.
    if (drag.kind === "room" && !drag.moved &&
        Math.hypot(evt.clientX - drag.clientX, evt.clientY - drag.clientY) < 3) return;
    if (!drag.moved) {
      remember();  // once per drag: Undo puts everything back where the drag began
      drag.moved = true;
    }
    var L = state.layout;
    if (drag.kind === "room" && L.rooms[drag.room]) {
      shiftRoom(L.rooms[drag.room], drag.outline, drag.door,
        p[0] - drag.start[0], p[1] - drag.start[1]);
    } else if (drag.kind === "vertex" && L.rooms[drag.room]) {
      var at = snapped(p, drag.room);
      state.snapHit = at;
      L.rooms[drag.room].outline[drag.index] = at.p;
    }
    else if (drag.kind === "door" && L.rooms[drag.room]) {
      var onWall = snapped(p, null, true);
      state.snapHit = onWall;
      L.rooms[drag.room].door = onWall.p;
    } else if (drag.kind === "node") {
      var n = nodeById(drag.id);
      var to = snapped(p);
      state.snapHit = to;
      if (n) { n.x = to.p[0]; n.y = to.p[1]; }
    } else if (drag.kind === "here") displayById(drag.id).here = p;
    render();
  }

  function onPointerUp(evt) {
    if (state.rect) {
      if (svg.hasPointerCapture(evt.pointerId)) svg.releasePointerCapture(evt.pointerId);
      var r = state.rect;
      state.rect = null;
      var k = unitsPerPixel();
      var big = Math.abs(r.end[0] - r.start[0]) >= MIN_RECT_PX * k &&
        Math.abs(r.end[1] - r.start[1]) >= MIN_RECT_PX * k;
      if (!big) {
        state.draft = [];
        status("Drag from one corner of the room to the opposite one.", "error");
        render();
        return;
      }
      state.draft = rectCorners(r.start, r.end);
      closeDraft();
      return;
    }
    if (state.drag && /^(vertex|door|node)$/.test(state.drag.kind)) state.snapHit = null;
    if (state.drag && svg.hasPointerCapture(evt.pointerId)) svg.releasePointerCapture(evt.pointerId);
    var moved = state.drag && state.drag.kind === "room" && state.drag.moved ? state.drag.room : null;
    state.drag = null;
    state.nudged = null;
    if (moved) status("Room " + spaceName(moved) + " moved with its door: it goes into the draft.");
  }

  // Arrow keys move the selected corner, door or whole room: the editor works without a mouse.
  // A held key moves it many times but is one step for Undo.
  function nudge(evt) {
    var sel = state.selection;
    var room = sel && sel.type === "room" ? state.layout.rooms[sel.id] : null;
    if (!room || state.drag) return false;
    // A selected corner or door that is no longer there moves nothing (never the whole room).
    if (sel.vertex !== undefined ? !room.outline[sel.vertex] : sel.door && !room.door) return false;
    var step = nudgeStep() * (evt.shiftKey ? 10 : 1);
    var dx = evt.key === "ArrowLeft" ? -step : evt.key === "ArrowRight" ? step : 0;
    var dy = evt.key === "ArrowUp" ? -step : evt.key === "ArrowDown" ? step : 0;
    var L = state.layout;
    function shiftPoint(q) { return [within(q[0], dx, L.width), within(q[1], dy, L.height)]; }
    var moved = { outline: room.outline.slice(), door: room.door || null };
    var before = JSON.stringify(moved);
    if (sel.vertex !== undefined) moved.outline[sel.vertex] = shiftPoint(room.outline[sel.vertex]);
    else if (sel.door) moved.door = shiftPoint(room.door);
    else shiftRoom(moved, room.outline, room.door, dx, dy);
    if (JSON.stringify(moved) === before) {
      // Held at the plan's edge: no Undo step and nothing to save.
      status("At the edge of the plan: nothing moved.");
      return true;
    }
    var what = sel.id + "|" + sel.vertex + "|" + !!sel.door;
    if (!(evt.repeat && state.nudged === what)) remember();
    state.nudged = what;
    room.outline = moved.outline;
    room.door = moved.door;
    status("Room " + spaceName(sel.id) + " moved: it goes into the draft.");
    render();
    return true;
  }

  function onKey(evt) {
    var tag = evt.target && evt.target.tagName;
    var typing = tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA";
    if ((evt.ctrlKey || evt.metaKey) && evt.key.toLowerCase() === "z" && !typing) {
      evt.preventDefault();
      undo();
    } else if (/^Arrow(Left|Right|Up|Down)$/.test(evt.key) && !typing && !evt.ctrlKey &&
               !evt.metaKey && !evt.altKey) {
      if (nudge(evt)) evt.preventDefault();  // else the page scrolls as usual
    } else if ((evt.key === "s" || evt.key === "S") && !typing && !evt.ctrlKey && !evt.metaKey &&
               !evt.altKey) {
      evt.preventDefault();
      setSnap(!state.snap);
    } else if (evt.key === "Escape") {
      state.rect = null;
      if (state.draft.length) state.draft = [];
      else if (state.chain) state.chain = null;
      else state.selection = null;
      render();
    } else if (evt.key === "Enter" && state.tool === "room" && state.draft.length && !typing) {
      evt.preventDefault();
      closeDraft();
    } else if (evt.key === "Backspace" && state.draft.length && !typing) {
      evt.preventDefault();  // while drawing, take back the last corner
      state.draft.pop();
      render();
    } else if ((evt.key === "Delete" || evt.key === "Backspace") && !typing) {
      evt.preventDefault();
      deleteSelection();
    }
  }

  // -- server ------------------------------------------------------------------------------------
  function send(method, url, body) {
    var opts = { method: method, credentials: "same-origin", cache: "no-store", headers: {} };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.headers["X-CSRF-Token"] = config.csrf_token;
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      var json = (r.headers.get("Content-Type") || "").indexOf("application/json") === 0;
      return (json ? r.json() : Promise.resolve(null)).then(function (data) {
        var message = data && typeof data.message === "string" ? data.message : "";
        if (!r.ok && !message) {
          message = r.status === 401 || r.status === 403
            ? "The session or form token has expired: sign in again in another tab, then save."
            : "The server answered " + r.status + ".";
        }
        return { ok: r.ok, status: r.status, data: data, message: message };
      });
    }, function () {
      return { ok: false, status: 0, data: null, message: "The server cannot be reached." };
    });
  }

  // The drawing as the draft keeps it: the layout, and "you are here" where it differs from
  // what is published.
  function heresChanged() {
    var out = {};
    state.displays.forEach(function (d) {
      var was = state.publishedHere[String(d.id)] || null;
      if (JSON.stringify(d.here || null) !== JSON.stringify(was)) out[String(d.id)] = d.here || null;
    });
    return out;
  }

  function drawingKey() {
    return JSON.stringify({ layout: state.layout, here: heresChanged() });
  }

  function unsaved() {
    return !!state.layout && drawingKey() !== state.savedKey;
  }

  function load() {
    return send("GET", config.data_url).then(function (res) {
      if (!res.ok) {
        status("Could not load the floor: " + res.message, "error");
        return false;
      }
      var data = res.data;
      state.version = data.version;
      state.layout = data.layout;
      state.layout.rooms = state.layout.rooms || {};
      state.layout.nodes = state.layout.nodes || [];
      state.layout.edges = state.layout.edges || [];
      state.plan = data.plan;
      state.spaces = data.spaces || [];
      state.spacesKnown = !data.error;
      state.displays = data.displays || [];
      state.publishedHere = data.published_here || {};
      state.orientations = data.orientations || {};
      state.savedHere = {};
      state.displays.forEach(function (d) { state.savedHere[d.id] = d.here; });
      state.published = data.published || null;
      state.draftInfo = data.draft || null;
      state.revision = data.draft ? data.draft.revision : 0;
      state.versions = data.versions || [];
      state.history = [];
      state.dirty = false;
      state.autosaveOff = false;
      state.savedKey = drawingKey();

      state.warnings = (data.error ? [data.error] : []).concat(data.warnings || []);
      state.loadedGone = goneIds();
      state.warningsKey = null;
      state.spaceChoiceKey = null;
      $("size-fields").hidden = !!state.plan;
      syncFields();
      ["here-display", "preview-display"].forEach(function (id) {
        var choose = $(id);
        var was = choose.value;
        while (choose.firstChild) choose.removeChild(choose.firstChild);
        state.displays.forEach(function (d) {
          var opt = html("option", d.name);
          opt.value = String(d.id);
          choose.appendChild(opt);
        });
        if (!state.displays.length && id === "preview-display") {
          choose.appendChild(html("option", "No display on this floor (default settings)"));
          choose.firstChild.value = "";
        }
        if (was && state.displays.some(function (d) { return String(d.id) === was; })) choose.value = was;
      });
      root.dataset.loading = "false";
      root.dataset.version = String(state.version);
      root.dataset.revision = String(state.revision);
      render();
      renderDraft();
      return true;
    });
  }

  function busy(on) {
    state.saving = on;
    ["save-draft", "publish", "discard"].forEach(function (id) { $(id).disabled = on; });
    if (!on) renderDraft();
  }

  // Save the drawing as the draft; resolves true when the draft on the server is the drawing.
  // Drawing goes on while a draft is saved (an autosave must not swallow a click); a save asked
  // for meanwhile waits for the one in flight, so two never race with the same revision.
  var draftInFlight = null;
  function saveDraft(quiet) {
    if (draftInFlight) return draftInFlight.then(function () { return saveDraft(quiet); });
    if (!state.layout) return Promise.resolve(false);
    if (state.draft.length || state.pending || state.rect) {
      if (!quiet) status("Finish or discard the outline you are drawing first.", "error");
      return Promise.resolve(false);
    }
    if (!unsaved()) {
      if (!quiet) status(state.revision ? "The draft is saved." : "Nothing changed since publishing.");
      return Promise.resolve(true);
    }
    var key = drawingKey();
    var body = {
      revision: state.revision,
      base_version: state.version,
      layout: state.layout,
      here: JSON.parse(key).here
    };
    if (!quiet) status("Saving the draft…");
    draftInFlight = send("PUT", config.draft_url, body).then(function (res) {
      draftInFlight = null;
      if (!res.ok) {
        state.autosaveOff = true;  // the same refusal again every 2 s helps nobody
        refused("Draft not saved: ", res);
        return false;
      }
      state.autosaveOff = false;
      state.draftInfo = res.data;
      state.revision = res.data.revision;
      state.savedKey = key;
      state.dirty = unsaved();
      root.dataset.revision = String(state.revision);
      renderDraft();
      // An autosave says so in the draft bar only: the status line keeps what the admin did.
      if (!quiet) status("Draft saved. Screens still show the published layout until you publish.", "ok");
      refreshPreview();
      return true;
    });
    return draftInFlight;
  }

  // Runs `fn` once no draft save is in flight, so it sees the revision that save made.
  function afterDraft(fn) {
    return (draftInFlight || Promise.resolve()).then(fn);
  }

  function autosave() {
    if (config.can_write !== false && !draftInFlight && !state.saving && !state.drag && !state.autosaveOff && unsaved()) {
      saveDraft(true);
    }
  }

  function publish() {
    if (state.saving || !state.layout) return;
    saveDraft(false).then(function (ok) {
      if (!ok) return;
      if (!state.revision) {
        status("Nothing to publish: the drawing is what screens show.");
        return;
      }
      busy(true);
      status("Publishing…");
      var body = { revision: state.revision, base_version: state.version };
      send("POST", config.publish_url, body).then(function (res) {
        busy(false);
        if (!res.ok) {
          refused("Not published: ", res);
          return;
        }
        var done = "Published (version " + res.data.version + "). Screens of this floor reload to show it.";
        load().then(function (ok2) {
          if (ok2) status(done, "ok");
          refreshPreview();
        });
      });
    });
  }

  function discard() {
    if (state.saving || !state.revision) return;
    if (!window.confirm("Discard the draft? The drawing goes back to the published layout.")) return;
    busy(true);
    afterDraft(function () {
      return send("POST", config.discard_url, { revision: state.revision });
    }).then(function (res) {
      busy(false);
      if (!res.ok) {
        refused("Draft not discarded: ", res);
        return;
      }
      load().then(function (ok) {
        if (ok) status("Draft discarded: this is the published layout.", "ok");
        refreshPreview();
      });
    });
  }

  function restore(version) {
    if (state.saving) return;
    if ((state.revision || unsaved()) &&
        !window.confirm("Restore version " + version + " as the draft? It replaces the current draft.")) return;
    busy(true);
    var url = config.restore_url.replace("{version}", String(version));
    afterDraft(function () { return send("POST", url, { revision: state.revision }); }).then(function (res) {
      busy(false);
      if (!res.ok) {
        refused("Not restored: ", res);
        return;
      }
      load().then(function (ok) {
        if (ok) status("Version " + version + " is now the draft: preview it, then publish it to put it on the screens.", "ok");
        refreshPreview();
      });
    });
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  // Where the drawing stands: published, or a draft and what it changes; and the kept versions.
  function renderDraft() {
    var box = $("draft-state");
    while (box.firstChild) box.removeChild(box.firstChild);
    var info = state.draftInfo;
    var pub = state.published;
    var live = pub ? "Screens show version " + pub.version + ", published " + when(pub.updated_at) +
      (pub.updated_by ? " by " + who(pub.updated_by) : "") + "." : "Nothing is published yet: screens show the automatic map.";
    if (info) {
      box.dataset.draft = "draft";
      box.appendChild(html("strong", "Draft, not published"));
      var d = info.diff;
      var parts = [plural(d.added, "room added", "rooms added"), d.removed + " removed", d.moved + " moved"];
      if (d.corridors) parts.push("corridors changed");
      if (d.here) parts.push(plural(d.here, "“you are here” changed", "“you are here” changed"));
      box.appendChild(document.createTextNode(": " + parts.join(", ") +
        (info.restored_from ? " (restored from version " + info.restored_from + ")" : "") +
        ". Saved " + when(info.updated_at) + (info.updated_by ? " by " + who(info.updated_by) : "") + ". " + live));
      if (info.behind) {
        box.appendChild(html("span", " Version " + (pub ? pub.version : 0) +
          " was published since this draft began: publishing it is refused; discard it or restore.", "draft-behind"));
      }
    } else {
      box.dataset.draft = "none";
      box.appendChild(html("strong", "No draft"));
      box.appendChild(document.createTextNode(": changes are saved as a draft first. " + live));
    }
    var readOnly = config.can_write === false;
    $("discard").disabled = readOnly || state.saving || !state.revision;
    $("publish").disabled = readOnly || state.saving;
    $("save-draft").disabled = readOnly || state.saving;
    if (readOnly) {
      box.appendChild(html("span", " You have read-only access: drawings here are not saved.",
        "draft-behind"));
    }

    var list = $("version-list");
    while (list.firstChild) list.removeChild(list.firstChild);
    state.versions.forEach(function (v) {
      var li = html("li", null, "version-item");
      li.dataset.version = String(v.version);
      li.appendChild(html("span", "Version " + v.version + " · " + when(v.published_at) +
        (v.published_by ? " · " + who(v.published_by) : "") + " · " + plural(v.rooms, "room", "rooms") +
        (v.restored_from ? " · from version " + v.restored_from : "")));
      if (v.live) li.appendChild(html("span", "live", "version-live"));
      var button = html("button", "Restore as draft", "secondary small");
      button.type = "button";
      button.setAttribute("aria-label", "Restore version " + v.version + " as the draft");
      button.disabled = readOnly;
      button.addEventListener("click", function () { restore(v.version); });
      li.appendChild(button);
      list.appendChild(li);
    });
    if (!state.versions.length) list.appendChild(html("li", "None yet: versions are kept from the first publish.", "muted"));
  }

  // Who changed it, as stored: "session:alice" is the account alice, "token:ci" an API token.
  function who(label) {
    var m = /^(session|token):(.*)$/.exec(label || "");
    return !m ? label : m[1] === "session" ? m[2] : "API token " + m[2];
  }

  // Stored times are UTC ISO strings: shown in the floor's time zone (the admin's browser may be
  // in another) as the plans page and the audit trail write them, "2026-12-06 06:23
  // Europe/Berlin"; in the browser's own zone, named, if it does not know the floor's.
  function when(iso) {
    var t = Date.parse(iso);
    if (!isFinite(t)) return iso || "";
    var options = {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23"
    };
    var zone = config.time_zone, parts;
    try {
      parts = new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: zone }, options))
        .formatToParts(new Date(t));
    } catch (e) {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      parts = new Intl.DateTimeFormat("en-GB", options).formatToParts(new Date(t));
    }
    var p = {};
    parts.forEach(function (part) { p[part.type] = part.value; });
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute + " " + zone;
  }

  // -- the preview: the real kiosk page over the draft, scaled into the editor -------------------
  var previewTimer = null, previewRenewTimer = null;
  var PREVIEW_RENEW_MS = 8 * 60 * 1000;
  function previewUrl() {
    var display = $("preview-display").value;
    return config.preview_url + (display ? "?display=" + encodeURIComponent(display) : "");
  }

  // A display set to one orientation is shown in it; one that follows its screen's shape
  // takes the frame's, as a screen of that shape would.
  function followDisplayOrientation() {
    var fixed = state.orientations[$("preview-display").value] || "";
    Array.prototype.forEach.call(document.querySelectorAll("input[name=preview-orientation]"), function (r) {
      if (fixed) r.checked = r.value === fixed;
    });
    return fixed;
  }

  function fitPreview() {
    var frame = $("preview-frame"), box = $("preview-box");
    if (box.hidden) return;
    var portrait = document.querySelector("input[name=preview-orientation]:checked").value === "portrait";
    var w = portrait ? 1080 : 1920, h = portrait ? 1920 : 1080;
    // Portrait frames get a narrower box, so that the whole screen fits a laptop's height.
    var width = Math.min(box.parentNode.clientWidth - 28, portrait ? 480 : 960);
    var scale = width / w;
    frame.width = String(w);
    frame.height = String(h);
    frame.style.transform = "scale(" + scale + ")";
    box.style.width = width + "px";
    box.style.height = Math.round(h * scale) + "px";
    box.dataset.scale = scale.toFixed(4);
  }

  function showPreview() {
    var box = $("preview-box");
    box.hidden = false;
    $("preview-show").textContent = "Reload preview";
    var fixed = followDisplayOrientation();
    fitPreview();
    $("preview-frame").src = previewUrl();
    $("preview-note").textContent = (fixed ? "This display is set to " + fixed + ". " : "") + (state.revision
      ? "The draft (revision " + state.revision + ")"
      : "The published layout (there is no draft)") +
      (state.displays.length
        ? " as the chosen display's screen shows it, with the rooms' live states. It follows each saved draft."
        : " with a display's default settings. This floor has no display, so the preview has no " +
          "live link: rooms show as unknown. Add a display to see live states.");
    // The page's preview credential lasts ten minutes: a fresh page comes before it ends.
    clearTimeout(previewRenewTimer);
    previewRenewTimer = setTimeout(showPreview, PREVIEW_RENEW_MS);
  }

  function refreshPreview() {
    if ($("preview-box").hidden) return;
    clearTimeout(previewTimer);
    // Autosaves come every few seconds while drawing: the frame follows once they settle.
    previewTimer = setTimeout(showPreview, 1500);
  }

  function poll() {
    send("GET", config.states_url).then(function (res) {
      if (res.ok && res.data && res.data.rooms) {
        state.live = res.data.rooms;
        updateLive();
        if (!state.drag) renderSide();
      }
      setTimeout(poll, POLL_MS);
    });
  }

  // -- wiring ------------------------------------------------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll(".tool"), function (b) {
    b.addEventListener("click", function () { setTool(b.dataset.tool); });
  });
  Array.prototype.forEach.call(document.querySelectorAll("#node-kind [data-kind]"), function (b) {
    b.addEventListener("click", function () {
      var sel = state.selection;
      var n = sel && sel.type === "node" ? nodeById(sel.id) : null;
      if (!n) return;
      remember();
      n.kind = b.dataset.kind;
      render();
    });
  });
  $("undo").addEventListener("click", undo);
  $("delete").addEventListener("click", deleteSelection);
  $("save-draft").addEventListener("click", function () { saveDraft(false); });
  $("publish").addEventListener("click", publish);
  $("discard").addEventListener("click", discard);
  $("snap").addEventListener("change", function () { setSnap($("snap").checked); });
  $("preview-show").addEventListener("click", showPreview);
  $("preview-display").addEventListener("change", refreshPreview);
  // The page inside lays itself out again for the frame's new shape: no reload needed.
  Array.prototype.forEach.call(document.querySelectorAll("input[name=preview-orientation]"), function (r) {
    r.addEventListener("change", fitPreview);
  });
  setInterval(autosave, AUTOSAVE_MS);
  $("assign-ok").addEventListener("click", assign);
  $("room-reassign").addEventListener("click", reassign);
  $("assign-cancel").addEventListener("click", function () {
    hidePending();
    status("Outline discarded.");
    render();
  });
  $("live").addEventListener("change", function () { updateLive(); });
  $("metres").addEventListener("change", function () {
    var v = $("metres").value.trim();
    remember();
    state.layout.metres_across = v === "" ? null : Number(v);
    render();
  });
  ["width", "height"].forEach(function (side) {
    $("layout-" + side).addEventListener("change", function () {
      var v = Number($("layout-" + side).value);
      if (!(v >= 1)) return;
      remember();
      state.layout[side] = v;
      render();
    });
  });
  svg.addEventListener("pointerdown", onPointerDown);
  svg.addEventListener("pointermove", onPointerMove);
  svg.addEventListener("pointerup", onPointerUp);
  svg.addEventListener("pointercancel", onPointerUp);
  document.addEventListener("keydown", onKey);
  window.addEventListener("resize", function () {
    if (!state.drag) render();
    fitPreview();
  });
  // The plan's size on screen can change without the window's (the stylesheet arriving after
  // the first drawing, the column layout): type, dots and label places are set in screen pixels
  // at each drawing, so it is drawn again at the new size.
  if (window.ResizeObserver) {
    var drawnWidth = 0;
    new ResizeObserver(function () {
      var width = Math.round(svg.getBoundingClientRect().width);
      if (width === drawnWidth) return;
      drawnWidth = width;
      if (!state.drag) render();
    }).observe(svg);
  }
  window.addEventListener("beforeunload", function (evt) {
    if (unsaved()) {
      evt.preventDefault();
      evt.returnValue = "";
    }
  });

  $("tool-hint").textContent = HINTS.select;
  root.dataset.tool = "select";
  load().then(poll);
})();
