// The 3D view: three.js loads the job's .glb (mesh + morph-target animation) and plays it with an
// AnimationMixer whose time is taken from a clock the page supplies (the <audio> element's currentTime),
// so the face stays in sync with the sound when it plays, pauses or is scrubbed.
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';

const SKIN = 0xd8b6a0;
const BACKGROUND = 0xdfe3ea;
const FIELD_OF_VIEW = 25; // degrees; a long lens flatters faces
const FRAME_MARGIN = 1.25; // the face fills 1 / FRAME_MARGIN of the view

export class FaceViewer {
  /**
   * @param {HTMLElement} container element the canvas is put in (square, sized by CSS)
   * @param {() => number} clock seconds into the animation (e.g. () => audio.currentTime)
   */
  constructor(container, clock) {
    this.container = container;
    this.clock = clock;
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    this.renderer.domElement.id = 'face-canvas';
    container.appendChild(this.renderer.domElement);

    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(BACKGROUND);
    this.camera = new THREE.PerspectiveCamera(FIELD_OF_VIEW, 1, 0.001, 1000);
    this.scene.add(this.camera);
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x404050, 1.4));
    const key = new THREE.DirectionalLight(0xffffff, 2.2);
    key.position.set(0.6, 0.8, 1.0);
    this.camera.add(key); // the key light turns with the view
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.enableDamping = true;

    this.model = null;
    this.mixer = null;
    this.clip = null;
    this.morphTargets = 0;
    this.framesDrawn = 0;
    this.animationTime = 0;

    this.resize();
    new ResizeObserver(() => this.resize()).observe(container);
    this.renderer.setAnimationLoop(() => this.draw());
  }

  resize() {
    const w = Math.max(1, this.container.clientWidth);
    const h = Math.max(1, this.container.clientHeight);
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
  }

  /** Load a .glb with one animation (morph-target weights); throws an Error with a message for the page. */
  async load(url) {
    let gltf;
    try {
      gltf = await new GLTFLoader().loadAsync(url);
    } catch (err) {
      throw new Error(`cannot load the 3D face (${url}): ${err && err.message ? err.message : err}`);
    }
    this.unload();
    let morphTargets = 0;
    gltf.scene.traverse((node) => {
      if (!node.isMesh) return;
      const geometry = node.geometry;
      if (!geometry.attributes.normal) geometry.computeVertexNormals();
      morphTargets = Math.max(morphTargets, (geometry.morphAttributes.position || []).length);
      // glTF's default material (none in the file) is fully metallic, black without an environment map:
      // show such meshes in a matte skin colour instead.
      if (!node.material || !node.material.isMeshStandardMaterial || node.material.metalness >= 1) {
        node.material = new THREE.MeshStandardMaterial({ color: SKIN, roughness: 0.6, metalness: 0.0 });
      }
      node.material.side = THREE.DoubleSide;
      node.frustumCulled = false; // morphed vertices may leave the rest pose's bounding box
    });
    this.model = gltf.scene;
    this.scene.add(this.model);
    this.frame(this.model);

    // A face that never moves (or a single frame) is exported without an animation: show it still.
    // the speech clip by name (a retargeted avatar keeps its own animations first), else the first one
    const clips = gltf.animations || [];
    this.clip = clips.find((c) => c.name === 'speech') || clips[0] || null;
    if (this.clip) {
      this.mixer = new THREE.AnimationMixer(this.model);
      this.mixer.clipAction(this.clip).play();
    }
    this.morphTargets = morphTargets;
    this.animationTime = 0;
    return { duration: this.clip ? this.clip.duration : 0, morphTargets, animated: this.clip !== null };
  }

  /** Current morph-target weights of every mesh (a flat array; empty before a face is loaded). */
  influences() {
    const out = [];
    if (this.model) {
      this.model.traverse((node) => {
        if (node.isMesh && node.morphTargetInfluences) out.push(...node.morphTargetInfluences);
      });
    }
    return out;
  }

  unload() {
    if (!this.model) return;
    this.scene.remove(this.model);
    this.model.traverse((node) => {
      if (node.isMesh) {
        node.geometry.dispose();
        node.material.dispose();
      }
    });
    this.model = null;
    this.mixer = null;
    this.clip = null;
  }

  /** Point the camera at the front (+Z, glTF's forward) of the object so that it fills the view. */
  frame(object) {
    // The rest-pose positions only: three.js widens mesh bounds by every morph target's extent.
    object.updateMatrixWorld(true);
    const box = new THREE.Box3();
    object.traverse((node) => {
      if (!node.isMesh) return;
      const part = new THREE.Box3().setFromBufferAttribute(node.geometry.attributes.position);
      box.union(part.applyMatrix4(node.matrixWorld));
    });
    if (box.isEmpty()) box.setFromObject(object);
    const center = box.getCenter(new THREE.Vector3());
    const size = box.getSize(new THREE.Vector3());
    const radius = Math.max(size.x, size.y, size.z, 1e-6) / 2;
    const distance = (FRAME_MARGIN * radius) / Math.tan(THREE.MathUtils.degToRad(FIELD_OF_VIEW / 2)) + size.z / 2;
    this.camera.near = distance / 100;
    this.camera.far = distance * 100;
    this.camera.position.set(center.x, center.y, center.z + distance);
    this.camera.updateProjectionMatrix();
    this.controls.target.copy(center);
    this.controls.update();
  }

  draw() {
    if (this.mixer && this.clip) {
      const t = Math.min(Math.max(this.clock() || 0, 0), Math.max(this.clip.duration - 1e-4, 0));
      this.mixer.setTime(t);
      this.animationTime = t;
    }
    this.controls.update();
    this.renderer.render(this.scene, this.camera);
    this.framesDrawn += 1;
  }
}
