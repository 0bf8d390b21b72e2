"""Pure core: bytes and values in, values out; no I/O."""
