#!/usr/bin/env python3
"""Regenerates src/schema/generated.rs: the protobuf field table of the built-in kinds edge-proto decodes.

Facts come from upstream: field numbers and wire types from each package's generated.proto, JSON names,
inlining and Go pointer-ness from the struct tags in types.go (pointer fields keep zero values; gogo
writes non-pointer zero values that mean "absent").

usage: gen_schema.py <k8s.io/api git dir> <k8s.io/apimachinery git dir> <tag> > src/schema/generated.rs
The git dirs are read with `git show <tag>:<path>` (bare mirrors work). The checked-in table uses v0.35.7:
it only adds fields to 1.32 (so kubectl 1.32-1.34 all decode) and matches k8s-pb 0.9, which the tests encode with.
"""
import re
import subprocess
import sys

API_PKGS = {
    # proto package -> (repo key, dir, apiVersion or None for non-root packages)
    "k8s.io.api.core.v1": ("api", "core/v1", "v1"),
    "k8s.io.api.apps.v1": ("api", "apps/v1", "apps/v1"),
    "k8s.io.api.batch.v1": ("api", "batch/v1", "batch/v1"),
    "k8s.io.api.autoscaling.v1": ("api", "autoscaling/v1", "autoscaling/v1"),
    "k8s.io.api.autoscaling.v2": ("api", "autoscaling/v2", "autoscaling/v2"),
    "k8s.io.api.authorization.v1": ("api", "authorization/v1", "authorization.k8s.io/v1"),
    "k8s.io.api.authentication.v1": ("api", "authentication/v1", "authentication.k8s.io/v1"),
    "k8s.io.api.rbac.v1": ("api", "rbac/v1", "rbac.authorization.k8s.io/v1"),
    "k8s.io.api.scheduling.v1": ("api", "scheduling/v1", "scheduling.k8s.io/v1"),
    "k8s.io.api.policy.v1": ("api", "policy/v1", "policy/v1"),
    "k8s.io.api.networking.v1": ("api", "networking/v1", "networking.k8s.io/v1"),
    "k8s.io.api.certificates.v1": ("api", "certificates/v1", "certificates.k8s.io/v1"),
    "k8s.io.api.coordination.v1": ("api", "coordination/v1", "coordination.k8s.io/v1"),
    "k8s.io.api.events.v1": ("api", "events/v1", "events.k8s.io/v1"),
    "k8s.io.apimachinery.pkg.apis.meta.v1": ("apimachinery", "pkg/apis/meta/v1", None),
}

# Messages with their own JSON form (see src/special.rs).
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "FieldsV1",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawExtension",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
}

ROOTS = [
    ("k8s.io.api.core.v1", k) for k in [
        "Namespace", "ConfigMap", "Secret", "ServiceAccount", "Service", "Pod", "PodTemplate",
        "ReplicationController", "Endpoints", "PersistentVolumeClaim", "PersistentVolume", "ResourceQuota",
        "LimitRange", "Event", "Node", "Binding"]
] + [
    ("k8s.io.api.apps.v1", k) for k in ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ControllerRevision"]
] + [
    ("k8s.io.api.batch.v1", "Job"), ("k8s.io.api.batch.v1", "CronJob"),
    ("k8s.io.api.autoscaling.v1", "HorizontalPodAutoscaler"), ("k8s.io.api.autoscaling.v1", "Scale"),
    ("k8s.io.api.autoscaling.v2", "HorizontalPodAutoscaler"),
] + [
    ("k8s.io.api.authorization.v1", k) for k in [
        "SelfSubjectAccessReview", "SelfSubjectRulesReview", "SubjectAccessReview", "LocalSubjectAccessReview"]
] + [
    ("k8s.io.api.authentication.v1", k) for k in ["SelfSubjectReview", "TokenRequest", "TokenReview"]
] + [
    ("k8s.io.api.rbac.v1", k) for k in ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"]
] + [
    ("k8s.io.api.scheduling.v1", "PriorityClass"),
    ("k8s.io.api.policy.v1", "PodDisruptionBudget"), ("k8s.io.api.policy.v1", "Eviction"),
    ("k8s.io.api.networking.v1", "Ingress"), ("k8s.io.api.networking.v1", "IngressClass"),
    ("k8s.io.api.networking.v1", "NetworkPolicy"),
    ("k8s.io.api.certificates.v1", "CertificateSigningRequest"),
    ("k8s.io.api.coordination.v1", "Lease"),
    ("k8s.io.api.events.v1", "Event"),
]

SCALARS = {"string": "Str", "bytes": "Bytes", "int32": "Int32", "int64": "Int64", "uint32": "UInt32",
           "uint64": "UInt64", "bool": "Bool", "double": "Double", "float": "Float"}


