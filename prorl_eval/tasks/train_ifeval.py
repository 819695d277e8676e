"""RLVR-IFeval's constraints as lm-eval IFEval instructions: training and `ifeval` share checkers.

An `allenai/RLVR-IFeval` row's `ground_truth` names one of open-instruct's 25 constraint functions
(`func_name`) and its arguments (`N`, `quantifier`, `keyword_list`, ...; the others null). Each
maps onto lm-eval's instruction ids and kwargs (`IFEVAL_MAP`), which `ifeval.score_ifeval` then
checks unchanged. Counts keep open-instruct's meaning with IFEval's two relations ("at least",
"less than"): exactly N is at least N and less than N+1; at most N is less than N+1; around N is
within open-instruct's tolerance (10% of N, at least 1; sentences: 1) on both sides.

Example:
    >>> spec = {"func_name": "validate_word_constraint", "N": 50, "quantifier": "at most"}
    >>> ifeval_instructions(spec)
    (['length_constraints:number_words'], [{'num_words': 51, 'relation': 'less than'}])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Instruction = tuple[str, dict[str, Any]]

# lm-eval's three fixed answers of `detectable_format:constrained_response`
CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


class MissingArgument(KeyError):
    """A constraint function's argument that the row's ground truth leaves null or out."""


def _need(spec: dict[str, Any], name: str) -> Any:
    value = spec.get(name)
    if value is None or value == "":
        raise MissingArgument(name)
    return value


def _bounds(n: int, quantifier: str | None, tolerance: int) -> list[tuple[str, int]]:
    """(IFEval relation, count) pairs that together mean `quantifier n` (None: exactly n).

    "at least 0" always holds and lm-eval drops a falsy kwarg, so that bound is left out.
    """
    if quantifier == "at least":
        pairs = [("at least", n)]
    elif quantifier == "at most":
        pairs = [("less than", n + 1)]
    elif quantifier == "around":
        pairs = [("at least", n - tolerance), ("less than", n + tolerance + 1)]
    elif quantifier is None:
        pairs = [("at least", n), ("less than", n + 1)]
    else:
        raise MissingArgument("quantifier")
    return [(relation, count) for relation, count in pairs if count > 0]


def _ten_percent(n: int) -> int:
    return max(round(n * 0.1), 1)


def _counted(
    instruction: str, count_key: str, relation_key: str, tolerance: Callable[[int], int]
) -> Callable[[dict[str, Any]], list[Instruction]]:
    """A constraint on a count with a quantifier (None: exactly)."""

    def build(spec: dict[str, Any]) -> list[Instruction]:
        n = int(_need(spec, "N"))
        bounds = _bounds(n, spec.get("quantifier"), tolerance(n))
        return [(instruction, {count_key: c, relation_key: r}) for r, c in bounds]

    return build


def _exact_frequency(
    instruction: str, item_key: str, arg: str, count_key: str, relation_key: str
) -> Callable[[dict[str, Any]], list[Instruction]]:
    """A constraint that `arg` occurs exactly N times."""

    def build(spec: dict[str, Any]) -> list[Instruction]:
        item, n = _need(spec, arg), int(_need(spec, "N"))
        return [
            (instruction, {item_key: item, count_key: c, relation_key: r})
            for r, c in _bounds(n, None, 0)
        ]

    return build


def _fixed(instruction: str, **args: str) -> Callable[[dict[str, Any]], list[Instruction]]:
    """A constraint whose IFEval kwargs are the row's arguments renamed ({ifeval: row name})."""

    def build(spec: dict[str, Any]) -> list[Instruction]:
        return [(instruction, {key: _need(spec, name) for key, name in args.items()})]

    return build


def _choice(spec: dict[str, Any]) -> list[Instruction] | None:
    """lm-eval checks its own three answers only; other option lists have no checker."""
    options = _need(spec, "options")
    text = options if isinstance(options, str) else " ".join(map(str, options))
    if all(option in text for option in CONSTRAINED_OPTIONS):
        return [("detectable_format:constrained_response", {})]
    return None


IFEVAL_MAP: dict[str, Callable[[dict[str, Any]], list[Instruction] | None]] = {
    "verify_keywords": _fixed("keywords:existence", keywords="keyword_list"),
    "verify_keyword_frequency": _exact_frequency(
        "keywords:frequency", "keyword", "word", "frequency", "relation"
    ),
    "validate_forbidden_words": _fixed(
        "keywords:forbidden_words", forbidden_words="forbidden_words"
    ),
    "verify_letter_frequency": _exact_frequency(
        "keywords:letter_frequency", "letter", "letter", "let_frequency", "let_relation"
    ),
    "validate_response_language": _fixed("language:response_language", language="language"),
    "verify_paragraph_count": _fixed("length_constraints:number_paragraphs", num_paragraphs="N"),
    "validate_word_constraint": _counted(
        "length_constraints:number_words", "num_words", "relation", _ten_percent
    ),
    "verify_sentence_constraint": _counted(
        "length_constraints:number_sentences", "num_sentences", "relation", lambda n: 1
    ),
    "validate_paragraphs": _fixed(
        "length_constraints:nth_paragraph_first_word",
        num_paragraphs="N",
        nth_paragraph="i",
        first_word="first_word",
    ),
    "verify_postscript": _fixed(
        "detectable_content:postscript", postscript_marker="postscript_marker"
    ),
    "validate_placeholders": _fixed("detectable_content:number_placeholders", num_placeholders="N"),
    "verify_bullet_points": _fixed("detectable_format:number_bullet_lists", num_bullets="N"),
    "validate_title": _fixed("detectable_format:title"),
    "validate_choice": _choice,
    "validate_highlighted_sections": _fixed(
        "detectable_format:number_highlighted_sections", num_highlights="N"
    ),
    "validate_sections": _fixed(
        "detectable_format:multiple_sections", section_spliter="section_splitter", num_sections="N"
    ),
    "validate_json_format": _fixed("detectable_format:json_format"),
    "validate_repeat_prompt": _fixed(
        "combination:repeat_prompt", prompt_to_repeat="original_prompt"
    ),
    "validate_two_responses": _fixed("combination:two_responses"),
    "validate_uppercase": _fixed("change_case:english_capital"),
    "validate_lowercase": _fixed("change_case:english_lowercase"),
    "validate_frequency_capital_words": _counted(
        "change_case:capital_word_frequency", "capital_frequency", "capital_relation", _ten_percent
    ),
    "validate_end": _fixed("startend:end_checker", end_phrase="end_phrase"),
    "validate_quotation": _fixed("startend:quotation"),
    "validate_no_commas": _fixed("punctuation:no_comma"),
}


def ifeval_instructions(spec: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]] | None:
    """(instruction_id_list, kwargs) for one ground-truth constraint, or None when IFEval has no
    checker for it (an unknown function, or a choice among other answers than lm-eval's).

    Raises `MissingArgument` (a KeyError naming the argument) when a needed argument is null.
    """
    build = IFEVAL_MAP.get(str(spec.get("func_name")))
    instructions = build(spec) if build is not None else None
    if not instructions:
        return None
    return [name for name, _ in instructions], [kwargs for _, kwargs in instructions]
