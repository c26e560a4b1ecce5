import tarfile
import zipfile

import pytest

from minidl.data import DataCorruptError, DataNotFoundError, read_files

FILES = {"a/x.txt": b"first", "a/sub/y.txt": b"second", "b/z.dat": b"third", "top.txt": b"0"}


@pytest.fixture
def tree(tmp_path):
    folder = tmp_path / "tree"
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    with tarfile.open(tmp_path / "tree.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="tree")
    with zipfile.ZipFile(tmp_path / "tree.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in FILES.items():
            z.writestr(f"tree/{name}", data)
    return tmp_path


@pytest.mark.parametrize(
    "source, under", [("tree", ""), ("tree.tar.gz", "tree"), ("tree.zip", "tree")]
)
def test_folder_tar_and_zip_read_the_same(tree, source, under):
    assert read_files(tree / source, under) == dict(sorted(FILES.items()))
    below_a = read_files(tree / source, f"{under}/a".lstrip("/"), lambda k: k.endswith(".txt"))
    assert below_a == {"sub/y.txt": b"second", "x.txt": b"first"}


def test_truncated_tar_gz_is_reported(tree):
    data = (tree / "tree.tar.gz").read_bytes()
    (tree / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataCorruptError, match=r"cut\.tar\.gz"):
        read_files(tree / "cut.tar.gz")


def test_zip_member_with_bad_crc_is_reported(tmp_path):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("d/file.txt", b"hello world, stored as is")
    data = path.read_bytes()
    path.write_bytes(data.replace(b"hello world", b"HELLO world"))
    with pytest.raises(DataCorruptError, match=r"bad\.zip"):
        read_files(path)


def test_missing_source(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"nowhere\.tar"):
        read_files(tmp_path / "nowhere.tar")


def test_every_flipped_byte_of_a_tar_gz_is_caught_or_harmless(tree):
    """One byte flipped anywhere in a .tar.gz: either an error naming the archive, or (a
    byte nothing reads: the gzip header's time stamp, say) exactly the original files.
    Without reading to the gzip trailer, flips in the compressed data gave damaged bytes."""
    data = (tree / "tree.tar.gz").read_bytes()
    damaged_path = tree / "flipped.tar.gz"
    caught = 0
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        damaged_path.write_bytes(bytes(damaged))
        try:
            files = read_files(damaged_path, "tree")
        except DataCorruptError as error:
            assert "flipped.tar.gz" in str(error)
            caught += 1
        else:
            assert files == dict(sorted(FILES.items())), f"byte {position}: damaged data read"
    # 95% measured: the rest are gzip header bytes (time stamp, OS, file name) nothing checks
    assert caught > 0.9 * len(data)


def test_a_damaged_zip_central_directory_is_reported(tree):
    data = (tree / "tree.zip").read_bytes()
    directory = data.rfind(b"PK\x01\x02")  # the last central-directory entry
    damaged_path = tree / "flipped.zip"
    for offset in range(46):  # every byte of its fixed-size part
        damaged = bytearray(data)
        damaged[directory + offset] ^= 0xFF
        damaged_path.write_bytes(bytes(damaged))
        try:
            files = read_files(damaged_path, "tree")
        except DataCorruptError as error:
            assert "flipped.zip" in str(error)
        else:
            assert files == dict(sorted(FILES.items()))
