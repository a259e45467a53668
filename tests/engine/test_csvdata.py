"""CSV uploads: every invalid file is a CsvError naming the line (and .line/.field/.column), and valid
files give float64 X, numeric or one-hot y, columns chosen by header name, and standardization stats."""
import numpy as np
import pytest

from app.engine.csvdata import CsvData, CsvError, one_hot_labels, parse_csv, standardization
from app.engine.standardize import apply

GOOD = b"x1,x2,x3,label\n1,2,3,cat\n4,5,6,dog\n7,8,9,cat\n0.5,-1e2,3,bird\n"


def _err(content, **kw) -> CsvError:
    with pytest.raises(CsvError) as info:
        parse_csv(content, **kw)
    return info.value


# -- valid files ------------------------------------------------------------------------------------
def test_defaults_last_column_is_the_target_and_numeric_targets_stay_as_is():
    d = parse_csv(b"a,b,y\n1,2,0.5\n3,4,-1.25\n")
    assert isinstance(d, CsvData)
    assert d.input_columns == ["a", "b"] and d.target_columns == ["y"]
    assert d.X.dtype == np.float64 and d.y.dtype == np.float64
    np.testing.assert_array_equal(d.X, [[1, 2], [3, 4]])
    np.testing.assert_array_equal(d.y, [[0.5], [-1.25]])
    assert d.classes is None and d.n_rows == 2


