// Lightbox web app: keyboard navigation on the worklist and confirmations.
// Everything here is an enhancement: every action also works as a plain form.
"use strict";

(function () {
  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("tr[data-row]"));
  }

  function typing(target) {
    var tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  function move(step) {
    var all = rows();
    if (all.length === 0) return;
    var current = all.indexOf(document.activeElement);
    var next = current < 0 ? 0 : Math.min(all.length - 1, Math.max(0, current + step));
    all[next].focus();
    all[next].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "j") { move(1); event.preventDefault(); }
    else if (event.key === "k") { move(-1); event.preventDefault(); }
    else if (event.key === "/") {
      var search = document.getElementById("q");
      if (search) { search.focus(); search.select(); event.preventDefault(); }
    } else if (event.key === "Enter" && event.target.matches && event.target.matches("tr[data-row]")) {
      var open = event.target.querySelector("a[data-open]");
      if (open) { open.click(); event.preventDefault(); }
    }
  });

  // A swapped-in row keeps the keyboard position.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.matches && target.matches("tr[data-row]")) target.focus();
  });

  // Forms with data-confirm ask first; without scripts the server asks on a page instead.
  document.addEventListener("htmx:confirm", function (event) {
    var form = event.detail.elt.closest && event.detail.elt.closest("form[data-confirm]");
    if (!form) return;
    event.preventDefault();
    if (window.confirm(form.getAttribute("data-confirm"))) {
      var field = form.querySelector("input[name=confirmed]");
      if (field) field.value = "yes";
      event.detail.issueRequest(true);
    }
  });

  // Live worklist: rows change in place as studies change elsewhere (server-sent
  // events); a new study goes on top of an unfiltered list, and a filtered list
  // asks for its rows again. Without EventSource it polls every 30 s.
  var rowsBody = document.getElementById("rows");
  function refreshRows() {
    if (window.htmx) window.htmx.ajax("GET", location.pathname + location.search, { target: "#rows", swap: "innerHTML" });
  }
  if (rowsBody && window.EventSource) {
    var source = new EventSource("/ui/worklist/events");
    window.lightboxLive = source; // for the browser tests (and debugging)
    source.addEventListener("study", function (event) {
      var data = JSON.parse(event.data);
      var template = document.createElement("template");
      template.innerHTML = data.html.trim();
      var row = template.content.firstElementChild;
      var existing = document.getElementById("study-" + data.id);
      if (existing) {
        var focused = document.activeElement === existing;
        existing.replaceWith(row);
        if (focused) row.focus();
      } else if (location.search.replace(/^\?/, "") === "") {
        var empty = rowsBody.querySelector("tr.empty");
        if (empty) empty.remove();
        rowsBody.insertBefore(row, rowsBody.firstChild);
      } else {
        refreshRows();
        return;
      }
      if (window.htmx) window.htmx.process(row);
    });
    source.addEventListener("reload", refreshRows);
  } else if (rowsBody) {
    setInterval(refreshRows, 30000);
  }

  // Intake: preview the chosen card image, create the image, PUT the file to its
  // upload link with progress, then mark it uploaded (the server verifies it).
  var upload = document.getElementById("upload");
  if (upload) {
    var fileInput = document.getElementById("upload-file");
    var preview = document.getElementById("upload-preview");
    var progress = document.getElementById("upload-progress");
    var status = document.getElementById("upload-status");
    var say = function (text) { status.textContent = text; };
    fileInput.addEventListener("change", function () {
      var file = fileInput.files[0];
      if (file && file.type.indexOf("image/") === 0) {
        preview.src = URL.createObjectURL(file);
        preview.hidden = false;
      } else {
        preview.hidden = true;
      }
    });
    var post = function (url, fields) {
      return fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(fields).toString(),
        credentials: "same-origin",
      }).then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
          return body;
        });
      });
    };
    upload.addEventListener("submit", function (event) {
      event.preventDefault();
      var file = fileInput.files[0];
      if (!file) { say("Choose a file first."); return; }
      var fields = new FormData(upload);
      post("/ui/intake/images", {
        coverage: fields.get("coverage"), patient: fields.get("patient"), side: fields.get("side"),
        file_name: file.name, file_type: file.type || "application/octet-stream",
      }).then(function (image) {
        if (file.size > image.max_bytes) throw new Error("The file is larger than the " + image.max_bytes + "-byte limit.");
        progress.hidden = false;
        progress.value = 0;
        say("Uploading…");
        return new Promise(function (resolve, reject) {
          var xhr = new XMLHttpRequest();
          xhr.open("PUT", image.upload_url);
          xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
          xhr.upload.addEventListener("progress", function (e) {
            if (e.lengthComputable) progress.value = Math.round(100 * e.loaded / e.total);
          });
          xhr.addEventListener("load", function () {
            if (xhr.status >= 200 && xhr.status < 300) { progress.value = 100; resolve(image); }
            else {
              var message = "The upload was refused (HTTP " + xhr.status + ").";
              try { message = JSON.parse(xhr.responseText).content.message || message; } catch (ignored) { /* not JSON */ }
              reject(new Error(message));
            }
          });
          xhr.addEventListener("error", function () { reject(new Error("The upload failed; check the connection.")); });
          xhr.send(file);
        });
      }).then(function (image) {
        return post("/ui/intake/images/" + image.id + "/uploaded", { version: image.version });
      }).then(function () {
        say("Uploaded.");
        var coverage = encodeURIComponent(fields.get("coverage"));
        setTimeout(function () { location.href = "/ui/intake?coverage=" + coverage + "&uploaded=1"; }, 600);
      }).catch(function (error) { say(error.message); });
    });
  }
})();
