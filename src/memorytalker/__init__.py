"""MemoryTalker: personalized speech-driven 3D facial animation (ICCV 2025), reimplemented.

Shape conventions used throughout the package (see docs):
``B`` batch, ``S`` audio samples, ``A`` audio feature frames, ``T`` mesh frames, ``V`` vertices,
``D`` feature width, ``M`` memory slots. Vertex sequences are ``(B, T, V, 3)`` or ``(T, V, 3)``.
"""

__version__ = "0.1.0"
