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
    """Linear layers of ``sizes`` (in, hidden…, out) with a ReLU between consecutive ones (chapters 1, 8).

    Parameters
    ----------
    sizes : list of int
        The widths [in, h_1, …, h_depth, out]; two entries give one linear map (depth 0).

    Returns
    -------
    nn.Sequential
        Linear, ReLU, …, Linear, mapping (N, in) to (N, out); no activation after the last layer.

    See also: :func:`conv_encoder`, :class:`vqlib.models.VQVAE`; chapter 1.
    """
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """x + block(x), block = ReLU, 3 × 3 convolution, ReLU, 1 × 1 convolution (chapter 1).

    The VQ-VAE paper's residual block, used by the convolutional architecture of
    :class:`vqlib.models.VQVAE`; both convolutions keep the number of channels and the size.

    Parameters
    ----------
    channels : int
        Channels of the input and of both convolutions.

    See also: :func:`conv_encoder`, :func:`conv_decoder`; chapter 1.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        """x + block(x) for ``x`` of shape (N, channels, H, W); returns the same shape (chapter 1)."""
        return x + self.block(x)


def conv_encoder(channels: int, width: int, halvings: int, blocks: int, code_dim: int) -> nn.Sequential:
    """The convolutional encoder of the VQ-VAE and SQ-VAE papers, image to latent grid (chapter 1).

    s = ``halvings`` strided 4 × 4 convolutions (stride 2, each followed by a ReLU), a 3 × 3
    convolution, ``blocks`` :class:`Residual` blocks, a ReLU and a 1 × 1 convolution to ``code_dim``
    channels: (N, C, H, W) → (N, code_dim, H/2^s, W/2^s).

    Parameters
    ----------
    channels : int
        C, the image's channels.
    width : int
        Channels of every hidden layer.
    halvings : int
        s ≥ 1, how many times the sides are halved.
    blocks : int
        Residual blocks (the model's encoder depth).
    code_dim : int
        Output channels: one code_dim vector per place of the h × w grid.

    Returns
    -------
    nn.Sequential

    See also: :func:`conv_decoder`, :func:`vqlib.models.latent_grids`; chapter 1.
    """
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.ReLU()]
    for _ in range(halvings - 1):
        layers += [nn.Conv2d(width, width, 4, stride=2, padding=1), nn.ReLU()]
    layers.append(nn.Conv2d(width, width, 3, padding=1))
    layers += [Residual(width) for _ in range(blocks)]
    layers += [nn.ReLU(), nn.Conv2d(width, code_dim, 1)]
    return nn.Sequential(*layers)


def conv_decoder(channels: int, width: int, halvings: int, blocks: int, code_dim: int) -> nn.Sequential:
    """The convolutional decoder mirroring :func:`conv_encoder`, latent grid to image (chapter 1).

    A 3 × 3 convolution from ``code_dim`` to ``width`` channels, ``blocks`` :class:`Residual` blocks,
    a ReLU, then s = ``halvings`` transposed 4 × 4 convolutions (stride 2; a ReLU after all but the
    last, which gives the C channels): (N, code_dim, h, w) → (N, C, h·2^s, w·2^s). No sigmoid here:
    :meth:`vqlib.models.VQVAE.decode` applies it.

    Parameters
    ----------
    channels : int
        C, the image's channels.
    width : int
        Channels of every hidden layer.
    halvings : int
        s ≥ 1, how many times the sides are doubled.
    blocks : int
        Residual blocks (the model's decoder depth).
    code_dim : int
        Input channels, one code vector per place of the grid.

    Returns
    -------
    nn.Sequential

    See also: :func:`conv_encoder`; chapter 1.
    """
    layers: list[nn.Module] = [nn.Conv2d(code_dim, width, 3, padding=1)]
    layers += [Residual(width) for _ in range(blocks)]
    layers.append(nn.ReLU())
    for _ in range(halvings - 1):
        layers += [nn.ConvTranspose2d(width, width, 4, stride=2, padding=1), nn.ReLU()]
    layers.append(nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1))
    return nn.Sequential(*layers)


def conv_parameter_count(channels: int, width: int, halvings: int, blocks: int, code_dim: int) -> int:
    """An upper bound on the weights of a convolutional encoder and decoder pair, unbuilt (chapter 1).

    The parameters of :func:`conv_encoder` and :func:`conv_decoder` with these arguments, plus
    9·width² + width (one 3 × 3 width-to-width convolution more): :class:`vqlib.models.VQVAE`
    halves it per side for its memory check, where erring high is safe.

    Parameters
    ----------
    channels, width, halvings, blocks, code_dim : int
        As in :func:`conv_encoder`.

    Returns
    -------
    int
        A number of float parameters.

    See also: :func:`conv_encoder`, :func:`conv_decoder`; chapter 1.
    """
    w2 = width * width
    down = channels * width * 16 + width + (halvings - 1) * (16 * w2 + width)
    body = 9 * w2 + width + blocks * (9 * w2 + w2 + 2 * width)
    return 2 * (down + body) + width * code_dim * 10 + code_dim + channels

