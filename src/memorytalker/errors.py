"""Exceptions with messages meant for users (the CLI prints them without a traceback)."""


class MemoryTalkerError(Exception):
    """Base class: something the user can fix (bad input, missing file, wrong topology)."""


class AudioError(MemoryTalkerError, ValueError):
    """Audio that cannot be read, is empty, silent, or otherwise unusable."""


class TopologyError(MemoryTalkerError, ValueError):
    """A mesh or region file that does not fit the expected face topology."""


class DatasetError(MemoryTalkerError, ValueError):
    """A dataset directory or file that does not follow the documented layout."""


class ConfigError(MemoryTalkerError, ValueError):
    """A configuration key or value that does not exist or does not validate."""


class CheckpointError(MemoryTalkerError, ValueError):
    """A checkpoint that cannot be read or does not match the model/config."""
