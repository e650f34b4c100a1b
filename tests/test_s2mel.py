"""s2mel (gpt_layer, length regulator, DiT flow matching): official parity, batching, loading, options."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from indextts2.errors import CheckpointError, ConfigError, InvalidInput
from indextts2.model.config import load_preset
from indextts2.model.dit import DiTConfig
from indextts2.model.flow import FlowOptions
from indextts2.model.s2mel import S2Mel, concat_ragged, cut_prompt, mel_frames_for_codes
from indextts2.model.wavenet import reflect_indices
from indextts2.parity import run_parity

RUNS = ("t0", "t1", "t2")


@pytest.fixture(scope="module")
def s2mel(goldens: Path) -> S2Mel:
    return S2Mel.from_checkpoint(load_preset("tiny"), goldens / "checkpoint" / "s2mel.pth")


@pytest.fixture(scope="module")
def inputs(golden_set) -> dict[str, dict[str, torch.Tensor]]:
    """Per run: latent, semantic embedding, the voice's prompt condition / mel / style and the noise."""
    s2mel_t, gpt, voice = golden_set.tensors("s2mel"), golden_set.tensors("gpt"), golden_set.tensors("voice")
    return {
        run: {
            "latent": gpt[f"{run}.beams3.latent"],
            "embedding": s2mel_t[f"{run}.vq_emb"].transpose(1, 2),
            "prompt_condition": voice["ref.prompt_condition"],
            "prompt_mel": s2mel_t[f"{run}.cfm.prompt"],
            "style": s2mel_t[f"{run}.cfm.style"],
            "noise": s2mel_t[f"{run}.cfm.noise"],
            "mel": s2mel_t[f"{run}.mel"],
        }
        for run in RUNS
    }


@pytest.mark.goldens
def test_parity_stage_matches_the_official_mel_and_intermediates(goldens: Path) -> None:
    report = run_parity(goldens, ["s2mel"])
    items = {check.item for check in report.checks}
    assert {f"{run}.{name}" for run in RUNS for name in ("mel", "cfm.out", "cfm.mu", "cond")} <= items
    assert {"t0.dit.step0.out", "t0.dit.step24.out"} <= items
    assert report.passed, [c for c in report.failures()]
    worst = max(c.max_abs_error or 0.0 for c in report.checks)
    assert worst <= 1e-4


@pytest.mark.goldens
@torch.inference_mode()
def test_generate_reproduces_the_official_mel(s2mel: S2Mel, inputs) -> None:
    run = inputs["t1"]
    out = s2mel.generate(
        run["latent"],
        run["embedding"],
        prompt_condition=run["prompt_condition"],
        prompt_mel=run["prompt_mel"],
        style=run["style"],
        noise=run["noise"],
    )
    assert out.lengths.tolist() == [run["mel"].shape[2]]
    torch.testing.assert_close(out.mel, run["mel"], atol=1e-4, rtol=0)


@pytest.mark.goldens
@torch.inference_mode()
def test_a_batch_of_three_lengths_equals_each_alone(s2mel: S2Mel, inputs) -> None:
    # Different code counts, prompt lengths and styles per sequence; few steps keep it quick, and every
    # step goes through the same masked estimator.
    options = FlowOptions(steps=3)
    prompt_lengths = [357, 250, 120]
    generator = torch.Generator().manual_seed(5)
    items = []
    for (name, run), prompt_len, style_scale in zip(
        inputs.items(), prompt_lengths, (1.0, -0.5, 2.0), strict=True
    ):
        codes = run["latent"].shape[1]
        total = prompt_len + int(mel_frames_for_codes(torch.tensor([codes])))
        items.append(
            {
                "name": name,
                "latent": run["latent"][0],
                "embedding": run["embedding"][0],
                "prompt_condition": run["prompt_condition"][0, :prompt_len],
                "prompt_mel": run["prompt_mel"][0, :, :prompt_len].T,
                "style": run["style"][0] * style_scale,
                "noise": torch.randn(total, 80, generator=generator),
            }
        )

    def stack(key: str) -> torch.Tensor:
        return pad_sequence([item[key] for item in items], batch_first=True)

    batched = s2mel.generate(
        stack("latent"),
        stack("embedding"),
        prompt_condition=stack("prompt_condition"),
        prompt_mel=stack("prompt_mel").transpose(1, 2),
        style=torch.stack([item["style"] for item in items]),
        code_lengths=torch.tensor([len(item["latent"]) for item in items]),
        prompt_lengths=torch.tensor(prompt_lengths),
        noise=stack("noise").transpose(1, 2),
        options=options,
    )
    for row, item in enumerate(items):
        alone = s2mel.generate(
            item["latent"][None],
            item["embedding"][None],
            prompt_condition=item["prompt_condition"][None],
            prompt_mel=item["prompt_mel"].T[None],
            style=item["style"][None],
            noise=item["noise"].T[None],
            options=options,
        )
        frames = int(alone.lengths[0])
        assert int(batched.lengths[row]) == frames, item["name"]
        torch.testing.assert_close(batched.mel[row, :, :frames], alone.mel[0], atol=1e-5, rtol=0)
        assert torch.count_nonzero(batched.mel[row, :, frames:]) == 0


