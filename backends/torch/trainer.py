"""One training phase of one model: AdamW that changes only the trainable entries.

Exact freezing: gradients of partly trainable tensors (weights, and the biases of a user's
network) are multiplied by the 0/1 trainable mask, so their Adam moments stay exactly 0 and
the Adam update of a frozen entry is exactly 0; decoupled weight decay is applied by us as a
multiplication by 1 - lr * wd * mask, which is exactly 1 on frozen entries. Fully frozen
tensors are not optimised at all. An EWC penalty (ewc.py) is part of the loss, so its
gradient is masked like every other. In bf16 or fp16 (amp.py) the forward passes run under
autocast and the parameters, gradients and moments stay float32, so all of this holds as is.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.torch.amp import autocast, loss_scaler
from backends.torch.augment import EpochAugmenter, Normaliser
from backends.torch.ewc import make_penalty
from backends.torch.losses import LogitMask, get_loss, uniform_cross_entropy
from backends.torch.models import bn_layers, gated_tensors, is_builtin
from backends.torch.optim import FusedAdamW
from mind_core.backend_checks import (
    check_labelled,
    check_phase_fits,
    phase_teacher,
    trainable_masks,
)
from mind_core.precision import load_scaler_entries, scaler_entries, split_scaler_entries
from mind_core.protocol import (
    EpochResult,
    Masks,
    Penalty,
    PhaseSpec,
    ProgressFn,
    StopFn,
    outlier_count,
    outlier_turns,
)


class Trainer:
    def __init__(self, model: nn.Module, phase: PhaseSpec, trainable: Masks | None,
                 teacher: nn.Module | None, device: torch.device,
                 penalty: Penalty | None = None, precision: str = "fp32") -> None:
        check_phase_fits(phase, model.spec.num_classes)
        self.model, self.phase, self.device = model, phase, device
        self.precision = precision  # resolved (amp.resolve)
        self.scaler = loss_scaler(device, precision)
        self.teacher = phase_teacher(phase, model, teacher)
        self.loss_fn = get_loss(phase.loss)
        self.mask = LogitMask(phase.logit_masking, phase.class_range,
                              model.spec.num_classes, device)
        self.distill_range = (None if phase.distill_range is None
                              else tuple(int(v) for v in phase.distill_range))
        self.temperature = float(phase.distill_temperature)
        self.penalty = make_penalty(model, penalty, device)
        self.bns = list(bn_layers(model).values())
        self.channels_last = is_builtin(model)  # see Normaliser
        # Synchronising with the GPU for the progress loss stalls its queue: do it rarely.
        self.sync_every = 1 if device.type == "cpu" else 16
        self._build_optimizer(trainable)

    def _build_optimizer(self, trainable: Masks | None) -> None:
        tensors = gated_tensors(self.model)
        masks = trainable_masks(trainable, {name: tuple(tensor.param.shape)
                                            for name, tensor in tensors.items()})
        full: list[tuple[str, nn.Parameter]] = []
        masked: list[tuple[str, nn.Parameter]] = []
        self.keep: list[torch.Tensor] = []
        for name, tensor in tensors.items():
            param = tensor.param
            mask = None if masks is None else masks[name]
            if mask is None or mask.all():
                full.append((tensor.param_name, param))
            elif mask.any():
                masked.append((tensor.param_name, param))
                self.keep.append(torch.from_numpy(mask.astype(np.float32)).to(self.device))
            param.requires_grad_(mask is None or bool(mask.any()))
        for name, bn in bn_layers(self.model).items():
            for pname in ("weight", "bias"):
                param = getattr(bn, pname)
                param.requires_grad_(self.phase.train_bn)
                if self.phase.train_bn:
                    full.append((f"{name}.{pname}", param))
        self.masked_params = [p for _, p in masked]
        named = full + masked
        self.param_names = [n for n, _ in named]
        groups = []
        if full:
            groups.append({"params": [p for _, p in full],
                           "weight_decay": self.phase.weight_decay})
        if masked:
            groups.append({"params": self.masked_params, "weight_decay": 0.0})
        self.optimizer = None
        if groups:
            # torch's fused AdamW kernel on every device (optim.py): elementwise, so a frozen
            # entry (gradient and moments exactly 0) keeps its value bit for bit.
            self.optimizer = FusedAdamW(groups, lr=self.phase.lr)

    def _set_lr(self, lr: float) -> list[torch.Tensor]:
        """Sets the epoch's learning rate; returns the per-entry decay factors of the masked
        weights (computed once per epoch, not per step)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        decay = lr * self.phase.weight_decay
        if not decay:
            return []
        return [1.0 - decay * keep for keep in self.keep]

    def _prepare_modes(self) -> None:
        self.model.train()
        if not self.phase.train_bn:
            for bn in self.bns:
                bn.eval()
        if self.teacher is not None:
            self.teacher.eval()

    def _outlier_loss(self, xb: torch.Tensor, batch_index: int) -> torch.Tensor:
        """Routing-aware training: the student's task logits on turned copies of part of the
        batch pushed towards uniform, with BN in inference mode (its statistics stay the
        task's own)."""
        turns = outlier_turns(batch_index, xb.shape[2], xb.shape[3])
        turned = torch.rot90(xb[:outlier_count(xb.shape[0])], turns, dims=(2, 3))
        for bn in self.bns:
            bn.eval()
        logits = self.model(turned).float()
        if self.phase.train_bn:
            for bn in self.bns:
                bn.train()
        lo, hi = self.phase.class_range
        return uniform_cross_entropy(logits[:, lo:hi])

    def _distill(self, teacher: torch.Tensor, logits: torch.Tensor,
                 student: torch.Tensor) -> torch.Tensor:
        """The distillation term. Without distill_range both sides are the phase's masked
        logits (student: already masked); with it, both sides are just those classes' raw
        logits (LwF: the old classes (0, lo), outside the current head's class_range). Then the
        temperature, skipped at T = 1 so that such phases compute exactly what they did
        before temperatures existed. No T^2 factor: Li and Hoiem's L_old (and FACIL's LwF)
        weighs the softened term by lambda alone."""
        if self.distill_range is None:
            teacher = self.mask.logits(teacher)
        else:
            lo, hi = self.distill_range
            teacher, student = teacher[:, lo:hi], logits[:, lo:hi]
        t = self.temperature
        if t == 1.0:
            return self.loss_fn(teacher, student)
        return self.loss_fn(teacher / t, student / t)

    def _loss(self, xb: torch.Tensor, yb: torch.Tensor, batch_index: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, ce, distill, student logits). Logits are float32 from here on: the losses'
        softmaxes and logs would lose too much in bf16 or fp16."""
        logits = self.model(xb).float()
        student = self.mask.logits(logits)
        ce = F.cross_entropy(student, self.mask.labels(yb))
        if self.teacher is not None:
            with torch.no_grad():
                teacher = self.teacher(xb).float()
            distill = self._distill(teacher, logits, student)
            loss = ce + self.phase.beta * distill
        else:
            distill = torch.zeros((), device=self.device)
            loss = ce
        if self.phase.outlier_weight > 0:
            loss = loss + self.phase.outlier_weight * self._outlier_loss(xb, batch_index)
        if self.penalty is not None:
            loss = loss + self.penalty()
        return loss, ce, distill, logits

    def _step(self, xb: torch.Tensor, yb: torch.Tensor, decay: list[torch.Tensor],
              batch_index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        with autocast(self.device, self.precision):
            loss, ce, distill, logits = self._loss(xb, yb, batch_index)
        if self.optimizer is not None:
            self.optimizer.zero_grad()
            if self.scaler is None:
                loss.backward()
            else:
                self.scaler.backward(loss)
            if self.masked_params:
                # Scaled or not, a frozen entry's gradient becomes exactly 0 (an overflowed
                # one NaN, which makes the scaler skip the whole step).
                torch._foreach_mul_([p.grad for p in self.masked_params], self.keep)
            if self.scaler is None:
                self._decay(decay)
                self.optimizer.step()
            elif self.scaler.step(self.optimizer):
                # Only after a step that was taken; so fp16 decays the updated value, where
                # fp32 decays the one before (a difference of order lr^2 * wd).
                self._decay(decay)
        correct = (self.mask.task_predictions(logits.detach()) == yb).sum()
        return loss.detach(), ce.detach(), distill.detach(), correct

    def _decay(self, decay: list[torch.Tensor]) -> None:
        if decay and self.masked_params:
            with torch.no_grad():
                torch._foreach_mul_(self.masked_params, decay)

    def train_epoch(self, x: np.ndarray, y: np.ndarray, epoch: int, seed: int,
                    progress: ProgressFn | None, should_stop: StopFn | None) -> EpochResult:
        start_time = time.perf_counter()
        phase, n = self.phase, len(x)
        check_labelled(x, y, phase.class_range)
        self._prepare_modes()
        decay = self._set_lr(phase.lr_at(epoch)) if self.optimizer is not None else []
        order = np.random.default_rng(seed).permutation(n)
        x_dev = torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)).to(self.device)
        y_dev = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(self.device)
        perm = torch.from_numpy(order).to(self.device)
        normalise = Normaliser(phase.mean, phase.std, self.device, self.channels_last)
        augment = EpochAugmenter(phase.augment, n, x.shape[1], x.shape[2], seed, self.device)
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        batches = -(-n // phase.batch_size)
        seen, stopped, running = 0, False, float("nan")
        for b in range(batches):
            if should_stop is not None and should_stop():
                stopped = True
                break
            start = b * phase.batch_size
            idx = perm[start:start + phase.batch_size]
            xb = augment.photometric(normalise(augment.geometric(x_dev[idx], start)), start)
            loss, ce, distill, correct = self._step(xb, y_dev[idx], decay, b)
            size = idx.shape[0]
            sums += torch.stack([loss * size, ce * size, distill * size, correct.double()])
            seen += size
            if progress is not None:
                if b == 0 or (b + 1) % self.sync_every == 0 or b + 1 == batches:
                    running = float(sums[0]) / seen
                progress(b + 1, batches, running)
        totals = (sums / max(seen, 1)).tolist()
        return EpochResult(loss=totals[0], ce=totals[1], distill=totals[2], accuracy=totals[3],
                           images=seen, seconds=time.perf_counter() - start_time,
                           stopped=stopped)

    def state(self) -> dict[str, np.ndarray]:
        if self.optimizer is None:
            return {}
        out = {} if self.scaler is None else scaler_entries(self.scaler.state())
        for index, values in self.optimizer.state_dict()["state"].items():
            for key, value in values.items():
                array = torch.as_tensor(value).detach().to("cpu", copy=True).numpy()
                out[f"adamw.{self.param_names[index]}.{key}"] = array
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        if self.optimizer is None:
            if state:
                raise ValueError("this phase trains nothing, but optimiser state was given")
            return
        scaler, state = split_scaler_entries(state)
        load_scaler_entries(self.scaler, scaler, self.precision)
        index_of = {name: i for i, name in enumerate(self.param_names)}
        per_param: dict[int, dict[str, torch.Tensor]] = {}
        for key, array in state.items():
            prefix, _, rest = key.partition(".")
            name, _, field = rest.rpartition(".")
            if prefix != "adamw" or name not in index_of:
                raise ValueError(f"optimiser state {key!r} does not belong to this phase")
            per_param.setdefault(index_of[name], {})[field] = torch.from_numpy(np.array(array))
        self.optimizer.load_state_dict({"state": per_param})

