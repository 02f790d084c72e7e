"""StereoCrafter 3D: turn 2D video into stereoscopic 3D in ComfyUI."""

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    # Imported as a plain module, not as ComfyUI's custom-node package (e.g. by pytest
    # when the checkout's folder name is not a valid package name): nothing to register.
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
