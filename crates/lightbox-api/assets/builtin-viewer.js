// Lightbox's built-in image page: scroll each series' rendered frames with its
// slider, the mouse wheel over the image, or the keyboard when the series is
// focused. The page works without it (each series shows its first frame).
"use strict";

(function () {
  function setUp(series) {
    var frames = JSON.parse(series.getAttribute("data-frames") || "[]");
    if (frames.length === 0) return;
    var img = series.querySelector("img.frame");
    var slider = series.querySelector("input[type=range]");
    var counter = series.querySelector("output");
    var label = series.querySelector("h3").textContent;
    var current = 0;
    var preloaded = {};

    function preload(index) {
      if (index < 0 || index >= frames.length || preloaded[index]) return;
      preloaded[index] = new Image();
      preloaded[index].src = frames[index];
    }

    function show(index) {
      index = Math.max(0, Math.min(frames.length - 1, index));
      if (index === current && img.getAttribute("src") === frames[index]) return;
      current = index;
      img.src = frames[index];
      img.alt = label + ", image " + (index + 1) + " of " + frames.length;
      slider.value = String(index + 1);
      counter.textContent = (index + 1) + " / " + frames.length;
      series.setAttribute("data-current", String(index + 1));
      preload(index + 1);
      preload(index - 1);
    }

    slider.addEventListener("input", function () {
      show(parseInt(slider.value, 10) - 1);
    });
    img.addEventListener("wheel", function (event) {
      event.preventDefault();
      show(current + (event.deltaY > 0 ? 1 : -1));
    }, { passive: false });
    series.addEventListener("keydown", function (event) {
      if (event.target !== series) return;
      var step = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 }[event.key];
      if (step) show(current + step);
      else if (event.key === "Home") show(0);
      else if (event.key === "End") show(frames.length - 1);
      else return;
      event.preventDefault();
    });
    series.setAttribute("data-current", "1");
    preload(1);
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll(".series[data-frames]"), setUp);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
