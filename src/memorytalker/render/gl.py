"""Headless OpenGL mesh renderer: moderngl on an EGL standalone context (Mesa llvmpipe on a CPU machine).

Per frame: smooth vertex normals are computed vectorised (area-weighted face normals summed into vertices
through a sparse vertex-face incidence matrix), the positions and normals are written to their buffers,
the mesh is drawn with Blinn-Phong shading (a warm key light, a cool fill, a rim light and ambient, lit
two-sided so the winding order does not matter) and the image is read back. The material colour is a
skin-grey albedo, or per-vertex colours (skin, teeth, gums, mouth socket, eyeballs, irises of a
:class:`~memorytalker.face.FaceModel`: its ``vertex_colours``), interpolated across each triangle.

Nothing falls back silently: no EGL, an out-of-range triangle, a NaN vertex or a frame in which nothing
was drawn raises :class:`~memorytalker.render.errors.RenderError` naming the cause.
"""

from __future__ import annotations

import numpy as np

from memorytalker.render.camera import Camera, frame_vertices
from memorytalker.render.errors import RenderError

#: System packages the EGL context needs on Debian/Ubuntu (Mesa's software rasteriser works without a GPU).
EGL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri"

#: Background colour (RGB, 0..255).
BACKGROUND = (255, 255, 255)
#: Material colour (linear RGB): a neutral, slightly warm skin-grey.
ALBEDO = (0.62, 0.57, 0.54)

