"""stereo_core: 2D-to-stereo video (DepthCrafter depth, forward warp, StereoCrafter inpainting) in plain torch.

No ComfyUI import anywhere; the ComfyUI nodes in ../nodes are thin adapters over this package.
"""
