// Decoding the room's values into what the viewer draws (docs/values.md is the specification).
// Pure functions over the room's key -> msgpack-decoded value map: no three.js, no DOM.

import { decode } from "@msgpack/msgpack";
import { extensionCodec } from "./chunks.js";

const IDENTITY = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
const MAX_PARENTS = 1024; // a parent chain deeper than this is cut (no scene has one; a stack would not)
const MAX_GROUPS = 4096; // material groups of a display mesh: one draw call each
const MAX_LIGHT = 1e6; // watts, and an emission's strength: far past any scene, within a float's reach

export function decodeValue(bytes) {
  try {
    return decode(bytes, { extensionCodec }); // chunked byte strings: see chunks.js
  } catch {
    return undefined; // a value this page cannot read is left out, never fatal
  }
}

// Raw little-endian arrays: copied, since a msgpack bin may sit at any byte offset.
export function f32(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength % 4) return new Float32Array(0);
  return new Float32Array(bytes.slice().buffer);
}

export function u32(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength % 4) return new Uint32Array(0);
  return new Uint32Array(bytes.slice().buffer);
}

export function i32(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength % 4) return new Int32Array(0);
  return new Int32Array(bytes.slice().buffer);
}

// Item segments of keys escape "%" and "/" (docs/addon.md, "Keys").
export function unescapeSegment(segment) {
  return segment.replaceAll("%2F", "/").replaceAll("%25", "%");
}

export function splitKey(key) {
  const bits = key.split("/");
  if (bits.length < 3) return null;
  return { kind: bits[0], uuid: bits[1], part: bits[2], item: bits.slice(3).map(unescapeSegment) };
}

// ---- what the page reads ------------------------------------------------------------------------

// The keys the functions below read (docs/values.md), and when: READ as they come; WHEN_DRAWN (a base
// mesh) only while an object draws it, having no display mesh. Any other key (a packed image, a
// modifier, a node's links...) is IGNORED: neither decoded, kept nor fetched, so the chunks of what the
// page never draws cost a viewer nothing. A reader added below names its keys here.
export const IGNORED = 0, READ = 1, WHEN_DRAWN = 2;
const OBJECT_PARTS = new Set(["location", "rotation", "scale", "delta", "parent", "set/hide_viewport", "set/hide"]);
const SETTINGS = {
  mat: new Set(["diffuse_color", "metallic", "roughness"]),
  light: new Set(["color", "energy", "spot_size"]),
  world: new Set(["color"]),
};
// Node trees: the nodes (their types), and the inputs read of a Principled BSDF or a Background.
const INPUTS = {
  mat: new Set(["Base Color", "Metallic", "Roughness", "Emission Color", "Emission Strength"]),
  world: new Set(["Color"]),
};

export function interest(key) {
  const parsed = splitKey(key);
  if (!parsed) return IGNORED;
  const { kind, part, item } = parsed;
  if (part === "meta" && !item.length) return READ; // an object's; its data's (a mesh's materials)
  if (kind === "obj") {
    if (part === "slot" && item.length === 1) return READ;
    return OBJECT_PARTS.has([part, ...item].join("/")) ? READ : IGNORED;
  }
  if (kind === "view") return (part === "mesh" || part === "material") && !item.length ? READ : IGNORED;
  if (kind === "mesh") return part === "geometry" && !item.length ? WHEN_DRAWN : IGNORED;
  if (part === "set" && item.length === 1 && SETTINGS[kind]?.has(item[0])) return READ;
  if (kind === "mat" || kind === "world") {
    if (part === "node" && item.length === 1) return READ;
    if (part === "in" && item.length === 2 && INPUTS[kind].has(item[1])) return READ;
  }
  return IGNORED;
}

function numbers(value, count) {
  return Array.isArray(value) && value.length === count && value.every((v) => Number.isFinite(v))
    ? value
    : null;
}

// ---- transforms --------------------------------------------------------------------------------

function multiply(a, b) {
  // 4x4, column-major
  const out = new Array(16).fill(0);
  for (let c = 0; c < 4; c++)
    for (let r = 0; r < 4; r++)
      for (let k = 0; k < 4; k++) out[c * 4 + r] += a[k * 4 + r] * b[c * 4 + k];
  return out;
}

