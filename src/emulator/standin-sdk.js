/* tccc-sidecar emulator: a stand-in for the TCCC Web SDK, written from its documented
 * behaviour (global `tccc`, on/off, events, Call/Agent/UI/Devices, ready after seconds,
 * tokenExpired for a stale or used token, one initialisation per page, a call-center button
 * at the bottom right). It is not the real SDK and makes no calls: a "call" is a row in its
 * panel and a message to the emulator. The server fills in __CONFIG__ per token. */
(function () {
  "use strict";
  var CONFIG = __CONFIG__;
  /* Test switches, set by a page before the SDK loads: payload "data" (the shape the current
   * guides read: response.data.sessionId) or "flat" (older pages); call "ok", or a call the
   * SDK refuses, "error-resolve" (resolves {status: 'error'}) or "error-reject" (rejects with
   * the plain object {status: 'error', errorMsg}); ready "never" (connects, never ready). */
  var VARIANT = window.__tcccStandInVariant || {};
  var DATA_PAYLOADS = VARIANT.payload !== "flat";
  function payload(d) { return DATA_PAYLOADS ? { data: d } : d; }
  function refusal(msg) { return { status: "error", errorMsg: msg }; }
  // Initialise once: a page that loads the SDK again must first do what the documentation
  // and real integrations do (remove the listeners, the script and the SDK's root element,
  // and clear window.tccc); one that does not fails here, loudly.
  if (window.tccc || document.getElementById("tcccSdkDomRoot")) {
    throw new Error("TCCC SDK is already initialised in this page (initialise the SDK only once)");
  }

  var EVENTS = {
    ready: "ready", tokenExpired: "tokenExpired", callIn: "callIn", userAccessed: "userAccessed",
    sessionEnded: "sessionEnded", callOuted: "callOuted", calloutAccepted: "calloutAccepted",
    transfer: "transfer", statusChanged: "statusChanged", autoTransfer: "autoTransfer",
    sessionCompleted: "sessionCompleted"
  };
  var listeners = {};
  var status = "offline";
  var socket = null;
  var pending = {};
  var calls = [];
  var nextId = 1;

  function emit(name, data) {
    var list = (listeners[name] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i](data); } catch (e) { setTimeout(function () { throw e; }, 0); }
    }
  }

  var ui = { root: null, button: null, panel: null, rows: null, state: null };
  // The SDK's own root element, as the real SDK puts its UI under <t3c-sdk id="tcccSdkDomRoot">.
  function sdkRoot() {
    if (!ui.root && document.body) {
      ui.root = document.createElement("t3c-sdk");
      ui.root.id = "tcccSdkDomRoot";
      document.body.appendChild(ui.root);
    }
    return ui.root;
  }
  if (!sdkRoot()) { document.addEventListener("DOMContentLoaded", sdkRoot); }
  function el(tag, css, text) {
    var n = document.createElement(tag);
    if (css) n.style.cssText = css;
    if (text) n.textContent = text;
    return n;
  }
  function buildUi() {
    if (ui.button || !sdkRoot()) return;
    ui.button = el("button", "position:fixed;right:20px;bottom:20px;z-index:2147483000;width:56px;height:56px;" +
      "border-radius:50%;border:0;background:#006eff;color:#fff;font:600 13px sans-serif;cursor:pointer;" +
      "box-shadow:0 2px 8px rgba(0,0,0,.3)", "TCCC");
    ui.button.id = "tccc-standin-button";
    ui.button.setAttribute("aria-label", "Call center");
    ui.panel = el("div", "position:fixed;right:20px;bottom:86px;z-index:2147483000;width:280px;background:#fff;" +
      "border:1px solid #ccd;border-radius:8px;padding:12px;font:13px sans-serif;color:#222;display:none;" +
      "box-shadow:0 2px 12px rgba(0,0,0,.25)");
    ui.panel.id = "tccc-standin-panel";
    ui.panel.appendChild(el("div", "font-weight:600;margin-bottom:6px", "Call center (emulator stand-in SDK)"));
    var seat = el("div", "", "Seat: " + CONFIG.seat);
    seat.id = "tccc-standin-seat";
    ui.panel.appendChild(seat);
    ui.state = el("div", "", "Status: " + status);
    ui.state.id = "tccc-standin-status";
    ui.panel.appendChild(ui.state);
    ui.rows = el("ul", "margin:8px 0 0;padding-left:18px");
    ui.rows.id = "tccc-standin-calls";
    ui.panel.appendChild(ui.rows);
    ui.button.onclick = function () { ui.panel.style.display = ui.panel.style.display === "none" ? "block" : "none"; };
    sdkRoot().appendChild(ui.panel);
    ui.root.appendChild(ui.button);
  }
  function setStatus(s) {
    status = s;
    if (ui.state) ui.state.textContent = "Status: " + s;
    emit(EVENTS.statusChanged, { status: s });
  }
  /* The panel's status follows the calls: busy while one is live, and back to what the agent
   * had chosen when the last one ends (so it never says "free" beside a call in progress). */
  var chosen = null;
  function followCalls() {
    var live = false;
    for (var i = 0; i < calls.length; i++) if (calls[i].state !== "ended") live = true;
    if (live && status !== "busy") {
      chosen = status;
      setStatus("busy");
    } else if (!live && status === "busy" && chosen !== null) {
      var back = chosen;
      chosen = null;
      setStatus(back);
    }
  }
  function showCall(call) {
    buildUi();
    if (!ui.rows) return;
    var row = el("li", "", "Calling " + call.phoneNumber + " (session " + call.sessionId + ")");
    row.setAttribute("data-session-id", call.sessionId);
    row.setAttribute("data-state", call.state);
    row.className = "tccc-standin-call";
    var hang = el("button", "margin-left:6px;font:12px sans-serif", "Hang up");
    hang.type = "button";
    hang.className = "tccc-standin-hangup";
    hang.onclick = function () { tccc.Call.hungUp({ sessionId: call.sessionId }); };
    row.appendChild(hang);
    call.row = row;
    ui.rows.appendChild(row);
    ui.panel.style.display = "block";
  }
  function findCall(opts) {
    for (var i = 0; i < calls.length; i++) {
      if (calls[i].sessionId === (opts && opts.sessionId)) return calls[i];
    }
    return null;
  }
  /* Call control the stand-in has nothing to do for: answered in the documented result
   * shape when the session is known (the real results of these are not in our reference). */
  function control(opts) {
    return findCall(opts)
      ? Promise.resolve({ status: "success", data: { sessionId: opts.sessionId } })
      : Promise.reject(refusal("no such session"));
  }
  var micMuted = false;
  function endCall(call) {
    call.state = "ended";
    if (call.row) {
      call.row.setAttribute("data-state", "ended");
      call.row.firstChild.nodeValue = "Ended " + call.phoneNumber + " (session " + call.sessionId + ")";
      if (call.row.lastChild && call.row.lastChild.tagName === "BUTTON") call.row.removeChild(call.row.lastChild);
    }
    emit(EVENTS.sessionEnded, payload({ sessionId: call.sessionId }));
    emit(EVENTS.sessionCompleted, payload({ sessionId: call.sessionId }));
    followCalls();
  }

  function request(msg) {
    return new Promise(function (resolve, reject) {
      if (!socket || socket.readyState !== 1 || status === "offline") {
        reject(refusal("TCCC SDK is not ready"));
        return;
      }
      var id = nextId++;
      msg.id = id;
      pending[id] = { resolve: resolve, reject: reject };
      socket.send(JSON.stringify(msg));
    });
  }

  var tccc = {
    events: EVENTS,
    on: function (name, fn) { (listeners[name] = listeners[name] || []).push(fn); },
    off: function (name, fn) {
      var l = listeners[name] || [];
      for (var i = l.length - 1; i >= 0; i--) if (!fn || l[i] === fn) l.splice(i, 1);
    },
    Call: {
      // Documented result: {status: 'success', data: {sessionId, calleePhoneNumber,
      // callerPhoneNumber, serverType}}; a failure rejects with {status: 'error', errorMsg}.
      startOutboundCall: function (opts) {
        var phone = opts && opts.phoneNumber;
        if (!phone) return Promise.reject(refusal("phoneNumber is required"));
        if (VARIANT.call === "error-resolve") {
          return Promise.resolve(refusal("stand-in refused the call (resolved)"));
        }
        if (VARIANT.call === "error-reject") {
          return Promise.reject(refusal("stand-in refused the call (rejected)"));
        }
        return request({ type: "call", phoneNumber: String(phone) }).then(function (r) {
          var call = { sessionId: r.sessionId, phoneNumber: String(phone), state: "calling" };
          calls.push(call);
          showCall(call);
          followCalls();
          emit(EVENTS.callOuted, payload({ sessionId: call.sessionId, calleePhoneNumber: call.phoneNumber }));
          return {
            status: "success",
            data: { sessionId: call.sessionId, calleePhoneNumber: call.phoneNumber,
              callerPhoneNumber: "", serverType: "staffSeat" }
          };
        });
      },
      hungUp: function (opts) {
        for (var i = 0; i < calls.length; i++) {
          if (calls[i].sessionId === (opts && opts.sessionId) && calls[i].state !== "ended") {
            endCall(calls[i]);
          }
        }
        return Promise.resolve();
      },
      accept: control,
      deleteCall: control,
      transfer: control,
      hold: control,
      unHold: control,
      sendDigits: control,
      muteMic: function () { micMuted = true; return Promise.resolve({ status: "success" }); },
      unmuteMic: function () { micMuted = false; return Promise.resolve({ status: "success" }); },
      isMicMuted: function () { return micMuted; },
      startInternalCall: function () { return Promise.reject(refusal("the stand-in has no internal calls")); },
      // A stand-in helper for tests (not part of the documented surface).
      getCalls: function () {
        var out = [];
        for (var i = 0; i < calls.length; i++) {
          out.push({ sessionId: calls[i].sessionId, phoneNumber: calls[i].phoneNumber, state: calls[i].state });
        }
        return out;
      }
    },
    Agent: {
      // Documented to return nothing.
      online: function () { setStatus("free"); },
      offline: function () { setStatus("offline"); },
      setStatus: function (s) { chosen = null; setStatus(s && s.status || s); return Promise.resolve(); },
      getStatus: function () { return status; }
    },
    UI: {
      show: function () { buildUi(); if (ui.button) ui.button.style.display = ""; },
      hide: function () { if (ui.button) ui.button.style.display = "none"; if (ui.panel) ui.panel.style.display = "none"; },
      showfloatButton: function () { if (ui.button) ui.button.style.display = ""; },
      hidefloatButton: function () { if (ui.button) ui.button.style.display = "none"; },
      showWorkbench: function () { buildUi(); if (ui.panel) ui.panel.style.display = "block"; },
      hideWorkbench: function () { if (ui.panel) ui.panel.style.display = "none"; }
    },
    Devices: {
      isBrowserSupported: function () { return !!(window.WebSocket && window.Promise && window.RTCPeerConnection); },
      isEnvSupported: function () { return !!(window.isSecureContext && window.RTCPeerConnection); },
      getMicrophones: function () { return Promise.resolve([]); },
      getSpeakers: function () { return Promise.resolve([]); }
    },
    // Documented groups whose methods our reference does not list: present, empty.
    Chat: {},
    Video: {},
    overrideButtonConfig: function () { return undefined; }
  };
  window.tccc = tccc;

  if (CONFIG.state !== "fresh") {
    // The real SDK reports a stale or used token asynchronously, after the script ran; the
    // documented answer is a fresh token and a new initialisation, which is then allowed.
    setTimeout(function () {
      emit(EVENTS.tokenExpired, { message: "token " + CONFIG.state });
    }, 300);
    return;
  }
  var started = Date.now();
  socket = new WebSocket(CONFIG.ws);
  socket.onmessage = function (ev) {
    var msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (msg.id && pending[msg.id]) {
      var p = pending[msg.id];
      delete pending[msg.id];
      if (msg.error) p.reject(refusal(msg.error)); else p.resolve(msg);
    }
  };
  socket.onopen = function () {
    // A switch for tests: an SDK that connects and never becomes ready.
    if (VARIANT.ready === "never") return;
    // The real SDK takes seconds to become ready; so does this one, at least one.
    setTimeout(function () {
      if (document.body) buildUi(); else document.addEventListener("DOMContentLoaded", buildUi);
      setStatus("free");
      emit(EVENTS.ready, { seat: CONFIG.seat });
    }, Math.max(0, 1000 - (Date.now() - started)));
  };
  socket.onclose = function () {
    if (status !== "offline") setStatus("offline");
  };
})();
