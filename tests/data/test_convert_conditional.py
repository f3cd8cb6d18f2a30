"""Conditional groups on the convert side: the spec's `parent: group/label` and
`on_conflict: error | drop`, checked in the spec, per row, in the summary and in the
config that `init-config` writes (the component's rules: tests/test_conditional.py)."""

import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import spacy
import srsly
from conftest import read_docs, rejects_rows, write
from spacy.language import Language
from thinc.api import Config
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.data.convert import ConvertSpec, RowError, SpecError, convert_files, load_spec
from spacy_mtl.schema import GroupSchema
from spacy_mtl.workflows.init_config import (
    InitConfigError,
    groups_from_specs,
    render_config,
)

OFFENSIVE = {"kind": "multiclass", "column": "off", "labels": ["NOT", "OFF"]}
TARGETED = {"kind": "multiclass", "column": "tgt", "labels": ["UNT", "TIN"]}


def hier(targeted: Optional[Dict[str, Any]] = None, **more: Dict[str, Any]) -> Dict[str, Any]:
    """offensive → targeted (where offensive/OFF), with settings of targeted changed."""
    child = {**TARGETED, "parent": "offensive/OFF", **(targeted or {})}
    return {"format": "csv", "groups": {"offensive": OFFENSIVE, "targeted": child, **more}}


def spec_file(tmp_path: Path, data: Dict[str, Any]) -> Path:
    path = tmp_path / "olid.yml"
    srsly.write_yaml(path, data)
    return path


@pytest.fixture(scope="module")
def nlp() -> Language:
    return spacy.blank("en")


# line 2: offensive and targeted; 3: not offensive, untargeted (the conflict);
# 4: offensive, targeted missing; 5: offensive missing, targeted (no conflict).
CSV = "text,off,tgt\nyou idiot,OFF,TIN\nnice day,NOT,UNT\nugh,OFF,\nwho knows,,TIN\n"


# -- the spec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "groups,message",
    [
        (hier({"parent": "offensive"})["groups"], r"`parent` must be a condition .*'offensive'"),
        (hier({"parent": "offensive/"})["groups"], r"`parent` must be a condition"),
        (hier({"parent": "/OFF"})["groups"], r"`parent` must be a condition"),
        (hier({"parent": 3})["groups"], r"`parent` must be a condition .*got 3"),
        (hier({"parent": "targeted/TIN"})["groups"], r"names the group itself"),
        (hier({"parent": "nosuch/x"})["groups"], r"names group 'nosuch', which the spec does"),
        (
            {"targeted": {**TARGETED, "parent": "offensive/OFF"}, "offensive": OFFENSIVE},
            r"names group 'offensive', which comes after it",
        ),
        (
            hier({"parent": "offensive/YES"})["groups"],
            r"names label 'YES', which is not one of the labels of group 'offensive': "
            r"\['NOT', 'OFF'\]",
        ),
        (hier({"on_conflict": "skip"})["groups"], r"`on_conflict` of group 'targeted' must be"),
        (
            {"offensive": {**OFFENSIVE, "on_conflict": "drop"}},
            r"group 'offensive': `on_conflict` is only valid on a conditional group",
        ),
    ],
)
def test_spec_refuses_bad_parents(tmp_path: Path, groups: Dict[str, Any], message: str) -> None:
    path = spec_file(tmp_path, {"format": "csv", "groups": groups})
    with pytest.raises(SpecError, match=message) as err:
        load_spec(path)
    assert str(err.value).startswith(f"Spec {path}: ")
    assert re.search(r"group '(targeted|offensive)'", str(err.value))


def test_spec_keeps_parent_and_on_conflict() -> None:
    spec = ConvertSpec.from_dict(hier({"on_conflict": "drop"}))
    child = spec.group("targeted")
    assert (child.parent, child.condition, child.on_conflict) == (
        "offensive/OFF",
        ("offensive", "OFF"),
        "drop",
    )
    assert spec.group("offensive").parent is None
    assert ConvertSpec.from_dict(hier()).group("targeted").on_conflict == "error"
    schema = spec.schema()
    assert schema is not None
    assert [g.parent for g in schema] == [None, "offensive/OFF"]


def test_from_is_the_source_not_the_parent() -> None:
    """`from` (a derived group) is GroupSpec.source; it sets no condition."""
    spec = ConvertSpec.from_dict(
        hier(
            coarse={
                "kind": "multilabel",
                "from": "offensive",
                "mapping": {"bad": ["OFF"], "ok": ["NOT"]},
                "parent": "offensive/OFF",
            }
        )
    )
    coarse = spec.group("coarse")
    assert (coarse.source, coarse.layout, coarse.parent) == ("offensive", "from", "offensive/OFF")
    assert spec.group("targeted").source is None


