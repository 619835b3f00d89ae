"""The synthetic multi-speaker talking-face corpus (``memorytalker synth``; docs/DATA.md).

* :mod:`.tts` - speech from real offline synthesizers (Piper, flite, festival, espeak-ng) with their own
  phoneme timings: :func:`~memorytalker.synth.tts.synthesize`.
* :mod:`.voices` - speaker identities (engine/voice x pitch x rate x loudness x timbre).
* :mod:`.sentences` - the project's own phonetically rich sentences.
* :mod:`.head` - the procedural head mesh; :mod:`.articulation` - a rig derived from any template's
  regions, visemes and dominance-function coarticulation; :mod:`.prosody` - brows and blinks;
  :mod:`.style` - per-speaker style tied to audible voice properties.
* :mod:`.corpus` - :func:`~memorytalker.synth.corpus.generate_corpus` writes the processed layout.

Submodules are imported on use (importing this package is cheap).
"""
