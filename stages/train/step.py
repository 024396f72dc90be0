"""One training iteration: Gall, Dmain, Dreg (lazy), each accumulated over micro-batches (3DGP ref §5.1, §5.3).

Micro-batch ``k`` of rank ``r`` is global slot ``r * rounds + k``; every slot reseeds the global RNGs from
``(seed, stream, cur_nimg, slot, phase)`` and takes the same rows of the global real batch whatever the process
count, so 1 process x 2 rounds and 2 processes x 1 round compute the same micro-batches (issue 5 "global batch and
results independent of the number of processes"). Gradients: mean over rounds (loss / rounds), all_reduce mean over
processes, then NaN -> 0 / +-inf -> +-1e5 (ref §5.3).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from stages.common.distributed import all_reduce_mean_
from stages.common.seeding import seed_step
from stages.train import phases
from stages.train.data import slice_reals
from stages.train.divergence import StepHealth
from stages.train.loss import sanitize_grads_

PHASE_IDS = {"Gall": 1, "Dmain": 2, "Dreg": 3}


@dataclass(frozen=True)
class StepPlan:
    """How the global batch is split."""

    batch: int  # global batch
    batch_gpu: int  # micro-batch per round
    rounds: int  # accumulation rounds per process
    rank: int  # this process
    world_size: int  # processes


def plan_batch(batch: int, batch_gpu: int | None, world_size: int, rank: int, group: int) -> StepPlan:
    """Split ``batch`` over processes and rounds; raises BadOptionError when it does not divide."""
    from stages.common.errors import BadOptionError

    if batch % world_size:
        raise BadOptionError("--batch", f"{batch} is not divisible by the {world_size} processes")
    per_rank = batch // world_size
    batch_gpu = per_rank if batch_gpu is None else min(batch_gpu, per_rank)
    if per_rank % batch_gpu:
        raise BadOptionError("--batch-gpu", f"{batch_gpu} does not divide the per-process batch {per_rank}")
    if batch_gpu % group and batch_gpu > group:
        raise BadOptionError("--batch-gpu", f"{batch_gpu} must be a multiple of the minibatch-std group {group}")
    return StepPlan(batch, batch_gpu, per_rank // batch_gpu, rank, world_size)


def reduce_grads_(params: list[torch.nn.Parameter], world_size: int) -> None:
    """Average gradients over processes with one flat all_reduce (StyleGAN3 style, no DDP wrapper)."""
    if world_size <= 1 or not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])  # on the parameters' device (NCCL: CUDA)
    all_reduce_mean_(flat)
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
        offset += p.numel()


def run_phase(name: str, loss_fn, opt, plan: StepPlan, seed: int, stream: int, cur_nimg: int,
              health: StepHealth) -> None:
    """Accumulate ``loss_fn(round)`` over the rounds, reduce, sanitise, and take one optimizer step.

    ``opt`` holds every parameter of the network being trained (``stages.train.state.build_optimizers``): its list
    is what gets switched on and off, which costs a few µs against ~1 ms for walking the module tree per switch on
    the small presets (RESULTS.md, "Training step against d25bb9d")."""
    trained = [p for group in opt.param_groups for p in group["params"]]
    for p in trained:
        p.requires_grad_(True)
    opt.zero_grad(set_to_none=True)
    for k in range(plan.rounds):
        seed_step(seed, stream, cur_nimg, slot=plan.rank * plan.rounds + k, phase=PHASE_IDS[name])
        loss = loss_fn(k)
        health.check_loss(loss)
        (loss / plan.rounds).backward()
    for p in trained:
        p.requires_grad_(False)
    params = [p for p in trained if p.grad is not None]
    reduce_grads_(params, plan.world_size)
    health.add_grads(name, sanitize_grads_(params))
    opt.step()


def train_step(ctx: phases.PhaseContext, reals: dict, opts: tuple, plan: StepPlan, seed: int, stream: int,
               cur_nimg: int, batch_idx: int, health: StepHealth) -> None:
    """Gall, Dmain and (every ``r1_interval`` iterations) Dreg on this process's share of the global batch."""
    opt_G, opt_D = opts  # stages.train.state.Optimizers
    bg = plan.batch_gpu

    def part(k: int) -> dict:
        return slice_reals(reals, k * bg, (k + 1) * bg)

    run_phase("Gall", lambda k: phases.g_loss(ctx, bg), opt_G, plan, seed, stream, cur_nimg, health)
    run_phase("Dmain", lambda k: phases.d_main_loss(ctx, part(k)), opt_D, plan, seed, stream, cur_nimg,
              health)
    if ctx.r1_interval > 0 and ctx.gamma > 0 and batch_idx % ctx.r1_interval == 0:
        run_phase("Dreg", lambda k: phases.d_reg_loss(ctx, part(k)), opt_D, plan, seed, stream, cur_nimg,
                  health)
    health.end_step()
