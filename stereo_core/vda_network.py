"""The Video Depth Anything network: a DINOv2 ViT encoder and a DPT head with temporal attention.

Written from the paper and the published checkpoints (github DepthAnything/Video-Depth-Anything):
module and parameter names follow the checkpoint files exactly, so they load with strict=True.

- Encoder: DINOv2 ViT with 14-pixel patches, layer scale, a learned position embedding for a
  37x37 grid (518 px) resized bicubically to the input's grid; four intermediate layers feed
  the head (after the final LayerNorm; the class token is not used).
- Head: DPT (projections, resampling to four scales, residual fusion), with a temporal
  transformer ("motion module") after the two coarsest projections and after the two coarsest
  fusions. It attends over the frames of a window at each spatial position.

Shapes: the model maps [B, T, 3, h, w] (h, w multiples of 14, ImageNet-normalised RGB) to
relative inverse depth [B, T, h, w] (larger = nearer, >= 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PATCH = 14
POSITION_GRID = 37  # the encoder's position embedding covers 37 x 37 patches (518 px)
MOTION_HEADS = 8
MOTION_GROUPS = 32
WINDOW_FRAMES = 32  # the temporal position encoding's length (the inference window)
MICRO_BATCH = 4  # frames per pass through the two finest fusions (they dominate activation memory)


@dataclass(frozen=True)
class NetworkConfig:
    embed_dim: int
    depth: int
    heads: int
    features: int
    out_channels: tuple[int, int, int, int]
    taps: tuple[int, int, int, int]  # encoder blocks whose outputs feed the head


# The published sizes, named as the checkpoint files name them (video_depth_anything_<encoder>.pth).
ENCODERS = {
    "vits": NetworkConfig(384, 12, 6, 64, (48, 96, 192, 384), (2, 5, 8, 11)),
    "vitb": NetworkConfig(768, 12, 12, 128, (96, 192, 384, 768), (2, 5, 8, 11)),
    "vitl": NetworkConfig(1024, 24, 16, 256, (256, 512, 1024, 1024), (4, 11, 17, 23)),
}


def taps_for_depth(depth: int) -> tuple[int, int, int, int]:
    """The tapped blocks: the published table for 12 and 24 blocks, evenly spaced quarters otherwise."""
    known = {config.depth: config.taps for config in ENCODERS.values()}
    if depth in known:
        return known[depth]
    return tuple(max(0, round((i + 1) * depth / 4) - 1) for i in range(4))


def config_from_state_dict(state: dict[str, torch.Tensor]) -> NetworkConfig:
    """The architecture a checkpoint holds, read from its tensor shapes (heads are 64 channels wide,
    as in every published size)."""
    embed_dim = state["pretrained.pos_embed"].shape[-1]
    depth = 1 + max(int(key.split(".")[2]) for key in state if key.startswith("pretrained.blocks."))
    out_channels = tuple(int(state[f"head.projects.{i}.weight"].shape[0]) for i in range(4))
    features = int(state["head.scratch.layer1_rn.weight"].shape[0])
    return NetworkConfig(int(embed_dim), depth, max(1, embed_dim // 64), features, out_channels,
                         taps_for_depth(depth))


# --- encoder -------------------------------------------------------------------------------------


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _LayerScale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _EncoderBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _SelfAttention(dim, heads)
        self.ls1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, 4 * dim)
        self.ls2 = _LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2Encoder(nn.Module):
    def __init__(self, config: NetworkConfig):
        super().__init__()
        dim = config.embed_dim
        self.taps = config.taps
        self.patch_embed = _PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, POSITION_GRID * POSITION_GRID + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # training only; kept so checkpoints load strictly
        self.blocks = nn.ModuleList(_EncoderBlock(dim, config.heads) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def position_embedding(self, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
        """The position embedding for a rows x cols patch grid (class token first)."""
        if rows == cols == POSITION_GRID:
            return self.pos_embed
        table = self.pos_embed.float()
        dim = table.shape[-1]
        grid = table[:, 1:].reshape(1, POSITION_GRID, POSITION_GRID, dim).permute(0, 3, 1, 2)
        # DINOv2 resizes by a scale factor with a 0.1 offset (so the floor lands on the grid size);
        # the factor, not the target size, sets the sampling positions, so it is reproduced as is.
        factors = ((rows + 0.1) / POSITION_GRID, (cols + 0.1) / POSITION_GRID)
        grid = F.interpolate(grid, scale_factor=factors, mode="bicubic", antialias=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
        return torch.cat([table[:, :1], grid], dim=1).to(dtype)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The patch tokens [N, rows*cols, dim] of the tapped blocks, normalised."""
        rows, cols = images.shape[-2] // PATCH, images.shape[-1] // PATCH
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = x + self.position_embedding(rows, cols, x.dtype)
        tapped = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.taps:
                tapped.append(self.norm(x)[:, 1:])
        return tapped


# --- temporal (motion) modules ----------------------------------------------------------------------


class _PositionalEncoding(nn.Module):
    def __init__(self, dim: int, length: int = WINDOW_FRAMES):
        super().__init__()
        position = torch.arange(length).unsqueeze(1)
        frequency = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        table = torch.zeros(1, length, dim)
        table[0, :, 0::2] = torch.sin(position * frequency)
        table[0, :, 1::2] = torch.cos(position * frequency)
        self.register_buffer("pe", table)  # saved in the checkpoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, :x.shape[1]].to(x.dtype)


