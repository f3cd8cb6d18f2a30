"""Every entry point in pyproject.toml resolves to what spaCy's registries hand out."""

import importlib
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import spacy_transformers  # noqa: F401  (adds registry.span_getters)
from spacy.util import registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PYPROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
DECLARED = PYPROJECT["project"]["entry-points"]
REGISTRIES = {
    "spacy_factories": "factories",
    "spacy_architectures": "architectures",
    "spacy_scorers": "scorers",
    "spacy_misc": "misc",
    "spacy_loggers": "loggers",
    "spacy_batchers": "batchers",
    "spacy_readers": "readers",
    "thinc_schedules": "schedules",
    "spacy_span_getters": "span_getters",  # added to spaCy's registry by spacy-transformers
}


@pytest.mark.parametrize(
    "group,name,target",
    [(g, n, t) for g, items in DECLARED.items() if g in REGISTRIES for n, t in items.items()],
)
def test_entry_point_resolves(group: str, name: str, target: str) -> None:
    installed = {ep.name: ep.value for ep in entry_points(group=group)}
    assert installed.get(name) == target, "reinstall the package: pip install -e ."
    module_name, attr = target.split(":")
    function = getattr(importlib.import_module(module_name), attr)
    if group == "spacy_factories":
        from spacy.language import Language

        assert Language.has_factory(name)
        assert Language.get_factory_meta(name).factory == name
        assert registry.factories.get(name) is function
    else:
        assert getattr(registry, REGISTRIES[group]).get(name) is function


def test_every_registered_name_has_an_entry_point() -> None:
    import spacy_mtl.architectures
    import spacy_mtl.pipeline
    import spacy_mtl.scorer
    import spacy_mtl.teacher
    import spacy_mtl.training.batchers
    import spacy_mtl.training.logger
    import spacy_mtl.trf.span_getters
    import spacy_mtl.util  # noqa: F401

    for group, reg in REGISTRIES.items():
        ours = [n for n in getattr(registry, reg).get_all() if n.startswith(("spacy-mtl.", "mtl_"))]
        for name in ours:
            assert name in DECLARED.get(group, {}), f"{name} is registered but has no entry point"


def test_factory_without_importing_the_package(tmp_path: Path) -> None:
    """`spacy.blank` + add_pipe resolve through the entry point alone (no import spacy_mtl),
    and loading the component loads no workflow, data or CLI module."""
    import subprocess

    code = (
        "import sys, spacy\n"
        "nlp = spacy.blank('en')\n"
        "nlp.add_pipe('mtl_textcat', config={'groups': {'a': {'kind': 'multiclass', "
        "'labels': ['x', 'y']}}})\n"
        "print(nlp.pipe_names, 'spacy_mtl.pipeline' in sys.modules)\n"
        # The core loads none of the layers above it (workflows, data, CLI).
        "layers = ('spacy_mtl.workflows', 'spacy_mtl.data', 'spacy_mtl.cli',"
        " 'spacy_mtl.trf.batching')\n"
        "print(sorted(m for m in sys.modules if m.startswith(layers)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip().splitlines() == ["['mtl_textcat'] True", "[]"]
