"""The shared pad / stop-token / EOS-cut / unwrap helpers every Hugging Face caller imports."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from prorl_eval.inference.hf import completion_of
from prorl_eval.inference.hf_common import cut_at_eos, eos_token_ids, pad_token_id, unwrap_model


@pytest.mark.parametrize(
    ("tokens", "eos", "expected"),
    [
        ([], {2}, ([], False)),
        ([2], {2}, ([2], True)),
        ([2, 5, 2], {2}, ([2], True)),
        ([4, 5, 6], {2}, ([4, 5, 6], False)),
        ([4, 9, 7, 2, 0], [2, 9], ([4, 9], True)),  # the first of several stop ids
        ([4, 5, 2, 2, 2], {2}, ([4, 5, 2], True)),  # padding with the EOS id after the end
    ],
)
def test_cut_at_eos(tokens, eos, expected):
    assert cut_at_eos(tokens, eos) == expected


def test_pad_and_stop_ids_fall_back_to_the_tokenizer():
    tok = SimpleNamespace(pad_token_id=None, eos_token_id=7)
    assert pad_token_id(tok) == 7
    assert pad_token_id(SimpleNamespace(pad_token_id=0, eos_token_id=7)) == 0  # 0 is a real id
    bare = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=None))
    assert eos_token_ids(bare, tok) == [7]
    listed = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[9, 2, 9]))
    assert eos_token_ids(listed, tok) == [2, 9]
    assert eos_token_ids(SimpleNamespace(), tok) == [7]  # no generation config at all


def test_unwrap_model_sees_through_nested_wrappers():
    inner = torch.nn.Linear(2, 2)
    compiled = SimpleNamespace(_orig_mod=inner)
    compiled.named_parameters = inner.named_parameters
    wrapped = SimpleNamespace(module=SimpleNamespace(module=compiled))
    wrapped.module.named_parameters = inner.named_parameters
    assert unwrap_model(wrapped) is inner
    assert unwrap_model(inner) is inner
    not_a_model = SimpleNamespace(module="text")  # `.module` that is not a model is kept
    assert unwrap_model(not_a_model) is not_a_model


def test_completion_of_cuts_decodes_and_counts(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    word = tok("Paris", add_special_tokens=False)["input_ids"]
    eos = tok.eos_token_id
    stopped = completion_of(tok, [*word, eos, eos, eos], {eos}, prompt_tokens=3)
    assert (stopped.text, stopped.finish_reason, stopped.num_tokens) == (
        "Paris",
        "stop",
        len(word) + 1,
    )
    assert stopped.token_ids == (*word, eos) and not stopped.truncated
    assert stopped.prompt_tokens == 3
    cut = completion_of(tok, word, {eos})
    assert (cut.text, cut.finish_reason, cut.truncated) == ("Paris", "length", True)
    empty = completion_of(tok, [], {eos})
    assert (empty.text, empty.num_tokens, empty.finish_reason) == ("", 0, "length")
    only_eos = completion_of(tok, [eos], {eos})
    assert (only_eos.text, only_eos.num_tokens, only_eos.finish_reason) == ("", 1, "stop")
