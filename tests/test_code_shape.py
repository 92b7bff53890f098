"""The codebase's shape rules, checked: no long function bodies, no citations of files that are
not in the repository (see docs/architecture.md)."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("solvers", "nettrim")
#: A function longer than this (code lines: docstrings, comments and blank lines aside) is
#: split, unless it is a numba kernel (one fused pass over memory reads best as one body).
MAX_CODE_LINES = 100


def _code_lines(source: str) -> set[int]:
    """Line numbers that carry code: not blank, not only a comment, not inside a string
    token that stands alone as a statement (a docstring)."""
    lines: set[int] = set()
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    for tok in tokens:
        if tok.type not in skip:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return lines


def _docstring_lines(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                out.update(range(body[0].lineno, body[0].end_lineno + 1))
    return out


def _is_kernel(node: ast.FunctionDef) -> bool:
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in {"njit", "jit", "vectorize", "guvectorize"}:
            return True
    return False


def long_functions(path: Path, limit: int = MAX_CODE_LINES) -> list[tuple[str, int]]:
    """``(qualified name, code lines)`` of every function in ``path`` longer than ``limit``."""
    source = path.read_text()
    tree = ast.parse(source)
    code = _code_lines(source) - _docstring_lines(tree)
    found = []

    def visit(node, prefix=""):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef) and not _is_kernel(child):
                    body_start = child.body[0].lineno
                    count = len([n for n in code if body_start <= n <= child.end_lineno])
                    if count > limit:
                        found.append((name, count))
                visit(child, name + ".")

    visit(tree)
    return found


SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_over_the_limit(path):
    assert long_functions(path) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cites_only_files_in_the_repository(path):
    # the design notes live outside the repository; the docs/ pages stand on their own
    assert "DESIGN" not in path.read_text()


def test_the_counter_counts_code_only(tmp_path):
    body = "\n".join(f"    x{i} = {i}  # comment" for i in range(101))
    src = f'def f():\n    """Doc.\n\n    More.\n    """\n\n    # why\n{body}\n'
    (tmp_path / "m.py").write_text(src)
    assert long_functions(tmp_path / "m.py") == [("f", 101)]
    assert long_functions(tmp_path / "m.py", limit=101) == []