def test_target_length_is_the_official_expression() -> None:
    codes = torch.arange(1, 20_001)
    official = (codes * 1.72).long()  # infer_v2.py: (code_lens * 1.72).long()
    assert torch.equal(mel_frames_for_codes(codes), official)
    assert mel_frames_for_codes(torch.tensor([9, 27, 6])).tolist() == [15, 46, 10]  # the golden runs


def test_ragged_concat_and_prompt_cut_are_inverse() -> None:
    first = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1) + 1
    second = -torch.arange(2 * 3 * 1, dtype=torch.float32).view(2, 3, 1) - 1
    joined, lengths = concat_ragged(first, torch.tensor([4, 2]), second, torch.tensor([1, 3]))
    assert lengths.tolist() == [5, 5]
    assert joined[:, :, 0].tolist() == [[1, 2, 3, 4, -1], [5, 6, -4, -5, -6]]
    tail, kept = cut_prompt(joined.transpose(1, 2), torch.tensor([4, 2]), lengths)
    assert kept.tolist() == [1, 3]
    assert tail[:, 0].tolist() == [[-1, 0, 0], [-4, -5, -6]]


@pytest.mark.parametrize("length", [1, 2, 3, 4, 9])
@pytest.mark.parametrize(("left", "right"), [(2, 2), (4, 4), (1, 0)])
def test_reflect_indices_follow_the_official_reflect_padding(length: int, left: int, right: int) -> None:
    x = torch.arange(1, length + 1, dtype=torch.float32)[None, None]
    # The official pad1d: inputs no longer than the padding get zeros appended before reflecting.
    extra = max(left, right) - length + 1 if length <= max(left, right) else 0
    expected = F.pad(F.pad(x, (0, extra)), (left, right), mode="reflect")[..., : length + left + right]
    index = reflect_indices(torch.tensor([length]), left=left, right=right, max_length=length)
    ours = torch.where(index >= 0, x[0, 0][index.clamp(min=0)], torch.zeros(()))
    assert torch.equal(ours, expected[0])


