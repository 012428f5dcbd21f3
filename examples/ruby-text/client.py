"""Calls the Ruby text toolkit from Python through the generated stubs.

    bridge generate --lang python -o GEN -I examples/ruby-text examples/ruby-text/text.proto
    python3 examples/ruby-text/client.py --servers 127.0.0.1:4730 --gen GEN
"""

from __future__ import annotations

import argparse
import sys

from bridge.rpc.client import Encoding

ARTICLE = (
    "Ruby keeps the text rules: the words are split in Ruby, the words are counted in Ruby, and "
    "the counts of the words stream back to Python one word at a time, while Python keeps the rest."
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="127.0.0.1:4730")
    parser.add_argument("--gen", required=True, help="where `bridge generate --lang python` wrote")
    args = parser.parse_args()
    sys.path.insert(0, args.gen)
    from text_bridge import TextToolkitClient  # type: ignore[import-not-found]  # generated

    with TextToolkitClient(args.servers) as text:
        slug = text.slugify(text="Crème brûlée à l'Été!", timeout=10).slug
        print(f"slugify      : {slug}")
        title = text.titleize(text="the lord of the rings", timeout=10).title
        print(f"titleize     : {title}")
        counts = text.word_frequencies(text=ARTICLE, top=4, timeout=10)  # streamed, word by word
        top = [f"{count.word}={count.count}" for count in counts]
        print(f"top words    : {', '.join(top)}")
        reading = text.reading_time(text=ARTICLE * 40, timeout=10, encoding=Encoding.MSGPACK)
        print(f"reading time : {reading.words} words, {reading.human}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
