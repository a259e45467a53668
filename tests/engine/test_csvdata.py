"""CSV uploads: every invalid file names what is wrong and the line it is on; valid files parse exactly."""
import numpy as np
import pytest

from app.engine.csvdata import CsvError, parse_csv

BAD = [
    ("ragged", "a,b,c\n1,2,3\n4,5\n", {}, 3, "file", "line 3 has 2 cells, the header (line 1) has 3"),
    ("non-numeric", "a,b,c\n1,2,3\n4,x,6\n", {}, 3, "file", 'line 3 column "b": "x" is not a number'),
    ("nan", "a,b,c\n1,nan,3\n", {}, 2, "file", 'line 2 column "b": nan is not a finite number'),
    ("inf", "a,b,c\n1,2,3\n1,inf,3\n", {}, 3, "file", 'line 3 column "b": inf is not a finite number'),
    ("empty", "", {}, None, "file", "the file is empty: it needs a header row and at least one data row"),
    ("header only", "a,b,c\n", {}, 1, "file", "the file has a header (line 1) but no data rows"),
    ("encoding", b"a,b,c\n1,2,3\n\xff,2,3\n", {}, 3, "file",
     "line 3: the file is not UTF-8 text (byte 0xff at offset 12); save it as CSV UTF-8"),
    ("duplicate header", "a,a,c\n1,2,3\n", {}, 1, "file", 'line 1: duplicate column name "a" (columns 1 and 2)'),
    ("blank header", "a,,c\n1,2,3\n", {}, 1, "file", "line 1: column 2 of the header has a blank name"),
    ("too many rows", "a,b\n1,2\n3,4\n5,6\n", {"max_rows": 2}, 4, "file",
     "line 4: too many data rows; at most 2 are allowed"),
    ("too many columns", "a,b,c\n1,2,3\n", {"max_columns": 2}, 1, "file",
     "line 1: the header has 3 columns; at most 2 are allowed"),
    ("unknown column", "a,b,c\n1,2,3\n", {"inputs": ["zz"]}, None, "inputs",
     'inputs: no column named "zz"; the columns are "a", "b", "c"'),
    ("input and target", "a,b,c\n1,2,3\n", {"inputs": ["a", "c"], "targets": ["c"]}, None, "inputs",
     'column "c" is both an input and a target'),
]


@pytest.mark.parametrize("name,content,kw,line,field,message", BAD, ids=[b[0] for b in BAD])
def test_every_invalid_file_says_what_and_where(name, content, kw, line, field, message):
    with pytest.raises(CsvError) as e:
        parse_csv(content, **kw)
    assert (e.value.line, e.value.field, e.value.message) == (line, field, message)


def test_defaults_bom_crlf_blank_lines_and_a_categorical_target():
    d = parse_csv("\ufeffx1,x2,label\r\n1,2,b\r\n\r\n3,4,a\r\n5,6,b\r\n")
    assert (d.input_columns, d.target_columns, d.classes) == (["x1", "x2"], ["label"], ["a", "b"])
    np.testing.assert_array_equal(d.X, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(d.y, [[0, 1], [1, 0], [0, 1]])  # one-hot, classes sorted


def test_columns_chosen_by_name_keep_numeric_targets():
    d = parse_csv("a,b,c,d\n1,2,3,4\n5,6,7,8\n", inputs=["d", "a"], targets=["b", "c"])
    assert (d.input_columns, d.target_columns, d.classes) == (["d", "a"], ["b", "c"], None)
    np.testing.assert_array_equal(d.X, [[4, 1], [8, 5]])
    np.testing.assert_array_equal(d.y, [[2, 3], [6, 7]])


def test_standardization_returns_its_statistics():
    d = parse_csv("x1,x2,y\n1,10,0\n3,10,1\n5,10,0\n", standardize=True)
    assert d.standardize == {"mean": [3.0, 10.0], "std": [pytest.approx(np.std([1, 3, 5])), 1.0]}  # std 0 -> 1
    np.testing.assert_allclose(d.X[:, 0], (np.array([1, 3, 5]) - 3) / np.std([1, 3, 5]))
    np.testing.assert_array_equal(d.X[:, 1], 0.0)
