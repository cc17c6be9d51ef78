"""The API contract and the module boundaries hold."""

from __future__ import annotations

import importlib.resources
import importlib.util
import subprocess
import sys
from pathlib import Path

from grpc_tools import protoc

from recommender.v1 import recommender_pb2

ROOT = Path(__file__).resolve().parents[1]


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    """Compare descriptors, not text, so a different grpcio-tools version is not 'stale'."""
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    args = ["protoc", f"-I{ROOT / 'protos'}", f"-I{well_known}", f"--python_out={tmp_path}",
            str(ROOT / "protos/recommender/v1/recommender.proto")]  # fmt: skip
    assert protoc.main(args) == 0
    spec = importlib.util.spec_from_file_location(
        "fresh_pb2", tmp_path / "recommender/v1/recommender_pb2.py"
    )
    assert spec and spec.loader
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert fresh.DESCRIPTOR.serialized_pb == recommender_pb2.DESCRIPTOR.serialized_pb, (
        "recommender/v1 stubs are stale: run `make proto` and commit them"
    )


def test_serving_never_imports_training_or_sklearn() -> None:
    code = (
        "import sys, recommender.server, recommender.service, recommender.store\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('training', 'sklearn'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
