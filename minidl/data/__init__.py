"""minidl.data: datasets, batching, image transforms and loaders of real data sets.

NumPy only; Pillow (images), soundfile (WAV) and medmnist are imported when first needed.
Data files are found under `data_root()` (``$MINIDL_DATA``, else ``~/.cache/minidl``).
"""

from .archive import read_files
from .audio import SpokenDigits, load_fsdd, mix_at_snr, read_wav
from .cache import cache_root, cached_arrays
from .cifar import load_cifar10, load_cifar100
from .dataset import (
    ConcatDataset,
    Dataset,
    LabeledData,
    Subset,
    TensorDataset,
    class_weights,
    random_split,
    stratified_split,
)
from .distributed import DistributedSampler
from .imagefolder import ImageFolder, decode_image
from .imdb import load_imdb, load_movie_reviews, read_text_classes
from .keras_imdb import load_keras_imdb, load_keras_imdb_word_index
from .loader import DataLoader, default_collate
from .medmnist import load_medmnist
from .mnist import load_fashion_mnist, load_mnist, parse_idx, read_idx
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from .sources import DataCorruptError, DataNotFoundError, data_root, fetch, verify_file
from .tabular import TabularData, load_adbench, load_creditcard, load_csv
from .text import BPTTBatches, CharVocab, load_janeausten, load_text, load_tinyshakespeare
from .transforms import (
    ColorJitter,
    Compose,
    GaussianNoise,
    Normalize,
    RandomAffine,
    RandomCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
    ToTensor,
    to_float_chw,
)
from .vision import CIFAR10, MNIST, FashionMNIST, VisionDataset
from .vocab import Vocab, basic_english, build_vocab_from_iterator, get_tokenizer
from .worker import WorkerInfo, get_worker_info

__all__ = [
    "CIFAR10",
    "MNIST",
    "BPTTBatches",
    "BatchSampler",
    "CharVocab",
    "ColorJitter",
    "Compose",
    "ConcatDataset",
    "DataCorruptError",
    "DataLoader",
    "DataNotFoundError",
    "Dataset",
    "DistributedSampler",
    "FashionMNIST",
    "GaussianNoise",
    "ImageFolder",
    "LabeledData",
    "Normalize",
    "RandomAffine",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomRotation",
    "RandomSampler",
    "RandomVerticalFlip",
    "Resize",
    "Sampler",
    "SequentialSampler",
    "SpokenDigits",
    "Subset",
    "SubsetRandomSampler",
    "TabularData",
    "TensorDataset",
    "ToTensor",
    "VisionDataset",
    "Vocab",
    "WeightedRandomSampler",
    "WorkerInfo",
    "basic_english",
    "build_vocab_from_iterator",
    "cache_root",
    "cached_arrays",
    "class_weights",
    "data_root",
    "decode_image",
    "default_collate",
    "fetch",
    "get_tokenizer",
    "get_worker_info",
    "load_adbench",
    "load_cifar10",
    "load_cifar100",
    "load_creditcard",
    "load_csv",
    "load_fashion_mnist",
    "load_fsdd",
    "load_imdb",
    "load_janeausten",
    "load_keras_imdb",
    "load_keras_imdb_word_index",
    "load_medmnist",
    "load_mnist",
    "load_movie_reviews",
    "load_text",
    "load_tinyshakespeare",
    "mix_at_snr",
    "parse_idx",
    "random_split",
    "read_files",
    "read_idx",
    "read_text_classes",
    "stratified_split",
    "to_float_chw",
    "verify_file",
]
