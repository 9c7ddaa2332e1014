"""The run configuration's schema: its frozen attrs records, their fields' defaults and range
checks, and the lists of choices the loop itself defines (variants, BatchNorm modes, method
loops). How a config is resolved from presets, files and overrides is mind_core.config."""

from __future__ import annotations

import attrs

from mind_core.masks import INITS, MODES
from mind_core.network import CUSTOM_ARCH
from mind_core.precision import DEFAULT_PRECISION, PRECISIONS
from mind_core.protocol import ARCHS, LOSSES, MASKINGS
from mind_core.registry import BACKENDS
from mind_core.routing import ROUTINGS
from mind_core.schedule import SCENARIOS
from mind_core.spaces import COVARIANCES, TRANSFORMS
from mind_core.views import LABEL_COPIES, LABEL_TRANSFORMS, STATS_VIEWS

# The loop's variants (what each sets: VARIANT_DEFAULTS, plan.Plan) and BatchNorm modes
# (plan.Plan.train_bn); the other lists of choices live with the code that implements them:
# BACKENDS, ARCHS, LOSSES, MASKINGS, MODES, INITS, ROUTINGS, SCENARIOS, COVARIANCES,
# TRANSFORMS, PRECISIONS, LABEL_TRANSFORMS, LABEL_COPIES, STATS_VIEWS.
VARIANTS = ("mind", "self_distill", "packnet", "teacher_slice")
# The variants the paper defines (docs/algorithm.md "Variants"); teacher_slice is this project's.
PAPER_VARIANTS = ("mind", "self_distill", "packnet")
# Beyond the paper, the variant a run gets unless a preset or the user names one: it beat MIND
# (with the same routing rule) on every CPU setting over 3 seeds (docs/algorithm.md); the paper
# presets set mind.
DEFAULT_VARIANT = "teacher_slice"
# The variants whose teacher is the MIND network itself, training only its free weights.
SELF_TEACHER_VARIANTS = ("self_distill", "packnet", "teacher_slice")
# The loop a run trains with: MIND's (engine.py) or a single-head baseline's (baselines.py).
METHOD_LOOPS = ("mind", "finetune", "joint", "lwf", "ewc")
BN_MODES = ("per_task", "shared", "frozen_after_first")


DOC = "doc"  # the metadata key of a field's one-line description


def _field(doc: str, **kwargs):
    """A setting: attrs.field with its one-line description for users (`doc`), which
    docs/settings.md, `mind presets --show` and the TUI show (mind_core.settings_docs)."""
    return attrs.field(metadata={DOC: doc}, **kwargs)


def field_doc(field: attrs.Attribute) -> str:
    """A field's one-line description ("" if it has none: a test refuses that)."""
    return field.metadata.get(DOC, "")


def _positive(inst, attribute, value):
    if not value > 0:  # written so that NaN fails too
        raise ValueError(f"must be > 0, got {value}")


def _non_negative(inst, attribute, value):
    if not value >= 0:
        raise ValueError(f"must be >= 0, got {value}")


def _one_of(*choices):
    def check(inst, attribute, value):
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(str, choices))}; got {value!r}")
    check.choices = choices  # read by mind_core.settings_docs
    return check


def _unit_interval(inst, attribute, value):
    if not 0 <= value <= 1:
        raise ValueError(f"must be in [0, 1], got {value}")


def _milestones(inst, attribute, value):
    if any(m <= 0 for m in value) or list(value) != sorted(set(value)):
        raise ValueError(f"must be increasing positive epochs, got {list(value)}")


