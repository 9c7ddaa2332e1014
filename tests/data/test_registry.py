"""Registry: names, availability, search order and the messages of load_dataset."""

from __future__ import annotations

import numpy as np
import pytest

from mind_core.data import (
    ENV_VAR,
    DatasetError,
    get_spec,
    list_datasets,
    load_dataset,
    search_roots,
)
from tests.data.builders import cifar_archive, fmnist_folder

NAMES = {"fmnist-mini", "synthetic", "fmnist", "cifar100", "tinyimagenet", "core50",
         "core50-frames", "synbols"}


def infos(data_dir=None):
    return {info.name: info for info in list_datasets(data_dir)}


def test_list_datasets_reports_every_name_with_shape_and_classes():
    listed = infos()
    assert set(listed) == NAMES
    assert listed["cifar100"].classes == 100 and listed["cifar100"].image_shape == (32, 32, 3)
    assert listed["tinyimagenet"].image_shape == (64, 64, 3)
    assert listed["core50-frames"].classes == 50
    assert listed["synbols"].classes == 200
    assert all(info.how_to_get and info.description for info in listed.values())


def test_only_builtin_and_generated_sets_are_available_in_an_empty_environment():
    available = {name for name, info in infos().items() if info.available}
    assert available == {"fmnist-mini", "synthetic"}


def test_availability_follows_data_dir_argument(tmp_path):
    data_dir = tmp_path / "data"
    cifar_archive(data_dir / "cifar-100-python.tar.gz")
    fmnist_folder(data_dir / "fashion-mnist")
    listed = infos(data_dir)
    assert listed["cifar100"].available
    assert listed["cifar100"].location == str(data_dir / "cifar-100-python.tar.gz")
    assert listed["fmnist"].available
    assert not listed["tinyimagenet"].available
    assert not infos()["cifar100"].available  # without the argument it is not found


def test_availability_follows_environment_variable(tmp_path, monkeypatch):
    env_dir = tmp_path / "env"
    cifar_archive(env_dir / "cifar-100-python.tar.gz")
    assert not infos()["cifar100"].available
    monkeypatch.setenv(ENV_VAR, str(env_dir))
    assert infos()["cifar100"].available


def test_default_location_is_under_home(isolated_locations):
    cifar_archive(isolated_locations / ".cache" / "mind" / "data" / "cifar-100-python.tar.gz")
    assert infos()["cifar100"].available


def test_search_order_is_argument_then_environment_then_default(tmp_path, monkeypatch,
                                                                isolated_locations):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    roots = search_roots(tmp_path / "arg")
    assert roots == [tmp_path / "arg", tmp_path / "env",
                     isolated_locations / ".cache" / "mind" / "data"]


def test_data_dir_argument_wins_over_environment(tmp_path, monkeypatch):
    fmnist_folder(tmp_path / "arg" / "fashion-mnist", per_class_train=1)
    fmnist_folder(tmp_path / "env" / "fashion-mnist", per_class_train=2)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert len(load_dataset("fmnist").x_train) == 20
    assert len(load_dataset("fmnist", data_dir=tmp_path / "arg").x_train) == 10


def test_missing_dataset_says_what_where_and_how(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar100", data_dir=tmp_path / "nowhere")
    message = str(err.value)
    assert "cifar-100-python.tar.gz" in message  # what is missing
    assert str(tmp_path / "nowhere") in message  # where it looked
    assert "mind datasets download cifar100" in message  # how to get it


@pytest.mark.parametrize("name", ["tinyimagenet", "core50", "core50-frames", "synbols",
                                  "fmnist"])
def test_every_missing_dataset_raises_a_readable_error(name, tmp_path):
    with pytest.raises(DatasetError, match=f"dataset '{name}' is not available") as err:
        load_dataset(name, data_dir=tmp_path)
    assert get_spec(name).how_to_get in str(err.value)


def test_unknown_name_lists_the_known_names():
    with pytest.raises(DatasetError) as err:
        load_dataset("imagenet-21k")
    message = str(err.value)
    assert "imagenet-21k" in message
    for name in NAMES | {"npz:PATH", "folder:PATH"}:
        assert name in message


@pytest.mark.parametrize("name", ["npz:", "folder:"])
def test_user_prefix_without_path_is_an_error(name):
    with pytest.raises(DatasetError, match="needs a path"):
        load_dataset(name)


def test_loaded_datasets_match_their_registry_entry():
    for name in ("fmnist-mini", "synthetic"):
        spec, data = get_spec(name), load_dataset(name)
        assert data.image_shape == spec.image_shape
        assert data.num_classes == spec.classes
        assert data.augment == spec.augment
        assert data.y_train.dtype == np.int64


@pytest.mark.parametrize("typed, meant", [
    ("fmnist_mini", "fmnist-mini"), ("cifar-100", "cifar100"), ("tiny-imagenet", "tinyimagenet")])
def test_a_misspelt_name_gets_a_did_you_mean(typed, meant):
    with pytest.raises(DatasetError) as err:
        load_dataset(typed)
    assert str(err.value).startswith(f"unknown dataset '{typed}' (did you mean {meant}?);")
