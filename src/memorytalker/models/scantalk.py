"""ScanTalk (Nocentini et al., ECCV'24) as the ``scantalk`` model kind; what is published and what differs:
docs/MODELS.md.

One model for any mesh topology: no weight depends on the vertex count or order. Data flow (shapes: ``B``
clips, ``T`` mesh frames, ``r T`` text frames, ``M`` CTC symbols, ``D`` width, ``V`` vertices of the batch's
topology, ``N`` valid frames of the batch)::

    operators of the topology's reference mesh (normalised: area 1, centroid 0; computed once per mesh)
    audio (B, S) -> per-clip normalisation -> backbone -> CTC logits (B, rT, M) -> as (B, T, r M)
    a = BiLSTM(audio_proj(.)) (B, T, D)                 packed: padding never reaches a valid frame
    e = DiffusionNet encoder(normalised template) (B, V, D)
    h = first([e ; a]) per vertex and frame (N, V, D)   = W_e e + W_a a + b, broadcast (the concat, linear)
    y = DiffusionNet decoder blocks(h) (N, V, 3)        zero-initialised output map
    vertices = template + unit_T * y                    unit_T: the motion unit scaled to the mesh's size

The batch's topology (``batch.head``: its corpus' topology when several corpora train together) picks the
operators; :meth:`ScanTalk.use_topology` / :meth:`ScanTalk.use_mesh` make any other mesh the one
:meth:`ScanTalk.predict` animates (``memorytalker animate --template other_mesh.ply``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from memorytalker.errors import ConfigError, TopologyError
from memorytalker.models.common import KindOutput, SpeechToFace
from memorytalker.models.config import ModelConfig
from memorytalker.models.diffusionnet import DiffusionNet, MeshOperators, mesh_key, operators_for
from memorytalker.models.layers import lengths_to_mask
from memorytalker.models.mel import normalize_waveform
from memorytalker.topology import FaceTopology

#: Parameter groups of :meth:`ScanTalk.parameter_groups`.
GROUPS = ("asr_frontend", "asr", "ctc_head", "audio_proj", "audio_lstm", "encoder", "decoder")
#: Frames decoded at once by :meth:`ScanTalk.predict` (its frames are independent given the LSTM features,
#: so chunks give the same result with bounded memory: ``PREDICT_FRAMES x V x D`` floats per tensor).
PREDICT_FRAMES = 32
#: Regions a mesh topology built from a file carries over from the model's topology (FaceTopology needs them).
CARRIED_REGIONS = ("lips", "upper_face")


def same_mesh(a: FaceTopology, b_vertices_count: int, b_faces: np.ndarray) -> bool:
    """Whether a mesh of ``b_vertices_count`` vertices and ``b_faces`` has ``a``'s connectivity."""
    return a.num_vertices == b_vertices_count and np.array_equal(a.faces, np.asarray(b_faces))


def topology_from_mesh(
    vertices: np.ndarray, faces: np.ndarray, like: FaceTopology, name: str
) -> FaceTopology:
    """A :class:`FaceTopology` of a mesh of another topology (``vertices`` ``(V', 3)``, ``faces`` ``(F', 3)``),
    at ``like``'s fps, its ``lips`` and ``upper_face`` regions carried over from ``like``'s reference mesh by
    nearest vertex (a vertex of the new mesh belongs to a region when its nearest reference vertex does, or
    when it is the nearest vertex of one of the region's): right when the mesh is in ``like``'s coordinate
    frame (a remeshed face); the model itself never reads the regions, only the lip metrics and plots do."""
    from scipy.spatial import cKDTree

    v = np.asarray(vertices, dtype=np.float32)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if f.size == 0:
        raise TopologyError(f"mesh {name!r} has no triangles: ScanTalk animates triangle meshes")
    ref = np.asarray(like.vertices, dtype=np.float64)
    to_ref = cKDTree(ref).query(v.astype(np.float64))[1]
    to_new = cKDTree(v.astype(np.float64)).query(ref)[1]
    regions = {}
    for r in CARRIED_REGIONS:
        idx = like.region(r)
        inside = np.isin(to_ref, idx)
        regions[r] = np.union1d(np.nonzero(inside)[0], to_new[idx])
    return FaceTopology(name, v, f, like.fps, regions)


