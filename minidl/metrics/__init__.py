"""Evaluation metrics on NumPy arrays or tensors (outside the graph): image quality
(``psnr``), speech enhancement (``snr``, ``segmental_snr``), binary detection scores over
anomaly scores (scikit-learn's metrics, with the threshold choice written out), and the
Fréchet distance between the features of real and generated images
(``minidl.metrics.fid.fid``, with a feature network trained on the domain); language
models: perplexity and bits per character of a loss in nats, and measures of generated
text (real-word share, repeated n-gram rate)."""

from .audio import segmental_snr, snr
from .detection import best_f1_threshold, detection_report

# minidl.metrics.fid stays the module (the name for it): its function is fid.fid
from .fid import FID, FeatureNet, feature_network, frechet_distance
from .image import psnr
from .text import bits_per_character, perplexity, real_word_share, repeated_ngram_rate, words

__all__ = [
    "FID",
    "FeatureNet",
    "best_f1_threshold",
    "bits_per_character",
    "detection_report",
    "feature_network",
    "frechet_distance",
    "perplexity",
    "psnr",
    "real_word_share",
    "repeated_ngram_rate",
    "segmental_snr",
    "snr",
    "words",
]
