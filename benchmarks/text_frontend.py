"""Benchmark of the text front end: normalising a 2,000-character mixed Chinese/English paragraph.

    python benchmarks/text_frontend.py [--model DIR_OR_BPE] [--repeat 30]

Prints the cold cost (loading wetext's FSTs, first call) and the warm cost (median and best of
--repeat calls) of normalisation; with --model also of the whole front end (normalise, tokenize,
segment), and of a few 10,000-character worst cases.
"""

from __future__ import annotations

import argparse
import statistics
import time

# Mixed Chinese/English sentences with the things the normaliser works on (dates, money, percent,
# versions, units, names, pinyin, technical terms), repeated to 2,000 characters.
SENTENCES = (
    "上周五，我们团队在Shanghai举办了一场关于Large Language Model的分享会。",
    "主讲人Alice首先介绍了Transformer的基本结构，然后演示了如何用Python调用API生成文本。",
    "会后，大家一致认为：demo很精彩，但是latency还需要优化。",
    "下一次活动定在2025年6月1日下午3点30分，欢迎感兴趣的同学报名参加！",
    "这件衣服原价299元，现价239.2元，打了八折。",
    "今年的增长率是12.5%，比去年高了3个百分点。",
    "我今天用iPhone 15 Pro拍了很多照片，效果666。",
    "GPT-5-Nano 是 GPT-5 模型家族中最小的变体。",
    "约瑟夫·高登-莱维特是一位演员，他的英文名是Joseph。",
    "这个字读XING2，不读HANG2。",
    "清晨，城市还没有完全醒来，街道两旁的路灯依次熄灭，早点铺的老板已经支起了锅。",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
)


def paragraph(length: int = 2000) -> str:
    text = ""
    while len(text) < length:
        text += "".join(SENTENCES)
    return text[:length]


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return (time.perf_counter() - started) * 1000


def report(name: str, samples: list[float]) -> None:
    print(f"{name:<44} median {statistics.median(samples):7.1f} ms   best {min(samples):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory or bpe.model, to time tokenize + segment too")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    text = paragraph()
    started = time.perf_counter()
    from indextts2.text import TextFrontend, load_fsts

    import_ms = (time.perf_counter() - started) * 1000
    load_ms = timed(load_fsts)
    frontend = TextFrontend.from_model(args.model) if args.model else TextFrontend()
    first_ms = timed(frontend.normalize, text)
    print(f"paragraph: {len(text)} characters, {sum(c.isascii() for c in text)} of them ASCII")
    print(f"{'import indextts2.text':<44} {import_ms:7.1f} ms")
    print(f"{'load wetext FSTs (once per process)':<44} {load_ms:7.1f} ms")
    print(f"{'first normalize (cold)':<44} {first_ms:7.1f} ms")
    report("normalize (warm)", [timed(frontend.normalize, text) for _ in range(args.repeat)])
    if args.model:
        report(
            "prepare: normalize+tokenize+segment (warm)",
            [timed(frontend.prepare, text) for _ in range(args.repeat)],
        )
        for name, worst in (
            ("10,000 x '你'", "你" * 10_000),
            ("10,000 x emoji", "😀" * 10_000),
            ("10,000 control characters + text", "\x07" * 9_990 + "你好"),
            ("10,000 x 'a'", "a" * 10_000),
            ("10,000 chars of English prose", ("It was a bright cold day in April. " * 300)[:10_000]),
            ("10,000 x '1' (all through the FST)", "1" * 10_000),
        ):
            report(f"prepare {name}", [timed(frontend.prepare, worst) for _ in range(3)])


if __name__ == "__main__":
    main()
