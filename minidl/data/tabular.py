"""Tables of numbers with a label: ADBench's anomaly-detection .npz files and CSV files."""

from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .sources import DataCorruptError, DataNotFoundError, fetch, resolve_root

ADBENCH_URL = "https://github.com/Minqi824/ADBench/raw/main/adbench/datasets/Classical/"
CREDITCARD_PAGE = "https://www.kaggle.com/datasets/mlg-ulb/creditcardfraud"
CREDITCARD_COLUMNS = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]


class TabularData(NamedTuple):
    """features: (N, D) float64; targets: (N,) int64; feature_names: D names;
    classes: class names, ``classes[targets[i]]``."""

    features: np.ndarray
    targets: np.ndarray
    feature_names: list[str]
    classes: list[str]


def load_adbench(name: str, root: str | os.PathLike | None = None) -> TabularData:
    """An ADBench 'Classical' set, e.g. ``load_adbench('6_cardio')``: X (N, D), y 1 = anomaly.

    Read from ``root/anomaly/<name>.npz``, downloaded from the ADBench repository if missing
    (no checksum is published; the npz members' CRCs catch damage).
    """
    path = fetch(f"anomaly/{name}.npz", f"{ADBENCH_URL}{name}.npz", root=root)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "X" not in npz.files or "y" not in npz.files:
                raise DataCorruptError(
                    f"{path}: expected arrays X and y, found {sorted(npz.files)}"
                )
            x, y = npz["X"], npz["y"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataCorruptError(f"{path}: not a readable npz ({err})") from err
    if x.ndim != 2 or y.shape != (len(x),) or not np.isin(y, (0, 1)).all():
        raise DataCorruptError(
            f"{path}: expected X (N, D) and y (N,) of 0/1, got {x.shape} and {y.shape}"
        )
    names = [f"x{i}" for i in range(x.shape[1])]
    return TabularData(x.astype(np.float64), y.astype(np.int64), names, ["normal", "anomaly"])


def load_creditcard(root: str | os.PathLike | None = None) -> TabularData:
    """The Kaggle credit-card fraud set (ULB, September 2013; 284,807 transactions, 492
    frauds): ``root/creditcard/creditcard.csv`` with the header Time, V1 ... V28, Amount,
    Class. features: (N, 30) in that column order; targets: Class (1 = fraud).

    Kaggle serves the file only to signed-in users, so it is never downloaded here: a
    missing file raises `DataNotFoundError` saying where to get it and where to put it.
    """
    path = resolve_root(root) / "creditcard" / "creditcard.csv"
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} is missing: download creditcard.csv from {CREDITCARD_PAGE} "
            f"(a Kaggle account is needed) and put it there"
        )
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    if header != CREDITCARD_COLUMNS:
        raise DataCorruptError(
            f"{path}: expected the columns Time, V1..V28, Amount, Class, got {header[:5]}... "
            f"({len(header)} columns)"
        )
    data = load_csv(path, "Class")
    if not set(data.classes) <= {"0", "1"}:
        raise DataCorruptError(f"{path}: Class must be 0 or 1, found {data.classes}")
    # load_csv numbers the classes it found; map them back to the labels 0 and 1.
    targets = np.array([int(data.classes[t]) for t in range(len(data.classes))])[data.targets]
    return TabularData(data.features, targets, data.feature_names, ["normal", "fraud"])


def _label_classes(values: list[str]) -> tuple[np.ndarray, list[str]]:
    """Class index of each label; classes sorted as numbers if all labels are integers
    (so '10' comes after '9'), else as strings."""
    try:
        key = sorted(set(values), key=int)
    except ValueError:
        key = sorted(set(values))
    index = {c: i for i, c in enumerate(key)}
    return np.array([index[v] for v in values], dtype=np.int64), key


def load_csv(path: str | os.PathLike, label_column: str, delimiter: str = ",") -> TabularData:
    """A CSV file with a header row: every column but `label_column` is a numeric feature.

    The label column may hold any strings (class names) or integers. A cell that is not a
    number raises `DataCorruptError` naming the file, line and column.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=delimiter))
    if not rows or label_column not in rows[0]:
        raise ValueError(
            f"{path}: no column {label_column!r} in the header {rows[0] if rows else []}"
        )
    header, body = rows[0], rows[1:]
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataCorruptError(
                f"{path}: line {line} has {len(row)} fields, the header {len(header)}"
            )
    label_at = header.index(label_column)
    feature_at = [i for i in range(len(header)) if i != label_at]
    cells = np.array(body, dtype=str).reshape(len(body), len(header))
    features = np.stack([_number_column(path, cells, header, i) for i in feature_at], axis=1)
    targets, classes = _label_classes(cells[:, label_at].tolist())
    return TabularData(features, targets, [header[i] for i in feature_at], classes)


def _parses(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _number_column(path: Path, cells: np.ndarray, header: list[str], column: int) -> np.ndarray:
    try:
        return cells[:, column].astype(np.float64)
    except ValueError:
        # Only now look cell by cell, to name the first one that is not a number.
        row = next((r for r, v in enumerate(cells[:, column]) if not _parses(v)), None)
        where = f"line {row + 2}, " if row is not None else ""
        value = f"{str(cells[row, column])!r} " if row is not None else "a value "
        raise DataCorruptError(
            f"{path}: {where}column {header[column]!r}: {value}is not a number"
        ) from None
