"""The user's own data: "npz:PATH" arrays and "folder:PATH" image trees, and their checks."""

from __future__ import annotations

import numpy as np
import pytest

from mind_core.data import DatasetError, load_dataset
from tests.data.builders import image_folder, pixels, save_image


def good_arrays(**changes):
    arrays = {"x_train": pixels(6, 8, 8, 1, seed=1)[..., 0], "y_train": np.array([0, 1, 2] * 2),
              "x_test": pixels(3, 8, 8, 1, seed=2)[..., 0], "y_test": np.array([2, 1, 0])}
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def load_npz(tmp_path, **changes):
    path = tmp_path / "mine.npz"
    np.savez(path, **good_arrays(**changes))
    return load_dataset(f"npz:{path}")


def test_npz_grayscale_gets_a_channel_axis_and_computed_normalisation(tmp_path):
    data = load_npz(tmp_path)
    assert data.x_train.shape == (6, 8, 8, 1) and data.x_test.shape == (3, 8, 8, 1)
    assert data.y_train.dtype == np.int64 and data.num_classes == 3
    assert data.class_names == ("0", "1", "2")
    x = good_arrays()["x_train"] / 255
    assert data.mean == pytest.approx((x.mean(),), abs=1e-5)
    assert data.std == pytest.approx((x.std(),), abs=1e-5)


def test_npz_rgb_with_class_names(tmp_path):
    data = load_npz(tmp_path, x_train=pixels(6, 5, 7, 3), x_test=pixels(3, 5, 7, 3),
                    class_names=np.array(["x", "y", "z"]))
    assert data.image_shape == (5, 7, 3) and data.class_names == ("x", "y", "z")
    assert len(data.mean) == 3


@pytest.mark.parametrize(("changes", "message"), [
    ({"x_train": np.zeros((6, 8, 8), np.float32)}, "must be uint8"),
    ({"x_train": np.zeros((6, 8), np.uint8)}, r"shape \[n, h, w\]"),
    ({"x_train": np.zeros((6, 3, 8, 8), np.uint8)}, "1 or 3 channels"),
    ({"y_train": np.array([0, 1, 2, 0, 1, 5])}, "classes .3, 4. have no training images"),
    ({"y_train": np.array([0, 1, 2, 0, 1, -1])}, "negative labels"),
    ({"y_train": np.array([0.0, 1, 2, 0, 1, 2])}, "integer array"),
    ({"y_train": np.array([0, 1, 2])}, "3 labels for 6 images"),
    ({"y_test": np.array([0, 1, 3])}, "y_test has label 3"),
    ({"x_test": np.zeros((3, 9, 8), np.uint8)}, "same image shape"),
    ({"y_test": None}, r"lacks the arrays \['y_test'\]"),
    ({"x_test": np.zeros((0, 8, 8), np.uint8), "y_test": np.array([], np.int64)}, "is empty"),
    ({"class_names": np.array(["a", "b"])}, "2 class names for 3 classes"),
])
def test_malformed_npz_gives_a_clear_error(tmp_path, changes, message):
    with pytest.raises(DatasetError, match=message):
        load_npz(tmp_path, **changes)


def test_missing_or_unreadable_npz_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="is not an .npz archive"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, **good_arrays(class_names=np.array(["a", None, "c"], dtype=object)))
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(f"npz:{path}")


def test_folder_classes_are_sorted_names_and_pixels_are_kept(tmp_path):
    image_folder(tmp_path / "imgs", classes=("cat", "ant"), per_class=2, size=(6, 5))
    data = load_dataset(f"folder:{tmp_path / 'imgs'}", data_dir=tmp_path / "data")
    assert data.class_names == ("ant", "cat")
    assert data.x_train.shape == (4, 6, 5, 3) and data.y_train.tolist() == [0, 0, 1, 1]
    # builder: value 50 * (index in the given order) + i; "ant" was given second.
    assert data.x_train[:, 0, 0, 0].tolist() == [50, 51, 0, 1]
    assert (tmp_path / "data" / "cache").is_dir()  # decoded once, into the data dir's cache


def test_folder_of_grayscale_images_has_one_channel(tmp_path):
    image_folder(tmp_path, channels=1)
    data = load_dataset(f"folder:{tmp_path}")
    assert data.image_shape == (6, 5, 1) and len(data.mean) == 1


def test_folder_with_jpegs_and_mixed_modes_becomes_rgb(tmp_path):
    image_folder(tmp_path, channels=1)
    save_image(tmp_path / "train" / "ant" / "extra.jpg", np.zeros((6, 5, 3), np.uint8))
    data = load_dataset(f"folder:{tmp_path}")
    assert data.image_shape == (6, 5, 3) and len(data.y_train) == 5


