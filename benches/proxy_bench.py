#!/usr/bin/env python3
"""Proxy benchmark: tccc-sidecar against nginx doing the same job, in one run.

Peers, all in front of one identical upstream (an nginx serving static files over plain
HTTP on loopback) and driven by the same load generator:
  ceiling   nginx serving the same files straight over TLS (no hop): the machine's limit
  nginx     nginx as a TLS reverse proxy (proxy_pass, upstream keepalive)
  sidecar   tccc-sidecar as a TLS reverse proxy
nginx's worker_processes equals the sidecar's worker threads.

For each workload it measures, over alternating runs (peers in rotating order):
  - throughput at saturation (wrk, keep-alive),
  - p99 latency at a fixed offered rate, 70% of nginx's maximum as oha itself reaches it
    (oha --qps with latency correction; oha costs more CPU than wrk, and a rate taken from
    wrk's figure overloads the shared machine),
  - the proxy's CPU-seconds per 1,000 requests (utime+stime from /proc/PID/stat),
and reports medians and spread (min-max). It prints the TLS version and cipher of each
peer, and finally runs the slow-reader memory check: 200 clients reading a 5 MB response
slowly through the sidecar, peak RSS against idle + 200 x 256 KiB.

With --baseline BIN, a fourth peer "before" runs another sidecar build (an earlier commit's
release binary) with the same configuration, alternating with the others, and the report adds
the sidecar / before ratios: a change on the request path measured before and after in one run.

With --session-cookie, every upstream answer sets a session cookie that the sidecars' identity
mode (introspect) reads: the Set-Cookie check each proxied answer gets, at its worst case.

Usage: benches/proxy_bench.py [--runs 5] [--duration 5] [--workers 2] [--pin] [--quick]
                              [--baseline BIN] [--session-cookie]
Needs nginx, wrk and oha (scripts/bench-deps.sh installs them).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "tccc-sidecar")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout}s")


def cpu_split(pids):
    """(user, system) CPU-seconds of the processes so far, from /proc/PID/stat."""
    user = system = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])  # utime
            system += int(fields[12])  # stime
        except OSError:
            pass
    return user / CLK_TCK, system / CLK_TCK


def cpu_seconds(pids):
    return sum(cpu_split(pids))


def rss_kib(pid, key="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    except OSError:
        return []


class Peer:
    def __init__(self, name, port, proc, cpu_pids):
        self.name, self.port, self.proc, self._cpu_pids = name, port, proc, cpu_pids

    def pids(self):
        return self._cpu_pids()


def taskset(cpus, pin):
    return ["taskset", "-c", cpus] if pin and shutil.which("taskset") else []


def nginx_conf(tmp, name, body, workers, main=""):
    path = os.path.join(tmp, f"nginx-{name}.conf")
    with open(path, "w") as f:
        f.write(f"""{main}
worker_processes {workers};
pid {tmp}/nginx-{name}.pid;
error_log {tmp}/nginx-{name}.error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
  # The fields of the sidecar's access line (no query string, upstream and total time, the
  # request id), so that both write the same line per request.
  log_format same_job '$time_iso8601 $request_method $uri $status $remote_addr '
                      '$upstream_response_time $request_time $bytes_sent $request_id';
  access_log {tmp}/nginx-{name}.access.log same_job buffer=64k;
  keepalive_requests 1000000;
  sendfile on;
  default_type application/octet-stream;
  types {{ text/html html; text/plain txt; }}
  {body}
}}
""")
    return path


def write_pages(www):
    """The benchmark's files: a 3-byte text and a 78 KB HTML table page."""
    os.makedirs(www)
    with open(os.path.join(www, "small.txt"), "w") as f:
        f.write("ok\n")
    row = "<tr><td>Customer</td><td>+86 21 5555 0101</td><td>note</td></tr>\n"
    page = "<!doctype html><html><head><title>CRM</title></head><body><table>\n"
    while len(page) < 78 * 1024:
        page += row
    page += "</table></body></html>\n"
    with open(os.path.join(www, "page.html"), "w") as f:
        f.write(page)