def git_show(gitdir, path):
    return subprocess.run(["git", "--git-dir", gitdir, "show", f"{sys.argv[3]}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def parse_proto(text, pkg):
    msgs = {}
    for m in re.finditer(r"^message (\w+) \{\n(.*?)^\}", text, re.M | re.S):
        fields = []
        for line in m.group(2).splitlines():
            line = line.strip()
            if line.startswith("//") or not line:
                continue
            fm = re.match(r"(optional|repeated) ([\w.]+) (\w+) = (\d+);", line)
            if fm:
                fields.append((fm.group(1), qualify(fm.group(2), pkg), fm.group(3), int(fm.group(4)), None))
                continue
            mm = re.match(r"map<(\w+), ([\w.]+)> (\w+) = (\d+);", line)
            if mm:
                assert mm.group(1) == "string", line
                fields.append(("map", qualify(mm.group(2), pkg), mm.group(3), int(mm.group(4)), None))
                continue
            raise SystemExit(f"unparsed proto line in {pkg}.{m.group(1)}: {line}")
        msgs[f"{pkg}.{m.group(1)}"] = fields
    return msgs


def qualify(t, pkg):
    if t in SCALARS:
        return t
    if t.startswith("."):
        return t[1:]
    return f"{pkg}.{t}"


def parse_go(text):
    """struct name -> {proto name: (json name, pointer, omitempty, inline)}; also named slice types."""
    structs = {}
    for m in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", text, re.M | re.S):
        fields = {}
        for line in m.group(2).splitlines():
            line = line.split("//")[0].strip() if not "`" in line else line.strip()
            tm = re.match(r"^(?:(\w+)\s+)?(\S+)\s+`(.*)`$", line)
            if not tm or "protobuf:\"" not in tm.group(3):
                continue
            name, gotype, tags = tm.groups()
            pb = re.search(r'protobuf:"([^"]*)"', tags).group(1)
            nm = re.search(r"name=(\w+)", pb)
            # An unnamed embedded struct is named after its type in generated.proto.
            pname = nm.group(1) if nm else gotype[0].lower() + gotype[1:]
            jm = re.search(r'json:"([^"]*)"', tags)
            jparts = (jm.group(1) if jm else "").split(",")
            jname = jparts[0]
            inline = name is None and (jname == "" or "inline" in jparts[1:])
            fields[pname] = (jname, gotype.startswith("*"), "omitempty" in jparts[1:], inline)
        structs[m.group(1)] = fields
    slices = set(re.findall(r"^type (\w+) \[\]string$", text, re.M))
    return structs, slices


def main():
    gitdirs = {"api": sys.argv[1], "apimachinery": sys.argv[2]}
    protos, gos, slices = {}, {}, set()
    for pkg, (repo, d, _) in API_PKGS.items():
        protos.update(parse_proto(git_show(gitdirs[repo], d + "/generated.proto"), pkg))
        s, sl = parse_go(git_show(gitdirs[repo], d + "/types.go"))
        for k, v in s.items():
            gos[f"{pkg}.{k}"] = v
        slices |= {f"{pkg}.{x}" for x in sl}

    def ty_of(t):
        if t in SCALARS:
            return SCALARS[t]
        if t in SPECIAL:
            return SPECIAL[t]
        if t in slices:
            fs = protos[t]
            assert len(fs) == 1 and fs[0][0] == "repeated" and fs[0][1] == "string" and fs[0][3] == 1, t
            return "StrList"
        return f"Msg(&{const_name(t)})"

    order, seen = [], set()

    def visit(t):
        if t in seen or t in SCALARS or t in SPECIAL or t in slices:
            return
        seen.add(t)
        if t not in protos:
            raise SystemExit(f"message {t} not found")
        order.append(t)
        for (_, ft, _, _, _) in protos[t]:
            visit(ft)

    for pkg, kind in ROOTS:
        visit(f"{pkg}.{kind}")

    out = [
        f"//! Generated by tools/gen_schema.py from upstream generated.proto + types.go at {sys.argv[3]}; do not edit.",
        "//! Each entry: (field number, upstream JSON name, value type, shape, Go presence).",
        "",
        "use super::{Field, Message, Presence::*, Shape::*, Ty::*};",
        "",
    ]
    for t in order:
        go = gos.get(t)
        if go is None:
            raise SystemExit(f"no Go struct for {t}")
        rows = []
        for (label, ft, pname, num, _) in sorted(protos[t], key=lambda f: f[3]):
            if pname not in go:
                raise SystemExit(f"{t}.{pname}: no Go field")
            jname, pointer, omitempty, inline = go[pname]
            if jname == "-":
                raise SystemExit(f"{t}.{pname}: json:\"-\" on a protobuf field")
            if label == "map":
                shape, ty = "Map", ty_of(ft)
            elif label == "repeated":
                shape, ty = "Repeated", ty_of(ft)
            elif inline:
                shape, ty = "Inline", ty_of(ft)
                assert ty.startswith("Msg("), t
            else:
                shape, ty = "Single", ty_of(ft)
            presence = "Pointer" if pointer else ("OmitEmpty" if omitempty else "Always")
            rows.append(f"    Field::new({num}, \"{jname}\", {ty}, {shape}, {presence}),")
        out.append(f"pub(crate) static {const_name(t)}: Message = Message::new(\"{t}\", &[")
        out.extend(rows)
        out.append("]);")
    out.append("")
    out.append("/// (apiVersion, kind, message) of every kind decode() accepts.")
    out.append("pub(crate) static ROOTS: &[(&str, &str, &Message)] = &[")
    for pkg, kind in ROOTS:
        out.append(f"    (\"{API_PKGS[pkg][2]}\", \"{kind}\", &{const_name(pkg + '.' + kind)}),")
    out.append("];")
    print("\n".join(out))


def const_name(t):
    parts = t.split(".")
    pkg = parts[-3] + "_" + parts[-2] if parts[-3] not in ("io", "k8s") else parts[-2]
    if t.startswith("k8s.io.apimachinery.pkg.apis.meta"):
        pkg = "meta_v1"
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", parts[-1]).upper()
    return f"{pkg.upper()}_{name}"


main()
