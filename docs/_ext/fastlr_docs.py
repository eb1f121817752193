"""Sphinx extension of fastlr's docs: code that runs while the docs build, and the API coverage check.

* ``fastlr-run``: shows a Python snippet and runs it in the build (one namespace per page, so a later
  snippet sees an earlier one's names). An exception, or a Python warning, fails the build: the
  snippets of the migration guides cannot rot. ``:show-output:`` prints what it wrote;
  ``:requires: transformers, timm`` shows the snippet but runs it only where those modules import
  (the page says so; the checks that follow are then skipped the same way, never silently passed).
* ``fastlr-exec``: runs Python code that prints markup (reStructuredText on .rst pages, Markdown on
  .md pages) and inserts the markup: tables computed at build time (the benchmark tables, the names
  fastlr has that transformers lacks).
* Coverage: once every page is read, each name in ``__all__`` of ``fastlr``, ``fastlr.schedules``
  and ``fastlr.lr_scheduler`` must have an entry (an autodoc directive, or ``py:module``) in the
  API pages; a missing one stops the build. (``tests/test_docs.py`` checks the same without Sphinx.)
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import textwrap
import traceback
import warnings
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

PUBLIC_MODULES = ("fastlr", "fastlr.schedules", "fastlr.lr_scheduler")


def _namespace(env: Any) -> dict[str, Any]:
    """The page's namespace: env.temp_data lives while one document is read."""
    return env.temp_data.setdefault("fastlr_namespace", {"__name__": "__fastlr_docs__"})


def _missing(requires: str | None) -> list[str]:
    names = [r.strip() for r in (requires or "").split(",") if r.strip()]
    return [n for n in names if importlib.util.find_spec(n) is None]


def _run(code: str, ns: dict[str, Any], where: str) -> str:
    """Run `code` in `ns`; return its stdout. Any exception or warning stops the build."""
    out = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
        warnings.simplefilter("always")
        try:
            exec(compile(code, where, "exec"), ns)  # noqa: S102 - the docs' own snippets
        except BaseException as e:  # noqa: BLE001 - report everything, SystemExit included
            raise ExtensionError(f"{where}: the snippet failed:\n{traceback.format_exc()}") from e
    caught = [w for w in caught if not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))
              or "fastlr" in str(w.filename)]
    if caught:
        msgs = "\n".join(f"  {w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught)
        raise ExtensionError(f"{where}: the snippet warned:\n{msgs}")
    return out.getvalue()


class RunDirective(SphinxDirective):
    """Show a Python snippet and run it (see the module docstring)."""

    has_content = True
    option_spec = {
        "show-output": directives.flag,
        "hide-code": directives.flag,
        "requires": directives.unchanged,
        "caption": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        code = textwrap.dedent("\n".join(self.content)) + "\n"
        where = f"{self.env.docname}:{self.lineno}"
        result: list[nodes.Node] = []
        if "hide-code" not in self.options:
            block = nodes.literal_block(code, code, language="python")
            if "caption" in self.options:
                cap = nodes.caption(self.options["caption"], self.options["caption"])
                container = nodes.container("", cap, block, classes=["literal-block-wrapper"], literal_block=True)
                result.append(container)
            else:
                result.append(block)
        missing = _missing(self.options.get("requires"))
        if missing:
            text = f"Not run in this build: {', '.join(missing)} is not installed."
            result.append(nodes.paragraph(text, "", nodes.emphasis(text, text)))
            return result
        output = _run(code, _namespace(self.env), where)
        if "show-output" in self.options and output:
            result.append(nodes.literal_block(output, output, language="text", classes=["fastlr-output"]))
        return result


class ExecDirective(SphinxDirective):
    """Run Python code that prints markup, and insert the markup."""

    has_content = True
    option_spec = {"requires": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        code = textwrap.dedent("\n".join(self.content)) + "\n"
        where = f"{self.env.docname}:{self.lineno}"
        missing = _missing(self.options.get("requires"))
        if missing:
            text = f"Not computed in this build: {', '.join(missing)} is not installed."
            return [nodes.paragraph(text, "", nodes.emphasis(text, text))]
        markup = _run(code, _namespace(self.env), where)
        container = nodes.container()
        self.state.nested_parse(StringList(markup.splitlines(), source=where), self.content_offset, container)
        return container.children


def public_names() -> dict[str, list[str]]:
    """``{module: __all__}`` of the public modules."""
    return {m: list(importlib.import_module(m).__all__) for m in PUBLIC_MODULES}


def check_coverage(app: Sphinx, env: Any) -> None:
    """Stop the build when a public name has no entry in the API pages."""
    domain = env.get_domain("py")
    documented = set(domain.objects) | set(domain.modules)
    missing = [f"{m}.{n}" for m, names in public_names().items() for n in names if f"{m}.{n}" not in documented]
    if missing:
        raise ExtensionError(
            "public names without an entry in docs/api/ (add an autodoc directive, with its formula and a "
            "doctest example): " + ", ".join(missing)
        )
    logger.info("fastlr_docs: every public name has an entry (%d names)", sum(map(len, public_names().values())))


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("fastlr-run", RunDirective)
    app.add_directive("fastlr-exec", ExecDirective)
    app.connect("env-check-consistency", check_coverage)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
