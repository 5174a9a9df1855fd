// The kiosk's service worker (served at /kiosk/sw.js, scope /kiosk/).
//
// Pages: network first; each good answer is kept (marked as a cached shell, so the page knows
// its embedded state is old and shows it as stale); when the server does not answer, the kept
// copy is served, or a small page that retries. So a reload while the server is down never shows
// a browser error page. Assets (versioned URLs): cache first. The floor plan (versioned by its
// content): network first, the kept copy when the server does not answer, so an offline reload
// still shows the plan under the rooms. Everything else: not touched.
"use strict";

var VERSION = "__SIGNAGE_VERSION__";
var CACHE = "signage-kiosk-" + VERSION;
var PAGE_TIMEOUT_MS = 8000;

self.addEventListener("install", function () { self.skipWaiting(); });

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (n) { return n.indexOf("signage-kiosk-") === 0 && n !== CACHE; })
        .map(function (n) { return caches.delete(n); }));
    }).then(function () { return self.clients.claim(); })
      // The page that registered us loaded before we existed: keep its shell now, so that
      // even its first reload finds a copy when the server is down.
      .then(function () { return self.clients.matchAll({ type: "window" }); })
      .then(function (clients) {
        return Promise.all(clients.map(function (client) {
          var url = new URL(client.url);
          if (url.pathname.indexOf("/kiosk/") !== 0) return null;
          return keep(url, fetch(url.origin + url.pathname, { cache: "no-store", credentials: "omit" })).catch(function () { return null; });
        }));
      })
  );
});

function keep(url, promise) {
  // Store a good page answer as the shell for its URL, marked as a cached copy.
  var key = url.origin + url.pathname;
  return promise.then(function (res) {
    if (res.ok && (res.headers.get("Content-Type") || "").indexOf("text/html") === 0) {
      return res.text().then(function (html) {
        html = html.replace(/data-feed="[a-z]+"/, 'data-feed="stale"').replace('data-shell="network"', 'data-shell="cache"');
        return caches.open(CACHE).then(function (cache) {
          return cache.put(key, new Response(html, { headers: { "Content-Type": "text/html; charset=utf-8" } }))
            .then(function () { return keepAssets(cache, url, html); });
        });
      });
    }
    if (res.status === 404) return caches.open(CACHE).then(function (cache) { return cache.delete(key); });
    return null;
  });
}

self.addEventListener("fetch", function (event) {
  var req = event.request;
  if (req.method !== "GET") return;
  var url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (req.mode === "navigate" && url.pathname.indexOf("/kiosk/") === 0) {
    event.respondWith(page(event, req, url));
  } else if (url.pathname.indexOf("/static/kiosk/") === 0) {
    event.respondWith(asset(event, req));
  } else if (PLAN_PATH.test(url.pathname)) {
    event.respondWith(plan(event, req));
  }
});

var PLAN_PATH = /^\/kiosk\/[^/]+\/plan$/;

function plan(event, req) {
  return fetch(req).then(function (res) {
    if (res.ok) {
      var copy = res.clone();
      event.waitUntil(caches.open(CACHE).then(function (cache) { return cache.put(req.url, copy); }));
    }
    return res;
  }).catch(function () {
    return caches.open(CACHE).then(function (cache) { return cache.match(req.url); })
      .then(function (hit) { return hit || Response.error(); });
  });
}

function withTimeout(promise, ms) {
  return new Promise(function (resolve, reject) {
    var timer = setTimeout(function () { reject(new Error("timeout")); }, ms);
    promise.then(function (v) { clearTimeout(timer); resolve(v); }, function (e) { clearTimeout(timer); reject(e); });
  });
}

function page(event, req, url) {
  var key = url.origin + url.pathname;
  return withTimeout(fetch(req), PAGE_TIMEOUT_MS).then(function (res) {
    event.waitUntil(keep(url, Promise.resolve(res.clone())).catch(function () { return null; }));
    return res;
  }).catch(function () {
    return caches.open(CACHE).then(function (cache) { return cache.match(key); }).then(function (hit) {
      return hit || offline();
    });
  });
}

function keepAssets(cache, url, html) {
  // The shell is no use without its stylesheet and script: keep every asset it names.
  // The plan's address is in the page's JSON config ("url": "/kiosk/…/plan?v=…").
  var found = (html.match(/(?:href|src)="\/static\/kiosk\/[^"]+"/g) || [])
    .concat(html.match(/"url": ?"\/kiosk\/[^"\/]+\/plan\?v=[0-9a-f]+"/g) || []);
  return Promise.all(found.map(function (attr) {
    var asset = url.origin + attr.slice(attr.lastIndexOf('"', attr.length - 2) + 1, -1).replace(/&amp;/g, "&");
    return cache.match(asset).then(function (hit) {
      if (hit) return null;
      return fetch(asset, { credentials: "omit" }).then(function (res) {
        return res.ok ? cache.put(asset, res) : null;
      });
    }).catch(function () { return null; });
  }));
}

function asset(event, req) {
  return caches.open(CACHE).then(function (cache) {
    return cache.match(req).then(function (hit) {
      if (hit) return hit;
      return fetch(req).then(function (res) {
        if (res.ok) event.waitUntil(cache.put(req, res.clone()));
        return res;
      });
    });
  });
}

function offline() {
  var html = '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<meta http-equiv="refresh" content="10"><title>Reconnecting</title></head>' +
    '<body style="margin:0;height:100vh;display:flex;align-items:center;justify-content:center;' +
    'background:#111;color:#ddd;font:600 4vmin system-ui,sans-serif">Reconnecting…</body></html>';
  return new Response(html, { headers: { "Content-Type": "text/html; charset=utf-8" } });
}