function axisRotation(axis, angle) {
  const c = Math.cos(angle), s = Math.sin(angle);
  if (axis === "X") return [1, 0, 0, 0, 0, c, s, 0, 0, -s, c, 0, 0, 0, 0, 1];
  if (axis === "Y") return [c, 0, -s, 0, 0, 1, 0, 0, s, 0, c, 0, 0, 0, 0, 1];
  return [c, s, 0, 0, -s, c, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
}

function eulerMatrix(angles, mode) {
  // Blender's mode "XYZ" rotates about X first, then Y, then Z: R = Rz Ry Rx.
  const order = /^[XYZ]{3}$/.test(mode) ? mode : "XYZ";
  let m = IDENTITY;
  for (const axis of order) m = multiply(axisRotation(axis, angles["XYZ".indexOf(axis)]), m);
  return m;
}

function quaternionMatrix([w, x, y, z]) {
  const n = Math.hypot(w, x, y, z) || 1;
  w /= n; x /= n; y /= n; z /= n;
  return [
    1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y), 0,
    2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x), 0,
    2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y), 0,
    0, 0, 0, 1,
  ];
}

function axisAngleMatrix([angle, x, y, z]) {
  const n = Math.hypot(x, y, z);
  if (!n) return IDENTITY;
  const h = angle / 2, s = Math.sin(h) / n;
  return quaternionMatrix([Math.cos(h), x * s, y * s, z * s]);
}

export function rotationMatrix(rotation) {
  if (!rotation || typeof rotation !== "object") return IDENTITY;
  const mode = rotation.mode;
  if (mode === "QUATERNION") {
    const q = numbers(rotation.rotation_quaternion, 4);
    return q ? quaternionMatrix(q) : IDENTITY;
  }
  if (mode === "AXIS_ANGLE") {
    const a = numbers(rotation.rotation_axis_angle, 4);
    return a ? axisAngleMatrix(a) : IDENTITY;
  }
  const e = numbers(rotation.rotation_euler, 3);
  return e ? eulerMatrix(e, mode) : IDENTITY;
}

// The object's matrix relative to its parent: translation * rotation * scale, deltas included.
export function localMatrix(ob) {
  const loc = numbers(ob.location, 3) || [0, 0, 0];
  const scale = numbers(ob.scale, 3) || [1, 1, 1];
  const delta = ob.delta && typeof ob.delta === "object" ? ob.delta : {};
  const dLoc = numbers(delta.delta_location, 3) || [0, 0, 0];
  const dRot = numbers(delta.delta_rotation_euler, 3) || [0, 0, 0];
  const dScale = numbers(delta.delta_scale, 3) || [1, 1, 1];
  const mode = ob.rotation && /^[XYZ]{3}$/.test(ob.rotation.mode) ? ob.rotation.mode : "XYZ";
  const rot = multiply(eulerMatrix(dRot, mode), rotationMatrix(ob.rotation)); // the delta after, as Blender
  const s = [scale[0] * dScale[0], scale[1] * dScale[1], scale[2] * dScale[2]];
  const m = rot.slice();
  for (let c = 0; c < 3; c++) for (let r = 0; r < 3; r++) m[c * 4 + r] *= s[c];
  m[12] = loc[0] + dLoc[0];
  m[13] = loc[1] + dLoc[1];
  m[14] = loc[2] + dLoc[2];
  return m;
}

export function rowMajorToColumn(rows) {
  const m = numbers(rows, 16);
  if (!m) return IDENTITY;
  const out = new Array(16);
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) out[c * 4 + r] = m[r * 4 + c];
  return out;
}

// World matrices of every object: parent's world * parent inverse * local (cycles are cut).
export function worldMatrices(objects) {
  const world = new Map();
  const visiting = new Set();
  function of(uuid) {
    if (world.has(uuid)) return world.get(uuid);
    const ob = objects.get(uuid);
    if (!ob) return IDENTITY;
    let m = localMatrix(ob);
    const parent = ob.parent && typeof ob.parent === "object" ? ob.parent.parent : null;
    // A cycle is cut, and so is a chain deeper than any scene's (its deeper end drawn unparented).
    if (typeof parent === "string" && objects.has(parent) && !visiting.has(uuid) && visiting.size < MAX_PARENTS) {
      visiting.add(uuid);
      m = multiply(multiply(of(parent), rowMajorToColumn(ob.parent.parent_inverse)), m);
      visiting.delete(uuid);
    }
    world.set(uuid, m);
    return m;
  }
  for (const uuid of objects.keys()) of(uuid);
  return world;
}

