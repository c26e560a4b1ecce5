"""minidl.save / minidl.load: round trips of state dicts and nested checkpoints (int keys,
tuples, scalars), tensors back as CPU tensors and arrays as arrays, atomic replacement,
and clear errors for truncated, corrupted and foreign files."""

from __future__ import annotations

import io
import os
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import minidl as md
from minidl import backend, nn
from minidl.serialization import SerializationError


def model():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_state_dict_round_trip_restores_the_model(tmp_path):
    source, target = model(), model()
    source(md.randn(5, 3))  # move the running statistics away from their start
    path = tmp_path / "model.mdl"
    md.save(source.state_dict(), path)
    loaded = md.load(path)
    assert isinstance(loaded, OrderedDict) and list(loaded) == list(source.state_dict())
    for key, value in source.state_dict().items():
        assert isinstance(loaded[key], md.Tensor) and loaded[key].device == "cpu"
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
        np.testing.assert_array_equal(loaded[key].numpy(), value.numpy())
    assert (
        loaded["1.num_batches_tracked"].shape == () and loaded["1.num_batches_tracked"].item() == 1
    )
    target.load_state_dict(loaded)
    x = md.randn(2, 3)
    source.eval(), target.eval()
    np.testing.assert_array_equal(target(x).numpy(), source(x).numpy())