class _TemporalAttention(nn.Module):
    """Self-attention over the frames at each spatial position."""

    def __init__(self, dim: int):
        super().__init__()
        self.heads = MOTION_HEADS
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.pos_encoder = _PositionalEncoding(dim)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        # x: [(batch frames), positions, dim] -> sequences over frames: [(batch positions), frames, dim]
        batch_frames, positions, dim = x.shape
        x = x.view(batch_frames // frames, frames, positions, dim).transpose(1, 2).reshape(-1, frames, dim)
        x = self.pos_encoder(x)

        def split(t):
            return t.view(t.shape[0], frames, self.heads, dim // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x)))
        out = self.to_out[0](out.transpose(1, 2).reshape(-1, frames, dim))
        return out.view(-1, positions, frames, dim).transpose(1, 2).reshape(batch_frames, positions, dim)


class _GatedGelu(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2 * hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class _FeedForward(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.ModuleList([_GatedGelu(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class _TemporalBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.attention_blocks = nn.ModuleList([_TemporalAttention(dim), _TemporalAttention(dim)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim), nn.LayerNorm(dim)])
        self.ff = _FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms):
            x = attention(norm(x), frames) + x
        return self.ff(self.ff_norm(x)) + x


class _TemporalTransformer(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(MOTION_GROUPS, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList([_TemporalBlock(channels)])
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        batch_frames, channels, height, width = x.shape
        hidden = self.norm(x).permute(0, 2, 3, 1).reshape(batch_frames, height * width, channels)
        hidden = self.proj_in(hidden)
        for block in self.transformer_blocks:
            hidden = block(hidden, frames)
        hidden = self.proj_out(hidden)
        return hidden.view(batch_frames, height, width, channels).permute(0, 3, 1, 2) + x


class MotionModule(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.temporal_transformer = _TemporalTransformer(channels)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x: [(batch frames), C, H, W] -> the same, mixed over the frames."""
        return self.temporal_transformer(x, frames)


# --- DPT head ------------------------------------------------------------------------------------


class _ResidualConvUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class _FusionBlock(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = _ResidualConvUnit(features)
        self.resConfUnit2 = _ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        resize = {"size": tuple(size)} if size is not None else {"scale_factor": 2}
        x = F.interpolate(x, **resize, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class TemporalDptHead(nn.Module):
    def __init__(self, config: NetworkConfig):
        super().__init__()
        c, features = config.out_channels, config.features
        self.projects = nn.ModuleList(nn.Conv2d(config.embed_dim, channels, 1) for channels in c)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(c[0], c[0], kernel_size=4, stride=4),
            nn.ConvTranspose2d(c[1], c[1], kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(c[3], c[3], kernel_size=3, stride=2, padding=1),
        ])
        scratch = nn.Module()
        for index in range(4):
            setattr(scratch, f"layer{index + 1}_rn", nn.Conv2d(c[index], features, 3, padding=1, bias=False))
            setattr(scratch, f"refinenet{index + 1}", _FusionBlock(features))
        scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 1), nn.ReLU(), nn.Identity())
        self.scratch = scratch
        self.motion_modules = nn.ModuleList(MotionModule(channels) for channels in (c[2], c[3], features, features))

    def forward(self, tokens: list[torch.Tensor], rows: int, cols: int, frames: int) -> torch.Tensor:
        layers = []
        for index, x in enumerate(tokens):
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[-1], rows, cols)
            layers.append(self.resize_layers[index](self.projects[index](x)))
        motion, s = self.motion_modules, self.scratch
        layers[2] = motion[0](layers[2], frames)
        layers[3] = motion[1](layers[3], frames)
        l1, l2, l3, l4 = (getattr(s, f"layer{i + 1}_rn")(layers[i]) for i in range(4))

        path = motion[2](s.refinenet4(l4, size=l3.shape[2:]), frames)
        path = motion[3](s.refinenet3(path, l3, size=l2.shape[2:]), frames)
        outputs = []
        for part in range(0, path.shape[0], MICRO_BATCH):  # the finest scales, a few frames at a time
            piece = slice(part, part + MICRO_BATCH)
            fine = s.refinenet2(path[piece], l2[piece], size=l1.shape[2:])
            fine = s.output_conv1(s.refinenet1(fine, l1[piece]))
            fine = F.interpolate(fine, (rows * PATCH, cols * PATCH), mode="bilinear", align_corners=True)
            outputs.append(s.output_conv2(fine))
        return torch.cat(outputs)


class VideoDepthAnything(nn.Module):
    """[B, T, 3, h, w] normalised RGB (h, w multiples of 14) -> relative inverse depth [B, T, h, w]."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        self.pretrained = DinoV2Encoder(config)
        self.head = TemporalDptHead(config)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        batch, frames, _, height, width = video.shape
        tokens = self.pretrained(video.flatten(0, 1))
        depth = self.head(tokens, height // PATCH, width // PATCH, frames)
        # The head already works at (h, w): the model's final resize to the input size is the identity.
        return F.relu(depth).squeeze(1).unflatten(0, (batch, frames))
