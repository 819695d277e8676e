"""The creativity index's inputs and outputs: corpus documents in, scored rows out.

- Documents for an index: text files, JSONL/JSON files (a text field) and folders of them
  (:func:`iter_documents`), or a Hugging Face dataset streamed or loaded from disk
  (:func:`iter_hf_documents`).
- Scoring: :func:`score_text` (one response against an :class:`NgramIndex`), :func:`score_rows`
  (sample rows of a run), :func:`write_rows` (``creativity.jsonl`` and ``creativity.csv``).

`prorl-eval creativity` (:mod:`prorl_eval.cli.creativity`) and the report's creativity section
use them.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prorl_eval.errors import UserError

if TYPE_CHECKING:
    from prorl_eval.analysis.creativity import CreativityConfig, CreativityResult

ROWS_JSONL = "creativity.jsonl"
ROWS_CSV = "creativity.csv"
SUMMARY_JSON = "creativity_summary.json"
_ROW_KEYS = ("task", "problem_id", "sample_idx", "model", "num_words", "creativity_index")


# ------------------------------------------------------------------------- documents


def _json_text(row: Any, text_field: str, where: str) -> str:
    text = row.get(text_field) if isinstance(row, dict) else None
    if not isinstance(text, str):
        raise UserError(f"{where}: no string field {text_field!r}; pass --text-field.")
    return text


def _jsonl_texts(path: Path, text_field: str) -> Iterator[str]:
    """Texts of a JSON-lines file, or of a JSON array of objects (``[`` first)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        if fh.read(4096).lstrip().startswith("["):
            fh.seek(0)
            try:
                rows = json.load(fh)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}: malformed JSON ({exc.msg}, line {exc.lineno}).") from None
            for i, row in enumerate(rows):
                yield _json_text(row, text_field, f"{path} item {i}")
            return
        fh.seek(0)
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: malformed JSON ({exc.msg}).") from None
            yield _json_text(row, text_field, f"{path}:{lineno}")


def _text_file_docs(path: Path) -> Iterator[str]:
    """A text file's documents: its blocks separated by blank lines (memory stays bounded)."""
    opener = gzip.open if path.suffix == ".gz" else open
    block: list[str] = []
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                block.append(line)
            elif block:
                yield "".join(block)
                block = []
    if block:
        yield "".join(block)


def _corpus_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) is not None)
    if not path.exists():
        raise UserError(f"corpus input {path} does not exist.")
    if _kind(path) is None:
        raise UserError(f"{path}: unknown corpus file type; use .txt, .jsonl or .json (.gz ok).")
    return [path]


def _kind(path: Path) -> str | None:
    name = path.name.removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        return "jsonl"
    return "text" if name.endswith(".txt") else None


def iter_documents(inputs: Sequence[str | Path], text_field: str = "text") -> Iterator[str]:
    """Documents of local inputs: ``.txt`` (blank-line-separated blocks), ``.jsonl``/``.json``
    (JSON lines or one JSON array of objects: the ``text_field`` of each), optionally gzipped,
    or folders of those (recursively, in sorted order)."""
    for item in inputs:
        for path in _corpus_files(Path(item)):
            if _kind(path) == "jsonl":
                yield from _jsonl_texts(path, text_field)
            else:
                yield from _text_file_docs(path)


def iter_hf_documents(
    dataset: str, text_field: str = "text", config: str | None = None, split: str = "train"
) -> Iterator[str]:
    """Documents of a Hugging Face dataset, streamed; a folder written by ``save_to_disk`` is read
    locally instead (the offline route)."""
    import datasets

    if Path(dataset).is_dir():
        try:
            loaded = datasets.load_from_disk(dataset)
        except Exception as exc:
            raise UserError(f"{dataset}: not a saved dataset ({exc}).") from None
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise UserError(f"{dataset} has no split {split!r} (has {sorted(loaded)}).")
            loaded = loaded[split]
    else:
        try:
            loaded = datasets.load_dataset(dataset, config, split=split, streaming=True)
        except Exception as exc:  # network, auth and name errors are all user-fixable here
            raise UserError(f"could not load {dataset} ({split}): {str(exc)[:200]}") from None
    for row in loaded:
        text = row.get(text_field)
        if not isinstance(text, str):
            raise UserError(f"{dataset}: a row has no string field {text_field!r}.")
        yield text


# ---------------------------------------------------------------------------- commands


