"""README.ko.md stays a full translation of README.md (issue #22).

The Korean README is a section-by-section counterpart of the English one. Each of its `##`
and `###` headings carries, on the line right above it, an anchor naming the English heading
it translates:

    <!-- en: Quick start -->
    ## 빠른 시작

This test holds the two files together: the same sections in the same order (by those
anchors), the same code blocks with identical content (code is never translated), and the
same relative links and images. Change README.md alone and it fails, naming the section to
translate. The language-switch links between the two READMEs are the one allowed difference.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ENGLISH = ROOT / "README.md"
KOREAN = ROOT / "README.ko.md"

FENCE = re.compile(r"^\s*(`{3,})")
HEADING = re.compile(r"^(#{2,3})\s+(.+?)\s*#*\s*$")
ANCHOR = re.compile(r"^<!--\s*en:\s*(.+?)\s*-->\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""")
LANGUAGE_SWITCH = {"README.md", "README.ko.md"}


@dataclass(frozen=True)
class Heading:
    level: str  # "##" or "###"
    title: str  # the heading text in README.md, the anchor text in README.ko.md
    line: int

    def __str__(self) -> str:
        return f"{self.level} {self.title}"


@dataclass(frozen=True)
class CodeBlock:
    content: str  # the opening fence line through the closing one
    line: int


def split_markdown(text: str) -> tuple[list[tuple[int, str]], list[CodeBlock]]:
    """Prose lines (numbered from 1) and fenced code blocks, in order."""
    prose: list[tuple[int, str]] = []
    blocks: list[CodeBlock] = []
    fence = ""
    start = 0
    lines: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if fence:
            lines.append(line)
            if line.strip().startswith(fence) and not line.strip().strip("`"):
                blocks.append(CodeBlock("\n".join(lines), start))
                fence = ""
            continue
        opening = FENCE.match(line)
        if opening:
            fence, start, lines = opening.group(1), number, [line]
        else:
            prose.append((number, line))
    if fence:
        blocks.append(CodeBlock("\n".join(lines), start))
    return prose, blocks


def english_headings(text: str) -> list[Heading]:
    prose, _ = split_markdown(text)
    return [
        Heading(match.group(1), match.group(2), number)
        for number, line in prose
        if (match := HEADING.match(line))
    ]


def korean_headings(text: str) -> tuple[list[Heading], list[str]]:
    """Headings named by their `<!-- en: ... -->` anchors, and the headings lacking one."""
    prose, _ = split_markdown(text)
    headings: list[Heading] = []
    unanchored: list[str] = []
    previous = ""
    for number, line in prose:
        match = HEADING.match(line)
        if match:
            anchor = ANCHOR.match(previous)
            if anchor:
                headings.append(Heading(match.group(1), anchor.group(1), number))
            else:
                unanchored.append(
                    f"README.ko.md line {number} `{line.strip()}` has no `<!-- en: ... -->` "
                    "anchor on the line right above it: add one holding the README.md heading "
                    "it translates"
                )
        previous = line
    return headings, unanchored


def section_problems(english_text: str, korean_text: str) -> list[str]:
    """Every way the Korean sections differ from the English ones, each with its fix."""
    english = english_headings(english_text)
    korean, problems = korean_headings(korean_text)
    missing = Counter(str(h) for h in english) - Counter(str(h) for h in korean)
    extra = Counter(str(h) for h in korean) - Counter(str(h) for h in english)
    for position, heading in enumerate(english):
        if missing[str(heading)] > 0:
            missing[str(heading)] -= 1
            place = (
                f"after the section anchored `<!-- en: {english[position - 1].title} -->`"
                if position
                else "before the first Korean section"
            )
            problems.append(
                f"README.md line {heading.line} `{heading}` has no Korean counterpart: "
                f"translate it into README.ko.md {place}, with "
                f"`<!-- en: {heading.title} -->` on the line right above its Korean heading"
            )
    for heading in korean:
        if extra[str(heading)] > 0:
            extra[str(heading)] -= 1
            problems.append(
                f"README.ko.md line {heading.line} `<!-- en: {heading.title} -->` "
                f"({heading.level}) matches no `{heading}` in README.md (removed, renamed or "
                "changed level there): delete it or translate the current English section"
            )
    if problems:
        return problems
    for position, (theirs, ours) in enumerate(zip(english, korean, strict=True), start=1):
        if str(theirs) != str(ours):
            problems.append(
                f"section {position} is out of order: README.md has `{theirs}` (line "
                f"{theirs.line}) but README.ko.md has `<!-- en: {ours.title} -->` (line "
                f"{ours.line}); move the Korean sections into README.md's order"
            )
            break
    return problems


