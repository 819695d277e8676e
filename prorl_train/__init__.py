"""prorl_train: the ProRL trainer (GRPO with decoupled clipping, KL to a reference, resets)."""

__version__ = "0.1.0"
