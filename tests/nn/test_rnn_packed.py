"""nn.utils.rnn (pad_sequence, pack_padded_sequence, pack_sequence, pad_packed_sequence),
RNN/LSTM/GRU on a PackedSequence, and LSTM(proj_size): against PyTorch (outputs, final
states, every gradient), over drawn lengths, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from minidl import nn
from minidl.nn.utils import rnn as R

rng = np.random.default_rng(0)


def _compare(name, kwargs, packed=True, hx=False, lengths=(2, 5, 3, 5, 1), enforce=False):
    torch = pytest.importorskip("torch")
    tr = torch.nn.utils.rnn
    tlayer = getattr(torch.nn, name)(3, 4, **kwargs).double()
    mlayer = getattr(nn, name)(3, 4, **kwargs)
    mlayer.load_state_dict({k: v.detach().numpy() for k, v in tlayer.state_dict().items()})
    mlayer.double()
    assert list(mlayer.state_dict()) == list(tlayer.state_dict())
    assert repr(mlayer) == repr(tlayer)
    seqs = [rng.standard_normal((n, 3)) for n in lengths]
    ts = [torch.tensor(s, requires_grad=True) for s in seqs]
    ms = [md.tensor(s, requires_grad=True) for s in seqs]
    targs, margs = [], []
    if hx:
        d = (2 if kwargs.get("bidirectional") else 1) * kwargs.get("num_layers", 1)
        h0 = rng.standard_normal((d, len(seqs), kwargs.get("proj_size") or 4))
        c0 = rng.standard_normal((d, len(seqs), 4))
        if name == "LSTM":
            targs, margs = [(torch.tensor(h0), torch.tensor(c0))], [(md.tensor(h0), md.tensor(c0))]
        else:
            targs, margs = [torch.tensor(h0)], [md.tensor(h0)]
    first = kwargs.get("batch_first", False)
    if packed:
        tin, min_ = (
            tr.pack_sequence(ts, enforce_sorted=enforce),
            R.pack_sequence(ms, enforce_sorted=enforce),
        )
    else:
        tin, min_ = tr.pad_sequence(ts, batch_first=first), R.pad_sequence(ms, batch_first=first)
    (tout, tstate), (mout, mstate) = tlayer(tin, *targs), mlayer(min_, *margs)
    if packed:
        np.testing.assert_array_equal(mout.batch_sizes.numpy(), tout.batch_sizes.numpy())
        tout, mout = tr.pad_packed_sequence(tout)[0], R.pad_packed_sequence(mout)[0]
    tstate = tstate if isinstance(tstate, tuple) else (tstate,)
    mstate = mstate if isinstance(mstate, tuple) else (mstate,)
    np.testing.assert_allclose(mout.numpy(), tout.detach().numpy(), atol=1e-12)
    for a, b in zip(mstate, tstate):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=1e-12)
    weights = np.arange(int(np.prod(tout.shape))).reshape(tout.shape) % 7
    (tout * torch.tensor(weights)).sum().backward(retain_graph=True)
    sum((s**2).sum() for s in tstate).backward()
    (mout * md.tensor(weights)).sum().backward(retain_graph=True)
    sum((s**2).sum() for s in mstate).backward()
    for a, b in zip(ms, ts):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-11)
    tparams = dict(tlayer.named_parameters())
    for n, p in mlayer.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[n].grad.numpy(), atol=1e-11)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize(
    "kwargs, hx", [({}, False), ({"num_layers": 2, "bidirectional": True}, True)]
)
def test_packed_sequences_match_torch(name, kwargs, hx):
    """Outputs and final states of variable-length batches are each sequence's own."""
    _compare(name, kwargs, hx=hx)


def test_packed_batch_first_sorted_input_matches_torch():
    _compare("GRU", {"batch_first": True}, lengths=(5, 4, 4, 2), enforce=True)


