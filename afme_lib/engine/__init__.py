"""The engine: training loop, losses, sampling, evaluation, checkpoints, run folders, device, processes, memory model."""
