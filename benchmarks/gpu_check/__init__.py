"""`python benchmarks/gpu_check`: one command that measures a GPU machine for prorl.

Sections, each run in its own process so that a crash, a hang or a CUDA out-of-memory in one
leaves the others standing (`runner.py`):

- `env`: torch, CUDA, the GPU, and which optional packages (vLLM, DeepSpeed, prorl's own
  dependencies) are importable;
- `hf_generate`: Hugging Face `generate` throughput of a Qwen2-1.5B-shaped random model in bf16;
- `train_step`, `train_step_zero2`: one bf16 training step of that model through prorl's own
  steppers (torch AdamW under autocast; DeepSpeed ZeRO-2): tokens/s and MFU;
- `prorl_run`: a short `prorl-train` run on the GPU (the `cpu-smoke` recipe moved to CUDA);
- `vllm_eval`: prorl's `VLLMGenerator` against raw `vllm.LLM.generate` on the same prompts;
- `vllm_rollout`: the rollout engine's weight sync, sleep/wake and the rollout/trainer log-prob
  gap.

A section whose packages are missing reports `skipped` with the reason, so the command runs on a
bare GPU machine with only torch and transformers. `--dry-run` runs every section with tiny shapes
on the CPU (what the tests do). Results go to `--out`: `results.json` and `results.md`.
"""
