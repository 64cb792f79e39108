/* tccc-sidecar bridge, shell mode: runs in each CRM page shown inside the shell's frame. It
 * tells the shell which page this is (address, title) and whose (a fingerprint of the user,
 * from the sidecar), mirrors the workbench's state onto this page (data-tccc-state,
 * tccc:ready, tccc:error, the call events, window.tccc for the page's own integration), keeps
 * target="_top" links and forms inside the shell, and tells the shell when the agent logs
 * out. Messages both ways are checked for origin and source. Outside a shell (no shell above
 * it) it loads the ordinary loader instead. ES5, never throws into the page. */
(function () {
  "use strict";
  var CONFIG = __CONFIG__;
  if (window.__tcccSidecarBridge) { return; }
  window.__tcccSidecarBridge = true;
/*__COMMON__*/
  var me = document.currentScript;
  if (!me) {
    var tags = document.querySelectorAll("script[data-tccc-loader]");
    me = tags[tags.length - 1];
  }
  var nonce = me && (me.nonce || me.getAttribute("nonce"));

  function findShell() {
    try {
      var t = window.top;
      if (t !== window && t.document.documentElement.hasAttribute("data-tccc-shell")) { return t; }
    } catch (e) { /* another origin above: not our shell */ }
    return null;
  }
  var shell = findShell();
  if (!shell || !window.location.origin) {
    var s = document.createElement("script");
    s.src = CONFIG.loader;
    s.defer = true;
    s.setAttribute("data-tccc-loader", "");
    if (nonce) { s.setAttribute("nonce", nonce); }
    (document.head || root).appendChild(s);
    return;
  }

  var ORIGIN = window.location.origin;
  // The fingerprint of this page's user: "-" when nobody is signed in, null when unknown.
  var user = me ? me.getAttribute("data-tccc-user") : null;
  // This page answered a form (a POST): the shell must not ask for its address again by GET.
  var posted = !!me && me.hasAttribute("data-tccc-posted");
  var direct = window.parent === shell;
  var state = "";
  var pending = {};
  var nextId = 1;
  var sdkListeners = {};
  var lastReport = "";

  function send(msg) {
    msg.tcccBridge = 1;
    try { shell.postMessage(msg, ORIGIN); } catch (e) { /* the shell is gone */ }
  }
  function report(type) {
    var key = location.href + "\n" + document.title;
    if (type === "page" && key === lastReport) { return; }
    lastReport = key;
    send({ type: type, user: user, url: location.href, title: document.title, direct: direct, posted: posted });
  }

  function current() {
    try { return shell.tccc || null; } catch (e) { return null; }
  }
  function forward(facade, key) {
    try {
      Object.defineProperty(facade, key, {
        enumerable: true,
        get: function () {
          var t = current();
          var v = t ? t[key] : undefined;
          return typeof v === "function" ? function () { return v.apply(t, arguments); } : v;
        }
      });
    } catch (e) { facade[key] = current() && current()[key]; }
  }

  function installTccc() {
    if (window.tccc) { return; }
    var real = null;
    try { real = shell.tccc; } catch (e) { real = null; }
    if (!real) { return; }
    var facade = {
      events: real.events,
      on: function (name, fn) { (sdkListeners[name] = sdkListeners[name] || []).push(fn); },
      off: function (name, fn) {
        var l = sdkListeners[name] || [];
        for (var i = l.length - 1; i >= 0; i--) { if (!fn || l[i] === fn) { l.splice(i, 1); } }
      }
    };
    // Everything else the workbench's SDK offers (Call, Agent, UI, Devices, Chat, Video,
    // overrideButtonConfig, and whatever a later SDK adds) is the shell's own, read from the
    // shell's current SDK on each use: after a re-initialisation (tokenExpired) the shell has
    // a new SDK object, and the page must not keep calling the old one.
    for (var k in real) {
      if (Object.prototype.hasOwnProperty.call(real, k) && !Object.prototype.hasOwnProperty.call(facade, k)) {
        forward(facade, k);
      }
    }
    window.tccc = facade;
  }

  window.addEventListener("message", function (e) {
    var d = e.data;
    if (e.source !== shell || e.origin !== ORIGIN || !d || d.tcccShell !== 1) { return; }
    try {
      if (d.type === "state") {
        // Until the shell confirms that this page's user is the workbench's, it is loading.
        var s = d.state === "ready" && !d.userOk ? "loading" : String(d.state);
        if (s === state) { return; }
        state = s;
        if (s === "ready") { installTccc(); }
        setState(s);
        if (s === "ready") { emit("tccc:ready", {}); }
        if (s === "error") { emit("tccc:error", d.detail || { error: "error", status: 0 }); }
      } else if (d.type === "event" && /^tccc:call-/.test(d.name)) {
        emit(d.name, d.detail);
      } else if (d.type === "sdk") {
        var l = (sdkListeners[d.name] || []).slice();
        for (var i = 0; i < l.length; i++) {
          try { l[i](d.data); } catch (x) { /* the page's listener */ }
        }
      } else if (d.type === "result" && pending[d.id]) {
        var p = pending[d.id];
        delete pending[d.id];
        if (d.ok) { p.resolve(d.value); } else { p.reject(callError(d.error || "call_failed", d.message)); }
      }
    } catch (x) { /* never throw into the page */ }
  });

  function call(raw) {
    return new Promise(function (resolve, reject) {
      var id = nextId++;
      pending[id] = { resolve: resolve, reject: reject };
      send({ type: "call", id: id, number: String(raw) });
    });
  }
  /* As the loader's API: a failure is also announced as tccc:call-error, with its message. */
  function apiCall(raw) {
    return call(raw).then(null, function (err) {
      emit("tccc:call-error", { error: err.code || "call_failed", number: String(raw), message: err.message || "" });
      throw err;
    });
  }
  window.tcccSidecar = { call: apiCall };
  if (CONFIG.clickToCall) { clickToCall(call); }

  function parse(url) {
    try { return new window.URL(url, location.href); } catch (e) { return null; }
  }
  function isLogout(u) {
    for (var i = 0; i < CONFIG.logout.length; i++) {
      if (u.pathname === CONFIG.logout[i]) { return true; }
    }
    return false;
  }
  function baseTarget() {
    var b = document.querySelector("base[target]");
    return b ? b.getAttribute("target") : "";
  }
  // target="_top" (and "_parent" from the shell's own frame) would replace the shell, and
  // the workbench with its call: such same-origin navigations are pointed at the frame.
  function escapes(t) {
    t = String(t || "").toLowerCase();
    return t === "_top" || (direct && t === "_parent");
  }

  document.addEventListener("click", function (e) {
    try {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) { return; }
      var a = e.target;
      while (a && !(a.tagName === "A" || a.tagName === "AREA")) { a = a.parentNode; }
      if (!a || !a.href || a.hasAttribute("download")) { return; }
      var u = parse(a.href);
      if (!u || !/^https?:$/.test(u.protocol)) { return; }
      var explicit = a.getAttribute("target");
      var t = explicit !== null ? explicit : baseTarget();
      if (u.origin === ORIGIN) {
        if (escapes(t)) { a.setAttribute("target", CONFIG.frame); }
        if (isLogout(u)) { send({ type: "logout" }); }
      } else if (direct && (!t || t.toLowerCase() === "_self")) {
        // Another site leaves the CRM, as it would without the shell.
        a.setAttribute("target", "_top");
      }
    } catch (x) { /* never throw into the page */ }
  }, true);

  document.addEventListener("submit", function (e) {
    try {
      var f = e.target;
      var sub = e.submitter;
      var ft = sub && sub.getAttribute("formtarget");
      var action = sub && sub.getAttribute("formaction") !== null ? sub.formAction : f.action;
      var u = parse(action);
      if (!u || u.origin !== ORIGIN) { return; }
      var t = ft !== null && ft !== undefined ? ft : (f.getAttribute("target") !== null ? f.getAttribute("target") : baseTarget());
      if (escapes(t)) {
        if (ft !== null && ft !== undefined) { sub.setAttribute("formtarget", CONFIG.frame); } else { f.setAttribute("target", CONFIG.frame); }
      }
      if (isLogout(u)) { send({ type: "logout" }); }
    } catch (x) { /* never throw into the page */ }
  }, true);

  setState("loading");
  report("hello");
  if (direct) {
    var watchTitle = function () {
      report("page");
      if (window.MutationObserver) {
        new window.MutationObserver(function () { report("page"); })
          .observe(document.head || root, { childList: true, subtree: true, characterData: true });
      }
    };
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", watchTitle);
    } else {
      watchTitle();
    }
    window.addEventListener("hashchange", function () { report("page"); });
    window.addEventListener("popstate", function () { report("page"); });
    var wrap = function (name) {
      var original = window.history[name];
      if (typeof original !== "function") { return; }
      window.history[name] = function () {
        var r = original.apply(window.history, arguments);
        report("page");
        return r;
      };
    };
    wrap("pushState");
    wrap("replaceState");
  }
})();
