#!/usr/bin/env python3
"""The Terraform of deploy/terraform, read by HashiCorp's own HCL parser
(hcl2json from npm, pinned in tests/terraform/: Terraform itself is not
packaged in Debian):
- every .tf file parses;
- in each module every var., local., module., data. and resource reference
  has its block; a module call passes only variables the module declares and
  every variable without a default; module outputs used exist;
- templatefile(): every name a template uses is passed, every name passed is
  used; no strip marker eats the indentation of the cloud-init YAML; no
  daemon runs --insecure, the recorders get their CURVE keys;
- README.md describes every variable;
- the settings Traffic Mirroring, the NLB, Auto Scaling and the security
  groups need (issue 13): NLB of type network with cross-zone balancing, a
  UDP 4789 listener, a UDP target group health-checked over HTTP on
  /readyz at the recorder's port, source_ip stickiness, deregistration delay
  = the recorders' drain time (the NLB in modules/vxlan_nlb, followed
  through the recorders' and brokers' calls of it; UDP 4789 ingress in
  modules/vxlan_sg, given each caller's mirror_source_cidrs), IMDSv2 only, encrypted volumes, ELB health
  checks, launch and terminate lifecycle hooks, CPU target tracking, at most
  10 filter rules per direction, RDS with its password in Secrets Manager,
  coordinator ports open to operator CIDRs only, its REST API over HTTPS
  by default (http_tls: the certificate and key from the cluster secret),
  the recorders' role able to read only their own secret, which the
  coordinator fills with no key of its own, the brokers' only theirs, which
  holds the metrics token alone (their /metrics then asks for it),
  UDP 4789 never from anywhere;
- the instances run the package's hardened units: no cloud-init template
  writes /etc/systemd/system/mscope-{recorder,coordinator,broker}.service,
  only drop-ins (.service.d/*.conf) that change ordering, environment,
  timeouts, never the sandbox (capabilities only fewer, ReadWritePaths only
  on the data volume); the helper services cloud-init adds are sandboxed
  (their common settings are one file, modules/common/helper-sandbox.conf,
  read here as templatefile() inlines it);
- the .deb is installed with --force-confold wherever cloud-init has written
  one of its conffiles (deploy/debian/conffiles) before the install, so dpkg
  keeps it instead of asking with no terminal;
- every data-dir, stats-file and pcap dir in the Terraform templates,
  deploy/examples and deploy/config lies under the ReadWritePaths of the
  daemon's unit in deploy/systemd (plus its drop-in's).
MSCOPE_DEPLOY_DIR points the test at another copy of deploy/ (units,
examples, conffiles and Terraform); MSCOPE_TERRAFORM_DIR at another copy of
deploy/terraform alone."""
import json
import os
import re
import shutil

import harness as h

DEPLOY = os.environ.get("MSCOPE_DEPLOY_DIR", os.path.join(h.ROOT, "deploy"))
TF = os.environ.get("MSCOPE_TERRAFORM_DIR", os.path.join(DEPLOY, "terraform"))
NODE_DIR = os.path.join(h.ROOT, "tests", "terraform")

# Arguments of a module block that are not the module's variables.
META_ARGS = {"source", "version", "count", "for_each", "providers", "depends_on"}
PROVIDERS = r"(?:aws|random|tls|null|time|cloudinit|terraform)"
KEYWORDS = {"for", "in", "if", "else", "endif", "endfor", "true", "false", "null"}


# ---- reading HCL ---------------------------------------------------------------

def parse_all():
    """{module dir: {file name: hcl2json's JSON}} for every .tf under TF."""
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@cdktf", "hcl2json")):
        h.fail("node or tests/terraform/node_modules is missing (run scripts/deps.sh)")
    files = []
    for d, _, names in os.walk(TF):
        files += [os.path.join(d, n) for n in sorted(names) if n.endswith(".tf")]
    h.check(files, f"no .tf files under {TF}")
    p = h.run([node, os.path.join(NODE_DIR, "hcl2json.js"), *files], check_rc=False)
    h.check(p.returncode == 0, f"HCL does not parse: {p.stderr.decode(errors='replace')}")
    mods = {}
    for path, doc in json.loads(p.stdout).items():
        mods.setdefault(os.path.dirname(path), {})[os.path.basename(path)] = doc
    return mods


def merged(files):
    """One module's blocks, all files together: kind -> {name: body} (resource
    and data: "TYPE.NAME" -> body); locals: name -> value."""
    m = {"variable": {}, "output": {}, "module": {}, "resource": {}, "data": {}, "locals": {}}
    for doc in files.values():
        for kind in ("variable", "output", "module"):
            for name, bodies in doc.get(kind, {}).items():
                m[kind][name] = bodies[0]
        for kind in ("resource", "data"):
            for typ, byname in doc.get(kind, {}).items():
                for name, bodies in byname.items():
                    m[kind][f"{typ}.{name}"] = bodies[0]
        for block in doc.get("locals", []):
            m["locals"].update(block)
    return m


def scan_template(s, i=0, quoted=False):
    """The code parts of an HCL template (a JSON string, a quoted string inside
    an expression, or a .tftpl file): (code, index after it). Literal text is
    dropped, so words inside strings are never taken for references."""
    code = []
    while i < len(s):
        if quoted and s[i] == "\\":
            i += 2
        elif quoted and s[i] == '"':
            return " ".join(code), i + 1
        elif s.startswith(("$${", "%%{"), i):
            i += 3
        elif s.startswith(("${", "%{"), i):
            c, i = scan_code(s, i + 2)
            code.append(c)
        else:
            i += 1
    return " ".join(code), i


def scan_code(s, i):
    """An expression up to its closing brace: (code, index after the brace)."""
    out, depth = [], 0
    while i < len(s):
        c = s[i]
        if c == '"':
            inner, i = scan_template(s, i + 1, quoted=True)
            out.append(' "" ' + inner + " ")
            continue
        if c in "{[(":
            depth += 1
        elif c in "}])":
            if depth == 0:
                return "".join(out), i + 1
            depth -= 1
        out.append(c)
        i += 1
    return "".join(out), i


def strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def code(node):
    return " ".join(scan_template(s)[0] for s in strings(node))


def object_keys(s, i):
    """Keys and value texts of the object literal whose '{' is at s[i]."""
    keys, depth, j, start = {}, 0, i + 1, True
    key_re = re.compile(r"\s*([A-Za-z_][\w-]*)\s*=(?![=>])")
    last = None
    while j < len(s):
        c = s[j]
        if depth == 0 and start:
            m = key_re.match(s, j)
            if m:
                if last:
                    keys[last[0]] = s[last[1]:j]
                last = (m.group(1), m.end())
                j, start = m.end(), False
                continue
        if c == '"':
            j = scan_template(s, j + 1, quoted=True)[1]
            continue
        if c in "{[(":
            depth += 1
        elif c in "}])":
            if depth == 0:
                break
            depth -= 1
        elif c in "\n," and depth == 0:
            start = True
        j += 1
    if last:
        keys[last[0]] = s[last[1]:j]
    return keys


