"""Conditional flow matching: the Euler solver that turns noise into a mel spectrogram.

The official ``CFM.inference`` (quirk Q9 of the goldens): ``x0 ~ N(0, 1)`` over all frames, time grid
``linspace(0, 1, steps + 1)``; the prompt frames of ``x`` are zeroed before the loop and after every
step while the prompt mel is given to the estimator in those frames; each step evaluates the
estimator on a doubled batch ``[conditional; unconditional]`` (the unconditional rows have prompt mel,
style and ``mu`` zeroed) and moves ``x += dt * ((1 + w) v_cond - w v_uncond)``. The time fed to the
estimator is accumulated as ``t += dt`` in float32, like the official loop.

Batching: every sequence has its own total length and prompt length; the estimator masks per
sequence, so a sequence's result does not depend on the others in the batch (given the same noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from indextts2.errors import InvalidInput
from indextts2.model.dit import DiT

__all__ = ["DEFAULT_CFG_RATE", "DEFAULT_STEPS", "FlowMatching", "FlowOptions", "FlowSolve"]

DEFAULT_STEPS = 25  # infer_v2.py: diffusion_steps = 25
DEFAULT_CFG_RATE = 0.7  # infer_v2.py: inference_cfg_rate = 0.7


@dataclass(frozen=True)
class FlowOptions:
    """Settings of the flow-matching solver.

    Attributes:
        steps: Euler steps (the official value is 25; fewer is faster and coarser).
        cfg_rate: classifier-free guidance weight ``w``; 0 turns guidance off (one estimator pass).
    """

    steps: int = DEFAULT_STEPS
    cfg_rate: float = DEFAULT_CFG_RATE

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise InvalidInput(f"steps must be a positive integer, got {self.steps!r}")
        if (
            not isinstance(self.cfg_rate, (int, float))
            or not math.isfinite(self.cfg_rate)
            or self.cfg_rate < 0
        ):
            raise InvalidInput(f"cfg_rate must be a finite number >= 0, got {self.cfg_rate!r}")


def _frame_mask(lengths: torch.Tensor, time: int) -> torch.Tensor:
    return torch.arange(time, device=lengths.device)[None, :] < lengths[:, None]  # (B, T)


class FlowMatching(nn.Module):
    """The s2mel ``cfm`` module: a DiT estimator and the Euler solver around it."""

    def __init__(self, estimator: DiT) -> None:
        super().__init__()
        self.estimator = estimator

    @property
    def mel_bins(self) -> int:
        return self.estimator.config.mel_bins

    def _check(
        self,
        mu: torch.Tensor,
        lengths: torch.Tensor,
        prompt_mel: torch.Tensor,
        prompt_lengths: torch.Tensor,
        style: torch.Tensor,
        noise: torch.Tensor | None,
    ) -> None:
        if mu.dim() != 3 or mu.shape[2] != self.estimator.config.content_dim:
            raise InvalidInput(
                f"mu must be (batch, frames, {self.estimator.config.content_dim}), got {tuple(mu.shape)}"
            )
        batch, time = mu.shape[:2]
        if prompt_mel.dim() != 3 or prompt_mel.shape[:2] != (batch, self.mel_bins):
            raise InvalidInput(
                f"prompt_mel must be ({batch}, {self.mel_bins}, frames), got {tuple(prompt_mel.shape)}"
            )
        if style.shape != (batch, self.estimator.config.style_dim):
            raise InvalidInput(
                f"style must be ({batch}, {self.estimator.config.style_dim}), got {tuple(style.shape)}"
            )
        for name, value in (("lengths", lengths), ("prompt_lengths", prompt_lengths)):
            if value.shape != (batch,):
                raise InvalidInput(f"{name} must have shape ({batch},), got {tuple(value.shape)}")
        if bool((lengths > time).any()) or bool((prompt_lengths > prompt_mel.shape[2]).any()):
            raise InvalidInput("a length exceeds the frames of mu or prompt_mel")
        if bool((prompt_lengths < 0).any()) or bool((prompt_lengths >= lengths).any()):
            raise InvalidInput("every sequence needs 0 <= prompt length < total length")
        if noise is not None and tuple(noise.shape) != (batch, self.mel_bins, time):
            raise InvalidInput(
                f"noise must be (batch, mel_bins, frames) = {(batch, self.mel_bins, time)}, "
                f"got {tuple(noise.shape)}"
            )

    @torch.inference_mode()
    def solve(
        self,
        mu: torch.Tensor,
        *,
        lengths: torch.Tensor,
        prompt_mel: torch.Tensor,
        prompt_lengths: torch.Tensor,
        style: torch.Tensor,
        options: FlowOptions | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Integrate the flow from noise to mel.

        Args:
            mu: ``(B, T, content_dim)`` condition: prompt condition then target condition, per sequence.
            lengths: ``(B,)`` total frames (prompt + target) per sequence, at most ``T``.
            prompt_mel: ``(B, mel_bins, P)`` reference mel; sequence ``b`` uses its first
                ``prompt_lengths[b]`` frames.
            prompt_lengths: ``(B,)`` prompt frames per sequence.
            style: ``(B, style_dim)`` speaker style.
            options: steps and guidance (default: the official 25 steps, CFG 0.7).
            noise: ``(B, mel_bins, T)`` initial sample; drawn from N(0, 1) when omitted. Passing the
                official run's noise reproduces its output.
            generator: source of the noise when ``noise`` is omitted.

        Returns:
            ``(B, mel_bins, T)`` float32: the generated mel in frames ``[prompt_lengths[b], lengths[b])``,
            zero in the prompt frames and past the end.
        """
        return self.begin(
            mu,
            lengths=lengths,
            prompt_mel=prompt_mel,
            prompt_lengths=prompt_lengths,
            style=style,
            options=options,
            noise=noise,
            generator=generator,
        ).run()

    @torch.inference_mode()
    def begin(
        self,
        mu: torch.Tensor,
        *,
        lengths: torch.Tensor,
        prompt_mel: torch.Tensor,
        prompt_lengths: torch.Tensor,
        style: torch.Tensor,
        options: FlowOptions | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> FlowSolve:
        """A :meth:`solve` that advances one Euler step per :meth:`FlowSolve.step` call.

        A scheduler interleaves these steps with other work (the GPT's decode steps) instead of
        holding the device for a whole solve. The arguments are :meth:`solve`'s.
        """
        options = options or FlowOptions()
        lengths = lengths.to(device=mu.device, dtype=torch.int64)
        prompt_lengths = prompt_lengths.to(device=mu.device, dtype=torch.int64)
        self._check(mu, lengths, prompt_mel, prompt_lengths, style, noise)
        batch, time = mu.shape[:2]
        dtype = self.estimator.conv2.weight.dtype

        in_prompt = _frame_mask(prompt_lengths, time)[:, None, :]  # (B, 1, T)
        valid = _frame_mask(lengths, time)[:, None, :]
        prompt_x = torch.zeros(batch, self.mel_bins, time, device=mu.device, dtype=torch.float32)
        copied = min(prompt_mel.shape[2], time)
        prompt_x[:, :, :copied] = prompt_mel[:, :, :copied].float()
        prompt_x = prompt_x * in_prompt

        if noise is None:
            noise = torch.randn(
                (batch, self.mel_bins, time), generator=generator, device=mu.device, dtype=torch.float32
            )
        x = noise.float().masked_fill(in_prompt, 0.0)

        if options.cfg_rate > 0:
            # The unconditional half sees no prompt, style or content: zeros, as the official solver.
            est_prompt = torch.cat([prompt_x, torch.zeros_like(prompt_x)]).to(dtype)
            est_style = torch.cat([style, torch.zeros_like(style)]).to(dtype)
            est_mu = torch.cat([mu, torch.zeros_like(mu)]).to(dtype)
            est_lengths = torch.cat([lengths, lengths])
        else:
            est_prompt, est_style, est_mu, est_lengths = (
                prompt_x.to(dtype),
                style.to(dtype),
                mu.to(dtype),
                lengths,
            )
        grid = torch.linspace(0, 1, options.steps + 1, device=mu.device, dtype=torch.float32)
        return FlowSolve(
            estimator=self.estimator,
            options=options,
            x=x,
            t=grid[0],
            grid=grid,
            in_prompt=in_prompt,
            valid=valid,
            prompt=est_prompt,
            style=est_style,
            mu=est_mu,
            lengths=est_lengths,
            padded=bool((lengths != time).any()),
        )


@dataclass(eq=False)
class FlowSolve:
    """A flow-matching solve in progress (:meth:`FlowMatching.begin`): call :meth:`step` until done.

    The estimator's inputs are prepared once; each step is one estimator call on the doubled
    ``[conditional; unconditional]`` batch when guidance is on.
    """

    estimator: DiT
    options: FlowOptions
    x: torch.Tensor  # (B, mel_bins, T) float32, the current sample
    t: torch.Tensor  # () float32, accumulated as the official loop does
    grid: torch.Tensor  # (steps + 1,)
    in_prompt: torch.Tensor  # (B, 1, T)
    valid: torch.Tensor  # (B, 1, T)
    prompt: torch.Tensor
    style: torch.Tensor
    mu: torch.Tensor
    lengths: torch.Tensor
    padded: bool = True  # some sequence is shorter than the batch (read once, not every step)
    steps_done: int = 0

    @property
    def done(self) -> bool:
        return self.steps_done >= self.options.steps

    @property
    def steps_left(self) -> int:
        return self.options.steps - self.steps_done

    def run(self) -> torch.Tensor:
        """Every remaining step, then :meth:`result`."""
        while not self.done:
            self.step()
        return self.result()

    @property
    def batch(self) -> int:
        return int(self.x.shape[0])

    @torch.inference_mode()
    def step(self) -> None:
        """One Euler step."""
        if self.done:
            raise RuntimeError("the flow solve has already taken all its steps")
        step = self.steps_done + 1
        dt = self.grid[step] - self.grid[step - 1]
        x, dtype, cfg_rate = self.x, self.prompt.dtype, self.options.cfg_rate
        guided = cfg_rate > 0  # the conditional and unconditional halves in one batch
        rows = torch.cat([x, x]) if guided else x
        velocity = self.estimator(
            rows.to(dtype),
            self.prompt,
            self.t.expand(rows.shape[0]),
            self.style,
            self.mu,
            self.lengths,
            padded=self.padded,
        ).float()
        if guided:
            conditional, unconditional = velocity.chunk(2, dim=0)
            velocity = (1.0 + cfg_rate) * conditional - cfg_rate * unconditional
        x = x + dt * velocity
        self.t = self.t + dt
        self.x = x.masked_fill(self.in_prompt, 0.0)
        self.steps_done = step

    def result(self) -> torch.Tensor:
        """``(B, mel_bins, T)``: the generated mel (see :meth:`FlowMatching.solve`)."""
        if not self.done:
            raise RuntimeError(f"the flow solve has taken {self.steps_done} of {self.options.steps} steps")
        return self.x * self.valid
