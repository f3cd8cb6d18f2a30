"""predict_distributed (Ray Data) against predict_file: the worker alone (fast), and on a
local 2-worker Ray cluster over real GoEmotions texts (slow)."""

import csv
import json
import os
import re
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from conftest import GROUPS, make_examples, make_nlp, shared_data_dir
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.workflows.distributed import MTLPredictor, output_mode
from spacy_mtl.workflows.predict import PredictError, predict_file

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

TEXTS = ["i love this movie", "", "NA", 'said "hi, there"\nsad', "   ", "so sad 😢", None]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small trained Tok2Vec pipeline (sentiment multiclass, emotion multilabel)."""
    nlp = make_nlp(GROUPS)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(8):
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("distributed_model") / "model"
    nlp.to_disk(path)
    return path


def _local(model_dir: Path, tmp_path: Path, fmt: str, **kwargs: Any) -> List[Dict[str, Any]]:
    """predict_file over TEXTS (as Parquet input), read back."""
    src = tmp_path / "in.parquet"
    if not src.exists():
        table = pa.table({"id": list(range(len(TEXTS))), "text": TEXTS})
        pq.write_table(table, str(src))
    out = tmp_path / f"local.{fmt}"
    predict_file(model_dir, src, out, overwrite=True, **kwargs)
    if fmt == "jsonl":
        return [json.loads(line) for line in out.read_text(encoding="utf8").splitlines()]
    if fmt == "csv":
        with open(out, encoding="utf8", newline="") as file:
            return list(csv.DictReader(file))
    return pq.read_table(str(out)).to_pylist()


@pytest.mark.parametrize("layout", ["parquet", "jsonl", "csv"])
def test_worker_gives_the_local_columns(model_dir: Path, tmp_path: Path, layout: str) -> None:
    """One worker (no cluster): a batch in, the batch with predict_file's columns out."""
    worker = MTLPredictor(str(model_dir), text_column="text", layout=layout, scores=True)
    batch = pa.table({"id": list(range(len(TEXTS))), "text": TEXTS})
    rows = worker(batch).to_pylist()
    expected = _local(model_dir, tmp_path, layout, scores=True)
    assert [row["id"] for row in rows] == list(range(len(TEXTS)))
    for row, want in zip(rows, expected):
        if layout == "csv":  # CSV cells are strings; Ray's writer formats them
            row = {k: "" if v is None else v for k, v in row.items()}
            assert row["emotion"] == want["emotion"] and row["sentiment"] == want["sentiment"]
            for key in ("sentiment/positive", "emotion/joy"):
                assert row[key] == (float(want[key]) if want[key] else "")
        else:
            assert {k: v for k, v in row.items() if k != "id"} == {
                k: v for k, v in want.items() if k != "id"
            }


def test_worker_raw_layout_and_errors(model_dir: Path) -> None:
    worker = MTLPredictor(str(model_dir), text_column="text", layout="raw")
    result = worker(pa.table({"text": ["i love it", None]}))
    assert "sentiment" not in result.column_names  # labels are decided on the driver
    assert result.column("sentiment/positive").to_pylist()[1] is None
    with pytest.raises(PredictError, match=r"no column 'text'.*\['body'\]"):
        worker(pa.table({"body": ["x"]}))
    clash = MTLPredictor(str(model_dir), text_column="text", layout="parquet")
    with pytest.raises(PredictError, match="--prefix"):
        clash(pa.table({"text": ["x"], "sentiment": ["positive"]}))


def test_output_mode(tmp_path: Path) -> None:
    assert output_mode("out.csv") == "file"
    assert output_mode("out/") == "dir"
    assert output_mode("predictions") == "dir"
    assert output_mode("s3://bucket/predictions.parquet") == "dir"
    assert output_mode("out.csv", "dir") == "dir"
    assert output_mode("out.xlsx") == "file"  # and refused: see below
    (tmp_path / "run.2026").mkdir()
    assert output_mode(str(tmp_path / "run.2026")) == "dir"  # a folder that exists
    with pytest.raises(PredictError, match="'file' or 'dir'"):
        output_mode("x", "folder")


