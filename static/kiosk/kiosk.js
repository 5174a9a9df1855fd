// Minimal live kiosk: snapshot + updates over the socket, reconnecting with jittered backoff.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("kiosk-config").textContent);
  var root = document.documentElement;
  var rooms = {};
  var attempt = 0;

  function render(room) {
    var el = document.querySelector('[data-space-id="' + CSS.escape(room.id) + '"]');
    if (!el) {
      el = document.createElement("li");
      el.className = "room";
      el.dataset.spaceId = room.id;
      el.innerHTML = '<span class="room-name"></span><span class="room-state"></span>';
      document.getElementById("rooms").appendChild(el);
    }
    el.dataset.state = room.state;
    el.querySelector(".room-name").textContent = room.name;
    el.querySelector(".room-state").textContent = room.state;
  }

  function apply(msg) {
    if (msg.feed) root.dataset.feed = msg.feed;
    document.getElementById("freshness").textContent = msg.feed === "live" ? "live" : msg.feed;
    Object.keys(msg.rooms || {}).forEach(function (id) { rooms[id] = msg.rooms[id]; render(msg.rooms[id]); });
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + config.socket;
    var ws = new WebSocket(url);
    ws.onmessage = function (ev) { attempt = 0; apply(JSON.parse(ev.data)); };
    ws.onclose = function () {
      root.dataset.feed = "stale";
      document.getElementById("freshness").textContent = "reconnecting…";
      var delay = Math.random() * Math.min(5000, 500 * Math.pow(2, attempt++));
      setTimeout(connect, delay);
    };
  }
  connect();
})();
