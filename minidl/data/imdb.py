"""Movie-review sentiment: the 50,000-review aclImdb set (Maas et al. 2011) and the 2,000-review
polarity set v2.0 (Pang & Lee 2004). Both keep one review per text file in ``pos/`` and ``neg/``
folders; labels follow the sorted folder names: neg = 0, pos = 1."""

from __future__ import annotations

import os

import numpy as np

from .archive import read_files
from .dataset import LabeledData
from .sources import DataCorruptError, fetch, resolve_root

ACLIMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ACLIMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
# The NLTK corpus zip; no checksum is published for it, so only the zip's CRCs guard it.
MOVIE_REVIEWS_URL = (
    "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/movie_reviews.zip"
)
CLASSES = ["neg", "pos"]


def read_text_classes(source: str | os.PathLike, under: str = "") -> LabeledData:
    """Texts in class folders ``under/{neg,pos}/*.txt`` of a folder or archive.

    data: list of N review texts (UTF-8, as written: aclImdb's ``<br />`` tags are kept),
    ordered by class then file name; targets: (N,) int64, 0 = neg, 1 = pos.
    """
    files = read_files(
        source, under, lambda key: key.split("/")[0] in CLASSES and key.endswith(".txt")
    )
    texts, targets = [], []
    for key, data in files.items():
        try:
            texts.append(data.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise DataCorruptError(f"{source}:{under}/{key}: not UTF-8 ({err.reason})") from err
        targets.append(CLASSES.index(key.split("/")[0]))
    counts = np.bincount(targets, minlength=2)
    if counts.min() == 0:
        raise DataCorruptError(
            f"{source}: expected texts in {under}/neg and {under}/pos, found {counts.tolist()}"
        )
    return LabeledData(texts, np.array(targets, dtype=np.int64), list(CLASSES))


def load_imdb(split: str = "train", root: str | os.PathLike | None = None) -> LabeledData:
    """aclImdb: 25,000 'train' or 'test' reviews (the unlabelled ``unsup`` ones are left out).

    Reads ``root/imdb/aclImdb/`` if unpacked, else ``root/imdb/aclImdb_v1.tar.gz``
    (downloaded and checked against its sha256 if missing) without unpacking it.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    base = resolve_root(root) / "imdb"
    if (base / "aclImdb").is_dir():
        return read_text_classes(base / "aclImdb", split)
    archive = fetch("imdb/aclImdb_v1.tar.gz", ACLIMDB_URL, ACLIMDB_SHA256, root=root)
    return read_text_classes(archive, f"aclImdb/{split}")


def load_movie_reviews(root: str | os.PathLike | None = None) -> LabeledData:
    """Polarity v2.0: 1,000 negative and 1,000 positive reviews, with no official split
    (use `stratified_split`). Reads ``root/imdb-polarity/movie_reviews/`` if unpacked, else
    ``root/imdb-polarity/movie_reviews.zip`` (downloaded if missing)."""
    base = resolve_root(root) / "imdb-polarity"
    if (base / "movie_reviews").is_dir():
        return read_text_classes(base / "movie_reviews")
    archive = fetch("imdb-polarity/movie_reviews.zip", MOVIE_REVIEWS_URL, root=root)
    return read_text_classes(archive, "movie_reviews")