def test_categorical_target_is_one_hot_with_sorted_classes():
    d = parse_csv(GOOD)
    assert d.classes == ["bird", "cat", "dog"]
    assert d.target_columns == ["label"] and d.input_columns == ["x1", "x2", "x3"]
    np.testing.assert_array_equal(d.y, [[0, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(d.X[3], [0.5, -100.0, 3.0])


def test_a_single_non_numeric_label_makes_the_target_categorical():
    d = parse_csv(b"x,y\n1,0\n2,1\n3,two\n")
    assert d.classes == ["0", "1", "two"]
    assert d.y.shape == (3, 3) and (d.y.sum(axis=1) == 1).all()


def test_columns_chosen_by_name_in_the_given_order():
    d = parse_csv(GOOD, inputs=["x3", "x1"], targets=["x2"])
    assert d.input_columns == ["x3", "x1"] and d.target_columns == ["x2"]
    np.testing.assert_array_equal(d.X[:, 0], [3, 6, 9, 3])
    np.testing.assert_array_equal(d.y[:, 0], [2, 5, 8, -100])
    assert d.classes is None  # the unused text column "label" is never parsed


def test_default_inputs_are_every_column_not_a_target():
    d = parse_csv(b"a,b,c\n1,2,3\n4,5,6\n", targets=["a", "b"])
    assert d.input_columns == ["c"] and d.target_columns == ["a", "b"]
    np.testing.assert_array_equal(d.y, [[1, 2], [4, 5]])


def test_multiple_numeric_targets():
    d = parse_csv(b"a,b,c,d\n1,2,3,4\n5,6,7,8\n", inputs=["a", "b"], targets=["c", "d"])
    np.testing.assert_array_equal(d.y, [[3, 4], [7, 8]])


def test_standardization_stats_and_apply():
    d = parse_csv(b"a,const,y\n1,5,0\n2,5,1\n3,5,0\n6,5,1\n")
    stats = standardization(d.X, d.input_columns)
    X = np.array([[1, 5], [2, 5], [3, 5], [6, 5]], float)
    mean, std = X.mean(axis=0), X.std(axis=0)
    assert stats["mean"] == pytest.approx(list(mean))
    assert stats["std"] == pytest.approx([std[0], 1.0])  # std 0 -> 1
    assert all(isinstance(v, float) for v in stats["mean"] + stats["std"])
    Z = apply(d.X, stats)
    np.testing.assert_allclose(Z[:, 0], (X[:, 0] - mean[0]) / std[0])
    np.testing.assert_array_equal(Z[:, 1], 0.0)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-15)
    np.testing.assert_array_equal(apply(X, None), X)


def test_utf8_bom_crlf_blank_lines_and_whitespace_are_accepted():
    text = "\ufeffx1, x2 ,y\r\n\r\n 1 ,2,a\r\n   \r\n3,4, b \r\n\r\n"
    for content in (text, text.encode("utf-8")):
        d = parse_csv(content)
        assert d.input_columns == ["x1", "x2"]
        np.testing.assert_array_equal(d.X, [[1, 2], [3, 4]])
        assert d.classes == ["a", "b"]


def test_quoted_cells_and_utf8_names():
    d = parse_csv('"größe","x, y",ziel\n"1.5",2,"é"\n3,4,ü\n'.encode())
    assert d.input_columns == ["größe", "x, y"] and d.classes == ["é", "ü"]


def test_scientific_and_signed_numbers():
    d = parse_csv(b"a,y\n+1e-3,1\n-.5,2\n7.,3\n")
    np.testing.assert_array_equal(d.X[:, 0], [0.001, -0.5, 7.0])


# -- invalid files: message names the line, .line/.field/.column are set ------------------------------
def test_ragged_row():
    e = _err(b"a,b,c,d\n1,2,3,4\n\n1,2,3\n")
    assert e.line == 4 and e.field == "file"
    assert str(e) == "line 4 has 3 cells, the header (line 1) has 4"
    e = _err(b"a,b\n1,2,3\n")
    assert e.line == 2 and "has 3 cells" in str(e)


def test_non_numeric_input_cell():
    e = _err(b"x1,x2,y\n1,2,3\n4,abc,5\n")
    assert e.line == 3 and e.field == "file" and e.column == "x2"
    assert str(e) == 'line 3 column "x2": "abc" is not a number'


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf", "Infinity"])
def test_nan_and_inf_are_not_finite(bad):
    e = _err(f"x1,x2,y\n1,2,3\n\n4,5,{bad}\n".encode(), targets=["y"])
    assert e.line == 4 and e.column == "y"
    assert str(e) == f'line 4 column "y": {bad} is not a finite number'
    e = _err(f"x1,x2,y\n{bad},2,3\n".encode())
    assert e.line == 2 and e.column == "x1" and "is not a finite number" in str(e)


def test_empty_cells():
    e = _err(b"x1,x2,y\n1,,3\n")
    assert e.line == 2 and e.column == "x2" and str(e) == 'line 2 column "x2": the cell is empty'
    e = _err(b"x1,x2,y\n1,2,3\n1,2,\n")  # an empty target is missing data, not a class ""
    assert e.line == 3 and e.column == "y" and "empty" in str(e)


@pytest.mark.parametrize("cell", ["", " ", '""'])
def test_an_empty_label_after_a_text_label_is_refused_not_a_class(cell):
    # the target is categorical from line 2 ("cat"); line 3's empty label must not become class ""
    e = _err(f"x1,x2,y\n1,2,cat\n3,4,{cell}\n5,6,dog\n".encode())
    assert (e.line, e.column, e.field, str(e)) == (3, "y", "file", 'line 3 column "y": the cell is empty')


def test_underscored_numbers_are_rejected():
    e = _err(b"a,y\n1_000,1\n")
    assert e.line == 2 and '"1_000" is not a number' in str(e)


def test_empty_file():
    for content in (b"", "", b"\n\n  \n", b"\xef\xbb\xbf"):
        e = _err(content)
        assert e.line is None and e.field == "file" and "empty" in str(e)


def test_header_only():
    e = _err(b"a,b,y\n\n")
    assert e.line == 1 and e.field == "file"
    assert str(e) == "the file has a header (line 1) but no data rows"
    e = _err(b"\n\na,b,y\r\n")
    assert e.line == 3


def test_not_utf8_names_the_line_of_the_bad_byte():
    e = _err(b"a,b,y\n1,2,3\n4,5,6\n7,caf\xe9,8\n")
    assert e.line == 4 and e.field == "file"
    assert str(e).startswith("line 4: the file is not UTF-8") and "offset 23" in str(e)
    e = _err("a,b\r\n1,2\r\n\xff".encode("latin-1"))
    assert e.line == 3
    e = _err(b"a,b\r1,2\r\xff,3\r")  # old Mac line ends count as lines too
    assert e.line == 3
    e = _err(b"\xff\xfea,b\n")  # UTF-16 BOM
    assert e.line == 1


def test_too_many_rows():
    content = b"a,y\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(6))
    assert parse_csv(content, max_rows=6).n_rows == 6
    e = _err(content, max_rows=5)
    assert e.line == 7 and e.field == "file" and "at most 5" in str(e)


def test_too_many_columns():
    content = b"a,b,c,y\n1,2,3,4\n"
    assert parse_csv(content, max_columns=4).X.shape == (1, 3)
    e = _err(content, max_columns=3)
    assert e.line == 1 and "4 columns" in str(e) and "at most 3" in str(e)


def test_duplicate_header_names():
    e = _err(b"a,b,a,y\n1,2,3,4\n")
    assert e.line == 1 and e.column == "a"
    assert str(e) == 'line 1: duplicate column name "a" (columns 1 and 3)'
    e = _err(b"\n a ,a,y\n1,2,3\n")  # names are compared after trimming spaces
    assert e.line == 2 and "duplicate" in str(e)


def test_blank_header_names():
    e = _err(b"a,,y\n1,2,3\n")
    assert e.line == 1 and str(e) == "line 1: column 2 of the header has a blank name"
    e = _err(b"a,b,  \n1,2,3\n")
    assert e.line == 1 and "column 3" in str(e)


def test_numeric_first_row_is_not_taken_as_a_header():
    e = _err(b"1,2,3\n4,5,6\n")
    assert e.line == 1 and "add a header row" in str(e)


def test_single_column_file():
    e = _err(b"y\n1\n2\n")
    assert e.line == 1 and "at least one input and one target" in str(e)


def test_malformed_quotes():
    e = _err(b'a,y\n1,2\n"3,4\n5,6\n')
    assert e.line == 3 and e.field == "file" and str(e).startswith("line 3: malformed CSV row")
    e = _err(b'a,y\n1,"2"x\n')
    assert e.line == 2


# -- column selection errors ------------------------------------------------------------------------
def test_unknown_column_lists_the_headers():
    e = _err(GOOD, inputs=["x1", "nope"])
    assert e.field == "inputs" and e.line is None and e.column == "nope"
    assert str(e) == 'inputs: no column named "nope"; the columns are "x1", "x2", "x3", "label"'
    e = _err(GOOD, targets=["Label"])
    assert e.field == "targets" and '"label"' in str(e)


def test_a_column_cannot_be_input_and_target():
    e = _err(GOOD, inputs=["x1", "label"])
    assert e.field == "inputs" and e.column == "label" and "both an input and a target" in str(e)
    e = _err(GOOD, inputs=["x1"], targets=["x1"])
    assert e.field == "inputs" and "both" in str(e)


def test_selection_lists_must_be_non_empty_unique_names():
    assert _err(GOOD, inputs=[]).field == "inputs"
    assert _err(GOOD, targets=[]).field == "targets"
    e = _err(GOOD, inputs=["x1", "x1"])
    assert e.field == "inputs" and "twice" in str(e)
    assert _err(GOOD, inputs="x1").field == "inputs"
    e = _err(b"a,b\n1,2\n", targets=["a", "b"])
    assert e.field == "inputs" and "every column is a target" in str(e)


def test_categorical_input_is_an_error():
    e = _err(GOOD, inputs=["x1", "label"], targets=["x3"])
    assert e.line == 2 and e.column == "label" and str(e) == 'line 2 column "label": "cat" is not a number'


def test_only_one_categorical_target():
    e = _err(b"a,b,c\n1,x,y\n2,z,w\n", inputs=["a"], targets=["b", "c"])
    assert e.field == "targets" and e.column == "b"
    assert 'column "b" is categorical (line 2: "x" is not a number)' in str(e)
    assert "must be the only target" in str(e)
    e = _err(b"a,b,c\n1,2,y\n2,3,w\n", inputs=["a"], targets=["b", "c"])  # numeric + categorical
    assert e.field == "targets" and e.column == "c"


def test_error_to_dict_and_is_a_value_error():
    e = _err(b"a,b\n1,x\n", inputs=["b"], targets=["a"])
    assert isinstance(e, ValueError)
    assert e.to_dict() == {"message": str(e), "line": 2, "field": "file", "column": "b"}


def test_bad_content_type():
    with pytest.raises(TypeError):
        parse_csv(123)


# -- exact messages, one table (kept from the first version of this file) -------------------------------
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
    d = parse_csv("x1,x2,y\n1,10,0\n3,10,1\n5,10,0\n")
    stats = standardization(d.X, d.input_columns)
    assert stats == {"mean": [3.0, 10.0], "std": [pytest.approx(np.std([1, 3, 5])), 1.0]}  # std 0 -> 1
    np.testing.assert_array_equal(d.X, [[1, 10], [3, 10], [5, 10]])  # parsing leaves the inputs raw


# -- integer class labels --------------------------------------------------------------------------
LABELS_CSV = "x1,x2,label\n0.1,0.2,2\n0.5,-1,0\n0.3,0.3,1\n1.0,2.0,2\n"


def test_one_hot_turns_integer_labels_into_one_column_per_class():
    d = parse_csv(LABELS_CSV)
    y, classes = one_hot_labels(d.y, d.target_columns)
    assert classes == ["0", "1", "2"]
    np.testing.assert_array_equal(y, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    plain = parse_csv(LABELS_CSV)
    assert plain.classes is None and plain.y.shape == (4, 1)


def test_one_hot_refuses_labels_that_are_not_integers():
    with pytest.raises(CsvError) as e:
        one_hot_labels(parse_csv(LABELS_CSV.replace("0.3,0.3,1", "0.3,0.3,1.5")).y, ["label"])
    assert e.value.message == 'one_hot: column "label" holds 1.5 in data row 3, which is not an integer class label'
    assert (e.value.field, e.value.column) == ("one_hot", "label")
    with pytest.raises(CsvError, match='one_hot needs a single target column of class labels, but targets are "x2", "label"'):
        d = parse_csv(LABELS_CSV, targets=["x2", "label"])
        one_hot_labels(d.y, d.target_columns)


def _classes(text: str, one_hot: bool, max_classes: int):
    if not one_hot:
        return parse_csv(text, max_classes=max_classes).y
    d = parse_csv(text)
    return one_hot_labels(d.y, d.target_columns, max_classes)[0]


@pytest.mark.parametrize("labels,one_hot", [([f"c{i}" for i in range(6)], False), (list(range(6)), True)])
def test_classes_are_bounded(labels, one_hot):
    text = "x,label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels))
    with pytest.raises(CsvError) as e:
        _classes(text, one_hot, 5)
    assert e.value.message == 'column "label" has 6 classes; at most 5 are allowed (one target column each)'
    assert _classes(text, one_hot, 6).shape == (6, 6)


def test_standardize_refuses_statistics_that_are_not_finite():
    with pytest.raises(CsvError) as e:
        d = parse_csv("a,b,t\n1,1e308,0\n2,-1e308,1\n3,1e308,0\n")
        standardization(d.X, d.input_columns)
    assert e.value.message == ('column "b" cannot be standardized: its mean or standard deviation is not a finite '
                               "number (values up to 1e+308); rescale the column or turn standardize off")
    assert (e.value.field, e.value.column) == ("standardize", "b")
