"""The lines the layout holds: which room imports which, what a serving replica loads, and the
size limits (modules under 400 lines, functions under 60)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import redis

from recommender.config import Settings
from recommender.store.keys import Keys
from recommender.v1 import recommender_pb2 as pb
from recommender.v1 import recommender_pb2_grpc as pb_grpc
from tests.corpus import write_corpus
from tests.helpers import newsrec_env
from training.bench.processes import free_port, wait_serving
from training.pipeline import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
NOT_THE_JOB = ("training.workbench", "training.bench", "training.demo")
TRAINING_STACK = ("sklearn", "numba", "llvmlite", "matplotlib")
ENCODER_STACK = ("onnxruntime", "tokenizers")
EXPORT_STACK = ("torch", "transformers")
"""Loaded only to export a model to ONNX once per machine, never by a server whose export is
cached (the training job made it)."""


def imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; also the ones imported inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def sources(package: str) -> list[Path]:
    """The package's modules, generated code aside."""
    return [p for p in (ROOT / package).rglob("*.py") if "v1" not in p.relative_to(ROOT).parts]


def test_serving_never_imports_training() -> None:
    for path in sources("recommender"):
        wrong = sorted(m for m in imports(path) if m.split(".")[0] in ("training", "newsrec"))
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_the_nightly_job_never_imports_workbench_benchmarks_or_demo() -> None:
    job = [p for p in sources("training") if not any(
        p.is_relative_to(ROOT / part.replace(".", "/")) for part in NOT_THE_JOB)]  # fmt: skip
    assert len(job) > 20
    for path in job:
        wrong = sorted(m for m in imports(path) if m.startswith(NOT_THE_JOB))
        assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}"


def test_modules_and_functions_stay_small() -> None:
    too_big = []
    for path in sources("recommender") + sources("training") + sources("newsrec"):
        text = path.read_text()
        if len(text.splitlines()) > 400:
            too_big.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 60:
                    too_big.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length}")
    assert not too_big, "\n".join(too_big)


def mapped(pid: int) -> set[str]:
    """Which heavy libraries have files mapped into a process."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {
        name
        for name in (*TRAINING_STACK, *ENCODER_STACK, *EXPORT_STACK, "scipy")
        if f"/{name}/" in maps
    }


@pytest.mark.slow
def test_newsrec_serve_loads_no_training_stack(
    tmp_path: Path, settings: Settings, client: redis.Redis
) -> None:
    """A replica serving every read and event RPC loads neither scikit-learn, numba, scipy,
    matplotlib nor the embedding model, nor any module of training/; its first upsert loads
    scipy and the embedding model's runtime (ONNX Runtime, tokenizers), and still no
    scikit-learn (the text model is JSON read by recommender/textmodel.py) and no torch (the
    training job exported the model to ONNX into the shared encoder cache)."""
    articles, clicks = write_corpus(tmp_path)
    config = TrainConfig(articles=articles, clicks=clicks, model_dir=settings.model_dir,
                         progress=False)  # fmt: skip
    train(config, client, Keys(settings.namespace), log=lambda _m: None)
    port = free_port()
    command = [sys.executable, "-X", "importtime", "-m", "newsrec.cli", "serve", "--port",
               str(port)]  # fmt: skip
    # -X importtime writes thousands of lines: to a file, so a full pipe never blocks the server
    errors = (tmp_path / "serve.err").open("w")
    server = subprocess.Popen(command, env=newsrec_env(settings), stderr=errors, text=True)
    try:
        wait_serving(f"127.0.0.1:{port}")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.RecommenderStub(channel)
            assert stub.GetRelated(pb.GetRelatedRequest(article_id="tech-01")).items
            assert stub.GetPopular(pb.GetPopularRequest()).items
            stub.GetModelInfo(pb.GetModelInfoRequest())
            event = pb.Event(article_id="tech-02", session_id="reader-1")
            assert stub.RecordEvents(pb.RecordEventsRequest(events=[event])).accepted == 1
            assert mapped(server.pid) == set()
            article = pb.ArticleInput(article_id="tech-new", title="A new chip and battery")
            stub.UpsertArticles(pb.UpsertArticlesRequest(articles=[article]))
            assert mapped(server.pid) == {"scipy", *ENCODER_STACK}
    finally:
        server.terminate()
        server.wait(timeout=30)
        errors.close()
    log = (tmp_path / "serve.err").read_text()
    loaded = {line.split("|")[-1].strip() for line in log.splitlines() if "import time:" in line}
    assert "recommender.server" in loaded and "recommender.live.vectors" in loaded
    wrong = sorted(m for m in loaded if m.split(".")[0] in ("training", *TRAINING_STACK))
    assert not wrong, f"newsrec serve imported {wrong}"


def test_a_command_without_its_extra_says_what_to_install(tmp_path: Path) -> None:
    """A serving image has no training stack: `newsrec train` there says which extra to
    install (scikit-learn is made unimportable in the subprocess)."""
    script = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from newsrec.cli import main\n"
        f"sys.exit(main(['train', '--articles', {str(tmp_path / 'a.jsonl')!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)  # fmt: skip
    assert done.returncode == 2
    assert "newsrec train needs the training extra" in done.stderr
    assert "pip install 'newsrec[training]'" in done.stderr and "Traceback" not in done.stderr
