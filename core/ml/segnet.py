"""SegNet (Badrinarayanan, Kendall & Cipolla, 2017): a VGG-16 encoder with batch norm and a
mirrored decoder that upsamples with the encoder's max-pooling indices.

segmentation-models-pytorch has no SegNet, so it is written here, in one file. The encoder is
VGG-16-bn's 13 conv layers in 5 blocks (2, 2, 3, 3, 3 convs of 3x3 + BN + ReLU, each block
followed by a 2x2 max-pool that keeps its argmax indices); each decoder block unpools with the
indices of its mirror block (to the pre-pool size, so odd sizes come back exactly) and then
convolves. No pretrained weights: the 1-channel encoder is trained from scratch.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

# Convs per block and channels per block as multiples of `width` (VGG-16: 64 .. 512).
BLOCK_CONVS: tuple[int, ...] = (2, 2, 3, 3, 3)
BLOCK_WIDTHS: tuple[int, ...] = (1, 2, 4, 8, 8)


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def conv_block(channels: list[int]) -> nn.Sequential:
    """Convs channels[0] -> channels[1] -> ... (one conv3x3 + BN + ReLU per step)."""
    return nn.Sequential(*(conv_bn_relu(a, b) for a, b in pairwise(channels)))


class SegNetEncoder(nn.Module):
    """VGG-16-bn features; forward returns the deepest map and, per block, the pooling
    indices and the pre-pool size the decoder needs."""

    def __init__(self, in_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        blocks, channels = [], in_channels
        for n_convs, mult in zip(BLOCK_CONVS, BLOCK_WIDTHS, strict=True):
            blocks.append(conv_block([channels] + [width * mult] * n_convs))
            channels = width * mult
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, return_indices=True)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Size]]:
        indices, sizes = [], []
        for block in self.blocks:
            x = block(x)
            sizes.append(x.shape)
            x, idx = self.pool(x)
            indices.append(idx)
        return x, indices, sizes


class SegNetDecoder(nn.Module):
    """The encoder mirrored: per block, unpool with the mirror block's indices, then convs
    back down to the next block's channels. The last block keeps `width` channels for the
    segmentation head (the classic net's final conv)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        blocks = []
        widths = [width * m for m in BLOCK_WIDTHS]
        for level in reversed(range(len(BLOCK_CONVS))):
            channels = widths[level]
            out = widths[level - 1] if level > 0 else width
            # Level 0 mirrors 2 encoder convs: one here, the other is the segmentation head.
            n_convs = BLOCK_CONVS[level] - (1 if level == 0 else 0)
            blocks.append(conv_block([channels] * n_convs + [out]))
        self.blocks = nn.ModuleList(blocks)
        self.unpool = nn.MaxUnpool2d(kernel_size=2, stride=2)

    def forward(
        self, x: torch.Tensor, indices: list[torch.Tensor], sizes: list[torch.Size]
    ) -> torch.Tensor:
        for block, idx, size in zip(self.blocks, reversed(indices), reversed(sizes), strict=True):
            x = self.unpool(x, idx, output_size=size[-2:])
            x = block(x)
        return x


class SegNet(nn.Module):
    """SegNet with `classes` output logits (N, classes, H, W) for (N, in_channels, H, W) input.

    width: channels of the first block (64 is VGG-16; tests build small ones). H and W need not
    be multiples of 32: unpooling restores each block's own size.
    """

    def __init__(self, in_channels: int = 1, classes: int = 1, width: int = 64) -> None:
        super().__init__()
        self.encoder = SegNetEncoder(in_channels, width)
        self.decoder = SegNetDecoder(width)
        self.segmentation_head = nn.Conv2d(width, classes, kernel_size=3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, indices, sizes = self.encoder(x)
        return self.segmentation_head(self.decoder(features, indices, sizes))
