"""DepthCrafter's UNet: SVD's spatio-temporal UNet conditioned on one CLIP embedding per frame.

The stock model takes one image embedding [batch, 1, dim] and repeats it for every
frame; DepthCrafter instead cross-attends each frame to its own embedding, given as
[batch, frames, dim]. Everything else (blocks, weights, config) is the stock model's,
so the weights load with the stock `from_pretrained`.
"""

from __future__ import annotations

import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionOutput


class PerFrameConditionedUNet(UNetSpatioTemporalConditionModel):
    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids, return_dict: bool = True):
        """sample [B, F, C, H, W]; encoder_hidden_states [B, F, dim] (one embedding per frame)."""
        batch, frames = sample.shape[:2]
        if encoder_hidden_states.shape[:2] != (batch, frames):
            raise ValueError(
                f"per-frame conditioning needs embeddings shaped [{batch}, {frames}, dim], "
                f"got {tuple(encoder_hidden_states.shape)}"
            )
        weight_dtype = self.conv_in.weight.dtype
        timesteps = torch.as_tensor(timestep, device=sample.device)
        timesteps = timesteps.reshape(-1).expand(batch)

        # Time and micro-conditioning embedding, one per video, shared by its frames.
        emb = self.time_embedding(self.time_proj(timesteps).to(weight_dtype))
        time_ids = self.add_time_proj(added_time_ids.flatten()).reshape(batch, -1)
        emb = emb + self.add_embedding(time_ids.to(emb.dtype))
        emb = emb.repeat_interleave(frames, dim=0)

        hidden = self.conv_in(sample.flatten(0, 1).to(weight_dtype))
        context = encoder_hidden_states.flatten(0, 1).unsqueeze(1).to(weight_dtype)
        image_only_indicator = torch.zeros(batch, frames, dtype=hidden.dtype, device=hidden.device)

        def run(block, **inputs):
            if getattr(block, "has_cross_attention", False):
                inputs["encoder_hidden_states"] = context
            return block(temb=emb, image_only_indicator=image_only_indicator, **inputs)

        skips = (hidden,)
        for block in self.down_blocks:
            hidden, block_skips = run(block, hidden_states=hidden)
            skips += block_skips
        hidden = self.mid_block(hidden_states=hidden, temb=emb, encoder_hidden_states=context,
                                image_only_indicator=image_only_indicator)
        for block in self.up_blocks:
            count = len(block.resnets)
            skips, block_skips = skips[:-count], skips[-count:]
            hidden = run(block, hidden_states=hidden, res_hidden_states_tuple=block_skips)

        out = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        out = out.reshape(batch, frames, *out.shape[1:])
        return UNetSpatioTemporalConditionOutput(sample=out) if return_dict else (out,)
