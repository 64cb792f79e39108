/* tccc-sidecar diagnostics: checks, from the agent's own browser, what the TCCC Web SDK needs.
   ES5 on purpose: it must run in the old browsers it is meant to diagnose. */
(function () {
  'use strict';
  var root = document.documentElement;
  var C;
  try {
    C = JSON.parse(document.getElementById('tccc-diag-config').textContent);
  } catch (e) {
    root.setAttribute('data-diag-state', 'error');
    return;
  }
  var table = document.getElementById('checks');
  // One for the set-up itself, so that rows answered at once do not finish the page early.
  var pending = 1;

  function text(el, s) {
    el.textContent = s;
    return el;
  }

  function row(id, label) {
    var tr = document.createElement('tr');
    tr.setAttribute('data-check', id);
    tr.setAttribute('data-status', 'pending');
    tr.appendChild(text(document.createElement('th'), label));
    tr.appendChild(text(document.createElement('td'), 'checking…'));
    tr.appendChild(document.createElement('td'));
    table.appendChild(tr);
    pending++;
    return tr;
  }

  function set(tr, status, result, hint) {
    var was = tr.getAttribute('data-status');
    tr.setAttribute('data-status', status);
    text(tr.children[1], result);
    text(tr.children[2], hint || '');
    if (was === 'pending' && status !== 'pending') {
      pending--;
      if (pending === 0) finish();
    }
  }

  function finish() {
    var rows = table.querySelectorAll('tr[data-check]');
    var bad = 0;
    var warn = 0;
    for (var i = 0; i < rows.length; i++) {
      var s = rows[i].getAttribute('data-status');
      if (s === 'fail') bad++;
      if (s === 'warn') warn++;
    }
    text(document.getElementById('summary'), bad === 0 && warn === 0
      ? 'Everything the workbench needs is in place.'
      : bad + ' problem(s), ' + warn + ' warning(s): see the rows marked below.');
    root.setAttribute('data-diag-state', 'done');
  }

  // 1. A secure context: without it the browser hides the microphone.
  var secure = row('secure-context', 'Secure context (HTTPS)');
  var isSecure = typeof window.isSecureContext === 'boolean'
    ? window.isSecureContext : location.protocol === 'https:';
  if (isSecure) set(secure, 'ok', 'yes (' + location.protocol + '//' + location.host + ')');
  else set(secure, 'fail', 'no', 'Open the CRM through the sidecar\'s https:// address.');

  // 2. Browser support: the SDK's documented range and the APIs it uses.
  var browser = row('browser', 'Browser support');
  var ua = navigator.userAgent;
  var need = {
    WebSocket: typeof window.WebSocket === 'function' || typeof window.WebSocket === 'object',
    WebRTC: !!(window.RTCPeerConnection || window.webkitRTCPeerConnection),
    getUserMedia: !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia),
    Promise: typeof window.Promise === 'function',
    fetch: typeof window.fetch === 'function',
    'Web Audio': !!(window.AudioContext || window.webkitAudioContext)
  };
  var missing = [];
  for (var k in need) if (need.hasOwnProperty(k) && !need[k]) missing.push(k);
  var edge = /Edg\/(\d+)/.exec(ua);
  var chrome = /Chrom(?:e|ium)\/(\d+)/.exec(ua);
  var name = edge ? 'Edge ' + edge[1] : chrome ? 'Chrome ' + chrome[1] : ua;
  if (missing.length) {
    set(browser, 'fail', name + ': missing ' + missing.join(', '),
      'Use a current Chrome (56 or later) or Edge (80 or later).');
  } else if (edge ? +edge[1] >= 80 : chrome ? +chrome[1] >= 56 : false) {
    set(browser, 'ok', name);
  } else {
    set(browser, 'warn', name + ' (not in the SDK\'s documented range)',
      'The SDK is documented for Chrome 56+ and Edge 80+.');
  }

  // 3. Microphone permission as the browser reports it, and 4. a real capture on request.
  var perm = row('microphone-permission', 'Microphone permission');
  if (navigator.permissions && navigator.permissions.query) {
    navigator.permissions.query({ name: 'microphone' }).then(function (st) {
      if (st.state === 'granted') set(perm, 'ok', 'granted');
      else if (st.state === 'prompt') set(perm, 'warn', 'not decided yet', 'The browser will ask when a call starts; allow it.');
      else set(perm, 'fail', 'blocked', 'Allow the microphone for this site in the browser\'s site settings.');
    }, function () {
      set(perm, 'warn', 'the browser does not say', 'Use the microphone test below.');
    });
  } else {
    set(perm, 'warn', 'the browser does not say', 'Use the microphone test below.');
  }
  var mic = row('microphone', 'Microphone');
  var button = document.createElement('button');
  button.type = 'button';
  button.id = 'test-microphone';
  text(button, 'Test the microphone');
  // Not tested until asked (it makes the browser prompt): it does not hold up the summary.
  set(mic, 'idle', '', 'Click to check that a call can capture audio.');
  mic.children[1].appendChild(button);
  button.addEventListener('click', function () {
    if (!need.getUserMedia) {
      set(mic, 'fail', 'this browser cannot capture audio here', 'See the rows above.');
      return;
    }
    text(button, 'testing…');
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      var tracks = stream.getAudioTracks();
      var label = tracks.length ? tracks[0].label : '';
      for (var i = 0; i < tracks.length; i++) tracks[i].stop();
      set(mic, 'ok', 'works' + (label ? ' (' + label + ')' : ''));
      if (pending === 0) finish();
    }, function (e) {
      var why = {
        NotAllowedError: 'Allow the microphone for this site in the browser\'s site settings.',
        NotFoundError: 'No microphone is connected.',
        NotReadableError: 'Another program is using the microphone.'
      }[e && e.name] || '';
      set(mic, 'fail', 'failed: ' + (e && e.name ? e.name : 'error'), why);
      if (pending === 0) finish();
    });
  });

  // 5. What the sidecar knows about this browser's user (filled in by the server).
  var who = row('sign-in', 'Signed in, with a seat');
  set(who, C.signIn.status, C.signIn.result, C.signIn.hint);

  // 5b. Session cookies the application set where the sign-in endpoint never sees them (the
  // sidecar noticed them as they went by; only modes that read a cookie have this row).
  if (C.cookies) {
    var jar = row('session-cookie', 'Session cookie reaches ' + C.login);
    if (C.cookies.length === 0) {
      set(jar, 'ok', 'no problem seen in the cookies the application set', '');
    } else {
      var what = [], fix = [];
      for (var i = 0; i < C.cookies.length; i++) { what.push(C.cookies[i].what); fix.push(C.cookies[i].fix); }
      set(jar, 'fail', what.join('; '), 'Tell the operator: ' + fix.join('; ') + '.');
      if (C.signIn.status !== 'ok') {
        text(who.children[2], 'The CRM\'s session cookie does not reach the sidecar (see "Session cookie" below): tell the operator.');
      }
    }
  }

  // 6. Reachability of the SDK's hosts: an HTTPS request that completes (even with an answer
  // the page cannot read) proves DNS, the route, any proxy and TLS; a WebSocket that opens
  // proves upgrades pass too. A server that wants a token may refuse the socket, so only
  // the HTTPS probe decides.
  function probeHttps(origin, done) {
    var start = Date.now();
    var finished = false;
    var timer = setTimeout(function () {
      if (!finished) { finished = true; done(false, 'no answer in ' + (C.timeoutMs / 1000) + ' s'); }
    }, C.timeoutMs);
    fetch(origin + '/', { mode: 'no-cors', cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' })
      .then(function () {
        if (!finished) { finished = true; clearTimeout(timer); done(true, (Date.now() - start) + ' ms'); }
      }, function () {
        if (!finished) { finished = true; clearTimeout(timer); done(false, 'blocked or unreachable'); }
      });
  }

  function probeSocket(origin, done) {
    var ws;
    var finished = false;
    function end(ok) {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      try { ws.close(); } catch (e) { /* already closed */ }
      done(ok);
    }
    var timer = setTimeout(function () { end(false); }, C.timeoutMs);
    try {
      ws = new WebSocket(origin + '/');
    } catch (e) {
      finished = true;
      clearTimeout(timer);
      done(false);
      return;
    }
    ws.onopen = function () { end(true); };
    ws.onerror = function () { end(false); };
    ws.onclose = function () { end(false); };
  }

  if (!need.fetch) {
    set(row('reach', 'SDK hosts'), 'fail', 'cannot test: this browser has no fetch', '');
  }
  for (var i = 0; need.fetch && i < C.probes.length; i++) {
    (function (origin) {
      var tr = row('reach ' + origin, origin);
      var https = origin.replace(/^wss:/, 'https:');
      var hint = 'Ask the network team to allow HTTPS and WebSocket traffic to ' + origin.replace(/^\w+:\/\//, '') + '.';
      probeHttps(https, function (ok, detail) {
        if (!ok) { set(tr, 'fail', 'unreachable (' + detail + ')', hint); return; }
        if (origin.indexOf('wss:') !== 0) { set(tr, 'ok', 'reachable (' + detail + ')'); return; }
        probeSocket(origin, function (opened) {
          set(tr, 'ok', 'reachable (' + detail + '); WebSocket ' +
            (opened ? 'opened' : 'not opened without a token (expected for most servers)'));
        });
      });
    })(C.probes[i]);
  }
  if (C.patterns.length) {
    text(document.getElementById('patterns'),
      'Also used by the SDK, by host pattern (not probed: no single host to ask): ' + C.patterns.join(', '));
  }

  pending--;
  if (pending === 0) finish();

  document.getElementById('copy').addEventListener('click', function () {
    var lines = [];
    var rows = table.querySelectorAll('tr[data-check]');
    for (var i = 0; i < rows.length; i++) {
      lines.push(rows[i].getAttribute('data-status') + '\t' + rows[i].children[0].textContent + '\t' + rows[i].children[1].textContent);
    }
    lines.push('user agent\t' + ua);
    var area = document.getElementById('report');
    area.value = lines.join('\n');
    area.hidden = false;
    area.select();
    try { document.execCommand('copy'); } catch (e) { /* the text stays selected */ }
  });
})();
