"""Datasets as numpy arrays: the built-in fmnist-mini, public benchmarks and the user's own.

    load_dataset(name, data_dir=None) -> Dataset       list_datasets(data_dir=None)
    download("cifar100", dest=None)                    prepare_synbols(out_path, ...)

Where files are looked for: see mind_core.data.locations. No framework is imported here;
Pillow (optional) is imported only when images are decoded.
"""

from mind_core.data.base import Dataset, DatasetError
from mind_core.data.download import download
from mind_core.data.locations import ENV_VAR, default_root, search_roots
from mind_core.data.registry import (
    SPECS,
    USER_FORMATS,
    DatasetInfo,
    DatasetSpec,
    describe_user_data,
    get_spec,
    list_datasets,
    load_dataset,
)
from mind_core.data.synbols_gen import prepare_synbols
from mind_core.data.synthetic import make_synthetic

__all__ = [
    "ENV_VAR", "SPECS", "USER_FORMATS", "Dataset", "DatasetError", "DatasetInfo", "DatasetSpec",
    "default_root", "describe_user_data", "download", "get_spec", "list_datasets",
    "load_dataset", "make_synthetic", "prepare_synbols", "search_roots",
]
