#!/usr/bin/env python3
"""Injection benchmark: tccc-sidecar rewriting pages against nginx `sub_filter`, in one run.

Peers, all in front of one nginx upstream serving static files over plain HTTP on loopback:
  nginx       nginx as a plain TLS reverse proxy (no rewriting): the floor of any proxy hop
  subfilter   nginx with sub_filter adding the same script tag before </head>, in its
              documented setup (proxy_set_header Accept-Encoding "": sub_filter cannot read
              compressed bodies) and gzip towards the client
  sidecar     tccc-sidecar injecting its loader tag
nginx's worker_processes equals the sidecar's worker threads.

Workloads:
  - an 80 KB HTML page, client without Accept-Encoding (everything uncompressed);
  - an 80 KB page whose ~800 rows each link to the app's own address (http://127.0.0.1:PORT/...),
    which the sidecar rewrites to the public origin and the others pass through;
  - the same page from a gzip upstream (gzip_static) to a client accepting "gzip, br": the
    sidecar decodes gzip and sends brotli; sub_filter gets it uncompressed and gzips it;
    plain nginx passes the upstream's gzip through untouched;
  - 200 slow readers of a 5 MB HTML page through the sidecar: peak RSS against
    idle + 200 x 256 KiB.
For each: throughput (wrk -t1 -c32), p99 at a fixed rate of 70% of sub_filter's maximum as
oha itself reaches it (oha --qps, latency correction), proxy CPU-seconds per 1,000 requests, and bytes
per response; alternating runs, medians and ranges. Each peer's answer is checked first
(the tag once for the rewriters, the coding the client gets).

With --baseline BIN, a fourth peer "before" runs another sidecar build (an earlier commit's
release binary) with the same configuration, alternating with the others, and the report adds
the sidecar / before ratios and the slow-reader memory check of both.

With --rewrite-urls, the peer "sidecar" rewrites the app's own URLs in pages
(inject.rewrite_urls = true): with --baseline, the cost of that option.

Usage: benches/inject_bench.py [--runs 3] [--duration 5] [--quick] [--no-build] [--baseline BIN]
                               [--ab-only] [--rewrite-urls]
Needs nginx (with the sub module: Debian's has it), wrk, oha: scripts/bench-deps.sh.
"""

import argparse
import gzip
import json
import os
import shutil
import ssl
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_bench as pb  # noqa: E402

# taskset prefix of the load generators when --pin.
LOAD = []

TAG = '<script src="/__tccc/loader.js" data-tccc-loader defer></script>'


def run_wrk(port, path, duration, conns, headers):
    cmd = LOAD + ["wrk", "-t1", f"-c{conns}", f"-d{duration}s"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [f"https://127.0.0.1:{port}{path}"], capture_output=True, text=True).stdout
    rps, total, errors, transfer = None, None, 0, None
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if "requests in" in line:
            total = int(line.split()[0])
        if "Non-2xx" in line:
            errors += int(line.split(":")[1])
        if "Socket errors" in line:
            errors += sum(int(x) for x in line.split(":", 1)[1].replace(",", " ").split() if x.isdigit())
        if line.startswith("Transfer/sec:"):
            v = line.split()[1]
            mult = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}
            for unit in ["GB", "MB", "KB", "B"]:
                if v.endswith(unit):
                    transfer = float(v[: -len(unit)]) * mult[unit]
                    break
    if rps is None:
        raise SystemExit(f"wrk produced no result:\n{out}")
    return rps, total, errors, (transfer / rps if transfer and rps else float("nan"))


def run_oha(port, path, duration, conns, qps, headers):
    cmd = LOAD + ["oha", "-z", f"{duration}s", "-c", str(conns), "-q", str(int(qps)), "--latency-correction",
           "--insecure", "--no-tui", "--output-format", "json"]
    for h in headers:
        cmd += ["-H", h]
    out = subprocess.run(cmd + [f"https://127.0.0.1:{port}{path}"], capture_output=True, text=True)
    try:
        data = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"oha produced no JSON:\n{out.stdout}\n{out.stderr}")
    return data["latencyPercentiles"]["p99"] * 1000.0


