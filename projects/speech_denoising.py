"""Speech denoising with a 1-D convolutional autoencoder over STFT frames, against a
classical Wiener filter on the same noisy mixtures.

Clean speech: Free Spoken Digit Dataset recordings (six male speakers; five digits of one
speaker joined into a ~2 s "digit string", since single digits are too short for PESQ),
CMU ARCTIC sentences and SiSec 2011 sources; noise: the Speech Commands background
recordings (dishes, exercise bike, running tap). Everything is resampled to 8 kHz.

Splits, so that the test set is unseen in every way: FSDD speakers george, jackson, lucas,
nicolas train, yweweler validates, theo tests; ARCTIC speaker axb tests, the others train;
SiSec's male4 sources test, female4 train. Each noise recording is cut in time: its first
60% gives training segments, the next 10% validation, the last 30% test. A mixture is a
clean clip (scaled to RMS 0.05) plus a noise segment at a given SNR (``mix_at_snr``):
training mixtures at 0, 5 or 10 dB drawn at random, and every test clip at each of 0, 5
and 10 dB.

Model: the STFT (librosa, 32 ms Hann window, 8 ms hop: 129 frequency bins) of the mixture
as a (129, T) signal, frequency bins as channels and time as the convolution axis. The
input is the log-magnitude, standardised per bin with the training statistics; an encoder
(Conv1d 129 -> 96, then 96 -> 48 with stride 2 in time) and a decoder (ConvTranspose1d back
to full time resolution, Conv1d to 129 channels, sigmoid) give a mask in (0, 1) for every
time-frequency bin. The loss is the mean squared error between the masked noisy magnitude
and the clean magnitude. The waveform comes back by inverse STFT with the noisy phase.

Baseline: a Wiener filter with decision-directed a-priori SNR (Ephraim & Malah), the noise
power of each bin estimated from the mixture itself (the mean of its quietest 10% frames).

Reported on the test mixtures, per input SNR: SNR and segmental SNR improvement, STOI
(pystoi) and narrow-band PESQ (pesq), for the noisy input, the Wiener filter and the
autoencoder; WAVs and spectrograms of a few noisy / denoised / clean examples.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import (
    DataLoader,
    DataNotFoundError,
    TensorDataset,
    data_root,
    load_fsdd,
    mix_at_snr,
)
from minidl.metrics import segmental_snr, snr
from minidl.nn import functional as F
from minidl.train import EarlyStopping, fit
from minidl.viz import learning_curves
from projects.runner import RunContext

DESCRIPTION = "speech denoising: 1-D conv autoencoder on STFT frames vs a Wiener filter"
NOISES = ["doing_the_dishes", "exercise_bike", "running_tap"]
ARCTIC = [
    *(f"cmu_arctic_us_aew_a000{i}" for i in (1, 2, 3)),
    *(f"cmu_arctic_us_axb_a000{i}" for i in (4, 5, 6)),
    *(f"arctic_a00{i:02d}" for i in (7, 8, 9, 10)),
]
SISEC = [f"dev1_{who}4_src_{i}" for who in ("female", "male") for i in (1, 2, 3, 4)]
DATA = [
    *(f"speech/noise_speechcommands/{n}.wav" for n in NOISES),
    *(f"speech/cmu_arctic/{n}.wav" for n in ARCTIC),
    *(f"speech/sisec2011_speech/{n}.wav" for n in SISEC),
]  # and the 3,000 FSDD recordings under speech/fsdd/recordings/
FSDD_SPEAKERS = {
    "train": ["george", "jackson", "lucas", "nicolas"],
    "val": ["yweweler"],
    "test": ["theo"],
}
TEST_SPEAKERS = {"arctic": "axb", "sisec": "male4"}  # the rest of these sets trains
QUICK_CLIPS = ["cmu_arctic_us_aew_a0001", "cmu_arctic_us_axb_a0004", *SISEC[3:5]]
NOISE_PARTS = {"train": (0.0, 0.6), "val": (0.6, 0.7), "test": (0.7, 1.0)}
DIGIT_STRINGS = {"train": 60, "val": 10, "test": 20}  # per FSDD speaker
DIGITS = 5  # per digit string
CHUNK_S = 2.0  # long training clips are cut into chunks of this length
SR = 8000
N_FFT = 256  # 32 ms
HOP = 64  # 8 ms
LEVEL = 0.05  # RMS of every clean clip before mixing
SNRS = (0, 5, 10)
MIXTURES_PER_CLIP = 3  # training mixtures of each clean clip (other noise and SNR)
WINDOW = 64  # training frames per example (0.5 s); even, for the stride-2 round trip
HIDDEN, CODE = 96, 48
EPOCHS = 30
PATIENCE = 6  # the validation loss (one unseen speaker) jumps by 10-40% between epochs
BATCH = 32
LR = 1e-3
EXAMPLES = {"fsdd": 0, "arctic": 0, "sisec": 0}  # which test clip of each source is saved


# --------------------------------------------------------------------------- data
class Clip(NamedTuple):
    """One clean recording: source set, speaker, name, and the (T,) float32 waveform."""

    source: str
    speaker: str
    name: str
    wave: np.ndarray


class Mixture(NamedTuple):
    """A clean clip with a noise segment at an SNR: the noise's recording and the sample
    range [start, stop) of it that was used."""

    clip: Clip
    noisy: np.ndarray
    snr_db: float
    noise: str
    start: int
    stop: int


def load_audio(path: Path) -> np.ndarray:
    """A WAV file as (T,) float32 at SR (librosa resamples)."""
    import librosa

    if not path.is_file():
        raise DataNotFoundError(f"{path} is missing (see the data table in the README)")
    wave, _ = librosa.load(path, sr=SR, mono=True)
    return wave


def clean_clips(ctx: RunContext, rng: np.random.Generator) -> dict[str, list[Clip]]:
    """The clean speech of each split, at RMS LEVEL; long training clips cut into chunks.

    FSDD: DIGITS random recordings of one speaker joined into a digit string; ARCTIC and
    SiSec: whole clips (chunks of CHUNK_S for training)."""
    speech = data_root() / "speech"
    splits: dict[str, list[Clip]] = {"train": [], "val": [], "test": []}
    fsdd = load_fsdd()  # 8 kHz already; sorted by digit, speaker, index
    names = [f"{d}_{s}" for d, s in zip(fsdd.targets, fsdd.speakers)]
    for split, speakers in FSDD_SPEAKERS.items():
        count = ctx.subset(DIGIT_STRINGS[split], 2 if split == "train" else 1)
        for speaker in speakers:
            mine = [i for i, s in enumerate(fsdd.speakers) if s == speaker]
            for row in rng.choice(mine, size=(count, DIGITS), replace=False):
                wave = np.concatenate([fsdd.waves[i] for i in row])
                name = "+".join(f"{names[i]}@{i}" for i in row)  # @ its place in fsdd
                splits[split].append(Clip("fsdd", speaker, name, wave))
    for source, folder, names in (
        ("arctic", "cmu_arctic", ARCTIC),
        ("sisec", "sisec2011_speech", SISEC),
    ):
        for name in [n for n in names if not ctx.quick or n in QUICK_CLIPS]:
            speaker = _speaker(source, name)
            split = "test" if speaker == TEST_SPEAKERS[source] else "train"
            wave = load_audio(speech / folder / f"{name}.wav")
            if split == "train":
                step = int(CHUNK_S * SR)
                pieces = [wave[i : i + step] for i in range(0, len(wave) - step // 2, step)]
            else:
                pieces = [wave[: int(3 * SR)] if ctx.quick else wave]
            for i, piece in enumerate(pieces):
                splits[split].append(Clip(source, speaker, f"{name}#{i}", piece))
    return {
        split: [c._replace(wave=c.wave * (LEVEL / np.sqrt(np.mean(c.wave**2)))) for c in clips]
        for split, clips in splits.items()
    }


def _speaker(source: str, name: str) -> str:
    """The speaker of an ARCTIC or SiSec clip. The ``arctic_a00NN`` clips do not name
    theirs: a male voice (median F0 ~120 Hz by librosa's pyin; axb's is ~237 Hz)."""
    if source == "sisec":
        return name.split("_")[1]  # dev1_female4_src_1 -> female4
    return name.split("_")[3] if name.startswith("cmu_arctic_us_") else "arctic-unnamed"


def mixtures(
    triples: list[tuple[Clip, float, str]], split: str, rng: np.random.Generator
) -> list[Mixture]:
    """Each (clip, SNR in dB, noise recording) mixed with a segment of that recording
    drawn uniformly from its ``split`` part."""
    recordings = _noise_recordings()
    out = []
    for clip, snr_db, name in triples:
        lo, hi = (int(f * len(recordings[name])) for f in NOISE_PARTS[split])
        start = int(rng.integers(lo, hi - len(clip.wave) + 1))
        segment = recordings[name][start : start + len(clip.wave)]
        noisy, _ = mix_at_snr(clip.wave, segment, snr_db)
        out.append(Mixture(clip, noisy, snr_db, name, start, start + len(clip.wave)))
    return out


_NOISE_CACHE: dict[str, np.ndarray] = {}


def _noise_recordings() -> dict[str, np.ndarray]:
    if not _NOISE_CACHE:
        folder = data_root() / "speech" / "noise_speechcommands"
        _NOISE_CACHE.update({n: load_audio(folder / f"{n}.wav") for n in NOISES})
    return _NOISE_CACHE


def build_mixtures(ctx: RunContext) -> dict[str, list[Mixture]]:
    """Training mixtures (MIXTURES_PER_CLIP per clip, SNR and noise drawn at random),
    validation and test mixtures (every clip at every SNR of SNRS, the noise recordings
    rotating over clips and SNRs so that each SNR meets each noise equally often)."""
    rng = np.random.default_rng(ctx.seed)
    clips = clean_clips(ctx, rng)
    train = [
        (c, float(rng.choice(SNRS)), str(rng.choice(NOISES)))
        for c in clips["train"]
        for _ in range(MIXTURES_PER_CLIP)
    ]

    def every_snr(split: str) -> list[tuple[Clip, float, str]]:
        return [
            (c, float(s), NOISES[(i + j) % len(NOISES)])
            for i, c in enumerate(clips[split])
            for j, s in enumerate(SNRS)
        ]

    return {
        "train": mixtures(train, "train", rng),
        "val": mixtures(every_snr("val"), "val", rng),
        "test": mixtures(every_snr("test"), "test", rng),
    }


# --------------------------------------------------------------------------- features
def stft(wave: np.ndarray) -> np.ndarray:
    """(T,) -> complex (F = N_FFT // 2 + 1, frames) STFT (librosa, Hann window, centred)."""
    import librosa

    return librosa.stft(wave, n_fft=N_FFT, hop_length=HOP)


def istft(spectrum: np.ndarray, length: int) -> np.ndarray:
    """The inverse of ``stft``, cut or padded to ``length`` samples."""
    import librosa

    return librosa.istft(spectrum, hop_length=HOP, n_fft=N_FFT, length=length)


def log_magnitude(spectrum: np.ndarray) -> np.ndarray:
    """log(|Y| + 1e-4): a floor far below speech and noise magnitudes (~1e-2 .. 10)."""
    return np.log(np.abs(spectrum) + 1e-4).astype(np.float32)


class Standardiser(NamedTuple):
    """Per-bin mean and std (F, 1) of the training log-magnitudes."""

    mean: np.ndarray
    std: np.ndarray

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std).astype(np.float32)