@attrs.frozen(kw_only=True)
class PhaseConfig:
    """One training phase of every task: the teacher's (teacher.*) or the student's
    (distill.*). AdamW; lr * gamma ** (milestones passed) at each epoch."""

    epochs: int = _field("Epochs of this phase on each task; changed without the milestones, "
                         "it scales them to match.", default=1, validator=_non_negative)
    lr: float = _field("AdamW learning rate at the start of the phase (the paper: 0.005 for "
                       "the teacher, 0.035 for distillation).", default=0.005,
                       validator=_positive)
    milestones: tuple[int, ...] = _field(
        "Epochs at which the learning rate is multiplied by gamma, increasing (e.g. [10, 20]); "
        "[]: a constant rate.", default=(), converter=tuple, validator=_milestones)
    gamma: float = _field("Factor the learning rate is multiplied by at each milestone.",
                          default=0.5, validator=_positive)
    weight_decay: float = _field("AdamW's decoupled weight decay (0 in every preset).",
                                 default=0.0,
                                 validator=_non_negative)
    batch_size: int = _field("Training images per batch.", default=256, validator=_positive)


@attrs.frozen(kw_only=True)
class AllocationConfig:
    """Which weights of every layer each task gets, and what they start from
    (docs/algorithm.md, steps 2 and 3)."""

    mode: str = _field("Which free weights a task gets: random (the paper's MIND) or "
                       "magnitude (the trained teacher's largest, as PackNet).",
                       default="random", validator=_one_of(*MODES))
    weight_sharing: bool = _field("true: a task also reads the weights of earlier tasks (the "
                                  "paper); false: only its own.", default=True)
    # Values of newly owned weights: see masks.INITS and docs/algorithm.md.
    init: str = _field("Start of a task's new weights: zero (the paper), teacher (the trained "
                       "teacher's values) or scaled_normal (small random values).",
                       default="zero", validator=_one_of(*INITS))
    # A teacher trained inside the network (SELF_TEACHER_VARIANTS) starts task t >= 1 with the
    # still-free weights re-drawn He-normal (PackNet) instead of at 0, where allocation left them.
    redraw_free: bool = _field("Redraw the free weights at random before each task after the "
                               "first, as PackNet; only for self_distill, packnet and "
                               "teacher_slice.", default=False)


@attrs.frozen(kw_only=True)
class DistillationConfig:
    """The distill phase's loss: cross-entropy + beta * distillation from the teacher
    (docs/algorithm.md, step 4)."""

    beta: float = _field("Weight of the distillation term beside cross-entropy (the paper: 5; "
                         "0: the labels alone).", default=5.0, validator=_non_negative)
    loss: str = _field("Distillation loss: sym_kl (symmetric KL, what the paper's code "
                       "computes; alias js), true_js (Jensen-Shannon), kl, cosine or l2.",
                       default="sym_kl", converter=lambda s: "sym_kl" if s == "js" else s,
                       validator=_one_of(*LOSSES))
    logit_masking: str = _field("Logits outside the task's classes: zero (set to 0 but kept in "
                                "the softmax; the paper) or slice (left out).", default="zero",
                                validator=_one_of(*MASKINGS))
    # Routing-aware training: 0 = off (the paper). See protocol.outlier_turns.
    outlier_weight: float = _field(
        "Weight of a term that makes each sub-network unsure on rotated copies of its images, "
        "to help routing (beyond the paper; 0: off).", default=0.0, validator=_non_negative)


@attrs.frozen(kw_only=True)
class InferenceConfig:
    """Answering without a task label: which sub-network answers each image
    (docs/routing.md). `mind eval RUN --set inference.*` re-scores a finished run."""

    temperature: float = _field("Softmax temperature of the rules max_prob, entropy and "
                                "energy (the paper presets set it per dataset).", default=1.0,
                                validator=_positive)
    # Beyond the paper: it routed better than mahalanobis and max_prob on every CPU setting
    # (3 seeds; docs/routing.md); the paper presets set max_prob.
    routing: str = _field("Rule that picks the sub-network to answer: pairwise (the default), "
                          "max_prob (the paper's) or another of docs/routing.md.",
                          default="pairwise", validator=_one_of(*ROUTINGS))
    # 128, not larger: a forward pass's activations then stay in a CPU's caches; torch's
    # evaluation ran 1.1-1.8x faster than at 512, tf's about as fast (benchmarks/eval_batch.py).
    batch_size: int = _field("Images per batch when evaluating and predicting (speed and "
                             "memory only).", default=128, validator=_positive)


