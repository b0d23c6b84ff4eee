"""Finding models (``resolve``, pure) and loading them (``hf_loading``)."""
