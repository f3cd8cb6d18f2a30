"""Loading a pipeline and finding its `mtl_textcat` components: one way for every workflow.

- `load_pipeline`: a folder or installed package, on GPU if asked; any failure becomes one
  `ModelLoadError` naming the folder, the damaged or missing file and what is wrong. Torch
  weights are read with `weights_only=True` (`spacy_mtl.trf.safe_load`): a crafted folder
  cannot run code as it loads, whatever TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD says.
- `find_component` / `mtl_component_names`: the component(s) a workflow works on.
- `docs_before`: docs run through the components before ours (its listener's transformer),
  not through ours or the ones after.
"""

import pickle
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Config

from ..errors import ComponentError, Errors, ModelLoadError
from ..pipeline import MultiGroupTextCategorizer

PathLike = Union[str, Path]


def load_pipeline(model: Union[PathLike, Language], gpu_id: int = -1) -> Language:
    """A pipeline: `model` itself if it is one, else `spacy.load` of a folder or package.

    model (Union[str, Path, Language]): A pipeline folder, an installed package's name, or a
        loaded pipeline (returned as it is).
    gpu_id (int): GPU to load onto; -1 for CPU.
    RETURNS (Language): The pipeline.
    RAISES ModelLoadError: No such folder or package, or a file in the folder is damaged
        (its name and the problem in the message), or its torch weights hold more than
        weights (code that would run as they load).
    """
    if isinstance(model, Language):
        return model
    from ..trf.safe_load import weights_only_loads

    with weights_only_loads():
        return _load(model, gpu_id)


def _load(model: PathLike, gpu_id: int) -> Language:
    import spacy

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    path = Path(model)
    if not path.exists():
        if spacy.util.is_package(str(model)):
            return spacy.load(str(model))
        raise ModelLoadError(model, None, "no such folder or installed pipeline package")
    if not path.is_dir():
        raise ModelLoadError(model, None, "not a folder (a pipeline is saved as a folder)")
    problem = _check_folder(path)
    if problem is not None:
        raise ModelLoadError(path, *problem)
    try:
        return spacy.load(path)
    except ModelLoadError:
        raise
    except Exception as err:
        file, what = _diagnose(path, err)
        refused = _refused_pickle(err)
        raise ModelLoadError(path, file, refused or what) from err


# torch's weights-only unpickler names what it refused: "Unsupported global: GLOBAL x.y".
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL (\S+)|Unsupported operand (\S+)")