def template_names(text):
    """Free names a .tftpl uses: not attributes, functions, keywords or loop
    variables."""
    c = scan_template(text)[0]
    bound = set()
    for m in re.finditer(r"\bfor\s+([A-Za-z_]\w*)(?:\s*,\s*([A-Za-z_]\w*))?\s+in\b", c):
        bound.update(n for n in m.groups() if n)
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_]\w*)(?!\s*\(|\w)", c):
        n = m.group(1)
        if n not in KEYWORDS and n not in bound:
            names.add(n)
    return names


# ---- the generic checks --------------------------------------------------------

def check_references(rel, m):
    c = code(m)
    for name in set(re.findall(r"(?<![\w.])var\.([A-Za-z_][\w-]*)", c)):
        h.check(name in m["variable"], f"{rel}: var.{name} has no variable block")
    for name in set(re.findall(r"(?<![\w.])local\.([A-Za-z_][\w-]*)", c)):
        h.check(name in m["locals"], f"{rel}: local.{name} is in no locals block")
    for name in set(re.findall(r"(?<![\w.])module\.([A-Za-z_][\w-]*)", c)):
        h.check(name in m["module"], f"{rel}: module.{name} has no module block")
    for typ, name in set(re.findall(r"(?<![\w.])data\.([a-z]\w*)\.([A-Za-z_][\w-]*)", c)):
        h.check(f"{typ}.{name}" in m["data"], f"{rel}: data.{typ}.{name} has no data block")
    for typ, name in set(re.findall(rf"(?<![\w.])({PROVIDERS}_[a-z0-9_]+)\.([A-Za-z_][\w-]*)", c)):
        h.check(f"{typ}.{name}" in m["resource"], f"{rel}: {typ}.{name} has no resource block")


def check_module_calls(rel, d, m, mods):
    c = code(m)
    for name, call in m["module"].items():
        src = os.path.normpath(os.path.join(d, call.get("source", "")))
        h.check(src in mods, f"{rel}: module {name}: source {call.get('source')} holds no .tf files")
        target = merged(mods[src])
        for arg in set(call) - META_ARGS:
            h.check(arg in target["variable"],
                    f"{rel}: module {name} passes {arg}, which {os.path.relpath(src, TF)} does not declare")
        for var, body in target["variable"].items():
            h.check("default" in body or var in call,
                    f"{rel}: module {name} does not pass {var}, which has no default")
        for out in set(re.findall(rf"(?<![\w.])module\.{name}(?:\[[^\]]*\])?\.([A-Za-z_][\w-]*)", c)):
            h.check(out in target["output"],
                    f"{rel}: module.{name}.{out}: {os.path.relpath(src, TF)} has no such output")


def template_calls(m):
    """{template file: {key: value text}} of every templatefile() in a module."""
    calls = {}
    for s in strings(m):
        for t in re.finditer(r'templatefile\(\s*"\$\{path\.module\}/([^"]+)"\s*,\s*\{', s):
            calls[t.group(1)] = object_keys(s, t.end() - 1)
    return calls


def check_templates(rel, d, m):
    for name, keys in template_calls(m).items():
        path = os.path.join(d, name)
        h.check(os.path.exists(path), f"{rel}: templatefile {name} does not exist")
        text = open(path).read()
        used = template_names(text)
        # "~}" strips all the whitespace after it, the next line's indentation
        # too: inside a YAML block scalar that breaks the document.
        for e in re.finditer(r"~\}[ \t]*\n[ \t]+\S", text):
            h.fail(f"{rel}/{name}:{text[:e.start()].count(chr(10)) + 1}: '~}}' strips the next line's "
                   "indentation too (strip on the left instead: '%{~ ... }')")
        h.check(used <= set(keys), f"{rel}/{name} uses {sorted(used - set(keys))}, not passed")
        h.check(set(keys) <= used, f"{rel}: {name} is passed {sorted(set(keys) - used)}, never used")
        h.check(not re.search(r"^\s*insecure\s*=", text, re.M), f"{rel}/{name}: a daemon runs without CURVE")
    for s in strings(m):
        for f in re.findall(r'file\(\s*"\$\{path\.module\}/([^"]+)"', s):
            h.check(os.path.exists(os.path.join(d, f)), f"{rel}: file {f} does not exist")


# ---- the settings --------------------------------------------------------------

def of_type(m, kind, typ):
    return {k.split(".", 1)[1]: v for k, v in m[kind].items() if k.split(".", 1)[0] == typ}


def one(m, typ, rel):
    found = of_type(m, "resource", typ)
    h.check(len(found) == 1, f"{rel}: want one {typ}, found {sorted(found)}")
    return next(iter(found.items()))


def block(body, name):
    b = body.get(name) or [{}]
    return b[0]


def resolve(m, v):
    """A value through local.X indirections."""
    for _ in range(5):
        r = re.fullmatch(r"\$\{local\.(\w+)\}", v) if isinstance(v, str) else None
        if not r:
            return v
        v = m["locals"].get(r.group(1))
    return v


def expand(m, v):
    """A value's text with every local.X replaced by its definition."""
    s = json.dumps(v) if not isinstance(v, str) else v
    for _ in range(5):
        s = re.sub(r"(?<![\w.])local\.(\w+)", lambda r: f"({m['locals'].get(r.group(1))})", s)
    return s


def ref(v, what):
    return isinstance(v, str) and re.search(rf"(?<![\w.]){re.escape(what)}(?![\w-])", v)


def default_of(m, var):
    return m["variable"].get(var, {}).get("default")


def module_call(mods, d, m, rel, sub):
    """The one call in module m (directory d) of modules/SUB: (name, arguments,
    the called module merged)."""
    src = os.path.join(TF, "modules", sub)
    found = {n: c for n, c in m["module"].items()
             if os.path.normpath(os.path.join(d, c.get("source", ""))) == src}
    h.check(len(found) == 1, f"{rel}: want one call of modules/{sub}, found {sorted(found)}")
    h.check(src in mods, f"no modules/{sub}")
    name, call = next(iter(found.items()))
    return name, call, merged(mods[src])


def arg(call, target, var):
    """What a module call gives VAR: its argument, or the variable's default."""
    return call[var] if var in call else default_of(target, var)


def output_ref(target, out, what):
    return ref(target["output"].get(out, {}).get("value"), what)


def check_nlb(mods, d, rel, m, http_default):
    """The NLB, listener and target group of modules/vxlan_nlb, as the
    recorders and the brokers call it: settings both in the submodule and in
    the call's arguments. Returns (call name, call, submodule)."""
    sub = "modules/vxlan_nlb"
    name, call, n = module_call(mods, d, m, rel, "vxlan_nlb")
    _, lb = one(n, "aws_lb", sub)
    h.check(lb.get("load_balancer_type") == "network", f"{sub}: the load balancer is not type network")
    h.check(lb.get("enable_cross_zone_load_balancing") is True, f"{sub}: cross-zone balancing is off")
    h.check(lb.get("internal") is True, f"{sub}: the NLB is not internal")
    h.check(lb.get("subnets") == "${var.subnet_ids}" and call.get("subnet_ids") == "${var.subnet_ids}",
            f"{rel}: the NLB is not in var.subnet_ids")
    tg_name, tg = one(n, "aws_lb_target_group", sub)
    h.check(tg.get("protocol") == "UDP" and resolve(n, tg.get("port")) == 4789,
            f"{sub}: target group is not UDP 4789: {tg.get('protocol')} {tg.get('port')}")
    h.check(tg.get("connection_termination") is True, f"{sub}: target group without connection_termination")
    hc = block(tg, "health_check")
    h.check(hc.get("protocol") == "HTTP" and hc.get("path") == "${var.health_check_path}",
            f"{sub}: health check is not HTTP on var.health_check_path: {hc}")
    h.check(arg(call, n, "health_check_path") == "/readyz",
            f"{rel}: module {name}: health check path is not /readyz: {arg(call, n, 'health_check_path')}")
    h.check(hc.get("port") == "${var.health_check_port}", f"{sub}: health check port is not var.health_check_port")
    h.check(call.get("health_check_port") == "${var.http_port}" and default_of(m, "http_port") == http_default,
            f"{rel}: module {name}: health check port is not var.http_port (default {http_default}): "
            f"{call.get('health_check_port')}")
    st = block(tg, "stickiness")
    h.check(st.get("type") == "source_ip" and st.get("enabled") is True,
            f"{sub}: target group stickiness is not source_ip: {st}")
    h.check(tg.get("deregistration_delay") == "${var.deregistration_delay_seconds}",
            f"{sub}: deregistration_delay is not var.deregistration_delay_seconds: {tg.get('deregistration_delay')}")
    _, ls = one(n, "aws_lb_listener", sub)
    h.check(ls.get("protocol") == "UDP" and resolve(n, ls.get("port")) == 4789,
            f"{sub}: listener is not UDP 4789")
    lb_name = next(iter(of_type(n, "resource", "aws_lb")))
    h.check(ref(ls.get("load_balancer_arn"), f"aws_lb.{lb_name}"), f"{sub}: the listener is not on the NLB")
    fwd = block(ls, "default_action")
    h.check(fwd.get("type") == "forward" and ref(fwd.get("target_group_arn"), f"aws_lb_target_group.{tg_name}"),
            f"{sub}: the listener does not forward to the target group")
    h.check(output_ref(n, "nlb_arn", f"aws_lb.{lb_name}.arn") and
            output_ref(n, "target_group_arn", f"aws_lb_target_group.{tg_name}.arn"),
            f"{sub}: outputs nlb_arn and target_group_arn are not the NLB's and the target group's")
    h.check(output_ref(m, "nlb_arn", f"module.{name}.nlb_arn"),
            f"{rel}: output nlb_arn is not module.{name}.nlb_arn (the Traffic Mirror target)")
    return name, call, n


def ingress_rules(mods):
    """(module, name, body) of every ingress rule, whatever its resource."""
    for d, files in mods.items():
        m = merged(files)
        rel = os.path.relpath(d, TF)
        for name, r in of_type(m, "resource", "aws_vpc_security_group_ingress_rule").items():
            yield rel, m, name, r
        for name, r in of_type(m, "resource", "aws_security_group_rule").items():
            if r.get("type") == "ingress":
                yield rel, m, name, r
        for name, sg in of_type(m, "resource", "aws_security_group").items():
            for i, r in enumerate(sg.get("ingress", [])):
                yield rel, m, f"{name}.ingress[{i}]", r


def cidrs_of(r):
    return [r.get("cidr_ipv4"), r.get("cidr_ipv6"), *(r.get("cidr_blocks") or []),
            *(r.get("ipv6_cidr_blocks") or [])]


def refuses_anywhere(m, var):
    """var has a validation that refuses 0.0.0.0/0."""
    conds = [v.get("condition", "") for v in m["variable"].get(var, {}).get("validation", [])]
    return any(re.search(r'!=\s*"0\.0\.0\.0/0"', c) for c in conds)


def check_security(mods):
    vxlan, vxlan_mods = 0, set()
    for rel, m, name, r in ingress_rules(mods):
        for c in cidrs_of(r):
            h.check(c not in ("0.0.0.0/0", "::/0"), f"{rel}: ingress {name} is open to {c}")
        proto = str(r.get("ip_protocol", r.get("protocol", ""))).lower()
        ports = {resolve(m, r.get("from_port")), resolve(m, r.get("to_port"))}
        if proto == "-1" or (proto in ("udp", "17") and 4789 in ports):
            vxlan += 1
            h.check(r.get("cidr_ipv4") == "${each.value}" and
                    ref(expand(m, r.get("for_each")), "var.mirror_source_cidrs"),
                    f"{rel}: UDP 4789 ingress {name} is not from var.mirror_source_cidrs only")
            h.check(refuses_anywhere(m, "mirror_source_cidrs"),
                    f"{rel}: mirror_source_cidrs does not refuse 0.0.0.0/0")
            vxlan_mods.add(rel)
    h.check(vxlan >= 1, "no UDP 4789 ingress rule found")
    # The recorders and the brokers open UDP 4789 themselves or through a
    # module with such a rule (modules/vxlan_sg), passing it their own
    # mirror_source_cidrs, which refuses 0.0.0.0/0 too; their instances are
    # in that security group.
    for rel, what in (("modules/recorders", "aws_launch_template"), ("modules/broker", "aws_instance")):
        d = os.path.join(TF, rel)
        h.check(d in mods, f"no {rel}")
        m = merged(mods[d])
        sgs = [f"aws_security_group.{n}.id" for n in of_type(m, "resource", "aws_security_group")
               if rel in vxlan_mods]
        for name, call in m["module"].items():
            src = os.path.relpath(os.path.normpath(os.path.join(d, call.get("source", ""))), TF)
            if src not in vxlan_mods:
                continue
            h.check(call.get("mirror_source_cidrs") == "${var.mirror_source_cidrs}" and
                    refuses_anywhere(m, "mirror_source_cidrs"),
                    f"{rel}: module {name} ({src}) is not given var.mirror_source_cidrs, "
                    "or that does not refuse 0.0.0.0/0")
            target = merged(mods[os.path.join(TF, src)])
            sgs += [f"module.{name}.{o}" for o, body in target["output"].items()
                    if re.fullmatch(r"\$\{aws_security_group\.\w+\.id\}", str(body.get("value")))]
        h.check(sgs, f"{rel}: UDP 4789 is opened neither here nor by a module it calls")
        _, inst = one(m, what, rel)
        h.check(any(ref(x, sg) for x in inst.get("vpc_security_group_ids", []) for sg in sgs),
                f"{rel}: {what} is not in the security group that admits UDP 4789 ({sgs})")
    print(f"ok  no ingress from 0.0.0.0/0; UDP 4789 from the mirror source CIDRs only ({vxlan} rule(s), "
          "for recorders and brokers)")


def check_recorders(mods):
    d = os.path.join(TF, "modules", "recorders")
    h.check(d in mods, "no modules/recorders")
    m, rel = merged(mods[d]), "modules/recorders"
    nlb, call, _ = check_nlb(mods, d, rel, m, 8081)
    h.check(call.get("deregistration_delay_seconds") == "${var.drain_time_seconds}",
            f"{rel}: module {nlb}: deregistration delay is not var.drain_time_seconds: "
            f"{call.get('deregistration_delay_seconds')}")
    calls = template_calls(m)
    h.check(len(calls) == 1, f"{rel}: want one cloud-init template, found {sorted(calls)}")
    tpl_name, keys = next(iter(calls.items()))
    tpl = open(os.path.join(d, tpl_name)).read()
    h.check(keys.get("drain_time", "").strip() == "var.drain_time_seconds" and
            re.search(r"^\s*drain-time = \$\{drain_time\}s$", tpl, re.M),
            f"{rel}: the recorder's drain-time is not var.drain_time_seconds")
    h.check(re.search(r"^\s*coordinator = \$\{coordinator\}$", tpl, re.M) and
            "var.coordinator_address" in keys.get("coordinator", ""),
            f"{rel}: the recorder's configuration lacks the coordinator's address")
    h.check(re.search(r"^\s*key-file = \S", tpl, re.M) and re.search(r"^\s*coordinator-key = \S", tpl, re.M),
            f"{rel}: the recorder's configuration names no CURVE key pair or coordinator key")
    # /metrics behind the cluster's metrics token: the file from the secret
    # (0600), named in the configuration only once it is there.
    mt = re.search(r"if put_field /etc/mscope/recorders\.json metrics_token (\S+) 0600; then\n"
                   r"\s*echo 'metrics-token-file = (\S+)' >>/etc/mscope/recorder\.conf\n", tpl)
    h.check(mt and mt.group(1) == mt.group(2),
            f"{rel}: the recorder must take metrics_token from its secret (0600) and name it as "
            f"metrics-token-file")
    print("ok  recorders: modules/vxlan_nlb's internal NLB (network, cross-zone), UDP 4789 listener and "
          "target group, HTTP /readyz on var.http_port, source_ip stickiness, deregistration delay = drain-time")

    _, lt = one(m, "aws_launch_template", rel)
    h.check(block(lt, "metadata_options").get("http_tokens") == "required", f"{rel}: IMDSv1 allowed")
    ebs = [(b.get("device_name"), block(b, "ebs")) for b in lt.get("block_device_mappings", [])]
    data = [e for dev, e in ebs if not ref(dev, "data.aws_ami.this.root_device_name")]
    h.check(data and data[0].get("volume_size") == "${var.data_volume_size_gb}",
            f"{rel}: no data volume sized by var.data_volume_size_gb")
    h.check(all(e.get("encrypted") is True for _, e in ebs), f"{rel}: an EBS volume is not encrypted")
    h.check("templatefile" in lt.get("user_data", ""), f"{rel}: user_data is not rendered from a template")
    lib = open(os.path.join(TF, "modules", "common", "mscope-node.sh")).read()
    h.check("complete-lifecycle-action" in lib and "/readyz" in lib and
            re.search(r"lifecycle mscope-recorder", tpl),
            f"{rel}: cloud-init does not complete the launch hook after /readyz")

    asg_name, asg = one(m, "aws_autoscaling_group", rel)
    h.check(asg.get("health_check_type") == "ELB", f"{rel}: health_check_type is not ELB")
    h.check(re.search(rf"module\.{nlb}\.target_group_arn", json.dumps(asg.get("target_group_arns"))),
            f"{rel}: the Auto Scaling group is not in the target group")
    hooks = asg.get("initial_lifecycle_hook", [])
    hooks += of_type(m, "resource", "aws_autoscaling_lifecycle_hook").values()
    trans = {x.get("lifecycle_transition"): x for x in hooks}
    h.check("autoscaling:EC2_INSTANCE_LAUNCHING" in trans, f"{rel}: no launch lifecycle hook")
    term = trans.get("autoscaling:EC2_INSTANCE_TERMINATING")
    h.check(term, f"{rel}: no terminate lifecycle hook")
    beat = expand(m, term.get("heartbeat_timeout"))
    h.check(re.search(r"max\(.*var\.drain_time_seconds\s*\+", beat),
            f"{rel}: the terminate hook's heartbeat is not at least the drain time: {beat}")
    _, pol = one(m, "aws_autoscaling_policy", rel)
    ttc = block(pol, "target_tracking_configuration")
    h.check(pol.get("policy_type") == "TargetTrackingScaling" and
            block(ttc, "predefined_metric_specification").get("predefined_metric_type") ==
            "ASGAverageCPUUtilization" and ref(pol.get("autoscaling_group_name"),
                                               f"aws_autoscaling_group.{asg_name}"),
            f"{rel}: no CPU target tracking policy on the group")
    h.check("autoscaling:CompleteLifecycleAction" in json.dumps(m["resource"]),
            f"{rel}: the instance role may not complete lifecycle actions")
    ports = {r.get("from_port"): r for r in of_type(m, "resource", "aws_vpc_security_group_ingress_rule").values()}
    for p in ("${var.bus_port}", "${var.search_port}"):
        h.check(p in ports and "referenced_security_group_id" in ports[p] and not ports[p].get("cidr_ipv4"),
                f"{rel}: {p} is not opened by security group reference")
    # Secrets: only the one the coordinator fills for them (never the cluster
    # secret with the coordinator's own key), and the example wires it so.
    pol_text = " ".join(p.get("policy", "") for p in of_type(m, "resource", "aws_iam_role_policy").values())
    secret_res = []
    for st in re.findall(r"\{[^{}]*secretsmanager[^{}]*\}", pol_text):
        r = re.search(r"Resource\s*=\s*(\S+)", st)
        secret_res.append(r.group(1) if r else st)  # no Resource here: shown in the failure
    h.check(secret_res and all(r == "var.recorders_secret_arn" for r in secret_res),
            f"{rel}: the recorders' role may read a secret other than var.recorders_secret_arn: {secret_res}")
    ex = merged(mods.get(os.path.join(TF, "examples", "complete"), {}))
    calls = [c for c in ex.get("module", {}).values() if c.get("source", "").endswith("modules/recorders")]
    h.check(calls and all(ref(c.get("recorders_secret_arn"), "module.coordinator.recorders_secret_arn")
                          for c in calls),
            "examples/complete: the recorders must get module.coordinator.recorders_secret_arn")
    print("ok  recorders: IMDSv2 only, encrypted data volume, ELB health checks, launch and terminate "
          "hooks (heartbeat >= drain), CPU target tracking, bus/search by security group; "
          "they may read only the recorders' secret")


def check_coordinator(mods):
    d = os.path.join(TF, "modules", "coordinator")
    h.check(d in mods, "no modules/coordinator")
    m, rel = merged(mods[d]), "modules/coordinator"
    _, db = one(m, "aws_db_instance", rel)
    h.check(db.get("manage_master_user_password") is True and "password" not in db,
            f"{rel}: the RDS password is not managed in Secrets Manager")
    h.check(db.get("storage_encrypted") is True, f"{rel}: RDS storage not encrypted")
    h.check(re.search(r'var\.database\s*==\s*"rds"', expand(m, db.get("count"))),
            f"{rel}: RDS is not chosen by var.database: count = {db.get('count')}")
    vols = of_type(m, "resource", "aws_ebs_volume")
    h.check(vols and all(v.get("encrypted") is True for v in vols.values()), f"{rel}: data volume not encrypted")
    h.check(of_type(m, "resource", "aws_volume_attachment"), f"{rel}: the data volume is not attached")
    tpl = open(os.path.join(d, next(iter(template_calls(m))))).read()
    h.check("PGPASSFILE" in tpl and not re.search(r"password\s*=", tpl),
            f"{rel}: the database password must reach libpq through PGPASSFILE")
    h.check("default" not in m["variable"].get("operator_cidrs", {"default": 0}) and
            refuses_anywhere(m, "operator_cidrs"),
            f"{rel}: operator_cidrs must be required and refuse 0.0.0.0/0")
    # The REST API's token travels in every request: HTTPS unless turned off,
    # with the certificate and key the setup script takes from the secret.
    h.check(default_of(m, "http_tls") is True, f"{rel}: http_tls must default to true")
    tls = re.search(r"%\{~? if http_tls \}\s*#[^\n]*\n\s*http-cert = (\S+)\n\s*http-key = (\S+)\n", tpl)
    h.check(tls and f'"$dir/{os.path.basename(tls.group(1))}"' in tpl and
            f'"$dir/{os.path.basename(tls.group(2))}" 0600' in tpl,
            f"{rel}: with http_tls the coordinator must get http-cert and http-key (0600) from the secret")
    h.check(ref(m["output"]["rest_url"]["value"], "var.http_tls"),
            f"{rel}: rest_url does not follow http_tls (https)")
    # The recorders' secret gets what they need and never a key of the
    # coordinator's own (coordinator_key, http_key).
    fields = re.search(r"jq '\{([\w, ]+)\}'[^\n]*\\?\n[^\n]*>\"\$new/recorders\.json\"", tpl)
    h.check(fields and set(f.strip() for f in fields.group(1).split(",")) ==
            {"search_token", "metrics_token", "recorder_key", "coordinator_pub"} and
            re.search(r'put_secret "\$RECORDERS_SECRET" "\$new/recorders\.json"', tpl),
            f"{rel}: the recorders' secret must get search_token, metrics_token, recorder_key and "
            f"coordinator_pub only: {fields and fields.group(1)}")
    # The brokers' secret gets the metrics token alone.
    fields = re.search(r"jq '\{([\w, ]+)\}'[^\n]*>\"\$new/brokers\.json\"", tpl)
    h.check(fields and fields.group(1).strip() == "metrics_token" and
            re.search(r'put_secret "\$BROKERS_SECRET" "\$new/brokers\.json"', tpl) and
            ref(template_calls(m)[next(iter(template_calls(m)))].get("brokers_secret_arn"),
                "aws_secretsmanager_secret.brokers.arn"),
            f"{rel}: the brokers' secret must get metrics_token only: {fields and fields.group(1)}")
    # /metrics behind the metrics token, which every cluster secret gets
    # (a new one when it is made, an older one when it has none).
    mt = re.search(r"^\s*metrics-token-file = (\S+)$", tpl, re.M)
    h.check(mt and f'put_field /etc/mscope/cluster.json metrics_token "$dir/'
            f'{os.path.basename(mt.group(1))}" 0600' in tpl and "metrics_token: $m" in tpl and
            "'. + {metrics_token: $m}'" in tpl,
            f"{rel}: the coordinator's metrics-token-file must come from the cluster secret (0600), "
            f"made with the secret or added to an older one")
    seen = set()
    for name, r in of_type(m, "resource", "aws_vpc_security_group_ingress_rule").items():
        port = r.get("from_port")
        if port in ("${var.http_port}", "${var.rpc_port}"):
            seen.add(port)
            h.check(r.get("cidr_ipv4") == "${each.value}" and ref(r.get("for_each"), "var.operator_cidrs")
                    and not r.get("referenced_security_group_id"),
                    f"{rel}: ingress {name} on {port} is not from var.operator_cidrs only")
    h.check(seen == {"${var.http_port}", "${var.rpc_port}"}, f"{rel}: HTTP and RPC ingress rules: {seen}")
    print("ok  coordinator: RDS password managed by RDS (Secrets Manager, PGPASSFILE), chosen by "
          "var.database; encrypted data volume; HTTP and RPC from var.operator_cidrs only; "
          "HTTPS by default (http_tls), its key from the secret")


def check_mirror(mods):
    d = os.path.join(TF, "modules", "mirror")
    h.check(d in mods, "no modules/mirror")
    m, rel = merged(mods[d]), "modules/mirror"
    _, tgt = one(m, "aws_ec2_traffic_mirror_target", rel)
    h.check(ref(tgt.get("network_load_balancer_arn"), "var.target_nlb_arn"), f"{rel}: target is not the NLB")
    conds = [v.get("condition", "") for v in m["variable"]["filter_rules"].get("validation", [])]
    for direction in ("ingress", "egress"):
        h.check(any(re.search(rf'direction\s*==\s*"{direction}"\s*\]\)\s*<=\s*10', c) for c in conds),
                f"{rel}: filter_rules: no validation of at most 10 {direction} rules")
    _, rule = one(m, "aws_ec2_traffic_mirror_filter_rule", rel)
    h.check(ref(expand(m, rule.get("for_each")), "var.filter_rules"), f"{rel}: rules not from var.filter_rules")
    _, ses = one(m, "aws_ec2_traffic_mirror_session", rel)
    src = expand(m, ses.get("for_each"))
    h.check(ref(src, "var.source_eni_ids") and re.search(r"data\.aws_instance\.\w+", src),
            f"{rel}: sessions are not made for listed ENIs and tagged instances")
    h.check(of_type(m, "data", "aws_instances") and of_type(m, "data", "aws_instance"),
            f"{rel}: no instance lookup by tags")
    h.check(all(k in ses for k in ("session_number", "virtual_network_id", "packet_length")),
            f"{rel}: sessions lack a session number, VNI or packet_length")
    conds = json.dumps(m["variable"]["packet_length"].get("validation"))
    h.check("8500" in conds, f"{rel}: packet_length is not limited to 8500")
    print("ok  mirror: NLB target, filter rules from a variable (<= 10 per direction), sessions for "
          "listed ENIs and tagged instances with session number, VNI, packet_length")


def check_broker(mods):
    d = os.path.join(TF, "modules", "broker")
    h.check(d in mods, "no modules/broker")
    m, rel = merged(mods[d]), "modules/broker"
    nlb, call, _ = check_nlb(mods, d, rel, m, 8082)
    h.check(call.get("deregistration_delay_seconds") == "${var.deregistration_delay_seconds}",
            f"{rel}: module {nlb}: deregistration delay is not var.deregistration_delay_seconds")
    _, att = one(m, "aws_lb_target_group_attachment", rel)
    h.check(ref(att.get("target_group_arn"), f"module.{nlb}.target_group_arn"),
            f"{rel}: the brokers are not attached to module.{nlb}'s target group")
    _, inst = one(m, "aws_instance", rel)
    h.check(inst.get("count") == "${var.instance_count}", f"{rel}: brokers not counted by var.instance_count")
    calls = False
    for d2, files in mods.items():
        for name, call in merged(files)["module"].items():
            if call.get("source", "").rstrip("/").endswith("modules/broker"):
                calls = True
                h.check("count" in call or "for_each" in call,
                        f"{os.path.relpath(d2, TF)}: module {name}: brokers are not optional (count)")
    h.check(calls, "no example calls modules/broker")
    # /metrics behind the cluster's metrics token when the brokers are given
    # the secret that holds it: the only secret their role may read, the
    # file from it (0600) named in the configuration, and the example wires
    # the coordinator's.
    pol_text = " ".join(p.get("policy", "") for p in of_type(m, "resource", "aws_iam_role_policy").values())
    secret_res = [(re.search(r"Resource\s*=\s*(\S+)", st) or [None, st])[1]
                  for st in re.findall(r"\{[^{}]*secretsmanager[^{}]*\}", pol_text)]
    h.check(secret_res and all(r == "var.metrics_token_secret.arn" for r in secret_res),
            f"{rel}: the brokers' role may read a secret other than var.metrics_token_secret.arn: "
            f"{secret_res}")
    # Its count known at plan time: the object, not its ARN, which is unknown
    # while the secret is being made in the same apply.
    for name, pol in of_type(m, "resource", "aws_iam_role_policy").items():
        if "secretsmanager" in pol.get("policy", ""):
            h.check("var.metrics_token_secret" in pol.get("count", "") and ".arn" not in pol.get("count", ""),
                    f"{rel}: aws_iam_role_policy.{name}: count must test var.metrics_token_secret, "
                    f"not its ARN (unknown at plan time): {pol.get('count')}")
    tcalls = template_calls(m)
    tpl_name, keys = next(iter(tcalls.items()))
    tpl = open(os.path.join(d, tpl_name)).read()
    mt = re.search(r'%\{~? if secret_arn != "" \}\n(?:\s*#[^\n]*\n)?\s*metrics-token-file = (\S+)\n', tpl)
    h.check(mt and f"put_field /etc/mscope/brokers.json metrics_token {mt.group(1)} 0600" in tpl and
            "var.metrics_token_secret.arn" in keys.get("secret_arn", ""),
            f"{rel}: with metrics_token_secret the broker must take metrics_token from it (0600) and name "
            f"it as metrics-token-file")
    ex = merged(mods.get(os.path.join(TF, "examples", "complete"), {}))
    bcalls = [c for c in ex.get("module", {}).values() if c.get("source", "").endswith("modules/broker")]
    h.check(bcalls and all(isinstance(c.get("metrics_token_secret"), dict) and
                           ref(c["metrics_token_secret"].get("arn"), "module.coordinator.brokers_secret_arn")
                           for c in bcalls),
            "examples/complete: the brokers must get { arn = module.coordinator.brokers_secret_arn }")
    print("ok  broker: optional (count), modules/vxlan_nlb like the recorders' with /readyz on 8082; "
          "/metrics behind the metrics token from the brokers' secret, the only one they may read")


def check_everywhere(mods):
    """IMDSv2 and encryption wherever an instance or a volume is defined."""
    n = 0
    for d, files in mods.items():
        m, rel = merged(files), os.path.relpath(d, TF)
        for typ in ("aws_instance", "aws_launch_template"):
            for name, r in of_type(m, "resource", typ).items():
                n += 1
                h.check(block(r, "metadata_options").get("http_tokens") == "required",
                        f"{rel}: {typ}.{name} allows IMDSv1")
                for b in r.get("root_block_device", []) + [block(x, "ebs") for x in r.get("block_device_mappings", [])]:
                    h.check(b.get("encrypted") is True, f"{rel}: {typ}.{name} has an unencrypted volume")
    h.check(n >= 3, f"only {n} instances or launch templates")
    print(f"ok  IMDSv2 only and encrypted volumes on all {n} instances and launch templates")
    # coalesce() never returns an empty string: coalesce(var.x, "") with x
    # null stops the plan ("no non-null, non-empty-string arguments").
    for path in sorted(os.path.join(dp, f) for dp, _, fs in os.walk(TF) for f in fs if f.endswith(".tf")):
        for m in re.finditer(r'coalesce\(([^()]*)\)', open(path).read()):
            h.check(not re.search(r',\s*""\s*$', m.group(1)),
                    f"{os.path.relpath(path, TF)}: {m.group(0)} fails when the rest is null or empty; "
                    f"use x == null ? \"\" : x")
    print("ok  no coalesce(..., \"\") (an error, not \"\", when the rest is null)")


# ---- the package's units, its conffiles, the daemons' paths ------------------

DAEMONS = ("recorder", "coordinator", "broker")
# What a deployment's drop-in may set in a package unit: ordering, the
# environment, timeouts and limits; capabilities only to fewer, write access
# only on the data volume (checked below). Anything else is the unit's sandbox
# or its command, which stay the package's.
DROPIN_MAY = {
    "Unit": {"RequiresMountsFor", "After", "Wants", "Requires", "Before"},
    "Service": {"Environment", "EnvironmentFile", "TimeoutStopSec", "TimeoutStartSec", "LimitNOFILE",
                "RestartSec", "CapabilityBoundingSet", "AmbientCapabilities", "ReadWritePaths"},
}
DATA_VOLUME = "/var/lib/mscope"
# The sandbox every helper service cloud-init adds (not in the package) must have.
HELPER_MUST = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
               "PrivateDevices": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
               "ProtectControlGroups": "yes", "RestrictNamespaces": "yes",
               "SystemCallArchitectures": "native"}
