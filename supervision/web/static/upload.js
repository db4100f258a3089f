// The contractor's upload form: every file by tus (tus-js-client), resumed
// after a broken connection or a reload (the library keeps each upload's URL
// in localStorage), then one survey of them; its check followed until done.
(function () {
  "use strict";
  var form = document.getElementById("upload");
  if (!form) return;
  var csrf = form.dataset.csrf;
  var drop = document.getElementById("drop");
  var input = form.querySelector("input[type=file]");
  var progress = document.getElementById("progress");
  var result = document.getElementById("result");
  var dropped = null;

  function say(el, text) { el.textContent = text; }

  drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    drop.classList.remove("over");
    dropped = e.dataTransfer.files;
    var names = Array.prototype.map.call(dropped, function (f) { return f.name; });
    say(progress, dropped.length + " file(s) ready: " + names.join(", "));
  });

  // files chosen in the input after a drop replace the dropped ones
  input.addEventListener("change", function () { dropped = null; });

  function send(file, mine) {
    return new Promise(function (resolve, reject) {
      var up = new tus.Upload(file, {
        endpoint: "/api/v1/tus/",
        headers: { "X-CSRF-Token": csrf },
        metadata: { filename: file.name, filetype: file.type || "application/octet-stream", mine: mine },
        chunkSize: 8 * 1024 * 1024,
        retryDelays: [0, 1000, 3000, 5000, 10000],
        removeFingerprintOnSuccess: true,
        onProgress: function (done, total) {
          say(progress, file.name + ": " + (100 * done / total).toFixed(1) + " %");
        },
        onError: function (err) {
          var body = err.originalResponse ? err.originalResponse.getBody() : "";
          try { body = JSON.parse(body).detail; } catch (x) { /* not JSON */ }
          reject(new Error(file.name + ": " + (body || err.message)));
        },
        onSuccess: function () { resolve(up.url.split("/").pop()); }
      });
      up.findPreviousUploads().then(function (previous) {
        if (previous.length) up.resumeFromPreviousUpload(previous[0]);
        up.start();
      });
    });
  }

  function follow(url) {
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (s) {
      if (s.state === "done") {
        result.innerHTML = "";
        var b = document.createElement("strong");
        b.textContent = s.verdict.toUpperCase() + ": " + s.message;
        var a = document.createElement("a");
        a.href = s.report_url;
        a.textContent = " open the report";
        result.append(b, a);
        say(progress, "survey " + s.id + " checked");
      } else if (s.state === "failed") {
        say(result, "CHECK FAILED: " + s.message);
      } else {
        say(progress, "survey " + s.id + ": " + s.state + (s.stage ? " (" + s.stage + ")" : ""));
        setTimeout(function () { follow(url); }, 1000);
      }
    });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var files = dropped && dropped.length ? dropped : input.files;
    var mine = form.elements.mine.value;
    if (!files.length) { say(result, "choose or drop the survey's files first"); return; }
    say(result, "");
    var ids = [];
    var chain = Promise.resolve();
    Array.prototype.forEach.call(files, function (f) {
      chain = chain.then(function () { return send(f, mine); }).then(function (id) { ids.push(id); });
    });
    chain.then(function () {
      return fetch("/api/v1/mines/" + encodeURIComponent(mine) + "/surveys/tus", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({
          uploads: ids,
          description: form.elements.description.value,
          kind: form.elements.kind.value || null
        })
      });
    }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.detail || r.statusText);
        if (body.duplicate) say(progress, "these files were uploaded before (survey " + body.id + ")");
        follow(body.url);
      });
    }).catch(function (err) { say(result, "refused: " + err.message); });
  });
})();