def _refused_pickle(err: BaseException) -> Optional[str]:
    """The problem of torch weights that `torch.load(weights_only=True)` refused: a
    pickle that would build objects other than tensors (or run code) as it loads."""
    seen: Optional[BaseException] = err
    while seen is not None and not isinstance(seen, pickle.UnpicklingError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    found = _UNSUPPORTED.search(str(seen))
    what = f" ({found.group(1) or found.group(2)})" if found else ""
    return (
        f"its torch weights hold more than weights: a pickle that would call a function{what} "
        "as it loads, which may run code. spacy-mtl loads weights with weights_only=True, "
        "whatever TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD says; use a pipeline from a source you "
        "trust, saved with nlp.to_disk"
    )


def _check_folder(path: Path) -> Optional[Tuple[Optional[str], str]]:
    """(file, problem) of what is missing or unreadable before spaCy reads anything."""
    config_path = path / "config.cfg"
    if not config_path.exists():
        return "config.cfg", "missing (is this a pipeline folder saved with nlp.to_disk?)"
    try:
        config = Config().from_disk(config_path, interpolate=False)
        pipeline = list(config["nlp"]["pipeline"])
        factories = {name: config["components"][name].get("factory") for name in pipeline}
    except Exception as err:
        return "config.cfg", f"not a valid config ({_one_line(err)})"
    # Files nlp.to_disk always writes, which spaCy would silently do without (a missing
    # component cfg would leave the schema of config.cfg, unchecked against the weights).
    required = ["meta.json", "vocab/strings.json"]
    for name, factory in factories.items():
        if factory == "mtl_textcat":
            required += [f"{name}/cfg", f"{name}/model"]
    for file in required:
        if not (path / file).is_file():
            return file, "missing (a pipeline folder saved with nlp.to_disk has it)"
    for file in ("meta.json", *(f"{name}/cfg" for name in factories)):
        if (path / file).is_file():
            problem = _read_problem(path / file)
            if problem:
                return file, problem
    return None


def _diagnose(path: Path, err: Exception) -> Tuple[Optional[str], str]:
    """The damaged file (relative to the folder) and what is wrong with it; (None, the
    error) if no file can be blamed."""
    missing = getattr(err, "filename", None)
    if isinstance(err, OSError) and missing:
        return _relative(Path(missing), path), "missing"
    reading = _file_being_read(err)
    if reading is not None and not reading.exists():
        return _relative(reading, path), "missing"
    if reading is not None and reading.is_file():
        problem = _read_problem(reading)
        return _relative(reading, path), problem or f"cannot be read ({_describe(err)})"
    # A folder being read (spaCy's vocab reads its files itself), or no frame found: the
    # first file in it that is not valid in its format.
    folder = reading if reading is not None else path
    for found in sorted(p for p in folder.rglob("*") if p.is_file()):
        problem = _read_problem(found)
        if problem:
            return _relative(found, path), problem
    if reading is not None:
        return _relative(reading, path), f"cannot be read ({_describe(err)})"
    return None, _describe(err)


def _relative(file: Path, folder: Path) -> str:
    try:
        return str(file.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(file)


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {_one_line(err)}"


def _file_being_read(err: BaseException) -> Optional[Path]:
    """The file spaCy was reading when `err` was raised: every `from_disk` of spaCy reads
    its files through `spacy.util.from_disk`, whose frame holds the folder (`path`) and
    the file's name (`key`); the innermost such frame names the file."""
    found: Optional[Path] = None
    tb = err.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "from_disk" and frame.f_globals.get("__name__") == "spacy.util":
            folder, key = frame.f_locals.get("path"), frame.f_locals.get("key")
            if isinstance(folder, Path) and isinstance(key, str):
                found = folder / key
        tb = tb.tb_next
    return found


def _read_problem(file: Path) -> Optional[str]:
    """Why `file` cannot be read in its format (JSON or msgpack), or None."""
    name = file.name
    try:
        if name == "cfg" or name.endswith(".json") or name == "vectors.cfg":
            srsly.read_json(file)
        elif name in ("model", "tokenizer", "key2row") or name.endswith(".bin"):
            srsly.msgpack_loads(file.read_bytes())
        else:
            return None
    except Exception as err:
        kind = "JSON" if name == "cfg" or name.endswith((".json", ".cfg")) else "msgpack"
        return f"damaged or truncated {kind} ({type(err).__name__}: {_one_line(err)})"
    return None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300]


def mtl_component_names(nlp: Language, names: Optional[Sequence[str]] = None) -> List[str]:
    """The given component names, checked to be mtl_textcat components; by default all of
    the pipeline's mtl_textcat components, in pipeline order (at least one)."""
    if names:
        for name in names:
            find_component(nlp, name)
        return list(names)
    found = [name for name, proc in nlp.pipeline if isinstance(proc, MultiGroupTextCategorizer)]
    if not found:
        raise ComponentError(Errors.E304.format(names=nlp.pipe_names))
    return found


def find_component(nlp: Language, name: Optional[str] = None) -> MultiGroupTextCategorizer:
    """The pipeline's mtl_textcat component `name`; with no name, its only one.

    RAISES ComponentError: No such component, not an mtl_textcat, or (name None) none or
        several to choose from.
    """
    if name is None:
        names = mtl_component_names(nlp)
        if len(names) > 1:
            raise ComponentError(Errors.E305.format(names=names))
        name = names[0]
    if name not in nlp.pipe_names:
        raise ComponentError(Errors.E302.format(name=name, names=nlp.pipe_names))
    comp = nlp.get_pipe(name)
    if not isinstance(comp, MultiGroupTextCategorizer):
        raise ComponentError(Errors.E303.format(name=name, type=type(comp).__name__))
    return comp


def docs_before(
    nlp: Language, component: str, texts: Iterable[Union[str, Doc]], *, batch_size: int = 64
) -> Iterator[Doc]:
    """Docs of `texts` run through the components before `component`, in input order.

    What `component` needs to predict (e.g. the transformer its listener reads); neither the
    component itself nor the ones after it run.
    """
    names = nlp.pipe_names
    out: Iterable[Doc] = (text if isinstance(text, Doc) else nlp.make_doc(text) for text in texts)
    for name in names[: names.index(component)]:
        proc: Any = nlp.get_pipe(name)
        out = proc.pipe(out, batch_size=batch_size) if hasattr(proc, "pipe") else map(proc, out)
    return iter(out)