// ---- meshes ------------------------------------------------------------------------------------

// A display mesh published by an add-on (view/<object uuid>/mesh): triangles in object space.
export function displayMesh(value) {
  if (!value || typeof value !== "object" || value.format !== 1) return null;
  const positions = f32(value.positions), normals = f32(value.normals), indices = u32(value.indices);
  const count = positions.length / 3;
  if (positions.length % 3 || normals.length !== positions.length || indices.length % 3) return null;
  if (indices.some((i) => i >= count)) return null;
  const fits = (g) => numbers(g, 3) && g.every((v) => Number.isInteger(v) && v >= 0) && g[0] + g[1] <= indices.length;
  const groups = Array.isArray(value.groups) ? value.groups.filter(fits) : [];
  if (groups.length > MAX_GROUPS) return null; // one draw call each
  const uvs = value.uvs === undefined ? null : f32(value.uvs);
  if (uvs && uvs.length !== count * 2) return null;
  return { positions, normals, indices, groups, uvs, hash: value.hash };
}

// The base mesh (mesh/<uuid>/geometry) as triangles, fan-triangulated, for objects without a display
// mesh: no modifiers, flat normals computed by the renderer. `uvs`: two numbers per triangle corner from
// the render UV map (a CORNER FLOAT2 attribute), so an image texture maps here too; null without one.
export function baseMesh(value) {
  if (!value || typeof value !== "object") return null;
  const vertices = f32(value.vertices);
  const starts = i32(value.face_starts), corners = i32(value.corner_verts);
  const count = vertices.length / 3;
  const indices = [];
  const triangleCorners = [];
  const attributes = Array.isArray(value.attributes) ? value.attributes.filter((a) => a && typeof a === "object") : [];
  const materialIndex = attributes.find((a) => a.name === "material_index");
  const materials = materialIndex ? i32(materialIndex.data) : null;
  const uvMap = renderUVs(value, attributes, corners.length);
  const perFace = [];
  // Each face's corners run from its start to the next one's: starts that go back or past the corners
  // would make faces overlap (triangles in the square of the corners, or a loop of 2^32).
  for (let f = 0; f < starts.length; f++)
    if (starts[f] < (f ? starts[f - 1] : 0) || starts[f] > corners.length) return null;
  for (let f = 0; f < starts.length; f++) {
    const start = starts[f], end = f + 1 < starts.length ? starts[f + 1] : corners.length;
    for (let c = start + 1; c + 1 < end; c++) {
      const a = corners[start], b = corners[c], d = corners[c + 1];
      if (a < count && b < count && d < count) {
        indices.push(a, b, d);
        triangleCorners.push(start, c, c + 1);
        perFace.push(materials && materials.length === starts.length ? materials[f] : 0);
      }
    }
  }
  let uvs = null;
  if (uvMap) {
    uvs = new Float32Array(triangleCorners.length * 2);
    triangleCorners.forEach((corner, i) => uvs.set(uvMap.subarray(corner * 2, corner * 2 + 2), i * 2));
  }
  return { vertices, indices: Uint32Array.from(indices), triangleMaterials: perFace, uvs };
}

// The render UV map's per-corner coordinates (else the active one's, else the first UV map's), checked
// against the corner count.
function renderUVs(value, attributes, cornerCount) {
  const maps = attributes.filter((a) => a.domain === "CORNER" && a.type === "FLOAT2");
  const named = (name) => (typeof name === "string" ? maps.find((a) => a.name === name) : undefined);
  const map = named(value.render_uv) || named(value.active_uv) || maps[0];
  if (!map) return null;
  const data = f32(map.data);
  return data.length === cornerCount * 2 && cornerCount > 0 ? data : null;
}

// ---- materials, lights, world -----------------------------------------------------------------

function colour(value) {
  const c = Array.isArray(value) && value.length >= 3 && value.slice(0, 3).every((v) => Number.isFinite(v));
  return c ? value.slice(0, 3) : null;
}

const finite = (value, lo, hi) => (Number.isFinite(value) ? Math.min(Math.max(value, lo), hi) : null);

