  /* Shared by the loader and the bridge (the sidecar puts it into both when it serves them). */
  var root = document.documentElement;

  function setState(s) {
    try { root.setAttribute("data-tccc-state", s); } catch (e) { /* never throw into the page */ }
  }
  /* Dispatches a CustomEvent on window; returns false when a cancelable one was cancelled. */
  function emit(name, detail, cancelable) {
    try {
      var ev;
      if (typeof window.CustomEvent === "function") {
        ev = new window.CustomEvent(name, { detail: detail, cancelable: !!cancelable });
      } else {
        ev = document.createEvent("CustomEvent");
        ev.initCustomEvent(name, false, !!cancelable, detail);
      }
      return window.dispatchEvent(ev);
    } catch (e) { return true; }
  }
  function callError(code, message) {
    var e = new Error(message || code);
    e.code = code;
    return e;
  }
  /* Click-to-call: a plain left click on a tel: link, once the workbench is ready, becomes a
   * call through it instead of the OS dialler. Listening on window, after the page's own
   * handlers: a page whose own integration already took the click (preventDefault) wins. */
  function clickToCall(call) {
    window.addEventListener("click", function (e) {
      try {
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) { return; }
        var a = e.target;
        while (a && !(a.tagName === "A" && /^tel:/i.test(a.getAttribute("href") || ""))) { a = a.parentNode; }
        if (!a || root.getAttribute("data-tccc-state") !== "ready") { return; }
        e.preventDefault();
        var raw = a.getAttribute("href");
        call(raw).then(null, function (err) {
          emit("tccc:call-error", { error: (err && err.code) || "call_failed", number: raw.slice(4), message: (err && err.message) || "" });
        });
      } catch (x) { /* never throw into the page */ }
    }, false);
  }
