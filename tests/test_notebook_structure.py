"""Every notebook follows the template, checks the claims of its prose, and reads well in JupyterLab.

The template is notebooks/_template.ipynb (CONTRIBUTING.md explains it). These tests read the
notebooks as files; executing them is tests/test_notebooks.py's job, and nbval fails when a claim
check's assertion stops being true.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = tomllib.loads((ROOT / "environments" / "sessions.toml").read_text())
SESSIONS = sorted(MANIFEST["notebooks"])
TEMPLATE = "_template.ipynb"
CLAIM_TAGS = {"remove-cell", "claim-check"}

# The sections of every notebook, in this order (a regular expression per section, on the markdown).
SECTIONS = [
    ("title", r"(?m)\A# (\d\d|NN) · \S"),  # NN in the template itself
    ("learning objectives", r"```\{admonition\} Learning objectives"),
    ("prerequisites", r"\*\*Prerequisites:\*\*"),
    ("environment", r"\*\*Environment:\*\*"),
    ("data", r"\*\*Data:\*\*"),
    ("setup", r"(?m)^## Setup\s*$"),
    ("a numbered section", r"(?m)^## 1\. "),
    ("key takeaways", r"(?m)^## Key takeaways\s*$"),
    ("exercises", r"(?m)^## Exercises\s*$"),
    ("references", r"(?m)^## References\s*$"),
]


def _cells(notebook: str) -> list[dict]:
    return json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]


def _text(cell: dict) -> str:
    return "".join(cell["source"])


def _tags(cell: dict) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def section_problems(cells: list[dict]) -> list[str]:
    """What the template asks for that the notebook lacks or has out of order (empty: all there)."""
    markdown = [_text(c) for c in cells if c["cell_type"] == "markdown"]
    if not markdown or not re.match(SECTIONS[0][1], markdown[0]):
        return ["the first cell must be the title '# NN · Title' (NN: the session's two digits)"]
    document = "\n\n".join(markdown)
    problems, position = [], 0
    for name, pattern in SECTIONS[1:]:
        match = re.compile(pattern).search(document, position)
        if match is None:
            problems.append(f"no {name} section (or it is out of order)")
        else:
            position = match.end()
    if not any({"solution", "hide-cell"} <= _tags(c) for c in cells if c["cell_type"] == "code"):
        problems.append("no exercise solution (a code cell tagged 'solution' and 'hide-cell')")
    return problems


def claim_check_problems(cells: list[dict]) -> list[str]:
    """Claim-check cells that break the convention of CONTRIBUTING.md."""
    problems = []
    for i, cell in enumerate(cells):
        if "claim-check" not in _tags(cell):
            continue
        where = f"cell {i}"
        text = _text(cell)
        if cell["cell_type"] != "code":
            problems.append(f"{where}: a claim check must be a code cell")
            continue
        if not CLAIM_TAGS <= _tags(cell):
            problems.append(f"{where}: a claim check must also be tagged 'remove-cell' (hidden in the book)")
        if not text.startswith("# Claim check:"):
            problems.append(f"{where}: a claim check starts with '# Claim check: \"<the sentence>\"'")
        if not re.search(r"(?m)^\s*assert\b", text):
            problems.append(f"{where}: a claim check asserts what the sentence says")
        if re.search(r"(?m)^\s*(print|display)\(", text):
            problems.append(f"{where}: a claim check prints nothing")
        previous = cells[i - 1] if i else None
        if previous is None or not (previous["cell_type"] == "markdown" or "claim-check" in _tags(previous)):
            problems.append(f"{where}: a claim check comes right after the markdown cell whose sentence it checks")
    return problems


@pytest.mark.parametrize("notebook", [*SESSIONS, TEMPLATE])
def test_notebook_has_the_sections_of_the_template(notebook):
    assert section_problems(_cells(notebook)) == []


@pytest.mark.parametrize("notebook", [*SESSIONS, TEMPLATE])
def test_claim_checks_follow_the_convention(notebook):
    cells = _cells(notebook)
    assert claim_check_problems(cells) == []
    assert any("claim-check" in _tags(c) for c in cells), f"{notebook} checks none of the results its prose states"


def test_the_structure_checks_catch_a_broken_notebook():
    good = _cells(TEMPLATE)
    assert section_problems(good) == [] and claim_check_problems(good) == []
    no_takeaways = [c for c in good if "## Key takeaways" not in _text(c)]
    assert any("key takeaways" in p for p in section_problems(no_takeaways))
    check = next(i for i, c in enumerate(good) if "claim-check" in _tags(c))
    broken = [dict(c) for c in good]
    broken[check] = {**good[check], "metadata": {"tags": ["claim-check"]}, "source": ["x = 1\n"]}
    found = claim_check_problems(broken)
    assert any("remove-cell" in p for p in found) and any("asserts" in p for p in found)


@pytest.mark.parametrize("notebook", [*SESSIONS, TEMPLATE])
def test_markdown_uses_only_what_jupyterlab_and_the_book_both_render(notebook):
    for i, cell in enumerate(_cells(notebook)):
        if cell["cell_type"] != "markdown":
            continue
        text = _text(cell)
        # {doc} shows as a bare path in JupyterLab: link the page's .md file instead.
        assert "{doc}`" not in text, f"{notebook} cell {i}: use a markdown link to the .md file, not {{doc}}"
        for role in re.findall(r"\{(\w[\w-]*)\}`", text):
            assert role in {"cite", "term", "math", "eval"}, f"{notebook} cell {i}: role {{{role}}} is not rendered by JupyterLab"
        for directive in re.findall(r"```\{(\w[\w-]*)\}", text):
            assert directive in {"admonition", "dropdown", "note", "tip", "warning", "important", "seealso"}, (
                f"{notebook} cell {i}: directive {{{directive}}} is not rendered by jupyterlab-myst")


def test_no_file_of_the_project_cites_a_file_outside_the_repository():
    """Every markdown file a project file names is in the repository; of the folder beside the
    clone, only the data mirror (configuration) is named. Links to web pages are not files."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    ours = {Path(name).name for name in files}
    hits = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".rda", ".h5ad"}:
            continue
        text = re.sub(r"https?://\S+", "", path.read_text(errors="ignore"))
        hits += [f"{name}: {md}" for md in set(re.findall(r"[\w.-]+\.md\b", text)) if Path(md).name not in ours]
        hits += [f"{name}: {m}" for m in set(re.findall(r"shared/(?!data\b)[\w.-]+", text))]
    assert hits == [], "files outside the repository are cited; say what is needed in the project's own words"
