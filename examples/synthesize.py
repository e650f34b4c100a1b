"""indextts2 from Python: load a model, make a voice, speak, stream, and speak many texts at once.

    python examples/synthesize.py                                  # dummy:tiny, the sample voice
    python examples/synthesize.py --ref me.wav --out-dir speech/   # your own voice
    python examples/synthesize.py --model IndexTeam/IndexTTS-2 --ref me.wav   # the released model

``dummy:tiny`` runs the whole real pipeline on small random weights: it needs no download and
produces noise, not speech, for as long as the text takes to read. The sample voice is a synthetic
clip shipped with indextts2 (``indextts2.samples.sample_voice()``). The released model is
downloaded on first use (about 5 GB; accept its licence once with
``indextts2 models download --accept-license``).

Writes into --out-dir: voice.safetensors, hello.wav, happy.flac, stream.wav, batch-0.wav, batch-1.wav.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import soundfile as sf

from indextts2 import Emotion, SynthesisOptions, Synthesizer
from indextts2.samples import sample_voice


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="dummy:tiny", help="model id, checkpoints directory or dummy:tiny")
    parser.add_argument(
        "--ref", type=Path, default=sample_voice(), help="a clip of the speaker (default: the sample voice)"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("."), help="where the files go")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--steps", type=int, default=25, help="diffusion steps (25 official; fewer = faster)")
    parser.add_argument("--max-codes", type=int, default=1500, help="most semantic codes per segment")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    # One frozen options value, validated on construction; a fixed seed gives the same audio each run.
    options = SynthesisOptions(seed=7, diffusion_steps=args.steps, max_codes=args.max_codes)

    with Synthesizer.from_pretrained(args.model, device=args.device) as tts:
        # A voice is the speaker's clip encoded once; save it to skip the encoding next time.
        voice = tts.voice(args.ref)
        voice.save(args.out_dir / "voice.safetensors")
        voice = tts.load_voice(args.out_dir / "voice.safetensors")
        print(f"voice {voice.id[:12]} from {args.ref} ({voice.duration:.1f} s)")

        # The whole audio at once.
        audio = tts.synthesize("你好，世界。Hello!", voice=voice, options=options)
        audio.save(args.out_dir / "hello.wav")
        print(f"hello.wav: {audio.duration:.2f} s")

        # The same voice, happier: emotion weights (or Emotion(audio=clip) / Emotion(text="...")).
        happy = Emotion(vector={"happy": 0.6, "surprised": 0.2})
        tts.synthesize("What a lovely day!", voice=voice, emotion=happy, options=options).save(
            args.out_dir / "happy.flac"
        )

        # A long text, streamed: each segment is written as soon as it is rendered.
        article = "A longer text is cut into segments. Each one is spoken in turn. 这是第二段。这是最后一句。"
        segment_options = options.replace(max_text_tokens_per_segment=16)
        started = time.perf_counter()
        path = args.out_dir / "stream.wav"
        with sf.SoundFile(path, "w", samplerate=tts.sample_rate, channels=1, subtype="PCM_16") as out:
            for chunk in tts.stream(article, voice=voice, options=segment_options):
                out.write(chunk.samples)  # silence between segments comes as chunks of its own
                elapsed = time.perf_counter() - started
                print(f"  +{chunk.duration:.2f} s (segment {chunk.segment}) after {elapsed:.1f} s")

        # Many texts in one voice: their segments are decoded and rendered together.
        texts = ["Good morning.", "早上好。"]
        for index, spoken in enumerate(tts.synthesize_batch(texts, voice=voice, options=options)):
            spoken.save(args.out_dir / f"batch-{index}.wav")
    print(f"wrote the audio to {args.out_dir}")


if __name__ == "__main__":
    main()