class ScanTalk(SpeechToFace):
    """Speech + a neutral mesh of any topology -> per-frame vertices of that mesh, in one pass.

    Args:
        cfg: the model config (``kind: scantalk``).
        topology: the topology it is built for (the first training corpus'; :attr:`home`: the motion unit
            ``motion_scale`` is in its data units and scaled to other meshes by their size).
        topologies: every training corpus' topology by name (several corpora train together); stored in
            checkpoints. Any other mesh can still be animated (:meth:`use_mesh`).
    """

    def __init__(
        self, cfg: ModelConfig, topology: FaceTopology, topologies: Mapping[str, FaceTopology] | None = None
    ) -> None:
        super().__init__(cfg, topology)
        c = cfg.scantalk
        self.home = topology
        self.topologies = {topology.name: topology, **dict(topologies or {})}
        d, m = c.width, self.backbone.vocab_size
        net = dict(
            mlp_layers=c.mlp_layers,
            dropout=c.dropout,
            gradient_features=c.gradient_features,
            gradient_rotations=c.gradient_rotations,
        )
        self.encoder = DiffusionNet(3, d, d, c.encoder_blocks, **net)
        self.audio_proj = nn.Linear(self.text_rate * m, d)  # audio_embedding
        self.lstm = nn.LSTM(d, d // 2, num_layers=c.lstm_layers, batch_first=True, bidirectional=True)
        self.decoder = DiffusionNet(2 * d, 3, d, c.decoder_blocks, **net)
        nn.init.zeros_(self.decoder.last.weight)  # as published: the animation starts at the template
        nn.init.zeros_(self.decoder.last.bias)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group name (:data:`GROUPS`); every parameter in exactly one group."""
        return self.module_groups(
            GROUPS,
            audio_proj=self.audio_proj,
            audio_lstm=self.lstm,
            encoder=self.encoder,
            decoder=self.decoder,
        )

    # ------------------------------------------------------------------ topologies
    def operators(self, topology: FaceTopology, device: torch.device | str = "cpu") -> MeshOperators:
        """The DiffusionNet operators of ``topology``'s reference mesh (computed once per mesh, cached)."""
        return operators_for(topology.vertices, topology.faces, self.cfg.scantalk.k_eig, device)

    def use_topology(self, topology: FaceTopology | str) -> FaceTopology:
        """Make ``topology`` (a :class:`FaceTopology` of any mesh, or the name of a training topology) the one
        :meth:`predict` and :attr:`topology` use; returns it."""
        if isinstance(topology, str):
            if topology not in self.topologies:
                raise ConfigError(
                    f"topology {topology!r} is not one this model was trained on ({sorted(self.topologies)}); "
                    "give the mesh itself (use_mesh / a template mesh file) to animate another one"
                )
            topology = self.topologies[topology]
        if topology.faces.size == 0:
            raise TopologyError(
                f"topology {topology.name!r} has no triangles: ScanTalk animates triangle meshes"
            )
        self.topology = topology
        self.fps = float(topology.fps)
        return topology

    def use_mesh(self, vertices: np.ndarray, faces: np.ndarray, name: str) -> FaceTopology:
        """Make the mesh ``(vertices, faces)`` the topology :meth:`predict` animates: a training topology
        when it has that connectivity, else a new one (:func:`topology_from_mesh`, reference mesh =
        ``vertices``). Returns it."""
        for topo in [self.topology, *self.topologies.values()]:
            if same_mesh(topo, len(vertices), faces):
                return self.use_topology(topo)
        return self.use_topology(topology_from_mesh(vertices, faces, self.home, name))

    @contextmanager
    def using_topology(self, topology: FaceTopology | str | None) -> Iterator[FaceTopology]:
        """``topology`` in use inside the block (None = the current one); the previous one restored after."""
        before = self.topology
        try:
            yield self.use_topology(before if topology is None else topology)
        finally:
            self.use_topology(before)

    def topology_for(self, batch: Any) -> FaceTopology:
        """The topology of a batch's clips: its ``head`` (its corpus' topology), else the current one."""
        head = getattr(batch, "head", None)
        if head is None:
            return self.topology
        if head not in self.topologies:
            raise ConfigError(f"batch topology {head!r} is not one of this model's {sorted(self.topologies)}")
        return self.topologies[head]

    def unit_of(self, topology: FaceTopology) -> torch.Tensor:
        """The motion unit on ``topology``'s mesh (data units): ``motion_scale`` times the ratio of its size
        (``sqrt`` of its area) to :attr:`home`'s, so motion is the same fraction of any face's size."""
        if mesh_key(topology.vertices, topology.faces) == mesh_key(self.home.vertices, self.home.faces):
            return self.motion_scale
        ratio = self.operators(topology).scale / self.operators(self.home).scale
        return self.motion_scale * ratio

    def unit_for(self, batch: Any) -> torch.Tensor:
        """The motion unit a batch's losses are measured in (:meth:`unit_of` its topology)."""
        return self.unit_of(self.topology_for(batch))

    def predict_options(self, batch: Any) -> dict[str, Any]:
        """``predict`` keywords for a batch: its topology."""
        return {"topology": getattr(batch, "head", None)}

    # ------------------------------------------------------------------ forward / predict
    def _speech(self, audio, audio_lengths, frame_lengths, num_frames, chunked):
        """Backbone logits ``(B, rT, M)`` and the LSTM features ``(B, T, D)`` (zero past each clip's length)."""
        audio_n = normalize_waveform(audio.float(), audio_lengths)
        logits = self.text_logits(audio_n, audio_lengths, frame_lengths, num_frames, chunked)
        b = logits.shape[0]
        a = self.audio_proj(logits.reshape(b, num_frames, -1))
        packed = pack_padded_sequence(a, frame_lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        a, _ = pad_packed_sequence(out, batch_first=True, total_length=num_frames)
        return logits, a

    def _offsets(
        self,
        templates: torch.Tensor,
        speech: torch.Tensor,
        frame_lengths: torch.Tensor,
        ops: MeshOperators,
        chunk: int | None,
    ) -> torch.Tensor:
        """Offsets ``(B, T, V, 3)`` in the motion unit (zero on padded frames): the encoder on each template,
        then the decoder on every valid frame (``chunk`` frames at a time; None = all at once)."""
        b, t, d = speech.shape
        v = templates.shape[1]
        e = self.encoder(ops.normalize(templates.float()), ops)  # (B, V, D)
        first = self.decoder.first
        w = first.weight.float()
        he = F.linear(e, w[:, :d], first.bias.float())  # (B, V, D): the template half of [e ; a]
        ha = F.linear(speech.float(), w[:, d:])  # (B, T, D): the speech half
        valid = lengths_to_mask(frame_lengths, t)
        clip, frame = valid.nonzero(as_tuple=True)  # (N,) each
        out = he.new_zeros(b, t, v, 3)
        n = clip.numel()
        step = n if chunk is None else max(1, chunk)
        he = he.transpose(0, 1)  # (V, B, D): the decoder works vertex-major
        for s in range(0, n, step):
            c, f = clip[s : s + step], frame[s : s + step]
            h = he[:, c] + ha[c, f][None]  # (V, n, D)
            out[c, f] = self.decoder.run_blocks(h, ops).transpose(0, 1).to(out.dtype)
        return out

    def _animate(self, audio, audio_lengths, templates, frame_lengths, num_frames, chunked, chunk):
        """Logits and vertices ``(B, T, V, 3)`` of the current topology."""
        ops = self.operators(self.topology, templates.device)
        logits, speech = self._speech(audio, audio_lengths, frame_lengths, num_frames, chunked)
        y = self._offsets(templates, speech, frame_lengths, ops, chunk)
        unit = self.unit_of(self.topology).to(y.device)
        return logits, templates.float()[:, None] + y * unit

    def forward(self, batch: Any, teacher_forcing: bool = False) -> KindOutput:
        """Training/validation pass on a :class:`memorytalker.data.Batch` on its topology (``batch.head``).
        ``teacher_forcing`` (MemoryTalker's extra pass) does not apply and is ignored."""
        with self.using_topology(self.topology_for(batch)):
            audio, audio_lengths, templates, _, frame_lengths, num_frames = self.batch_inputs(batch)
            chunk = None if self.training else PREDICT_FRAMES  # validation: bounded memory, the same result
            logits, vertices = self._animate(
                audio, audio_lengths, templates, frame_lengths, num_frames, False, chunk
            )
        return KindOutput(
            vertices=vertices,
            frame_mask=lengths_to_mask(frame_lengths, num_frames),
            ctc_logits=logits,
            ctc_lengths=frame_lengths * self.text_rate,
        )

    def predict(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        templates: torch.Tensor,
        num_frames: torch.Tensor | None = None,
        topology: FaceTopology | str | None = None,
    ) -> torch.Tensor:
        """Inference (eval mode, restored afterwards) from audio and neutral meshes of one topology.

        Args:
            audio: ``(B, S)`` 16 kHz mono, zero-padded. audio_lengths: ``(B,)``.
            templates: ``(B, V, 3)`` neutral meshes of ``topology``.
            num_frames: ``(B,)`` frames per clip (None = ``round(S / 16000 * fps)``).
            topology: the mesh topology (a :class:`FaceTopology`, a training topology's name, or None = the
                current one, :meth:`use_topology`).

        Returns:
            ``(B, T, V, 3)``; frames past a clip's length hold its template.
        """
        with self.using_topology(topology):

            def decode(audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, t: int) -> torch.Tensor:
                tpl = templates.to(audio.device)
                _, out = self._animate(audio, audio_lengths, tpl, frame_lengths, t, True, PREDICT_FRAMES)
                return out

            return self.run_predict(audio, audio_lengths, templates, num_frames, decode)