def score_text(index: Any, text: str, config: CreativityConfig) -> CreativityResult:
    """Creativity of one response text against an opened index (batched suffix-array search), or
    against a corpus that scores words itself (`creativity_api.ApiCorpus`: DJ search over API
    counts).

    Example:
        >>> from prorl_eval.analysis.creativity import CreativityConfig
        >>> score_text(NgramIndex.open("idx"), "some text", CreativityConfig())  # doctest: +SKIP
    """
    from prorl_eval.analysis.creativity import creativity_from_ends, ends_from_lengths

    words = index.tokenize(text)
    if hasattr(index, "score"):
        return index.score(words, config)
    lengths = index.longest_matches(words, cap=config.max_l)
    return creativity_from_ends(ends_from_lengths(lengths, config.min_l), config)


def open_corpus(
    spec: str,
    *,
    api_url: str | None = None,
    api_cache: Path | None = None,
    concurrency: int = 8,
    rate: float = 10.0,
    retries: int = 5,
    match: str = "words",
    tokenizer: str | None = None,
) -> tuple[Any, dict[str, Any]]:
    """(the corpus to score against, what to record about it): `api:<index>` is the infini-gram
    API (`creativity_api`), anything else a local index folder built by `index-build`."""
    if not spec.startswith("api:"):
        from prorl_eval.analysis.ngram_index import NgramIndex

        if match != "words":
            raise UserError("--match tokens needs --corpus api:<index>; a local index has words.")
        index = NgramIndex.open(Path(spec))
        return index, {"corpus": spec, "corpus_words": index.num_words, "match": "words"}
    from prorl_eval.analysis.creativity_api import (
        DEFAULT_TOKENIZER,
        DEFAULT_URL,
        ApiCorpus,
        InfiniGramClient,
        load_tokenizer,
    )

    client = InfiniGramClient(
        spec.removeprefix("api:"), url=api_url or DEFAULT_URL, cache=api_cache,
        concurrency=concurrency, rate=rate, retries=retries,
    )  # fmt: skip
    if match not in ("words", "tokens"):
        raise UserError(f"--match must be words or tokens (got {match!r}).")
    loaded = load_tokenizer(tokenizer or DEFAULT_TOKENIZER) if match == "tokens" else None
    corpus = ApiCorpus(client, match, loaded)
    info = {**corpus.describe(), "corpus_words": None}
    if match == "tokens":
        info["tokenizer"] = tokenizer or DEFAULT_TOKENIZER
    return corpus, info


def corpus_documents(
    inputs: list[Path] | None,
    hf_dataset: str | None,
    hf_config: str | None,
    hf_split: str,
    text_field: str,
) -> tuple[Iterator[str], list[str]]:
    """The documents to index and a description of where they come from."""
    if inputs:
        return iter_documents(inputs, text_field), [str(path) for path in inputs]
    assert hf_dataset is not None
    documents = iter_hf_documents(hf_dataset, text_field, hf_config, hf_split)
    return documents, [f"hf:{hf_dataset}:{hf_config or ''}:{hf_split}"]


def read_rows(samples: str) -> list[dict[str, Any]]:
    from prorl_eval.schema import read_samples

    path = Path(samples)
    path = path / "samples.jsonl" if path.is_dir() else path
    rows = read_samples(path)
    if not rows:
        raise UserError(f"{path} holds no sample rows.")
    for row in rows:
        if not isinstance(row.get("response"), str):
            raise UserError(
                f"{path}: sample {row['task']}/{row['problem_id']}/{row['sample_idx']} has no "
                "string 'response'; creativity needs the response text."
            )
    return rows


def score_rows(
    rows: list[dict[str, Any]],
    index: Any,
    config: CreativityConfig,
    *,
    strip_think: bool = False,
    progress: Callable[[], None] | None = None,
    workers: int = 1,
) -> list[dict[str, Any]]:
    """One output row per sample row: its key, model, word count, index and coverage per L.
    `workers` > 1 scores rows in threads (the API corpus: requests in flight at once)."""
    from concurrent.futures import ThreadPoolExecutor

    from prorl_eval.tasks.base import strip_reasoning

    def one(row: dict[str, Any]) -> dict[str, Any]:
        text = strip_reasoning(row["response"]) if strip_think else row["response"]
        result = score_text(index, text, config)
        record = {key: row.get(key, "") for key in _ROW_KEYS[:4]}
        record["model"] = str(record["model"] or "")
        record.update(
            num_words=result.num_words,
            creativity_index=result.index,
            coverage={str(length): value for length, value in result.coverage.items()},
        )
        if progress is not None:
            progress()
        return record

    if workers <= 1:
        return [one(row) for row in rows]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, rows))


def write_rows(folder: Path, records: list[dict[str, Any]], lengths: list[int]) -> None:
    with (folder / ROWS_JSONL).open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    with (folder / ROWS_CSV).open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*_ROW_KEYS, *(f"coverage_{length}" for length in lengths)])
        for record in records:
            coverage = [record["coverage"].get(str(length), "") for length in lengths]
            writer.writerow([*(record[key] for key in _ROW_KEYS), *coverage])
