"""Self-supervised label augmentation (mind_core.views): the views, the labels of (class,
view) pairs, the summed test-time scores, and the loop with the fake backend."""

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.routing_spaces import load_run
from mind_core import checkpoint
from mind_core.config import ConfigError, resolve_config
from mind_core.engine import Engine, Interrupted
from mind_core.inference import Predictor
from mind_core.protocol import Augment, Subnet
from mind_core.refit import refit_stats
from mind_core.routing import RoutingInputs, route
from mind_core.run_checkpoints import task_checkpoints
from mind_core.runner import evaluate_run, resume_run, start_run
from mind_core.spaces import log_likelihood, pairwise_scores
from mind_core.views import LABEL_TRANSFORMS, VIEW_COUNTS, Views, apply_view
from tests.core.test_routing import make_tasks_features
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
    assert features.shape[:3] == (4, 2, 7)  # every view's, the image as it is first
    own = views.features(backend, model, x, subnets, 4, (0.0,), (1.0,))
    assert np.array_equal(features[:1], own)  # stats.views=image: the image's own view
    every = views.features(backend, model, x, subnets, 4, (0.0,), (1.0,), "all")
    assert np.array_equal(features, every)  # the same passes


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


def view_stats(task_spaces, rng, views):
    """Each TaskStats of make_tasks_features given `views` more views: its spaces' statistics
    with shifted means (so each view's densities differ)."""
    out = []
    for stats in task_spaces:
        more = [{j: attrs.evolve(s, means=(s.means + rng.normal(0, 0.1, s.means.shape)
                                           ).astype(np.float32))
                 for j, s in stats.spaces.items()} for _ in range(views)]
        out.append(attrs.evolve(stats, views=more))
    return out


def test_pairwise_with_views_decides_each_match_by_the_mean_of_the_views_likelihoods():
    rng = np.random.default_rng(0)
    stats, features, _ = make_tasks_features(tasks=3, spaces=16)
    stats = view_stats(stats, rng, 2)
    more = features[None] + rng.normal(0, 0.05, (2, *features.shape))
    every = np.concatenate([features[None], more])
    scores = pairwise_scores(features, [s.spaces for s in stats],
                             [(more[k], [s.views[k] for s in stats]) for k in range(2)])
    expected = np.zeros_like(scores)
    for t in range(3):
        for s in range(t):
            ll = [np.mean([log_likelihood(every[v][s], stats[task].view_spaces[v][s])
                           for v in range(3)], axis=0) for task in (s, t)]
            won = 0.5 * (1 + np.tanh(0.5 * (ll[1] - ll[0])))
            expected[t] += won
            expected[s] += 1 - won
    np.testing.assert_allclose(scores, expected, rtol=1e-9, atol=1e-9)
    routed = route("pairwise", RoutingInputs.of_views(np.zeros((3, features.shape[1], 2)), 1.0,
                                                      every, stats))
    assert np.array_equal(routed, scores.argmax(0))
    # statistics without views route on the image's features alone, whatever else is given
    plain = [attrs.evolve(s, views=()) for s in stats]
    alone = route("pairwise", RoutingInputs.of_views(np.zeros((3, features.shape[1], 2)), 1.0,
                                                     every, plain))
    assert np.array_equal(alone, pairwise_scores(features, [s.spaces for s in plain]).argmax(0))


def test_view_statistics_survive_a_checkpoint_and_broken_ones_are_named(tmp_path):
    stats, _, _ = make_tasks_features(tasks=2, spaces=4)
    stats = view_stats(stats, np.random.default_rng(1), 3)
    ckpt = checkpoint.Checkpoint(weights={"w": np.zeros(2, np.float32)},
                                 owner={"w": np.full(2, -1, np.int16)},
                                 bn_snapshots=[{}, {}], stats=stats, tasks=2)
    checkpoint.save(tmp_path / "c.safetensors", ckpt)
    loaded = checkpoint.load(tmp_path / "c.safetensors").stats
    for before, after in zip(stats, loaded, strict=True):
        assert len(after.views) == 3
        assert before.arrays().keys() == after.arrays().keys()
        for name, value in before.arrays().items():
            assert np.array_equal(value, after.arrays()[name]), name
    tensors = checkpoint.to_tensors(ckpt)
    gap = {k.replace("/view/3/", "/view/5/"): v for k, v in tensors.items()}
    with pytest.raises((checkpoint.CheckpointError, ValueError), match="not numbered 1..3"):
        checkpoint.from_tensors(gap, {})
    short = {k: v for k, v in tensors.items() if not k.startswith("stats/1/view/2/space/1/")}
    with pytest.raises((checkpoint.CheckpointError, ValueError), match="view 2 has spaces"):
        checkpoint.from_tensors(short, {})


@pytest.mark.parametrize("stats_views, stored", [("all", 3), ("image", 0)])
def test_a_rotation_run_fits_every_views_statistics_and_refits_them_exactly(
        tmp_path, stats_views, stored):
    cfg = resolve_config("smoke", [*SETTINGS, "label_aug.transform=rotation",
                                   f"stats.views={stats_views}"])
    metrics = start_run(cfg, tmp_path, load=load_colour)
    assert "pairwise" in metrics["final"]["rules"]
    saved = checkpoint.load(task_checkpoints(tmp_path)[-1]).stats
    assert [len(s.views) for s in saved] == [stored] * 3
    assert all(sorted(view) == sorted(s.spaces) for s in saved for view in s.views)
    run = load_run(tmp_path, FAKE, load=load_colour)
    for fitted, again in zip(saved, refit_stats(run), strict=True):
        assert fitted.arrays().keys() == again.arrays().keys()
        for name, value in fitted.arrays().items():
            assert np.array_equal(value, again.arrays()[name]), name
    assert evaluate_run(tmp_path, FAKE, load=load_colour)["final"] == metrics["final"]


def test_a_users_network_needs_a_row_per_class_and_view_and_the_error_says_so(tmp_path):
    import mind_core as mind
    from tests.fakes import FakeNetwork

    data = colour_dataset()
    arrays = mind.arrays(data.x_train, data.y_train, data.x_test, data.y_test)
    settings = {"label_aug.transform": "rotation", "teacher.epochs": 1, "distill.epochs": 1}
    with pytest.raises(mind.MindError, match=r"label_aug\.transform=rotation needs 4 outputs "
                                             r"a class, one per view: 6 classes x 4"):
        mind.fit(FakeNetwork(outputs=6), arrays, tasks=3, preset="smoke", settings=settings,
                 out=tmp_path / "narrow", quiet=True)
    run = mind.fit(FakeNetwork(outputs=24), arrays, tasks=3, preset="smoke", settings=settings,
                   out=tmp_path / "wide", quiet=True)
    assert run.metrics["tasks_done"] == 3
    assert len(run.predict(data.x_test)[0]) == len(data.x_test)
