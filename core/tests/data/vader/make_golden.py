#!/usr/bin/env python3
"""Writes golden.tsv: the reference VADER scores of every line of texts.txt.

The reference is PyPI `vaderSentiment` 3.3.2 (MIT), `SentimentIntensityAnalyzer().
polarity_scores(text)`, with the lexicons it ships. earshot's port
(`pipeline/src/stage/score/sentiment.rs`) is tested against this file.

    python3 -m venv /tmp/vader && /tmp/vader/bin/pip install vaderSentiment==3.3.2
    /tmp/vader/bin/python core/tests/data/vader/make_golden.py

Input: texts.txt, UTF-8, one text a line (LF), no tabs or CRs; an empty line is a text too.
Output: golden.tsv, a header row, then `neg<TAB>neu<TAB>pos<TAB>compound<TAB>text` a line,
numbers as Python prints them (`repr`), in the order of texts.txt.

Before scoring, it checks that `rules/lexicons/` holds byte-identical copies of the package's
lexicons, since earshot embeds those copies: a golden file made from other lexicons would test
nothing.

The golden file in the repository was made with Python 3.11. Python 3.12 changed `sum()` of
floats to compensated summation, which can move a raw sum by one unit in the last place; after
VADER's rounding to 3-4 decimals that almost never shows, and the Rust test tolerates it.
"""

import pathlib
import sys
from importlib import metadata

from vaderSentiment import vaderSentiment
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

EXPECTED_VERSION = "3.3.2"
HERE = pathlib.Path(__file__).resolve().parent
LEXICONS = HERE.parents[3] / "rules" / "lexicons"


def check_lexicon_copies() -> None:
    package_dir = pathlib.Path(vaderSentiment.__file__).resolve().parent
    for name in ("vader_lexicon.txt", "emoji_utf8_lexicon.txt"):
        ours = (LEXICONS / name).read_bytes()
        theirs = (package_dir / name).read_bytes()
        if ours != theirs:
            sys.exit(f"{LEXICONS / name} differs from {package_dir / name}")


def read_texts() -> list[str]:
    # Bytes, not text mode: text mode would turn a stray CR into a line end unseen.
    raw = (HERE / "texts.txt").read_bytes().decode("utf-8")
    if raw.endswith("\n"):
        raw = raw[:-1]
    texts = raw.split("\n")
    for n, text in enumerate(texts, start=1):
        if "\t" in text or "\r" in text:
            sys.exit(f"texts.txt:{n}: tabs and carriage returns cannot be stored in golden.tsv")
    return texts


def main() -> None:
    version = metadata.version("vaderSentiment")
    if version != EXPECTED_VERSION:
        sys.exit(f"vaderSentiment {version} installed, {EXPECTED_VERSION} expected")
    check_lexicon_copies()
    analyzer = SentimentIntensityAnalyzer()
    rows = ["neg\tneu\tpos\tcompound\ttext"]
    for text in read_texts():
        s = analyzer.polarity_scores(text)
        rows.append(
            f"{float(s['neg'])!r}\t{float(s['neu'])!r}\t{float(s['pos'])!r}\t"
            f"{float(s['compound'])!r}\t{text}"
        )
    (HERE / "golden.tsv").write_bytes(("\n".join(rows) + "\n").encode("utf-8"))
    print(
        f"golden.tsv: {len(rows) - 1} texts scored by vaderSentiment {version} "
        f"on Python {sys.version.split()[0]}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
