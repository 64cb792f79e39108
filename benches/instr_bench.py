#!/usr/bin/env python3
"""Instructions per proxied request: tccc-sidecar and nginx, counted by callgrind.

Wall-clock figures on a shared 2-core machine move by 10% from run to run; the number of
user-space instructions a request costs does not. Each proxy (one worker: nginx with
`master_process off`, the sidecar with `worker_threads = 1`) runs under
`valgrind --tool=callgrind` in front of the same upstream (nginx serving static files,
not counted); oha sends N1 requests over 4 keep-alive TLS connections in one run and N2 in
another, and instructions per request are (total(N2) - total(N1)) / (N2 - N1): startup,
TLS handshakes and shutdown cancel out. Kernel time is not counted (see proxy_bench.py for
CPU-seconds, which include it).

Keep --large minus --small at 1,000 or more: start-up itself varies (aws-lc seeds its random
generator from jitter entropy, about 110 million instructions give or take a fraction of a
percent), and only a large difference in requests makes that variation negligible.

Caveat: callgrind counts each byte a `rep movsb` copies as an instruction, so large memcpy
weigh more here than on the CPU (nginx's; the sidecar's use a vector loop on AMD processors,
see src/runtime/copy_tuning.rs).

Usage: benches/instr_bench.py [--small 1000] [--large 3000] [--no-build] [--top 0] [--bin PATH]
Needs valgrind, nginx and oha (scripts/bench-deps.sh installs them).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proxy_bench import (BIN, ROOT, free_port, make_certs, nginx_conf, nginx_proxy_server,  # noqa: E402
                         sidecar_proxy_conf, wait_port, write_pages)


def total_ir(path):
    """The `totals:` (or `summary:`) line of a callgrind output file."""
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
    raise SystemExit(f"{path}: no totals line")


def counted_run(cmd, port, path, requests, out, log):
    """Starts `cmd` under callgrind, sends `requests` requests, stops it; total instructions."""
    # The sidecar may start itself again at once (src/runtime/copy_tuning.rs): follow it there.
    vg = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out}"]
    with open(log, "w") as logf:
        proc = subprocess.Popen(vg + cmd, stdout=logf, stderr=subprocess.STDOUT)
        try:
            wait_port(port, timeout=120)
            res = subprocess.run(["oha", "-n", str(requests), "-c", "4", "--insecure", "--no-tui",
                                  f"https://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                                 timeout=600)
            if f"[200] {requests} responses" not in res.stdout:
                raise SystemExit(f"{cmd[0]}: not every request was answered 200:\n{res.stdout[-800:]}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return total_ir(out)


def top_functions(out_small, out_large, n, top):
    """The functions whose own instructions grow most per request (callgrind_annotate)."""
    def load(path):
        res = subprocess.run(["callgrind_annotate", "--auto=no", "--inclusive=no", "--threshold=100", path],
                             capture_output=True, text=True).stdout
        d = {}
        for line in res.splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[0].replace(",", "").isdigit() and "PROGRAM TOTALS" not in line:
                name = parts[2].split(":", 1)[-1]
                d[name] = d.get(name, 0) + int(parts[0].replace(",", ""))
        return d
    a, b = load(out_small), load(out_large)
    rows = sorted(((b[k] - a.get(k, 0)) / n, k) for k in b)[::-1][:top]
    for v, k in rows:
        print(f"    {v:8.0f}  {k[:110]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=1000, help="requests in the first run")
    ap.add_argument("--large", type=int, default=3000, help="requests in the second run")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--top", type=int, default=0, help="list the N functions that cost most per request")
    ap.add_argument("--bin", default=BIN, help="the sidecar binary to count (another build, for an A/B)")
    args = ap.parse_args()
    for tool in ["valgrind", "nginx", "oha"]:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run scripts/bench-deps.sh")
    if not args.no_build and args.bin == BIN:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "tccc-sidecar"], cwd=ROOT, check=True)

    tmp = tempfile.mkdtemp(prefix="tccc-instr-")
    os.chmod(tmp, 0o755)  # nginx's workers (nobody) serve the files
    up = None
    try:
        www = os.path.join(tmp, "www")
        write_pages(www)
        crt, key = make_certs(tmp, args.bin)
        up_port, ngx_port, side_port = free_port(), free_port(), free_port()
        up_conf = nginx_conf(tmp, "upstream", f"server {{ listen 127.0.0.1:{up_port}; root {www}; access_log off; }}", 1)
        up = subprocess.Popen(["nginx", "-c", up_conf, "-p", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(up_port)
        # One process: callgrind then counts the worker that does the work.
        ngx_conf = nginx_conf(tmp, "proxy", nginx_proxy_server(up_port, ngx_port, crt, key), 1,
                              main="master_process off;")
        side_conf = os.path.join(tmp, "sidecar.toml")
        sidecar_proxy_conf(side_conf, side_port, crt, key, 1, up_port)
        peers = [
            ("nginx", ngx_port, ["nginx", "-c", ngx_conf, "-p", tmp]),
            ("sidecar", side_port, [args.bin, "run", "--config", side_conf]),
        ]
        n = args.large - args.small
        print(f"# Instructions per proxied request  ({time.strftime('%Y-%m-%d %H:%M:%S')})")
        print(f"command: benches/instr_bench.py {' '.join(sys.argv[1:])}")
        print(f"callgrind, one worker each, oha -c 4 over keep-alive TLS; (run of {args.large} - run of "
              f"{args.small}) / {n}; user space only\n")
        print("| workload | nginx | sidecar | sidecar / nginx |")
        print("|---|---|---|---|")
        detail = []
        for path, label in [("/small.txt", "3-byte response"), ("/page.html", "78 KB HTML page")]:
            per = {}
            for name, port, cmd in peers:
                outs = []
                totals = []
                for count in (args.small, args.large):
                    out = os.path.join(tmp, f"cg-{name}-{path.strip('/')}-{count}.out")
                    totals.append(counted_run(cmd, port, path, count, out, out + ".log"))
                    outs.append(out)
                per[name] = (totals[1] - totals[0]) / n
                detail.append((label, name, outs))
            print(f"| {label} | {per['nginx']:,.0f} | {per['sidecar']:,.0f} | {per['sidecar'] / per['nginx']:.2f}x |")
        if args.top:
            for label, name, outs in detail:
                print(f"\n{label}, {name}: the {args.top} functions that cost most per request (own instructions)")
                top_functions(outs[0], outs[1], n, args.top)
    finally:
        if up:
            up.terminate()
            up.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