@pytest.mark.parametrize(
    "kwargs, packed, hx",
    [
        ({"proj_size": 2}, False, False),
        ({"proj_size": 2, "num_layers": 2, "bidirectional": True}, False, True),
        ({"proj_size": 3, "bidirectional": True, "batch_first": True}, False, False),
        ({"proj_size": 3, "bidirectional": True}, True, True),
    ],
)
def test_lstm_proj_size_matches_torch(kwargs, packed, hx):
    _compare("LSTM", kwargs, packed=packed, hx=hx)


def test_pack_and_pad_match_torch():
    torch = pytest.importorskip("torch")
    tr = torch.nn.utils.rnn
    seqs = [rng.standard_normal((n, 2)) for n in (2, 5, 3, 5, 1)]
    mp = R.pack_sequence([md.tensor(s) for s in seqs], enforce_sorted=False)
    tp = tr.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    np.testing.assert_array_equal(mp.data.numpy(), tp.data.numpy())
    for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
        np.testing.assert_array_equal(getattr(mp, field).numpy(), getattr(tp, field).numpy())
    for first in (False, True):
        mpad, mlen = R.pad_packed_sequence(mp, batch_first=first, padding_value=-1, total_length=7)
        tpad, tlen = tr.pad_packed_sequence(tp, batch_first=first, padding_value=-1, total_length=7)
        np.testing.assert_array_equal(mpad.numpy(), tpad.numpy())
        np.testing.assert_array_equal(mlen.numpy(), tlen.numpy())
    left = R.pad_sequence([md.tensor(s) for s in seqs], batch_first=True, padding_side="left")
    theirs = tr.pad_sequence([torch.tensor(s) for s in seqs], batch_first=True, padding_side="left")
    np.testing.assert_array_equal(left.numpy(), theirs.numpy())


@given(lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=seeds)
def test_packed_run_equals_each_sequence_alone(lengths, seed):
    r = np.random.default_rng(seed)
    md.manual_seed(seed)
    lstm = nn.LSTM(2, 3, bidirectional=True).double()
    seqs = [md.tensor(r.standard_normal((n, 2))) for n in lengths]
    out, (h, c) = lstm(R.pack_sequence(seqs, enforce_sorted=False))
    padded, got_lengths = R.pad_packed_sequence(out)
    assert got_lengths.numpy().tolist() == lengths
    for i, s in enumerate(seqs):
        alone, (h1, c1) = lstm(s)
        np.testing.assert_allclose(padded.numpy()[: len(s), i], alone.numpy(), atol=1e-12)
        np.testing.assert_array_equal(padded.numpy()[len(s) :, i], 0.0)
        np.testing.assert_allclose(h.numpy()[:, i], h1.numpy(), atol=1e-12)
        np.testing.assert_allclose(c.numpy()[:, i], c1.numpy(), atol=1e-12)


@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=5), first=st.booleans(), seed=seeds)
def test_pack_then_pad_round_trips(lengths, first, seed):
    r = np.random.default_rng(seed)
    seqs = [md.tensor(r.standard_normal((n, 2))) for n in lengths]
    padded = R.pad_sequence(seqs, batch_first=first)
    packed = R.pack_padded_sequence(padded, lengths, batch_first=first, enforce_sorted=False)
    assert packed.data.shape == (sum(lengths), 2)
    back, got = R.pad_packed_sequence(packed, batch_first=first)
    np.testing.assert_array_equal(back.numpy(), padded.numpy())
    assert got.numpy().tolist() == lengths


def test_errors():
    x = md.zeros(4, 2, 1)
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        R.pack_padded_sequence(x, [2, 4])
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 4\]"):
        R.pack_padded_sequence(x, [5, 1])
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(2, 3, proj_size=3)
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
        nn.RNNBase("GRU", 2, 3, proj_size=1)
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(1, 2, 2\)"):
        nn.LSTM(2, 3, proj_size=2)(md.zeros(4, 2, 2), (md.zeros(1, 2, 3), md.zeros(1, 2, 3)))
