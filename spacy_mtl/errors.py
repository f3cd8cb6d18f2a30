"""Every error and warning spacy_mtl raises, in one place.

Each message names what is at fault (file, row, doc, group, label) and what to do about it.
"""

from typing import Any


class MTLWarning(UserWarning):
    """A warning from spacy_mtl (the test suite turns these into errors)."""


class SchemaError(ValueError):
    """A label-group schema is not valid."""


class GoldError(ValueError):
    """A doc's gold `doc.cats` does not fit the component's schema."""


def doc_start(text: str, width: int = 40) -> str:
    """Short, printable start of a doc's text for error messages."""
    text = " ".join(text.split())
    return repr(text if len(text) <= width else text[:width] + "…")


class Errors:
    """Message templates. Fill with `.format(**fields)`."""

    E001 = (
        "Group {group!r}: unknown kind {kind!r}. Use 'multiclass' (exactly one label, "
        "softmax) or 'multilabel' (any number of labels, sigmoid)."
    )
    E002 = "Group name {group!r} may not contain '/' (it separates group and label in doc.cats)."
    E003 = "Group {group!r}: label {label!r} is listed more than once."
    E004 = (
        "Group {group!r} has no labels. Give `labels` in the config, or provide training "
        "examples whose doc.cats contain '{group}/<label>' keys so they can be inferred at "
        "initialize."
    )
    E005 = "Group {group!r}: {field} must be a positive number, got {value!r}."
    E006 = (
        "Group {group!r}: {field} names label {label!r}, which is not in the group's "
        "labels {labels}."
    )
    E007 = "Group {group!r}: {field} is only valid for {kind} groups."
    E008 = "Group {group!r}: unknown setting(s) {keys}. Known: {known}."
    E009 = "Group {group!r}: threshold for {label!r} must be in [0, 1], got {value!r}."
    E010 = "The schema has no groups. Add at least one group to `groups` in the config."
    E011 = "Group {group!r}: `labels` must be a list of strings, got {value!r}."
    E012 = "Group {group!r}: `kind` is required (multiclass or multilabel)."

    # gold
    E101 = (
        "Doc {doc}: key {key!r} in doc.cats has no '/'. spacy_mtl expects "
        "'{{group}}/{{label}}' keys, e.g. 'sentiment/positive'."
    )
    E102 = "Doc {doc}: group {group!r} (key {key!r}) is not one of the schema's groups {groups}."
    E103 = (
        "Doc {doc}: group {group!r} has no label {label!r} (known: {labels}). Add it to the "
        "group's labels or fix the data."
    )
    E104 = (
        "Doc {doc}: value {value!r} for {key!r} must be exactly 1.0 or 0.0 in gold "
        "annotation. Soft targets are not supported as gold."
    )
    E105 = (
        "Doc {doc}: multiclass group {group!r} has {n} positive labels {labels}; it needs "
        "exactly one (or no key of the group at all, to mark it missing)."
    )
    E106 = (
        "Doc {doc}: multiclass group {group!r} has keys {labels} but none is 1.0. Give exactly "
        "one positive label, or leave the group's keys out to mark it missing."
    )
    E107 = (
        "The component's model has {n_model} outputs but the schema has {n_schema} labels. "
        "Labels cannot be added after the model is initialized; re-run initialize."
    )
    E108 = (
        "initialize(labels=...) got {value!r}; expected a dict {{group: [labels]}} as written "
        "by `spacy init labels` (the component's label_data)."
    )
    E109 = "Pooling {pooling!r} is not known; use one of {known}."

    # warnings
    W001 = (
        "No training example is annotated for group {group!r}: its head will not learn. "
        "Check the corpus or the doc.cats keys ('{group}/<label>')."
    )


def format_labels(labels: Any) -> str:
    return "[" + ", ".join(repr(label) for label in labels) + "]"
