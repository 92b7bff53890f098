"""Network files: sparse storage layouts (CSR, bitmask, packed N:M) in ``.npz`` and
``.safetensors`` files (docs/files.md)."""

from .entries import stored_layouts
from .layouts import LAYOUT_VERSION, LAYOUTS, Encoded, decode, encode, smallest
from .safetensors import ORIENTATIONS, load_safetensors, save_safetensors

__all__ = [
    "LAYOUTS",
    "LAYOUT_VERSION",
    "ORIENTATIONS",
    "Encoded",
    "decode",
    "encode",
    "load_safetensors",
    "save_safetensors",
    "smallest",
    "stored_layouts",
]
