"""Check the internal links of the built HTML docs (no network: external links are not followed).

    python docs/check_links.py docs/_build/html

Every ``href`` and ``src`` that points inside the site must name a file that exists, and an anchor
(``page.html#name``, ``#name``) must be an ``id`` (or ``name``) in that page. Prints each broken link
with the page it is on; the exit status is 1 when there is one.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

EXTERNAL = ("http:", "https:", "mailto:", "ftp:", "data:", "javascript:", "tel:")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if value is None:
                continue
            if key == "id" or (key == "name" and tag == "a"):
                self.ids.add(value)
            elif key in ("href", "src") and not (tag == "link" and key == "href" and value.startswith("http")):
                self.links.append(value)


def _parse(path: Path, cache: dict[Path, _Page]) -> _Page:
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = page
    return cache[path]


def broken_links(root: Path) -> list[str]:
    """``"page: link (why)"`` for every broken internal link under ``root``."""
    root = root.resolve()
    cache: dict[Path, _Page] = {}
    problems = []
    for page_path in sorted(root.rglob("*.html")):
        page = _parse(page_path, cache)
        for link in page.links:
            if link.lower().startswith(EXTERNAL) or link.startswith("//"):
                continue
            parts = urlsplit(link)
            target = page_path if not parts.path else (page_path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = f"{page_path.relative_to(root)}: {link}"
            if not str(target).startswith(str(root)):
                problems.append(f"{where} (points outside the site)")
            elif not target.exists():
                problems.append(f"{where} (no such file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _parse(target, cache).ids:
                problems.append(f"{where} (no anchor #{parts.fragment} in {target.relative_to(root)})")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[0])
    if not (root / "index.html").exists():
        print(f"{root} has no index.html: build the docs first", file=sys.stderr)
        return 2
    problems = broken_links(root)
    for p in problems:
        print(p)
    pages = sum(1 for _ in root.rglob("*.html"))
    print(f"{len(problems)} broken internal link(s) in {pages} pages")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
