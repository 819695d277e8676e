"""Find the program in a model response.

`extract_code` looks at the response after `<think>` traces are removed (`strip_reasoning`), and
takes, in order:

1. the last fenced block labelled python (```python, ```py, ```python3, ```py3; any case);
2. else the last unlabelled fenced block;
3. else an opening python/unlabelled fence that was never closed (a truncated response), to the
   end of the text, if that parses;
4. else the whole text, if it parses as Python and contains a statement other than a bare
   expression (so ordinary prose that happens to parse is not taken as a program);
5. else nothing.

Fences of other languages (```cpp, ```text) are never taken. Fences may be indented and may use
more than three backticks (the closing fence must use as many).

`function_program` builds the program for a function-completion task (HumanEval): a response that
defines the entry point is appended to the prompt (the prompt's imports and helpers stay
available and the prompt's stub is redefined); otherwise the response is a completion of the
prompt's function body and is appended to the prompt as is.

Example:
    >>> extract_code("<think>```python\\nx=1\\n```</think>Answer:\\n```py\\nprint(2)\\n```")
    ('print(2)\\n', 'last ```python block')
"""

from __future__ import annotations

import ast
import re
import textwrap

from prorl_eval.tasks.base import strip_reasoning

PYTHON_TAGS = frozenset({"python", "py", "python3", "py3"})
_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,})[ \t]*(?P<tag>[\w+#.-]*)[^\n]*\n(?P<body>.*?)^[ \t]*(?P=fence)[ \t]*$",
    flags=re.DOTALL | re.MULTILINE,
)
_OPEN_FENCE = re.compile(r"^[ \t]*`{3,}[ \t]*(?P<tag>[\w+#.-]*)[^\n]*\n", flags=re.MULTILINE)


def _tree(code: str) -> ast.Module | None:
    """The syntax tree if `code` compiles as a module (a top-level `return` fails), else None."""
    try:
        compile(code, "<response>", "exec", dont_inherit=True)
        return ast.parse(code)
    except Exception:  # SyntaxError, ValueError (NUL bytes), RecursionError, MemoryError, ...
        return None


def _compiles(code: str) -> bool:
    return _tree(code) is not None


def _looks_like_program(code: str) -> bool:
    """Compiles, and has a statement that is not a bare expression (prose rarely compiles, and a
    lone name or number is not a program)."""
    tree = _tree(code)
    return tree is not None and any(not isinstance(node, ast.Expr) for node in tree.body)


def _normalise(body: str) -> str:
    """A fenced block as written, or dedented when only the dedented text compiles."""
    if _compiles(body):
        return body
    dedented = textwrap.dedent(body)
    return dedented if _compiles(dedented) else body


def extract_code(response: str) -> tuple[str, str]:
    """(code, how it was found); code is "" when the response holds no Python program."""
    text = strip_reasoning(response)
    blocks = [(m["tag"].lower(), _normalise(m["body"])) for m in _FENCE.finditer(text)]
    python = [body for tag, body in blocks if tag in PYTHON_TAGS]
    if python:
        return python[-1], "last ```python block"
    bare = [body for tag, body in blocks if tag == ""]
    if bare:
        return bare[-1], "last unlabelled ``` block"
    closed_end = max((m.end() for m in _FENCE.finditer(text)), default=0)
    opened = [m for m in _OPEN_FENCE.finditer(text, closed_end)]
    if opened and opened[-1]["tag"].lower() in PYTHON_TAGS | {""}:
        rest = _normalise(text[opened[-1].end() :])
        if rest.strip() and _compiles(rest):
            return rest, "unclosed ``` block (truncated response)"
    if blocks:
        tags = ", ".join(sorted({tag for tag, _ in blocks}))
        return "", f"no python code block (only ```{tags})"
    if text.strip() and _looks_like_program(text):
        return text, "whole response (no code block)"
    return "", "no code found in the response"


def _defines(code: str, name: str) -> bool:
    tree = _tree(code)
    return tree is not None and any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
        for node in tree.body
    )


def function_program(prompt: str, entry_point: str, response: str) -> tuple[str, str]:
    """(program, how): the program to test for a function-completion task."""
    code, how = extract_code(response)
    if code and _defines(code, entry_point):
        return f"{prompt.rstrip()}\n\n\n{code}", f"{how}, full function"
    if code and _compiles(prompt + code):
        return prompt + code, f"{how}, completion of the prompt"
    text = strip_reasoning(response)
    if text.strip() and _compiles(prompt + text):
        return prompt + text, "whole response as a completion of the prompt"
    if code:
        return f"{prompt.rstrip()}\n\n\n{code}", f"{how}, does not define {entry_point}()"
    return "", how
