"""The documentation site (docs/) covers the public API, and its pieces are wired together.

Runs without Sphinx (and without torch): the public names are read from each module's source
(``__all__``), the documented ones from the API pages' directives. A name in ``__all__`` with no
entry in docs/api/ fails here, and fails the Sphinx build too (docs/_ext/fastlr_docs.py). The build
itself (``sphinx-build -W``), its doctests and the internal link check run in CI (.ci/run).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SOURCES = {  # module -> the file that defines its __all__
    "fastlr": ROOT / "python" / "fastlr" / "__init__.py",
    "fastlr.schedules": ROOT / "python" / "fastlr" / "schedules" / "__init__.py",
    "fastlr.lr_scheduler": ROOT / "python" / "fastlr" / "lr_scheduler.py",
}
# Entries that need no formula: a version string, a warning text, modules (their own pages).
NO_FORMULA = {
    "fastlr.__version__": "a version string",
    "fastlr.lr_scheduler.EPOCH_DEPRECATION_WARNING": "torch's warning text",
}
DIRECTIVE = re.compile(r"^\.\. (auto(?:function|class|data|exception|module)|(?:py:)?module|py:function|py:class)::\s*(\S+)\s*$")


def public_names(source: Path) -> list[str]:
    """The string list assigned to ``__all__`` at the top level of `source`."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
    raise AssertionError(f"no __all__ in {source}")


def api_entries(pages: dict[str, str]) -> dict[str, str]:
    """``{documented name: the text of its entry}`` from the API pages' directives (the entry runs to the
    next directive at the margin or the next section title)."""
    entries: dict[str, str] = {}
    for text in pages.values():
        lines = text.splitlines()
        for i, line in enumerate(lines):
            m = DIRECTIVE.match(line)
            if not m:
                continue
            if "\n   :no-index:" in "\n".join(lines[i + 1:i + 4]) and m.group(1) != "automodule":
                continue  # a second mention of a name documented elsewhere
            body = []
            for nxt in lines[i + 1:]:
                if nxt.startswith(".. ") or (nxt and not nxt[0].isspace() and not nxt.startswith("   ")):
                    if not nxt.startswith("   "):
                        break
                body.append(nxt)
            entries[m.group(2)] = "\n".join(body)
    return entries


def api_pages() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((DOCS / "api").glob("*.rst"))}


def coverage_problems(pages: dict[str, str]) -> list[str]:
    """What is wrong with the API pages' coverage of the public names (empty: nothing)."""
    entries = api_entries(pages)
    problems = []
    public = {f"{mod}.{name}" for mod, src in SOURCES.items() for name in public_names(src)}
    for full in sorted(public):
        if full in entries:
            continue
        problems.append(f"{full}: no entry in docs/api/")
    for full, body in sorted(entries.items()):
        if full in SOURCES or full not in public:
            continue  # module pages, and documented helpers outside __all__
        if full not in NO_FORMULA and ".. math::" not in body and ":math:" not in body:
            problems.append(f"{full}: its entry has no formula (.. math::)")
        if ">>>" not in body:
            problems.append(f"{full}: its entry has no doctest example (>>>)")
    stale = sorted(n for n in entries if n not in public and n not in SOURCES)
    problems += [f"{n}: documented but not in its module's __all__" for n in stale]
    return problems


def test_every_public_name_has_an_entry_with_a_formula_and_an_example():
    assert coverage_problems(api_pages()) == []


def test_the_module_pages_exist():
    entries = api_entries(api_pages())
    for mod in SOURCES:
        assert mod in entries, f"no automodule:: {mod} in docs/api/"


