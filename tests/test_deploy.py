"""The container and Kubernetes files agree with the code: command names and flags, settings
(env var names), ports, probes and the metrics annotation."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from newsrec.cli import COMMANDS, build_parser
from recommender.config import CONFIG_ENV, ENV_PREFIX, Settings
from recommender.server import SERVICE_NAME

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SETTINGS = {ENV_PREFIX + f.name.upper() for f in fields(Settings)} | {CONFIG_ENV}


def documents() -> list[dict[str, Any]]:
    """Every Kubernetes object of deploy/kubernetes/."""
    found: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] == kind]


def containers() -> list[dict[str, Any]]:
    pods = [d["spec"]["template"]["spec"] for d in by_kind("Deployment")]
    pods += [d["spec"]["jobTemplate"]["spec"]["template"]["spec"] for d in by_kind("CronJob")]
    return [c for pod in pods for c in pod["containers"]]


def settings_env() -> dict[str, str]:
    """The ConfigMap's and the Secret's variables."""
    env: dict[str, str] = {}
    for doc in by_kind("ConfigMap"):
        env |= doc["data"]
    for doc in by_kind("Secret"):
        env |= doc["stringData"]
    return env


def test_every_variable_is_a_setting() -> None:
    env = settings_env()
    unknown = sorted(set(env) - SETTINGS)
    assert not unknown, f"not settings: {unknown}"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert not sorted(set(re.findall(r"NEWSREC_[A-Z_]+", dockerfile)) - SETTINGS)
    # TMPDIR: where the writer spools a version's vectors blob (GBs), put on its volume
    for container in containers():
        for item in container.get("env", []):
            assert item["name"] in SETTINGS | {"TMPDIR"}, item
    assert "NEWSREC_WRITE_TOKEN" in {k for d in by_kind("Secret") for k in d["stringData"]}


def test_commands_and_flags_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    for container in containers():
        args = container["args"]
        assert args[0] in COMMANDS, args
        build_parser(args[0]).parse_args(args)  # exits on an unknown flag
    assert [c["args"][0] for c in containers()] == ["serve", "serve", "train"]
    roles = [
        c["args"][c["args"].index("--role") + 1] for c in containers() if "--role" in c["args"]
    ]
    assert roles == ["reader", "writer"]  # reads and writes go to separate Services
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["newsrec"]' in dockerfile and 'CMD ["serve"]' in dockerfile


def test_ports_probes_and_metrics_agree() -> None:
    env = settings_env()
    grpc_port, metrics_port = int(env["NEWSREC_PORT"]), int(env["NEWSREC_METRICS_PORT"])
    for deployment in by_kind("Deployment"):  # the readers and the writer
        pod = deployment["spec"]["template"]
        (server,) = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in server["ports"]}
        assert ports == {"grpc": grpc_port, "metrics": metrics_port}
        assert server["readinessProbe"]["grpc"] == {"port": grpc_port, "service": SERVICE_NAME}
        assert server["livenessProbe"]["grpc"] == {"port": grpc_port}  # the process, not Redis
        notes = pod["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true"
        assert int(notes["prometheus.io/port"]) == metrics_port
        grace = float(env["NEWSREC_SHUTDOWN_GRACE_SECONDS"])
        assert pod["spec"]["terminationGracePeriodSeconds"] > grace  # in-flight calls finish
    exposed = re.search(r"^EXPOSE (.+)$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert exposed is not None and exposed.group(1).split() == [str(grpc_port), str(metrics_port)]
    for service in by_kind("Service"):
        assert service["spec"]["ports"][0]["port"] == grpc_port
    (job,) = by_kind("CronJob")
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
