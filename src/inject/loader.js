/* tccc-sidecar loader: gets a fresh SdkURL from the login endpoint and loads the TCCC Web
 * SDK into this page, once. ES5, no dependencies, never throws into the page. Its state is
 * on <html data-tccc-state>: loading, ready, unauthorized, unsupported, elsewhere, error.
 * It offers window.tcccSidecar.call(number) and, when configured, click-to-call on tel:
 * links; tccc:call-start and tccc:call-end follow the workbench's calls. In shell mode it
 * runs in the shell page. The sidecar fills in its settings (CONFIG) when it serves this file. */
(function () {
  "use strict";
  var CONFIG = __CONFIG__;
  var RETRY_KEY = "tccc-sidecar-unauthorized";
  var LOCK = "tccc-sidecar-sdk";
/*__COMMON__*/
  function fail(error, status) {
    setState("error");
    emit("tccc:error", { error: error, status: status || 0 });
  }

  // One loader per page, whatever SPA navigations or double injections happen.
  if (window.__tcccSidecarLoader) { return; }
  window.__tcccSidecarLoader = true;

  // The SDK needs Chrome 56+/Edge 80+ class browsers; IE and old engines end here quietly.
  function supported() {
    if (document.documentMode) { return false; }
    var m = /(?:Chrome|Chromium)\/(\d+)/.exec(navigator.userAgent || "");
    if (m && parseInt(m[1], 10) < 56) { return false; }
    var edge = /Edge\/(\d+)/.exec(navigator.userAgent || "");
    if (edge) { return false; }
    return !!(window.XMLHttpRequest && window.JSON && document.querySelector &&
      window.WebSocket && window.Promise);
  }

  // In a tab made of frames, only one same-origin document loads the SDK: the topmost one
  // that has a body, or the frame named by inject.frame_name when the top is a frameset.
  function isHost() {
    var w = window;
    try {
      while (w.parent && w.parent !== w) {
        var p = w.parent;
        var pd = p.document; // throws when the parent is another origin
        if (pd && pd.body && pd.body.tagName === "BODY") { return false; }
        w = p;
      }
    } catch (e) { /* a cross-origin ancestor: this document is the topmost we can see */ }
    if (!document.body || document.body.tagName !== "BODY") { return false; }
    if (window.parent !== window && CONFIG.frame) {
      try {
        if (window.parent.document.body && window.parent.document.body.tagName === "FRAMESET") {
          return window.name === CONFIG.frame;
        }
      } catch (e2) { return true; }
    }
    if (window.parent !== window) {
      // A frameset without a configured frame: its first same-origin frame with a body.
      try {
        var frames = window.parent.frames;
        for (var i = 0; i < frames.length; i++) {
          try {
            var fb = frames[i].document.body;
            if (fb && fb.tagName === "BODY") { return frames[i] === window; }
          } catch (e3) { /* another origin */ }
        }
      } catch (e4) { return true; }
    }
    return true;
  }

  // A 403 (signed in, no seat) is remembered for this tab for a while, keyed by the cookies
  // the page can see, so that the many OA users who are not agents do not ask on every page.
  // A 401 is not: it is what the CRM's own login page gets, and the next page, after the
  // login, must ask again (a session cookie is often HttpOnly, so the key would not change).
  var REMEMBER_MS = 10 * 60 * 1000;
  function cookieKey() {
    var c = (document.cookie || "").split(";").sort().join(";");
    var h = 5381;
    for (var i = 0; i < c.length; i++) { h = ((h * 33) ^ c.charCodeAt(i)) >>> 0; }
    return String(h);
  }
  function rememberedUnauthorized() {
    try {
      var v = (window.sessionStorage.getItem(RETRY_KEY) || "").split("/");
      return v[0] === cookieKey() && new Date().getTime() - Number(v[1]) < REMEMBER_MS;
    } catch (e) { return false; }
  }
  function rememberUnauthorized() {
    try { window.sessionStorage.setItem(RETRY_KEY, cookieKey() + "/" + new Date().getTime()); } catch (e) { /* storage off */ }
  }

  var attempt = 0;
  var sdkScript = null;
  var expiredOnce = false;
  var bound = [];
  var readyTimer = null;

  function listen(tccc, name, fn) {
    tccc.on(name, fn);
    bound.push([tccc, name, fn]);
  }

  /* Undoes an initialisation as the SDK's documentation and real integrations do before
   * loading it again: the listeners, the script, the SDK's root element, window.tccc. */
  function teardown() {
    if (readyTimer) { clearTimeout(readyTimer); readyTimer = null; }
    for (var i = 0; i < bound.length; i++) {
      try { bound[i][0].off(bound[i][1], bound[i][2]); } catch (e) { /* an SDK without off */ }
    }
    bound = [];
    if (sdkScript && sdkScript.parentNode) { sdkScript.parentNode.removeChild(sdkScript); }
    sdkScript = null;
    var sdkRoot = document.getElementById("tcccSdkDomRoot");
    if (sdkRoot && sdkRoot.parentNode) { sdkRoot.parentNode.removeChild(sdkRoot); }
    try { window.tccc = undefined; } catch (e2) { /* read-only in some page */ }
  }

  function requestToken(done) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", CONFIG.login, true);
    xhr.setRequestHeader("X-TCCC-Loader", "1");
    xhr.withCredentials = false; // same-origin: cookies are sent anyway
    xhr.timeout = 20000;
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) { return; }
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      var retryAfter = parseInt(xhr.getResponseHeader("Retry-After") || "", 10);
      done(xhr.status, body, isNaN(retryAfter) ? 0 : retryAfter);
    };
    try { xhr.send(null); } catch (e) { done(0, null, 0); }
  }

  function retryLater(status, error, retryAfter) {
    attempt += 1;
    if (attempt > CONFIG.retries) { fail(error, status); return; }
    var base = Math.max(retryAfter * 1000, 1000 * Math.pow(2, attempt - 1));
    var wait = base + Math.floor(Math.random() * 1000);
    setTimeout(start, wait);
  }

  function start() {
    setState("loading");
    requestToken(function (status, body, retryAfter) {
      if (status === 200 && body && typeof body.SdkURL === "string") {
        // Shell mode: the shell compares the token's user with its frame's and may refuse.
        if (!emit("tccc:token", { user: typeof body.User === "string" ? body.User : null }, true)) { return; }
        loadSdk(body.SdkURL);
        return;
      }
      var error = (body && body.error) || "login_failed";
      if (status === 401 || status === 403) {
        if (status === 403) rememberUnauthorized();
        setState("unauthorized");
        return;
      }
      if (status === 0 || (body && body.retryable) || status === 429 || status === 503 || status === 504) {
        retryLater(status, error, retryAfter);
        return;
      }
      fail(error, status);
    });
  }

  function waitForTccc(tries, cb) {
    if (window.tccc && window.tccc.on && window.tccc.events) { cb(window.tccc); return; }
    if (tries <= 0) { fail("sdk_missing", 0); return; }
    setTimeout(function () { waitForTccc(tries - 1, cb); }, 50);
  }

  function loadSdk(url) {
    teardown();
    var s = document.createElement("script");
    s.crossOrigin = "anonymous";
    s.setAttribute("crossorigin", "anonymous");
    s.setAttribute("referrerpolicy", "origin");
    var own = document.querySelector("script[data-tccc-loader]");
    var nonce = own && (own.nonce || own.getAttribute("nonce"));
    if (nonce) { s.setAttribute("nonce", nonce); }
    s.onload = function () {
      waitForTccc(100, function (tccc) {
        try {
          // Ready within a bound, or an error the agent can see and a later retry; never
          // "loading" for ever.
          readyTimer = setTimeout(function () {
            readyTimer = null;
            teardown();
            setState("error");
            emit("tccc:error", { error: "sdk_not_ready", status: 0 });
            retryLater(0, "sdk_not_ready", 0);
          }, CONFIG.readyMs);
          listen(tccc, tccc.events.ready, function () {
            if (readyTimer) { clearTimeout(readyTimer); readyTimer = null; }
            setState("ready");
            emit("tccc:ready", {});
          });
          watchCalls(tccc);
          listen(tccc, tccc.events.tokenExpired, function () {
            // Once per page: a fresh URL and a new initialisation; a second expiry is an error.
            teardown();
            if (expiredOnce) { fail("token_expired", 0); return; }
            expiredOnce = true;
            start();
          });
        } catch (e) { fail("sdk_error", 0); }
      });
    };
    s.onerror = function () { retryLater(0, "sdk_load_failed", 0); };
    s.src = url;
    sdkScript = s;
    (document.head || root).appendChild(s);
  }

  function whenOnlyTab(go) {
    var locks = navigator.locks;
    if (!locks || typeof locks.request !== "function") { go(); return; }
    var channel = null;
    try { channel = new window.BroadcastChannel(LOCK); } catch (e) { channel = null; }
    try {
      locks.request(LOCK, { ifAvailable: true }, function (lock) {
        if (lock) {
          if (channel) {
            channel.onmessage = function (m) {
              if (m && m.data === "focus") { try { window.focus(); } catch (e) { /* ignore */ } }
            };
          }
          go();
          return new Promise(function () { /* held for the life of the page */ });
        }
        setState("elsewhere");
        showElsewhere(channel);
        // When the tab that holds it closes, this one takes over.
        locks.request(LOCK, function () {
          hideElsewhere();
          go();
          return new Promise(function () { /* held */ });
        });
        return undefined;
      });
    } catch (e) { go(); }
  }

  /* Calls: tccc:call-start and tccc:call-end from the workbench's own events, whoever
   * started the call (this API, the page's own integration, or the agent in the workbench). */
  var active = {};
  /* Event payloads come flat ({sessionId}) or wrapped ({data: {sessionId}}) depending on the
   * SDK's version; both are read the same way. */
  function payload(d) {
    return d && typeof d.data === "object" && d.data !== null ? d.data : (d || {});
  }
  function watchCalls(tccc) {
    function on(name, fn) {
      try { if (tccc.events[name]) { listen(tccc, tccc.events[name], function (d) { fn(payload(d)); }); } } catch (e) { /* ignore */ }
    }
    on("callOuted", function (d) {
      active[d.sessionId || "?"] = true;
      emit("tccc:call-start", { direction: "outbound", sessionId: d.sessionId, phoneNumber: d.calleePhoneNumber });
    });
    on("callIn", function (d) {
      active[d.sessionId || "?"] = true;
      emit("tccc:call-start", { direction: "inbound", sessionId: d.sessionId });
    });
    on("sessionEnded", function (d) {
      delete active[d.sessionId || "?"];
      emit("tccc:call-end", { sessionId: d.sessionId });
    });
  }
  function activeCalls() {
    var n = 0;
    for (var k in active) { if (Object.prototype.hasOwnProperty.call(active, k)) { n++; } }
    return n;
  }

  /* A number as written in a link or by a page, as E.164 (+ and up to 15 digits), or why not.
   * Visual separators go; 00 is the international prefix; a national number needs
   * inject.click_to_call_country (its trunk 0 dropped); ;ext= is dropped, other tel:
   * parameters (phone-context) are refused rather than guessed at. Deny prefixes win over
   * allow prefixes: a tel: link in a user-written CRM note is a toll-fraud path. */
  function number(raw) {
    var s = String(raw === null || raw === undefined ? "" : raw);
    try { s = decodeURIComponent(s); } catch (e) { return { error: "invalid_number" }; }
    s = s.replace(/^\s*tel:/i, "");
    var parts = s.split(";");
    s = parts[0];
    for (var i = 1; i < parts.length; i++) {
      if (!/^ext=/i.test(parts[i])) { return { error: "invalid_number" }; }
    }
    s = s.replace(/\(0\)/g, "").replace(/[\s\u00a0().\-\/]/g, "");
    if (s.slice(0, 2) === "00") {
      s = "+" + s.slice(2);
    } else if (s.charAt(0) !== "+") {
      if (!CONFIG.country) { return { error: "invalid_number" }; }
      s = "+" + CONFIG.country + s.replace(/^0/, "");
    }
    if (!/^\+[1-9][0-9]{6,14}$/.test(s)) { return { error: "invalid_number" }; }
    for (var d = 0; d < CONFIG.deny.length; d++) {
      if (s.indexOf(CONFIG.deny[d]) === 0) { return { error: "denied" }; }
    }
    if (CONFIG.allow.length) {
      var allowed = false;
      for (var a = 0; a < CONFIG.allow.length; a++) {
        if (s.indexOf(CONFIG.allow[a]) === 0) { allowed = true; }
      }
      if (!allowed) { return { error: "denied" }; }
    }
    return { number: s };
  }

  /* The number as handed to the SDK (inject.dial_format), from the E.164 form every check was
   * made on: E.164 as it is, 00 instead of +, or national digits for numbers of the configured
   * country (its trunk prefix 0, or 1 in North America; a mainland Chinese mobile number has
   * none, as the SDK's examples dial it) and 00 for the rest. */
  function dialled(e164) {
    if (CONFIG.dial === "00") { return "00" + e164.slice(1); }
    if (CONFIG.dial !== "national") { return e164; }
    var cc = "+" + (CONFIG.country || "");
    if (!CONFIG.country || e164.indexOf(cc) !== 0) { return "00" + e164.slice(1); }
    var nsn = e164.slice(cc.length);
    if (CONFIG.country === "86" && /^1[0-9]{10}$/.test(nsn)) { return nsn; }
    return (CONFIG.country === "1" ? "1" : "0") + nsn;
  }

  function call(raw) {
    return new Promise(function (resolve, reject) {
      var n = number(raw);
      if (!n.number) { reject(callError(n.error)); return; }
      var t = window.tccc;
      if (root.getAttribute("data-tccc-state") !== "ready" || !t || !t.Call) { reject(callError("not_ready")); return; }
      var started;
      try {
        started = t.Call.startOutboundCall({ phoneNumber: dialled(n.number) });
      } catch (e) { reject(callError("call_failed", sdkMessage(e))); return; }
      // The SDK resolves {status: 'success', data: {sessionId, ...}} and fails with a plain
      // {status: 'error', errorMsg}, rejected or (some versions) resolved.
      Promise.resolve(started).then(function (r) {
        if (r && r.status && r.status !== "success") { reject(callError("call_failed", sdkMessage(r))); return; }
        var d = payload(r);
        resolve({ phoneNumber: n.number, sessionId: d.sessionId || null });
      }, function (e) { reject(callError("call_failed", sdkMessage(e))); });
    });
  }
  function sdkMessage(e) {
    if (!e) { return ""; }
    if (typeof e === "string") { return e; }
    return String(e.errorMsg || e.message || "");
  }
  /* The page's API: a failure is also announced as tccc:call-error, with the SDK's message. */
  function apiCall(raw) {
    return call(raw).then(null, function (err) {
      emit("tccc:call-error", { error: err.code || "call_failed", number: String(raw), message: err.message || "" });
      throw err;
    });
  }

  var elsewhereNode = null;
  function showElsewhere(channel) {
    try {
      var b = document.createElement("button");
      b.type = "button";
      b.setAttribute("data-tccc-elsewhere", "");
      b.textContent = "Call center is open in another tab";
      b.style.cssText = "position:fixed;right:16px;bottom:16px;z-index:2147483646;padding:8px 12px;" +
        "border:1px solid #999;border-radius:16px;background:#fff;color:#333;font:13px sans-serif;cursor:pointer";
      b.onclick = function () { if (channel) { channel.postMessage("focus"); } };
      document.body.appendChild(b);
      elsewhereNode = b;
    } catch (e) { /* ignore */ }
  }
  function hideElsewhere() {
    if (elsewhereNode && elsewhereNode.parentNode) { elsewhereNode.parentNode.removeChild(elsewhereNode); }
  }

  function main() {
    try {
      if (!supported()) { setState("unsupported"); return; }
      if (!isHost()) { return; }
      window.tcccSidecar = {
        call: apiCall,
        // For the shell page: a call a framed page asked for, whose failure that page's bridge
        // announces itself (tccc:call-error once, in the frame that asked).
        place: call,
        number: function (raw) { return number(raw).number || null; },
        dialled: function (raw) { var n = number(raw).number; return n ? dialled(n) : null; },
        activeCalls: activeCalls
      };
      if (CONFIG.clickToCall) { clickToCall(call); }
      if (rememberedUnauthorized()) { setState("unauthorized"); return; }
      whenOnlyTab(start);
    } catch (e) {
      fail("loader_error", 0);
    }
  }

  if (document.body) { main(); } else { document.addEventListener("DOMContentLoaded", main); }
})();
