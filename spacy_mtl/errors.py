"""The core's exception and warning classes, and the message templates (`Errors`) of the
schema (E0xx), the gold reader (E1xx), convert (E2xx) and model loading (E3xx).

The workflows (predict, distributed, distill, tune, report) and the small helper modules
word their messages where they raise them, with their own exception class where they need
one (`PredictError`, `ConvertError`). Either way, each message names what is at fault (file,
row, doc, group, label) and what to do about it.
"""

from typing import Any


class MTLWarning(UserWarning):
    """A warning from spacy_mtl (the test suite turns these into errors)."""


class SchemaError(ValueError):
    """A label-group schema is not valid."""


class GoldError(ValueError):
    """A doc's gold `doc.cats` does not fit the component's schema."""


class ComponentError(ValueError):
    """The pipeline has no such `mtl_textcat` component (or more than one to choose from)."""


class ModelLoadError(ValueError):
    """A pipeline cannot be loaded: names the model folder, the file at fault and the problem.

    folder (str): The model folder (or package name).
    file (Optional[str]): The damaged or missing file, relative to the folder; None when no
        single file is at fault.
    problem (str): What is wrong, on one line.
    """

    def __init__(self, folder: Any, file: Any, problem: str) -> None:
        self.folder = str(folder)
        self.file = None if file is None else str(file)
        self.problem = " ".join(str(problem).split())
        where = self.folder if self.file is None else f"{self.folder}: {self.file}"
        super().__init__(f"Cannot load the model {where}: {self.problem}")

    def __reduce__(self) -> Any:
        return (type(self), (self.folder, self.file, self.problem))


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
    E015 = (
        "Group name {group!r}: an empty group name (or not a string). A group needs a "
        "non-empty name: the part of its doc.cats keys before '/'."
    )
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
    E013 = "Group {group!r}: `reduction` must be 'doc' or 'pair', got {value!r}."
    E014 = "Group {group!r}: class offset for {label!r} must be a finite number, got {value!r}."
    E017 = (
        "Group {group!r}: `parent` must be a condition '{{group}}/{{label}}' (the group "
        "applies only where that group's label is that one), got {value!r}."
    )
    E018 = "Group {group!r}: `parent` {parent!r} names the group itself."
    E019 = (
        "Group {group!r}: its parent group in {parent!r} {problem} (groups in order: "
        "{groups}). A parent must be defined before its children, which also rules out cycles."
    )
    E020 = (
        "Group {group!r}: `parent` names label {label!r}, which is not one of group "
        "{parent!r}'s labels {labels}."
    )
    E016 = (
        "{name!r} has no `groups` in its config and none of the training examples has a "
        "'{{group}}/{{label}}' key in doc.cats to infer them from. Add the groups to the "
        "config ([components.{name}.groups.<group>] with kind and labels) or check the corpus."
    )

    # gold
    E101 = (
        "Doc {doc}: key {key!r} in doc.cats has no '/'. spacy_mtl expects "
        "'{{group}}/{{label}}' keys, e.g. 'sentiment/positive'."
    )
    E102 = (
        "Doc {doc}: group {group!r} (key {key!r}) is not one of the schema's groups {groups}. "
        "Add it to the component's `groups`, or set the component's `unknown_groups` to "
        '"warn" or "ignore" to skip the cats of groups it does not train.'
    )
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
    E110 = (
        "The pipeline has more than one mtl_textcat component ({names}). One mtl_textcat "
        "predicts all label groups: put every group in one component's `groups`."
    )
    E111 = (
        "{name!r}: its model listens to another component ({listener!r} in model.tok2vec), but "
        "no component before it in the pipeline feeds that listener. Add a `transformer` "
        "(or `tok2vec`) component before {name!r} (`spacy-mtl init-config` writes a complete "
        "config with one), or give [components.{name}.model.tok2vec] its own encoder, "
        "e.g. spacy.Tok2Vec.v2."
    )
    E112 = (
        "Component {name!r}: unknown_groups must be one of {modes}, got {value!r}: 'warn' "
        "skips the doc.cats of groups not in `groups` with one warning, 'ignore' skips them "
        "silently, 'error' stops at the first."
    )

    E113 = (
        "Doc {doc}: group {group!r} is annotated, but its condition {parent!r} is 0 in the "
        "same doc's gold: a conditional group applies only where its parent condition holds. "
        "Fix the data, or drop the group's keys on such docs (convert's `on_conflict: drop`)."
    )

    # convert: `spacy-mtl convert` (spacy_mtl/data/convert/). Documented in docs/convert.md.
    # Spec errors (the spec file itself is wrong).
    E201 = "Spec {spec}: expected a mapping of settings at the top level, got {value!r}."
    E202 = "Spec {spec}: unknown setting(s) {keys}{where}. Known: {known}."
    E203 = "Spec {spec}: `{key}`{where} must be {expected}, got {value!r}."
    E204 = "Spec {spec}: format {value!r} is not known. Use one of {known}."
    E205 = (
        "Spec {spec}: group {group!r} needs exactly one of `column` (labels in one cell), "
        "`columns` (one 0/1 column per label) or `from` (derived from another group); "
        "got {given}."
    )
    E206 = "Spec {spec}: group {group!r}: `{key}` is only valid {where}."
    E207 = (
        "Spec {spec}: group {group!r}: `from: {source}` names no group defined above it "
        "(groups so far: {groups})."
    )
    E208 = (
        "Spec {spec}: group {group!r}: the mapping does not cover label(s) {labels} of group "
        "{source!r}. Every source label must map to at least one label, e.g. add "
        "`neutral: [neutral]`."
    )
    E209 = (
        "Spec {spec}: group {group!r}: mapping entry {label!r} lists {value!r}, which is not "
        "a label of group {source!r} {labels}."
    )
    E210 = (
        "Spec {spec}: group {group!r}: label {label!r} of group {source!r} maps to several "
        "labels {targets}, but {group!r} is multiclass: such rows would get two labels."
    )
    E211 = "Spec {spec}: `pattern` {pattern!r} is not a valid regular expression: {error}."
    E212 = (
        "Spec {spec}: `pattern` has no named group for the text column {text!r}; add one, "
        "e.g. (?P<{text}>.*)."
    )
    E213 = (
        "Spec {spec}: group {group!r}: cell value {value!r} is listed twice in `labels` "
        "(keys are compared as strings, so YAML 1 and '1' are the same value)."
    )
    E214 = "Spec {spec}: `encoding` {encoding!r} {why}."
    E215 = "Spec {spec}: {error}"
    E216 = (
        "Spec {spec}: `labels_file` pairs a one-text-per-line file with a label file, so "
        "`format` must be 'lines', got {format!r}."
    )
    # Input, output and option errors.
    E220 = (
        "--split {value!r}: {problem}. Write it as train=0.8,dev=0.1,test=0.1 (names of "
        "letters, digits, '_' or '-'; positive fractions that sum to 1)."
    )
    E221 = (
        "{path}: cannot tell the format from the file name; set `format` in the spec to one "
        "of {known}."
    )
    E222 = (
        "{path}: a {format} file without a header row needs column names: give them with "
        "`columns` in the spec."
    )
    E223 = (
        "Output name {name!r} comes from two inputs ({first} and {second}); give --name to "
        "combine them into one corpus, or convert them separately."
    )
    E224 = "Output name {name!r} is not usable: {why}."
    E225 = "{path}: labels file {labels} does not exist (from `labels_file` in the spec)."
    E226 = "on_error must be 'fail' or 'skip', got {value!r}."
    E227 = (
        "A rejects file is only written with --on-error skip (with 'fail' the first bad row "
        "stops the conversion); use --on-error skip or leave out --rejects."
    )
    E228 = (
        "{path}: DocBin could not serialize {n:,} docs (the data is too large for one file); "
        "use a smaller --shard-size."
    )
    E229 = "Language {lang!r} could not be loaded: {error}"
    E230 = "{path}: the input file does not exist."
    E231 = "{n} must be a positive whole number, got {value!r}."
    E232 = (
        "{name}: the inputs gave different rows on the second pass of --split; were they "
        "changed while converting?"
    )
    E233 = "{path}: the output folder is a file; give a folder."
    # File errors: the whole file is unusable, so they stop the conversion even in skip mode.
    E235 = "{loc}: column {column!r}: not in the header. The file's columns are {columns}."
    E236 = (
        "{loc}: column name {column!r} appears more than once in the header; rename it in the "
        "file, or name the columns with `columns` and `header: true` in the spec."
    )
    E237 = "{loc}: the header has {n} columns but the spec's `columns` names {m}: {columns}."
    E238 = (
        "{loc}: column {column!r}: not produced by this file: a '{format}' file gives the "
        "columns {columns}."
    )
    # Row errors: `{file}:{line}: column {column!r}: {reason}`; one bad row, skippable.
    E240 = "{file}:{line}: column {column!r}: {reason}"
    E241 = "{file}:{line}: {reason}"
    E242 = (
        "unknown label value {value!r}; known values: {known}. A value that marks a missing "
        "label goes in the spec's `missing_values:`."
    )
    E243 = "{n} labels {labels} in one cell, but group {group!r} is multiclass (exactly one label)."
    E244 = "empty text."
    E245 = (
        "bytes {data} at position {pos} of the line are not valid {encoding}; if the file is "
        "in another encoding, name it in the spec's `encoding:` (e.g. cp1252)."
    )
    E246 = "missing: the row has {n} fields, expected {m} ({columns})."
    E247 = (
        "the row has {n} fields, expected {m} ({columns}); a field that contains the "
        "delimiter {sep!r} needs quotes."
    )
    E248 = "invalid JSON: {error}."
    E249 = "expected one JSON object per line, got {kind}."
    E250 = "missing: the object has no key {column!r} (use null to mark a label as missing)."
    E251 = "the line does not match the pattern {pattern!r}."
    E252 = (
        "value {value!r} is not 0 or 1 (a one-column-per-label group needs 0 or 1, or an "
        "empty cell for a missing label)."
    )
    E253 = "no line {line} in the labels file {labels}: it has {n} lines, fewer than the texts."
    E254 = "no line {line} in the text file {text}: the labels file has more lines."
    E255 = (
        "group {group!r}: labels {labels} of group {source!r} map to {n} labels {targets}, but "
        "{group!r} is multiclass."
    )
    E256 = (
        "group {group!r}: group {source!r} has no positive label here, so multiclass group "
        "{group!r} would get none."
    )
    E257 = (
        "group {group!r} is multiclass but {n} of its columns are 1 ({labels}); exactly one "
        "must be 1, or all empty to mark the group missing."
    )
    E258 = (
        "group {group!r} is partly annotated: {missing} empty, {present} not. A multiclass "
        "group is annotated in all its columns or in none."
    )
    E259 = "no label (an empty list) for multiclass group {group!r}; use null to mark it missing."
    E260 = "a {kind} is not a label value; use a string, a number or a list of them."
    E261 = "the text must be a string, got {value!r}."
    E262 = "the row cannot be parsed: {error}."
    E263 = "the text is {n:,} characters long, more than nlp.max_length ({limit:,})."
    # Issue 29 (reliability 2): hostile JSON, OS errors, patterns that never finish.
    E264 = (
        "invalid JSON: {what}, more than Python's parser reads; a label value is a string, "
        "a number or a flat list."
    )
    E265 = (
        "key {key!r} appears twice in the JSON object; each key may appear once (a JSON "
        "parser would silently keep the last value)."
    )
    E266 = "{path}: cannot read the file: {cause}."
    E267 = "{path}: cannot write {what}: {cause}."
    E268 = "{path}: the input is {kind}, not a regular file; {fix}."
    E269 = (
        "Spec {spec}: `pattern` {pattern!r} has {shape}: on a line that does not match, "
        "such a pattern can take exponential time. Inside a repeated group, use only "
        "fixed-length items (e.g. '(\\d{{3}},)+'), or match the rest of the line with "
        "'(?P<text>.*)'."
    )
    # Reliability 3: a row error, in one of the numbers left free above.
    E234 = (
        "the number {number} is too large for a float: it would be read as infinity. Write "
        "it as a string if it is a label, or fix the value."
    )
    E239 = (
        "the pattern {pattern!r} was stopped after {limit:g} s of CPU time on this line: it "
        "backtracks, trying ever more ways to split a line it does not match (e.g. "
        "'[^,]*[^;]*' or '.*.*', whose parts can take the same characters). Make the "
        "parts exclude each other (e.g. '(?P<label>[^\\t]*)\\t(?P<text>.*)'), or use a "
        "CSV, TSV or JSONL file."
    )
    # Issue 15 (reliability): inputs and outputs, cells and specs that used to slip through.
    E270 = (
        "{what} {path} is an input ({input}): writing it would replace the input. Give "
        "another path."
    )
    E271 = "{path}: the input is a folder, not a file. Give the data files in it."
    E272 = "{path}: labels file {labels} is a folder, not a file (from `labels_file` in the spec)."
    E273 = "The rejects file {path} is a folder; give a file name, e.g. {path}/rejects.csv."
    E274 = (
        "a lone surrogate {char!r} at position {pos}: not valid Unicode (half of a UTF-16 "
        "pair), so it cannot be stored."
    )
    E275 = (
        "{value} (NaN) is not a label value; list {value!r} in the spec's `missing_values` to "
        "read it as missing."
    )
    E276 = "Spec {spec}: duplicate key {key!r}; each key may appear once (JSON keeps the last)."
    E278 = "The rejects file {path} has the name of a corpus file of this run; give another name."
    E277 = (
        "Spec {spec}: {where} {value!r} holds a lone surrogate {char!r}, which is not valid "
        "Unicode."
    )
    # convert: conditional groups (`parent`, `on_conflict`); the component's rules: E017-E020.
    E217 = (
        "Spec {spec}: group {group!r}: `parent` must be a condition '{{group}}/{{label}}' "
        "(the group applies only where that group has that label), got {value!r}."
    )
    E218 = (
        "Spec {spec}: group {group!r}: `parent` {parent!r} {problem} (groups in order: "
        "{groups}). A parent must be a group defined above its children."
    )
    E219 = (
        "Spec {spec}: group {group!r}: `parent` {parent!r} names label {label!r}, which is not "
        "one of the labels of group {source!r}: {labels}."
    )
    E279 = (
        "group {group!r} is annotated, but its parent condition {parent!r} does not hold in "
        "the same row ({found}): a conditional group applies only where its parent's "
        "condition holds. Fix the data, or set `on_conflict: drop` on group {group!r} to "
        "leave its labels out of such rows (the summary counts them)."
    )
    # Notes for the conversion summary (printed by the CLI, kept in ConvertSummary.warnings).
    W201 = (
        "Group {group!r}: labels inferred from the data: {labels}. List them in the spec "
        "(`labels:`) so that every file gets the same keys in the same order."
    )
    W202 = "{name}: split {split!r} got no docs; its file holds an empty DocBin."
    W203 = (
        "{path}: no rows ({why}); it adds no docs to the corpus {name!r}. Check that it is "
        "the file you meant."
    )
    W204 = (
        "{name}: group {group!r}: {n:,} rows had its labels dropped (`on_conflict: drop`): "
        "they were annotated where its parent condition {parent!r} does not hold. The rows "
        "are kept without the group's keys (missing)."
    )
    W205 = (
        "Group {group!r}: the inferred labels {values} differ only in case and are kept as "
        "{n} labels. If they are one label, list the group's labels in the spec as a value "
        "map that sends each spelling to it (`labels: {{{first}: {label}, {second}: "
        "{label}, ...}}`), or write the cells one way."
    )
    # convert: `join` (other files' columns) and `threshold` (soft scores).
    E280 = "Spec {spec}: join {n} ({path}): {problem}"
    E281 = (
        "Spec {spec}: join {n} ({path}): column {column!r} is also a column of {other}. Only "
        "the join's `key` (or `check`) may be in both; rename the column with `columns` in "
        "the join."
    )
    E282 = (
        "Spec {spec}: group {group!r}: `threshold` is only valid for a multilabel group with "
        "`columns`, or a multiclass group with `column` and a list of exactly two `labels` "
        "(a score >= threshold takes the second); {why}."
    )
    E283 = "{path}: joined file {joined} does not exist (from `join` in the spec)."
    E284 = (
        "{file}:{line}: column {column!r}: key {key!r} is also on line {first}. A joined "
        "file's keys must be unique (which row would the input's row get?)."
    )
    E285 = (
        "key {key!r} matches no row of {input} (a joined row must belong to an input row; "
        "input rows rejected before the join match nothing)."
    )
    E286 = (
        "the joined file has more rows than {input}: this is its row {n}, and a join by row "
        "position needs at most as many rows as the input."
    )
    E287 = (
        "{value!r} is not {other!r} of {input}:{line}, even after NFKC normalisation and "
        "whitespace collapsing: the files are out of step."
    )
    E288 = "empty key: a joined row needs a key."
    E289 = "value {value!r} is not a number in [0, 1] (group {group!r} reads soft scores)."
    # convert from a pandas DataFrame (`convert_dataframe`): rows are named by index label.
    E290 = "row {row!r}, column {column!r}: {reason}"
    E291 = "row {row!r}: {reason}"
    E292 = (
        "The DataFrame has no column {column!r}, which the spec {spec} reads; its columns "
        "are {columns}."
    )
    E293 = (
        "Spec {spec}: `{key}` does not apply to a DataFrame: {why}. Leave it out of the "
        "spec you convert the frame with ({fix})."
    )
    E294 = (
        "The DataFrame has {n} columns named {column!r} (as strings); the spec's columns "
        "must be unique: rename them."
    )
    E295 = "convert_dataframe takes a pandas DataFrame, got {kind}."
    E296 = (
        "the line is {n:,} characters long; `pattern` is applied to lines of at most "
        "{limit:,} characters (a regular expression can take very long on longer lines). Use "
        "a CSV, TSV or JSONL file for longer texts."
    )
    E297 = (
        "Spec {spec}: group {group!r}: label value {value!r} {why}, so no cell can ever "
        "match it; {fix}."
    )
    E298 = (
        "Group {group!r}: the inferred label values {values} are the same number written in "
        "different ways; list the labels in the spec (`labels:`) so that each value is read "
        "as one of them, or write the cells one way."
    )
    E299 = (
        "line {line} looks like a header row (its cells {cells} are the `columns` names), but "
        "the spec reads this file without one; set `header: true` (with `columns`, the "
        "header's names are replaced by them)."
    )

    # model folders and components
    E301 = (
        "The weights were saved for other output columns than `cfg` describes: {diff}. "
        "The cfg was edited or swapped after training; restore it, or retrain."
    )
    E302 = (
        "The pipeline has no component {name!r} (components: {names}); name the "
        "mtl_textcat component with --component."
    )
    E303 = "Component {name!r} is a {type}, not an mtl_textcat component."
    E304 = "The pipeline has no mtl_textcat component (components: {names})."
    E305 = "The pipeline has several mtl_textcat components ({names}); choose one with --component."

    # warnings
    W001 = (
        "No training example is annotated for group {group!r}: its head will not learn. "
        "Check the corpus or the doc.cats keys ('{group}/<label>')."
    )
    W002 = (
        "{name!r} has no `groups` in its config, so initialize inferred {n} from the training "
        "examples' doc.cats: {groups}. A group is multiclass when every doc annotated for it "
        "has exactly one positive label, else multilabel. If a kind is wrong (e.g. a "
        "multilabel group whose docs happen to have one label each), write the groups into "
        "the config: [components.{name}.groups.<group>] with kind and labels; "
        "`spacy-mtl init-config --from-corpus` writes them for you."
    )
    W010 = (
        "Component {name!r}: skipped the doc.cats of {n} group(s) not in its `groups` "
        "({where}): {groups}. To train a group, add it to `groups` in [components.{name}]; "
        'to silence this, set `unknown_groups = "ignore"` there ("error" stops instead).'
    )


def format_labels(labels: Any) -> str:
    return "[" + ", ".join(repr(label) for label in labels) + "]"
