/* Keeps what an admin types in the console's forms in this tab (sessionStorage), so a form
   that could not be sent (the session ended in another tab, its security token went stale)
   loses nothing: when its page is shown again, after signing in or going back, the typed
   fields come back. Saved per form action and field name; never passwords, secrets, file
   fields, hidden fields (the form token among them) or links (a calendar's link carries its
   credential). A successful send clears what was kept for that form.

   How a send's outcome is known without the server's help: a form being sent marks its action
   as pending; the next page clears the pending form's fields unless it says the send did not
   go through (<body data-keep-forms>: the sign-in page, a console error page). */
(function () {
  "use strict";
  var PREFIX = "signage-form:";
  var PENDING = "signage-form-pending";
  var SKIP_TYPES = { password: 1, file: 1, hidden: 1, submit: 1, button: 1, reset: 1, image: 1 };
  var SKIP_NAMES = /pass|secret|token|credential|url|link|csrf/i;
  // Every form sent names the page it was on (pages send no Referer: a kiosk's address is a
  // credential), so a send refused for a lost session can bring the admin back to that page.
  function namePage(form) {
    if ((form.getAttribute("method") || "get").toLowerCase() !== "post") return;
    var field = form.querySelector("input[name=_page]");
    if (!field) {
      field = document.createElement("input");
      field.type = "hidden";
      field.name = "_page";
      form.appendChild(field);
    }
    field.value = location.pathname + location.search;
  }
  document.addEventListener("submit", function (event) { namePage(event.target); }, true);

  var store;
  try {
    store = window.sessionStorage;
    store.setItem(PREFIX + "probe", "1");
    store.removeItem(PREFIX + "probe");
  } catch (e) {
    return; // storage refused (private mode, full): forms work as before
  }

  function actionOf(form) {
    var url = new URL(form.getAttribute("action") || location.href, location.href);
    return url.pathname + url.search;
  }

  function keyOf(form) {
    return PREFIX + actionOf(form);
  }

  // Forms worth keeping: those that send something typed (POST), not sign-in or one-click ones.
  function keepable(form) {
    return (
      (form.getAttribute("method") || "get").toLowerCase() === "post" &&
      !form.hasAttribute("data-no-keep") &&
      !form.querySelector("input[type=password]") &&
      fields(form).length > 0
    );
  }

  function fields(form) {
    var out = [];
    var els = form.elements;
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var type = (el.type || "").toLowerCase();
      if (!el.name || SKIP_TYPES[type] || SKIP_NAMES.test(el.name)) continue;
      if (el.hasAttribute("data-no-keep") || el.disabled) continue;
      if (!/^(input|textarea|select)$/i.test(el.tagName)) continue;
      out.push(el);
    }
    return out;
  }

  function snapshot(form) {
    var data = {};
    fields(form).forEach(function (el) {
      var type = (el.type || "").toLowerCase();
      if (type === "checkbox" || type === "radio") {
        data[el.name] = data[el.name] || [];
        if (el.checked) data[el.name].push(el.value);
      } else if (el.tagName === "SELECT" && el.multiple) {
        data[el.name] = Array.prototype.filter
          .call(el.options, function (o) { return o.selected; })
          .map(function (o) { return o.value; });
      } else {
        data[el.name] = el.value;
      }
    });
    return data;
  }

  function save(form) {
    try {
      store.setItem(keyOf(form), JSON.stringify({ fields: snapshot(form), at: Date.now() }));
    } catch (e) { /* full: keeping is a courtesy */ }
  }

  function restore(form) {
    var raw = store.getItem(keyOf(form));
    if (!raw) return false;
    var data;
    try { data = JSON.parse(raw).fields || {}; } catch (e) { return false; }
    var changed = false;
    fields(form).forEach(function (el) {
      if (!Object.prototype.hasOwnProperty.call(data, el.name)) return;
      var value = data[el.name];
      var type = (el.type || "").toLowerCase();
      if (type === "checkbox" || type === "radio") {
        var on = Array.isArray(value) && value.indexOf(el.value) >= 0;
        if (el.checked !== on) { el.checked = on; changed = true; }
      } else if (el.tagName === "SELECT" && el.multiple) {
        Array.prototype.forEach.call(el.options, function (o) {
          var on = Array.isArray(value) && value.indexOf(o.value) >= 0;
          if (o.selected !== on) { o.selected = on; changed = true; }
        });
      } else if (typeof value === "string" && el.value !== value) {
        if (el.tagName === "SELECT" &&
            !Array.prototype.some.call(el.options, function (o) { return o.value === value; })) {
          return; // a choice the page no longer offers
        }
        el.value = value;
        changed = true;
      }
    });
    if (changed) note(form);
    return changed;
  }

  // Say so in the form, with a way to drop what was restored (back to the page's values).
  function note(form) {
    if (form.querySelector(".restored-note")) return;
    var p = document.createElement("p");
    p.className = "flash flash-warn restored-note";
    p.setAttribute("role", "status");
    p.textContent = "What you typed here before is back (not saved yet). ";
    var button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.style.color = "inherit"; // the header's link colour would not read on the note
    button.textContent = "Discard it";
    button.addEventListener("click", function () {
      store.removeItem(keyOf(form));
      form.reset();
      p.remove();
    });
    p.appendChild(button);
    form.insertBefore(p, form.firstChild);
  }

  function settlePending() {
    var pending = store.getItem(PENDING);
    if (!pending) return;
    store.removeItem(PENDING);
    // The sign-in page and the error pages say the send did not go through: keep its fields.
    if (!document.body.hasAttribute("data-keep-forms")) store.removeItem(PREFIX + pending);
  }

  function start() {
    settlePending();
    var forms = Array.prototype.filter.call(document.forms, keepable);
    forms.forEach(function (form) {
      restore(form);
      form.addEventListener("input", function () { save(form); });
      form.addEventListener("change", function () { save(form); });
      form.addEventListener("submit", function () {
        save(form);
        store.setItem(PENDING, actionOf(form));
      });
    });
  }

  // Shown again from the back-forward cache: the page's scripts do not run again, so restore
  // here too (a form reset by the browser gets its text back).
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    settlePending();
    Array.prototype.filter.call(document.forms, keepable).forEach(restore);
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