def test_nested_checkpoint_with_int_keys_and_python_values(tmp_path):
    checkpoint = {
        "model": model().state_dict(),
        "optimizer": {
            "state": {0: {"step": 3, "exp_avg": md.randn(4, 3)}, 1: {}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "wd": None}],
        },
        "epoch": 7,
        "best": float("inf"),
        "history": [0.5, 0.25],
        "name": "run-1",
        "flags": {True: "yes", 2.5: "float key", (1, 2): "tuple key"},
        "array": np.arange(6, dtype=np.int32).reshape(2, 3),
        "scalar": np.float32(1.5),
        "param": nn.Parameter(md.ones(2)),
    }
    path = tmp_path / "ckpt.mdl"
    md.save(checkpoint, path)
    back = md.load(str(path))
    assert back["epoch"] == 7 and back["best"] == float("inf") and back["name"] == "run-1"
    assert back["history"] == [0.5, 0.25]
    group = back["optimizer"]["param_groups"][0]
    assert group == {"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1], "wd": None}
    state = back["optimizer"]["state"]
    assert list(state) == [0, 1] and state[0]["step"] == 3 and state[1] == {}
    np.testing.assert_array_equal(
        state[0]["exp_avg"].numpy(), checkpoint["optimizer"]["state"][0]["exp_avg"].numpy()
    )
    assert back["flags"] == {True: "yes", 2.5: "float key", (1, 2): "tuple key"}
    assert isinstance(back["array"], np.ndarray) and back["array"].dtype == np.int32
    np.testing.assert_array_equal(back["array"], checkpoint["array"])
    assert isinstance(back["scalar"], np.float32) and back["scalar"] == 1.5
    assert isinstance(back["param"], nn.Parameter) and back["param"].requires_grad
    assert type(back["model"]) is OrderedDict and type(back["optimizer"]) is dict


def test_resuming_from_a_checkpoint_continues_training_exactly(tmp_path):
    """Model and Adam state saved mid-training, loaded into fresh objects: the next steps
    are identical to those of the uninterrupted run."""
    from minidl import optim

    x, y = md.randn(8, 3), md.randn(8, 2)

    def train(net, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            ((net(x) - y) ** 2).mean().backward()
            opt.step()

    net = model()
    opt = optim.Adam(net.parameters(), lr=0.01)
    train(net, opt, 3)
    md.save({"model": net.state_dict(), "optim": opt.state_dict()}, tmp_path / "ckpt.mdl")
    train(net, opt, 2)
    checkpoint = md.load(tmp_path / "ckpt.mdl")
    resumed = model()
    resumed.load_state_dict(checkpoint["model"])
    resumed_opt = optim.Adam(resumed.parameters(), lr=0.5)
    resumed_opt.load_state_dict(checkpoint["optim"])
    assert resumed_opt.param_groups[0]["lr"] == 0.01
    train(resumed, resumed_opt, 2)
    for (name, a), b in zip(net.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, err_msg=name)


def test_tensors_from_the_device_come_back_on_the_cpu_or_map_location(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDL_SIMULATED_CUDA", "1")
    t = md.tensor([[1.0, 2.0]], device="cuda").T  # a non-contiguous device tensor
    md.save({"t": t}, tmp_path / "t.mdl")
    on_cpu = md.load(tmp_path / "t.mdl")["t"]
    assert on_cpu.device == "cpu" and on_cpu.shape == (2, 1)
    np.testing.assert_array_equal(on_cpu.numpy(), [[1.0], [2.0]])
    assert md.load(tmp_path / "t.mdl", map_location="cuda")["t"].device == "cuda"
    assert backend.device_of(md.load(tmp_path / "t.mdl")["t"].data) == "cpu"


def test_file_objects_and_numpy_can_read_the_arrays(tmp_path):
    buffer = io.BytesIO()
    md.save({"w": md.tensor([1.0, 2.0])}, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(md.load(buffer)["w"].numpy(), [1.0, 2.0])
    md.save({"w": md.tensor([1.0, 2.0])}, tmp_path / "w.mdl")
    with np.load(tmp_path / "w.mdl") as archive:  # the file is a plain .npz as well
        np.testing.assert_array_equal(archive["0"], [1.0, 2.0])


def test_save_replaces_atomically_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "model.mdl"
    md.save({"version": 1}, path)
    md.save({"version": 2}, path)
    assert md.load(path) == {"version": 2}
    assert os.listdir(tmp_path) == ["model.mdl"]

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr("minidl.serialization._write_zip", crash)
    with pytest.raises(OSError, match="disk full"):
        md.save({"version": 3}, path)
    assert md.load(path) == {"version": 2}  # the old file is intact
    assert os.listdir(tmp_path) == ["model.mdl"]


def test_unsupported_objects_are_named(tmp_path):
    with pytest.raises(TypeError, match=r"obj\['net'\] of type Sequential; save its state_dict"):
        md.save({"net": model()}, tmp_path / "x.mdl")
    with pytest.raises(TypeError, match="array of Python objects"):
        md.save({"a": np.array([object()])}, tmp_path / "x.mdl")
    assert not os.listdir(tmp_path)


def test_truncated_file_is_reported_with_its_name(tmp_path):
    path = tmp_path / "model.mdl"
    md.save(model().state_dict(), path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 5):
        path.write_bytes(data[:cut])
        with pytest.raises(SerializationError, match=f"{path.name}.*(truncated|not a minidl)"):
            md.load(path)


def test_corrupted_payload_is_detected(tmp_path):
    path = tmp_path / "model.mdl"
    md.save({"w": md.zeros(100)}, path)
    data = bytearray(path.read_bytes())
    data[data.find(b"\x93NUMPY") + 200] ^= 0xFF  # one byte inside the array
    path.write_bytes(bytes(data))
    with pytest.raises(SerializationError, match=r"model\.mdl. is truncated or corrupted"):
        md.load(path)


def test_checksum_catches_a_consistently_rewritten_member(tmp_path):
    """A member replaced with a valid zip entry (its CRC updated) passes the zip checks;
    the SHA-256 over the content still catches it."""
    path, forged = tmp_path / "model.mdl", tmp_path / "forged.mdl"
    md.save({"w": md.zeros(3)}, path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(forged, "w") as dst:
        for name in src.namelist():
            payload = src.read(name)
            if name == "0.npy":
                out = io.BytesIO()
                np.save(out, np.ones(3, dtype=np.float32))
                payload = out.getvalue()
            dst.writestr(name, payload)
    with pytest.raises(SerializationError, match=r"forged\.mdl. is corrupted: checksum mismatch"):
        md.load(forged)


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(SerializationError, match=r"notes\.txt' is not a minidl file"):
        md.load(text)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("archive/data.pkl", b"...")
    with pytest.raises(SerializationError, match="zip archive but not a minidl file"):
        md.load(other_zip)
    with pytest.raises(FileNotFoundError):
        md.load(tmp_path / "missing.mdl")


def test_torch_checkpoints_are_refused_with_a_clear_message(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(SerializationError, match=r"model\.pt' is a zip archive but not a minidl"):
        md.load(path)


def _checkpoint():
    return {
        "model": nn.Linear(2, 1).state_dict(),
        "optimizer": {"state": {0: {"step": 2, "m": md.randn(4)}}, "param_groups": [{"lr": 0.1}]},
        "epoch": 3,
        "history": [{"loss": 0.5}, {"loss": 0.25}],
    }


def _same(a, b):
    """Deep equality of loaded objects (tensors and arrays compared by value and dtype)."""
    if isinstance(a, md.Tensor):
        return (
            isinstance(b, type(a))
            and a.dtype == b.dtype
            and np.array_equal(a.numpy(), b.numpy())
            and a.requires_grad == b.requires_grad
        )
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def test_every_single_byte_flip_loads_the_original_or_raises_a_named_error(tmp_path):
    """Fuzz: each byte of a small checkpoint (about 2 kB, zip central directory included)
    flipped in turn. A flip in a byte nothing reads (a timestamp, say) may load; then the
    object is exactly the original. Anything else is a SerializationError naming the file."""
    path = tmp_path / "fuzzed.mdl"
    md.save(_checkpoint(), path)
    original, data = md.load(path), path.read_bytes()
    assert len(data) < 2500
    refused = 0
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x5A
        path.write_bytes(bytes(damaged))
        try:
            loaded = md.load(path)
        except SerializationError as error:
            assert "fuzzed.mdl" in str(error)
            refused += 1
        else:
            assert _same(original, loaded), f"byte {position} flipped loads other content"
    assert refused > 0.8 * len(data)  # 85% measured; the rest are bytes nothing reads
    # Truncations at every length too.
    for cut in range(0, len(data), 7):
        path.write_bytes(data[:cut])
        with pytest.raises(SerializationError, match=r"fuzzed\.mdl"):
            md.load(path)


def _forge(path, structure_json: bytes, arrays=()):
    """A file with a valid checksum around any structure text (as a buggy or hostile writer
    could make): the checksum guards against damage, not against malformed structures."""
    import hashlib

    digest = hashlib.sha256()
    with zipfile.ZipFile(path, "w") as archive:
        members = []
        for i, array in enumerate(arrays):
            buffer = io.BytesIO()
            np.save(buffer, array)
            members.append((f"{i}.npy", buffer.getvalue()))
        members.append(("structure.json", structure_json))
        for name, payload in members:
            digest.update(name.encode() + b"\0" + len(payload).to_bytes(8, "little") + payload)
            archive.writestr(name, payload)
        archive.writestr("checksum.sha256", digest.hexdigest())


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"kind": "tensor", "index": 1, "requires_grad": False}, "index 1 outside 0..0"),
        ({"kind": "ndarray", "index": -1}, "index -1 outside"),
        ({"kind": "ndarray", "index": "0"}, "'index' is '0'"),
        ({"kind": "tensor", "index": 0}, "without 'requires_grad'"),
        ({"kind": "dict"}, "without 'items'"),
        ({"kind": "dict", "items": [[1]]}, "not a \\[key, value\\] pair"),
        ({"kind": "list", "items": [{"kind": "lambda"}]}, "unknown node kind 'lambda'"),
        ({"items": []}, "unknown node kind None"),
        ([1, 2], "bare JSON list"),
    ],
)
def test_a_valid_checksum_around_a_malformed_structure_is_refused(tmp_path, obj, message):
    import json

    path = tmp_path / "forged.mdl"
    structure = {"format": "minidl", "version": 1, "obj": obj}
    _forge(path, json.dumps(structure).encode(), [np.zeros(2)])
    with pytest.raises(
        SerializationError, match=rf"forged\.mdl' is not a valid minidl file.*{message}"
    ):
        md.load(path)


def test_deep_nesting_is_refused_on_load_and_on_save(tmp_path):
    path = tmp_path / "deep.mdl"
    depth = 50_000
    text = '{"format": "minidl", "version": 1, "obj": ' + '{"kind": "list", "items": [' * depth
    _forge(path, (text + "1" + "]}" * depth + "}").encode())
    with pytest.raises(SerializationError, match=r"deep\.mdl' is not a valid minidl file.*deep"):
        md.load(path)
    # Just past the limit, within what json and Python's recursion can parse.
    nested = 1
    for _ in range(102):
        nested = [nested]
    text = '{"format": "minidl", "version": 1, "obj": ' + '{"kind": "list", "items": [' * 102
    _forge(path, (text + "1" + "]}" * 102 + "}").encode())
    with pytest.raises(SerializationError, match="nested more than 100"):
        md.load(path)
    with pytest.raises(ValueError, match="nested more than 100"):
        md.save(nested, tmp_path / "too_deep.mdl")
    for _ in range(2):
        nested = nested[0]
    md.save(nested, tmp_path / "deep_enough.mdl")
    assert md.load(tmp_path / "deep_enough.mdl") == nested


def test_a_killed_save_leaves_a_temp_file_that_the_next_save_or_load_removes(tmp_path):
    """A save killed (SIGKILL) after writing part of its temporary file; then the next
    save to that path removes it, and so does a load. Another path's temp file stays."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "big.mdl"
    script = (
        "import os, signal, minidl.serialization as s\n"
        "real = s._write_zip\n"
        "def killed(out, *args):\n"
        "    out.write(b'partial'); out.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "s._write_zip = killed\n"
        f"s.save({{'w': 1}}, {str(path)!r})\n"
    )
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), check=False)
        assert done.returncode == -signal.SIGKILL
    # The second killed save removed the first one's file before writing its own.
    left = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(left) == 1 and not path.exists()
    other = tmp_path / ".other.mdl.1.abcdefgh.tmp"
    other.write_bytes(b"")
    md.save({"w": 2}, path)
    assert sorted(os.listdir(tmp_path)) == [other.name, "big.mdl"]
    subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), check=False)
    assert len(os.listdir(tmp_path)) == 3
    assert md.load(path) == {"w": 2}
    assert sorted(os.listdir(tmp_path)) == [other.name, "big.mdl"]


def test_a_saved_file_has_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        md.save({"w": 1}, tmp_path / "a.mdl")
        os.umask(0o027)
        md.save({"w": 1}, tmp_path / "b.mdl")
    finally:
        os.umask(old)
    assert (tmp_path / "a.mdl").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.mdl").stat().st_mode & 0o777 == 0o640


def test_a_damaged_open_file_is_named_too(tmp_path):
    path = tmp_path / "opened.mdl"
    path.write_bytes(b"not a zip at all")
    with open(path, "rb") as f, pytest.raises(SerializationError, match=r"opened\.mdl"):
        md.load(f)
    with pytest.raises(SerializationError, match="the given file"):
        md.load(io.BytesIO(b"PK\x03\x04 truncated"))
