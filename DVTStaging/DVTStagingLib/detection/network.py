"""A small 2D U-Net that maps a 2.5D slice (3 channels) to a thrombus probability map.

Small on purpose: the detector must run on a whole study in seconds on two
CPU cores.  Batch norm is folded into the convolutions' statistics at
inference, and the network is fully convolutional, so any slice size that is
a multiple of 2**(depth-1) works.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_CONFIG = {"architecture": "unet2d", "in_channels": 3, "base_channels": 16, "depth": 4}


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class ThrombusUNet(nn.Module):
    def __init__(self, in_channels: int = 3, base_channels: int = 16, depth: int = 4):
        super().__init__()
        widths = [base_channels * 2 ** d for d in range(depth)]
        self.encoders = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.encoders.append(conv_block(cin, w))
            cin = w
        self.decoders = nn.ModuleList(conv_block(widths[d + 1] + widths[d], widths[d]) for d in reversed(range(depth - 1)))
        self.head = nn.Conv2d(widths[0], 1, 1)

    @property
    def stride(self) -> int:
        return 2 ** (len(self.encoders) - 1)

    @property
    def receptive_radius(self) -> int:
        """Input pixels on each side of an output pixel that can change it: a crop with this much context
        around a region (on the pooling grid) gives that region the output of the whole slice."""
        scales = [2 ** d for d in range(len(self.encoders))]
        encoder = sum(2 * s for s in scales) + sum(scales[:-1])      # two 3x3 convs per level; 2x2 pooling
        decoder = sum(2 * s + 2 * s for s in scales[:-1])           # bilinear upsampling (a source pixel), two convs
        return encoder + decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[n, 3, H, W] -> [n, H, W] logits."""
        skips = []
        for n, encoder in enumerate(self.encoders):
            if n:
                x = F.max_pool2d(x, 2)
            x = encoder(x)
            skips.append(x)
        for decoder, skip in zip(self.decoders, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return self.head(x)[:, 0]


def build_network(config: dict) -> ThrombusUNet:
    cfg = dict(DEFAULT_CONFIG, **(config or {}))
    if cfg["architecture"] != "unet2d":
        from ..core.errors import UserError

        raise UserError(f"unknown detector architecture '{cfg['architecture']}' (this version knows unet2d)")
    return ThrombusUNet(int(cfg["in_channels"]), int(cfg["base_channels"]), int(cfg["depth"]))


def _folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding, bias=True)
    fused.weight.data = conv.weight.data * scale[:, None, None, None]
    bias = conv.bias.data if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.data = (bias - bn.running_mean) * scale + bn.bias
    return fused


@torch.no_grad()
def for_inference(network: ThrombusUNet) -> ThrombusUNet:
    """Batch norm folded into the convolutions, channels-last memory: about twice as fast on a CPU."""
    network.eval()
    for blocks in (network.encoders, network.decoders):
        for n, block in enumerate(blocks):
            layers = list(block)
            fused = []
            for i, layer in enumerate(layers):
                if isinstance(layer, nn.Conv2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
                    fused.append(_folded_conv(layer, layers[i + 1]))
                elif not isinstance(layer, nn.BatchNorm2d):
                    fused.append(layer)
            blocks[n] = nn.Sequential(*fused)
    return network.to(memory_format=torch.channels_last)
