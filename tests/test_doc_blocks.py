"""Every code block of README.md and docs/**/*.md runs as written.

A page is run like a reader would follow it: its blocks in order, in one empty working folder.

* ```python blocks are executed (each in a fresh namespace).
* ```bash / ```console blocks are read line by line (``\\`` continues a line, ``&&`` chains commands,
  ``#`` starts a comment). ``ann2snn ...`` runs through the CLI's ``main()`` and must exit 0;
  ``pip install -e '.[extras]'`` is checked against pyproject.toml's extras (the tests run in the
  installed package); ``eval "$(_ANN2SNN_COMPLETE=X ann2snn)"`` runs the completion script generator;
  ``python ../shared/data/unpack_cifar.py ...`` runs the packed-copy script next to the checkout.
  Any other command fails the test: teach it here, or mark the block.
* ```text blocks are shown, never run.

Two marks before a block, which the reader sees too:

* ``*(not run here: REASON)*`` on the line before the fence: the block is not run (a GPU, several
  machines, a data set we do not have, hours of training, the test suite itself).
* ``<!-- the tests run this block with: OLD → NEW, ... -->``: run with those replacements (smaller
  sizes; the page says so in its text). Every replacement must apply.
* ``<!-- the tests run this block in tests/FILE.py -->``: that test runs it (and checks what it
  computes), so it is not run twice; the page says so in its text.

Pages whose blocks train or evaluate read the real CIFAR-10 (``real_data``), and they take a few
seconds to a minute each (``slow``). The README's main job is run with 500 training images, 100
test images, one epoch and T up to 8, instead of 10,000, 1,000, two and 32 (the README says so): the
same commands, flags and output paths, about a hundredth of the work. benchmarks/main_job.sh runs it
at full size from a fresh clone.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"),
                                                                            recursive=True))
RUN_LANGS = {"python", "bash", "console"}
SHOWN_LANGS = {"text"}
#: CLI commands that read the data set (a page with one of them runs on the real CIFAR-10)
DATA_COMMANDS = {"train-ann", "train-snn", "ablate", "sweep", "convert", "eval-snn"}

FENCE = re.compile(r"^```([\w-]*)\s*$")
NOT_RUN = re.compile(r"^\*\(not run here: (.+)\)\*$")
SHRINK = re.compile(r"^<!-- the tests run this block with: (.+) -->$")
RUN_IN = re.compile(r"^<!-- the tests run this block in (tests/\w+\.py) -->$")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None = None
    shrink: list[tuple[str, str]] = field(default_factory=list)
    run_in: str | None = None  # the test file that runs this block instead


def parse_blocks(page: str) -> list[Block]:
    """The fenced code blocks of ``page`` (a path relative to the repository root), with their marks."""
    lines = open(os.path.join(ROOT, page), encoding="utf-8").read().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        assert j < len(lines), f"{page}:{start + 1}: a code block is never closed"
        block = Block(page, start + 1, lang, "\n".join(lines[start + 1:j]) + "\n")
        before = [ln.strip() for ln in lines[max(0, start - 4):start] if ln.strip()][-2:]
        for ln in before:
            if (nr := NOT_RUN.match(ln)):
                block.not_run = nr.group(1)
            elif (ri := RUN_IN.match(ln)):
                block.run_in = ri.group(1)
            elif (sh := SHRINK.match(ln)):
                for rule in sh.group(1).split(", "):
                    old, arrow, new = rule.partition(" → ")
                    assert arrow, f"{page}:{start + 1}: a replacement is written OLD → NEW, got {rule!r}"
                    block.shrink.append((old.strip(), new.strip()))
        blocks.append(block)
        i = j + 1
    return blocks


def runnable(block: Block) -> bool:
    return block.lang in RUN_LANGS and block.not_run is None and block.run_in is None


def shrunk(block: Block) -> str:
    code = block.code
    for old, new in block.shrink:
        pattern = re.escape(old) + r"(?![\w.])"
        assert re.search(pattern, code), f"{block.page}:{block.line}: the replacement {old!r} → {new!r} does not apply"
        code = re.sub(pattern, new, code)
    return code


def shell_commands(block: Block) -> list[list[str]]:
    """The commands of a bash block: continuation lines joined, comments dropped, ``&&`` chains split."""
    text = shrunk(block).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        if block.lang == "console":
            if not line.startswith("$ "):
                continue  # output shown after a command
            line = line[2:]
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            commands.append(words[:cut])
            words = words[cut + 1:]
    return [c for c in commands if c]


def needs_data(page: str) -> bool:
    for block in parse_blocks(page):
        if runnable(block) and block.lang != "python":
            for words in shell_commands(block):
                if words[0] == "ann2snn" and len(words) > 1 and (
                        words[1] in DATA_COMMANDS or (words[1] == "entropy" and "--checkpoint" in words)):
                    return True
    return False


def pyproject_extras() -> set[str]:
    """The names of pyproject.toml's optional-dependency groups (read as text: Python 3.10 has no tomllib)."""
    text = open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([\w-]+)\s*=", section, re.M))


