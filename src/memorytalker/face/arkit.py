"""The 52 ARKit blendshape names and the mapping of ICT-FaceKit's 53 expression shapes onto them.

* :data:`ARKIT_NAMES`: Apple's ``ARFaceAnchor.BlendShapeLocation`` names in the order Epic's Live Link
  Face app writes them (its CSV: ``Timecode,BlendShapeCount,`` then these 52, then head and eye angles).
* :data:`LIVE_LINK_NAMES`: the same in Live Link's PascalCase (``EyeBlinkLeft`` ...).
* :func:`ict_to_arkit_name`: ICT writes Left/Right as ``_L``/``_R`` (``eyeBlink_L`` -> ``eyeBlinkLeft``),
  splits ``browInnerUp`` and ``cheekPuff`` into ``_L``/``_R`` halves (both map onto ARKit's single shape)
  and has no ``tongueOut``: its 53 shapes cover 51 of ARKit's 52.
* :func:`arkit_to_ict_matrix`: the ``(53, 52)`` 0/1 matrix ``M`` with ``w_ict = M @ w_arkit``; the ARKit
  basis of a model with ICT deltas ``D (53, V, 3)`` is ``M.T @ D`` (a split pair summed; ``tongueOut`` a
  zero shape), and ``np.linalg.pinv(M) @ w_ict`` gives ARKit weights from ICT weights (a split pair
  averaged).

Sides: ``Left`` is the face's own left, as in ARKit (``ARFaceAnchor``: +x is the face's left). In
ICT-FaceKit the ``_L`` shapes move the ``+x`` side (+y up, +z towards the viewer): its "Eyeball left"
lies at +x, ``eyeBlink_L`` closes the +x eye and ``jawLeft`` moves the jaw towards +x.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memorytalker.errors import TopologyError

#: The 52 ARKit blendshapes in Apple's / Live Link Face order.
ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft",
    "eyeLookDownLeft",
    "eyeLookInLeft",
    "eyeLookOutLeft",
    "eyeLookUpLeft",
    "eyeSquintLeft",
    "eyeWideLeft",
    "eyeBlinkRight",
    "eyeLookDownRight",
    "eyeLookInRight",
    "eyeLookOutRight",
    "eyeLookUpRight",
    "eyeSquintRight",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawRight",
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthLeft",
    "mouthRight",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "noseSneerLeft",
    "noseSneerRight",
    "tongueOut",
)
#: Number of ARKit blendshapes.
NUM_ARKIT = len(ARKIT_NAMES)
#: The same names in Live Link Face's PascalCase (``EyeBlinkLeft`` ...), same order.
LIVE_LINK_NAMES: tuple[str, ...] = tuple(n[0].upper() + n[1:] for n in ARKIT_NAMES)
#: ICT shapes split into two halves where ARKit has one shape.
SPLIT_SHAPES = ("browInnerUp", "cheekPuff")
#: ARKit shapes ICT-FaceKit has no shape for.
MISSING_IN_ICT = ("tongueOut",)
_SUFFIX = {"_L": "Left", "_R": "Right"}


def ict_to_arkit_name(name: str) -> str:
    """The ARKit name an ICT-FaceKit expression shape drives (``eyeBlink_L`` -> ``eyeBlinkLeft``,
    ``browInnerUp_R`` -> ``browInnerUp``).

    Raises:
        TopologyError: a name that maps onto no ARKit shape.
    """
    base, suffix = name[:-2], name[-2:]
    if suffix in _SUFFIX:
        out = base if base in SPLIT_SHAPES else base + _SUFFIX[suffix]
    else:
        out = name
    if out not in ARKIT_NAMES:
        raise TopologyError(f"expression shape {name!r} maps onto no ARKit blendshape ({out!r} is not one)")
    return out


def arkit_to_ict_matrix(ict_names: Sequence[str]) -> np.ndarray:
    """``(K, 52)`` float64 0/1 matrix ``M``: ICT weights ``= M @`` ARKit weights (see the module docstring).

    Raises:
        TopologyError: a name that maps onto no ARKit shape, or two shapes claiming one unsplit ARKit shape.
    """
    m = np.zeros((len(ict_names), NUM_ARKIT))
    for i, name in enumerate(ict_names):
        j = ARKIT_NAMES.index(ict_to_arkit_name(name))
        m[i, j] = 1.0
    counts = m.sum(0)
    for j in np.flatnonzero(counts > 1):
        if ARKIT_NAMES[j] not in SPLIT_SHAPES:
            dup = [n for i, n in enumerate(ict_names) if m[i, j]]
            raise TopologyError(f"shapes {dup} all map onto ARKit {ARKIT_NAMES[j]!r}")
    return m


def arkit_coverage(ict_names: Sequence[str]) -> list[str]:
    """The ARKit names the given ICT shapes drive, in ARKit order."""
    m = arkit_to_ict_matrix(ict_names)
    return [ARKIT_NAMES[j] for j in np.flatnonzero(m.sum(0) > 0)]


def live_link_header() -> list[str]:
    """Column names of a Live Link Face CSV: ``Timecode``, ``BlendShapeCount``, the 52 PascalCase names,
    then the head and eye angles (``BlendShapeCount`` is 61)."""
    angles = [f"{who}{axis}" for who in ("Head", "LeftEye", "RightEye") for axis in ("Yaw", "Pitch", "Roll")]
    return ["Timecode", "BlendShapeCount", *LIVE_LINK_NAMES, *angles]
