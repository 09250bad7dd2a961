// nsqadmin page behaviour: confirmed actions, live refresh, the counter. No dependencies.
(function () {
  "use strict";

  var FLASH_KEY = "nsqadmin.flash";
  var busy = false;

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function showBanner(id, text) {
    var el = document.getElementById(id);
    if (!el) { return; }
    el.textContent = text || "";
    el.hidden = !text;
  }

  function flashLater(text) {
    if (text) { sessionStorage.setItem(FLASH_KEY, text); }
  }

  function showFlash() {
    var text = sessionStorage.getItem(FLASH_KEY);
    if (text) {
      sessionStorage.removeItem(FLASH_KEY);
      showBanner("warning", text);
    }
  }

  // ---------------------------------------------------------------- confirmation
  function confirmThen(text, onOk) {
    var dialog = document.getElementById("confirm");
    if (!dialog || typeof dialog.showModal !== "function") {
      if (window.confirm(text)) { onOk(); }
      return;
    }
    $(".confirm-text", dialog).textContent = text;
    dialog.returnValue = "";
    var onClose = function () {
      dialog.removeEventListener("close", onClose);
      if (dialog.returnValue === "ok") { onOk(); }
    };
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    $(".confirm-ok", dialog).focus();
  }

  // ---------------------------------------------------------------- requests
  function request(method, url, body) {
    var init = { method: method, headers: { "Accept": "application/json" } };
    if (body !== undefined && body !== null) {
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    return fetch(url, init).then(function (resp) {
      return resp.text().then(function (text) {
        var doc = {};
        try { doc = text ? JSON.parse(text) : {}; } catch (e) { doc = { message: text }; }
        if (!resp.ok) {
          var err = new Error(doc.message || (resp.status + " " + resp.statusText));
          err.status = resp.status;
          throw err;
        }
        return doc;
      });
    });
  }

  function afterAction(then, doc) {
    flashLater(doc && doc.message);
    if (!then || then === "reload") {
      window.location.reload();
    } else {
      window.location.assign(then);
    }
  }

  function runAction(button) {
    var method = button.getAttribute("data-method") || "POST";
    var url = button.getAttribute("data-url");
    var body = button.getAttribute("data-body");
    var then = button.getAttribute("data-then");
    busy = true;
    button.disabled = true;
    request(method, url, body).then(function (doc) {
      afterAction(then, doc);
    }, function (err) {
      busy = false;
      button.disabled = false;
      showBanner("error", err.message);
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-url]");
    if (!button) { return; }
    event.preventDefault();
    confirmThen(button.getAttribute("data-confirm") || "Are you sure?", function () {
      runAction(button);
    });
  });

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form.create-form");
    if (!form) { return; }
    event.preventDefault();
    var topic = form.elements.topic.value.trim();
    var channel = form.elements.channel.value.trim();
    if (!topic) { return; }
    var what = channel ? "topic " + topic + " with channel " + channel : "topic " + topic;
    confirmThen("Create " + what + "?", function () {
      busy = true;
      request("POST", form.getAttribute("data-url"), { topic: topic, channel: channel })
        .then(function (doc) { afterAction("reload", doc); }, function (err) {
          busy = false;
          showBanner("error", err.message);
        });
    });
  });

  // ---------------------------------------------------------------- live refresh
  function dialogOpen() {
    var dialog = document.getElementById("confirm");
    return dialog && dialog.open;
  }

  function refreshMain() {
    if (busy || dialogOpen() || document.visibilityState === "hidden") { return Promise.resolve(); }
    var warning = document.getElementById("warning");
    var kept = warning && !warning.hidden ? warning.textContent : "";
    return fetch(window.location.href, { headers: { "Accept": "text/html" } })
      .then(function (resp) { return resp.text(); })
      .then(function (html) {
        if (busy || dialogOpen()) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        var main = document.getElementById("main");
        if (!fresh || !main) { return; }
        main.innerHTML = fresh.innerHTML;
        var newWarning = document.getElementById("warning");
        if (kept && newWarning && newWarning.hidden) { showBanner("warning", kept); }
        document.dispatchEvent(new CustomEvent("nsqadmin:refreshed"));
      })
      .catch(function () { /* keep the current page; try again next time */ });
  }

  function refreshCharts() {
    $all(".chart-box[data-src]").forEach(function (box) {
      fetch(box.getAttribute("data-src"))
        .then(function (resp) { return resp.ok ? resp.text() : null; })
        .then(function (svg) { if (svg) { box.innerHTML = svg; } })
        .catch(function () {});
    });
  }

  // ---------------------------------------------------------------- counter
  function startCounter(section) {
    var url = section.getAttribute("data-url");
    var total = document.getElementById("counter-total");
    var rateEl = document.getElementById("counter-rate");
    var shown = null;
    var last = null;
    var lastAt = 0;
    var animation = null;

    function draw(value) { total.textContent = Math.round(value).toLocaleString("en-US"); }

    function animateTo(target, ms) {
      if (animation) { cancelAnimationFrame(animation); }
      var from = shown === null ? target : shown;
      var start = performance.now();
      var step = function (now) {
        var f = Math.min(1, (now - start) / ms);
        shown = from + (target - from) * f;
        draw(shown);
        if (f < 1) { animation = requestAnimationFrame(step); }
      };
      animation = requestAnimationFrame(step);
    }

    function poll() {
      request("GET", url).then(function (doc) {
        var sum = 0;
        Object.keys(doc.stats || {}).forEach(function (k) { sum += doc.stats[k].message_count; });
        var now = Date.now();
        if (last !== null && now > lastAt && sum >= last) {
          var rate = (sum - last) / ((now - lastAt) / 1000);
          rateEl.textContent = rate.toFixed(1) + " msg/s";
        }
        showBanner("warning", doc.message || "");
        last = sum;
        lastAt = now;
        section.setAttribute("data-total", String(sum));
        animateTo(sum, shown === null ? 1 : 1500);
      }, function (err) {
        showBanner("error", err.message);
      }).then(function () { setTimeout(poll, 2000); });
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    showFlash();
    var refresh = parseFloat(document.body.getAttribute("data-refresh") || "0");
    if (refresh > 0) {
      setInterval(refreshMain, refresh * 1000);
    } else if ($(".chart-box[data-src]")) {
      var every = parseFloat(document.body.getAttribute("data-charts") || "5");
      setInterval(refreshCharts, Math.max(every, 1) * 1000);
    }
    var counter = $("section.counter");
    if (counter) { startCounter(counter); }
  });
})();
