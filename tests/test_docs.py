"""Every fenced python block in README.md and docs/*.md runs, in order, one namespace per file."""

import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: str) -> list[str]:
    with open(os.path.join(REPO, page), encoding="utf-8") as fh:
        return BLOCK.findall(fh.read())


def test_the_docs_have_examples():
    assert sum(len(python_blocks(p)) for p in PAGES) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)])
def test_examples_run(page, monkeypatch):
    blocks = python_blocks(page)
    monkeypatch.chdir(REPO)
    namespace = {"__name__": "__docs__"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{page} (python block {number})", "exec")
        exec(code, namespace)
