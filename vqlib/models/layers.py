"""The layers of :class:`vqlib.models.VQVAE`'s two architectures (chapter 1).

:func:`mlp` builds the MLP encoder and decoder; :func:`conv_encoder` and :func:`conv_decoder`
the convolutional ones of the VQ-VAE and SQ-VAE papers (strided 4 × 4 convolutions and
:class:`Residual` blocks). The training engine (:func:`vqlib.models.engine.network`) runs the
same layers over R models at once.
"""
from __future__ import annotations

from torch import Tensor, nn

__all__ = ["Residual", "mlp", "conv_encoder", "conv_decoder", "conv_parameter_count"]


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of ``sizes`` (in, hidden…, out) with a ReLU between consecutive ones."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """x + block(x), block = ReLU, 3 × 3 convolution, ReLU, 1 × 1 convolution (the VQ-VAE paper's
    residual block; the convolutional architecture of :class:`VQVAE`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


def conv_encoder(channels: int, width: int, halvings: int, blocks: int, code_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.ReLU()]
    for _ in range(halvings - 1):
        layers += [nn.Conv2d(width, width, 4, stride=2, padding=1), nn.ReLU()]
    layers.append(nn.Conv2d(width, width, 3, padding=1))
    layers += [Residual(width) for _ in range(blocks)]
    layers += [nn.ReLU(), nn.Conv2d(width, code_dim, 1)]
    return nn.Sequential(*layers)


def conv_decoder(channels: int, width: int, halvings: int, blocks: int, code_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(code_dim, width, 3, padding=1)]
    layers += [Residual(width) for _ in range(blocks)]
    layers.append(nn.ReLU())
    for _ in range(halvings - 1):
        layers += [nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.ReLU()]
    layers.append(nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1))
    return nn.Sequential(*layers)


def conv_parameter_count(channels: int, width: int, halvings: int, blocks: int, code_dim: int) -> int:
    w2 = width * width
    down = channels * width * 16 + width + (halvings - 1) * (16 * w2 + width)
    body = 9 * w2 + width + blocks * (9 * w2 + w2 + 2 * width)
    return 2 * (down + body) + width * code_dim * 10 + code_dim + channels