def test_parent_label_checked_after_inference(tmp_path: Path) -> None:
    """With the parent's labels left to the data, the condition's label is checked once
    they are inferred: before anything is written."""
    data = write(tmp_path / "olid.csv", CSV)
    inferred = {"kind": "multiclass", "column": "off"}
    bad = hier({"parent": "offensive/YES"})
    bad["groups"]["offensive"] = inferred
    spec = ConvertSpec.from_dict(bad, source="olid.yml")  # labels unknown: loads
    with pytest.raises(SpecError, match=r"Spec olid.yml: .*names label 'YES'.*: \['NOT', 'OFF'\]"):
        convert_files([data], tmp_path / "out", spec)
    assert not (tmp_path / "out").exists()
    good = hier()
    good["groups"]["offensive"] = inferred
    summary = convert_files([data], tmp_path / "ok", ConvertSpec.from_dict(good), on_error="skip")
    assert summary.inferred_labels == {"offensive": ["NOT", "OFF"]}
    assert summary.rows_rejected == 1


# -- rows ------------------------------------------------------------------------------------


def test_conflict_is_a_row_error_with_file_and_line(tmp_path: Path) -> None:
    data = write(tmp_path / "olid.csv", CSV)
    with pytest.raises(RowError) as err:
        convert_files([data], tmp_path / "out", ConvertSpec.from_dict(hier()))
    assert (err.value.line, err.value.column) == (3, "tgt")
    assert str(err.value).startswith(f"{data}:3: column 'tgt': group 'targeted' is annotated")
    assert "'offensive/OFF' does not hold" in str(err.value)
    assert "group 'offensive' is 'NOT'" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_conflict_rejected_in_skip_mode(tmp_path: Path, nlp: Language) -> None:
    data = write(tmp_path / "olid.csv", CSV)
    summary = convert_files(
        [data], tmp_path / "out", ConvertSpec.from_dict(hier()), on_error="skip"
    )
    assert (summary.rows_read, summary.docs_written, summary.rows_rejected) == (4, 3, 1)
    [reject] = rejects_rows(summary.rejects)  # type: ignore[arg-type]
    assert (reject["line"], reject["column"], reject["content"]) == ("3", "tgt", "nice day,NOT,UNT")
    texts = [doc.text for doc in read_docs(nlp, summary.files)]
    assert texts == ["you idiot", "ugh", "who knows"]


def test_multilabel_parent_conflict_only_where_the_label_is_0(tmp_path: Path) -> None:
    """A multilabel parent: the label 0 is a conflict; that label missing (an empty cell
    of its column) is not."""
    child = {"kind": "multiclass", "column": "team", "labels": ["home", "away"]}
    spec = ConvertSpec.from_dict(
        {
            "format": "csv",
            "groups": {
                "topic": {"kind": "multilabel", "columns": ["sport", "news"]},
                "team": {**child, "parent": "topic/sport"},
            },
        }
    )
    data = write(
        tmp_path / "t.csv",
        "text,sport,news,team\nmatch,1,0,home\nvote,,1,away\nelection,0,1,home\n",
    )
    summary = convert_files([data], tmp_path / "out", spec, on_error="skip")
    [reject] = rejects_rows(summary.rejects)  # type: ignore[arg-type]
    assert (reject["line"], reject["column"]) == ("4", "team")
    assert "'topic/sport' is 0" in reject["reason"]
    assert summary.docs_written == 2


def test_drop_keeps_the_row_without_the_child_and_counts_it(tmp_path: Path, nlp: Language) -> None:
    data = write(tmp_path / "olid.csv", CSV)
    spec = ConvertSpec.from_dict(hier({"on_conflict": "drop"}))
    summary = convert_files([data], tmp_path / "out", spec)
    assert (summary.rows_read, summary.docs_written, summary.rows_rejected) == (4, 4, 0)
    assert summary.corpora[0].conflicts_dropped == {"targeted": 1}
    assert summary.conflicts_dropped == {"targeted": 1}
    [note] = [w for w in summary.warnings if "on_conflict: drop" in w]
    assert "olid: group 'targeted': 1 rows had its labels dropped" in note
    cats = {doc.text: doc.cats for doc in read_docs(nlp, summary.files)}
    assert cats["nice day"] == {"offensive/NOT": 1.0, "offensive/OFF": 0.0}
    assert summary.corpora[0].annotated["all"] == {"offensive": 3, "targeted": 2}


