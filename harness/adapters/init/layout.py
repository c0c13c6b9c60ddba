"""What a submission is made of, read from its files alone (pure: no process is started).

`scan(files)` takes `{relative path: text}` and says which language and build system it uses
and which programs could be the coordinator and the participant; `choose` picks one of each
or says why it cannot."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

LANGS = ("java", "c", "cpp", "python")
SOURCE_EXT = {
    ".java": "java",
    ".c": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".py": "python",
}
BUILD_FILES = (
    ("maven", "pom.xml"),
    ("gradle", "build.gradle"),
    ("gradle", "build.gradle.kts"),
    ("cmake", "CMakeLists.txt"),
    ("make", "Makefile"),
    ("make", "makefile"),
    ("make", "GNUmakefile"),
)
ROLE_WORDS = {
    "coordinator": ("coordinator", "coord", "server", "multicastserver", "central"),
    "participant": ("participant", "client", "peer", "member", "node", "user"),
}
SKIP_DIRS = frozenset({".git", "__pycache__", "target", "build", "out", "bin", "pams-build"})
SKIP_DIRS |= {".gradle", ".idea", ".vscode", "venv", ".venv", "node_modules", "cmake-build-debug"}
MAX_TEXT = 512 * 1024  # bytes of one file read when scanning

_JAVA_MAIN = re.compile(r"\bstatic\s+(?:final\s+)?(?:public\s+)?void\s+main\s*\(")
_JAVA_PUBLIC_MAIN = re.compile(
    r"\bpublic\s+static\s+void\s+main\s*\(|\bstatic\s+public\s+void\s+main"
)
_JAVA_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;", re.M)
_JAVA_CLASS = re.compile(
    r"^(?:public\s+|final\s+|abstract\s+)*(?:class|interface|enum|record)\s+(\w+)", re.M
)
_C_MAIN = re.compile(r"\bint\s+main\s*\(")
_PY_MAIN = re.compile(r"^if\s+__name__\s*==\s*['\"]__main__['\"]\s*:", re.M)


@dataclass(frozen=True)
class Candidate:
    """A program that could be one of the two roles: `name` is the file (Python, C/C++) or
    the fully qualified class (Java); `path` its source file; `score` how well its name and
    the README fit the role (0: no hint)."""

    name: str
    path: str
    score: int


@dataclass(frozen=True)
class Layout:
    """The submission as its files show it."""

    lang: str
    build_system: str  # "maven", "gradle", "cmake", "make" or "" (none)
    sources: tuple[str, ...]
    mains: tuple[Candidate, ...]  # every program with an entry point (score 0)
    source_root: str = "."  # Java: the directory the package tree starts from
    readme: str = ""


class LayoutError(Exception):
    """The submission cannot be understood; str() is one line (candidates listed)."""


def read_tree(root: Path) -> dict[str, str]:
    """`{relative posix path: text}` for every file under `root` worth scanning (hidden and
    build-output directories skipped, each file cut at MAX_TEXT bytes). Reads only."""
    files: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_TEXT)
        except OSError:
            continue
        if b"\0" in data[:4096]:
            continue
        files[rel.as_posix()] = data.decode("utf-8", errors="replace")
    return files


def detect_lang(files: Mapping[str, str], build_system: str) -> Optional[str]:
    """The language with the most source files that have an entry point (a build system's
    language first: maven/gradle -> java)."""
    if build_system in ("maven", "gradle"):
        return "java"
    counts: dict[str, int] = {}
    for path, text in files.items():
        lang = SOURCE_EXT.get(PurePosixPath(path).suffix)
        if lang is not None and _has_main(lang, text):
            counts[lang] = counts.get(lang, 0) + 1
    if not counts:
        return None
    return max(counts, key=lambda lang: (counts[lang], -LANGS.index(lang)))


def detect_build(files: Mapping[str, str]) -> str:
    """The build system whose file sits highest in the tree (the first of BUILD_FILES there)."""
    best: Optional[tuple[int, int, str]] = None
    for path in files:
        p = PurePosixPath(path)
        for rank, (system, name) in enumerate(BUILD_FILES):
            if p.name == name:
                key = (len(p.parts), rank, system)
                best = key if best is None or key < best else best
    return best[2] if best else ""


def _has_main(lang: str, text: str) -> bool:
    if lang == "java":
        return bool(_JAVA_MAIN.search(text))
    if lang in ("c", "cpp"):
        return bool(_C_MAIN.search(text))
    return bool(_PY_MAIN.search(text))


def java_class_name(path: str, text: str) -> str:
    """The fully qualified name of the class a .java file is named after."""
    m = _JAVA_PACKAGE.search(text)
    stem = PurePosixPath(path).stem
    return f"{m.group(1)}.{stem}" if m else stem


def java_source_root(path: str, text: str) -> str:
    """The directory a Java file's package tree starts from (`src/main/java` for
    `src/main/java/a/b/X.java` in package a.b)."""
    parent = PurePosixPath(path).parent
    m = _JAVA_PACKAGE.search(text)
    depth = len(m.group(1).split(".")) if m else 0
    parts = parent.parts[: len(parent.parts) - depth] if depth else parent.parts
    return PurePosixPath(*parts).as_posix() if parts else "."


def java_top_classes(text: str) -> set[str]:
    """Names of the top-level types a .java file declares (its non-nested class lines)."""
    return set(_JAVA_CLASS.findall(text))


def java_clashes(files: Mapping[str, str], sources: tuple[str, ...]) -> set[str]:
    """Top-level type names declared in more than one of `sources` (compiling them together
    fails with `duplicate class`)."""
    seen: dict[str, int] = {}
    for path in sources:
        for name in java_top_classes(files[path]):
            seen[name] = seen.get(name, 0) + 1
    return {name for name, n in seen.items() if n > 1}


def scan(files: Mapping[str, str], lang: Optional[str] = None) -> Layout:
    """The layout of a submission given its files; LayoutError when no program is found."""
    build_system = detect_build(files)
    lang = lang or detect_lang(files, build_system)
    if lang is None:
        raise LayoutError("no program found (no main method, int main() or __main__ block)")
    exts = {e for e, lng in SOURCE_EXT.items() if lng == lang or (lang == "cpp" and lng == "c")}
    sources = tuple(p for p in files if PurePosixPath(p).suffix in exts and not _is_test(p))
    mains = []
    for path in sources:
        text = files[path]
        if not _has_main(SOURCE_EXT[PurePosixPath(path).suffix], text):
            continue
        name = java_class_name(path, text) if lang == "java" else PurePosixPath(path).name
        mains.append(Candidate(name, path, 0))
    if not mains and lang == "python":  # scripts without a __main__ block
        mains = [Candidate(PurePosixPath(p).name, p, 0) for p in sources if "/" not in p]
    if not mains:
        raise LayoutError(f"no {lang} program with an entry point found")
    root = "."
    if lang == "java":
        roots = {java_source_root(c.path, files[c.path]) for c in mains}
        root = sorted(roots, key=len)[0]
    return Layout(lang, build_system, sources, tuple(mains), root, _readme(files))


def _is_test(path: str) -> bool:
    p = PurePosixPath(path)
    low = p.name.lower()
    return (
        "test" in (part.lower() for part in p.parts[:-1])
        or low.startswith("test_")
        or low.endswith(("test.java", "tests.java", "_test.py", "_test.c"))
        or low in ("setup.py", "conftest.py")
    )


def _readme(files: Mapping[str, str]) -> str:
    for path, text in files.items():
        p = PurePosixPath(path)
        if len(p.parts) == 1 and p.name.lower().startswith("readme"):
            return text
    return ""


def role_score(role: str, cand: Candidate, readme: str) -> int:
    """How well `cand` fits `role`: 10 for a file/class name that is exactly a role word,
    5 for one containing it, +2 when the README names it on a line mentioning the role;
    0 when the name fits the other role better."""
    stem = PurePosixPath(cand.path).stem.lower()
    simple = cand.name.rsplit(".", 1)[-1].lower() if cand.path.endswith(".java") else stem
    names = {stem, simple}
    score = 0
    for word in ROLE_WORDS[role]:
        if word in names:
            score = max(score, 10)
        elif any(word in n for n in names):
            score = max(score, 5)
    other = "participant" if role == "coordinator" else "coordinator"
    if score and any(w in n for w in ROLE_WORDS[other] for n in names) and score < 10:
        score = 0
    for line in readme.lower().splitlines():
        if role[:5] in line and PurePosixPath(cand.path).stem.lower() in line:
            score += 2
            break
    return score


def choose(layout: Layout, role: str, wanted: Optional[str] = None) -> Candidate:
    """The program for `role`: `wanted` (a name or path among the candidates) if given, else
    the single best-scoring one; LayoutError listing the candidates when none stands out."""
    if wanted is not None:
        for cand in layout.mains:
            if wanted in (cand.name, cand.path, PurePosixPath(cand.path).stem):
                return Candidate(cand.name, cand.path, 100)
        raise LayoutError(f"--{role} {wanted}: not among {listing(layout.mains)}")
    scored = sorted(
        (Candidate(c.name, c.path, role_score(role, c, layout.readme)) for c in layout.mains),
        key=lambda c: -c.score,
    )
    top = [c for c in scored if c.score == scored[0].score]
    if scored[0].score > 0 and len(top) == 1:
        return top[0]
    why = "no program is named for it" if scored[0].score == 0 else "several fit equally"
    raise LayoutError(
        f"cannot tell which program is the {role} ({why}); candidates: {listing(top)}; "
        f"name it with --{role}"
    )


def listing(cands: tuple[Candidate, ...] | list[Candidate]) -> str:
    return ", ".join(f"{c.name} ({c.path})" if c.name != c.path else c.path for c in cands)
