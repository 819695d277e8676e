"""The optimizer stepper: what the update loop asks of an optimizer step, as a Protocol.

`update.py` never touches a torch optimizer or a DeepSpeed engine directly; it drives a stepper.
Per mini-batch: `zero_grad()`, then `backward(loss, boundary)` once per micro-batch (the loss
already weighted so the micro-batch losses sum to the mini-batch's loss; `boundary` marks the
last one), then `step()`, which applies the update and returns the pre-clip gradient norm. Forward
passes call `model` (the policy, or the DeepSpeed engine around it). `set_lr` applies the step's
learning rate, `reset_state` forgets the optimizer's moments (a ProRL hard reset), and
`save`/`load` write and read the optimizer state inside a checkpoint folder.

`deepspeed_engine.TorchStepper` (torch AdamW, zero_stage 0) and `deepspeed_engine.DeepSpeedStepper`
(ZeRO 1-3) conform structurally; neither inherits from the Protocol.

Example:
    >>> from prorl_train.deepspeed_engine import TorchStepper
    >>> isinstance(TorchStepper(model=None, optimizer=None, grad_clip=1.0), OptimizerStepper)
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class OptimizerStepper(Protocol):
    """One optimizer step per mini-batch over accumulated micro-batch gradients."""

    model: Any  # what forward and backward passes run (the policy or its DeepSpeed engine)
    optimizer: Any  # the torch (or ZeRO) optimizer inside

    def set_lr(self, lr: float) -> None:
        """Use learning rate `lr` for the following steps."""
        ...

    def zero_grad(self) -> None:
        """Drop the accumulated gradients before a mini-batch."""
        ...

    def backward(self, loss: Any, boundary: bool) -> None:
        """Accumulate the gradient of one (weighted) micro-batch loss; `boundary`: the last one
        of the mini-batch."""
        ...

    def step(self) -> float:
        """Apply the accumulated gradients (clipped); returns the pre-clip gradient norm."""
        ...

    def reset_state(self) -> None:
        """Forget the per-parameter optimizer state (Adam moments and step counts)."""
        ...

    def save(self, folder: Path) -> None:
        """Write the optimizer state into checkpoint folder `folder` (collective under ZeRO)."""
        ...

    def load(self, checkpoint: Path) -> None:
        """Restore the optimizer state written by `save` into `checkpoint`."""
        ...