def run_shell(block: Block, words: list[str]) -> None:
    where = f"{block.page}:{block.line}: {' '.join(words)}"
    if words[:2] == ["pip", "install"]:
        args = [w for w in words[2:] if w != "-e"]
        assert "-e" in words and len(args) == 1, f"{where}: only `pip install -e .[extras]` can be checked here"
        m = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", args[0])
        assert m, f"{where}: not an install of this repository"
        missing = set((m.group(1) or "").split(",")) - {""} - pyproject_extras()
        assert not missing, f"{where}: pyproject.toml has no extra {sorted(missing)}"
        return
    if words[0] == "ann2snn":
        from ann2snn.cli.main import main

        assert main(words[1:]) == 0, f"{where}: exit status not 0 (its message is in the captured stderr)"
        return
    if words[0] == "eval" and len(words) == 2:
        m = re.fullmatch(r"\$\(_ANN2SNN_COMPLETE=(bash|zsh|fish)_source ann2snn\)", words[1])
        assert m, f"{where}: only the completion line can be run"
        done = subprocess.run([sys.executable, "-m", "ann2snn"], capture_output=True, text=True,
                              env={**os.environ, "_ANN2SNN_COMPLETE": f"{m.group(1)}_source"})
        assert done.returncode == 0 and "_ann2snn_completion" in done.stdout, f"{where}: {done.stderr}"
        if m.group(1) == "bash":  # the script asks the CLI for completions: `ann2snn sw<TAB>` gives sweep
            done = subprocess.run([sys.executable, "-m", "ann2snn"], capture_output=True, text=True,
                                  env={**os.environ, "_ANN2SNN_COMPLETE": "bash_complete",
                                       "COMP_WORDS": "ann2snn sw", "COMP_CWORD": "1"})
            assert done.stdout.split() == ["plain,sweep"], f"{where}: {done.stdout!r} {done.stderr}"
        return
    if words[:2] == ["python", "../shared/data/unpack_cifar.py"]:
        script = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "unpack_cifar.py"))
        if not os.path.isfile(script):
            pytest.skip(f"{where}: no packed copy next to this checkout")
        done = subprocess.run([sys.executable, script, *words[2:]], capture_output=True, text=True)
        assert done.returncode == 0, f"{where}: {done.stderr[-2000:]}"
        return
    raise AssertionError(f"{where}: the test cannot run this command; mark the block *(not run here: ...)*")


def run_page(page: str) -> int:
    """Run every block of ``page`` in order in the working folder; returns how many ran."""
    ran = 0
    for block in parse_blocks(page):
        if not runnable(block):
            continue
        if block.lang == "python":
            code = compile(shrunk(block), f"{block.page}:{block.line}", "exec")
            exec(code, {"__name__": "__doc_block__"})
        else:
            for words in shell_commands(block):
                run_shell(block, words)
        ran += 1
    return ran


DATA_PAGES = [p for p in PAGES if needs_data(p)]
OTHER_PAGES = [p for p in PAGES if p not in DATA_PAGES and any(runnable(b) for b in parse_blocks(p))]


