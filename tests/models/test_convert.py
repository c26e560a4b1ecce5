"""minidl.models.convert: torch checkpoints read without running code from them.

With torch (CI installs the CPU build): hand-built state dicts saved by ``torch.save`` in
both of its layouts read back equal to ``torch.load(weights_only=True)``. Without torch: a
file that names other code is refused before anything runs, and out-of-range tensors are
refused. (A checkpoint of a real torchvision model: test_torchvision_layout.py.)"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import minidl as md
from minidl import models
from minidl.models.convert import (
    CheckpointError,
    check_loads,
    convert,
    main,
    read_checkpoint,
    state_dict_from,
)


def _torch_state() -> OrderedDict:
    """float32, float16, bfloat16, float64, int64 0-dim, bool, a transposed (strided) view,
    two tensors sharing one storage, an empty tensor, a Parameter."""
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return OrderedDict(
        [
            ("conv.weight", torch.randn(3, 2, 3, 3)),
            ("half", torch.randn(5).half()),
            ("brain", torch.randn(2, 3).bfloat16()),
            ("double", torch.randn(2, 2, dtype=torch.float64)),
            ("bn.num_batches_tracked", torch.tensor(7)),
            ("mask", torch.tensor([True, False, True])),
            ("transposed", base.t()),
            ("shared_row", base[2]),
            ("shared_column", base[:, 1:5:2]),
            ("empty", torch.zeros(0, 3)),
            ("param", torch.nn.Parameter(torch.randn(4))),
        ]
    )


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_reads_what_torch_load_reads(tmp_path: Path, legacy: bool) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "state.pth"
    torch.save(_torch_state(), path, _use_new_zipfile_serialization=not legacy)
    expected = torch.load(path, weights_only=True)
    got = read_checkpoint(path)
    assert isinstance(got, OrderedDict) and list(got) == list(expected)
    for key, value in expected.items():
        value = value.detach()
        want = value.float().numpy() if value.dtype == torch.bfloat16 else value.numpy()
        assert got[key].dtype == want.dtype, key
        np.testing.assert_array_equal(got[key], want, err_msg=key)


def test_a_torch_model_checkpoint_converts_and_loads_into_minidl(tmp_path: Path) -> None:
    """A training checkpoint ({"model": state dict, "epoch"}) of a DataParallel-wrapped
    torch network of MobileNetV2's layout, converted by the CLI and loaded by the builder."""
    torch = pytest.importorskip("torch")
    reference = models.mobilenet_v2(num_classes=4, width_mult=0.25).eval()
    state = OrderedDict(
        (f"module.{k}", torch.from_numpy(v.numpy().copy()))
        for k, v in reference.state_dict().items()
    )
    torch.save({"model": state, "epoch": 3}, tmp_path / "ckpt.pth")
    assert main([str(tmp_path / "ckpt.pth"), str(tmp_path / "out.minidl")]) == 0
    loaded = models.mobilenet_v2(weights=tmp_path / "out.minidl", num_classes=4, width_mult=0.25)
    x = md.randn(2, 3, 32, 32)
    with md.no_grad():
        np.testing.assert_array_equal(loaded.eval()(x).numpy(), reference(x).numpy())


