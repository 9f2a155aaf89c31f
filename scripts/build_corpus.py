"""Build the English corpus that the embedded demo model (`deberta-zoo/tiny-mlm`) is trained on.

Nothing is downloaded. The text is the prose that ships with the Python installation running this script:

* docstrings and comments of the standard library's modules (tests excluded), and the Python language
  reference and library topics that `pydoc` keeps in `pydoc_data/topics.py`;
* docstrings and comments of the packages in this interpreter's site-packages (for the project's virtualenv:
  numpy, torch, tensorflow, keras, sympy, networkx, ... and their dependencies), plus their .rst/.txt/.md files.

Each paragraph is cut into sentences, and only sentences that read as plain English are kept: every word made
of letters (with inner ' or -), so that sentences with code, paths, digits, URLs or identifiers with underscores
or camelCase are dropped; 6 to 50 words, at least 70% of them lower-case; a capital letter first and `.`, `!`
or `?` last. Duplicate sentences are dropped.

A held-out part is chosen by file: a file whose SHA-256 of "<source>/<relative path>" is 0 modulo
`--heldout-modulus` (default 20, i.e. ~5% of files) goes to heldout.txt only, and held-out sentences that also
occur in a training file are removed, so the held-out text is never trained on.

Output (default build/tiny-mlm-corpus/, ignored by git):
    train.txt     one sentence per line, a blank line between files (so that training can keep a file's
                  sentences together as context)
    heldout.txt   the same for the held-out files
    manifest.json Python version, installed distributions and versions, counts and SHA-256 of both files

The same installed files always give byte-identical output (files are visited in sorted order).

    python scripts/build_corpus.py [--out build/tiny-mlm-corpus]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import io
import json
import os
import re
import sys
import sysconfig
import tokenize
import warnings

# Directories never read: tests (full of fixtures, not prose), caches, vendored copies, the interpreter's own
# site-packages inside the standard library folder (what is there differs between machines).
SKIP_DIRS = {
    "__pycache__", "test", "tests", "testing", "idle_test", "unittests", "_vendor", "vendor", "site-packages",
    "lib2to3", "ensurepip",
}
TEXT_SUFFIXES = (".rst", ".txt", ".md")
MAX_FILE_BYTES = 2_000_000  # larger files are generated tables, not prose

WORD = re.compile(r"^[A-Za-z]+(?:['-][A-Za-z]+)*$")
CAMEL = re.compile(r"[a-z][A-Z]")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
# reStructuredText / Markdown markup that wraps ordinary words: :func:`name` -> name, ``x`` -> x, *x* -> x.
ROLE = re.compile(r":[a-z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
INLINE = re.compile(r"`{1,2}([^`]+)`{1,2}_?|\*{1,2}([^*]+)\*{1,2}")
ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "Mr.", "Dr.", "No.")


def sources() -> list[tuple[str, str]]:
    """(label, root folder) pairs read, in this order: the standard library, then this interpreter's site-packages."""
    stdlib = sysconfig.get_paths()["stdlib"]
    purelib = sysconfig.get_paths()["purelib"]
    out = [("stdlib", stdlib)]
    if os.path.realpath(purelib) != os.path.realpath(stdlib):
        out.append(("site-packages", purelib))
    return out


def iter_files(root: str) -> list[str]:
    """Relative paths of the .py/.rst/.txt/.md files under root, sorted, skipping SKIP_DIRS and metadata."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith((".dist-info", ".egg-info")))
        for name in sorted(files):
            if name.endswith((".py",) + TEXT_SUFFIXES):
                path = os.path.join(folder, name)
                if os.path.isfile(path) and os.path.getsize(path) <= MAX_FILE_BYTES:
                    found.append(os.path.relpath(path, root))
    return sorted(found)


# ----------------------------------------------------------------------------- paragraphs from files
def python_paragraphs(source: str, all_strings: bool = False) -> list[str]:
    """Docstrings (or, with all_strings, every long string constant) and runs of comment lines."""
    paragraphs: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences in old files
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            return []
    for node in ast.walk(tree):
        if all_strings:
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > 200:
                paragraphs.extend(split_paragraphs(node.value))
        elif isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                paragraphs.extend(split_paragraphs(doc))
    # Comments: consecutive comment lines form one paragraph.
    run: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                run.append(tok.string.lstrip("#").strip())
            elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                if run:
                    paragraphs.append(" ".join(run))
                    run = []
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    if run:
        paragraphs.append(" ".join(run))
    return paragraphs


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, each joined into one line; literal blocks (after `::`) are dropped."""
    out = []
    literal = False
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if not lines:
            continue
        indented = all(line.startswith((" ", "\t")) for line in lines if line.strip())
        if literal and indented:
            continue  # the body of an rst literal block: code
        literal = block.rstrip().endswith("::")
        out.append(" ".join(line.strip() for line in lines if line.strip()))
    return out


