"""The project's face: ICT-FaceKit's linear face model, its ARKit names, and the reader of its files.

* :mod:`.arkit` - the 52 ARKit blendshape names (Apple's / Live Link Face order, PascalCase) and the
  mapping of ICT-FaceKit's 53 expression shapes onto them.
* :mod:`.ictfacekit` - reader of an ICT-FaceKit ``FaceXModel`` folder as distributed (vertex order kept).
* :mod:`.model` - :class:`FaceModel`, the shipped face asset: animated region (face, head, neck) as a
  :class:`~memorytalker.topology.FaceTopology`, expression and identity bases, mouth socket, teeth, gums,
  tongue and eyeballs, posing and identity fitting.
"""

from memorytalker.face.arkit import ARKIT_NAMES, LIVE_LINK_NAMES, arkit_to_ict_matrix, ict_to_arkit_name
from memorytalker.face.model import FaceAssetError, FaceModel, FacePart, default_asset_path

__all__ = [
    "ARKIT_NAMES",
    "LIVE_LINK_NAMES",
    "FaceAssetError",
    "FaceModel",
    "FacePart",
    "arkit_to_ict_matrix",
    "default_asset_path",
    "ict_to_arkit_name",
]
