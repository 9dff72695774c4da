"""The recipe layer: the schema (attrs classes), reading TOML with ``extends``/``unset``,
``--set`` overrides, validation against the registry, writing back."""