def make_certs(tmp, binary=BIN):
    """A certificate for localhost and 127.0.0.1, made by the sidecar; (cert, key) paths."""
    certs = os.path.join(tmp, "certs")
    subprocess.run([binary, "cert", "--out", certs, "--host", "localhost", "--host", "127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL)
    return os.path.join(certs, "tls.crt"), os.path.join(certs, "tls.key")


# nginx doing the sidecar's job, as the issue asks: what the upstream and the client get from
# the sidecar by default (the Host as the client sent it; a new forwarding chain started at the
# untrusted peer in X-Forwarded-For/-Proto/-Host and Forwarded; X-Real-IP set to the peer and the
# other client-IP and routing headers apps trust dropped; a request id; Via both ways), over
# upstream keepalive. Until 2026-11-30 the peer set only Host, X-Forwarded-For and -Proto and
# logged nginx's `combined` line: less work per request than the sidecar does.
NGINX_PROXY_LOCATION = (
    'proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; '
    'proxy_set_header Host $http_host; '
    'proxy_set_header X-Real-IP $remote_addr; '
    'proxy_set_header X-Forwarded-For $remote_addr; '
    'proxy_set_header X-Forwarded-Proto https; '
    'proxy_set_header X-Forwarded-Host $http_host; '
    'proxy_set_header Forwarded "for=$remote_addr;proto=https;host=\\"$http_host\\""; '
    'proxy_set_header X-Request-Id $request_id; '
    'proxy_set_header Via "1.1 nginx"; '
    'proxy_set_header True-Client-IP ""; proxy_set_header X-Client-IP ""; '
    'proxy_set_header X-Forwarded-Prefix ""; proxy_set_header X-Original-URL ""; '
    'proxy_set_header X-Rewrite-URL ""; '
    'add_header Via "1.1 nginx" always; proxy_buffering on;'
)


def nginx_proxy_server(up_port, port, crt, key):
    """nginx as the TLS reverse proxy the sidecar is compared with (upstream keepalive)."""
    ssl_conf = f"ssl_certificate {crt}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3;"
    return f"""
  upstream app {{ server 127.0.0.1:{up_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port} ssl; {ssl_conf}
    location / {{ {NGINX_PROXY_LOCATION} }} }}"""


# --session-cookie: every upstream answer sets the session cookie the sidecar's identity mode
# reads, so that the per-answer Set-Cookie check (identity/cookie_scope.rs) runs on every
# request: its worst case.
SESSION_COOKIE_UPSTREAM = 'add_header Set-Cookie "sid=bench-session-0123456789abcdef; Path=/; HttpOnly" always;'
SESSION_COOKIE_IDENTITY = """[identity]
mode = "introspect"
url = "/whoami"
cookies = ["sid"]
"""


def sidecar_proxy_conf(path, port, crt, key, workers, up_port, session_cookie=False):
    """The sidecar doing nginx's job: proxying with injection off, logging every request."""
    with open(path, "w") as f:
        if session_cookie:
            f.write(SESSION_COOKIE_IDENTITY)
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
tls_cert = "{crt}"
tls_key = "{key}"
worker_threads = {workers}
[upstream]
url = "http://127.0.0.1:{up_port}"
[inject]
# Like for like with nginx's proxy_pass: pages pass through unchanged here; injection is
# compared with nginx's sub_filter in benches/inject_bench.py.
mode = "off"
[log]
level = "info"
""")


def start_nginx(tmp, name, body, workers, cpus, pin):
    conf = nginx_conf(tmp, name, body, workers)
    proc = subprocess.Popen(taskset(cpus, pin) + ["nginx", "-c", conf, "-p", tmp],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc


def tls_info(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.version(), s.cipher()[0]


def run_wrk(port, path, duration, conns):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", f"https://127.0.0.1:{port}{path}"],
        capture_output=True, text=True).stdout
    rps, errors = None, 0
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if "Non-2xx" in line:
            errors += int(line.split(":")[1])
        if "Socket errors" in line:
            errors += sum(int(x) for x in line.split(":", 1)[1].replace(",", " ").split() if x.isdigit())
    if rps is None:
        raise SystemExit(f"wrk produced no result:\n{out}")
    total = None
    for line in out.splitlines():
        if "requests in" in line:
            total = int(line.split()[0])
    return rps, total, errors


def run_oha(port, path, duration, conns, qps):
    out = subprocess.run(
        ["oha", "-z", f"{duration}s", "-c", str(conns), "-q", str(int(qps)), "--latency-correction",
         "--insecure", "--no-tui", "--output-format", "json",
         f"https://127.0.0.1:{port}{path}"],
        capture_output=True, text=True)
    try:
        data = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"oha produced no JSON:\n{out.stdout}\n{out.stderr}")
    p99 = data["latencyPercentiles"]["p99"] * 1000.0
    ok = data["summary"]["successRate"]
    return p99, ok


def oha_max(port, path, duration, conns, headers=(), load=()):
    """Throughput with oha unthrottled: the latency runs use oha, which costs the shared CPUs
    more than wrk does, so their fixed rate is set from what the peer reaches under oha."""
    cmd = list(load) + ["oha", "-z", f"{duration}s", "-c", str(conns), "--insecure", "--no-tui", "--output-format", "json"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [f"https://127.0.0.1:{port}{path}"], capture_output=True, text=True)
    try:
        return float(json.loads(out.stdout)["summary"]["requestsPerSec"])
    except (json.JSONDecodeError, KeyError, TypeError):
        raise SystemExit(f"oha produced no JSON:\n{out.stdout}\n{out.stderr}")


def fmt_spread(values, unit="", digits=0):
    med = statistics.median(values)
    f = f"{{:.{digits}f}}"
    return f"{f.format(med)}{unit} ({f.format(min(values))}-{f.format(max(values))})"


def slow_readers(port, path, n=200, read_bytes=256 * 1024, pause=0.05):
    """Opens n TLS connections that each request `path` and read it slowly; returns when all
    have read `read_bytes` and are stalled, leaving them open (the caller measures, then closes)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    socks, ready = [], threading.Barrier(n + 1, timeout=60)

    def one():
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        got = 0
        while got < read_bytes:
            chunk = s.recv(16 * 1024)
            if not chunk:
                break
            got += len(chunk)
            time.sleep(pause)
        socks.append(s)
        ready.wait()

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    ready.wait()
    return socks


def memory_check(pid, port, path, label):
    """200 clients each read 256 KiB of a large response at `path`, then stall; prints the
    proxy's peak RSS against idle + 200 x 256 KiB."""
    idle = rss_kib(pid)
    socks = slow_readers(port, path)
    time.sleep(1.0)  # let the pipeline fill to its bounded size while every reader is stalled
    peak = rss_kib(pid, "VmHWM")
    now = rss_kib(pid)
    for s in socks:
        s.close()
    budget = idle + 200 * 256
    print(f"## {label}")
    print(f"idle RSS {idle} KiB; with 200 stalled readers {now} KiB; peak (VmHWM) {peak} KiB; "
          f"budget idle + 200 x 256 KiB = {budget} KiB: {'within' if peak <= budget else 'OVER'}")


def stop_all(procs, tmp):
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
        except Exception:
            p.kill()
    shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None, help="sidecar threads = nginx workers (default: 1 pinned, else 2)")
    ap.add_argument("--pin", action="store_true", help="pin proxies to CPU 0, upstream and load generator to CPU 1")
    ap.add_argument("--quick", action="store_true", help="2 runs of 2 s: a smoke test of the harness")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--memory-only", action="store_true", help="only the slow-reader memory check")
    ap.add_argument("--baseline", metavar="BIN", help="another sidecar binary, run as the peer 'before'")
    ap.add_argument("--session-cookie", action="store_true",
                    help="the upstream sets a session cookie on every answer; the sidecars read it (introspect mode)")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.duration = 2, 2
    workers = args.workers or (1 if args.pin else 2)
    for tool in ["nginx", "wrk", "oha"]:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run scripts/bench-deps.sh")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)

    tmp = tempfile.mkdtemp(prefix="tccc-bench-")
    # nginx workers run unprivileged: they must be able to read the files.
    os.chmod(tmp, 0o755)
    procs = []
    try:
        www = os.path.join(tmp, "www")
        write_pages(www)
        with open(os.path.join(www, "big.bin"), "wb") as f:
            f.write(os.urandom(5 * 1024 * 1024))
        crt, key = make_certs(tmp)

        up_port, ceil_port, ngx_port, side_port = free_port(), free_port(), free_port(), free_port()
        proxy_cpus, other_cpus = "0", "1"
        up_extra = SESSION_COOKIE_UPSTREAM if args.session_cookie else ""
        up = start_nginx(tmp, "upstream", f"server {{ listen 127.0.0.1:{up_port}; root {www}; access_log off; {up_extra} }}",
                         1, other_cpus, args.pin)
        procs.append(up)
        ssl_conf = f"ssl_certificate {crt}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3;"
        ceil = start_nginx(tmp, "ceiling", f"server {{ listen 127.0.0.1:{ceil_port} ssl; {ssl_conf} root {www}; }}",
                           workers, proxy_cpus, args.pin)
        procs.append(ceil)
        ngx = start_nginx(tmp, "proxy", nginx_proxy_server(up_port, ngx_port, crt, key), workers, proxy_cpus,
                          args.pin)
        procs.append(ngx)
        side_conf = os.path.join(tmp, "sidecar.toml")
        sidecar_proxy_conf(side_conf, side_port, crt, key, workers, up_port, args.session_cookie)
        side_log = open(os.path.join(tmp, "sidecar.log"), "w")
        side = subprocess.Popen(taskset(proxy_cpus, args.pin) + [BIN, "run", "--config", side_conf],
                                stdout=subprocess.DEVNULL, stderr=side_log)
        procs.append(side)
        ports = [up_port, ceil_port, ngx_port, side_port]
        before = None
        if args.baseline:
            before_port = free_port()
            before_conf = os.path.join(tmp, "before.toml")
            sidecar_proxy_conf(before_conf, before_port, crt, key, workers, up_port, args.session_cookie)
            before = subprocess.Popen(taskset(proxy_cpus, args.pin) + [args.baseline, "run", "--config", before_conf],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(before)
            ports.append(before_port)
        for p in ports:
            wait_port(p)

        peers = [
            Peer("ceiling", ceil_port, ceil, lambda: children(ceil.pid) + [ceil.pid]),
            Peer("nginx", ngx_port, ngx, lambda: children(ngx.pid) + [ngx.pid]),
            Peer("sidecar", side_port, side, lambda: [side.pid]),
        ]
        if before is not None:
            peers.append(Peer("before", before_port, before, lambda: [before.pid]))
        load = taskset(other_cpus, args.pin)
        print(f"# tccc-sidecar proxy benchmark  ({time.strftime('%Y-%m-%d %H:%M:%S')})")
        print(f"command: benches/proxy_bench.py {' '.join(sys.argv[1:])}")
        print(f"machine: {os.cpu_count()} CPUs; workers per proxy: {workers}; pinned: {bool(load)}; "
              f"{args.runs} runs x {args.duration}s, wrk -t1 -c{args.connections}; "
              f"nginx {subprocess.run(['nginx', '-v'], capture_output=True, text=True).stderr.strip().split('/')[-1]}")
        for p in peers:
            v, c = tls_info(p.port)
            print(f"TLS {p.name:8} {v} {c}")
        if args.baseline:
            print(f"baseline (peer 'before'): {args.baseline}")
        print()

        results = {}
        workloads = [] if args.memory_only else [("/small.txt", "3-byte response, keep-alive"), ("/page.html", "78 KB HTML page")]
        for path, label in workloads:
            rps = {p.name: [] for p in peers}
            cpu = {p.name: [] for p in peers}
            errs = {p.name: 0 for p in peers}
            user_us = {p.name: [] for p in peers}
            sys_us = {p.name: [] for p in peers}
            for r in range(args.runs):
                order = peers[r % len(peers):] + peers[:r % len(peers)]
                for p in order:
                    u0, s0 = cpu_split(p.pids())
                    v, total, e = run_wrk(p.port, path, args.duration, args.connections)
                    u1, s1 = cpu_split(p.pids())
                    used = (u1 - u0) + (s1 - s0)
                    rps[p.name].append(v)
                    cpu[p.name].append(used / (total / 1000.0) if total else float("nan"))
                    if total:
                        user_us[p.name].append((u1 - u0) / total * 1e6)
                        sys_us[p.name].append((s1 - s0) / total * 1e6)
                    errs[p.name] += e
            oha_ref = statistics.median([oha_max(peers[1].port, path, args.duration, args.connections)
                                         for _ in range(2)])
            qps = 0.7 * oha_ref
            p99 = {p.name: [] for p in peers}
            for r in range(args.runs):
                order = peers[r % len(peers):] + peers[:r % len(peers)]
                for p in order:
                    v, ok = run_oha(p.port, path, args.duration, args.connections, qps)
                    p99[p.name].append(v)
            results[label] = (rps, cpu, p99, qps, errs)

            print(f"## {label}  (fixed rate for p99: {qps:.0f} req/s = 70% of nginx's maximum under oha, "
                  f"{oha_ref:.0f} req/s, median of 2 unthrottled runs)")
            print("| peer | throughput req/s, median (min-max) | p99 at fixed rate, ms | proxy CPU-s per 1,000 req | errors |")
            print("|---|---|---|---|---|")
            for p in peers:
                print(f"| {p.name} | {fmt_spread(rps[p.name])} | {fmt_spread(p99[p.name], digits=2)} | "
                      f"{fmt_spread(cpu[p.name], digits=3)} | {errs[p.name]} |")
            s, n = statistics.median(rps["sidecar"]), statistics.median(rps["nginx"])
            sp, np_ = statistics.median(p99["sidecar"]), statistics.median(p99["nginx"])
            sc, nc = statistics.median(cpu["sidecar"]), statistics.median(cpu["nginx"])
            print(f"\nsidecar / nginx: throughput {s / n:.2f}x, p99 {sp / np_:.2f}x, CPU per request {sc / nc:.2f}x")
            if before is not None:
                b, bp, bc = (statistics.median(rps["before"]), statistics.median(p99["before"]),
                             statistics.median(cpu["before"]))
                print(f"sidecar / before: throughput {s / b:.2f}x, p99 {sp / bp:.2f}x, CPU per request {sc / bc:.2f}x")
            print("CPU per request, user + system, medians: " + "; ".join(
                f"{p.name} {statistics.median(user_us[p.name]):.1f} + {statistics.median(sys_us[p.name]):.1f} us"
                for p in peers if user_us[p.name]) + "\n")

        # Slow readers: 200 clients each read 256 KiB of a 5 MB response, then stall.
        memory_check(side.pid, side_port, "/big.bin", "5 MB response, 200 slow readers (sidecar)")
    finally:
        stop_all(procs, tmp)

if __name__ == "__main__":
    main()