@attrs.frozen(kw_only=True)
class StatsConfig:
    """Routing statistics fitted at the end of each task (docs/routing.md)."""

    # Beyond the paper: besides its own, the first `spaces` sub-networks' feature spaces a
    # task's statistics are fitted in (mind_core.spaces; the rule `pairwise` reads them). 0:
    # its own space only (the paper presets: no extra forward passes). 16 covers every task of
    # the paper's sequences and bounds storage and fitting for longer ones.
    spaces: int = _field("Model each task's classes also in the first N sub-networks' feature "
                         "spaces, for pairwise routing (0: its own only, the paper presets).",
                         default=16, validator=_non_negative)
    # How each (space, task) is modelled: chosen on the synbols-selection rendering
    # (docs/routing.md), where each beat its alternative.
    covariance: str = _field("Covariances of those models: per_class (one per class) or tied "
                             "(one per task).", default="per_class",
                             validator=_one_of(*COVARIANCES))
    transform: str = _field("What features go through before they are modelled: fecam "
                            "(square root and unit length) or none.", default="fecam",
                            validator=_one_of(*TRANSFORMS))
    # Chosen on the synbols-selection rendering, where every view's statistics routed 8
    # points better than the image's alone (docs/routing.md).
    views: str = _field("With label_aug: model every view of each image, each by statistics of "
                        "its own (all), or the image as it is (image).", default="all",
                        validator=_one_of(*STATS_VIEWS))


@attrs.frozen(kw_only=True)
class LabelAugConfig:
    """Self-supervised label augmentation (mind_core.views, docs/routing.md): each (class,
    view) pair a label of its own, so each sub-network learns what its task's images look
    like. Beyond the paper; off unless set."""

    transform: str = _field("Views each image is also learned in, each (class, view) a label "
                            "of its own: none (the paper), rotation (4 quarter turns; square "
                            "images) or channels (3 colour-channel shifts; colour images).",
                            default="none", validator=_one_of(*LABEL_TRANSFORMS))
    # "one" keeps an epoch's work as it is; "all" multiplies it by the number of views.
    copies: str = _field("Per image and epoch: one view drawn at random (an epoch's work "
                         "unchanged) or all of them (that many times the work).",
                         default="one", validator=_one_of(*LABEL_COPIES))


@attrs.frozen(kw_only=True)
class LwfConfig:
    """Learning without Forgetting (method=lwf): weight and temperature of its distillation
    of the old classes' logits (docs/baselines.md: Li and Hoiem 2016, lambda 1, T 2)."""

    weight: float = _field("Weight of the distillation of the old classes' logits (Li and "
                           "Hoiem: 1).", default=1.0, validator=_non_negative)
    temperature: float = _field("Temperature of that distillation (Li and Hoiem: 2).",
                                default=2.0, validator=_positive)


@attrs.frozen(kw_only=True)
class EwcConfig:
    """Elastic Weight Consolidation (method=ewc): the penalty's weight and how the Fisher of
    a new task is merged with the old, alpha * old + (1 - alpha) * new (docs/baselines.md)."""

    weight: float = _field("Weight of the penalty on moving weights that earlier tasks need "
                           "(FACIL's 5000).", default=5000.0, validator=_non_negative)
    alpha: float = _field("Share of the old importance when a task's is merged in: alpha * "
                          "old + (1 - alpha) * new.", default=0.5, validator=_unit_interval)


def _backend_name(inst, attribute, value):
    if value not in BACKENDS and (":" not in value or value.startswith(":")):
        raise ValueError(f"unknown backend {value!r}: use {', '.join(BACKENDS)}, or "
                         "module:Class")


_backend_name.choices = (*BACKENDS, "module:Class")


