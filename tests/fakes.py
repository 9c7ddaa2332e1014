"""A numpy fake backend: a tiny MLP (fc1 -> bn1 -> ReLU -> fc) implementing the Backend protocol
well enough to test the engine, events, checkpoints/resume, the CLI and the TUI without any
framework. Its gradients are plain backprop with BN statistics treated as constants: good enough
to learn the synthetic data, not a reference for anything numeric."""

from __future__ import annotations

import time

import numpy as np

from mind_core.backend_checks import check_batch_size, fisher_batches
from mind_core.metrics import softmax
from mind_core.protocol import EpochResult, LayerInfo, ModelSpec, PhaseSpec, Subnet

HIDDEN = 32
EPS = 1e-5


class FakeModel:
    def __init__(self, spec: ModelSpec, seed: int):
        h, w, c = spec.input_shape
        rng = np.random.default_rng(seed)
        fan = h * w * c
        self.weights = {
            "fc1": (rng.standard_normal((HIDDEN, fan)) * np.sqrt(2 / fan)).astype(np.float32),
            "fc": (rng.standard_normal((spec.num_classes, HIDDEN)) * np.sqrt(2 / HIDDEN)
                   ).astype(np.float32),
        }
        self.bn = {"bn1": {"gamma": np.ones(HIDDEN, np.float32), "beta": np.zeros(HIDDEN, np.float32),
                           "mean": np.zeros(HIDDEN, np.float32), "var": np.ones(HIDDEN, np.float32)}}
        self.gates = None
        self.num_classes = spec.num_classes

    def effective(self, name):
        w = self.weights[name]
        return w if self.gates is None else w * self.gates[name]


class FakeNetwork:
    """A user's "own network" for the fake backend: the same MLP with a classifier of
    `outputs` units (the Python API's tests pass it to mind.fit)."""

    __mind_backend__ = "tests.fakes:FakeBackend"

    def __init__(self, outputs: int):
        self.outputs = outputs


class FakeTrainer:
    def __init__(self, model, phase, trainable, teacher):
        self.model, self.phase, self.trainable, self.teacher = model, phase, trainable, teacher
        self.steps = 0


