"""Write English text the way PTB (Mikolov's LM version) writes it, for adapting a PTB model.

    python tools/ptb_style.py IN [IN ...] OUT_FOLDER --names train valid test

Each line is lowercased, HTML entities are unescaped (``&apos;s`` -> ``'s``), tokens without a
letter or digit (punctuation) are dropped, and numbers become ``N``, as in ptb.train.txt. The
files are written as OUT_FOLDER/NAME.txt (one per input, in order), a corpus folder that
``data.dataset`` reads. Used for the domain-adaptation runs in docs/lm.md ("Fine-tuning"): the
Multi30k English side (tokenized, lowercased) written as PTB is.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from elman.data.text import read_lines  # noqa: E402
from elman.files import write_text  # noqa: E402

NUMBER = re.compile(r"[0-9][0-9.,:/-]*")
WORDLIKE = re.compile(r"[a-z0-9]")


def ptb_style(line: str) -> str:
    """One line as PTB writes it."""
    words = html.unescape(line).lower().split()
    return " ".join("N" if NUMBER.fullmatch(w) else w for w in words if WORDLIKE.search(w))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="text files (.gz read as their text)")
    parser.add_argument("out", help="folder to write NAME.txt into")
    parser.add_argument("--names", nargs="+", default=["train", "valid", "test"])
    args = parser.parse_args()
    if len(args.names) != len(args.inputs):
        parser.error(f"{len(args.inputs)} inputs but {len(args.names)} --names")
    for path, name in zip(args.inputs, args.names, strict=True):
        lines = [ptb_style(line) for line in read_lines(path)]
        write_text(Path(args.out) / f"{name}.txt", "\n".join(lines) + "\n")
        print(f"{path} -> {Path(args.out) / f'{name}.txt'}: {len(lines)} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
