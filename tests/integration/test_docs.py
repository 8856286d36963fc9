"""The documentation: the site builds with --strict, every page is in the nav and reachable from
the index, the README stays a front door, and what the README and docs point at exists."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from tests.helpers import BIN, REPO_ROOT

DOCS = REPO_ROOT / "docs"
README = REPO_ROOT / "README.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def pages() -> set[str]:
    return {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}


def nav_pages(node) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, list):
        return set().union(*(nav_pages(n) for n in node))
    if isinstance(node, dict):
        return set().union(*(nav_pages(v) for v in node.values()))
    return set()


def mkdocs_config() -> dict:
    return yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def anchors(page: Path) -> set[str]:
    """The heading ids MkDocs (Python-Markdown's toc) gives a page; GitHub's are the same for
    these headings."""
    from markdown.extensions.toc import slugify

    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    headings = re.findall(r"^#{1,6} (.+?)\s*$", text, re.M)
    return {slugify(re.sub(r"[`*]", "", h), "-") for h in headings}


def test_the_site_builds_with_strict(tmp_path):
    """`make docs`'s build: --strict turns a broken link or anchor, or a page missing from the
    nav, into a failure (mkdocs.yml's validation section)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    for page in pages():
        html = Path(page).with_suffix("") / "index.html" if page != "index.md" else "index.html"
        assert (tmp_path / "site" / html).is_file(), page


def test_the_build_is_strict_and_validates_links():
    config = mkdocs_config()
    assert config["strict"] is True and config["theme"]["name"] == "material"
    assert all(config["validation"][k] == "warn" for k in ("omitted_files", "anchors"))
    assert "--strict" in (REPO_ROOT / "Makefile").read_text(encoding="utf-8")


def test_every_page_is_in_the_nav():
    nav = nav_pages(mkdocs_config()["nav"])
    assert nav == pages(), {"not in nav": pages() - nav, "no such page": nav - pages()}


def test_every_page_is_reachable_from_the_index():
    seen, todo = set(), ["index.md"]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        for target in LINK.findall((DOCS / page).read_text(encoding="utf-8")):
            path = target.split("#")[0]
            if path.endswith(".md") and "://" not in path:
                todo.append(os.path.normpath(os.path.join(os.path.dirname(page), path)))
    assert seen == pages(), pages() - seen


def test_the_index_links_every_page_directly():
    linked = {t.split("#")[0] for t in LINK.findall((DOCS / "index.md").read_text())}
    assert pages() - {"index.md"} <= linked


def test_readme_links_resolve():
    """The README is not part of the site, so MkDocs does not check it: every relative link
    names a file, and every #anchor into a docs page names one of its headings."""
    for target in LINK.findall(README.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        path, _, anchor = target.partition("#")
        assert (REPO_ROOT / path).is_file(), target
        if anchor:
            assert anchor in anchors(REPO_ROOT / path), target


def test_readme_is_a_front_door():
    """About 300 lines at most; the first runnable command within the first 40 lines; no
    research diary (campaign steps, session numbers, section numbers of another file)."""
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 300, len(lines)
    first_block = next(i for i, line in enumerate(lines) if line.startswith("```bash"))
    assert first_block + 2 <= 40, first_block + 2  # the block's first line, 1-based
    for diary in (r"\bsession \d", r"\bcampaign step", r"\bsections? \d", r"§\s*\d",
                  r"README\.md`?\)? \d"):  # fmt: skip
        found = re.findall(diary, text, re.I)
        assert not found, (diary, found)


def test_repository_paths_named_in_the_docs_exist():
    """Files outside docs/ are named as code spans (MkDocs --strict refuses links out of
    docs/); each one that names a path in this repository must exist. The research record is
    the runs' own log and keeps the paths of its time."""
    roots = ("ltcl/", "conf/", "benchmarks/", "tests/", "hydra_plugins/", "notebooks/", "docs/")
    texts = [README, *(p for p in DOCS.rglob("*.md") if p.name != "research_record.md")]
    missing = []
    for doc in texts:
        for span in re.findall(r"`([^`\s]+)`", doc.read_text(encoding="utf-8")):
            if span.startswith(roots) and not re.search(r"[<*{]|\.\.\.", span):
                path = span.split(":")[0].rstrip(",.")
                if not (REPO_ROOT / path).exists():
                    missing.append(f"{doc.relative_to(REPO_ROOT)}: {span}")
    assert not missing, "\n".join(missing)