# Examples run by hand from the source tree (--read), never by the unit.
HAND_RUN_EXAMPLES = {"broker-local.conf"}


def unit_settings(text):
    """{section: {key: [values]}} of a systemd unit or drop-in."""
    secs, cur = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if m:
            cur = secs.setdefault(m.group(1), {})
            continue
        k, _, v = line.partition("=")
        (cur if cur is not None else secs.setdefault("", {})).setdefault(k.strip(), []).append(v.strip())
    return secs


def inline_files(d, m, text):
    """The template with each ${indent(N, NAME)} of a NAME the module passes as
    file(...) replaced by that file, indented as templatefile() does: the
    checks of units read what cloud-init gets (the helpers' common sandbox
    is one file, modules/common/helper-sandbox.conf)."""
    code_text = " ".join(strings(m))

    def sub(e):
        f = re.search(rf'\b{e.group(2)}\s*=\s*file\("\$\{{path\.module\}}/([^"]+)"\)', code_text)
        if not f:
            return e.group(0)
        return open(os.path.join(d, f.group(1))).read().rstrip("\n").replace("\n", "\n" + " " * int(e.group(1)))
    return re.sub(r"\$\{indent\((\d+),\s*(\w+)\)\}", sub, text)


def write_files(text):
    """[(path, content)] of the write_files entries of a cloud-init template.
    Template directive lines are dropped, so every branch of an if is kept."""
    lines = [ln for ln in text.splitlines() if not re.fullmatch(r"\s*%\{[^}]*\}\s*", ln)]
    files, cur, in_wf = [], None, False
    for ln in lines:
        if cur is not None and cur["block"] is not None:
            ind = len(ln) - len(ln.lstrip(" "))
            if not ln.strip():
                cur["content"].append("")
                continue
            if cur["block"] == -1 and ind > cur["key"]:
                cur["block"] = ind
            if cur["block"] != -1 and ind >= cur["block"]:
                cur["content"].append(ln[cur["block"]:])
                continue
            cur["block"] = None
        if re.match(r"\S", ln) and not ln.startswith("#"):
            in_wf, cur = ln.startswith("write_files:"), None
            continue
        if not in_wf:
            continue
        m = re.match(r"(\s*)- path:\s*(\S+)\s*$", ln)
        if m:
            cur = {"path": m.group(2).strip("'\""), "key": len(m.group(1)) + 2, "block": None, "content": []}
            files.append(cur)
            continue
        m = re.match(r"(\s*)content:\s*\|[-+]?\s*$", ln)
        if m and cur is not None:
            cur["key"], cur["block"] = len(m.group(1)), -1
    return [(f["path"], "\n".join(f["content"]).strip("\n") + "\n") for f in files]


