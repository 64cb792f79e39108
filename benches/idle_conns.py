#!/usr/bin/env python3
"""Idle keep-alive TLS connections held by the sidecar and by nginx, and the memory they cost.

Opens N TLS connections (default 10,000) to each server from many loopback source addresses
(127.0.0.2 to 127.0.0.41, so that neither a per-address limit nor one address's ephemeral ports
is what is measured), sends one keep-alive request on each, then holds them all idle and reads
the server's RSS: (RSS with N idle connections - RSS before) / N = KiB per connection. Then it
checks that every connection is still open by sending a second request on each.

Needs: a release build (cargo build --release), nginx, and an open-file limit above N for
this script and each server (it raises its own soft limit to the hard limit; so does the sidecar).

With --baseline BIN, another sidecar build (an earlier commit's release binary) holds the same
connections after this one, with the same configuration: a change measured before and after.

Usage: python3 benches/idle_conns.py [--connections 10000] [--no-build] [--baseline BIN]
"""

import argparse
import asyncio
import os
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_bench as pb  # noqa: E402

SOURCES = [f"127.0.0.{i}" for i in range(2, 42)]


def rss_kib(pids):
    return sum(pb.rss_kib(p) or 0 for p in pids)


async def open_one(port, ctx, src, sem):
    async with sem:
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost",
                                    local_addr=(src, 0)), 30)
        await request(r, w)
        return r, w


async def request(r, w):
    w.write(b"GET /small HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await w.drain()
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await asyncio.wait_for(r.readexactly(length), 30)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head[:40])


async def hold(name, port, pids, n):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    before = rss_kib(pids)
    sem = asyncio.Semaphore(200)
    t0 = time.time()
    results = await asyncio.gather(*[open_one(port, ctx, SOURCES[i % len(SOURCES)], sem) for i in range(n)],
                                   return_exceptions=True)
    conns = [c for c in results if not isinstance(c, BaseException)]
    failed = n - len(conns)
    errors = {}
    for x in results:
        if isinstance(x, BaseException):
            errors[repr(x)[:120]] = errors.get(repr(x)[:120], 0) + 1
    for e, count in sorted(errors.items(), key=lambda kv: -kv[1])[:3]:
        print(f"<!-- {name}: {count} x {e} -->")
    opened_s = time.time() - t0
    await asyncio.sleep(2)  # let the servers settle; a measurement pause, not synchronisation
    held = rss_kib(pids)
    again = await asyncio.gather(*[request(r, w) for r, w in conns], return_exceptions=True)
    still = sum(1 for x in again if not isinstance(x, BaseException))
    for _, w in conns:
        w.close()
    per = (held - before) / max(len(conns), 1)
    print(f"| {name} | {len(conns)} of {n} ({failed} failed) in {opened_s:.1f} s | {before} | {held} | "
          f"{per:.1f} | {still} of {len(conns)} |")
    return per, failed, still, len(conns)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--baseline", metavar="BIN", help="another sidecar binary, measured after this one")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = args.connections + 200
    if hard < need:
        raise SystemExit(f"the open-file hard limit is {hard}; {need} are needed (ulimit -Hn)")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=pb.ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="tccc-idle-")
    os.chmod(tmp, 0o755)  # nginx workers read www as another user
    procs = []
    try:
        www = os.path.join(tmp, "www")
        os.makedirs(www)
        with open(os.path.join(www, "small"), "w") as f:
            f.write("ok\n")
        certs = os.path.join(tmp, "certs")
        subprocess.run([pb.BIN, "cert", "--out", certs, "--host", "localhost", "--host", "127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL)
        crt, key = os.path.join(certs, "tls.crt"), os.path.join(certs, "tls.key")
        up_port, ngx_port, side_port = pb.free_port(), pb.free_port(), pb.free_port()
        conns = args.connections + 1000
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes 2;
worker_rlimit_nofile {hard};
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.error.log warn;
daemon off;
events {{ worker_connections {conns}; }}
http {{
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  upstream app {{ server 127.0.0.1:{up_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{up_port}; root {www}; }}
  server {{ listen 127.0.0.1:{ngx_port} ssl; ssl_certificate {crt}; ssl_certificate_key {key};
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
}}
""")
        ngx = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(ngx)
        def sidecar_conf(name, port):
            path = os.path.join(tmp, f"{name}.toml")
            with open(path, "w") as f:
                f.write(f"""[server]
listen = "127.0.0.1:{port}"
tls_cert = "{crt}"
tls_key = "{key}"
worker_threads = 2
header_read_timeout = "300s"
[upstream]
url = "http://127.0.0.1:{up_port}"
[inject]
mode = "off"
[log]
level = "warn"
""")
            return path

        side = subprocess.Popen([pb.BIN, "run", "--config", sidecar_conf("sidecar", side_port)],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "sidecar.log"), "w"))
        procs.append(side)
        ports = [up_port, ngx_port, side_port]
        before = None
        if args.baseline:
            before_port = pb.free_port()
            before = subprocess.Popen([args.baseline, "run", "--config", sidecar_conf("before", before_port)],
                                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "before.log"), "w"))
            procs.append(before)
            ports.append(before_port)
        for p in ports:
            pb.wait_port(p)
        print(f"# idle keep-alive TLS connections ({time.strftime('%Y-%m-%d %H:%M:%S')})")
        print(f"command: benches/idle_conns.py {' '.join(sys.argv[1:])}")
        print(f"open-file limit: {hard}; sources: {SOURCES[0]}-{SOURCES[-1]}; TLS 1.3, HTTP/1.1")
        print()
        print("| server | connections held | RSS before, KiB | RSS held, KiB | KiB per connection | still open after the hold |")
        print("|---|---|---|---|---|---|")
        ngx_workers = lambda: [c for c in pb.children(ngx.pid)]  # noqa: E731
        asyncio.run(hold("nginx (proxy_pass)", ngx_port, ngx_workers() + [ngx.pid], args.connections))
        per, failed, still, held = asyncio.run(hold("tccc-sidecar", side_port, [side.pid], args.connections))
        if before is not None:
            b_per, _, _, _ = asyncio.run(hold("before", before_port, [before.pid], args.connections))
            print(f"\nsidecar / before: {per / b_per:.2f}x memory per idle connection")
        print()
        print(f"sidecar: {per:.1f} KiB per idle connection (target <= 30): "
              f"{'within' if per <= 30 and failed == 0 and still == held else 'NOT within'}")
    finally:
        pb.stop_all(procs, tmp)


if __name__ == "__main__":
    main()