@torch.inference_mode()
def test_explicit_noise_and_seeded_generator_are_reproducible() -> None:
    model = S2Mel.dummy(load_preset("tiny"))
    torch.manual_seed(0)
    args = (torch.randn(1, 4, 48), torch.randn(1, 4, 64))
    kwargs = {"prompt_condition": torch.randn(1, 6, 40), "prompt_mel": torch.randn(1, 80, 6)}
    style = torch.randn(1, 192)
    options = FlowOptions(steps=2)

    def run(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return model.generate(*args, **kwargs, style=style, options=options, generator=generator).mel

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
    noise = torch.randn(1, 80, 6 + 6)
    first = model.generate(*args, **kwargs, style=style, options=options, noise=noise).mel
    assert torch.equal(first, model.generate(*args, **kwargs, style=style, options=options, noise=noise).mel)
    assert first.shape == (1, 80, 6)  # int(4 * 1.72) frames, the prompt cut off


@torch.inference_mode()
def test_guidance_doubles_the_batch_with_an_unconditional_half_and_zero_turns_it_off() -> None:
    model = S2Mel.dummy(load_preset("tiny"))
    seen: list[tuple[torch.Tensor, ...]] = []
    handle = model.cfm.estimator.register_forward_pre_hook(lambda _m, args: seen.append(args))
    try:
        kwargs = {
            "prompt_condition": torch.randn(2, 5, 40),
            "prompt_mel": torch.randn(2, 80, 5),
            "style": torch.randn(2, 192),
        }
        model.generate(torch.randn(2, 3, 48), torch.randn(2, 3, 64), **kwargs, options=FlowOptions(steps=2))
        assert len(seen) == 2
        x, prompt_x, t, style, mu, _ = seen[0]
        assert x.shape[0] == 2 * 2
        assert torch.equal(x[:2], x[2:])
        assert torch.count_nonzero(prompt_x[2:]) == 0
        assert torch.count_nonzero(style[2:]) == 0
        assert torch.count_nonzero(mu[2:]) == 0
        assert torch.count_nonzero(mu[:2]) > 0
        assert t.tolist() == [0.0] * 4
        assert seen[1][2].tolist() == [0.5] * 4
        seen.clear()
        model.generate(
            torch.randn(2, 3, 48), torch.randn(2, 3, 64), **kwargs, options=FlowOptions(steps=1, cfg_rate=0)
        )
        assert len(seen) == 1
        assert seen[0][0].shape[0] == 2
    finally:
        handle.remove()


@pytest.mark.parametrize(
    ("field", "value"),
    [("steps", 0), ("steps", 2.5), ("steps", True), ("cfg_rate", -0.1), ("cfg_rate", math.nan)],
)
def test_flow_options_refuse_bad_values(field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=field):
        FlowOptions(**{field: value})  # type: ignore[arg-type]


@torch.inference_mode()
def test_inconsistent_inputs_are_invalid_input() -> None:
    model = S2Mel.dummy(load_preset("tiny"))
    latent, embedding = torch.randn(1, 4, 48), torch.randn(1, 4, 64)
    good = {
        "prompt_condition": torch.randn(1, 6, 40),
        "prompt_mel": torch.randn(1, 80, 6),
        "style": torch.randn(1, 192),
    }
    with pytest.raises(InvalidInput, match="codes"):
        model.generate(latent, embedding, **good, code_lengths=torch.tensor([0]))
    with pytest.raises(InvalidInput, match="semantic_embedding"):
        model.generate(latent, torch.randn(1, 5, 64), **good)
    with pytest.raises(InvalidInput, match="style"):
        model.generate(latent, embedding, **{**good, "style": torch.randn(1, 7)})
    with pytest.raises(InvalidInput, match="noise"):
        model.generate(latent, embedding, **good, noise=torch.randn(1, 80, 3))
    with pytest.raises(InvalidInput, match="prompt_condition"):
        model.generate(latent, embedding, **good, prompt_lengths=torch.tensor([9]))


def _save_s2mel(path: Path, net: dict) -> Path:
    torch.save({"net": net}, path)
    return path


@pytest.fixture
def official_net(goldens: Path) -> dict:
    return torch.load(goldens / "checkpoint" / "s2mel.pth", map_location="cpu", weights_only=True)["net"]


@pytest.mark.goldens
def test_loading_is_strict_and_names_the_key(official_net: dict, tmp_path: Path) -> None:
    config = load_preset("tiny")
    cfm = official_net["cfm"]

    bad_shape = dict(cfm, **{"estimator.conv1.weight": torch.zeros(3, 3)})
    with pytest.raises(CheckpointError, match=r"estimator\.conv1\.weight"):
        S2Mel.from_checkpoint(config, _save_s2mel(tmp_path / "a.pth", dict(official_net, cfm=bad_shape)))

    extra = dict(cfm, **{"estimator.surprise": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"unexpected key.*estimator\.surprise"):
        S2Mel.from_checkpoint(config, _save_s2mel(tmp_path / "b.pth", dict(official_net, cfm=extra)))

    half_norm = {k: v for k, v in cfm.items() if k != "estimator.final_layer.linear.weight_v"}
    with pytest.raises(CheckpointError, match=r"final_layer\.linear\.weight_g"):
        S2Mel.from_checkpoint(config, _save_s2mel(tmp_path / "c.pth", dict(official_net, cfm=half_norm)))

    other_freqs = dict(cfm, **{"estimator.t_embedder.freqs": cfm["estimator.t_embedder.freqs"] * 2})
    with pytest.raises(CheckpointError, match=r"t_embedder\.freqs"):
        S2Mel.from_checkpoint(config, _save_s2mel(tmp_path / "d.pth", dict(official_net, cfm=other_freqs)))

    missing = {
        k: v for k, v in cfm.items() if not k.startswith("estimator.transformer.layers.2.skip_in_linear")
    }
    with pytest.raises(CheckpointError, match=r"missing key.*layers\.2\.skip_in_linear"):
        S2Mel.from_checkpoint(config, _save_s2mel(tmp_path / "e.pth", dict(official_net, cfm=missing)))


@pytest.mark.goldens
@torch.inference_mode()
def test_data_parallel_prefixes_load_to_the_same_model(
    official_net: dict, s2mel: S2Mel, tmp_path: Path
) -> None:
    prefixed = {part: {f"module.{k}": v for k, v in sd.items()} for part, sd in official_net.items()}
    model = S2Mel.from_checkpoint(load_preset("tiny"), _save_s2mel(tmp_path / "p.pth", prefixed))
    for (name, ours), theirs in zip(model.state_dict().items(), s2mel.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name


def test_unsupported_dit_variants_are_refused() -> None:
    section = load_preset("tiny").section("s2mel")
    variant = dict(section, DiT=dict(section["DiT"], time_as_token=True, final_layer_type="mlp"))
    with pytest.raises(ConfigError, match=r"time_as_token.*final_layer_type|final_layer_type.*time_as_token"):
        DiTConfig.from_config(variant)


@torch.inference_mode()
def test_dummy_full_has_the_release_sizes_and_runs_a_step() -> None:
    config = load_preset("full")
    model = S2Mel.dummy(config)
    dit = model.cfm.estimator.config
    assert (dit.depth, dit.hidden_dim, dit.num_heads, dit.ffn_dim) == (13, 512, 8, 1536)
    assert model.gpt_layer[0].in_features == config.gpt_dim == 1280
    # ~104 M parameters in s2mel.pth; the ~4 M we do not build are the unused entries named in dit.py.
    parameters = sum(p.numel() for p in model.parameters())
    assert 99_000_000 < parameters < 100_000_000
    torch.manual_seed(0)
    out = model.generate(
        torch.randn(1, 5, 1280),
        torch.randn(1, 5, 1024),
        prompt_condition=torch.randn(1, 12, 512),
        prompt_mel=torch.randn(1, 80, 12),
        style=torch.randn(1, 192),
        options=FlowOptions(steps=1),
    )
    assert out.mel.shape == (1, 80, 8)
    assert torch.isfinite(out.mel).all()


@pytest.mark.goldens
@pytest.mark.parametrize(("precision", "bound"), [("bf16", 0.05), ("fp16", 0.01)])
@torch.inference_mode()
def test_reduced_precision_stays_near_float32(goldens: Path, inputs, precision: str, bound: float) -> None:
    model = S2Mel.from_checkpoint(load_preset("tiny"), goldens / "checkpoint" / "s2mel.pth")
    model.set_precision(precision)
    run = inputs["t1"]
    out = model.generate(
        run["latent"],
        run["embedding"],
        prompt_condition=run["prompt_condition"],
        prompt_mel=run["prompt_mel"],
        style=run["style"],
        noise=run["noise"],
    )
    assert out.mel.dtype == torch.float32
    error = float((out.mel - run["mel"]).abs().max())
    assert 0 < error < bound  # not silently float32, and not broken
    with pytest.raises(InvalidInput, match="precision"):
        model.set_precision("int8")