def test_drop_counted_once_with_split(tmp_path: Path) -> None:
    """--split parses every row twice; a dropped row is counted once."""
    rows = "".join(f"t{i},NOT,TIN\n" if i % 4 == 0 else f"t{i},OFF,UNT\n" for i in range(40))
    data = write(tmp_path / "olid.csv", "text,off,tgt\n" + rows)
    spec = ConvertSpec.from_dict(hier({"on_conflict": "drop"}))
    summary = convert_files([data], tmp_path / "out", spec, split="train=0.5,dev=0.5")
    assert summary.docs_written == 40
    assert summary.conflicts_dropped == {"targeted": 10}
    annotated = sum(summary.corpora[0].annotated[s]["targeted"] for s in ("train", "dev"))
    assert annotated == 30


def test_drop_leaves_a_derived_group_of_the_child_missing(tmp_path: Path, nlp: Language) -> None:
    """A dropped group is missing in the row, for what is derived from it too."""
    spec = ConvertSpec.from_dict(
        hier(
            {"on_conflict": "drop"},
            tin={
                "kind": "multilabel",
                "from": "targeted",
                "mapping": {"yes": ["TIN"], "no": ["UNT"]},
            },
        )
    )
    data = write(tmp_path / "olid.csv", "text,off,tgt\na,NOT,TIN\nb,OFF,TIN\n")
    summary = convert_files([data], tmp_path / "out", spec)
    cats = [doc.cats for doc in read_docs(nlp, summary.files)]
    assert cats[0] == {"offensive/NOT": 1.0, "offensive/OFF": 0.0}
    assert cats[1]["tin/yes"] == 1.0


def test_round_trip_csv_to_cats(tmp_path: Path, nlp: Language) -> None:
    data = write(tmp_path / "olid.csv", CSV.replace("nice day,NOT,UNT", "nice day,NOT,"))
    summary = convert_files([data], tmp_path / "out", ConvertSpec.from_dict(hier()))
    assert summary.files == [tmp_path / "out" / "olid.spacy"]
    docs = read_docs(nlp, summary.files)
    off = {"offensive/NOT": 0.0, "offensive/OFF": 1.0}
    assert [(doc.text, doc.cats) for doc in docs] == [
        ("you idiot", {**off, "targeted/UNT": 0.0, "targeted/TIN": 1.0}),
        ("nice day", {"offensive/NOT": 1.0, "offensive/OFF": 0.0}),
        ("ugh", off),
        ("who knows", {"targeted/UNT": 0.0, "targeted/TIN": 1.0}),
    ]
    assert summary.schema is not None and summary.schema["targeted"].parent == "offensive/OFF"


def test_cli_prints_the_dropped_rows(tmp_path: Path) -> None:
    data = write(tmp_path / "olid.csv", CSV)
    spec = spec_file(tmp_path, hier({"on_conflict": "drop"}))
    result = CliRunner().invoke(
        app, ["convert", str(data), str(tmp_path / "out"), "--spec", str(spec)]
    )
    assert result.exit_code == 0, result.output
    assert "group 'targeted': 1 rows kept without its labels" in result.output


# -- init-config ------------------------------------------------------------------------------


def _groups_block(text: str) -> Dict[str, Dict[str, Any]]:
    return Config().from_str(text)["components"]["mtl_textcat"]["groups"]


def test_init_config_writes_parent(tmp_path: Path) -> None:
    spec = spec_file(tmp_path, hier({"on_conflict": "drop"}))
    text = render_config(groups_from_specs([spec]))
    block = text.split("[components.mtl_textcat.groups.targeted]\n", 1)[1].split("\n\n")[0]
    assert block.endswith('weight = 1.0\nparent = "offensive/OFF"')
    groups = _groups_block(text)
    assert "parent" not in groups["offensive"]
    assert groups["targeted"]["parent"] == "offensive/OFF"
    schema = GroupSchema.from_config(groups)
    assert schema.names == ["offensive", "targeted"]
    assert schema["targeted"].condition == ("offensive", "OFF")
    assert schema["targeted"].labels == ("UNT", "TIN")


def test_init_config_needs_the_parent_among_the_groups_kept(tmp_path: Path) -> None:
    spec = spec_file(tmp_path, hier())
    with pytest.raises(InitConfigError, match=r"'targeted' is conditional on 'offensive/OFF'"):
        groups_from_specs([spec], only=["targeted"])
    kept: List[str] = [g.name for g in groups_from_specs([spec], only=["offensive"])]
    assert kept == ["offensive"]


def test_init_config_refuses_two_parents_for_one_group(tmp_path: Path) -> None:
    first = spec_file(tmp_path, hier())
    other = tmp_path / "other.yml"
    srsly.write_yaml(
        other,
        {
            "format": "csv",
            "groups": {"offensive": OFFENSIVE, "targeted": TARGETED},
        },
    )
    with pytest.raises(InitConfigError, match=r"parent 'offensive/OFF' in .* and None in"):
        groups_from_specs([first, other])
