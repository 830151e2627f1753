// The viewer page: reads the room and the share token from its own URL, connects, renders, and lets the
// reviewer orbit, frame the selection and follow an artist. `window.blendsyncViewer` exposes its state
// for tests and benchmarks (docs/values.md).

import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { RoomConnection } from "./connection.js";
import { RoomScene } from "./scene.js";
import { viewToWorld } from "./values.js";

const $ = (id) => document.getElementById(id);
const room = decodeURIComponent(location.pathname.slice("/view/".length));
const token = new URLSearchParams(location.search).get("token") || "";
const fixedCamera = new URLSearchParams(location.hash.slice(1)).get("camera"); // "x,y,z,tx,ty,tz"

const state = {
  status: "connecting",
  text: "",
  frames: 0,
  loaded: false, // the snapshot is in and has been drawn
  firstFrameMs: null, // page start -> first frame drawn with the room's objects
  following: null,
  follow: (id) => follow(id),
  position(uuid) {
    const record = scene.objects.get(uuid);
    return record ? record.node.matrix.elements.slice(12, 15) : null;
  },
  connections: () => connection.connections, // WebSocket connections opened (1 unless it reconnected)
  textures: () => scene.textures.loaded(), // content hashes of the images decoded and drawn
  waiting: () => scene.gate.waiting.size, // values held until their chunks are fetched
  deferred: () => scene.gate.deferred.size, // values whose chunks are fetched once drawn (base meshes)
  blobsAsked: () => connection.blobsAsked, // hashes asked for with blob_get on every connection
  objectCount() {
    return scene.objects.size;
  },
  source(uuid) {
    // "view:<hash>" (a published display mesh), "base" (the base mesh), "light:…", "empty", or null
    const record = scene.objects.get(uuid);
    return record ? record.source : null;
  },
};
window.blendsyncViewer = state;

const canvas = $("view");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio || 1);
const scene = new RoomScene(renderer, (hashes) => connection.getBlobs(hashes));
const camera = new THREE.PerspectiveCamera(50, 1, 0.05, 5000);
camera.up.set(0, 0, 1); // Blender's Z up
camera.position.set(8, -8, 6);
const headlight = new THREE.DirectionalLight(0xffffff, 1.5); // so what the reviewer looks at is lit
headlight.position.set(0.3, 0.5, 1);
camera.add(headlight);
scene.scene.add(camera);
const controls = new OrbitControls(camera, canvas);
controls.enableDamping = false;
controls.addEventListener("start", () => follow(null));
if (fixedCamera) {
  const v = fixedCamera.split(",").map(Number);
  if (v.length === 6 && v.every(Number.isFinite)) {
    camera.position.set(v[0], v[1], v[2]);
    controls.target.set(v[3], v[4], v[5]);
  }
}
controls.update();

$("room").textContent = room;
document.title = `${room} - blendsync viewer`;

function setStatus(status, text) {
  state.status = status;
  state.text = text;
  $("status").className = status;
  $("status-text").textContent = text;
  if (status === "expired" || status === "error") {
    $("message").textContent = text;
    $("message").hidden = false;
  }
  if (status === "connected" && !state.loaded) {
    scene.goLive(); // base meshes are fetched from now on, for the objects without a display mesh
    if (!fixedCamera) frame(null);
    state.loaded = true;
  }
}

const clients = new Map();
function drawArtists() {
  const list = $("artists");
  list.replaceChildren();
  for (const [id, c] of clients) {
    if (c.kind === "viewer") continue;
    const li = document.createElement("li");
    const colour = Array.isArray(c.color) ? new THREE.Color(...c.color.slice(0, 3)) : new THREE.Color(1, 0.6, 0.1);
    li.style.setProperty("--colour", `#${colour.getHexString()}`);
    li.textContent = `${c.name || "artist"}  ${c.mode ? c.mode.toLowerCase() + "  " : ""}frame ${c.frame ?? "-"}`;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = state.following === id ? "Following" : "Follow";
    button.disabled = !Array.isArray(c.view_matrix);
    button.onclick = () => follow(id);
    li.appendChild(button);
    list.appendChild(li);
  }
}

function follow(id) {
  state.following = id;
  $("free").hidden = id === null;
  drawArtists();
}
$("free").onclick = () => follow(null);

function frame(uuids) {
  const box = scene.bounds(uuids);
  if (box.isEmpty()) return;
  const centre = box.getCenter(new THREE.Vector3());
  const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 0.5);
  const distance = radius / Math.sin(THREE.MathUtils.degToRad(camera.fov / 2));
  const direction = camera.position.clone().sub(controls.target).normalize();
  controls.target.copy(centre);
  camera.position.copy(centre).addScaledVector(direction, distance);
  controls.update();
}
$("frame").onclick = () => {
  const selected = new Set();
  for (const c of clients.values()) for (const uuid of c.selection || []) selected.add(uuid);
  follow(null);
  frame(selected.size ? selected : null);
};

const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
const connection = new RoomConnection({
  url: wsUrl,
  room,
  token,
  onStatus: setStatus,
  onReset: () => {
    scene.reset();
    state.loaded = false;
  },
  onJoined: () => scene.gate.resend(),
  onItems: (items) => scene.apply(items),
  onBlob: (hash, data) => scene.arrived(hash, data),
  onClients: (list) => {
    for (const id of [...clients.keys()]) {
      clients.delete(id);
      scene.removeArtist(id);
    }
    for (const c of list) {
      clients.set(c.id, c);
      scene.setArtist(c.id, c, true);
    }
    drawArtists();
  },
  onClient: (id, fields, whole) => {
    const c = whole ? { ...fields } : { ...(clients.get(id) || { id }), ...fields };
    clients.set(id, c);
    scene.setArtist(id, c, true);
    drawArtists();
  },
  onClientLeft: (id) => {
    clients.delete(id);
    scene.removeArtist(id);
    if (state.following === id) follow(null);
    drawArtists();
  },
});
connection.start();

function resize() {
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (canvas.width !== Math.floor(width * renderer.getPixelRatio()) || canvas.height !== Math.floor(height * renderer.getPixelRatio())) {
    renderer.setSize(width, height, false);
    camera.aspect = width / Math.max(height, 1);
    camera.updateProjectionMatrix();
  }
}

let last = performance.now();
function tick(now) {
  requestAnimationFrame(tick); // first: whatever this frame meets, the next one comes
  const dt = Math.min((now - last) / 1000, 0.25);
  last = now;
  resize();
  try {
    scene.update();
  } catch (error) {
    console.warn("a room change could not be drawn:", error); // the next frames still come
  }
  scene.animate(dt);
  scene.refreshSelections();
  for (const [id, artist] of scene.artists) {
    // The followed artist's frustum would sit on the camera itself.
    artist.group.visible = id !== state.following && Array.isArray(artist.state.view_matrix) && artist.state.kind !== "viewer";
  }
  if (state.following !== null) {
    const world = viewToWorld((clients.get(state.following) || {}).view_matrix);
    if (world) {
      const m = new THREE.Matrix4().fromArray(world);
      m.decompose(camera.position, camera.quaternion, new THREE.Vector3());
      camera.updateMatrixWorld();
    }
  }
  renderer.render(scene.scene, camera);
  state.frames += 1;
  if (state.loaded && state.firstFrameMs === null) state.firstFrameMs = now;
}
requestAnimationFrame(tick);
