"""deploy/ checked offline: the Kubernetes manifests render (kubectl kustomize) and hang together
(probes, ports, grace period against the drain, HPA metric against the adapter's rule), the
compose file passes docker-compose's schema, HAProxy accepts its configuration, and the image
is built by the README's own set-up and build, with a runtime layout that serves."""
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from tests.client.servers import run_pkm, scrape, start_server, stop_server

REPO = __file__.rsplit("/tests/deploy/", 1)[0]
DEPLOY = os.path.join(REPO, "deploy")
DOCKERFILE = os.path.join(DEPLOY, "docker", "Dockerfile")


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: scripts/setup.sh installs it (make setup)")
    return path


def render(overlay):
    out = subprocess.run([tool("kubectl"), "kustomize", os.path.join(DEPLOY, "k8s", overlay)],
                         capture_output=True, text=True, check=True).stdout
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}


def container(objects):
    pod = objects[("Deployment", "pkmserve")]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    return pod, c, {e["name"]: e["value"] for e in c["env"]}


@pytest.mark.parametrize("overlay", ["base", "gpu", "monitoring"])
def test_kubernetes_objects_hang_together(overlay):
    objects = render(overlay)
    deployment = objects[("Deployment", "pkmserve")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pod, c, env = container(objects)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    # The flags' environment variables listen where the ports say.
    for var, port in [("PKMSERVE_LISTEN", "grpc"), ("PKMSERVE_HTTP_LISTEN", "http"),
                      ("PKMSERVE_METRICS_LISTEN", "metrics")]:
        assert env[var] == f"0.0.0.0:{ports[port]}", var
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == ports["grpc"], probe
    # Accepted requests finish before the kubelet's SIGKILL: preStop, then the drain, then
    # gRPC's 0.5 s of refusals and up to 5 s of flushing (server/main.cc).
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + float(env["PKMSERVE_DRAIN_TIMEOUT"]) + 5.5
    # Liveness does not restart a draining container (it answers NOT_SERVING) within the grace period.
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > pod["terminationGracePeriodSeconds"]
    assert pod["securityContext"]["runAsNonRoot"] and c["securityContext"]["readOnlyRootFilesystem"]
    assert "memory" in c["resources"]["requests"] and "memory" in c["resources"]["limits"]

    service = objects[("Service", "pkmserve")]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    pdb = objects[("PodDisruptionBudget", "pkmserve")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = objects[("HorizontalPodAutoscaler", "pkmserve")]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "pkmserve"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "pkmserve_requests_waiting"

    if overlay == "gpu":
        assert c["resources"]["limits"]["nvidia.com/gpu"] == 1 and env["PKMSERVE_DEVICE"] == "cuda"
        assert c["image"].endswith(":cuda")
    else:
        assert "nvidia.com/gpu" not in c["resources"]["limits"]
    if overlay == "monitoring":
        monitor = objects[("ServiceMonitor", "pkmserve")]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
        # job="pkmserve", which deploy/prometheus/rules.yml's alerts expect.
        assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "pkmserve"


def test_autoscaler_metric_is_what_the_adapter_serves_and_the_server_exports(binaries):
    with open(os.path.join(DEPLOY, "k8s", "prometheus-adapter.yaml")) as f:
        adapter = yaml.safe_load(f)
    (rule,) = adapter["rules"]["custom"]
    assert rule["name"]["as"] == "pkmserve_requests_waiting"
    assert rule["seriesQuery"].startswith("pkmserve_requests_waiting{")
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    proc, _, metrics = start_server(binaries[0])
    try:
        assert "pkmserve_requests_waiting" in {k.split("{")[0] for k in scrape(metrics)}
    finally:
        stop_server(proc)


def test_compose_file_passes_the_schema_and_publishes_on_loopback_only():
    path = os.path.join(DEPLOY, "compose.yaml")
    out = subprocess.run([tool("docker-compose"), "-f", path, "config"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    assert set(config["services"]) == {"pkmserve", "prometheus", "grafana"}
    for name, service in config["services"].items():
        for port in service["ports"]:  # docker-compose 1.29 writes "HOST_IP:PUBLISHED:TARGET/tcp"
            assert port.startswith("127.0.0.1:"), (name, port)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert os.path.exists(source), (name, source)
    build = config["services"]["pkmserve"]["build"]
    assert os.path.samefile(os.path.join(build["context"], build["dockerfile"]), DOCKERFILE)
    # Grafana's provisioning names the dashboard's folder and the data source's address.
    with open(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "prometheus.yml")) as f:
        (datasource,) = yaml.safe_load(f)["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in config["services"]["grafana"]["volumes"]}
    with open(os.path.join(DEPLOY, "grafana", "provisioning", "dashboards", "pkmserve.yml")) as f:
        (provider,) = yaml.safe_load(f)["providers"]
    dashboards = [t for t in mounts if os.path.dirname(t) == provider["options"]["path"]]
    assert [os.path.basename(mounts[t]) for t in dashboards] == ["pkmserve.json"]


def test_haproxy_accepts_the_configuration():
    env = dict(os.environ, PKMSERVE_LB_LISTEN="127.0.0.1:50050")
    for i in (1, 2, 3):
        env[f"PKMSERVE_REPLICA_{i}"] = f"127.0.0.1:{50050 + i}"
        env[f"PKMSERVE_REPLICA_{i}_HEALTH"] = str(8080 + i)
    out = subprocess.run([tool("haproxy"), "-c", "-f", os.path.join(DEPLOY, "haproxy", "pkmserve.cfg")],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr


def dockerfile_instructions():
    """(instruction, arguments) per Dockerfile instruction, continuation lines joined."""
    with open(DOCKERFILE) as f:
        text = re.sub(r"\\\n", " ", "".join(line for line in f if not line.lstrip().startswith("#")))
    return [tuple(line.strip().split(None, 1)) for line in text.splitlines() if line.strip()]


def test_image_is_built_by_the_readme_setup_and_build():
    runs = [args for ins, args in dockerfile_instructions() if ins == "RUN"]
    # The README's `make serve` is scripts/setup.sh serve (make setup-serve), then make
    # build-serve; the image runs the same two, so the two cannot drift apart.
    assert any(r.startswith("bash scripts/setup.sh serve") for r in runs), runs
    assert any(r.startswith("make build-serve ") for r in runs), runs
    with open(os.path.join(REPO, "Makefile")) as f:
        makefile = f.read()
    assert re.search(r"^serve: build-serve$", makefile, re.M)
    assert re.search(r"^build-serve: setup-serve$", makefile, re.M)
    assert re.search(r"^setup-serve:\n\t@bash scripts/setup.sh serve$", makefile, re.M)
    with open(os.path.join(REPO, "README.md")) as f:
        assert "make serve" in f.read()


def test_runtime_image_layout_serves_and_passes_its_healthcheck(binaries, tmp_path):
    """The runtime stage rebuilt under tmp_path: its COPYs from the build stage (with this
    build's binaries), its ENV, its ENTRYPOINT and HEALTHCHECK; the packages it installs are
    every one the binaries need (scripts/runtime-packages.sh, as the build stage runs it)."""
    instructions = dockerfile_instructions()
    runtime = instructions[max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM"):]
    build_dir = os.path.dirname(os.path.dirname(os.path.abspath(binaries[0])))
    built = {"/build/bin/pkmserve": binaries[0], "/build/bin/pkm": binaries[1],
             "/build/lib/libpkm_sentencepiece.so": os.path.join(build_dir, "lib", "libpkm_sentencepiece.so"),
             "/src/models/pkm-small": os.path.join(REPO, "models", "pkm-small")}
    env = {}
    for ins, args in runtime:
        if ins == "COPY" and args.startswith("--from=build "):
            *sources, dest = shlex.split(args)[1:]
            for src in sources:
                if src == "/build/runtime-packages.txt":
                    continue
                target = tmp_path / dest.lstrip("/")
                if dest.endswith("/"):
                    target = target / os.path.basename(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if os.path.isdir(built[src]) else shutil.copy)(built[src], target)
        elif ins == "ENV":
            for assignment in shlex.split(args):
                key, value = assignment.split("=", 1)
                env[key] = value.replace("$PATH", os.environ["PATH"])
        elif ins == "HEALTHCHECK":
            health = json.loads(args[args.index("CMD") + 3:])  # the exec form, a JSON list
        elif ins == "ENTRYPOINT":
            entrypoint = json.loads(args)
    # Paths in the image, rebased under tmp_path.
    env = {k: v.replace("/opt/", f"{tmp_path}/opt/").replace("/models/", f"{tmp_path}/models/")
           for k, v in env.items()}
    env["PKMSERVE_LISTEN"] = "127.0.0.1:0"
    env["PKMSERVE_HTTP_LISTEN"] = "127.0.0.1:0"
    env["PKMSERVE_METRICS_LISTEN"] = "127.0.0.1:0"
    server = shutil.which(entrypoint[0], path=env["PATH"])
    assert server.startswith(str(tmp_path)), server
    proc, address, _ = start_server(server, env={**os.environ, **env})
    try:
        assert f"path={tmp_path}/models/pkm-small" in "".join(proc.log_lines)
        probe = [a if a != "127.0.0.1:50051" else address for a in health]
        pkm = shutil.which(probe[0], path=env["PATH"])
        assert pkm.startswith(str(tmp_path))
        out = run_pkm(pkm, *probe[1:])
        assert out.returncode == 0, out.stderr
    finally:
        stop_server(proc)
    packages = subprocess.run([os.path.join(REPO, "scripts", "runtime-packages.sh"), binaries[0],
                               binaries[1], built["/build/lib/libpkm_sentencepiece.so"]],
                              capture_output=True, text=True)
    instrumented = os.environ.get("PKMSERVE_INSTRUMENTED_LIBS")
    if instrumented:  # make test-tsan: gRPC, Abseil, cpp-httplib come from tsan-deps.sh
        unowned = re.findall(r"^runtime-packages: no Debian package owns (\S+)$",
                             packages.stderr, re.MULTILINE)
        assert packages.returncode != 0 and unowned, packages.stderr
        assert all(os.path.dirname(path) == instrumented for path in unowned), unowned
        return
    assert packages.returncode == 0, packages.stderr
    names = packages.stdout.split()
    assert {"libgrpc++1.51", "libsentencepiece0", "libprometheus-cpp-core1.0"} <= set(names), names
