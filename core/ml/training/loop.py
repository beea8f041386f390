"""train_model: one run from labelled items to a best checkpoint and its metrics."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from core.ml.augment import preset as augment_preset
from core.ml.checkpoint import CheckpointMeta, read_checkpoint, save_checkpoint
from core.ml.dataset import Normalisation, ResizedCache, SegmentationDataset, TrainItem
from core.ml.device import autocast_dtype
from core.ml.losses import create_loss
from core.ml.models import ModelSpec, create_model, create_model_from_spec
from core.ml.progress import NullProgress, ProgressCallback
from core.ml.training.config import TrainConfig, TrainingCancelled, TrainResult
from core.ml.training.distributed import DistContext, setup_distributed
from core.ml.training.schedule import warmup_cosine
from core.ml.training.validate import summarise_validation, validate

BEST_CHECKPOINT = "best.pt"


def _worker_init(_: int) -> None:
    # Each DataLoader worker is one process; letting OpenCV/torch spawn threads in every one
    # of them oversubscribes the CPU.
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _build_model(config: TrainConfig) -> tuple[nn.Module, ModelSpec, Normalisation]:
    spec = ModelSpec(config.arch, config.encoder, 1, 1, config.decoder_channels)
    if config.init_checkpoint is None:
        model = create_model(
            config.arch, config.encoder, 1, 1, config.encoder_weights, config.decoder_channels
        )
        return model, spec, Normalisation()
    state, meta = read_checkpoint(config.init_checkpoint)
    if (meta.spec.arch, meta.spec.encoder) != (config.arch, config.encoder):
        raise ValueError(
            f"Checkpoint {config.init_checkpoint} is a {meta.spec.arch}/{meta.spec.encoder} "
            f"model; set arch={meta.spec.arch!r}, encoder={meta.spec.encoder!r} to fine-tune it."
        )
    if config.decoder_channels not in (None, meta.spec.decoder_channels):
        raise ValueError(
            f"Checkpoint {config.init_checkpoint} has decoder widths "
            f"{list(meta.spec.decoder_channels or (256, 128, 64, 32, 16))}; leave "
            "decoder_channels out to fine-tune it."
        )
    model = create_model_from_spec(meta.spec)
    model.load_state_dict(state)
    return model, meta.spec, meta.normalisation


def _check_items(train_items: Sequence[TrainItem], val_items: Sequence[TrainItem]) -> None:
    if not train_items:
        raise ValueError("No training images: label some images first.")
    if not val_items:
        raise ValueError("No validation images: label images of more patients.")
    shared = {it.image_id for it in train_items} & {it.image_id for it in val_items}
    if shared:
        raise ValueError(f"Images in both training and validation: {sorted(shared)[:10]}.")


def _describe(device: torch.device, world_size: int) -> str:
    name = "cpu" if device.type == "cpu" else f"cuda ({torch.cuda.get_device_name(device)})"
    return name if world_size == 1 else f"{name} x{world_size} processes"


def _loaders(
    config: TrainConfig,
    train_items: Sequence[TrainItem],
    val_items: Sequence[TrainItem],
    ctx: DistContext,
    progress: ProgressCallback,
    cache_dir: Path | None,
) -> tuple[SegmentationDataset, DataLoader, DataLoader, DistributedSampler | None]:
    val_shard = list(val_items)[ctx.rank :: ctx.world_size]  # unequal shards are fine: gathered
    cache = ResizedCache(config.size, cache_dir)
    started = time.perf_counter()
    cache.warm(list(train_items) + val_shard)
    progress.on_log(
        f"Prepared {len(cache)} images at {config.size} px in "
        f"{time.perf_counter() - started:.1f} s ({cache.decoded} decoded, the rest cached)"
    )
    train_ds = SegmentationDataset(
        train_items,
        config.size,
        config.augment,
        cache,
        config.seed,
        augment_preset(config.augment_preset),
    )
    val_ds = SegmentationDataset(val_shard, config.size, False, cache)
    per_rank = math.ceil(len(train_ds) / ctx.world_size)
    if per_rank < 2:
        raise ValueError("Need at least 2 training images per process (batch norm).")
    if ctx.distributed:
        sampler = DistributedSampler(train_ds, ctx.world_size, ctx.rank, True, config.seed)
    else:
        sampler = RandomSampler(train_ds, generator=torch.Generator().manual_seed(config.seed))
    cuda = ctx.device.type == "cuda"
    workers = config.num_workers
    if workers is None:
        workers = min(4, max((os.cpu_count() or 1) // ctx.world_size - 1, 0)) if cuda else 0
    common = {
        "num_workers": workers,
        "pin_memory": cuda,
        "worker_init_fn": _worker_init if workers else None,
    }
    # A last batch of one image breaks batch norm (and DeepLabV3's pooled ASPP branch).
    drop_last = per_rank > config.batch_size and per_rank % config.batch_size == 1
    train_loader = DataLoader(
        train_ds, config.batch_size, sampler=sampler, drop_last=drop_last, **common
    )
    val_loader = DataLoader(val_ds, config.batch_size, shuffle=False, **common)
    return train_ds, train_loader, val_loader, sampler if ctx.distributed else None


def train_model(
    config: TrainConfig,
    train_items: Sequence[TrainItem],
    val_items: Sequence[TrainItem],
    out_dir: str | Path,
    progress: ProgressCallback | None = None,
    cache_dir: str | Path | None = None,
) -> TrainResult:
    """Train, validate each epoch, keep the best-Dice checkpoint as out_dir/best.pt.

    cache_dir: where resized images of items with a cache_key persist between runs.

    Under torchrun every process calls this with the same arguments; only rank 0 reports
    progress and writes files. Raises TrainingCancelled when progress.should_stop() says so
    (checked before every step), ValueError for unusable input.
    """
    start = time.perf_counter()
    _check_items(train_items, val_items)
    ctx = setup_distributed(config.device)
    try:
        cache = Path(cache_dir) if cache_dir is not None else None
        return _train(config, train_items, val_items, Path(out_dir), progress, ctx, start, cache)
    finally:
        ctx.close()


def _train(
    config: TrainConfig,
    train_items: Sequence[TrainItem],
    val_items: Sequence[TrainItem],
    out_dir: Path,
    caller_progress: ProgressCallback | None,
    ctx: DistContext,
    start: float,
    cache_dir: Path | None,
) -> TrainResult:
    caller_progress = caller_progress or NullProgress()
    progress = caller_progress if ctx.is_main else NullProgress()
    device, cuda = ctx.device, ctx.device.type == "cuda"
    torch.manual_seed(config.seed)

    def stop_requested() -> bool:
        return ctx.any(caller_progress.should_stop())

    model, spec, normalisation = _build_model(config)
    model.to(device)
    # Channels-last pays on CPU too: oneDNN's convolutions take NHWC without reordering
    # (U-Net/ResNet-18 trains 1.2-1.4x faster on 2 cores, bench/bench_train.py --throughput).
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    net = (
        DistributedDataParallel(model, device_ids=[device] if cuda else None)
        if ctx.distributed
        else model
    )

    train_ds, train_loader, val_loader, dist_sampler = _loaders(
        config, train_items, val_items, ctx, progress, cache_dir
    )
    steps = len(train_loader)
    optimizer_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = warmup_cosine(
        optimizer, config.warmup_epochs * steps, config.epochs * steps, config.min_lr_ratio
    )
    amp_dtype = autocast_dtype(device, config.amp)
    precision = str(amp_dtype).removeprefix("torch.") if amp_dtype is not None else "float32"
    # bf16 has float32's range: only float16 needs loss scaling.
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    loss_fn = create_loss(config.loss).to(device)

    out_dir.mkdir(parents=True, exist_ok=True)
    best_path = out_dir / BEST_CHECKPOINT
    saved: Path | None = None
    history: list[dict[str, float]] = []
    best_dice, best_epoch, best_metrics, since_best = -1.0, 0, {}, 0
    train_time, train_images, stopped_early = 0.0, 0, False
    progress.on_log(
        f"Training {spec.arch}/{spec.encoder} on {_describe(device, ctx.world_size)} "
        f"in {precision}: "
        f"{len(train_items)} training, {len(val_items)} validation images"
    )

    def validation_metrics(loss_sum: float, seen: int) -> tuple[dict[str, float], float]:
        """(validation metrics, mean training loss of the epoch) over every process."""
        if ctx.distributed:  # validate every shard with rank 0's batch-norm statistics
            for buffer in model.buffers():
                torch.distributed.broadcast(buffer, 0)
        records, val_loss_sum, n_val = validate(
            model, val_loader, loss_fn, device, normalisation, config.threshold, amp_dtype
        )
        gathered = ctx.gather((records, val_loss_sum, n_val, loss_sum, seen))
        metrics = summarise_validation(
            [r for g in gathered for r in g[0]],
            sum(g[1] for g in gathered),
            sum(g[2] for g in gathered),
            config.threshold,
        )
        train_loss = sum(g[3] for g in gathered) / max(sum(g[4] for g in gathered), 1)
        return metrics, train_loss

    initial_metrics = None
    if config.init_checkpoint is not None:
        # The starting model on the same validation images: what the fine-tune has to beat.
        initial_metrics, _ = validation_metrics(0.0, 0)
        progress.on_log(f"Before fine-tuning: validation Dice {initial_metrics['dice']:.4f}")

    for epoch in range(1, config.epochs + 1):
        progress.on_epoch_start(epoch, config.epochs)
        epoch_start = time.perf_counter()
        train_ds.set_epoch(epoch)
        if dist_sampler is not None:
            dist_sampler.set_epoch(epoch)
        net.train()
        loss_sum, seen = 0.0, 0
        for step, (image, mask) in enumerate(train_loader, 1):
            if stop_requested():
                ctx.barrier()
                raise TrainingCancelled(epoch, saved)
            image = image.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            mask = mask.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = net(normalisation.apply(image))
            loss = loss_fn(logits, mask)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"Loss became {value} at epoch {epoch}, step {step}; lower the learning rate."
                )
            loss_sum += value * len(image)
            seen += len(image)
            progress.on_step(epoch, step, steps, value)
        train_time += time.perf_counter() - epoch_start
        train_images += seen * ctx.world_size

        metrics, train_loss = validation_metrics(loss_sum, seen)
        entry = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": metrics["val_loss"],
            "val_dice": metrics["dice"],
            "val_iou": metrics["iou"],
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_s": time.perf_counter() - epoch_start,
        }
        history.append(entry)

        if metrics["dice"] > best_dice:
            best_dice, best_epoch, best_metrics, since_best = metrics["dice"], epoch, metrics, 0
            if ctx.is_main:
                meta = CheckpointMeta(
                    spec, config.size, normalisation, config.to_dict(), epoch, metrics
                )
                saved = save_checkpoint(best_path, model, meta)
            else:
                saved = best_path
        else:
            since_best += 1
        progress.on_epoch_end(epoch, entry)
        patience = config.early_stopping_patience
        if patience is not None and since_best >= patience and epoch < config.epochs:
            progress.on_log(f"Early stop: no better validation Dice for {patience} epochs")
            stopped_early = True
            break

    ctx.barrier()  # the other ranks return only once rank 0's checkpoint is on disk
    return TrainResult(
        best_checkpoint=best_path,
        best_epoch=best_epoch,
        history=history,
        val_metrics=best_metrics,
        device=_describe(device, ctx.world_size),
        duration_s=time.perf_counter() - start,
        images_per_s=train_images / train_time if train_time > 0 else 0.0,
        world_size=ctx.world_size,
        stopped_early=stopped_early,
        n_train=len(train_items),
        n_val=len(val_items),
        initial_metrics=initial_metrics,
        precision=precision,
    )
