"""The engine layer: the training loop, callbacks, building a recipe's components, stages,
checkpoints, random generators, device and precision, metrics, trained models."""