class FakeBackend:
    name = "fake"
    capabilities = frozenset({"deterministic"})

    def __init__(self, device: str = "auto", threads: int | None = None):
        if device not in ("auto", "cpu"):
            raise ValueError(f"the fake backend runs on the CPU only, not {device!r}")
        self.device = "cpu"
        self.threads = threads  # numpy's own threads are left alone; recorded for tests

    def versions(self):
        return {"numpy": np.__version__}

    def thread_counts(self):
        return {"intra_op": self.threads} if self.threads else {}

    adopted: FakeNetwork | None = None

    def adopt_network(self, network, input_shape, num_classes):
        from mind_core.network import FoundLayer, choose_classifier, describe

        found = [FoundLayer(name="fc1", kind="linear", out_width=HIDDEN),
                 FoundLayer(name="bn1", kind="bn", out_width=HIDDEN),
                 FoundLayer(name="fc", kind="linear", out_width=network.outputs)]
        choose_classifier(found, num_classes)
        self.adopted = network
        return describe(type(network).__name__, found)

    def build_model(self, spec, seed):
        from mind_core.network import CUSTOM_ARCH, NO_NETWORK, NetworkError

        if spec.arch == CUSTOM_ARCH and self.adopted is None:
            raise NetworkError(NO_NETWORK)
        return FakeModel(spec, seed)

    def layers(self, model):
        return [LayerInfo(name="fc1", shape=model.weights["fc1"].shape, kind="linear"),
                LayerInfo(name="fc", shape=model.weights["fc"].shape, kind="linear",
                          classifier=True)]

    def bn_layers(self, model):
        return ["bn1"]

    def get_weights(self, model):
        return {k: v.copy() for k, v in model.weights.items()}

    def set_weights(self, model, weights):
        for k, v in weights.items():
            model.weights[k] = np.array(v, dtype=np.float32)

    def get_bn(self, model):
        return {k: {f: a.copy() for f, a in d.items()} for k, d in model.bn.items()}

    def set_bn(self, model, state):
        for k, d in state.items():
            model.bn[k] = {f: np.array(a, dtype=np.float32) for f, a in d.items()}

    def set_gates(self, model, gates):
        model.gates = None if gates is None else {k: g.astype(np.float32) for k, g in gates.items()}

    def _forward(self, model, x, train, update_bn):
        h = x @ model.effective("fc1").T
        bn = model.bn["bn1"]
        if train:
            mean, var = h.mean(0), h.var(0)
            if update_bn:
                n = len(h)
                bn["mean"] = (0.9 * bn["mean"] + 0.1 * mean).astype(np.float32)
                bn["var"] = (0.9 * bn["var"] + 0.1 * var * n / max(n - 1, 1)).astype(np.float32)
        else:
            mean, var = bn["mean"], bn["var"]
        norm = (h - mean) / np.sqrt(var + EPS)
        a = np.maximum(norm * bn["gamma"] + bn["beta"], 0)
        return a @ model.effective("fc").T, (x, norm, a, var)

    @staticmethod
    def _prepare(x, mean, std):
        flat = x.reshape(len(x), -1).astype(np.float32) / 255.0
        return (flat - float(np.mean(mean))) / float(np.mean(std))

    def start_phase(self, model, phase: PhaseSpec, trainable, teacher=None, penalty=None):
        trainer = FakeTrainer(model, phase, trainable, teacher)
        trainer.penalty = penalty
        return trainer

    def _backward(self, model, grad_logits, cache):
        """Gradients of the gated weights and of BN gamma/beta from d loss / d logits."""
        xin, norm, a, var = cache
        grads = {"fc": grad_logits.T @ a}
        grad_a = grad_logits @ model.effective("fc") * (a > 0)
        grad_norm = grad_a * model.bn["bn1"]["gamma"]
        grads["fc1"] = (grad_norm / np.sqrt(var + EPS)).T @ xin
        if model.gates is not None:
            grads = {name: g * model.gates[name] for name, g in grads.items()}
        return grads, (grad_a * norm).sum(0), grad_a.sum(0)

    def fisher(self, model, x, y, class_range, batch_size, mean, std):
        data = self._prepare(x, mean, std)
        lo, hi = class_range
        batches = fisher_batches(len(x), batch_size)
        total = {}
        for start, stop in batches:
            logits, cache = self._forward(model, data[start:stop], True, False)
            p = softmax(logits[:, lo:hi])
            yb = p.argmax(1) if y is None else y[start:stop] - lo
            grad_logits = np.zeros_like(logits)
            grad_logits[:, lo:hi] = (p - np.eye(hi - lo)[yb]) / len(yb)
            grads, grad_gamma, grad_beta = self._backward(model, grad_logits, cache)
            grads.update({"bn1.gamma": grad_gamma, "bn1.beta": grad_beta})
            for name, g in grads.items():
                total[name] = total.get(name, 0.0) + g.astype(np.float64) ** 2
        return {name: (v / len(batches)).astype(np.float32) for name, v in total.items()}

    def train_epoch(self, trainer, x, y, epoch, seed, progress=None, should_stop=None):
        model, phase = trainer.model, trainer.phase
        start = time.perf_counter()
        order = np.random.default_rng(seed).permutation(len(x))
        data = self._prepare(x, phase.mean, phase.std)
        lo, hi = phase.class_range
        lr = phase.lr_at(epoch) * 20  # plain SGD needs a larger step than AdamW
        batches = max(1, -(-len(x) // phase.batch_size))
        totals = np.zeros(3)
        correct = seen = 0
        for b in range(batches):
            if should_stop and should_stop():
                return EpochResult(loss=0, ce=0, distill=0, accuracy=0, images=seen,
                                   seconds=time.perf_counter() - start, stopped=True)
            idx = order[b * phase.batch_size:(b + 1) * phase.batch_size]
            xb, yb = data[idx], y[idx]
            logits, (xin, norm, a, var) = self._forward(model, xb, True, phase.train_bn)
            z = logits[:, lo:hi]
            p = softmax(z)
            onehot = np.eye(hi - lo, dtype=np.float32)[yb - lo]
            ce = float(-np.log(p[np.arange(len(yb)), yb - lo] + 1e-12).mean())
            grad_z = (p - onehot) / len(yb)
            grad_logits = np.zeros_like(logits)
            grad_logits[:, lo:hi] = grad_z
            dist = 0.0
            if trainer.teacher is not None and phase.beta > 0:
                # KL(teacher || student) of the softened logits of distill_range.
                dlo, dhi = phase.distill_range or phase.class_range
                temp = phase.distill_temperature
                t_logits, _ = self._forward(trainer.teacher, xb, False, False)
                pt = softmax(t_logits[:, dlo:dhi] / temp)
                ps = softmax(logits[:, dlo:dhi] / temp)
                dist = float((pt * (np.log(pt + 1e-12) - np.log(ps + 1e-12))).sum(1).mean())
                grad_logits[:, dlo:dhi] += phase.beta * (ps - pt) / (temp * len(yb))
            grads, grad_gamma, grad_beta = self._backward(model, grad_logits,
                                                          (xin, norm, a, var))
            pull = 0.0
            if trainer.penalty is not None:
                pen = trainer.penalty
                bn_grads = {"bn1.gamma": grad_gamma, "bn1.beta": grad_beta}
                values = {**model.weights, "bn1.gamma": model.bn["bn1"]["gamma"],
                          "bn1.beta": model.bn["bn1"]["beta"]}
                for name, anchor in pen.anchor.items():
                    diff = values[name] - anchor
                    pull += pen.weight / 2 * float((pen.importance[name] * diff ** 2).sum())
                    pulled = grads if name in grads else bn_grads
                    pulled[name] = pulled[name] + pen.weight * pen.importance[name] * diff
                grad_gamma, grad_beta = bn_grads["bn1.gamma"], bn_grads["bn1.beta"]
            if phase.train_bn:
                model.bn["bn1"]["gamma"] -= lr * grad_gamma.astype(np.float32)
                model.bn["bn1"]["beta"] -= lr * grad_beta.astype(np.float32)
            for name, g in grads.items():
                w = model.weights[name]
                step = lr * (g + phase.weight_decay * w)
                if trainer.trainable is not None:
                    step = np.where(trainer.trainable[name], step, 0.0)
                model.weights[name] = (w - step).astype(np.float32)
            trainer.steps += 1
            totals += np.array([ce + phase.beta * dist + pull, ce, dist]) * len(yb)
            correct += int((z.argmax(1) == yb - lo).sum())
            seen += len(yb)
            if progress:
                progress(b + 1, batches, totals[0] / seen)
        loss, ce, dist = totals / max(seen, 1)
        return EpochResult(loss=float(loss), ce=float(ce), distill=float(dist),
                           accuracy=correct / max(seen, 1), images=seen,
                           seconds=time.perf_counter() - start)

    def trainer_state(self, trainer):
        return {"steps": np.array([trainer.steps], np.int64)}

    def load_trainer_state(self, trainer, state):
        trainer.steps = int(state["steps"][0])

    def predict(self, model, x, subnets: list[Subnet], batch_size, mean, std, features=False):
        check_batch_size(batch_size)  # the protocol's boundary, as the real backends
        data = self._prepare(x, mean, std)
        out, hidden = [], []
        for sub in subnets:
            self.set_gates(model, sub.gates)
            self.set_bn(model, sub.bn)
            logits, (_, _, a, _) = self._forward(model, data, False, False)
            out.append(logits[:, sub.class_range[0]:sub.class_range[1]])
            hidden.append(a)
        logits = np.stack(out).astype(np.float32)
        if not features:
            return logits
        return logits, np.stack(hidden).astype(np.float32).reshape(len(subnets), len(x), HIDDEN)

    def distill_loss(self, name, teacher_logits, student_logits):
        from mind_core.metrics import LOSS_ORACLES
        return LOSS_ORACLES[name](teacher_logits, student_logits)


class CrashingBackend(FakeBackend):
    """Fails in the middle of the first distill phase (for crash-handling tests)."""

    def start_phase(self, model, phase, trainable, teacher=None):
        if phase.kind == "distill":
            raise RuntimeError("simulated backend crash")
        return super().start_phase(model, phase, trainable, teacher)


class DivergingBackend(FakeBackend):
    """Its loss turns NaN in the last epoch of task 1's distillation (for divergence tests)."""

    def train_epoch(self, trainer, x, y, epoch, seed, progress=None, should_stop=None):
        import attrs

        result = super().train_epoch(trainer, x, y, epoch, seed, progress, should_stop)
        phase = trainer.phase
        if (phase.kind == "distill" and phase.class_range[0] > 0
                and phase.class_range[0] == phase.class_range[1] - phase.class_range[0]
                and epoch == phase.epochs - 1):
            return attrs.evolve(result, loss=float("nan"))
        return result


def tiny_dataset(classes: int = 6, per_class: int = 24, size: int = 6, seed: int = 0):
    """A learnable in-memory dataset: one noisy prototype image per class."""
    from mind_core.data.base import Dataset

    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, (classes, size, size, 1))

    def draw(n):
        y = np.repeat(np.arange(classes), n)
        x = np.clip(protos[y] + rng.normal(0, 30, (len(y), size, size, 1)), 0, 255)
        return x.astype(np.uint8), y.astype(np.int64)

    x_train, y_train = draw(per_class)
    x_test, y_test = draw(max(per_class // 3, 2))
    return Dataset(name="tiny", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   num_classes=classes)


class StopAfter:
    """A should_stop that turns True after `calls` polls: interrupts a run at chosen points."""

    def __init__(self, calls: int):
        self.calls = calls

    def __call__(self) -> bool:
        self.calls -= 1
        return self.calls < 0


def event_fields(type_: str, **given):
    """The fields of an event of type_ a test writes itself (EventLog.emit(type_, **...)):
    every field the schema requires, null unless given (readers take null as unknown)."""
    from mind_core.events import EVENT_FIELDS

    return {**dict.fromkeys(EVENT_FIELDS[type_]), **given}
