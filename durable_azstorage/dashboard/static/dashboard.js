// durable-azstorage dashboard: auto-refresh, confirmed actions, bulk purge with progress.
// No inline scripts anywhere (the Content-Security-Policy forbids them).
(function () {
  "use strict";
  var body = document.body;
  var csrf = body.dataset.csrf || "";

  function flash(text, bad) {
    var el = document.getElementById("flash");
    el.textContent = text;
    el.className = bad ? "flash bad" : "flash ok";
    el.hidden = false;
  }

  function post(url, payload) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(payload)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (doc) {
        if (!response.ok) {
          throw new Error(doc.error ? doc.error.message : response.status + " " + response.statusText);
        }
        return doc;
      });
    });
  }

  // A form's inputs as a JSON object: checkboxes are booleans, data-json inputs are parsed,
  // data-list inputs collect into arrays, empty text fields are left out.
  function payloadOf(form) {
    var out = {};
    Array.prototype.forEach.call(form.querySelectorAll("input"), function (input) {
      if (!input.name) { return; }
      if (input.type === "checkbox") { out[input.name] = input.checked; return; }
      if (input.hasAttribute("data-list")) { (out[input.name] = out[input.name] || []).push(input.value); return; }
      if (input.value === "") { return; }
      if (input.hasAttribute("data-json")) {
        try { out[input.name] = JSON.parse(input.value); }
        catch (e) { throw new Error(input.name + " is not valid JSON (quote text: \"like this\")"); }
        return;
      }
      out[input.name] = input.value;
    });
    return out;
  }

  Array.prototype.forEach.call(document.querySelectorAll("form.action"), function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var payload;
      try { payload = payloadOf(form); } catch (e) { flash(e.message, true); return; }
      if (!window.confirm(form.dataset.confirm)) { return; }
      post(form.dataset.url, payload).then(function (doc) {
        flash((doc.action || "done") + ": ok", false);
        var follow = form.dataset.follow && doc[form.dataset.follow];
        window.setTimeout(function () {
          if (follow) { window.location.href = "/instances/" + encodeURIComponent(follow); }
          else if (form.dataset.then) { window.location.href = form.dataset.then; }
          else { window.location.reload(); }
        }, 1000);
      }, function (error) { flash(error.message, true); });
    });
  });

  Array.prototype.forEach.call(document.querySelectorAll("form.bulk-purge"), function (form) {
    var progress = form.querySelector(".progress");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!window.confirm(form.dataset.confirm)) { return; }
      var payload = payloadOf(form), total = 0;
      function step() {
        post(form.dataset.url, payload).then(function (doc) {
          total += doc.deleted_instance_count;
          progress.textContent = total + " purged" + (doc.is_complete ? ", done" : " …");
          if (!doc.is_complete) { step(); } else { flash(total + " instances purged", false); }
        }, function (error) { flash(error.message, true); });
      }
      progress.textContent = "purging …";
      step();
    });
  });

  var toggle = document.getElementById("autorefresh");
  var seconds = Number(body.dataset.refresh || 0);
  if (toggle && seconds > 0) {
    var timer = null;
    var arm = function () {
      window.clearTimeout(timer);
      if (toggle.checked) { timer = window.setTimeout(function () { window.location.reload(); }, seconds * 1000); }
    };
    toggle.checked = window.localStorage.getItem("durable-dashboard-refresh") !== "off";
    toggle.addEventListener("change", function () {
      window.localStorage.setItem("durable-dashboard-refresh", toggle.checked ? "on" : "off");
      arm();
    });
    arm();
  }
})();
