"""The task registry: names, suites, families, suites over data that is not here, the catalogue
the task modules declare, and the import order of `prorl_eval.tasks`."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import prorl_eval.tasks
from prorl_eval.errors import UserError
from prorl_eval.tasks.registry import (
    TaskOptions,
    build_task,
    catalogue,
    catalogue_domain,
    catalogue_domains,
    catalogue_position,
    expand_names,
    families,
    named_tasks,
    resolve_available_tasks,
    suites,
)

TASKS_DIR = Path(prorl_eval.tasks.__file__).parent
TASK_MODULES = sorted(path.stem for path in TASKS_DIR.glob("*.py") if path.stem != "__init__")


def test_stable_names_and_suites():
    names = {entry.name for entry in catalogue()}
    for name in (
        "aime24",
        "aime25",
        "amc23",
        "math500",
        "minerva",
        "olympiadbench",
        "humaneval",
        "humaneval_plus",
        "mbpp_plus",
        "gpqa_diamond",
        "ifeval",
        "gym:basic_arithmetic",
    ):
        assert name in names
    table = suites()
    for suite in ("math", "code", "stem", "ifeval", "logic", "prorl-paper"):
        assert table[suite]
    assert len(table["logic"]) == 105
    assert set(table["math"]) | set(table["code"]) | {"gpqa_diamond", "ifeval"} <= set(
        table["prorl-paper"]
    )
    assert expand_names("math,aime24") == list(table["math"])


def test_unknown_names_suggest_close_ones():
    with pytest.raises(UserError, match="Did you mean math500"):
        build_task("math5000", TaskOptions())


def test_suite_members_without_data_are_skipped_but_named_tasks_must_load(tmp_path):
    tasks, skipped = resolve_available_tasks("code", TaskOptions(data_dir=str(tmp_path), limit=2))
    assert [t.name for t in tasks] == ["humaneval"]
    assert set(skipped) == {"humaneval_plus", "mbpp_plus"}
    assert "no offline copy" in skipped["mbpp_plus"]
    with pytest.raises(UserError, match="no offline copy"):
        resolve_available_tasks("humaneval_plus", TaskOptions(data_dir=str(tmp_path)))
    with pytest.raises(UserError, match=r"data directory .* does not exist"):
        resolve_available_tasks("math", TaskOptions(data_dir=str(tmp_path / "missing")))


def test_every_entry_builds_the_task_it_describes():
    for entry in catalogue():
        task = entry.build(TaskOptions(limit=1))
        assert (task.name, task.domain) == (entry.name, entry.domain), entry.name
        assert build_task(entry.name, TaskOptions(limit=1)).domain == entry.domain, entry.name
        assert entry.verifier and entry.source and entry.size, entry.name


def test_names_are_unique_and_suites_name_listed_tasks():
    names = [entry.name for entry in catalogue()]
    assert len(names) == len(set(names))
    assert set(named_tasks()) <= set(names)
    prefixes = families()
    assert list(prefixes) == ["gym", "code", "livecodebench", "starter", "custom"]
    assert all(family.prefix == prefix for prefix, family in prefixes.items())
    for name in set(names) - set(named_tasks()):  # the rest are built through a family
        assert name.partition(":")[0] in prefixes, name
    table = suites()
    for shared in set(table) & set(names):  # a suite named like a task is that task alone
        assert table[shared] == (shared,), shared
    for suite, members in table.items():
        assert members and set(members) <= set(names), suite
    assert table["prorl-paper"] == (*table["math"], *table["code"], "gpqa_diamond", "ifeval",
                                    *table["logic"])  # fmt: skip


def test_catalogue_lookups_for_runs_without_recorded_domains():
    assert catalogue_domain("starter:capitals") == "knowledge"
    assert catalogue_domain("gym:chain_sum?max_digits=1") == "logic"
    assert catalogue_domain("aime24:hard") == "math"
    assert catalogue_domain("code:codeparrot/apps") == "code"
    assert catalogue_domain("custom:x.jsonl?prompt=q&answer=a") == "custom"
    assert catalogue_domain("mystery") is None and catalogue_domain("mystery:x") is None
    shuffled = ["mystery", "custom:x.jsonl", "code:apps", "gym:ab?x=1", "ifeval", "mbpp_plus",
                "starter:sums", "aime25", "aime24"]  # fmt: skip
    assert sorted(shuffled, key=catalogue_position) == [
        "aime24", "aime25", "mbpp_plus", "ifeval", "starter:sums", "gym:ab?x=1", "code:apps",
        "custom:x.jsonl", "mystery",
    ]  # fmt: skip
    assert catalogue_domains()[:6] == ["math", "code", "stem", "ifeval", "knowledge", "logic"]


def _top_level_nodes(tree: ast.Module) -> list[ast.stmt]:
    """The module's statements, with the bodies of top-level `if` / `try` blocks flattened."""
    nodes: list[ast.stmt] = []
    for node in tree.body:
        nodes.append(node)
        if isinstance(node, ast.If | ast.Try):
            nodes += [*node.body, *node.orelse]
    return nodes


@pytest.mark.parametrize("module", TASK_MODULES)
def test_no_task_module_imports_the_registry_at_module_level(module):
    tree = ast.parse((TASKS_DIR / f"{module}.py").read_text())
    imported = set()
    for node in _top_level_nodes(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert "prorl_eval.tasks.registry" not in imported


def test_each_task_module_imports_first_without_a_cycle():
    """In one fresh interpreter, every module of prorl_eval.tasks is imported as the first of
    the package (the package's modules dropped from sys.modules before each), forwards and
    backwards; none may fail, and none but the registry may pull the registry in."""
    script = (
        "import importlib, sys\n"
        f"modules = {TASK_MODULES!r}\n"
        "for name in modules + modules[::-1]:\n"
        "    for key in [k for k in sys.modules if k.startswith('prorl_eval')]:\n"
        "        del sys.modules[key]\n"
        "    importlib.import_module('prorl_eval.tasks.' + name)\n"
        "    pulled = 'prorl_eval.tasks.registry' in sys.modules\n"
        "    assert name == 'registry' or not pulled, name + ' imports the registry'\n"
        "print('ok')\n"
    )
    root = str(TASKS_DIR.parents[1])  # the checkout whose prorl_eval this test imported
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
