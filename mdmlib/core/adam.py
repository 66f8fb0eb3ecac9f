"""Adam and AdamW: torch.optim's update and state dict, without torch.optim's import cost.

Why: a ``torch.optim`` optimizer imports ``torch._dynamo`` (and with it sympy) the first time it is
built or stepped, to mark its methods as not to be compiled. Nothing here is compiled, yet on a
2-core CPU that import costs every training job about as much as importing torch itself.

The update is the one of torch.optim's multi-tensor Adam (its default on GPUs), in the same order of
operations; on the CPU it gives the same weights, bit for bit, as torch.optim.Adam's default there
(the single-tensor loop), and the state dict has torch.optim's layout, so a checkpoint written by
either resumes under the other (tests/unit/core/test_adam.py). AMSGrad, maximize, capturable
and fused steps are left out: nothing here uses them.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch

# torch.optim's param-group keys: a state dict written here loads into torch.optim.Adam as it is.
TORCH_GROUP_DEFAULTS = {"amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                        "differentiable": False, "fused": None}


class Adam:
    """One parameter group; ``decoupled_weight_decay`` makes it AdamW."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 decoupled_weight_decay: bool = False):
        self.params = list(params)
        self.param_groups = [{"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                              "decoupled_weight_decay": decoupled_weight_decay, "params": self.params}]
        self.state: dict[torch.nn.Parameter, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    def _state_of(self, p: torch.nn.Parameter) -> dict[str, torch.Tensor]:
        if p not in self.state:  # as torch.optim: a float32 step on the CPU, moments like the parameter
            self.state[p] = {"step": torch.tensor(0.0, dtype=torch.float32),
                             "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                             "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        return self.state[p]

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        by_device: dict[tuple, list[torch.nn.Parameter]] = {}
        for p in self.params:
            if p.grad is not None:
                by_device.setdefault((p.device, p.dtype), []).append(p)
        for params in by_device.values():
            grads = [p.grad for p in params]
            states = [self._state_of(p) for p in params]
            steps = [s["step"] for s in states]
            exp_avgs, exp_avg_sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
            torch._foreach_add_(steps, 1)
            if weight_decay != 0:
                if group["decoupled_weight_decay"]:
                    torch._foreach_mul_(params, 1 - lr * weight_decay)
                else:
                    grads = torch._foreach_add(grads, params, alpha=weight_decay)
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
            torch._foreach_mul_(exp_avg_sqs, beta2)
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
            counts = [step.item() for step in steps]
            step_sizes = [(lr / (1 - beta1 ** n)) * -1 for n in counts]
            bias_correction2_sqrt = [(1 - beta2 ** n) ** 0.5 for n in counts]
            denominators = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_div_(denominators, bias_correction2_sqrt)
            torch._foreach_add_(denominators, eps)
            torch._foreach_addcdiv_(params, exp_avgs, denominators, step_sizes)

    def state_dict(self) -> dict:
        index = {p: i for i, p in enumerate(self.params)}
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"state": {index[p]: dict(s) for p, s in self.state.items()},
                "param_groups": [TORCH_GROUP_DEFAULTS | group | {"params": list(range(len(self.params)))}]}

    def load_state_dict(self, state_dict: dict) -> None:
        (group,) = state_dict["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"the saved optimizer holds {len(group['params'])} parameters, this model "
                             f"{len(self.params)}")
        ours = self.param_groups[0]
        for key in ("lr", "betas", "eps", "weight_decay"):
            ours[key] = tuple(group[key]) if key == "betas" else group[key]
        # A dict that does not name it (torch.optim before AdamW became Adam's option) keeps this optimizer's kind.
        ours["decoupled_weight_decay"] = group.get("decoupled_weight_decay", ours["decoupled_weight_decay"])
        position = {saved_index: k for k, saved_index in enumerate(group["params"])}
        self.state = {}
        for i, saved in state_dict["state"].items():
            p = self.params[position[int(i)]]
            self.state[p] = {"step": saved["step"].detach().clone().to(torch.float32),
                             "exp_avg": saved["exp_avg"].detach().clone().to(p.device, p.dtype),
                             "exp_avg_sq": saved["exp_avg_sq"].detach().clone().to(p.device, p.dtype)}
