"""Training: the config, the Fabric training loop and what it restores on resume.

* :mod:`memorytalker.training.config` - :class:`TrainConfig`, :class:`StageConfig`, stage presets,
  :func:`load_train_config` (defaults <- YAML <- ``key=value``).
* :mod:`memorytalker.training.engine` - :func:`train` (one stage; CPU / GPU / DDP via Lightning Fabric) in
  pieces: setup, initialise, prepare, resume, fit, validate, save.
* :mod:`memorytalker.training.optim` - trainable groups, optimizer, learning-rate schedule.
* :mod:`memorytalker.training.validation` - validation metrics and loss over a loader.
* :mod:`memorytalker.training.state` - counters and RNG states for an exact resume.
* :mod:`memorytalker.training.sampler`, :mod:`memorytalker.training.logs` - data order and loggers.

Checkpoint I/O (format, strict loading, init from another stage) is model I/O:
:mod:`memorytalker.models.loaders`. Import names from the modules; this package imports nothing itself.
"""
