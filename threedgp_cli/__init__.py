"""The ``3dgp`` command-line interface: parsing, validation and presentation only (no torch at import)."""
import os as _os

# Nothing may reach a model hub unless the user asks: set before anything can import huggingface_hub.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")

__version__ = "0.1.0"
