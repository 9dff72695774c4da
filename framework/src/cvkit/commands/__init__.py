"""The commands layer: what each CLI command does (run, resume, eval, predict, check),
as functions the CLI and plugins call."""
