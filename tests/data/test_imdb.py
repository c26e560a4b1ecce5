import hashlib
import tarfile
import zipfile

import numpy as np
import pytest

from minidl.data import DataCorruptError, DataNotFoundError, load_imdb, load_movie_reviews
from minidl.data import imdb as imdb_module

REVIEWS = {
    "pos/0_9.txt": "A delight.<br />Loved it.",
    "pos/1_7.txt": "Très bien.",
    "neg/0_2.txt": "Dull.",
}


def write_tree(folder, files):
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture
def acl_folder(tmp_path):
    base = tmp_path / "imdb" / "aclImdb"
    write_tree(base / "train", {**REVIEWS, "unsup/0_0.txt": "no label", "urls_pos.txt": "x"})
    write_tree(base / "test", {"pos/5_8.txt": "Good.", "neg/5_1.txt": "Bad."})
    (base / "train" / "labeledBow.feat").write_text("0:1")
    return tmp_path


def test_aclimdb_folder(acl_folder):
    texts, targets, classes = load_imdb("train", root=acl_folder)
    assert classes == ["neg", "pos"]
    assert texts == ["Dull.", "A delight.<br />Loved it.", "Très bien."]  # unsup left out
    assert targets.tolist() == [0, 1, 1] and targets.dtype == np.int64
    assert load_imdb("test", root=acl_folder).targets.tolist() == [0, 1]


def test_aclimdb_archive_is_read_without_unpacking(acl_folder, monkeypatch):
    base = acl_folder / "imdb"
    archive = base / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(base / "aclImdb", arcname="aclImdb")
    (base / "aclImdb").rename(base / "elsewhere")
    with pytest.raises(DataCorruptError, match=imdb_module.ACLIMDB_SHA256):
        load_imdb(root=acl_folder)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(imdb_module, "ACLIMDB_SHA256", digest)
    texts, targets, _ = load_imdb("train", root=acl_folder)
    assert texts[0] == "Dull." and targets.tolist() == [0, 1, 1]


def test_missing_aclimdb_offline(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_imdb(root=tmp_path)
    assert imdb_module.ACLIMDB_URL in str(err.value) and str(tmp_path / "imdb") in str(err.value)


@pytest.fixture
def polarity_zip(tmp_path):
    path = tmp_path / "imdb-polarity" / "movie_reviews.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("movie_reviews/README", "polarity v2.0")
        for name, text in {"neg/cv000_1.txt": "bad film", "pos/cv000_2.txt": "fine film"}.items():
            z.writestr(f"movie_reviews/{name}", text)
        z.writestr("movie_reviews/pos/cv001_3.txt", "great film")
    return tmp_path


def test_movie_reviews_zip(polarity_zip):
    texts, targets, classes = load_movie_reviews(root=polarity_zip)
    assert texts == ["bad film", "fine film", "great film"] and targets.tolist() == [0, 1, 1]
    assert classes == ["neg", "pos"]


def test_movie_reviews_folder(tmp_path):
    write_tree(tmp_path / "imdb-polarity" / "movie_reviews", REVIEWS)
    assert load_movie_reviews(root=tmp_path).targets.tolist() == [0, 1, 1]


def test_damaged_zip_and_non_utf8_text(polarity_zip):
    path = polarity_zip / "imdb-polarity" / "movie_reviews.zip"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataCorruptError, match=r"movie_reviews\.zip"):
        load_movie_reviews(root=polarity_zip)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("movie_reviews/neg/a.txt", b"caf\xe9")
        z.writestr("movie_reviews/pos/b.txt", b"ok")
    with pytest.raises(DataCorruptError, match=r"neg/a\.txt: not UTF-8"):
        load_movie_reviews(root=polarity_zip)


def test_a_class_with_no_text_is_an_error(tmp_path):
    write_tree(tmp_path / "imdb-polarity" / "movie_reviews", {"pos/a.txt": "only positive"})
    with pytest.raises(DataCorruptError, match=r"found \[0, 1\]"):
        load_movie_reviews(root=tmp_path)
