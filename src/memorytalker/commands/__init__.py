"""One module per CLI sub-command; see :mod:`memorytalker.cli` for the contract."""
