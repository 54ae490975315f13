// The checkout page's enhancements: live status (Server-Sent Events, polling as the fallback),
// the countdown, copy buttons and the network picker without reload. The page works without
// this file: every link and form is a plain server-rendered one.
"use strict";

(function () {
  var live = document.getElementById("live");
  var claimLink = document.querySelector("[data-open]");
  if (claimLink) {
    window.setTimeout(function () { window.location.assign(claimLink.href); }, 300);
  }
  if (!live) {
    return;
  }

  var base = live.dataset.base;
  var query = live.dataset.query;
  var source = null;
  var backstop = null;
  var countdownTimer = null;
  var redirectTimer = null;
  var offset = 0; // server clock minus this clock, in seconds
  var finished = false;
  var polledAtZero = false;

  function nowSeconds() {
    return Date.now() / 1000 + offset;
  }

  function clockText(left) {
    var seconds = Math.max(0, Math.floor(left));
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var rest = seconds % 60;
    var mm = hours ? String(minutes).padStart(2, "0") : String(minutes);
    return (hours ? hours + ":" : "") + mm + ":" + String(rest).padStart(2, "0");
  }

  function tick() {
    var countdown = document.getElementById("countdown");
    if (!countdown) {
      return;
    }
    var left = Number(countdown.dataset.expires) - nowSeconds();
    countdown.textContent = countdown.dataset.template.replace("{time}", clockText(left));
    if (left <= 0 && !polledAtZero) {
      polledAtZero = true;
      poll(); // the server says "expired" from its own clock
    }
  }

  function setUp() {
    live.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
    });
    var countdown = document.getElementById("countdown");
    if (countdown) {
      offset = Number(countdown.dataset.now) - Date.now() / 1000;
      tick();
      if (!countdownTimer) {
        countdownTimer = window.setInterval(tick, 1000);
      }
    } else if (countdownTimer) {
      window.clearInterval(countdownTimer);
      countdownTimer = null;
    }
    var status = document.getElementById("status");
    if (status && status.dataset.redirectAfter && status.dataset.redirect && !redirectTimer) {
      var target = status.dataset.redirect;
      redirectTimer = window.setTimeout(function () {
        window.location.assign(target);
      }, Number(status.dataset.redirectAfter) * 1000);
    }
  }

  function apply(payload) {
    if (!payload || typeof payload.html !== "string") {
      return;
    }
    if (payload.html !== live.innerHTML) {
      var focused = document.activeElement && document.activeElement.id;
      live.innerHTML = payload.html;
      if (focused) {
        var again = document.getElementById(focused);
        if (again) {
          again.focus();
        }
      }
      setUp();
    }
    if (payload.final) {
      stop();
    }
  }

  function poll() {
    return fetch(base + "/status?" + query, {
      headers: { Accept: "application/json" },
      cache: "no-store",
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(apply)
      .catch(function () {});
  }

  function stop() {
    finished = true;
    if (source) {
      source.close();
      source = null;
    }
    if (backstop) {
      window.clearInterval(backstop);
      backstop = null;
    }
  }

  function listen() {
    if (finished) {
      return;
    }
    if (source) {
      source.close();
    }
    if (window.EventSource) {
      source = new EventSource(base + "/events?" + query);
      source.addEventListener("status", function (event) {
        try {
          apply(JSON.parse(event.data));
        } catch (error) {
          poll();
        }
      });
      source.addEventListener("end", stop);
    }
    if (!backstop) {
      // Polling covers a proxy that buffers the stream, or a browser without EventSource.
      backstop = window.setInterval(poll, window.EventSource ? 10000 : 3000);
    }
  }

  function choose(link) {
    query = link.dataset.query;
    live.dataset.query = query;
    window.history.replaceState(null, "", "?" + query);
    document.querySelectorAll("a[data-lang]").forEach(function (languageLink) {
      var params = new URLSearchParams(query);
      params.set("lang", languageLink.dataset.lang);
      languageLink.href = "?" + params.toString();
    });
    poll().then(function () {
      var chosen = document.getElementById(link.id);
      if (chosen) {
        chosen.focus();
      }
    });
    listen();
  }

  function copied(button, ok) {
    var label = button.textContent;
    button.textContent = ok ? button.dataset.done : button.dataset.failed;
    window.setTimeout(function () {
      button.textContent = label;
    }, 2000);
  }

  function copy(button) {
    var field = document.getElementById(button.dataset.copy);
    if (!field) {
      return;
    }
    var text = field.textContent.trim();
    var select = function () {
      var range = document.createRange();
      range.selectNodeContents(field);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { copied(button, true); },
        function () { select(); copied(button, false); }
      );
    } else {
      select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (error) {
        ok = false;
      }
      copied(button, ok);
    }
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) {
      return;
    }
    var button = target.closest("button[data-copy]");
    if (button) {
      copy(button);
      return;
    }
    var pair = target.closest("a.pair[data-query]");
    if (pair && !event.metaKey && !event.ctrlKey && !event.shiftKey) {
      event.preventDefault();
      choose(pair);
    }
  });

  // Opened as a Telegram Mini App: Telegram puts the signed initData and the theme in the URL
  // fragment. The server checks the signature and binds the session to the Telegram user (as
  // the bot's /start does); refused, the page simply stays the plain web page.
  function miniApp() {
    var fragment = new URLSearchParams(window.location.hash.slice(1));
    var initData = fragment.get("tgWebAppData");
    if (!initData) {
      return;
    }
    var theme = {};
    try {
      theme = JSON.parse(fragment.get("tgWebAppThemeParams") || "{}") || {};
    } catch (error) {
      theme = {};
    }
    var colours = {
      bg_color: "--paper",
      secondary_bg_color: "--page",
      text_color: "--ink",
      hint_color: "--muted",
      button_color: "--accent",
      button_text_color: "--accent-ink",
    };
    var colour = function (value) {
      return typeof value === "string" && /^#[0-9a-fA-F]{3,8}$/.test(value) ? value : null;
    };
    if (colour(theme.bg_color)) {
      // Boxes drawn on the page's own light colours would clash with a dark theme.
      theme.secondary_bg_color = colour(theme.secondary_bg_color) || theme.bg_color;
      document.documentElement.style.setProperty("--warn-bg", "transparent");
    }
    Object.keys(colours).forEach(function (name) {
      if (colour(theme[name])) {
        document.documentElement.style.setProperty(colours[name], theme[name]);
      }
    });
    fetch(base + "/telegram", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ initData: initData }),
      credentials: "same-origin",
    })
      .then(function (response) {
        document.body.dataset.telegram = response.ok ? "bound" : "refused";
      })
      .catch(function () {
        document.body.dataset.telegram = "refused";
      });
  }

  miniApp();
  setUp();
  var state = document.getElementById("status");
  if (state && ["completed", "expired", "cancelled", "failed"].indexOf(state.dataset.state) >= 0) {
    finished = true;
  } else {
    listen();
  }
})();
