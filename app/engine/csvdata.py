"""CSV upload parsing for "train on your own data".

``parse_csv`` turns the bytes of an uploaded CSV file into float64 arrays ``X`` (N, p) and
``y`` (N, K), choosing input and target columns by header name. A target column that holds any
non-numeric label is categorical and becomes one-hot columns, one per class (classes sorted).

Every problem raises ``CsvError`` whose message says what is wrong and on which line of the file
(1-based, counting the header and any blank lines), so a student can open the file and fix it:

    line 7 column "x2": "abc" is not a number
    line 9 has 3 cells, the header (line 1) has 4

``.line`` is that line number (None when the problem has no line, e.g. an empty file), ``.field``
says which part of the request is at fault: "file" (the content), "inputs" or "targets" (the
column selection), "standardize" (statistics that are not finite), "one_hot" (labels that are
not integers), ``.column`` the column name when one is involved.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

from .standardize import NotStandardizable, statistics

BOM = "\ufeff"


class CsvError(ValueError):
    """An invalid upload; ``line`` is 1-based (or None), ``field`` is "file", "inputs" or "targets"."""

    def __init__(self, message: str, *, line: int | None = None, field: str = "file", column: str | None = None):
        super().__init__(message)
        self.message, self.line, self.field, self.column = message, line, field, column

    def to_dict(self) -> dict:
        return {"message": self.message, "line": self.line, "field": self.field, "column": self.column}


@dataclass
class CsvData:
    """Parsed data: inputs X (N, p), targets y (N, K) and what each column is."""

    X: np.ndarray
    y: np.ndarray
    input_columns: list[str]
    target_columns: list[str]
    classes: list[str] | None = None      # class names (sorted) of a categorical target, one-hot in y

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])


def standardization(X: np.ndarray, columns: list[str]) -> dict:
    """{"mean", "std"} of every input column (app/engine/standardize.py), or CsvError (field "standardize")
    naming the first column whose statistics are not finite."""
    try:
        return statistics(X)
    except NotStandardizable as e:
        name = columns[e.column]
        raise CsvError(f'column "{name}" cannot be standardized: {e.reason}', field="standardize",
                       column=name) from None


def one_hot_labels(y: np.ndarray, columns: list[str], max_classes: int = 1_000) -> tuple[np.ndarray, list[str]]:
    """Integer class labels y (N, 1) -> (one-hot (N, C), class names): one column per distinct label, in
    numeric order, named by the label ("0", "1", "2"). CsvError (field "one_hot") for more than one
    target column, a label that is not an integer, or more than ``max_classes`` classes."""
    if y.shape[1] != 1:
        raise CsvError(f"one_hot needs a single target column of class labels, but targets are {_names(columns)}",
                       field="one_hot")
    labels = y[:, 0]
    bad = np.nonzero(labels != np.round(labels))[0]
    if bad.size:
        raise CsvError(f'one_hot: column "{columns[0]}" holds {labels[bad[0]]:g} in data row {bad[0] + 1}, '
                       "which is not an integer class label", field="one_hot", column=columns[0])
    values, index = np.unique(labels, return_inverse=True)
    _check_classes(columns[0], len(values), max_classes)
    out = np.zeros((len(labels), len(values)), np.float64)
    out[np.arange(len(labels)), index] = 1.0
    return out, [f"{v:g}" for v in values]


def _check_classes(name: str, count: int, max_classes: int) -> None:
    if count > max_classes:
        raise CsvError(f'column "{name}" has {count} classes; at most {max_classes} are allowed (one target column '
                       "each)", field="targets", column=name)


def parse_csv(content: bytes | str, *, inputs: list[str] | None = None, targets: list[str] | None = None,
              max_rows: int = 100_000, max_columns: int = 1_000, max_classes: int | None = None) -> CsvData:
    """Parse a CSV file with a header row into inputs and targets.

    inputs: header names of the input columns; default every column that is not a target.
    targets: header names of the target columns; default the last column.
    max_classes: most classes a categorical or one-hot target may have (default: max_columns), since
    y gets one column per class.
    """
    max_classes = max_columns if max_classes is None else max_classes
    text = _decode(content)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header, header_line, last_line = None, None, 0
    selected: list[int] = []
    in_idx: list[int] = []
    t_idx: list[int] = []
    cells: list[list[str]] = []   # the selected cells of every data row, as text
    lines: list[int] = []         # the file line each data row starts on
    while True:
        start = last_line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise CsvError(f"line {start}: malformed CSV row ({e})", line=start) from None
        last_line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a fully blank line
        if header is None:
            header, header_line = _check_header(row, start, max_columns), start
            in_idx, t_idx = _select(header, inputs, targets)
            selected = in_idx + t_idx
            continue
        if len(row) != len(header):
            raise CsvError(f"line {start} has {len(row)} cells, the header (line {header_line}) has {len(header)}",
                           line=start)
        if len(cells) >= max_rows:
            raise CsvError(f"line {start}: too many data rows; at most {max_rows} are allowed", line=start)
        cells.append([row[j].strip() for j in selected])
        lines.append(start)
    if header is None:
        raise CsvError("the file is empty: it needs a header row and at least one data row")
    if not cells:
        raise CsvError(f"the file has a header (line {header_line}) but no data rows", line=header_line)

    p = len(in_idx)
    input_columns = [header[j] for j in in_idx]
    target_columns = [header[j] for j in t_idx]
    X = np.empty((len(cells), p), np.float64)
    for k, name in enumerate(input_columns):
        X[:, k] = _numeric_column(cells, lines, k, name)

    classes = None
    categorical = [(k, name, bad) for k, name in enumerate(target_columns, start=p)
                   if (bad := _first_non_number(cells, lines, k, name)) is not None]
    if categorical:
        k, name, (bad_line, bad_text) = categorical[0]
        why = f'column "{name}" is categorical (line {bad_line}: "{bad_text}" is not a number)'
        if len(target_columns) > 1:
            raise CsvError(f"{why}; a categorical target must be the only target column, "
                           f"but targets are {_names(target_columns)}", field="targets", column=name)
        labels = [row[k] for row in cells]
        # an empty label is missing data (refused like an empty input cell), never a class ""
        empty = next((r for r, label in enumerate(labels) if not label.strip()), None)
        if empty is not None:
            raise _cell_error(lines[empty], name, "", None)
        classes = sorted(set(labels))
        _check_classes(name, len(classes), max_classes)
        index = {c: i for i, c in enumerate(classes)}
        y = np.zeros((len(cells), len(classes)), np.float64)
        y[np.arange(len(cells)), [index[c] for c in labels]] = 1.0
    else:
        y = np.empty((len(cells), len(target_columns)), np.float64)
        for j, name in enumerate(target_columns):
            y[:, j] = _numeric_column(cells, lines, p + j, name)

    return CsvData(X=X, y=y, input_columns=input_columns, target_columns=target_columns, classes=classes)


# -- helpers --------------------------------------------------------------------------------
def _decode(content: bytes | str) -> str:
    """UTF-8 text without a BOM; a decoding error names the line of the offending byte."""
    if isinstance(content, (bytes, bytearray, memoryview)):
        raw = bytes(content)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            before = raw[:e.start]
            line = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n") + 1
            raise CsvError(f"line {line}: the file is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                           "save it as CSV UTF-8", line=line) from None
    elif isinstance(content, str):
        text = content
    else:
        raise TypeError(f"content must be bytes or str, got {type(content).__name__}")
    return text[1:] if text.startswith(BOM) else text


def _check_header(row: list[str], line: int, max_columns: int) -> list[str]:
    names = [c.strip() for c in row]
    if len(names) > max_columns:
        raise CsvError(f"line {line}: the header has {len(names)} columns; at most {max_columns} are allowed",
                       line=line)
    seen: dict[str, int] = {}
    for j, name in enumerate(names, start=1):
        if not name:
            raise CsvError(f"line {line}: column {j} of the header has a blank name", line=line)
        if name in seen:
            raise CsvError(f'line {line}: duplicate column name "{name}" (columns {seen[name]} and {j})',
                           line=line, column=name)
        seen[name] = j
    if len(names) > 1 and all(_number(n) is not None for n in names):
        raise CsvError(f"line {line} looks like data, not a header: every name is a number "
                       f"({_names(names[:4])}{', ...' if len(names) > 4 else ''}); add a header row of column names",
                       line=line)
    if len(names) < 2:
        raise CsvError(f"line {line}: the header has {len(names)} column; need at least one input and one target",
                       line=line)
    return names


def _select(header: list[str], inputs, targets) -> tuple[list[int], list[int]]:
    """Column indices of the inputs and targets chosen by name (defaults: last column is the target)."""
    where = {name: j for j, name in enumerate(header)}
    t_idx = _indices(where, header, targets, "targets") if targets is not None else [len(header) - 1]
    if inputs is not None:
        in_idx = _indices(where, header, inputs, "inputs")
    else:
        in_idx = [j for j in range(len(header)) if j not in t_idx]
        if not in_idx:
            raise CsvError("every column is a target; name the input columns", field="inputs")
    both = [header[j] for j in in_idx if j in t_idx]
    if both:
        raise CsvError(f'column "{both[0]}" is both an input and a target', field="inputs", column=both[0])
    return in_idx, t_idx


def _indices(where: dict, header: list[str], names, field: str) -> list[int]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise CsvError(f"{field} must be a list of column names", field=field)
    if not names:
        raise CsvError(f"{field} must name at least one column", field=field)
    out = []
    for name in names:
        j = where.get(name.strip())
        if j is None:
            raise CsvError(f'{field}: no column named "{name}"; the columns are {_names(header)}',
                           field=field, column=name)
        if j in out:
            raise CsvError(f'{field}: column "{name}" is listed twice', field=field, column=name)
        out.append(j)
    return out


def _names(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _number(text: str) -> float | None:
    """float(text) for a plain decimal number (nan/inf included), else None."""
    if not text or "_" in text:
        return None  # float() would take "1_000"; a CSV cell should not
    try:
        return float(text)
    except ValueError:
        return None


def _numeric_column(cells, lines, k: int, name: str) -> np.ndarray:
    """Column k of the selected cells as float64; the first bad cell raises CsvError with its line."""
    out = np.empty(len(cells), np.float64)
    for r, row in enumerate(cells):
        text = row[k]
        v = _number(text)
        if v is None or not math.isfinite(v):
            raise _cell_error(lines[r], name, text, v)
        out[r] = v
    return out


def _first_non_number(cells, lines, k: int, name: str):
    """(line, text) of the first non-numeric cell of column k, or None; empty cells are errors."""
    for r, row in enumerate(cells):
        text = row[k]
        if not text:
            raise _cell_error(lines[r], name, text, None)
        if _number(text) is None:
            return lines[r], text
    return None


def _cell_error(line: int, name: str, text: str, value: float | None) -> CsvError:
    if not text:
        why = "the cell is empty"
    elif value is None:
        why = f'"{text}" is not a number'
    else:
        why = f"{text} is not a finite number"
    return CsvError(f'line {line} column "{name}": {why}', line=line, column=name)
