#!/usr/bin/env python3
"""Captures the protobuf request bodies real kubectl sends, as fixtures for tests/fixtures/.

A plain-HTTP stand-in API server on 127.0.0.1: it answers legacy discovery for the kinds kubectl creates,
GETs of any object with a minimal object, and every POST with a small JSON echo; each POST body is saved
as <outdir>/<name>.pb (the kubectl run's name in RUNS below) with the request line and Content-Type in
<name>.meta.

usage: capture_kubectl.py <outdir>   (runs kubectl itself; needs /usr/bin/kubectl)
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GROUPS = {
    "v1": [("namespaces", "Namespace", False), ("configmaps", "ConfigMap", True), ("secrets", "Secret", True),
           ("serviceaccounts", "ServiceAccount", True), ("serviceaccounts/token", "TokenRequest", True),
           ("services", "Service", True), ("pods", "Pod", True), ("resourcequotas", "ResourceQuota", True)],
    "apps/v1": [("deployments", "Deployment", True), ("deployments/scale", "Scale", True),
                ("replicasets", "ReplicaSet", True), ("statefulsets", "StatefulSet", True)],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "autoscaling/v1": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "authorization.k8s.io/v1": [("selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
                                ("selfsubjectrulesreviews", "SelfSubjectRulesReview", False)],
    "authentication.k8s.io/v1": [("selfsubjectreviews", "SelfSubjectReview", False)],
    "rbac.authorization.k8s.io/v1": [("roles", "Role", True), ("rolebindings", "RoleBinding", True),
                                     ("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False)],
    "scheduling.k8s.io/v1": [("priorityclasses", "PriorityClass", False)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "networking.k8s.io/v1": [("ingresses", "Ingress", True)],
}
SHORT = {"deployments": ["deploy"], "configmaps": ["cm"], "services": ["svc"], "horizontalpodautoscalers": ["hpa"],
         "namespaces": ["ns"], "serviceaccounts": ["sa"], "poddisruptionbudgets": ["pdb"], "priorityclasses": ["pc"],
         "resourcequotas": ["quota"], "cronjobs": ["cj"], "ingresses": ["ing"], "replicasets": ["rs"]}

current = {"name": "unnamed"}


def kind_of(gv, resource):
    for (r, k, _) in GROUPS.get(gv, []):
        if r == resource:
            return k
    return None


def gv_and_rest(path):
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        return "v1", parts[2:]
    if parts[:1] == ["apis"] and len(parts) >= 3:
        return parts[1] + "/" + parts[2], parts[3:]
    return None, parts


def resource_of(rest):
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    return rest


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("capture: " + fmt % args + "\n")

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/version":
            return self.reply(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        if path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            groups = {}
            for gv in GROUPS:
                if "/" in gv:
                    g, v = gv.split("/")
                    groups.setdefault(g, []).append({"groupVersion": gv, "version": v})
            return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": vs, "preferredVersion": vs[0]} for g, vs in groups.items()]})
        gv, rest = gv_and_rest(path)
        if gv in GROUPS and not rest:
            return self.reply(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
                {"name": r, "singularName": "" if "/" in r else k.lower(), "namespaced": ns, "kind": k,
                 "verbs": ["create", "get", "list", "delete", "update", "patch"], "shortNames": SHORT.get(r, [])}
                for (r, k, ns) in GROUPS[gv]]})
        rest = resource_of(rest)
        if gv in GROUPS and len(rest) == 2:
            kind = kind_of(gv, rest[0])
            obj = {"apiVersion": gv, "kind": kind, "metadata": {"name": rest[1], "namespace": "default"}}
            if kind in ("Deployment", "ReplicaSet", "StatefulSet"):
                obj["spec"] = {"replicas": 1, "selector": {"matchLabels": {"app": rest[1]}}, "template": {
                    "metadata": {"labels": {"app": rest[1]}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
            return self.reply(200, obj)
        self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                         "code": 404, "message": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with open(os.path.join(sys.argv[1], current["name"] + ".pb"), "wb") as f:
            f.write(body)
        with open(os.path.join(sys.argv[1], current["name"] + ".meta"), "w") as f:
            f.write(f"{self.path}\n{self.headers.get('Content-Type')}\n")
        gv, rest = gv_and_rest(self.path)
        rest = resource_of(rest)
        kind = kind_of(gv, "/".join(rest[:1] + rest[2:3])) or "Status"
        if kind == "TokenRequest":
            gv = "authentication.k8s.io/v1"
        obj = {"apiVersion": gv, "kind": kind, "metadata": {"name": "captured", "namespace": "default"}}
        if kind == "SelfSubjectAccessReview":
            obj["status"] = {"allowed": True}
        if kind == "SelfSubjectReview":
            obj["status"] = {"userInfo": {"username": "captured"}}
        if kind == "TokenRequest":
            obj["status"] = {"token": "captured", "expirationTimestamp": "2030-01-01T00:00:00Z"}
        self.reply(201, obj)


RUNS = [
    ("configmap", ["create", "configmap", "cm", "--from-literal=db.host=localhost", "--from-literal=db.port=3306"]),
    ("secret_generic", ["create", "secret", "generic", "s", "--from-literal=password=s3cr3t"]),
    ("secret_tls", ["create", "secret", "docker-registry", "reg", "--docker-server=r.example",
                    "--docker-username=u", "--docker-password=p"]),
    ("namespace", ["create", "namespace", "team-a"]),
    ("deployment", ["create", "deployment", "web", "--image=nginx:1.7.9", "--replicas=3", "--port=80"]),
    ("service_clusterip", ["create", "service", "clusterip", "web", "--tcp=80:8080"]),
    ("service_nodeport", ["create", "service", "nodeport", "np", "--tcp=5678:8080", "--node-port=30080"]),
    ("serviceaccount", ["create", "serviceaccount", "robot"]),
    ("role", ["create", "role", "reader", "--verb=get,list", "--resource=pods,deployments.apps"]),
    ("rolebinding", ["create", "rolebinding", "rb", "--role=reader", "--serviceaccount=default:robot", "--user=bob"]),
    ("clusterrole", ["create", "clusterrole", "cr", "--verb=get", "--non-resource-url=/healthz"]),
    ("clusterrolebinding", ["create", "clusterrolebinding", "crb", "--clusterrole=cr", "--group=devs"]),
    ("quota", ["create", "quota", "q", "--hard=cpu=1,memory=1Gi,pods=10", "--scopes=NotTerminating"]),
    ("job", ["create", "job", "j", "--image=busybox", "--", "echo", "hi"]),
    ("cronjob", ["create", "cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"]),
    ("priorityclass", ["create", "priorityclass", "high", "--value=1000", "--description=important"]),
    ("pdb", ["create", "poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=50%"]),
    ("ingress", ["create", "ingress", "ing", "--rule=example.com/path*=web:80,tls=sec"]),
    ("token", ["create", "token", "robot", "--duration=1h"]),
    ("autoscale", ["autoscale", "deployment", "web", "--min=2", "--max=5", "--cpu-percent=80"]),
    ("can_i", ["auth", "can-i", "create", "deployments.apps", "--subresource=scale"]),
    ("whoami", ["auth", "whoami"]),
]


def main():
    os.makedirs(sys.argv[1], exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, KUBECACHEDIR=cache, KUBECONFIG=os.path.join(cache, "none"))
        for name, args in RUNS:
            current["name"] = name
            r = subprocess.run(["kubectl", "--server", f"http://127.0.0.1:{port}", "-n", "default"] + args,
                               env=env, capture_output=True, text=True, timeout=60)
            print(f"{name}: rc={r.returncode} {r.stdout.strip()} {r.stderr.strip()[:300]}")
    server.shutdown()


main()