// What the viewer draws of a material: from its Principled BSDF (the first one), else its viewport
// settings. `keys` maps the material's part keys ("set/metallic", "node/<id>", "in/<id>/<socket>").
export function materialSummary(keys) {
  const summary = { base_color: [0.8, 0.8, 0.8], metallic: 0, roughness: 0.5, emission: [0, 0, 0] };
  const setting = (name) => keys.get("set/" + name);
  summary.base_color = colour(setting("diffuse_color")) || summary.base_color;
  summary.metallic = finite(setting("metallic"), 0, 1) ?? summary.metallic;
  summary.roughness = finite(setting("roughness"), 0, 1) ?? summary.roughness;
  let principled = null;
  for (const [key, value] of [...keys].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (key.startsWith("node/") && value && value.type === "ShaderNodeBsdfPrincipled") {
      principled = key.slice(5);
      break;
    }
  }
  if (principled !== null) {
    const input = (socket) => keys.get(`in/${principled}/${socket}`);
    summary.base_color = colour(input("Base Color")) || summary.base_color;
    summary.metallic = finite(input("Metallic"), 0, 1) ?? summary.metallic;
    summary.roughness = finite(input("Roughness"), 0, 1) ?? summary.roughness;
    const emission = colour(input("Emission Color"));
    const strength = finite(input("Emission Strength"), 0, MAX_LIGHT);
    if (emission && strength !== null)
      summary.emission = emission.map((c) => Math.min(Math.max(c, 0), 1) * strength);
  }
  return summary;
}

// view/<material uuid>/material, published by an add-on: the same summary, already made.
export function publishedMaterial(value) {
  if (!value || typeof value !== "object") return null;
  const base = colour(value.base_color), emission = colour(value.emission);
  if (!base || typeof value.metallic !== "number" || typeof value.roughness !== "number") return null;
  return {
    base_color: base,
    metallic: value.metallic,
    roughness: value.roughness,
    emission: emission || [0, 0, 0],
    image: baseColorImage(value.base_color_image),
  };
}

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG = [0xff, 0xd8, 0xff];

function startsWith(bytes, magic) {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

// The image feeding a published material's base colour: PNG or JPEG bytes, or null (drawn without).
export function baseColorImage(value) {
  if (!value || typeof value !== "object" || !(value.data instanceof Uint8Array)) return null;
  const type = startsWith(value.data, PNG) ? "image/png" : startsWith(value.data, JPEG) ? "image/jpeg" : null;
  if (!type || typeof value.hash !== "string") return null;
  return {
    hash: value.hash,
    data: value.data,
    type,
    linear: value.linear === true,
    extension: typeof value.extension === "string" ? value.extension : "REPEAT",
    interpolation: typeof value.interpolation === "string" ? value.interpolation : "Linear",
    uvTransform: numbers(value.uv_transform, 6) || [1, 0, 0, 0, 1, 0],
  };
}

export function lightSummary(keys) {
  const meta = keys.get("meta");
  const set = (name) => keys.get("set/" + name);
  return {
    type: meta && typeof meta.type === "string" ? meta.type : "POINT",
    color: (colour(set("color")) || [1, 1, 1]).map((c) => Math.min(Math.max(c, 0), 1)),
    energy: finite(set("energy"), 0, MAX_LIGHT) ?? 10,
    spot_size: finite(set("spot_size"), 0.001, Math.PI) ?? Math.PI / 4,
  };
}

export function worldColour(keys) {
  for (const [key, value] of keys) {
    if (key.startsWith("node/") && value && value.type === "ShaderNodeBackground") {
      const c = colour(keys.get(`in/${key.slice(5)}/Color`));
      if (c) return c;
    }
  }
  return colour(keys.get("set/color")) || [0.05, 0.05, 0.05];
}

// ---- presence ----------------------------------------------------------------------------------

// An artist's camera: the inverse of their view matrix (presence view_matrix, column-major).
export function viewToWorld(view) {
  const m = numbers(view, 16);
  if (!m) return null;
  // The view matrix is a rigid transform: its inverse is the transposed rotation and -R^T t.
  const out = [m[0], m[4], m[8], 0, m[1], m[5], m[9], 0, m[2], m[6], m[10], 0, 0, 0, 0, 1];
  const t = [m[12], m[13], m[14]];
  for (let r = 0; r < 3; r++) out[12 + r] = -(out[r] * t[0] + out[4 + r] * t[1] + out[8 + r] * t[2]);
  return out;
}
