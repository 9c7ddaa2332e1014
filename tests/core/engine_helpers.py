"""What the engine tests share: a three-task fake-backend configuration and its engine."""

from mind_core.config import resolve_config
from mind_core.engine import Engine
from tests.fakes import FakeBackend, tiny_dataset


def load_tiny(*_):
    return tiny_dataset()


FAKE = "tests.fakes:FakeBackend"  # a module:Class: resume and eval must be given it again
SETTINGS = ["tasks=3", "teacher.epochs=2", "distill.epochs=2", "teacher.batch_size=16",
            "distill.batch_size=16", f"backend={FAKE}"]


def make_engine(run_dir, extra=(), should_stop=None, dataset=None):
    cfg = resolve_config("smoke", [*SETTINGS, *extra])
    return Engine(cfg, FakeBackend(), dataset or tiny_dataset(), run_dir,
                  should_stop=should_stop)
