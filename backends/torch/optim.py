"""AdamW on torch's fused kernel, without torch.optim's machinery around it.

The trainer's exact freezing needs nothing from an optimiser but elementwise updates (trainer.py
masks the gradients), and torch's fused AdamW kernel (`torch._fused_adamw_`) is what
`torch.optim.AdamW(fused=True)` runs, with the same arguments in the same order: the numbers
are bit for bit those of torch.optim (a test checks it). Why not torch.optim itself: its
methods are wrapped to keep torch's compiler out, and the first call of one imports that
compiler stack (about 1 s of a 45 s demo, in every process that trains). The state has
torch.optim's layout (`state_dict()["state"][index]` with `step`, `exp_avg`, `exp_avg_sq`),
so trainer states written before keep loading; fp16's GradScaler drives it through
`param_groups` and `step()` as it drives a torch optimiser.
"""

from __future__ import annotations

from typing import Any

import torch

BETAS = (0.9, 0.999)  # torch.optim.AdamW's defaults
EPS = 1e-8


class FusedAdamW:
    def __init__(self, groups: list[dict[str, Any]], lr: float) -> None:
        self.param_groups = [{"params": list(group["params"]), "lr": lr,
                              "weight_decay": group.get("weight_decay", 0.0)}
                             for group in groups]
        self.params = [p for group in self.param_groups for p in group["params"]]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    def _state(self, param: torch.Tensor) -> dict[str, torch.Tensor]:
        if param not in self.state:
            # As torch.optim's fused path starts them: a float32 step, zero moments.
            self.state[param] = {
                "step": torch.zeros((), dtype=torch.float32, device=param.device),
                "exp_avg": torch.zeros_like(param, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(param, memory_format=torch.preserve_format)}
        return self.state[param]

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self._state(p) for p in params]
            steps = [s["step"] for s in states]
            torch._foreach_add_(steps, 1)
            torch._fused_adamw_(params, [p.grad for p in params],
                                [s["exp_avg"] for s in states],
                                [s["exp_avg_sq"] for s in states], [], steps,
                                amsgrad=False, lr=group["lr"], beta1=BETAS[0], beta2=BETAS[1],
                                weight_decay=group["weight_decay"], eps=EPS, maximize=False,
                                grad_scale=None, found_inf=None)

    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {field: tensor}}}, indices in parameter order, as torch.optim."""
        return {"state": {index: dict(self.state[param])
                          for index, param in enumerate(self.params) if param in self.state}}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.state = {}
        for index, fields in saved["state"].items():
            param = self.params[int(index)]
            self.state[param] = {
                key: (torch.as_tensor(value, dtype=torch.float32, device=param.device).clone()
                      if key == "step" else
                      torch.as_tensor(value).to(param.device, param.dtype).clone())
                for key, value in fields.items()}
