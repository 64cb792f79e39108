#!/usr/bin/env python3
"""Offline validation of deploy/: the Kubernetes manifests (rendered with `kubectl kustomize`,
checked against the Kubernetes 1.29+ schemas with kubernetes-validate in strict mode, and
against what the sidecar needs), the configurations inside them (`tccc-sidecar check`), and
the systemd unit (`systemd-analyze verify`).

Usage: scripts/check-deploy.py --bin target/debug/tccc-sidecar
Prints one line per check and, last, `deploy: N passed, N failed[, N skipped]`.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S = os.path.join(ROOT, "deploy", "kubernetes")
VERSIONS = ["1.29.0", "1.31.0", "1.33.0", "1.35.0"]
results = {"passed": 0, "failed": 0, "skipped": 0}


def report(name, ok, detail=""):
    if ok is None:
        results["skipped"] += 1
        print(f"skip  {name}: {detail}")
    elif ok:
        results["passed"] += 1
        print(f"ok    {name}")
    else:
        results["failed"] += 1
        print(f"FAIL  {name}: {detail}")


def check(name):
    """Runs the decorated function as one check; an assertion or error fails it."""

    def wrap(fn):
        try:
            fn()
            report(name, True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the rest
            report(name, False, f"{type(e).__name__}: {e}")
        return fn

    return wrap


def render(overlay):
    out = subprocess.run(
        ["kubectl", "kustomize", os.path.join(K8S, overlay)],
        capture_output=True, text=True, timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return out.stdout, [d for d in yaml.safe_load_all(out.stdout) if d]


def find(docs, kind, name=None):
    for d in docs:
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name):
            return d
    raise AssertionError(f"no {kind} {name or ''}")


def sidecar_of(pod):
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        if c["name"] == "tccc-sidecar":
            return c
    raise AssertionError("no tccc-sidecar container")


def config_of(docs):
    cm = find(docs, "ConfigMap")
    return cm, tomllib.loads(cm["data"]["sidecar.toml"])


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def host_of(addr):
    return addr.rsplit(":", 1)[0].strip("[]")


def run_check(binary, config_text, mapping, files):
    """`tccc-sidecar check` on `config_text` with each absolute path prefix in `mapping`
    moved under a temporary root, where `files` (path -> content) are written first."""
    with tempfile.TemporaryDirectory() as tmp:
        text = config_text
        for prefix in sorted(mapping, key=len, reverse=True):
            text = text.replace(f'"{prefix}', f'"{tmp}{prefix}')
        for path, content in files.items():
            full = tmp + path
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(content)
            os.chmod(full, 0o600)
        cfg = os.path.join(tmp, "sidecar.toml")
        with open(cfg, "w") as f:
            f.write(text)
        out = subprocess.run([binary, "check", "--config", cfg], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError(out.stderr.strip().replace(tmp, ""))
        return out.stderr.replace(tmp, "")


def dev_cert(binary):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([binary, "cert", "--out", tmp, "--host", "crm.example.com"],
                       check=True, capture_output=True, timeout=60)
        return (open(os.path.join(tmp, "tls.crt")).read(), open(os.path.join(tmp, "tls.key")).read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    binary = os.path.abspath(ap.parse_args().bin)
    tls_crt, tls_key = dev_cert(binary)

    have_kubectl = shutil.which("kubectl") is not None
    rendered = {}
    for overlay in ["base", "overlays/classic", "overlays/example"]:
        if not have_kubectl:
            report(f"kustomize renders {overlay}", None, "kubectl is not installed")
            continue

        @check(f"kustomize renders {overlay}")
        def _():
            rendered[overlay] = render(overlay)

    for overlay, (text, _) in rendered.items():
        @check(f"{overlay} validates strictly against Kubernetes {', '.join(VERSIONS)}")
        def _():
            with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
                f.write(text)
                f.flush()
                for v in VERSIONS:
                    out = subprocess.run(["kubernetes-validate", "--strict", "--quiet", "-k", v, f.name],
                                         capture_output=True, text=True, timeout=120)
                    if out.returncode != 0:
                        raise AssertionError(f"{v}: {(out.stdout + out.stderr).strip()}")

    if "base" in rendered:
        docs = rendered["base"][1]
        dep = find(docs, "Deployment")
        pod = dep["spec"]["template"]["spec"]
        side = sidecar_of(pod)
        cm, cfg = config_of(docs)

        @check("base: the sidecar is a native sidecar (an init container with restartPolicy Always)")
        def _():
            assert side in pod.get("initContainers", []), "not an init container"
            assert side.get("restartPolicy") == "Always", side.get("restartPolicy")

        @check("base: probes on the admin port, which listens on the pod address (not loopback)")
        def _():
            admin = cfg["server"]["admin_listen"]
            assert host_of(admin) not in ("127.0.0.1", "::1", "localhost"), admin
            ports = {p["name"]: p["containerPort"] for p in side["ports"]}
            for probe, path in [("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
                g = side[probe]["httpGet"]
                port = ports.get(g["port"], g["port"])
                assert g["path"] == path, f"{probe} path {g['path']}"
                assert port == port_of(admin), f"{probe} port {port} vs admin_listen {admin}"

        @check("base: the startup probe does not wait for the app (it would deadlock a native sidecar)")
        def _():
            assert side["startupProbe"]["httpGet"]["path"] != "/readyz"

        @check("base: hardened securityContext (non-root, read-only root, no escalation, no capabilities)")
        def _():
            assert pod["securityContext"]["runAsNonRoot"] is True
            for c in pod.get("initContainers", []) + pod["containers"]:
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, c["name"]
                assert sc["readOnlyRootFilesystem"] is True, c["name"]
                assert sc["capabilities"]["drop"] == ["ALL"], c["name"]

        @check("base: secrets and config mounted as folders (no subPath), so rotation reaches the process")
        def _():
            for c in pod.get("initContainers", []) + pod["containers"]:
                for m in c.get("volumeMounts", []):
                    assert "subPath" not in m and "subPathExpr" not in m, m

        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in side["volumeMounts"]}

        def source_of(path):
            """(volume, key) that a file path in the config comes from."""
            d, base = os.path.split(path)
            assert d in mounts, f"{path}: no volume mounted at {d}"
            v = mounts[d]
            if "secret" in v:
                items = {i["path"]: i["key"] for i in v["secret"].get("items", [])}
                assert base in items, f"{path}: the Secret {v['secret']['secretName']} mount has no item {base}"
                return v, items[base]
            if "configMap" in v:
                assert base in cm["data"], f"{path}: not a key of the ConfigMap"
                return v, base
            raise AssertionError(f"{path}: unexpected volume {v}")

        files = [cfg["server"]["tls_cert"], cfg["server"]["tls_key"], cfg["tccc"]["secret_id_file"],
                 cfg["tccc"]["secret_key_file"], cfg["seats"]["file"]]

        @check("base: every file the config names is a key of the Secret or ConfigMap mounted there")
        def _():
            tls = source_of(cfg["server"]["tls_cert"])[0]["secret"]["secretName"]
            for p in files:
                source_of(p)
            # A kubernetes.io/tls Secret has exactly tls.crt and tls.key.
            assert source_of(cfg["server"]["tls_cert"])[1] == "tls.crt", tls
            assert source_of(cfg["server"]["tls_key"])[1] == "tls.key", tls

        @check("base: the config in the ConfigMap passes `tccc-sidecar check`")
        def _():
            content = {
                cfg["server"]["tls_cert"]: tls_crt,
                cfg["server"]["tls_key"]: tls_key,
                cfg["tccc"]["secret_id_file"]: "AKIDexample",
                cfg["tccc"]["secret_key_file"]: "example-key",
                cfg["seats"]["file"]: cm["data"]["seats.toml"],
            }
            run_check(binary, cm["data"]["sidecar.toml"], list(mounts), content)

        @check("base: terminationGracePeriodSeconds covers the app's preStop and the sidecar's delay and drain")
        def _():
            def secs(s):
                m = re.fullmatch(r"(\d+)s", s)
                assert m, s
                return int(m.group(1))

            app = [c for c in pod["containers"] if c["name"] != "tccc-sidecar"][0]
            pre = int(app["lifecycle"]["preStop"]["exec"]["command"][-1])
            need = pre + secs(cfg["server"].get("shutdown_delay", "0s")) + secs(cfg["server"]["shutdown_timeout"])
            assert pod["terminationGracePeriodSeconds"] > need, (pod["terminationGracePeriodSeconds"], need)

        @check("base: only the sidecar's port is open to traffic; the app listens on loopback")
        def _():
            np = find(docs, "NetworkPolicy")
            open_ports = {p["port"] for rule in np["spec"]["ingress"] if "from" not in rule for p in rule["ports"]}
            assert open_ports == {port_of(cfg["server"]["listen"])}, open_ports
            upstream = cfg["upstream"]["url"]
            assert "127.0.0.1" in upstream, upstream
            app = [c for c in pod["containers"] if c["name"] != "tccc-sidecar"][0]
            env = {e["name"]: e["value"] for e in app.get("env", [])}
            assert env.get("LISTEN_ADDRESS", "").startswith("127.0.0.1:"), env
            svc = find(docs, "Service")
            assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["https"], svc["spec"]["ports"]

    if "overlays/classic" in rendered:
        docs = rendered["overlays/classic"][1]

        @check("classic: the sidecar is an ordinary container for clusters before 1.29")
        def _():
            pod = find(docs, "Deployment")["spec"]["template"]["spec"]
            assert not pod.get("initContainers"), pod.get("initContainers")
            side = sidecar_of(pod)
            assert side in pod["containers"] and "restartPolicy" not in side

    if "overlays/example" in rendered:
        docs = rendered["overlays/example"][1]

        @check("example: the Secrets have exactly the keys the volumes mount")
        def _():
            pod = find(docs, "Deployment")["spec"]["template"]["spec"]
            for v in pod["volumes"]:
                if "secret" not in v:
                    continue
                s = find(docs, "Secret", v["secret"]["secretName"])
                keys = set(s.get("data", {})) | set(s.get("stringData", {}))
                wanted = {i["key"] for i in v["secret"]["items"]}
                assert keys == wanted, (v["secret"]["secretName"], keys, wanted)
            assert find(docs, "Secret", "crm-tls")["type"] == "kubernetes.io/tls"

    unit = os.path.join(ROOT, "deploy", "systemd", "tccc-sidecar.service")
    if shutil.which("systemd-analyze") is None:
        report("systemd unit passes systemd-analyze verify", None, "systemd-analyze is not installed")
    else:
        @check("systemd unit passes systemd-analyze verify (no warning either)")
        def _():
            with tempfile.TemporaryDirectory() as tmp:
                text = open(unit).read().replace("/usr/local/bin/tccc-sidecar", binary)
                path = os.path.join(tmp, "tccc-sidecar.service")
                with open(path, "w") as f:
                    f.write(text)
                out = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
                assert out.returncode == 0 and not out.stderr.strip(), out.stderr.strip()

    @check("systemd: credentials through LoadCredential= (never Environment=), matching the config's paths")
    def _():
        text = open(unit).read()
        assert not re.search(r"^Environment(File)?=.*(SECRET|KEY)", text, re.M | re.I)
        creds = dict(re.findall(r"^LoadCredential=([^:]+):(\S+)$", text, re.M))
        cfg = tomllib.load(open(os.path.join(ROOT, "deploy", "systemd", "sidecar.toml"), "rb"))
        run_dir = "/run/credentials/tccc-sidecar.service/"
        for p in [cfg["tccc"]["secret_id_file"], cfg["tccc"]["secret_key_file"], cfg["server"]["tls_key"]]:
            assert p.startswith(run_dir) and p[len(run_dir):] in creds, p
        assert re.search(r"^DynamicUser=yes$", text, re.M) and "CAP_NET_BIND_SERVICE" in text
        assert port_of(cfg["server"]["listen"]) == 443

    @check("systemd: its config passes `tccc-sidecar check`")
    def _():
        d = os.path.join(ROOT, "deploy", "systemd")
        run_dir = "/run/credentials/tccc-sidecar.service"
        cfg = tomllib.load(open(os.path.join(d, "sidecar.toml"), "rb"))
        content = {
            cfg["server"]["tls_cert"]: tls_crt,
            cfg["server"]["tls_key"]: tls_key,
            cfg["tccc"]["secret_id_file"]: "AKIDexample",
            cfg["tccc"]["secret_key_file"]: "example-key",
            cfg["seats"]["file"]: open(os.path.join(d, "seats.toml")).read(),
        }
        run_check(binary, open(os.path.join(d, "sidecar.toml")).read(), [run_dir, "/etc/tccc-sidecar"], content)

    @check("container: multi-stage, hardened binary, non-root final image that runs --version")
    def _():
        text = open(os.path.join(ROOT, "deploy", "container", "Dockerfile")).read()
        assert len(re.findall(r"^FROM ", text, re.M)) >= 2
        assert "--no-default-features" in text
        final = text[text.rindex("\nFROM "):]
        assert re.search(r"^USER 65532", final, re.M) and "nonroot" in final
        assert '"--version"' in final

    line = f"deploy: {results['passed']} passed, {results['failed']} failed"
    if results["skipped"]:
        line += f", {results['skipped']} skipped"
    print(line)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