_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
uniform mat4 mv;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_colour;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_colour;
void main() {
    vec4 p = mv * vec4(in_pos, 1.0);
    v_pos = p.xyz;
    v_colour = in_colour;
    v_normal = mat3(mv) * in_normal;
    gl_Position = mvp * vec4(in_pos, 1.0);
}
"""

_FRAGMENT_SHADER = """
#version 330
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_colour;
out vec4 f_color;
uniform vec3 ambient;
uniform vec3 light_dir[3];
uniform vec3 light_col[3];
uniform float shininess;
uniform float specular;
void main() {
    vec3 albedo = v_colour;
    vec3 n = normalize(v_normal);
    vec3 view = normalize(-v_pos);
    if (dot(n, view) < 0.0) n = -n;  // two-sided: inner lips, mouth, either winding
    vec3 c = ambient * albedo;
    for (int i = 0; i < 3; ++i) {
        vec3 l = normalize(light_dir[i]);
        float d = max(dot(n, l), 0.0);
        vec3 h = normalize(l + view);
        float s = d > 0.0 ? specular * pow(max(dot(n, h), 0.0), shininess) : 0.0;
        c += light_col[i] * (albedo * d + vec3(s));
    }
    f_color = vec4(pow(clamp(c, 0.0, 1.0), vec3(1.0 / 2.2)), 1.0);
}
"""

# view-space light directions (toward the light) and colours: key (upper left), fill (right), rim (top back)
_LIGHT_DIRS = ((-0.45, 0.55, 0.75), (0.7, 0.05, 0.55), (0.0, 0.8, -0.6))
_LIGHT_COLS = ((0.95, 0.92, 0.88), (0.38, 0.42, 0.48), (0.3, 0.3, 0.32))
_AMBIENT = (0.16, 0.16, 0.17)


def create_context():
    """A standalone moderngl context on EGL (works with no display and no GPU).

    Raises:
        RenderError: moderngl is missing or EGL cannot be initialised (names the packages to install).
    """
    try:
        import moderngl
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RenderError(
            f"rendering needs the Python package moderngl ({exc}); pip install moderngl"
        ) from exc
    try:
        return moderngl.create_standalone_context(backend="egl", require=330)
    except Exception as exc:
        raise RenderError(
            f"cannot create a headless OpenGL 3.3 context through EGL ({type(exc).__name__}: {exc}). "
            f"Rendering needs the system packages {EGL_PACKAGES} (Debian/Ubuntu: "
            f"`sudo apt-get install -y {EGL_PACKAGES}`); they provide Mesa's EGL and the llvmpipe software "
            "renderer, so no GPU or display is required"
        ) from exc


def check_faces(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """Validate triangles ``(F, 3)`` against ``num_vertices``; returns them as contiguous uint32.

    Raises:
        RenderError: no triangles (a point cloud cannot be shaded), wrong shape, or out-of-range indices.
    """
    f = np.asarray(faces)
    if f.size == 0:
        raise RenderError(
            "the mesh has no triangles (a point cloud); rendering needs faces - give a mesh file "
            "(--mesh) or a topology with triangles"
        )
    if f.ndim != 2 or f.shape[1] != 3:
        raise RenderError(f"faces must be (F, 3) triangle indices, got shape {f.shape}")
    if f.dtype.kind not in "iu":
        raise RenderError(f"faces must be integer vertex indices, got dtype {f.dtype}")
    if f.min() < 0 or f.max() >= num_vertices:
        raise RenderError(
            f"triangle indices out of range [0, {num_vertices}) (min {f.min()}, max {f.max()}): "
            "the faces belong to a mesh with another vertex count"
        )
    return np.ascontiguousarray(f, dtype=np.uint32)


def check_colours(colours: np.ndarray | None, num_vertices: int) -> np.ndarray:
    """``(V, 3)`` contiguous float32 per-vertex colours (:data:`ALBEDO` everywhere when None).

    Raises:
        RenderError: another shape, NaN/Inf, or values outside ``[0, 1]`` (linear RGB).
    """
    if colours is None:
        return np.tile(np.asarray(ALBEDO, dtype=np.float32), (num_vertices, 1))
    c = np.asarray(colours)
    if c.dtype.kind not in "fiu":
        raise RenderError(f"vertex colours must be numbers, got dtype {c.dtype}")
    c = c.astype(np.float32)
    if c.shape != (num_vertices, 3):
        raise RenderError(f"vertex colours must be ({num_vertices}, 3) linear RGB, got shape {c.shape}")
    if not np.all(np.isfinite(c)) or c.min() < 0 or c.max() > 1:
        raise RenderError("vertex colours must be finite linear RGB values in [0, 1]")
    return np.ascontiguousarray(c)


class VertexNormals:
    """Smooth per-vertex normals for a fixed triangle list: ``__call__((V, 3)) -> (V, 3)`` float32."""

    def __init__(self, faces: np.ndarray, num_vertices: int) -> None:
        from scipy.sparse import csr_matrix

        f = np.asarray(faces, dtype=np.int64)
        self.faces = f
        n_f = f.shape[0]
        rows = f.reshape(-1)
        cols = np.repeat(np.arange(n_f), 3)
        self.incidence = csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(num_vertices, n_f)
        )

    def __call__(self, vertices: np.ndarray) -> np.ndarray:
        v = vertices
        a, b, c = v[self.faces[:, 0]], v[self.faces[:, 1]], v[self.faces[:, 2]]
        fn = np.cross(b - a, c - a)  # length = 2 x area: area-weighted sum
        vn = self.incidence @ fn
        norm = np.sqrt(np.einsum("ij,ij->i", vn, vn))
        vn /= np.maximum(norm, 1e-30)[:, None]
        return vn.astype(np.float32, copy=False)


class MeshRenderer:
    """Renders one fixed-topology mesh, frame after frame, to ``(H, W, 3)`` uint8 RGB images.

    Args:
        faces: ``(F, 3)`` triangle indices.
        num_vertices: ``V``.
        camera: a :class:`Camera` (e.g. :func:`frame_vertices` of the neutral frame).
        size: image width and height in pixels.
        samples: MSAA samples (0 = none; 4 smooths edges at a small cost on llvmpipe).
        ctx: an existing moderngl context to share (one is created otherwise and released by :meth:`close`).
        colours: optional ``(V, 3)`` per-vertex linear RGB in ``[0, 1]`` (default: :data:`ALBEDO` everywhere).

    Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        faces: np.ndarray,
        num_vertices: int,
        camera: Camera,
        size: int = 512,
        samples: int = 4,
        ctx=None,
        colours: np.ndarray | None = None,
    ) -> None:
        if int(size) < 16:
            raise RenderError(f"image size must be at least 16 pixels, got {size}")
        self.size = int(size)
        self.num_vertices = int(num_vertices)
        self.faces = check_faces(faces, self.num_vertices)
        self.normals = VertexNormals(self.faces, self.num_vertices)
        self.colours = check_colours(colours, self.num_vertices)
        self.camera = camera
        self._own_ctx = ctx is None
        self.ctx = create_context() if ctx is None else ctx
        try:
            self._setup(samples)
        except RenderError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise RenderError(f"cannot set up the OpenGL renderer: {type(exc).__name__}: {exc}") from exc

    def _setup(self, samples: int) -> None:
        import moderngl

        ctx = self.ctx
        prog = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        view = self.camera.view_matrix()
        proj = self.camera.projection_matrix(1.0)
        # moderngl expects column-major bytes: write the transpose of the row-major matrices
        prog["mv"].write(np.ascontiguousarray(view.T).tobytes())
        prog["mvp"].write(np.ascontiguousarray((proj @ view).T).tobytes())
        prog["ambient"].value = _AMBIENT
        prog["light_dir"].write(np.asarray(_LIGHT_DIRS, dtype=np.float32).tobytes())
        prog["light_col"].write(np.asarray(_LIGHT_COLS, dtype=np.float32).tobytes())
        prog["shininess"].value = 24.0
        prog["specular"].value = 0.12
        v = self.num_vertices
        self.vbo_pos = ctx.buffer(reserve=v * 12)
        self.vbo_nrm = ctx.buffer(reserve=v * 12)
        self.vbo_col = ctx.buffer(self.colours.tobytes())
        self.ibo = ctx.buffer(self.faces.tobytes())
        self.vao = ctx.vertex_array(
            prog,
            [
                (self.vbo_pos, "3f", "in_pos"),
                (self.vbo_nrm, "3f", "in_normal"),
                (self.vbo_col, "3f", "in_colour"),
            ],
            index_buffer=self.ibo,
            index_element_size=4,
        )
        self.prog = prog
        s = self.size
        self.fbo = ctx.framebuffer(
            color_attachments=[ctx.renderbuffer((s, s), 4)],
            depth_attachment=ctx.depth_renderbuffer((s, s)),
        )
        self.samples = int(samples) if samples and samples > 1 else 0
        if self.samples:
            max_samples = ctx.max_samples
            self.samples = min(self.samples, max_samples) if max_samples > 1 else 0
        self.ms_fbo = None
        if self.samples:
            self.ms_fbo = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer((s, s), 4, samples=self.samples)],
                depth_attachment=ctx.depth_renderbuffer((s, s), samples=self.samples),
            )
        ctx.enable(moderngl.DEPTH_TEST)
        self._bg = tuple(c / 255.0 for c in BACKGROUND)
        self._bg_frame = np.tile(np.asarray(BACKGROUND, dtype=np.uint8), self.size * self.size).tobytes()
        err = ctx.error
        if err != "GL_NO_ERROR":
            raise RenderError(f"OpenGL error while setting up the renderer: {err}")

    def render(self, vertices: np.ndarray, frame: int | None = None) -> np.ndarray:
        """Render ``(V, 3)`` vertices; returns a new ``(size, size, 3)`` uint8 RGB image (row 0 at the top).

        Raises:
            RenderError: wrong shape, NaN/Inf vertices, an OpenGL error, or nothing drawn (the mesh is
                entirely outside the camera view). ``frame`` (when given) is named in the message.
        """
        where = f"frame {frame}" if frame is not None else "the frame"
        v = np.asarray(vertices, dtype=np.float32)
        if v.shape != (self.num_vertices, 3):
            raise RenderError(f"{where}: expected ({self.num_vertices}, 3) vertices, got shape {v.shape}")
        if not np.all(np.isfinite(v)):
            bad = int(np.flatnonzero(~np.isfinite(v).all(1))[0])
            raise RenderError(
                f"{where} has NaN/Inf vertex positions (first at vertex {bad}); cannot render it"
            )
        normals = self.normals(v)
        self.vbo_pos.write(np.ascontiguousarray(v).tobytes())
        self.vbo_nrm.write(normals.tobytes())
        target = self.ms_fbo if self.ms_fbo is not None else self.fbo
        target.use()
        target.clear(*self._bg, 1.0, depth=1.0)
        self.vao.render()
        if self.ms_fbo is not None:
            self.ctx.copy_framebuffer(self.fbo, self.ms_fbo)
        data = self.fbo.read(components=3, alignment=1)
        err = self.ctx.error
        if err != "GL_NO_ERROR":
            raise RenderError(f"{where}: OpenGL error {err}")
        if data == self._bg_frame:  # one memcmp (a per-pixel numpy comparison costs ~2.5 ms a frame)
            raise RenderError(
                f"{where}: nothing was drawn - the mesh lies entirely outside the camera view "
                "(vertices far from the framing frame, or a different unit/scale)"
            )
        img = np.frombuffer(data, dtype=np.uint8).reshape(self.size, self.size, 3)[::-1]
        return np.ascontiguousarray(img)

    def close(self) -> None:
        """Release the GL objects (and the context when this renderer created it)."""
        for name in ("vao", "ibo", "vbo_pos", "vbo_nrm", "vbo_col", "fbo", "ms_fbo", "prog"):
            obj = getattr(self, name, None)
            if obj is not None:
                try:
                    obj.release()
                except Exception:  # noqa: BLE001 - releasing on a dying context
                    pass
                setattr(self, name, None)
        if self._own_ctx and getattr(self, "ctx", None) is not None:
            try:
                self.ctx.release()
            except Exception:  # noqa: BLE001
                pass
            self.ctx = None

    def __enter__(self) -> MeshRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_image(
    vertices: np.ndarray,
    faces: np.ndarray,
    size: int = 512,
    camera: Camera | None = None,
    colours: np.ndarray | None = None,
    samples: int = 4,
) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 image of ``(V, 3)`` vertices (camera framed on them by default;
    ``colours``: optional ``(V, 3)`` per-vertex linear RGB)."""
    v = np.asarray(vertices, dtype=np.float32)
    cam = camera or frame_vertices(v)
    with MeshRenderer(faces, v.shape[0], cam, size=size, samples=samples, colours=colours) as r:
        return r.render(v)