def training_windows(
    batch: list[Mixture], scale: Standardiser | None = None
) -> tuple[np.ndarray, np.ndarray, Standardiser]:
    """Mixtures cut into WINDOW-frame pieces (the last, shorter piece dropped):
    features (N, F, WINDOW) float32, the standardised noisy log-magnitude, and targets
    (N, 2, F, WINDOW): the noisy and the clean magnitude. ``scale``: the standardiser
    (None: fitted here, on these mixtures)."""
    features, targets = [], []
    for m in batch:
        noisy, clean = stft(m.noisy), stft(m.clip.wave)
        for t in range(0, noisy.shape[1] - WINDOW + 1, WINDOW):
            cut = slice(t, t + WINDOW)
            features.append(log_magnitude(noisy[:, cut]))
            targets.append(np.stack([np.abs(noisy[:, cut]), np.abs(clean[:, cut])]))
    x = np.stack(features)
    if scale is None:
        scale = Standardiser(x.mean(axis=(0, 2))[:, None], x.std(axis=(0, 2))[:, None] + 1e-6)
    return scale(x), np.stack(targets).astype(np.float32), scale


# --------------------------------------------------------------------------- model
class SpectralAutoencoder(nn.Module):
    """features (N, F, T) -> mask (N, F, T) in (0, 1), T even: frequency bins are the
    channels, time the convolution axis.

    encoder: Conv1d(F, HIDDEN, 5) -> ReLU -> Conv1d(HIDDEN, CODE, 5, stride 2) -> ReLU:
             (N, CODE, T / 2), a code of CODE numbers every 16 ms;
    decoder: ConvTranspose1d(CODE, HIDDEN, 4, stride 2) -> ReLU -> Conv1d(HIDDEN, F, 5)
             -> sigmoid."""

    def __init__(self, bins: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv1d(bins, HIDDEN, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(HIDDEN, CODE, 5, stride=2, padding=2),
            nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(CODE, HIDDEN, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(HIDDEN, bins, 5, padding=2),
            nn.Sigmoid(),
        )

    def forward(self, features: md.Tensor) -> md.Tensor:
        return self.decoder(self.encoder(features))


def masked_magnitude_loss(mask: md.Tensor, target: md.Tensor) -> md.Tensor:
    """MSE between the masked noisy magnitude and the clean one: mask (N, F, T), target
    (N, 2, F, T) holding |noisy| and |clean|."""
    return F.mse_loss(mask * target[:, 0], target[:, 1])


def enhance(model: nn.Module, scale: Standardiser, noisy: np.ndarray) -> np.ndarray:
    """A noisy waveform (T,) -> the denoised one: the mask times the noisy magnitude, with
    the noisy phase, back through the inverse STFT."""
    spectrum = stft(noisy)
    frames = spectrum.shape[1]
    features = scale(log_magnitude(spectrum))
    if frames % 2:  # the stride-2 round trip needs an even length: repeat the last frame
        features = np.concatenate([features, features[:, -1:]], axis=1)
    model.eval()
    with md.no_grad():
        mask = model(md.tensor(features[None])).numpy()[0, :, :frames]
    return istft(mask * spectrum, len(noisy))


def wiener(noisy: np.ndarray, alpha: float = 0.98, quiet: float = 0.1) -> np.ndarray:
    """The classical baseline: a Wiener gain G = xi / (1 + xi) per bin and frame, with the
    a-priori SNR xi by the decision-directed rule
    ``xi_t = alpha |S_{t-1}|^2 / lambda + (1 - alpha) max(gamma_t - 1, 0)``,
    gamma_t = |Y_t|^2 / lambda the a-posteriori SNR, and the noise power lambda of each
    bin the mean of the mixture's ``quiet`` share of frames with the least energy."""
    spectrum = stft(noisy)
    power = np.abs(spectrum) ** 2
    energy = power.sum(axis=0)
    quietest = np.argsort(energy)[: max(1, int(quiet * len(energy)))]
    noise = power[:, quietest].mean(axis=1) + 1e-12
    gain = np.empty_like(power)
    previous = np.zeros_like(noise)  # |S_{t-1}|^2
    for t in range(power.shape[1]):
        gamma = power[:, t] / noise
        xi = alpha * previous / noise + (1 - alpha) * np.maximum(gamma - 1, 0)
        gain[:, t] = xi / (1 + xi)
        previous = (gain[:, t] ** 2) * power[:, t]
    return istft(gain * spectrum, len(noisy))


# --------------------------------------------------------------------------- scores
def scores(clean: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """SNR, segmental SNR (32 ms frames), STOI and narrow-band PESQ of an estimate."""
    from pesq import PesqError, pesq
    from pystoi import stoi

    quality = pesq(SR, clean, estimate, "nb", on_error=PesqError.RETURN_VALUES)
    return {
        "snr": snr(clean, estimate),
        "segsnr": segmental_snr(clean, estimate, frame=N_FFT),
        "stoi": float(stoi(clean, estimate, SR)),
        "pesq": float(quality) if quality >= -0.5 else float("nan"),  # < 0: an error code
    }


def evaluate_methods(
    test: list[Mixture], model: nn.Module, scale: Standardiser
) -> tuple[list[dict[str, Any]], dict[int, np.ndarray]]:
    """Scores of every test mixture for the noisy input and both denoisers; returns the
    rows and the denoised waveforms of each method by mixture index."""
    rows, outputs = [], {}
    for i, m in enumerate(test):
        estimates = {
            "noisy": m.noisy,
            "wiener": wiener(m.noisy),
            "autoencoder": enhance(model, scale, m.noisy),
        }
        outputs[i] = estimates
        row = {"source": m.clip.source, "clip": m.clip.name, "snr_in": m.snr_db, "noise": m.noise}
        for method, estimate in estimates.items():
            row[method] = scores(m.clip.wave, estimate)
        rows.append(row)
    return rows, outputs


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per input SNR and method: mean SNR and segmental-SNR improvement over the noisy
    input (dB), mean STOI and PESQ (PESQ over the mixtures where it could be computed)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for snr_in in SNRS:
        chosen = [r for r in rows if r["snr_in"] == snr_in]
        out[f"{snr_in}dB"] = {
            method: {
                "snr_improvement": float(
                    np.mean([r[method]["snr"] - r["noisy"]["snr"] for r in chosen])
                ),
                "segsnr_improvement": float(
                    np.mean([r[method]["segsnr"] - r["noisy"]["segsnr"] for r in chosen])
                ),
                "segsnr": float(np.mean([r[method]["segsnr"] for r in chosen])),
                "stoi": float(np.mean([r[method]["stoi"] for r in chosen])),
                "pesq": float(np.nanmean([r[method]["pesq"] for r in chosen])),
                "mixtures": len(chosen),
            }
            for method in ("noisy", "wiener", "autoencoder")
        }
    return out


# --------------------------------------------------------------------------- run
def run(ctx: RunContext) -> None:
    start = time.perf_counter()
    data = build_mixtures(ctx)
    ctx.data(**{split: len(ms) for split, ms in data.items()})
    x, y, scale = training_windows(data["train"])
    xv, yv, _ = training_windows(data["val"], scale)
    ctx.log(f"{len(x):,} training windows of {WINDOW} frames, {len(xv):,} validation")
    ctx.record(
        windows={"train": len(x), "val": len(xv)},
        clean_clips={s: len({m.clip.name for m in ms}) for s, ms in data.items()},
        data_seconds=round(time.perf_counter() - start, 1),
    )

    md.manual_seed(ctx.seed)
    model = SpectralAutoencoder(x.shape[1])
    epochs = ctx.epochs_or(EPOCHS, 1)
    train_start = time.perf_counter()
    history = fit(
        model,
        loss_fn=masked_magnitude_loss,
        optimizer=optim.Adam(model.parameters(), lr=LR),
        train_loader=DataLoader(TensorDataset(x, y), BATCH, shuffle=True, generator=ctx.seed),
        epochs=epochs,
        val_loader=DataLoader(TensorDataset(xv, yv), 256),
        callbacks=[
            EarlyStopping("val_loss", patience=PATIENCE),
            ctx.epoch_log("autoencoder", epochs),
        ],
        progress=False,
    )
    ctx.record(
        parameters=sum(p.numel() for p in model.parameters()),
        train_time_s=round(time.perf_counter() - train_start, 1),
        curves={k: history.series(k) for k in ("train_loss", "val_loss")},
    )
    learning_curves(
        {k: history.series(k) for k in ("train_loss", "val_loss")},
        ctx.figure("learning_curves"),
        title="masked-magnitude MSE",
    )

    rows, outputs = evaluate_methods(data["test"], model, scale)
    summary = summarise(rows)
    for level, methods in summary.items():
        shown = "; ".join(
            f"{m} dSNR={v['snr_improvement']:+.1f} STOI={v['stoi']:.3f} PESQ={v['pesq']:.2f}"
            for m, v in methods.items()
        )
        ctx.log(f"test at {level}: {shown}")
    ctx.record(test=summary, test_rows=rows)
    improvement_figure(summary, ctx.figure("improvement_by_snr"))
    save_examples(ctx, data["test"], outputs)


def save_examples(ctx: RunContext, test: list[Mixture], outputs: dict[int, dict]) -> None:
    """For one 5 dB test clip of each source: WAVs (noisy, Wiener, denoised, clean) and a
    figure of their spectrograms."""
    import soundfile

    saved = {}
    for source, which in EXAMPLES.items():
        found = [i for i, m in enumerate(test) if m.clip.source == source and m.snr_db == 5]
        if len(found) <= which:
            continue
        i = found[which]
        waves = {
            "noisy": outputs[i]["noisy"],
            "wiener": outputs[i]["wiener"],
            "denoised": outputs[i]["autoencoder"],
            "clean": test[i].clip.wave,
        }
        for kind, wave in waves.items():
            soundfile.write(ctx.out / f"{source}_{kind}.wav", wave, SR)
        spectrogram_figure(waves, ctx.figure(f"spectrograms_{source}"), test[i])
        saved[source] = {"clip": test[i].clip.name, "noise": test[i].noise, "snr_in": 5}
    ctx.record(examples=saved)


# --------------------------------------------------------------------------- figures
def spectrogram_figure(waves: dict[str, np.ndarray], path: Path, mixture: Mixture) -> None:
    """One panel per waveform: its log-power spectrogram in dB, time against frequency."""
    from minidl.viz.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(
        len(waves), 1, figsize=(7, 2.0 * len(waves)), sharex=True, layout="constrained"
    )
    duration = len(mixture.clip.wave) / SR
    for ax, (kind, wave) in zip(axes, waves.items()):
        db = 20 * np.log10(np.abs(stft(wave)) + 1e-5)
        image = ax.imshow(
            db, origin="lower", aspect="auto", extent=(0, duration, 0, SR / 2000),
            vmin=-60, vmax=20, cmap="magma",
        )  # fmt: skip
        ax.set(ylabel="kHz", title=kind)
    axes[-1].set(xlabel="time (s)")
    fig.colorbar(image, ax=axes, label="dB")
    fig.suptitle(f"{mixture.clip.source} test clip + {mixture.noise} at {mixture.snr_db:g} dB")
    save_figure(fig, path)


def improvement_figure(summary: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    """Four panels against input SNR: SNR and segmental SNR improvement, STOI, PESQ."""
    from minidl.viz.plots import place_legend, pyplot, save_figure

    plt = pyplot()
    panels = [
        ("snr_improvement", "SNR improvement (dB)"),
        ("segsnr_improvement", "segmental SNR improvement (dB)"),
        ("stoi", "STOI"),
        ("pesq", "PESQ (narrow-band)"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), layout="constrained")
    levels = list(summary)
    for ax, (key, label) in zip(axes, panels):
        for k, method in enumerate(("noisy", "wiener", "autoencoder")):
            values = [summary[level][method][key] for level in levels]
            ax.plot(SNRS, values, marker="o", color=f"C{k}", label=method)
        ax.set(xlabel="input SNR (dB)", ylabel=label, xticks=SNRS)
        ax.grid(alpha=0.3)
        place_legend(ax)
    fig.suptitle("test mixtures (unseen speakers, unseen noise segments)")
    save_figure(fig, path)