def code_block_problems(english_text: str, korean_text: str) -> list[str]:
    _, english = split_markdown(english_text)
    _, korean = split_markdown(korean_text)
    matcher = SequenceMatcher(
        a=[b.content for b in english], b=[b.content for b in korean], autojunk=False
    )
    problems = []
    for tag, e_start, e_end, k_start, k_end in matcher.get_opcodes():
        if tag == "equal":
            continue
        changed = min(e_end - e_start, k_end - k_start) if tag == "replace" else 0
        for theirs, ours in zip(
            english[e_start : e_start + changed], korean[k_start : k_start + changed], strict=True
        ):
            problems.append(
                f"code block at README.md line {theirs.line} differs from the one at "
                f"README.ko.md line {ours.line}: copy it unchanged from README.md "
                "(code is not translated)"
            )
        for theirs in english[e_start + changed : e_end]:
            problems.append(
                f"code block at README.md line {theirs.line} is missing from README.ko.md: "
                "copy it unchanged into the Korean section, at the same place"
            )
        for ours in korean[k_start + changed : k_end]:
            problems.append(
                f"code block at README.ko.md line {ours.line} is not in README.md: remove it "
                "(or add it to README.md too)"
            )
    return problems


def relative_links(text: str) -> set[str]:
    """Targets of links and images inside the repository, language switches aside."""
    prose, _ = split_markdown(text)
    body = "\n".join(line for _, line in prose)
    targets = set(LINK.findall(body)) | set(HTML_LINK.findall(body))
    return {
        target
        for target in targets
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)
        and not target.startswith("#")
        and target not in LANGUAGE_SWITCH
    }


def test_every_section_of_readme_md_is_translated_in_order() -> None:
    problems = section_problems(ENGLISH.read_text(), KOREAN.read_text())
    assert not problems, "README.ko.md has drifted from README.md:\n" + "\n".join(problems)


def test_code_blocks_are_identical_and_in_the_same_order() -> None:
    problems = code_block_problems(ENGLISH.read_text(), KOREAN.read_text())
    assert not problems, "README.ko.md has drifted from README.md:\n" + "\n".join(problems)


def test_both_link_the_same_files_and_images() -> None:
    english = relative_links(ENGLISH.read_text())
    korean = relative_links(KOREAN.read_text())
    assert english - korean == set(), (
        f"README.ko.md lacks these links/images of README.md: {sorted(english - korean)}; "
        "add them where the English section has them"
    )
    assert korean - english == set(), (
        f"README.ko.md links/images not in README.md: {sorted(korean - english)}; "
        "remove them or add them to README.md too"
    )


def test_each_readme_links_to_the_other() -> None:
    assert "(README.ko.md)" in ENGLISH.read_text(), "README.md must link to README.ko.md"
    assert "(README.md)" in KOREAN.read_text(), "README.ko.md must link back to README.md"


def test_a_section_added_to_readme_md_alone_is_named() -> None:
    """The check itself, on a small pair of READMEs: an untranslated section is reported."""
    korean = "# 제목\n\n<!-- en: Quick start -->\n## 빠른 시작\n\n```bash\nmake demo\n```\n"
    english = "# Title\n\n## Quick start\n\n```bash\nmake demo\n```\n"
    assert section_problems(english, korean) == []
    problems = section_problems(english + "\n## Upgrading\n\nNew text.\n", korean)
    assert len(problems) == 1
    assert "`## Upgrading` has no Korean counterpart" in problems[0]
    assert "after the section anchored `<!-- en: Quick start -->`" in problems[0]
    assert "<!-- en: Upgrading -->" in problems[0]