def fetch(port, path, headers):
    """One HTTP/1.1 request over TLS; returns (status line, headers dict, body bytes)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            extra = "".join(f"{h}\r\n" for h in headers)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return lines[0], hdrs, body


def decode(hdrs, body):
    enc = hdrs.get("content-encoding", "identity")
    if enc == "gzip":
        return gzip.decompress(body)
    if enc == "br":
        out = subprocess.run(["python3", "-c", "import sys,brotli;sys.stdout.buffer.write(brotli.decompress(sys.stdin.buffer.read()))"],
                             input=body, capture_output=True)
        if out.returncode == 0:
            return out.stdout
        return None  # no brotli module here: the coding is reported, the bytes not checked
    return body


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None, help="sidecar threads = nginx workers (default: 1 pinned, else 2)")
    ap.add_argument("--pin", action="store_true", help="pin proxies to CPU 0, upstream and load generator to CPU 1")
    ap.add_argument("--ab-only", action="store_true",
                    help="with --baseline: measure only sidecar and before (the fixed rate for p99 is 70%% of before's maximum)")
    ap.add_argument("--quick", action="store_true", help="2 runs of 2 s: a smoke test of the harness")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--baseline", metavar="BIN", help="another sidecar binary, run as the peer 'before'")
    ap.add_argument("--rewrite-urls", action="store_true",
                    help="the peer 'sidecar' (not 'before') runs with inject.rewrite_urls = true")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.duration = 2, 2
    args.workers = args.workers or (1 if args.pin else 2)
    if args.ab_only and not args.baseline:
        raise SystemExit("--ab-only needs --baseline BIN")
    proxy_cpus, other_cpus = "0", "1"
    LOAD[:] = pb.taskset(other_cpus, args.pin)
    for tool in ["nginx", "wrk", "oha"]:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: run scripts/bench-deps.sh")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=pb.ROOT, check=True)

    tmp = tempfile.mkdtemp(prefix="tccc-inject-bench-")
    os.chmod(tmp, 0o755)
    procs = []
    try:
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        row = "<tr><td>Customer</td><td>+86 21 5555 0101</td><td>note</td></tr>\n"
        head = "<!doctype html><html><head><meta charset=\"utf-8\"><title>CRM</title></head><body><table>\n"
        page = head
        while len(page) < 80 * 1024:
            page += row
        page += "</table></body></html>\n"
        big = head
        while len(big) < 5 * 1024 * 1024:
            big += row
        big += "</table></body></html>\n"
        up_port = pb.free_port()
        # The same page whose rows link to the app's own address, as apps that know their
        # internal URL write them: the sidecar moves each to the public origin (inject.rewrite_urls).
        links = head
        n = 0
        while len(links) < 80 * 1024:
            n += 1
            links += (f'<tr><td><a href="http://127.0.0.1:{up_port}/customer/{n}">Customer</a></td>'
                      f'<td>+86 21 5555 0101</td><td>note</td></tr>\n')
        links += "</table></body></html>\n"
        for name, text in [("page.html", page), ("big.html", big), ("links.html", links)]:
            with open(os.path.join(www, name), "w") as f:
                f.write(text)
        with open(os.path.join(www, "page.html.gz"), "wb") as f:
            f.write(gzip.compress(page.encode(), 6))
        certs = os.path.join(tmp, "certs")
        subprocess.run([pb.BIN, "cert", "--out", certs, "--host", "localhost", "--host", "127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL)
        crt, key = os.path.join(certs, "tls.crt"), os.path.join(certs, "tls.key")
        ngx_port, sub_port, side_port = pb.free_port(), pb.free_port(), pb.free_port()
        up = pb.start_nginx(tmp, "upstream",
                            # gzip_proxied: the sidecar sends Via (RFC 9110), which turns nginx's gzip off by default.
                            f"server {{ listen 127.0.0.1:{up_port}; root {www}; access_log off; gzip_static on; gzip_proxied any; }}",
                            1, other_cpus, args.pin)
        procs.append(up)
        ssl_conf = f"ssl_certificate {crt}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3;"
        ngx = pb.start_nginx(tmp, "proxy", f"""
  upstream app {{ server 127.0.0.1:{up_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{ngx_port} ssl; {ssl_conf}
    location / {{ {pb.NGINX_PROXY_LOCATION} }} }}""", args.workers, proxy_cpus, args.pin)
        procs.append(ngx)
        sub = pb.start_nginx(tmp, "subfilter", f"""
  upstream app {{ server 127.0.0.1:{up_port}; keepalive 64; }}
  gzip on; gzip_types text/html; gzip_comp_level 5; gzip_proxied any; gzip_vary on;
  server {{ listen 127.0.0.1:{sub_port} ssl; {ssl_conf}
    location / {{ {pb.NGINX_PROXY_LOCATION} proxy_set_header Accept-Encoding "";
      sub_filter '</head>' '{TAG}</head>'; sub_filter_once on; }} }}""", args.workers, proxy_cpus, args.pin)
        procs.append(sub)
        def start_sidecar(name, binary, port, extra=""):
            conf = os.path.join(tmp, f"{name}.toml")
            with open(conf, "w") as f:
                f.write(f"""[server]
listen = "127.0.0.1:{port}"
tls_cert = "{crt}"
tls_key = "{key}"
worker_threads = {args.workers}
[upstream]
url = "http://127.0.0.1:{up_port}"
[log]
level = "info"
{extra}""")
            proc = subprocess.Popen(pb.taskset(proxy_cpus, args.pin) + [binary, "run", "--config", conf],
                                    stdout=subprocess.DEVNULL,
                                    stderr=open(os.path.join(tmp, f"{name}.log"), "w"))
            procs.append(proc)
            return proc

        side = start_sidecar("sidecar", pb.BIN, side_port,
                             "[inject]\nrewrite_urls = true\n" if args.rewrite_urls else "")
        ports = [up_port, ngx_port, sub_port, side_port]
        baseline = None
        if args.baseline:
            before_port = pb.free_port()
            baseline = start_sidecar("before", args.baseline, before_port)
            ports.append(before_port)
        for p in ports:
            pb.wait_port(p)
        peers = [
            pb.Peer("nginx", ngx_port, ngx, lambda: pb.children(ngx.pid) + [ngx.pid]),
            pb.Peer("subfilter", sub_port, sub, lambda: pb.children(sub.pid) + [sub.pid]),
            pb.Peer("sidecar", side_port, side, lambda: [side.pid]),
        ]
        if baseline is not None:
            peers.append(pb.Peer("before", before_port, baseline, lambda: [baseline.pid]))
        if args.ab_only:
            peers = [p for p in peers if p.name in ("sidecar", "before")]
        print(f"# tccc-sidecar injection benchmark  ({time.strftime('%Y-%m-%d %H:%M:%S')})")
        print(f"command: benches/inject_bench.py {' '.join(sys.argv[1:])}")
        print(f"machine: {os.cpu_count()} CPUs; workers per proxy: {args.workers}; "
              f"{'pinned (proxies on CPU 0, upstream and load on CPU 1)' if args.pin else 'unpinned'}; "
              f"{args.runs} runs x {args.duration}s, wrk -t1 -c{args.connections}")
        if args.baseline:
            print(f"baseline (peer 'before'): {args.baseline}")
        for p in peers:
            v, c = pb.tls_info(p.port)
            print(f"TLS {p.name:9} {v} {c}")
        print()

        workloads = [
            ("/page.html", "80 KB HTML page, client without Accept-Encoding", []),
            ("/page.html", "80 KB HTML page, gzip upstream, client accepting gzip and br", ["Accept-Encoding: gzip, br"]),
            ("/links.html", "80 KB HTML page with a link to the app's own address in each row, client without Accept-Encoding", []),
        ]
        for path, label, headers in workloads:
            print(f"## {label}")
            for p in peers:
                status, hdrs, body = fetch(p.port, path, headers)
                plain = decode(hdrs, body)
                tags = plain.count(TAG.encode()) if plain is not None else "?"
                internal = plain.count(f"http://127.0.0.1:{up_port}/".encode()) if plain is not None else "?"
                print(f"check {p.name:9} {status}; content-encoding {hdrs.get('content-encoding', 'identity')}; "
                      f"{len(body)} bytes on the wire; loader tags {tags}; URLs of the app's own address {internal}")
                if p.name != "nginx" and plain is not None and tags != 1:
                    raise SystemExit(f"{p.name} did not inject exactly once")
            rps = {p.name: [] for p in peers}
            cpu = {p.name: [] for p in peers}
            size = {p.name: [] for p in peers}
            errs = {p.name: 0 for p in peers}
            for r in range(args.runs):
                order = peers[r % len(peers):] + peers[:r % len(peers)]
                for p in order:
                    before = pb.cpu_seconds(p.pids())
                    v, total, e, per = run_wrk(p.port, path, args.duration, args.connections, headers)
                    used = pb.cpu_seconds(p.pids()) - before
                    rps[p.name].append(v)
                    cpu[p.name].append(used / (total / 1000.0) if total else float("nan"))
                    size[p.name].append(per)
                    errs[p.name] += e
            ref_name = "before" if args.ab_only else "subfilter"
            reference = next(p for p in peers if p.name == ref_name)
            oha_ref = statistics.median([pb.oha_max(reference.port, path, args.duration, args.connections, headers, LOAD)
                                         for _ in range(2)])
            qps = 0.7 * oha_ref
            p99 = {p.name: [] for p in peers}
            for r in range(args.runs):
                order = peers[r % len(peers):] + peers[:r % len(peers)]
                for p in order:
                    p99[p.name].append(run_oha(p.port, path, args.duration, args.connections, qps, headers))
            print(f"\nfixed rate for p99: {qps:.0f} req/s = 70% of {ref_name}'s maximum under oha "
                  f"({oha_ref:.0f} req/s, median of 2 unthrottled runs)\n")
            print("| peer | throughput req/s, median (min-max) | p99 at fixed rate, ms | proxy CPU-s per 1,000 req | bytes/response (wire, incl. headers) | errors |")
            print("|---|---|---|---|---|---|")
            for p in peers:
                print(f"| {p.name} | {pb.fmt_spread(rps[p.name])} | {pb.fmt_spread(p99[p.name], digits=2)} | "
                      f"{pb.fmt_spread(cpu[p.name], digits=3)} | {statistics.median(size[p.name]):.0f} | {errs[p.name]} |")
            s, sp, sc = (statistics.median(rps["sidecar"]), statistics.median(p99["sidecar"]),
                         statistics.median(cpu["sidecar"]))
            print()
            if not args.ab_only:
                n, np_, nc = (statistics.median(rps["subfilter"]), statistics.median(p99["subfilter"]),
                              statistics.median(cpu["subfilter"]))
                print(f"sidecar / sub_filter: throughput {s / n:.2f}x, p99 {sp / np_:.2f}x, CPU per request {sc / nc:.2f}x")
            if baseline is not None:
                b, bp, bc = (statistics.median(rps["before"]), statistics.median(p99["before"]),
                             statistics.median(cpu["before"]))
                print(f"sidecar / before: throughput {s / b:.2f}x, p99 {sp / bp:.2f}x, CPU per request {sc / bc:.2f}x")
            print()

        pb.memory_check(side.pid, side_port, "/big.html", "5 MB HTML page, 200 slow readers (sidecar, injecting)")
        if baseline is not None:
            pb.memory_check(baseline.pid, before_port, "/big.html", "5 MB HTML page, 200 slow readers (before, injecting)")
    finally:
        pb.stop_all(procs, tmp)

if __name__ == "__main__":
    main()