def test_unknown_output_suffix_is_refused_before_a_cluster_starts(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """out.xlsx was taken for a folder (dir mode) and filled with part files; it is now
    refused as `predict` refuses it, before a cluster starts. So is a compressed name."""
    from spacy_mtl.workflows import distributed

    def no_cluster(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(distributed, "local_cluster", no_cluster)
    src = tmp_path / "in.csv"
    src.write_text("text\ni love it\n", encoding="utf8")
    for name, message in [
        ("out.xlsx", "predict does not write '.xlsx' files"),
        ("out.json", "predict does not write '.json' files"),
        ("out.csv.gz", "compressed output is not supported"),
    ]:
        args = ["predict-distributed", str(model_dir), str(src), str(tmp_path / name)]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output
        assert message in " ".join(result.output.split())
        assert not (tmp_path / name).exists()
    with pytest.raises(PredictError, match=r"does not write '\.xlsx'"):
        distributed.check_paths([str(src)], str(tmp_path / "out.xlsx"))
    # Said explicitly: written as asked.
    assert distributed.check_paths([str(src)], str(tmp_path / "out.xlsx"), output_format="csv") == (
        "csv",
        "file",
        "csv",
    )
    assert distributed.check_paths([str(src)], str(tmp_path / "out.xlsx"), mode="dir") == (
        "csv",
        "dir",
        "csv",
    )


def test_what_an_input_is_is_said_before_its_format_is_guessed(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in `predict`: without --format each of these was "cannot tell the input format
    from the file name", which sent the user to --format for a missing file or a FIFO."""
    from spacy_mtl.workflows import distributed

    def no_cluster(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(distributed, "local_cluster", no_cluster)
    out = str(tmp_path / "out.jsonl")
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    os.mkfifo(tmp_path / "fifo")
    first = tmp_path / "in.jsonl"
    first.write_text('{"text": "i love it"}\n', encoding="utf8")
    cases = [
        (tmp_path / "loop", "a loop of symbolic links"),
        (tmp_path / "fifo", "a named pipe (FIFO), not a regular file"),
        (Path("/dev/zero"), "a character device, not a regular file"),
        (tmp_path / "data", "the input file does not exist"),
    ]
    for path, expected in cases:
        with pytest.raises(PredictError, match=rf"^{re.escape(f'{path}: {expected}')}"):
            distributed.check_paths([str(path)], out)
        # Also when it is not the first input, whose name gives the format.
        with pytest.raises(PredictError, match=re.escape(f"{path}: {expected}")):
            distributed.check_paths([str(first), str(path)], out)
        args = ["predict-distributed", str(model_dir), str(path), out]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output
        assert expected in " ".join(result.output.split())
    assert not Path(out).exists()
    # A folder, a glob and a URI are inputs of predict-distributed: left to the reader.
    (tmp_path / "folder").mkdir()
    for path in [str(tmp_path / "folder"), str(tmp_path / "*.jsonl"), "s3://bucket/in/"]:
        assert distributed.check_paths([path], out, input_format="jsonl")[0] == "jsonl"


def test_a_label_that_contains_label_sep_is_refused_before_a_cluster_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    from spacy_mtl.workflows.distributed import run

    def no_cluster(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(run, "_connected", no_cluster)
    nlp = make_nlp({"emotion": {"kind": "multilabel", "labels": ["joy", "anger;rage"]}})
    examples = make_examples(nlp, [("so happy", {"emotion/joy": 1.0, "emotion/anger;rage": 0.0})])
    nlp.initialize(lambda: examples)
    src = tmp_path / "in.csv"
    src.write_text("text\ni love it\n", encoding="utf8")
    with pytest.raises(PredictError, match=r"label 'anger;rage' contains the label separator ';'"):
        run.predict_distributed(
            "m", [str(src)], str(tmp_path / "o.csv"), label_sep=";", pipeline=nlp
        )


def test_file_mode_refuses_a_column_clash(model_dir: Path, tmp_path: Path) -> None:
    """The workers add score columns only, so the driver checks the label columns: an
    input column 'sentiment' was written twice, beside the predicted one."""
    from spacy_mtl.workflows.distributed import run
    from spacy_mtl.workflows.predict import OutputColumns, get_schema, load_model

    worker = MTLPredictor(str(model_dir), text_column="text", layout="raw", scores=True)
    batch = worker(pa.table({"id": [1], "text": ["i love it"], "sentiment": ["x"]}))

    class Predicted:
        def iter_batches(self, **kwargs: Any) -> Iterator[Any]:
            yield batch

    out = OutputColumns(get_schema(load_model(model_dir), "mtl_textcat"))
    summary = run.DistributedSummary(str(tmp_path / "out.csv"), "file", "csv")
    with pytest.raises(PredictError, match=r"in.parquet: the input already has .*'sentiment'"):
        run._write_file(
            Predicted(),
            tmp_path / "out.csv",
            "csv",
            "parquet",
            out,
            summary,
            source="in.parquet",
            text_column="text",
            max_length=10**6,
            rows_per_chunk=10,
        )
    assert not (tmp_path / "out.csv").exists()


def test_a_stopped_job_is_one_line() -> None:
    """Ray's errors as one PredictError: a worker's own PredictError (which Ray passes on
    as text in a traceback), workers dying past --max-retries, anything else."""
    ray = pytest.importorskip("ray")
    from spacy_mtl.workflows.distributed.run import _stopped

    worker_error = ray.exceptions.RayError(
        "ray::MapWorker(MapBatches(MTLPredictor)).submit() (pid=1)\nTraceback:\n  ...\n"
        "spacy_mtl.workflows.predict.formats.PredictError: The input has no column "
        "'text'; its columns are ['body']. Set --text-column."
    )
    assert str(_stopped(worker_error, "out", 3)) == (
        "The input has no column 'text'; its columns are ['body']. Set --text-column."
    )
    died = str(_stopped(ray.exceptions.ActorDiedError(), "parts/", 2))
    assert "A worker died" in died and "--max-retries 2" in died
    assert "parts/ is incomplete" in died and "--force" in died and "\n" not in died
    other = str(_stopped(ray.exceptions.ObjectLostError("abc", "owner", "call"), "o", 3))
    assert other.startswith("Ray stopped the job (ObjectLostError: ") and "\n" not in other


# -- a local cluster ----------------------------------------------------------------------


@contextmanager
def deadline(seconds: int, what: str) -> Iterator[None]:
    """Fail (rather than hang) if the block takes longer than `seconds`."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"{what} took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A Ray cluster on this machine: 2 worker CPUs plus 1 for reading and writing,
    loopback only, a small object store; started and stopped here."""
    pytest.importorskip("ray.data")
    from spacy_mtl.workflows.distributed import local_cluster

    # A short session path: Ray puts Unix sockets in it (at most 107 characters).
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    cluster = local_cluster(3, num_gpus=0, object_store_memory=200 * 2**20, temp_dir=temp_dir)
    try:
        with deadline(120, "starting the local Ray cluster"):
            ray = cluster.__enter__()
        yield ray
    finally:
        with deadline(60, "stopping the local Ray cluster"):
            cluster.__exit__(None, None, None)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _goemotions_sample(tmp_path: Path, n: int = 300) -> Path:
    source = shared_data_dir() / "goemotions" / "test.tsv"
    if not source.exists():
        pytest.skip(f"GoEmotions test.tsv not found at {source} (set SPACY_MTL_DATA)")
    with open(source, encoding="utf8", newline="") as file:
        rows = [row for _, row in zip(range(n), csv.reader(file, delimiter="\t"))]
    # Plus what real exports contain: an empty text, a text "NA", one with a newline.
    rows[10][0] = ""
    rows[20][0] = "NA"
    rows[30][0] = rows[30][0] + "\nsecond line, with a comma"
    path = tmp_path / "goemotions.tsv"
    with open(path, "w", encoding="utf8", newline="") as file:
        csv.writer(file, delimiter="\t").writerows(rows)
    return path


def _assert_same_rows(got: List[Dict[str, Any]], want: List[Dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert list(a) == list(b), i
        for key, value in b.items():
            if isinstance(value, float):
                assert a[key] == pytest.approx(value, abs=1e-6), (i, key)
            elif isinstance(value, dict):
                for group, scores in value.items():
                    assert a[key][group] == pytest.approx(scores, abs=1e-6), (i, key)
            else:
                assert a[key] == value, (i, key)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own, from DataContext
def test_distributed_matches_local(ray_cluster: Any, model_dir: Path, tmp_path: Path) -> None:
    """300 real texts: predict_distributed on 2 workers gives predict_file's rows, in
    order, as one file (written by the driver) and as part files (written by workers)."""
    assert {node["NodeManagerAddress"] for node in ray_cluster.nodes()} == {"127.0.0.1"}
    src = _goemotions_sample(tmp_path)
    options: Dict[str, Any] = {"columns": ["text", "labels", "id"], "scores": True}
    with deadline(300, "the distributed predictions"):
        predict_file(model_dir, src, tmp_path / "local.csv", **options)
        predict_file(model_dir, src, tmp_path / "local.parquet", **options)
        predict_file(model_dir, src, tmp_path / "local.jsonl", **options)

        one_file = tmp_path / "ray.csv"
        summary = _run(model_dir, src, one_file, options, rows=64)
        assert summary.mode == "file" and summary.rows == 300 and summary.empty == 1
        with open(tmp_path / "local.csv", encoding="utf8", newline="") as file:
            local_csv = list(csv.DictReader(file))
        with open(one_file, encoding="utf8", newline="") as file:
            ray_csv = list(csv.DictReader(file))
        _assert_same_rows([_floats(r) for r in ray_csv], [_floats(r) for r in local_csv])

        parts = tmp_path / "ray_parquet"
        summary = _run(
            model_dir, src, parts, options, rows=64, output_format="parquet", rows_per_file=100
        )
        assert summary.mode == "dir" and summary.rows == 300 and summary.empty == 1
        assert len(summary.files) > 1  # several workers' parts, named in input order
        rows = [row for part in summary.files for row in pq.read_table(part).to_pylist()]
        _assert_same_rows(rows, pq.read_table(str(tmp_path / "local.parquet")).to_pylist())

        parts = tmp_path / "ray_jsonl"
        summary = _run(model_dir, src, parts, options, rows=100, output_format="jsonl")
        rows = [
            json.loads(line) for f in summary.files for line in Path(f).read_text().splitlines()
        ]
        local = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
        _assert_same_rows(rows, local)

        # The command line, on the cluster this process already runs.
        cli_out = tmp_path / "cli.csv"
        args = ["predict-distributed", str(model_dir), str(src), str(cli_out), "--address"]
        args += ["auto", "--columns", "text,labels,id", "--scores", "--workers", "2"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "rows written 300" in " ".join(result.output.split())
        with open(cli_out, encoding="utf8", newline="") as file:
            cli_csv = list(csv.DictReader(file))
        _assert_same_rows([_floats(r) for r in cli_csv], [_floats(r) for r in local_csv])


def _run(
    model_dir: Path, src: Path, output: Path, options: Dict[str, Any], rows: int, **kw: Any
) -> Any:
    from spacy_mtl.workflows.distributed import predict_distributed

    return predict_distributed(
        model_dir, src, output, num_workers=2, rows_per_call=rows, **options, **kw
    )


def _floats(row: Dict[str, str]) -> Dict[str, Any]:
    """CSV cells, with the score cells as floats (compared with a tolerance)."""
    return {k: float(v) if "/" in k and v else v for k, v in row.items()}


def test_local_cluster_restores_the_process_wide_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loopback switches (an environment variable, a Ray constant) hold for the cluster's
    lifetime only. A stand-in for ray records what ray.init saw."""
    from types import SimpleNamespace

    from spacy_mtl.workflows import distributed
    from spacy_mtl.workflows.distributed import cluster

    seen: Dict[str, Any] = {}
    constants = SimpleNamespace(ENABLE_RAY_CLUSTER=True)

    def init(**kwargs: Any) -> None:
        seen["env"] = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
        seen["flag"] = constants.ENABLE_RAY_CLUSTER

    fake = SimpleNamespace(
        is_initialized=lambda: False,
        init=init,
        shutdown=lambda: seen.setdefault("shutdown", True),
        _private=SimpleNamespace(ray_constants=constants),
    )
    monkeypatch.setattr(cluster, "import_ray", lambda: fake)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")
    with distributed.local_cluster(1) as ray:
        assert ray is fake
    assert seen == {"env": "0", "flag": False, "shutdown": True}
    assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "1"
    assert constants.ENABLE_RAY_CLUSTER is True
    monkeypatch.delenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    fake.is_initialized = lambda: True
    cluster = distributed.local_cluster(1)
    with pytest.raises(PredictError, match="already initialised"):
        cluster.__enter__()
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ


# -- a worker killed mid-job --------------------------------------------------------------

_WORDS = "i you love hate this that movie film food day so very sad happy great awful".split()


def _distinct_texts(n: int = 300) -> List[Any]:
    """n different texts, of 1 to 30 words, plus an empty and a missing one."""
    texts: List[Any] = [
        " ".join(_WORDS[(i * 7 + j * 3) % len(_WORDS)] for j in range(1 + i % 30)) + f" {i}"
        for i in range(n)
    ]
    return [*texts, "", None]


def _map_workers(psutil: Any) -> List[Any]:
    """This process's Ray Data workers (its cluster's only: other jobs' are not touched),
    with the calls they are running: Ray titles a process `ray::MapWorker(...).submit`
    while it runs a call."""
    found = []
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            title = " ".join(process.cmdline()).strip()
        except psutil.Error:
            continue
        if title.startswith("ray::MapWorker") and title.endswith(".submit"):
            found.append(process)
    return found


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own, from DataContext
@pytest.mark.parametrize("mode", ["dir", "file"])
def test_killed_worker_rows_written_once(
    ray_cluster: Any, model_dir: Path, tmp_path: Path, mode: str
) -> None:
    """SIGKILL a worker while it runs a call, once rows have been written: Ray restarts it
    and runs its calls again, and every input row is in the output exactly once, with the
    scores of the local pipeline, and counted once in the summary."""
    import threading
    import time

    psutil = pytest.importorskip("psutil")  # comes with Ray
    from spacy_mtl.workflows.distributed import predict_distributed
    from spacy_mtl.workflows.predict import parts_dir

    texts = _distinct_texts()
    calls = 100
    n = calls * len(texts)
    src = tmp_path / "in.parquet"
    pq.write_table(
        pa.table({"id": list(range(n)), "text": [texts[i % len(texts)] for i in range(n)]}),
        str(src),
    )
    worker = MTLPredictor(str(model_dir), text_column="text", layout="raw")
    want = dict(zip(map(str, texts), worker.predict(texts)[0]))
    output = tmp_path / ("parts" if mode == "dir" else "out.parquet")
    written = output if mode == "dir" else parts_dir(output)
    result: Dict[str, Any] = {}

    def job() -> None:
        try:
            result["summary"] = predict_distributed(
                model_dir,
                src,
                output,
                mode=mode,
                output_format="parquet",
                scores=True,
                num_workers=2,
                rows_per_call=len(texts),
                rows_per_file=10 * len(texts),
            )
        except BaseException as err:  # the test reports it
            result["error"] = err

    started = time.perf_counter()
    thread = threading.Thread(target=job, daemon=True)
    killed: Dict[str, Any] = {}
    with deadline(240, f"the job with a killed worker ({mode} mode)"):
        thread.start()
        while thread.is_alive() and not killed:
            busy = _map_workers(psutil) if list(written.glob("part-*")) else []
            if busy:
                killed["parts"] = len(list(written.glob("part-*")))
                killed["after"] = time.perf_counter() - started
                busy[0].send_signal(signal.SIGKILL)
            time.sleep(0.05)
        thread.join()
    took = time.perf_counter() - started
    print(f"{mode} mode: killed at {killed.get('after', 0):.1f} s, job {took:.1f} s")
    assert "error" not in result, result.get("error")
    assert killed, "the job ended before a worker could be killed in a call: give it more rows"
    summary = result["summary"]
    assert (summary.rows, summary.empty) == (n, 2 * n // len(texts))
    files = summary.files if mode == "dir" else [str(output)]
    table = pa.concat_tables([pq.read_table(f) for f in files])
    assert table.column("id").to_pylist() == list(range(n))  # each once, in order
    keys = worker.out.score_columns
    for row in table.select(["text", *keys]).to_pylist():
        expected = want[str(row["text"])]
        got = [row[key] for key in keys]
        if expected is None:
            assert got == [None] * len(keys), row
        else:
            assert got == pytest.approx(expected, abs=1e-5), row


def test_without_a_cluster_a_loopback_one_is_started(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Called from Python with Ray not initialised and no address: a local cluster on
    127.0.0.1 (`local_cluster`), not Ray's default `ray.init()`, which binds to the
    machine's network address. With an address, Ray is connected to it."""
    ray = pytest.importorskip("ray")
    import spacy

    from spacy_mtl.workflows.distributed import run as run_module

    class Started(Exception):
        pass

    calls: List[Any] = []

    @contextmanager
    def fake_cluster(num_cpus: int, **kwargs: Any) -> Iterator[None]:
        calls.append(("local_cluster", num_cpus, kwargs))
        raise Started
        yield

    def fake_init(*args: Any, **kwargs: Any) -> None:
        calls.append(("ray.init", args, kwargs))
        raise Started

    monkeypatch.setattr(run_module, "local_cluster", fake_cluster)
    monkeypatch.setattr(ray, "init", fake_init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    src = tmp_path / "in.csv"
    src.write_text("text\nhi\n", encoding="utf8")
    nlp = spacy.load(model_dir)
    args = (model_dir, src, tmp_path / "out.csv")
    with pytest.raises(Started):
        run_module.predict_distributed(*args, pipeline=nlp, num_workers=2)
    assert calls == [("local_cluster", 3, {"num_gpus": None})]
    calls.clear()
    with pytest.raises(Started):
        run_module.predict_distributed(*args, pipeline=nlp, address="ray://head:10001")
    assert calls == [("ray.init", (), {"address": "ray://head:10001"})]
    with pytest.raises(PredictError, match="must not be empty"):
        run_module.predict_distributed(*args, pipeline=nlp, label_sep="")


def test_csv_safe_parts() -> None:
    from spacy_mtl.workflows.distributed.parts import csv_safe_table

    table = pa.table({"a": ["=1+1", "ok", "-3", None, "@x", "\tq", "a=b"], "n": list(range(7))})
    got = csv_safe_table(table).to_pydict()
    assert got["a"] == ["'=1+1", "ok", "'-3", None, "'@x", "'\tq", "a=b"]
    assert got["n"] == list(range(7))
