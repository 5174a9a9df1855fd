// The displays pages: live previews in scaled frames (in the list only once asked for: each
// open preview holds a socket), and "select all" for the list's bulk actions.
(function () {
  "use strict";

  var observer = "ResizeObserver" in window ? new ResizeObserver(function (entries) {
    entries.forEach(function (entry) { fit(entry.target); });
  }) : null;

  function fit(box) {
    // The kiosk page lays itself out at the screen's size; the frame shows it scaled down.
    var frame = box.querySelector("iframe");
    if (!frame || !box.clientWidth) return;
    frame.style.transform = "scale(" + box.clientWidth / parseInt(frame.getAttribute("width"), 10) + ")";
  }

  function show(box, src, title) {
    var portrait = box.classList.contains("portrait");
    var frame = document.createElement("iframe");
    frame.setAttribute("width", portrait ? "1080" : "1920");
    frame.setAttribute("height", portrait ? "1920" : "1080");
    frame.setAttribute("title", title);
    frame.src = src;
    box.textContent = "";
    box.appendChild(frame);
    fit(box);
    if (observer) observer.observe(box);
  }

  function hide(box) {
    // Removing the frame unloads the page, which closes its socket.
    if (observer) observer.unobserve(box);
    box.textContent = "";
  }

  document.querySelectorAll("[data-preview-box] iframe").forEach(function (frame) {
    fit(frame.parentNode);
    if (observer) observer.observe(frame.parentNode);
  });

  document.querySelectorAll("button.preview-toggle").forEach(function (button) {
    button.addEventListener("click", function () {
      var row = document.getElementById(button.getAttribute("aria-controls"));
      var box = row && row.querySelector("[data-preview-box]");
      if (!box) return;
      if (button.getAttribute("aria-expanded") === "true") {
        hide(box);
        row.hidden = true;
        button.setAttribute("aria-expanded", "false");
        button.textContent = "Preview";
      } else {
        row.hidden = false;
        show(box, button.dataset.src, button.dataset.title);
        button.setAttribute("aria-expanded", "true");
        button.textContent = "Hide preview";
      }
    });
  });

  document.querySelectorAll("button.preview-restart").forEach(function (button) {
    // A fresh preview credential: the frame's lasts ten minutes.
    button.addEventListener("click", function () {
      var box = document.getElementById(button.getAttribute("aria-controls"));
      if (box) show(box, button.dataset.src, button.dataset.title);
    });
  });

  var all = document.getElementById("select-all");
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input[name='ids'][form='bulk']"));
  var count = document.getElementById("selected-count");
  function update() {
    var ticked = boxes.filter(function (b) { return b.checked; }).length;
    if (all) {
      all.checked = ticked > 0 && ticked === boxes.length;
      all.indeterminate = ticked > 0 && ticked < boxes.length;
    }
    if (count) count.textContent = ticked ? "(" + ticked + " selected)" : "(none selected)";
  }
  if (all) {
    all.disabled = false;
    all.addEventListener("change", function () {
      boxes.forEach(function (b) { b.checked = all.checked; });
      update();
    });
  }
  boxes.forEach(function (b) { b.addEventListener("change", update); });
  update();
})();
