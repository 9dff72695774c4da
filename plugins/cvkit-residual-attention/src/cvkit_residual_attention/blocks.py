"""The CBAM study's ResAttention block (the ``Residual_attention`` of its code)."""

from __future__ import annotations

from torch import Tensor, nn

from cvkit import AttentionFactory


class ResAttentionBlock(nn.Module):
    """A residual block with attention on its branch, as the CBAM study builds it.

    Branch: conv3x3 (in -> in / ratio) then conv3x3 (-> out), both without bias and with
    nothing between them (no batch norm, no ReLU), then the attention block (the study:
    CBAM). Shortcut: conv1x1 (in -> out, no bias) and batch norm, always. Output:
    ReLU(branch + shortcut). All stride 1: (N, in, H, W) -> (N, out, H, W).

    Parameters: 9 * in * in/ratio + 9 * in/ratio * out + in * out + 2 * out, plus the
    attention block's.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ratio: int = 2,
        attention: AttentionFactory | None = None,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1 or ratio < 1 or in_channels // ratio < 1:
            raise ValueError(
                f"in_channels={in_channels}, out_channels={out_channels} and ratio={ratio} "
                "must be >= 1 with in_channels // ratio >= 1"
            )
        hidden = in_channels // ratio
        self.conv1 = nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(hidden, out_channels, 3, padding=1, bias=False)
        self.attention = attention(out_channels) if attention is not None else nn.Identity()
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        """(N, in, H, W) -> (N, out, H, W)."""
        return (self.attention(self.conv2(self.conv1(x))) + self.shortcut(x)).relu()