# ----------------------------------------------------------------------------- sentences
def clean_markup(paragraph: str) -> str:
    paragraph = ROLE.sub(lambda m: m.group(1), paragraph)
    paragraph = INLINE.sub(lambda m: m.group(1) or m.group(2), paragraph)
    return re.sub(r"\s+", " ", paragraph).strip()


def is_english(sentence: str) -> bool:
    """A sentence of ordinary words: no code, numbers with symbols, identifiers, URLs or shouting."""
    if not (sentence[:1].isupper() and sentence[-1:] in ".!?"):
        return False
    words = sentence.split()
    if not 6 <= len(words) <= 50:
        return False
    lowercase = 0
    for raw in words:
        word = raw.strip(",.;:!?\"'()")
        if not WORD.match(word) or CAMEL.search(word):
            return False
        if raw.count("(") != raw.count(")") and not raw.startswith("(") and not raw.rstrip(",.;:!?").endswith(")"):
            return False
        lowercase += word.islower()
    # Titles, lists of names and licence boilerplate in capitals have few lower-case words.
    return lowercase >= 0.7 * len(words)


def sentences(paragraph: str) -> list[str]:
    paragraph = clean_markup(paragraph)
    for abbr in ABBREVIATIONS:  # keep "e.g. Foo" from ending a sentence
        paragraph = paragraph.replace(abbr + " ", abbr.replace(".", "\x00") + " ")
    parts = [p.replace("\x00", ".").strip() for p in SENTENCE_END.split(paragraph)]
    return [p for p in parts if is_english(p)]


def file_sentences(path: str, label: str, rel: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    if rel.endswith(".py"):
        paragraphs = python_paragraphs(text, all_strings=(label, rel) == ("stdlib", "pydoc_data/topics.py"))
    else:
        paragraphs = split_paragraphs(text)
    return [s for p in paragraphs for s in sentences(p)]


def is_heldout(key: str, modulus: int) -> bool:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % modulus == 0


def installed_distributions() -> dict[str, str]:
    return dict(sorted((d.metadata["Name"] or "?", d.version) for d in importlib.metadata.distributions()))


def build(out: str, heldout_modulus: int = 20, log=print) -> dict:
    """Write train.txt, heldout.txt and manifest.json into `out`; returns the manifest."""
    train_docs: list[list[str]] = []
    heldout_docs: list[list[str]] = []
    files = {"train": 0, "heldout": 0}
    for label, root in sources():
        rels = iter_files(root)
        log(f"{label}: {root}: {len(rels)} files")
        for rel in rels:
            found = file_sentences(os.path.join(root, rel), label, rel)
            if not found:
                continue
            split = "heldout" if is_heldout(f"{label}/{rel}", heldout_modulus) else "train"
            (heldout_docs if split == "heldout" else train_docs).append(found)
            files[split] += 1

    def dedupe(docs: list[list[str]], exclude: set[str]) -> list[list[str]]:
        seen = set(exclude)
        kept = []
        for doc in docs:
            unique = [s for s in doc if not (s in seen or seen.add(s))]
            if unique:
                kept.append(unique)
        return kept

    train_docs = dedupe(train_docs, set())
    train_set = {s for doc in train_docs for s in doc}
    heldout_docs = dedupe(heldout_docs, train_set)  # held-out text never occurs in training

    os.makedirs(out, exist_ok=True)
    manifest: dict = {
        "python": sys.version.split()[0],
        "sources": [label for label, _ in sources()],
        "heldout_rule": f"sha256('<source>/<relative path>') % {heldout_modulus} == 0",
        "files": files,
    }
    for name, docs in (("train", train_docs), ("heldout", heldout_docs)):
        text = "\n\n".join("\n".join(doc) for doc in docs) + "\n"
        data = text.encode("utf-8")
        with open(os.path.join(out, f"{name}.txt"), "wb") as handle:
            handle.write(data)
        manifest[name] = {
            "sentences": sum(len(d) for d in docs), "documents": len(docs), "words": len(text.split()),
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        }
        log(f"{name}.txt: {manifest[name]['sentences']} sentences, {manifest[name]['words']} words")
    manifest["distributions"] = installed_distributions()
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("build", "tiny-mlm-corpus"), help="output folder")
    parser.add_argument("--heldout-modulus", type=int, default=20, help="hold out ~1/N of the files (default 20)")
    args = parser.parse_args(argv)
    build(args.out, args.heldout_modulus)


if __name__ == "__main__":
    main()
