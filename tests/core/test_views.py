"""Self-supervised label augmentation (mind_core.views): the views, the labels of (class,
view) pairs, the summed test-time scores, and the loop with the fake backend."""

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mind_core import checkpoint
from mind_core.config import ConfigError, resolve_config
from mind_core.engine import Engine, Interrupted
from mind_core.inference import Predictor
from mind_core.protocol import Augment, Subnet
from mind_core.runner import evaluate_run, resume_run, start_run
from mind_core.views import LABEL_TRANSFORMS, VIEW_COUNTS, Views, apply_view
from tests.fakes import FakeBackend, StopAfter, tiny_dataset

FAKE = "tests.fakes:FakeBackend"
SETTINGS = ["tasks=3", "teacher.epochs=2", "distill.epochs=2", "teacher.batch_size=16",
            "distill.batch_size=16", f"backend={FAKE}"]
TRANSFORMS = [t for t in LABEL_TRANSFORMS if t != "none"]


def colour_dataset(seed: int = 0):
    """tiny_dataset's prototypes in three channels (the channels transform needs colour)."""
    data = tiny_dataset(seed=seed)
    tint = np.array([1.0, 0.6, 0.3])
    return attrs.evolve(data, x_train=(data.x_train * tint).astype(np.uint8),
                        x_test=(data.x_test * tint).astype(np.uint8),
                        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def load_colour(*_):
    return colour_dataset()


images = st.integers(1, 6).flatmap(lambda n: st.integers(2, 5).flatmap(
    lambda side: st.lists(st.integers(0, 255), min_size=n * side * side * 3,
                          max_size=n * side * side * 3).map(
        lambda v: np.array(v, np.uint8).reshape(n, side, side, 3))))


@settings(max_examples=40, deadline=None)
@given(x=images, transform=st.sampled_from(TRANSFORMS))
def test_the_views_cycle_back_to_the_image_and_differ_on_the_way(x, transform):
    count = VIEW_COUNTS[transform]
    assert apply_view(x, transform, 0) is x
    once = apply_view(x, transform, 1)
    again = x
    for _ in range(count):
        again = apply_view(again, transform, 1)
    assert np.array_equal(again, x)  # K single steps are the identity
    for k in range(count):
        step = x
        for _ in range(k):
            step = apply_view(step, transform, 1)
        assert np.array_equal(apply_view(x, transform, k), step)  # view k = k steps
    assert once.shape == x.shape


def test_a_quarter_turn_is_counter_clockwise_and_a_channel_shift_moves_green_first():
    x = np.arange(4, dtype=np.uint8).reshape(1, 2, 2, 1)  # [[0, 1], [2, 3]]
    assert apply_view(x, "rotation", 1)[0, :, :, 0].tolist() == [[1, 3], [0, 2]]
    rgb = np.array([10, 20, 30], np.uint8).reshape(1, 1, 1, 3)
    assert apply_view(rgb, "channels", 1).ravel().tolist() == [20, 30, 10]


@settings(max_examples=40, deadline=None)
@given(x=images, seed=st.integers(0, 2 ** 31 - 1), transform=st.sampled_from(TRANSFORMS),
       copies=st.sampled_from(["all", "one"]), hflip=st.booleans())
def test_every_training_image_is_a_view_of_its_source_with_its_class_and_view_label(
        x, seed, transform, copies, hflip):
    views = Views(transform, copies)
    count = views.count
    y = np.arange(len(x)) % 3 + 2
    out_x, out_y = views.training_set(x, y, seed, hflip)
    assert len(out_x) == len(out_y) == len(x) * (count if copies == "all" else 1)
    sources = np.tile(np.arange(len(x)), count if copies == "all" else 1)
    for image, label, i in zip(out_x, out_y, sources, strict=True):
        assert label // count == y[i]
        k = label % count
        candidates = [x[i]] + ([x[i][:, ::-1]] if hflip else [])
        assert any(np.array_equal(image, apply_view(c[None], transform, k)[0])
                   for c in candidates)
    if copies == "all":  # each image in every view, in view order
        assert np.array_equal(out_y % count, np.repeat(np.arange(count), len(x)))
    again = views.training_set(x, y, seed, hflip)
    assert np.array_equal(again[0], out_x) and np.array_equal(again[1], out_y)


def test_without_a_transformation_the_data_and_augmentation_pass_through():
    views = Views("none", "all")
    x, y = np.zeros((3, 4, 4, 1), np.uint8), np.array([0, 1, 2])
    assert views.training_set(x, y, 0, True) == (x, y)
    assert views.backend_augment(Augment(hflip=True)).hflip
    assert not Views("rotation").backend_augment(Augment(hflip=True, crop_pad=2)).hflip
    assert views.widen((2, 4)) == (2, 4) and Views("rotation").widen((2, 4)) == (8, 16)


def test_a_class_score_is_the_sum_of_its_view_logits_over_the_views():
    backend = FakeBackend()
    from mind_core.protocol import ModelSpec

    model = backend.build_model(ModelSpec(arch="small_cnn", input_shape=(5, 5, 3),
                                          num_classes=6 * 4), 3)
    x = colour_dataset().x_test[:7, :5, :5]
    dense = {layer.name: np.ones(layer.shape, bool) for layer in backend.layers(model)}
    subnets = [Subnet(gates=dense, bn=backend.get_bn(model), class_range=r)
               for r in [(0, 2), (2, 4)]]
    views = Views("rotation")
    scores, features = views.predict(backend, model, x, subnets, 4, (0.0,), (1.0,),
                                     features=True)
    assert scores.shape == (2, 7, 2)
    expected = np.zeros((2, 7, 2))
    for k in range(4):
        wide = backend.predict(model, apply_view(x, "rotation", k),
                               [Subnet(gates=dense, bn=s.bn, class_range=views.widen(s.class_range))
                                for s in subnets], 4, (0.0,), (1.0,))
        expected += wide[:, :, k::4]  # row c * 4 + k of each class c
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    own = views.features(backend, model, x, subnets, 4, (0.0,), (1.0,))
    assert np.array_equal(features, own)  # the image's own view


def engine(tmp_path, extra=(), dataset=None, should_stop=None):
    cfg = resolve_config("smoke", [*SETTINGS, *extra])
    return Engine(cfg, FakeBackend(), dataset or colour_dataset(), tmp_path,
                  should_stop=should_stop)


class Recording(FakeBackend):
    """Keeps the labels and class range of every epoch it trains."""

    seen: list = []

    def train_epoch(self, trainer, x, y, epoch, seed, progress=None, should_stop=None):
        Recording.seen.append((trainer.phase.kind, trainer.phase.class_range, len(x),
                               np.unique(y).tolist()))
        return super().train_epoch(trainer, x, y, epoch, seed, progress, should_stop)


@pytest.mark.parametrize("transform, copies", [("rotation", "one"), ("rotation", "all"),
                                               ("channels", "one")])
def test_the_loop_trains_class_view_labels_in_a_head_k_times_wider(tmp_path, transform, copies):
    Recording.seen = []
    cfg = resolve_config("smoke", [*SETTINGS, f"label_aug.transform={transform}",
                                   f"label_aug.copies={copies}"])
    data = colour_dataset()
    run = Engine(cfg, Recording(), data, tmp_path)
    count = VIEW_COUNTS[transform]
    assert run.spec.num_classes == data.num_classes * count
    metrics = run.run()
    per_task = len(data.x_train) // 3
    kind, class_range, n, labels = Recording.seen[0]  # task 0's teacher: classes 0, 1
    assert class_range == (0, 2 * count)
    assert n == per_task * (count if copies == "all" else 1)
    assert set(labels) <= set(range(2 * count))
    if copies == "all":
        assert labels == list(range(2 * count))
    last = Recording.seen[-1]  # task 2's student
    assert last[1] == (4 * count, 6 * count)
    assert 0 <= metrics["final"]["tag"] <= metrics["final"]["taw"] <= 1
    saved = checkpoint.load(tmp_path / "checkpoint" / "task-2.safetensors")
    assert saved.weights["fc"].shape[0] == data.num_classes * count
    assert saved.classes_per_task == 2  # the dataset's classes, not the (class, view) rows


@pytest.mark.parametrize("polls", [7, 30])
def test_a_label_augmented_run_resumes_to_identical_metrics(tmp_path, polls):
    cfg = resolve_config("smoke", [*SETTINGS, "label_aug.transform=rotation"])
    reference = start_run(cfg, tmp_path / "straight", load=load_colour)
    with pytest.raises(Interrupted):
        start_run(cfg, tmp_path / "cut", should_stop=StopAfter(polls), load=load_colour)
    assert resume_run(tmp_path / "cut", load=load_colour, backend=FAKE) == reference


def test_eval_and_predict_score_a_label_augmented_run_as_it_scored_itself(tmp_path):
    cfg = resolve_config("smoke", [*SETTINGS, "label_aug.transform=rotation"])
    metrics = start_run(cfg, tmp_path, load=load_colour)
    assert evaluate_run(tmp_path, FAKE, load=load_colour)["final"] == metrics["final"]
    data = colour_dataset()
    predictor = Predictor(tmp_path, backend=FAKE, load=load_colour)
    out = predictor.predict(data.x_test)
    assert out.classes.min() >= 0 and out.classes.max() < data.num_classes
    assert set(out.tasks.tolist()) <= {0, 1, 2}
    # the test data in the dataset's order: predict's answers are the run's own TAg
    assert np.mean(out.classes == data.y_test) == pytest.approx(metrics["final"]["tag"])


@pytest.mark.parametrize("extra, key, words", [
    (["method=lwf"], "label_aug.transform", "method=mind"),
    (["distillation.outlier_weight=0.5"], "label_aug.transform", "outlier_weight"),
])
def test_label_augmentation_that_cannot_apply_is_one_line_naming_the_key(extra, key, words):
    with pytest.raises(ConfigError) as err:
        resolve_config("smoke", [*SETTINGS, "label_aug.transform=rotation", *extra])
    assert err.value.key == key and words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("transform, dataset, words", [
    ("channels", tiny_dataset(), "one channel"),
    ("rotation", None, "square images"),
])
def test_a_transformation_the_images_do_not_allow_is_a_config_error(tmp_path, transform,
                                                                     dataset, words):
    if dataset is None:  # 6x5 colour images: a quarter turn changes their shape
        dataset = colour_dataset()
        dataset = attrs.evolve(dataset, x_train=dataset.x_train[:, :, :5],
                               x_test=dataset.x_test[:, :, :5])
    with pytest.raises(ConfigError) as err:
        engine(tmp_path, [f"label_aug.transform={transform}"], dataset=dataset)
    assert err.value.key == "label_aug.transform" and words in str(err.value)