class _RunsCode:
    """Unpickling this calls os.system: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _zip_checkpoint(path: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_refuses_a_checkpoint_that_names_other_code(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "ran"
    payload = pickle.dumps({"weight": _RunsCode(marker)}, protocol=2)
    path = tmp_path / "hostile.pth"
    if legacy:
        magic = [0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}]
        path.write_bytes(b"".join(pickle.dumps(v, protocol=2) for v in magic) + payload)
    else:
        _zip_checkpoint(path, payload)
    with pytest.raises(CheckpointError, match=r"refusing to load (posix|os|nt)\.system"):
        read_checkpoint(path)
    assert not marker.exists()


def test_refuses_a_tensor_outside_its_storage(tmp_path: Path) -> None:
    """A hand-written zip checkpoint whose tensor claims more elements than its storage."""
    payload = _pickle_of_one_tensor(size=(4, 4), stride=(4, 1), numel=8)
    path = tmp_path / "bad.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/data/0", np.zeros(8, np.float32).tobytes())
    with pytest.raises(CheckpointError, match=r"size \(4, 4\) reaches element 15 .* of 8"):
        read_checkpoint(path)


def _pickle_of_one_tensor(size: tuple, stride: tuple, numel: int) -> bytes:
    """The pickle torch writes for {"w": tensor}, opcode by opcode (no torch needed):
    {"w": _rebuild_tensor_v2(persistent ("storage", FloatStorage, "0", "cpu", numel),
    0, size, stride, False)}."""

    def text(s: str) -> bytes:  # BINUNICODE
        return b"X" + len(s).to_bytes(4, "little") + s.encode()

    def integer(n: int) -> bytes:  # BININT
        return b"J" + n.to_bytes(4, "little", signed=True)

    def ints(values: tuple) -> bytes:  # MARK ... TUPLE
        return b"(" + b"".join(integer(v) for v in values) + b"t"

    def name(module: str, attr: str) -> bytes:  # GLOBAL
        return b"c" + module.encode() + b"\n" + attr.encode() + b"\n"

    storage = b"(" + text("storage") + name("torch", "FloatStorage") + text("0") + text("cpu")
    storage += integer(numel) + b"tQ"  # TUPLE, BINPERSID
    args = b"(" + storage + integer(0) + ints(size) + ints(stride) + b"\x89t"  # False, TUPLE
    rebuild = name("torch._utils", "_rebuild_tensor_v2") + args + b"R"  # REDUCE
    return b"\x80\x02}" + text("w") + rebuild + b"s."  # PROTO 2, EMPTY_DICT, SETITEM, STOP


def test_reads_a_hand_written_tensor_pickle(tmp_path: Path) -> None:
    """The same writer with a consistent tensor reads back (so the refusal below is about
    the extent, not the hand-written file)."""
    path = tmp_path / "good.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _pickle_of_one_tensor((2, 3), (1, 2), 6))
        archive.writestr("archive/data/0", np.arange(6, dtype=np.float32).tobytes())
    expected = np.arange(6, dtype=np.float32).reshape(3, 2).T
    np.testing.assert_array_equal(read_checkpoint(path)["w"], expected)


def test_refuses_a_file_that_is_no_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_bytes(b"just some text, not a pickle")
    with pytest.raises(CheckpointError, match=r"notes\.pth"):
        read_checkpoint(path)


def test_state_dict_is_found_unwrapped_and_renamed() -> None:
    a = np.zeros(2, np.float32)
    old = {"module.features.denseblock1.denselayer1.norm.1.weight": a, "module.fc.bias": a}
    old["module.features.denseblock1.denselayer1.norm.1.running_var"] = a
    state = state_dict_from({"state_dict": old, "epoch": 4})
    prefix = "features.denseblock1.denselayer1.norm1"
    assert list(state) == [f"{prefix}.weight", "fc.bias", f"{prefix}.running_var",
                           f"{prefix}.num_batches_tracked"]  # fmt: skip
    assert state[f"{prefix}.num_batches_tracked"] == 0
    with pytest.raises(CheckpointError, match="no state dict"):
        state_dict_from({"epoch": 4})


def test_check_loads_infers_the_class_count_and_auxiliary_heads(tmp_path: Path) -> None:
    state = models.googlenet(num_classes=6, aux_logits=False, width_mult=0.125).state_dict()
    arrays = {k: v.numpy() for k, v in state.items()}
    with pytest.raises(RuntimeError, match="shape mismatch"):  # full width expected
        check_loads(arrays, "googlenet")
    small = models.resnet18(num_classes=6).state_dict()
    built = check_loads({k: v.numpy() for k, v in small.items()}, "resnet18")
    assert built == "minidl.models.resnet18(num_classes=6)"


def test_convert_writes_a_minidl_checkpoint(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save(_torch_state(), tmp_path / "s.pth")
    state = convert(tmp_path / "s.pth", tmp_path / "s.minidl")
    loaded = md.load(tmp_path / "s.minidl")
    assert list(loaded) == list(state)
    np.testing.assert_array_equal(loaded["transposed"], state["transposed"])
