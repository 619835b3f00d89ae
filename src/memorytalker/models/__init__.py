"""MemoryTalker model: config, text backbones, motion memory, style encoder, decoder, losses.

Import the pieces from their modules (``memorytalker.models.memorytalker.MemoryTalker``,
``memorytalker.models.config.ModelConfig``, ``memorytalker.models.losses.compute_losses``); this package
imports nothing heavy by itself.
"""