def test_a_missing_entry_is_caught():
    """Plant the failure: drop one entry (and, separately, one formula and one example)."""
    pages = api_pages()
    text = pages["schedules.rst"]
    start = text.index(".. autofunction:: fastlr.schedules.wsd")
    end = text.index(".. autofunction::", start + 10)
    planted = {**pages, "schedules.rst": text[:start] + text[end:]}
    assert coverage_problems(planted) == ["fastlr.schedules.wsd: no entry in docs/api/"]
    no_math = {**pages, "schedules.rst": text.replace(".. math:: v(t) = v_0\\, \\gamma^{\\lfloor t / s \\rfloor}", "")}
    assert coverage_problems(no_math) == ["fastlr.schedules.step: its entry has no formula (.. math::)"]
    page = pages["lr_scheduler.rst"]
    no_example = {**pages, "lr_scheduler.rst": page.replace(">>> run(L.StepLR(", "run(L.StepLR(")}
    assert coverage_problems(no_example) == ["fastlr.lr_scheduler.StepLR: its entry has no doctest example (>>>)"]


def test_a_new_public_name_without_an_entry_is_caught(tmp_path, monkeypatch):
    src = SOURCES["fastlr.schedules"].read_text(encoding="utf-8").replace('"names",\n]', '"names",\n    "brand_new",\n]')
    (tmp_path / "s.py").write_text(src, encoding="utf-8")
    monkeypatch.setitem(SOURCES, "fastlr.schedules", tmp_path / "s.py")
    assert coverage_problems(api_pages()) == ["fastlr.schedules.brand_new: no entry in docs/api/"]


# ------------------------------------------------------------------------------------------------
# The gallery, the guide and the migration pages


def _gallery_code() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((DOCS / "gallery").glob("plot_*.py")))


NOT_A_SHAPE = {"Schedule", "Plateau", "Switch", "from_dict", "from_name", "names", "transformers"}


def test_the_gallery_draws_every_shape_and_every_class():
    code = _gallery_code()
    shapes = [n for n in public_names(SOURCES["fastlr.schedules"]) if n not in NOT_A_SHAPE]
    missing = [n for n in shapes if f"S.{n}(" not in code]
    assert missing == [], f"shapes the gallery does not draw: {missing}"
    assert "S.from_name(" in code and "S.names()" in code  # every name, transformers' ones included
    classes = [n for n in public_names(SOURCES["fastlr.lr_scheduler"]) if n != "EPOCH_DEPRECATION_WARNING"]
    missing = [n for n in classes if not re.search(rf"\b{n}\b", code)]
    assert missing == [], f"drop-in classes the gallery does not draw: {missing}"
    for required in ('mode="triangular2"', '"exp_range"', "scale_fn=", "T_mult=", "OneCycleLR", "momentum",
                     "S.plateau(", "S.warmup(", "S.join("):
        assert required in code, required


def test_the_guide_trains_on_digits_at_build_time():
    code = (DOCS / "guide" / "plot_lr_guide.py").read_text(encoding="utf-8")
    assert "load_digits" in code and "loss.backward()" in code
    for required in ('hasattr(fastlr, "diagnose")', "fastlr.find_lr(", "S.switch(", "S.warmup(", "S.cosine("):
        assert required in code, required
    assert not list((DOCS / "guide").glob("*.png")), "the guide's figures are made at build time, not checked in"


def test_migration_snippets_are_executed():
    """Every Python snippet of the migration pages runs in the build: no plain ```python block."""
    pages = sorted((DOCS / "migrating").glob("*.md"))
    assert {p.stem for p in pages} >= {"torch", "transformers", "timm", "optax"}
    for p in pages:
        text = p.read_text(encoding="utf-8")
        assert not re.search(r"^```(python|py)\s*$", text, re.M), f"{p.name}: a Python block that does not run"
        if p.stem != "index":
            assert "```{fastlr-run}" in text, p.name


def test_no_image_is_checked_in_except_the_readmes():
    images = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.png") if "_build" not in p.parts
                    and not p.parts[len(DOCS.parts)].startswith("auto_"))
    assert images == ["schedules.png"], images  # README's picture; every figure of the site is built


