"""Face topology: the dataset facts every other module reads from one place.

* :mod:`.core` - :class:`FaceTopology` (vertex count, triangles, fps, reference mesh, named regions),
  region files, mesh I/O and the VOCASET/BIWI presets.
* :mod:`.meshio` - mesh files (OBJ in vertex order, PLY through trimesh) with clear errors.
* :mod:`.lips` - lip geometry: face axes, outer lip opening, inner-lip contours and the inner lip gap.
"""

from memorytalker.topology.core import (
    BIWI_FPS,
    FLAME_INNER_LIP_MIDLINE,
    FLAME_VERTICES,
    REQUIRED_REGIONS,
    VOCASET_FPS,
    FaceTopology,
    RegionDuplicatesWarning,
    RegionSource,
    biwi_topology,
    read_region_file,
    resolve_region,
    vocaset_topology,
)
from memorytalker.topology.lips import inner_lip_gap, lip_opening
from memorytalker.topology.meshio import load_mesh, save_mesh

__all__ = [
    "BIWI_FPS",
    "FLAME_INNER_LIP_MIDLINE",
    "FLAME_VERTICES",
    "REQUIRED_REGIONS",
    "VOCASET_FPS",
    "FaceTopology",
    "RegionDuplicatesWarning",
    "RegionSource",
    "biwi_topology",
    "inner_lip_gap",
    "lip_opening",
    "load_mesh",
    "read_region_file",
    "resolve_region",
    "save_mesh",
    "vocaset_topology",
]
