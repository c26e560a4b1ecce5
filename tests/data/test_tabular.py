import numpy as np
import pytest

from minidl.data import (
    DataCorruptError,
    DataNotFoundError,
    load_adbench,
    load_creditcard,
    load_csv,
)
from minidl.data.tabular import CREDITCARD_COLUMNS


def test_adbench_npz(tmp_path):
    (tmp_path / "anomaly").mkdir()
    x = np.random.default_rng(0).normal(size=(50, 4))
    y = (np.arange(50) % 10 == 0).astype(np.int64)
    np.savez(tmp_path / "anomaly" / "6_cardio.npz", X=x, y=y)
    features, targets, names, classes = load_adbench("6_cardio", root=tmp_path)
    assert np.array_equal(features, x) and features.dtype == np.float64
    assert targets.tolist() == y.tolist() and targets.sum() == 5
    assert names == ["x0", "x1", "x2", "x3"] and classes == ["normal", "anomaly"]


def test_adbench_bad_files(tmp_path):
    (tmp_path / "anomaly").mkdir()
    np.savez(tmp_path / "anomaly" / "a.npz", X=np.zeros((3, 2)), y=np.array([0, 2, 1]))
    with pytest.raises(DataCorruptError, match=r"a\.npz: expected X \(N, D\) and y \(N,\) of 0/1"):
        load_adbench("a", root=tmp_path)
    np.savez(tmp_path / "anomaly" / "b.npz", features=np.zeros(3))
    with pytest.raises(DataCorruptError, match=r"expected arrays X and y, found \['features'\]"):
        load_adbench("b", root=tmp_path)
    (tmp_path / "anomaly" / "c.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataCorruptError, match=r"c\.npz: not a readable npz"):
        load_adbench("c", root=tmp_path)
    with pytest.raises(DataNotFoundError, match=r"ADBench/raw/main/.*/16_http\.npz"):
        load_adbench("16_http", root=tmp_path)


def test_csv_with_string_labels(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text("sepal,species,petal\n5.1,setosa,1.4\n7.0,versicolor,4.7\n4.9,setosa,1.5\n")
    features, targets, names, classes = load_csv(path, "species")
    assert features.tolist() == [[5.1, 1.4], [7.0, 4.7], [4.9, 1.5]]
    assert names == ["sepal", "petal"] and classes == ["setosa", "versicolor"]
    assert targets.tolist() == [0, 1, 0]


def test_csv_integer_labels_sort_as_numbers(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;label\n1;10\n2;9\n3;2\n")
    _, targets, _, classes = load_csv(path, "label", delimiter=";")
    assert classes == ["2", "9", "10"] and targets.tolist() == [2, 1, 0]


def test_csv_errors_name_the_place(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n1,2,0\n3,oops,1\n")
    with pytest.raises(
        DataCorruptError, match=r"t\.csv: line 3, column 'b': 'oops' is not a number"
    ):
        load_csv(path, "y")
    path.write_text("a,b,y\n1,2,0\n3,1\n")
    with pytest.raises(DataCorruptError, match="line 3 has 2 fields, the header 3"):
        load_csv(path, "y")
    with pytest.raises(ValueError, match="no column 'label'"):
        load_csv(path, "label")


def _write_creditcard(path, rows: int, frauds: list[int], header=None) -> np.ndarray:
    """A small file in the Kaggle layout: quoted header and quoted Class, as Kaggle's."""
    rng = np.random.default_rng(0)
    values = np.column_stack(
        [np.arange(rows) * 7.0, rng.standard_normal((rows, 28)), rng.uniform(0, 500, rows)]
    )
    header = header or CREDITCARD_COLUMNS
    lines = [",".join(f'"{h}"' for h in header)]
    for i, row in enumerate(values):
        lines.append(",".join(repr(float(v)) for v in row) + f',"{int(i in frauds)}"')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return values


def test_creditcard_layout(tmp_path):
    values = _write_creditcard(tmp_path / "creditcard" / "creditcard.csv", 12, frauds=[3, 7])
    data = load_creditcard(root=tmp_path)
    assert data.features.shape == (12, 30) and data.feature_names == CREDITCARD_COLUMNS[:-1]
    np.testing.assert_array_equal(data.features, values)
    np.testing.assert_array_equal(np.flatnonzero(data.targets), [3, 7])
    assert data.classes == ["normal", "fraud"]


def test_creditcard_without_frauds_keeps_label_zero(tmp_path):
    _write_creditcard(tmp_path / "creditcard" / "creditcard.csv", 5, frauds=[])
    assert (load_creditcard(root=tmp_path).targets == 0).all()


def test_creditcard_missing_or_other_layout(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"kaggle\.com"):
        load_creditcard(root=tmp_path)
    wrong = ["Time", *(f"V{i}" for i in range(1, 28)), "Amount", "Class"]
    _write_creditcard(tmp_path / "creditcard" / "creditcard.csv", 3, [], header=wrong)
    with pytest.raises(DataCorruptError, match=r"Time, V1\.\.V28, Amount, Class"):
        load_creditcard(root=tmp_path)