def test_the_performance_page_reads_a_real_run():
    import json

    doc = json.loads((DOCS / "_data" / "benchmarks.json").read_text(encoding="utf-8"))
    assert doc["machine"]["date"] and doc["machine"]["cpu"] and doc["machine"]["torch"]
    rows = doc["steps"]
    assert rows and all(r["torch_us"] > 0 and r["fastlr_us"] > 0 for r in rows)


def test_the_performance_page_has_the_gpu_run():
    """The GPU table is rendered from gpu_check.py's JSON of a real run: every row, with torch's time
    over fastlr's as the ratio."""
    import importlib.util
    import json

    doc = json.loads((DOCS / "_data" / "gpu_check.json").read_text(encoding="utf-8"))
    assert doc["info"]["gpu"] and doc["info"]["date"] and not doc["failures"]
    spec = importlib.util.spec_from_file_location("bench_tables_t", DOCS / "_ext" / "bench_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    table = mod.render_gpu()
    for r in doc["timings"]:
        row = next(line for line in table.splitlines() if line.startswith(f"| {r['groups']} |"))
        assert f"({mod._ratio(r['torch'] / r['fastlr_fused'])})" in row
        assert f"({mod._ratio(r['torch'] / r['fastlr_capturable'])})" in row
    assert "render_gpu()" in (DOCS / "performance.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------------
# The internal link checker, the README command and CI


def test_the_link_checker_finds_a_broken_link(tmp_path):
    (tmp_path / "index.html").write_text('<a href="a.html#x">a</a><a href="https://example.org">e</a>', encoding="utf-8")
    (tmp_path / "a.html").write_text('<h1 id="x">A</h1><a href="index.html">back</a><a href="b.html">b</a>'
                                     '<a href="#nope">n</a>', encoding="utf-8")
    out = subprocess.run([sys.executable, str(DOCS / "check_links.py"), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1, out.stdout
    assert "a.html: b.html (no such file)" in out.stdout
    assert "a.html: #nope (no anchor #nope in a.html)" in out.stdout
    assert "2 broken" in out.stdout
    (tmp_path / "b.html").write_text("<p>b</p>", encoding="utf-8")
    (tmp_path / "a.html").write_text('<h1 id="x">A</h1><a href="b.html">b</a>', encoding="utf-8")
    out = subprocess.run([sys.executable, str(DOCS / "check_links.py"), str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def _readme_docs_command() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Documentation"):]
    section = section[: section.index("\n## ", 1)]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the README's Documentation section has no bash block"
    return block.group(1).replace("\\\n", " ").strip()


def test_the_readme_builds_the_docs_in_one_command_and_ci_runs_it():
    cmd = _readme_docs_command()
    assert "\n" not in cmd, "one command"
    assert "sphinx-build -W -b html docs docs/_build/html" in cmd
    assert "'.[docs]'" in cmd
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert cmd.replace(".venv-docs", ".ci-venv-docs") in ci.splitlines(), "CI does not run the README's docs command"
    for step in ("-b doctest", "docs/check_links.py", "rm -rf .ci-venv-docs"):
        assert step in ci, step


def test_the_docs_extra_lists_what_the_build_imports():
    toml = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # no tomllib on 3.10
    m = re.search(r"^docs = \[(.*?)\]$", toml, re.M | re.S)
    assert m, "no docs extra in pyproject.toml"
    extra = [ast.literal_eval(s.strip()) for s in m.group(1).split(",") if s.strip()]
    names = {re.split(r"[<>=!~ \[]", r)[0].lower() for r in extra}
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    assert {"sphinx", "furo", "myst-parser", "numpydoc", "sphinx-gallery", "matplotlib", "scikit-learn", "torch"} <= names
    assert 'html_theme = "furo"' in conf


@pytest.mark.parametrize("ext", ["fastlr_docs.py", "bench_tables.py"])
def test_the_extensions_compile(ext):
    compile((DOCS / "_ext" / ext).read_text(encoding="utf-8"), ext, "exec")