def conf_paths(text):
    """[(key, value)] of the data-dir, stats-file and (pcap) dir lines of a
    daemon's configuration, comments removed."""
    out = []
    for raw in text.splitlines():
        m = re.match(r"\s*(data-dir|stats-file|dir)\s*=\s*(.*)$", raw)
        if m:
            out.append((m.group(1), re.sub(r"\s+#.*$", "", m.group(2)).strip()))
    return out


def under(path, dirs):
    p = os.path.normpath(path)
    return any(p == d or p.startswith(d.rstrip("/") + "/") for d in dirs)


def rw_paths(values):
    return [p.lstrip("-+") for v in values for p in v.split()]


def caps(values):
    return set(" ".join(values).split())


def package_units():
    """{daemon: settings} of deploy/systemd/mscope-DAEMON.service."""
    units = {}
    for dm in DAEMONS:
        path = os.path.join(DEPLOY, "systemd", f"mscope-{dm}.service")
        h.check(os.path.exists(path), f"no package unit {path}")
        units[dm] = unit_settings(open(path).read())
        h.check(rw_paths(units[dm].get("Service", {}).get("ReadWritePaths", [])),
                f"{path}: no ReadWritePaths")
    return units


def install_commands(text):
    """The commands in TEXT (a script) that install a .deb, continuation
    lines joined."""
    text = text.replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if not ln.strip().startswith("#") and
            re.search(r"\b(apt-get|apt|dpkg)\b[^|;&]*(\binstall\b|\s-i\b)[^|;&]*\.deb\b", ln)]