@attrs.frozen(kw_only=True)
class RunConfig:
    """A run's whole configuration (docs/settings.md lists every setting)."""

    name: str = _field("Name of the run, the start of its directory name; a preset sets its "
                       "own, a TOML file its file name.", default="")
    description: str = _field("A line saying what the configuration is for (`mind presets` "
                              "shows it).", default="")
    backend: str = _field("Framework that trains: torch, tf, or a module:Class of your own.",
                          default="torch", validator=_backend_name)
    device: str = _field("Where to train: auto (a GPU if there is one), cpu, cuda[:N] or "
                         "gpu[:N].", default="auto")
    # The arithmetic of training and inference (mind_core.precision); `auto` is resolved by
    # the backend on its device and recorded in config.json's versions.
    precision: str = _field("Arithmetic: fp32 (the paper), bf16, fp16 (GPUs only) or auto "
                            "(bf16 where the device runs it natively and it is faster); docs/precision.md.",
                            default=DEFAULT_PRECISION, validator=_one_of(*PRECISIONS))
    dataset: str = _field("Data to learn: a name `mind datasets` lists, npz:PATH or "
                          "folder:PATH.", default="fmnist-mini")
    data_dir: str = _field("Where data is looked for first (then $MIND_DATA_DIR, then "
                           "~/.cache/mind/data).", default="")
    scenario: str = _field("class: each task brings new classes; domain: each task brings "
                           "every class in a new domain (core50-frames).", default="class",
                           validator=_one_of(*SCENARIOS))
    tasks: int = _field("Number of tasks the classes (or domains) are split into.", default=5,
                        validator=_positive)
    seed: int = _field("Seed of every random draw: initialisation, data order, allocation (the "
                       "paper: 0 to 9).", default=0, validator=_non_negative)
    model: str = _field("Network: small_cnn, resnet32 (the paper's), or custom for your own, "
                        "passed from Python (docs/models.md).", default="small_cnn",
                        validator=_one_of(*ARCHS, CUSTOM_ARCH))
    method: str = _field("Training loop: mind, or a single-head baseline: finetune, joint, "
                         "lwf, ewc (docs/baselines.md).", default="mind",
                         validator=_one_of(*METHOD_LOOPS))
    variant: str = _field("MIND's recipe: mind (the paper's), self_distill, packnet or "
                          "teacher_slice; it sets defaults of allocation.*, distillation.beta and bn.",
                          default=DEFAULT_VARIANT, validator=_one_of(*VARIANTS))
    bn: str = _field("BatchNorm: per_task (a snapshot per sub-network; the paper), shared (the "
                     "newest for all) or frozen_after_first (PackNet).", default="per_task",
                     validator=_one_of(*BN_MODES))
    teacher: PhaseConfig = _field("The teacher's training on each task; the single-head "
                                  "baselines train with it too.", default=PhaseConfig())
    distill: PhaseConfig = _field("The student's training through the task's gate (method "
                                  "mind only).", default=PhaseConfig(lr=0.035))
    allocation: AllocationConfig = _field("Which weights each task gets and their start.",
                                          default=AllocationConfig())
    distillation: DistillationConfig = _field("The distill phase's loss.",
                                              default=DistillationConfig())
    inference: InferenceConfig = _field("Answering without a task label (routing).",
                                        default=InferenceConfig())
    stats: StatsConfig = _field("Statistics fitted after each task for routing.",
                                default=StatsConfig())
    label_aug: LabelAugConfig = _field("Self-supervised label augmentation: sub-networks "
                                       "that know their task (beyond the paper).",
                                       default=LabelAugConfig())
    lwf: LwfConfig = _field("Learning without Forgetting (method=lwf).", default=LwfConfig())
    ewc: EwcConfig = _field("Elastic Weight Consolidation (method=ewc).", default=EwcConfig())


for _cls in (PhaseConfig, AllocationConfig, DistillationConfig, InferenceConfig, StatsConfig,
             LabelAugConfig, LwfConfig, EwcConfig, RunConfig):
    attrs.resolve_types(_cls)
