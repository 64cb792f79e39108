/* tccc-sidecar shell, shell mode: the page a tab keeps while the agent moves through the CRM.
 * The loader (in this page too) holds the workbench; the CRM is shown in a full-window frame
 * whose address comes from this page's own location. Framed pages report through their
 * bridge: their address and title become this tab's, and their user is checked against the
 * workbench's (a different user tears the workbench down before it can be used). A page that
 * breaks out of frames is detected and gets script mode instead of a loop; the shell's own
 * reloads (a new user signed in or out, often landing on the very address they started from)
 * are marked as its own and never taken for one. Leaving the tab during a call asks first.
 * ES5, never throws into the CRM. */
(function () {
  "use strict";
  var CONFIG = __CONFIG__;
  var frame = document.getElementById(CONFIG.frame);
  if (!frame || window.__tcccSidecarShell) { return; }
  window.__tcccSidecarShell = true;
  var root = document.documentElement;
  var ORIGIN = window.location.origin;
  var here = location.pathname + location.search;
  var STARTS = "tccc-shell-starts";
  var FRAMED = "tccc-shell-framed";
  var TEARDOWNS = "tccc-shell-teardowns";
  var RELOAD = "tccc-shell-reload";
  var leaving = false;

  function readList(key) {
    try {
      var v = JSON.parse(window.sessionStorage.getItem(key) || "[]");
      return v instanceof Array ? v : [];
    } catch (e) { return []; }
  }
  function writeList(key, list) {
    try { window.sessionStorage.setItem(key, JSON.stringify(list.slice(-8))); } catch (e) { /* storage off */ }
  }
  function within(list, ms) {
    var now = new Date().getTime();
    var out = [];
    for (var i = 0; i < list.length; i++) { if (list[i] && now - list[i].t < ms) { out.push(list[i]); } }
    return out;
  }

  // Script mode from here on for `path` (the sidecar reads this cookie of its own and never
  // passes it on), then this address again.
  function toScriptMode(path, seconds) {
    leaving = true;
    window.__tcccSidecarLoader = true; // the loader, deferred, must not ask for a token now
    document.cookie = "__tccc_shell=off; Path=" + path + "; Max-Age=" + seconds + "; Secure; SameSite=Lax";
    location.replace(location.href);
  }

  // A framed page that breaks out (top.location = self.location) brings the tab straight back
  // to the address it had in the frame, navigated to (not reloaded or typed) from that page
  // itself. A loop of shell starts at one address is taken for the same thing.
  function frameBusted() {
    var type = "navigate";
    try { type = window.performance.getEntriesByType("navigation")[0].type || type; } catch (e) { /* old browser */ }
    // The shell's own reload after a user change: marked (one use) just before it left.
    var own = within(readList(RELOAD), 10000);
    writeList(RELOAD, []);
    if (own.length > 0 && own[own.length - 1].u === here) { type = "shell"; }
    var list = readList(STARTS);
    var again = 0;
    var recent = within(list, 10000);
    for (var i = 0; i < recent.length; i++) {
      if (recent[i].u === here && recent[i].n === "navigate") { again++; }
    }
    list.push({ u: here, t: new Date().getTime(), n: type });
    writeList(STARTS, list);
    if (type !== "navigate") { return false; }
    var framed = within(readList(FRAMED), 10000);
    var wasFramed = framed.length > 0 && framed[framed.length - 1].u === here;
    return (wasFramed && document.referrer === ORIGIN + here) || again >= 2;
  }
  if (frameBusted()) {
    toScriptMode(location.pathname.split(";")[0] || "/", 3600);
    return;
  }

  var sdkUser = null;      // the fingerprint the workbench's token was issued for
  var frameUser;           // the last one a framed page reported (undefined: none yet)
  var framePosted = false; // the frame's page answered a form rather than a GET
  var lastGet = null;      // the last address the frame showed by a GET
  var bridges = [];        // { w: window, user: fingerprint }
  var lastError = null;

  function currentState() { return root.getAttribute("data-tccc-state") || "loading"; }
  function userOk(u) { return !!sdkUser && u === sdkUser; }
  function post(w, msg) {
    msg.tcccShell = 1;
    try { w.postMessage(msg, ORIGIN); } catch (e) { /* the frame is gone */ }
  }
  function stateFor(b) {
    return { type: "state", state: currentState(), userOk: userOk(b.user), detail: lastError };
  }
  function toBridges(make, onlyOk) {
    for (var i = 0; i < bridges.length; i++) {
      if (!onlyOk || userOk(bridges[i].user)) { post(bridges[i].w, make(bridges[i])); }
    }
  }
  function copy(x) {
    try { return x === undefined ? null : JSON.parse(JSON.stringify(x)); } catch (e) { return null; }
  }
  function inFrame(w) {
    try {
      for (var i = 0; w && i < 16; i++) {
        if (w === frame.contentWindow) { return true; }
        if (w === window || w.parent === w) { return false; }
        w = w.parent;
      }
    } catch (e) { /* not ours */ }
    return false;
  }
  function bridgeFor(w) {
    for (var i = 0; i < bridges.length; i++) { if (bridges[i].w === w) { return bridges[i]; } }
    var b = { w: w, user: null };
    bridges.push(b);
    return b;
  }

  function goOffline() {
    try {
      if (window.tccc && window.tccc.Agent && window.tccc.Agent.offline) { window.tccc.Agent.offline(); }
    } catch (e) { /* the SDK is going anyway */ }
  }

  // The address a reload of the shell should show: the frame's, unless that page answered a
  // form (sent again as a GET it may be refused or mean something else, as a sign-out
  // does): then the last page the frame showed by an ordinary GET, or the start.
  function reloadUrl() {
    var url = location.href;
    try { url = frame.contentWindow.location.href; } catch (e) { /* another origin */ }
    if (url.indexOf(ORIGIN + "/") !== 0) { url = location.href; }
    if (framePosted) { url = lastGet || ORIGIN + "/"; }
    return url;
  }
  function pathOf(url) {
    var a = document.createElement("a");
    a.href = url;
    var p = a.pathname || "/";
    return (p.charAt(0) === "/" ? p : "/" + p) + a.search;
  }

  // The user inside the frame is not the workbench's: end the workbench (the agent goes
  // offline, this page is replaced) before anything else can use it. Bounded: identity
  // sources that keep disagreeing (the same two users, again and again) get script mode,
  // where each page asks for itself; agents signing in and out as often as they like do not.
  function teardown(why) {
    if (leaving) { return; }
    sdkUser = null;
    toBridges(function () { return { type: "state", state: "loading", userOk: false }; });
    goOffline();
    try { window.sessionStorage.removeItem("tccc-sidecar-unauthorized"); } catch (e) { /* storage off */ }
    var url = reloadUrl();
    var list = readList(TEARDOWNS);
    var same = 0;
    var recent = within(list, 60000);
    for (var i = 0; i < recent.length; i++) { if (recent[i].w === why) { same++; } }
    if (same >= 3) {
      toScriptMode("/", 600);
      return;
    }
    list.push({ t: new Date().getTime(), w: why });
    writeList(TEARDOWNS, list);
    writeList(RELOAD, [{ u: pathOf(url), t: new Date().getTime() }]);
    leaving = true;
    location.replace(url);
  }

  // Returns false when the report ended the workbench.
  function checkUser(u) {
    if (u === null || u === undefined) { return true; } // the identity source did not answer
    var changed = frameUser !== undefined && frameUser !== u;
    frameUser = u;
    if (sdkUser && u !== sdkUser) { teardown(sdkUser + ">" + u); return false; }
    var s = currentState();
    if (!sdkUser && changed && u !== "-" && (s === "unauthorized" || s === "error")) {
      // Someone signed in inside the frame: the workbench is asked for again.
      teardown(">" + u);
      return false;
    }
    return true;
  }

  function show(url, title) {
    if (typeof url === "string" && url.indexOf(ORIGIN + "/") === 0) {
      writeList(FRAMED, [{ u: url.slice(ORIGIN.length).split("#")[0], t: new Date().getTime() }]);
      if (url !== location.href) {
        try { window.history.replaceState(window.history.state, "", url); } catch (e) { /* ignore */ }
      }
    }
    if (typeof title === "string") { document.title = title; }
  }

  window.addEventListener("message", function (e) {
    var d = e.data;
    if (e.origin !== ORIGIN || !d || d.tcccBridge !== 1 || !inFrame(e.source)) { return; }
    try {
      if (d.type === "hello") {
        if (e.source === frame.contentWindow) {
          bridges = [];
          framePosted = d.posted === true;
          if (!framePosted && typeof d.url === "string" && d.url.indexOf(ORIGIN + "/") === 0) { lastGet = d.url; }
        }
        var b = bridgeFor(e.source);
        b.user = typeof d.user === "string" ? d.user : null;
        if (!checkUser(b.user)) { return; }
        post(e.source, stateFor(b));
      }
      if ((d.type === "hello" || d.type === "page") && d.direct && e.source === frame.contentWindow) {
        show(d.url, d.title);
      } else if (d.type === "call") {
        var from = bridgeFor(e.source);
        var source = e.source;
        var reply = function (m) { m.type = "result"; m.id = d.id; post(source, m); };
        var api = window.tcccSidecar;
        var place = api && (api.place || api.call);
        if (!userOk(from.user) || !place) { reply({ ok: false, error: "not_allowed" }); return; }
        place(d.number).then(function (v) {
          reply({ ok: true, value: copy(v) });
        }, function (err) {
          reply({ ok: false, error: (err && err.code) || "call_failed", message: String((err && err.message) || "") });
        });
      } else if (d.type === "logout") {
        goOffline();
      }
    } catch (x) { /* never throw into the CRM */ }
  });

  window.addEventListener("tccc:token", function (e) {
    var u = e.detail && e.detail.user;
    if (frameUser !== undefined && frameUser !== null && u !== frameUser) {
      e.preventDefault();
      teardown(u + ">" + frameUser);
      return;
    }
    sdkUser = typeof u === "string" ? u : null;
  });
  window.addEventListener("tccc:error", function (e) { lastError = copy(e.detail); });
  var relay = ["tccc:call-start", "tccc:call-end", "tccc:call-error"];
  for (var r = 0; r < relay.length; r++) {
    (function (name) {
      window.addEventListener(name, function (e) {
        toBridges(function () { return { type: "event", name: name, detail: copy(e.detail) }; }, true);
      });
    })(relay[r]);
  }
  var relaying = false;
  function relaySdkEvents() {
    var t = window.tccc;
    if (relaying || !t || !t.events || !t.on) { return; }
    relaying = true;
    for (var k in t.events) {
      if (Object.prototype.hasOwnProperty.call(t.events, k)) {
        (function (name) {
          try {
            t.on(name, function (data) {
              toBridges(function () { return { type: "sdk", name: name, data: copy(data) }; }, true);
            });
          } catch (x) { /* ignore */ }
        })(t.events[k]);
      }
    }
  }
  function stateChanged() {
    if (leaving) { return; }
    if (currentState() === "ready") { relaySdkEvents(); }
    toBridges(stateFor);
  }
  if (window.MutationObserver) {
    new window.MutationObserver(stateChanged).observe(root, { attributes: true, attributeFilter: ["data-tccc-state"] });
  }

  window.addEventListener("beforeunload", function (e) {
    if (leaving) { return undefined; }
    var api = window.tcccSidecar;
    if (api && api.activeCalls && api.activeCalls() > 0) {
      e.preventDefault();
      e.returnValue = "";
      return "";
    }
    return undefined;
  });

  frame.src = ORIGIN + location.pathname + location.search + location.hash;
})();