def check_deploy(mods):
    units = package_units()
    conffiles = set(open(os.path.join(DEPLOY, "debian", "conffiles")).read().split())
    lib = open(os.path.join(TF, "modules", "common", "mscope-node.sh")).read()
    fn = re.search(r"^install_package\(\)\s*\{\n(.*?)^\}", lib, re.M | re.S)
    h.check(fn, "modules/common/mscope-node.sh: no install_package function")
    lib_installs = install_commands(fn.group(1))
    h.check(lib_installs, "mscope-node.sh: install_package installs no .deb")
    own_unit = re.compile(r"/etc/systemd/system/mscope-(?:%s)\.service(?!\.d/)" % "|".join(DAEMONS))
    h.check(not own_unit.search(lib), "mscope-node.sh writes a unit of its own for a daemon of the package")

    templates, dropins, helpers, stats = 0, 0, 0, 0
    for d, files in sorted(mods.items()):
        rel = os.path.relpath(d, TF)
        for name in sorted(template_calls(merged(files))):
            if not name.startswith("cloud-init"):
                continue
            templates += 1
            where = f"{rel}/{name}"
            text = inline_files(d, merged(files), open(os.path.join(d, name)).read())
            for e in own_unit.finditer(text):
                h.fail(f"{where}:{text[:e.start()].count(chr(10)) + 1}: writes {e.group(0)}, which overrides "
                       "the package's hardened unit: put the deployment's changes in a .service.d drop-in")
            wf = write_files(text)
            h.check(wf, f"{where}: no write_files entries found")

            # Drop-ins: only what the deployment changes, never the sandbox.
            extra_rw = {dm: [] for dm in DAEMONS}
            for path, content in wf:
                m = re.fullmatch(r"/etc/systemd/system/mscope-(\w+)\.service\.d/[^/]+\.conf", path)
                if not m or m.group(1) not in DAEMONS:
                    continue
                dm, unit, dropins = m.group(1), units[m.group(1)], dropins + 1
                for sec, keys in unit_settings(content).items():
                    for key, vals in keys.items():
                        h.check(key in DROPIN_MAY.get(sec, set()),
                                f"{where}: {path} sets [{sec}] {key}, which the package's unit decides "
                                "(a drop-in may change only: " +
                                "; ".join(f"[{s}] {' '.join(sorted(k))}" for s, k in DROPIN_MAY.items()) + ")")
                        if key in ("CapabilityBoundingSet", "AmbientCapabilities"):
                            have = caps(unit.get("Service", {}).get(key, []))
                            h.check(caps(vals) <= have and not any(v.startswith("~") for v in vals),
                                    f"{where}: {path}: {key}={' '.join(vals)} grants more than the unit's "
                                    f"{' '.join(sorted(have)) or '(none)'}")
                        if key == "ReadWritePaths":
                            for p in rw_paths(vals):
                                h.check(under(p, [DATA_VOLUME]) and os.path.normpath(p) != DATA_VOLUME,
                                        f"{where}: {path}: ReadWritePaths {p} is not on the data volume "
                                        f"(under {DATA_VOLUME}/)")
                            extra_rw[dm] += rw_paths(vals)
            if re.search(r"^\s*mount_data_volume\b", text, re.M):
                for dm in DAEMONS:
                    if re.search(rf"enable --now [^\n]*mscope-{dm}\.service", text):
                        mounts = rw_paths(units[dm].get("Unit", {}).get("RequiresMountsFor", []))
                        mounts += [p for pth, c in wf if pth.startswith(f"/etc/systemd/system/mscope-{dm}.service.d/")
                                   for p in rw_paths(unit_settings(c).get("Unit", {}).get("RequiresMountsFor", []))]
                        h.check(any(under(p, [DATA_VOLUME]) for p in mounts),
                                f"{where}: mscope-{dm} is not ordered after the data volume on {DATA_VOLUME}")

            # Helper services cloud-init adds: sandboxed too.
            for path, content in wf:
                m = re.fullmatch(r"/etc/systemd/system/([\w@.-]+)\.service", path)
                if not m:
                    continue
                helpers += 1
                svc = unit_settings(content).get("Service", {})
                for key, want in HELPER_MUST.items():
                    h.check(svc.get(key, [""])[-1] == want,
                            f"{where}: helper {path}: {key}={svc.get(key, ['(unset)'])[-1]}, want {want}")
                h.check(svc.get("ProtectHome", [""])[-1] in ("yes", "read-only", "tmpfs"),
                        f"{where}: helper {path}: ProtectHome not set")
                h.check(svc.get("SystemCallFilter") and svc.get("RestrictAddressFamilies"),
                        f"{where}: helper {path}: no SystemCallFilter or RestrictAddressFamilies")
                for p in rw_paths(svc.get("ReadWritePaths", [])):
                    h.check(under(p, ["/etc/mscope", DATA_VOLUME]),
                            f"{where}: helper {path} may write {p}, outside /etc/mscope and {DATA_VOLUME}")

            # The install: a conffile written before it (write_files runs
            # before runcmd) is kept only with --force-confold.
            installs = install_commands(text)
            h.check(installs or re.search(r"^\s*install_package\b", text, re.M),
                    f"{where}: does not install the package")
            if re.search(r"^\s*install_package\b", text, re.M):
                installs += lib_installs
            before = sorted(p for p, _ in wf if p in conffiles)
            for c in installs if before else []:
                h.check("--force-confold" in c,
                        f"{where} writes {', '.join(before)} (conffiles of the package) before the install, "
                        f"which then stops at dpkg's question with no terminal: {c!r} lacks "
                        "-o Dpkg::Options::=--force-confold (or write the configuration after the install)")

            # The daemons' paths, where their units let them write.
            for dm in DAEMONS:
                allowed = rw_paths(units[dm]["Service"]["ReadWritePaths"]) + extra_rw[dm]
                for path, content in wf:
                    if path != f"/etc/mscope/{dm}.conf":
                        continue
                    for key, v in conf_paths(content):
                        stats += key == "stats-file"
                        h.check(under(v, allowed), f"{where}: {path}: {key} = {v} is outside what "
                                f"mscope-{dm}.service may write (ReadWritePaths {' '.join(allowed)})")
    h.check(templates >= 3, f"only {templates} cloud-init templates found")
    h.check(dropins >= 2, f"only {dropins} drop-ins for the package's units in the cloud-init templates")
    h.check(stats >= 1, "no stats-file in the cloud-init templates: the check would be vacuous")

    # The examples and the package's default configuration.
    nconf = 0
    for sub in ("examples", "config"):
        for name in sorted(os.listdir(os.path.join(DEPLOY, sub))):
            dm = next((x for x in DAEMONS if name.startswith(x)), None)
            if not name.endswith(".conf") or dm is None or (sub == "examples" and name in HAND_RUN_EXAMPLES):
                continue
            nconf += 1
            allowed = rw_paths(units[dm]["Service"]["ReadWritePaths"])
            for key, v in conf_paths(open(os.path.join(DEPLOY, sub, name)).read()):
                h.check(under(v, allowed), f"deploy/{sub}/{name}: {key} = {v} is outside what "
                        f"mscope-{dm}.service may write (ReadWritePaths {' '.join(allowed)})")
    h.check(nconf >= 4, f"only {nconf} configuration files in deploy/examples and deploy/config")
    print(f"ok  {templates} cloud-init templates use the package's units ({dropins} drop-ins that keep "
          f"the sandbox, {helpers} sandboxed helper services), install the .deb with --force-confold; "
          f"data-dir, stats-file and pcap dirs of the templates and {nconf} example and default "
          "configurations lie under their units' ReadWritePaths")


def main():
    mods = parse_all()
    nfiles = sum(len(f) for f in mods.values())
    print(f"ok  {nfiles} .tf files in {len(mods)} modules parse (hcl2json)")
    readme = open(os.path.join(TF, "README.md")).read()
    for d, files in sorted(mods.items()):
        rel = os.path.relpath(d, TF)
        m = merged(files)
        check_references(rel, m)
        check_module_calls(rel, d, m, mods)
        check_templates(rel, d, m)
        for name, body in m["variable"].items():
            h.check(body.get("description") and body.get("type"), f"{rel}: variable {name} lacks description or type")
            h.check(f"| `{name}` |" in readme.split(f"### `{rel}`", 1)[-1],
                    f"README.md does not describe {rel}'s variable {name}")
    print("ok  every reference has its block; module calls match the modules' variables and outputs; "
          "templates get exactly the names they use; README.md describes every variable")
    check_mirror(mods)
    check_recorders(mods)
    check_coordinator(mods)
    check_broker(mods)
    check_security(mods)
    check_everywhere(mods)
    check_deploy(mods)


if __name__ == "__main__":
    main()
