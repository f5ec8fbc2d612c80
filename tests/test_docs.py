"""The README stays true to the code: the default space it shows is conf/search/default.yaml's,
every docs/ page it links exists, and it stays a short guide."""

from __future__ import annotations

import re

from conftest import REPO


def readme() -> str:
    return (REPO / "README.md").read_text()


def test_the_default_space_shown_is_the_one_in_conf() -> None:
    yaml = (REPO / "conf" / "search" / "default.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(yaml) if line.startswith("enqueue_trials:"))
    block = "\n".join(yaml[start:]).strip()
    shown = re.findall(r"```yaml\n(.*?)```", readme(), re.S)
    assert any(block == s.strip() for s in shown), "README's default space differs from conf/"


def test_every_linked_page_exists_and_the_guide_is_short() -> None:
    text = readme()
    links = re.findall(r"\]\(((?:docs/)[^)#]+)", text)
    assert links and all((REPO / link).is_file() for link in links)
    for page in ("sweeps", "speed", "troubleshooting", "code-layout", "scale-out"):
        assert f"docs/{page}.md" in links
    assert len(text.splitlines()) <= 250
    assert not re.search(r"issue #|this session", text + "".join(
        p.read_text() for p in (REPO / "docs").glob("*.md")))


def slug(heading: str) -> str:
    """A Markdown heading's anchor as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_pages_and_to_a_heading_resolves() -> None:
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target, anchor in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]+))?\)", page.read_text()):
            linked = (page.parent / target) if target else page
            if not linked.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
                if anchor not in {slug(h) for h in headings}:
                    broken.append(f"{page.name}: {target}#{anchor}")
    assert not broken, broken