@pytest.mark.parametrize("page", OTHER_PAGES)
def test_page_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_page(page) >= 1


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.parametrize("page", DATA_PAGES)
def test_page_blocks_run_on_cifar10(page, cifar10_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANN2SNN_DATA", cifar10_dir)  # --data-dir's default, as a reader's own folder
    assert run_page(page) >= 1


def test_every_block_is_run_or_says_why():
    """Each block has a language; a block that is not run names its reason; the marks are well formed."""
    counts = {"run": 0, "not run": 0, "run elsewhere": 0, "shown": 0}
    for page in PAGES:
        for block in parse_blocks(page):
            where = f"{page}:{block.line}"
            assert block.lang in RUN_LANGS | SHOWN_LANGS, f"{where}: give the block a language (python, bash, text)"
            if block.lang in SHOWN_LANGS:
                assert block.not_run is None and not block.shrink, f"{where}: a text block is never run"
                counts["shown"] += 1
            elif block.not_run is not None:
                assert len(block.not_run) > 8 and not block.shrink, f"{where}: say why it is not run"
                counts["not run"] += 1
            elif block.run_in is not None:
                other = open(os.path.join(ROOT, block.run_in), encoding="utf-8").read()
                assert page in other, f"{where}: {block.run_in} does not read {page}"
                counts["run elsewhere"] += 1
            else:
                shrunk(block)  # every replacement applies
                if block.lang != "python":
                    assert shell_commands(block), f"{where}: an empty block"
                counts["run"] += 1
    # the pages hold many runnable blocks: a parser that found none would make the tests above vacuous
    assert counts["run"] >= 25 and counts["not run"] >= 5, counts


def test_readme_keeps_the_main_job_line():
    """benchmarks/main_job.sh times the README's line that starts `pip install -e . && ann2snn train-ann`."""
    lines = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read().splitlines()
    job = [ln for ln in lines if ln.startswith("pip install -e . && ann2snn train-ann")]
    assert len(job) == 1 and " && ann2snn sweep " in job[0]
    assert "pip install -e '.[test]' && python -m pytest -q" in lines


def test_design_references_point_at_sections():
    """Every "docs/design.md §N" (or §N.M, and "pitfall K") cited in the code, tests and pages names a
    section of docs/design.md that exists."""
    design = open(os.path.join(ROOT, "docs", "design.md"), encoding="utf-8").read()
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\. ?", design, re.M)) | set(
        re.findall(r"^#{3} (\d+\.\d+) ", design, re.M))
    pitfalls = len(re.findall(r"^\d+\. \*\*", design.split("## 5.", 1)[1].split("## 6.", 1)[0], re.M))
    assert {"1", "2", "3", "4", "5", "3.1", "3.5", "3.9"} <= sections and pitfalls == 12
    cited = 0
    for folder in ("ann2snn", "cli", "models", "tests", "results", "docs", "benchmarks"):
        for path in glob.glob(os.path.join(ROOT, folder, "**", "*.*"), recursive=True):
            if not path.endswith((".py", ".md", ".sh")):
                continue
            text = open(path, encoding="utf-8").read()
            assert "DESIGN" + " §" not in text, f"{path}: cite docs/design.md §N"
            for ref in re.finditer(r"docs/design\.md §(\d+(?:\.\d+)?)(?:[–-]§(\d+(?:\.\d+)?))?(, pitfalls? (\d+))?", text):
                for number in filter(None, ref.group(1, 2)):
                    assert number in sections, f"{path}: docs/design.md §{number} does not exist"
                if ref.group(4):
                    assert 1 <= int(ref.group(4)) <= pitfalls
                cited += 1
    assert cited >= 25, cited


def test_one_offline_data_instruction(tmp_path, monkeypatch):
    """The quick start, getting started, the data page, the missing-data error and the download-failure
    error give the same instruction in the same words (the errors with the paths of the call, and flags
    for arguments)."""
    from ann2snn.cli.errors import to_flags
    from ann2snn.plumbing import data
    from ann2snn.plumbing.errors import UserError

    def sentence(text: str) -> str:
        flat = " ".join(text.replace("`", "").split())
        start = flat.index("Online, add --download.")
        return flat[start:flat.index("holds it.", start) + len("holds it.")]

    pages = {page: sentence(open(os.path.join(ROOT, page), encoding="utf-8").read())
             for page in ("README.md", "docs/getting-started.md", "docs/data.md")}
    assert len(set(pages.values())) == 1, pages
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "offline_copy", lambda: "../shared/data/unpack_cifar.py")
    with pytest.raises(UserError) as error:
        data.load_split("cifar10", "./data", True)
    assert sentence(to_flags(str(error.value))) == pages["README.md"]
    failed = "could not download cifar10 into ./data (offline). " + data.offline_instruction("cifar10", "./data")
    assert pages["README.md"].endswith(" ".join(to_flags(failed).split()).split("(offline). ")[1])


def test_citation_names_this_version_and_the_paper():
    """CITATION.cff's version is the package's, and its preferred citation is the multi-bit paper."""
    from ann2snn.plumbing.version import __version__

    text = open(os.path.join(ROOT, "CITATION.cff"), encoding="utf-8").read()
    assert re.search(r'^version: "([^"]+)"$', text, re.M).group(1) == __version__
    assert "arXiv:2407.05739" in text and "preferred-citation:" in text and "cff-version: 1.2.0" in text