def test_folder_empty_class_is_an_error(tmp_path):
    image_folder(tmp_path)
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"classes \['empty'\] have no images"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_test_class_unknown_to_train_is_an_error(tmp_path):
    image_folder(tmp_path)
    save_image(tmp_path / "test" / "zebra" / "0.png", np.zeros((6, 5, 3), np.uint8))
    with pytest.raises(DatasetError, match="zebra"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_with_images_of_different_sizes_is_an_error(tmp_path):
    image_folder(tmp_path)
    save_image(tmp_path / "test" / "cat" / "big.png", np.zeros((9, 9, 3), np.uint8))
    with pytest.raises(DatasetError, match="images differ in size.*big.png"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_without_test_split_is_an_error(tmp_path):
    image_folder(tmp_path)
    for path in sorted((tmp_path / "test").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (tmp_path / "test").rmdir()
    with pytest.raises(DatasetError, match="test is missing"):
        load_dataset(f"folder:{tmp_path}")


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'absent'}")


def test_changed_folder_is_decoded_again(tmp_path):
    image_folder(tmp_path / "imgs")
    assert len(load_dataset(f"folder:{tmp_path / 'imgs'}").y_train) == 4
    save_image(tmp_path / "imgs" / "train" / "cat" / "new.png", np.zeros((6, 5, 3), np.uint8))
    assert len(load_dataset(f"folder:{tmp_path / 'imgs'}").y_train) == 5


def test_a_quick_look_at_own_data_reads_classes_and_shape_without_the_images(tmp_path):
    from mind_core.data import describe_user_data

    path = tmp_path / "mine.npz"
    np.savez_compressed(path, **good_arrays(x_train=pixels(6, 5, 7, 3),
                                            x_test=pixels(3, 5, 7, 3)))
    info = describe_user_data(f"npz:{path}")
    assert (info.classes, info.image_shape, info.available) == (3, (5, 7, 3), True)
    image_folder(tmp_path / "imgs", classes=("cat", "ant", "bee"))
    assert describe_user_data(f"folder:{tmp_path / 'imgs'}").classes == 3

    np.savez(tmp_path / "partial.npz", x_train=pixels(2, 4, 4, 1))
    for name, message in ((f"npz:{tmp_path / 'partial.npz'}", r"lacks the arrays \['y_train'"),
                          (f"npz:{tmp_path / 'nope.npz'}", "does not exist"),
                          (f"folder:{tmp_path / 'nope'}", "does not exist"),
                          ("npz:", "needs a path"), ("cifar100", "not your own data")):
        with pytest.raises(DatasetError, match=message):
            describe_user_data(name)


# ------------------------------------------------------------------ hostile input (issue 14)
@pytest.mark.parametrize(("changes", "message"), [
    ({"y_train": np.array([0, 1, 2, 0, 1, 2**64 - 1], np.uint64)}, "has label 18446744073709551615"),
    ({"y_test": np.array([2, 1, 2**63], np.uint64)}, "y_test has label 9223372036854775808"),
    ({"y_train": np.array([0, 1, 2, 0, 1, 100])}, "label 100 but only 6 training images"),
])
def test_labels_beyond_any_class_count_are_refused_before_use(tmp_path, changes, message):
    """Unsigned 64-bit labels would wrap negative as int64 (a y_test of 2**63 passed as -1);
    a label beyond the number of training images cannot be a contiguous 0..K-1 range and
    would size arrays by its value."""
    with pytest.raises(DatasetError, match=message):
        load_npz(tmp_path, **changes)


def save_png16(path, values: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path)  # mode I;16: a 16-bit gray PNG


LEVELS16 = np.array([[0, 257, 32896], [65535, 1000, 40000]])  # 8-bit: 0, 1, 128, 255, 4, 156


@pytest.mark.parametrize("with_rgb", [False, True])
def test_16_bit_pngs_are_scaled_to_8_bits_not_clipped(tmp_path, with_rgb):
    for split in ("train", "test"):
        for k, name in enumerate(("a", "b")):
            save_png16(tmp_path / split / name / "0.png", LEVELS16 + k)
    if with_rgb:  # one colour image: the folder becomes RGB, the 16-bit images gray in it
        save_image(tmp_path / "train" / "a" / "rgb.png", np.zeros((2, 3, 3), np.uint8))
    data = load_dataset(f"folder:{tmp_path}", data_dir=tmp_path / "data")
    expected = [[0, 1, 128], [255, 4, 156]]
    assert data.x_train.shape[-1] == (3 if with_rgb else 1)
    assert data.x_train[0, ..., 0].tolist() == expected
    assert (data.x_train[0, ..., -1] == data.x_train[0, ..., 0]).all()


def png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims width x height pixels, with almost no data: what a
    decompression bomb looks like to Image.open, without the memory."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [30_000, 10_000])  # over twice Pillow's limit, and just over
def test_decompression_bombs_in_a_folder_are_a_dataset_error_naming_the_file(tmp_path, side):
    image_folder(tmp_path)
    bomb = tmp_path / "train" / "cat" / "bomb.png"
    png_header_only(bomb, side, side)
    with pytest.raises(DatasetError, match=f"image {bomb} is too large to decode safely"):
        load_dataset(f"folder:{tmp_path}", data_dir=tmp_path / "data")


def test_a_decompression_bomb_read_alone_is_a_dataset_error(tmp_path):
    from mind_core.data.images import read_image

    bomb = tmp_path / "bomb.png"
    png_header_only(bomb, 30_000, 30_000)
    with pytest.raises(DatasetError, match="bomb.png is too large to decode safely"):
        read_image(bomb)


def test_a_bare_path_ending_npz_is_npz_data(tmp_path, monkeypatch):
    from mind_core.data import describe_user_data

    np.savez(tmp_path / "mine.npz", **good_arrays())
    monkeypatch.chdir(tmp_path)
    assert load_dataset("mine.npz").num_classes == 3  # as `mind run --dataset mine.npz`
    assert describe_user_data(str(tmp_path / "mine.npz")).classes == 3
    with pytest.raises(DatasetError, match="does not exist"):  # not "unknown dataset"
        load_dataset("other.npz")
