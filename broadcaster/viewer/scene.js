// The three.js side of the viewer: the room's objects, meshes, materials, lights and world colour, and
// the artists (camera frustums in their colour, their names, their selection). Blender's axes are kept
// (Z up). What each value means is in docs/values.md; decoding is values.js.

import * as THREE from "three";
import {
  IGNORED,
  READ,
  baseMesh,
  decodeValue,
  displayMesh,
  interest,
  lightSummary,
  materialSummary,
  publishedMaterial,
  splitKey,
  viewToWorld,
  worldColour,
  worldMatrices,
} from "./values.js";
import { ChunkGate } from "./chunks.js";
import { Textures } from "./textures.js";

const SMOOTHING_SECONDS = 0.05; // a drag arrives at ~30 updates/s: ease between them

export class RoomScene {
  constructor(renderer, fetchBlobs) {
    this.renderer = renderer;
    // Values whose byte strings travel as chunks wait for them; one left out may change what an object
    // draws (a display mesh that never comes: its base mesh instead).
    this.gate = new ChunkGate(fetchBlobs, (key) => this.touch(key));
    this.textures = new Textures();
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(0.05, 0.05, 0.05);
    const sky = new THREE.HemisphereLight(0xffffff, 0x505050, 1.2);
    sky.position.set(0, 0, 1); // Blender's Z up
    this.scene.add(sky);
    this.datablocks = new Map(); // "kind/uuid" -> Map(part key -> decoded value)
    this.dirty = new Set();
    this.objects = new Map(); // object uuid -> { node, target: {p, q, s}, meshSource, ... }
    this.materials = new Map(); // material uuid -> THREE.Material
    this.artists = new Map(); // client id -> { state, frustum, label, boxes }
    this.baseMeshes = new Set(); // mesh/<uuid>/geometry keys an object draws (it has no display mesh)
    this.live = false; // the snapshot is in: what an object draws is known
    this.changed = true;
  }

  // ---- room state --------------------------------------------------------------------------------

  reset() {
    for (const uuid of [...this.objects.keys()]) this.removeObject(uuid);
    this.datablocks.clear();
    this.dirty.clear();
    this.gate.reset();
    this.baseMeshes.clear();
    this.live = false;
    this.changed = true;
  }

  // The snapshot is in: objects without a display mesh may now fetch their base meshes (before, a
  // display mesh later in the snapshot could still come).
  goLive() {
    this.live = true;
    this.changed = true;
    this.update();
  }

  apply(items) {
    for (const [key, value] of items) {
      const how = interest(key);
      if (how === IGNORED) continue; // never drawn: neither decoded nor fetched
      if (value === null) {
        this.gate.incoming(key, null);
        this.store(key, null);
        continue;
      }
      try {
        const decoded = decodeValue(value);
        if (decoded === undefined) throw new TypeError("not a value");
        const ready = this.gate.incoming(key, decoded, how === READ || this.baseMeshes.has(key));
        if (ready !== null) this.store(key, ready);
        else if (this.gate.waiting.has(key)) this.touch(key); // on its way
      } catch (error) {
        // Unreadable: left out, and a value it replaces that still waits is not shown; the rest of the
        // message goes on (docs/values.md).
        if (!(error instanceof TypeError && error.message === "not a value")) console.warn(`${key} left out:`, error);
        this.gate.drop(key);
        this.touch(key);
      }
    }
  }

  // A display mesh began or stopped waiting for its chunks: its object is looked at again (it fetches its
  // base mesh only when no display mesh is on its way). Nothing else draws differently for that.
  touch(key) {
    const parsed = splitKey(key);
    if (!parsed || parsed.kind !== "view" || parsed.part !== "mesh") return;
    this.dirty.add(`view/${parsed.uuid}`);
    this.changed = true;
  }

  // A blob_data: the values it completes take their place.
  arrived(hash, data) {
    for (const [key, value] of this.gate.arrived(hash, data)) this.store(key, value);
  }

  store(key, decoded) {
    const parsed = splitKey(key);
    if (!parsed) return;
    const id = `${parsed.kind}/${parsed.uuid}`;
    let parts = this.datablocks.get(id);
    const part = [parsed.part, ...parsed.item].join("/");
    if (decoded === null) {
      if (parts) parts.delete(part);
      if (parts && parts.size === 0) this.datablocks.delete(id);
    } else {
      if (!parts) this.datablocks.set(id, (parts = new Map()));
      parts.set(part, decoded);
    }
    this.dirty.add(id);
    this.changed = true;
  }

  parts(kind, uuid) {
    return this.datablocks.get(`${kind}/${uuid}`) || new Map();
  }

  // ---- rebuilding what changed ---------------------------------------------------------------------

  update() {
    if (!this.changed) return;
    this.changed = false;
    const dirty = this.dirty;
    this.dirty = new Set();
    const objects = new Map();
    for (const [id, parts] of this.datablocks) {
      if (!id.startsWith("obj/")) continue;
      const ob = Object.fromEntries(parts);
      objects.set(id.slice(4), ob);
    }
    for (const uuid of [...this.objects.keys()]) if (!objects.has(uuid)) this.removeObject(uuid);
    const dirtyKinds = new Set([...dirty].map((id) => id.split("/")[0]));
    const materialsDirty = [...dirty].some(
      (id) => id.startsWith("mat/") || (id.startsWith("view/") && this.parts("view", id.slice(5)).has("material")),
    );
    const replaced = [];
    for (const id of dirty) {
      if (!id.startsWith("mat/") && !id.startsWith("view/")) continue;
      const uuid = id.slice(id.indexOf("/") + 1);
      if (this.materials.has(uuid)) replaced.push(this.materials.get(uuid));
      this.materials.delete(uuid);
    }
    const matrices = worldMatrices(objects);
    let rebuilt = false;
    for (const [uuid, ob] of objects) {
      try {
        rebuilt = this.updateObject(uuid, ob, matrices, dirty, dirtyKinds, materialsDirty) || rebuilt;
      } catch (error) {
        // A value this page did not expect: its object is left out, the others go on (docs/values.md).
        console.warn(`object ${uuid} left out:`, error);
        this.removeObject(uuid);
      }
    }
    if (this.live) this.fetchBaseMeshes();
    if ([...dirty].some((id) => id.startsWith("world/"))) this.updateWorld();
    if (rebuilt) for (const artist of this.artists.values()) this.drawSelection(artist);
    if (materialsDirty) {
      // Every mesh was rebuilt with the new materials: free the GPU side of the old ones.
      for (const material of replaced) {
        if (material.map) material.map.dispose();
        material.dispose();
      }
      this.textures.sweep(this.materials.values());
    }
  }

  // One object's node, transform and (when what it is made of changed) content; whether it was rebuilt.
  updateObject(uuid, ob, matrices, dirty, dirtyKinds, materialsDirty) {
    let record = this.objects.get(uuid);
    if (!record) {
      record = { node: new THREE.Group(), content: null, source: null, current: null };
      record.node.matrixAutoUpdate = false;
      record.node.userData.uuid = uuid;
      this.scene.add(record.node);
      this.objects.set(uuid, record);
    }
    record.ob = ob;
    const m = new THREE.Matrix4().fromArray(matrices.get(uuid));
    const p = new THREE.Vector3(), q = new THREE.Quaternion(), s = new THREE.Vector3();
    m.decompose(p, q, s);
    record.target = { p, q, s };
    if (!record.current) record.current = { p: p.clone(), q: q.clone(), s: s.clone() };
    const hidden = ob["set/hide_viewport"] === true || ob["set/hide"] === true;
    record.node.visible = !hidden;
    const meta = ob.meta && typeof ob.meta === "object" ? ob.meta : {};
    const dataId = typeof meta.data === "string" && typeof meta.data_kind === "string" ? `${meta.data_kind}/${meta.data}` : null;
    // A transform change (a drag) keeps the geometry: only what the content is made of rebuilds it.
    const signature = JSON.stringify([meta, Object.keys(ob).filter((k) => k.startsWith("slot/")).map((k) => ob[k])]);
    if (
      record.signature !== signature || dirty.has(`view/${uuid}`) || (dataId && dirty.has(dataId)) ||
      materialsDirty || dirtyKinds.has("light")
    ) {
      record.signature = signature;
      this.rebuildContent(uuid, record, meta);
      return true;
    }
    return false;
  }

  // The base meshes objects draw are fetched; those none draws any more stop being fetched.
  fetchBaseMeshes() {
    const wanted = new Set();
    for (const record of this.objects.values()) if (record.base) wanted.add(record.base);
    for (const key of this.baseMeshes) if (!wanted.has(key)) this.gate.park(key);
    this.baseMeshes = wanted;
    for (const key of wanted) {
      const value = this.gate.want(key);
      if (value !== null) this.store(key, value);
    }
  }

  rebuildContent(uuid, record, meta) {
    record.base = null; // the base mesh key it draws
    if (meta.type === "LIGHT" && meta.data) {
      const light = this.makeLight(lightSummary(this.parts("light", meta.data)));
      this.setContent(record, light, `light:${JSON.stringify(lightSummary(this.parts("light", meta.data)))}`);
      return;
    }
    const display = displayMesh(this.parts("view", uuid).get("mesh"));
    if (display) {
      const geometry = new THREE.BufferGeometry();
      geometry.setAttribute("position", new THREE.BufferAttribute(display.positions, 3));
      geometry.setAttribute("normal", new THREE.BufferAttribute(display.normals, 3));
      if (display.uvs) geometry.setAttribute("uv", new THREE.BufferAttribute(display.uvs, 2));
      geometry.setIndex(new THREE.BufferAttribute(display.indices, 1));
      const slots = this.slotMaterials(record.ob, meta);
      const groups = display.groups.length ? display.groups : [[0, display.indices.length, 0]];
      for (const [start, count, slot] of groups) geometry.addGroup(start, count, Math.min(slot, slots.length - 1));
      this.setContent(record, new THREE.Mesh(geometry, slots), `view:${display.hash}`);
      return;
    }
    if (meta.data_kind === "mesh" && meta.data) {
      // While its display mesh is on its way, the base mesh is drawn if here, not fetched.
      if (!this.gate.waiting.has(`view/${uuid}/mesh`)) record.base = `mesh/${meta.data}/geometry`;
      const base = baseMesh(this.parts("mesh", meta.data).get("geometry"));
      if (!base) return this.setContent(record, null, null);
      const slots = this.slotMaterials(record.ob, meta);
      // Triangles sorted by material slot, one group each; flat normals from the triangles.
      const order = [...base.triangleMaterials.keys()].sort(
        (a, b) => base.triangleMaterials[a] - base.triangleMaterials[b],
      );
      const positions = new Float32Array(order.length * 9);
      const uvs = base.uvs ? new Float32Array(order.length * 6) : null;
      const geometry = new THREE.BufferGeometry();
      let groupStart = 0;
      order.forEach((t, i) => {
        for (let c = 0; c < 3; c++) {
          const v = base.indices[t * 3 + c];
          positions.set(base.vertices.subarray(v * 3, v * 3 + 3), i * 9 + c * 3);
        }
        if (uvs) uvs.set(base.uvs.subarray(t * 6, t * 6 + 6), i * 6);
        const slot = base.triangleMaterials[t];
        const next = order[i + 1];
        if (next === undefined || base.triangleMaterials[next] !== slot) {
          geometry.addGroup(groupStart * 3, (i + 1 - groupStart) * 3, Math.max(0, Math.min(slot, slots.length - 1)));
          groupStart = i + 1;
        }
      });
      geometry.setAttribute("position", new THREE.BufferAttribute(positions, 3));
      if (uvs) geometry.setAttribute("uv", new THREE.BufferAttribute(uvs, 2));
      geometry.computeVertexNormals();
      this.setContent(record, new THREE.Mesh(geometry, slots), "base");
      return;
    }
    if (meta.type === "EMPTY") {
      if (record.source !== "empty") this.setContent(record, new THREE.AxesHelper(0.5), "empty");
      return;
    }
    this.setContent(record, null, null);
  }

  setContent(record, content, source) {
    if (record.content) {
      record.node.remove(record.content);
      if (record.content.geometry) record.content.geometry.dispose();
    }
    record.content = content;
    record.source = source;
    if (content) record.node.add(content);
  }

  removeObject(uuid) {
    const record = this.objects.get(uuid);
    if (!record) return;
    this.setContent(record, null, null);
    this.scene.remove(record.node);
    this.objects.delete(uuid);
  }

  slotMaterials(ob, meta) {
    // Slot i: the object's own material when the slot links OBJECT, else the data's (mesh meta).
    const dataMaterials = (this.parts(meta.data_kind, meta.data).get("meta") || {}).materials;
    const count = Math.max(Array.isArray(dataMaterials) ? dataMaterials.length : 0, 1);
    const out = [];
    for (let i = 0; i < count; i++) {
      const slot = ob[`slot/${i}`];
      const uuid =
        Array.isArray(slot) && slot[0] === "OBJECT" ? slot[1] : Array.isArray(dataMaterials) ? dataMaterials[i] : null;
      out.push(this.material(typeof uuid === "string" ? uuid : null));
    }
    return out;
  }

  material(uuid) {
    const key = uuid || "";
    let material = this.materials.get(key);
    if (!material) {
      // An add-on's summary (view/<material>/material) when there is one: it reads the node tree with
      // Blender's own rules; else what this page can read of the material's keys.
      const published = uuid ? publishedMaterial(this.parts("view", uuid).get("material")) : null;
      const summary = published || materialSummary(uuid ? this.parts("mat", uuid) : new Map());
      material = new THREE.MeshStandardMaterial({
        color: new THREE.Color(...summary.base_color),
        metalness: summary.metallic,
        roughness: summary.roughness,
        emissive: new THREE.Color(...summary.emission.map((c) => Math.min(c, 1))),
        side: THREE.DoubleSide,
      });
      // Only a display mesh has UVs; the base mesh draws the base colour.
      if (summary.image) this.textures.use(material, summary.image);
      this.materials.set(key, material);
    }
    return material;
  }

  makeLight(summary) {
    const color = new THREE.Color(...summary.color);
    let light;
    if (summary.type === "SUN") {
      light = new THREE.DirectionalLight(color, summary.energy);
      light.position.set(0, 0, 0);
      light.target.position.set(0, 0, -1);
      light.add(light.target);
    } else if (summary.type === "SPOT") {
      light = new THREE.SpotLight(color, summary.energy / (4 * Math.PI), 0, summary.spot_size / 2);
      light.target.position.set(0, 0, -1);
      light.add(light.target);
    } else {
      light = new THREE.PointLight(color, summary.energy / (4 * Math.PI));
    }
    const group = new THREE.Group();
    group.add(light);
    const marker = new THREE.Mesh(new THREE.SphereGeometry(0.08, 8, 6), new THREE.MeshBasicMaterial({ color }));
    group.add(marker);
    return group;
  }

  updateWorld() {
    for (const [id, parts] of this.datablocks) {
      if (id.startsWith("world/")) {
        this.scene.background = new THREE.Color(...worldColour(parts));
        return;
      }
    }
  }

  // Move every object towards where the room says it is: a drag at 30 updates/s moves smoothly.
  animate(dt) {
    const k = 1 - Math.exp(-dt / SMOOTHING_SECONDS);
    let moving = false;
    for (const record of this.objects.values()) {
      const { current, target } = record;
      if (!target) continue;
      if (current.p.distanceToSquared(target.p) > 1e-10 || current.s.distanceToSquared(target.s) > 1e-10 ||
          1 - Math.abs(current.q.dot(target.q)) > 1e-10) {
        current.p.lerp(target.p, k);
        current.s.lerp(target.s, k);
        current.q.slerp(target.q, k);
        moving = true;
      } else {
        current.p.copy(target.p); current.s.copy(target.s); current.q.copy(target.q);
      }
      record.node.matrix.compose(current.p, current.q, current.s);
      record.node.matrixWorldNeedsUpdate = true;
    }
    return moving;
  }

  // ---- artists ------------------------------------------------------------------------------------

  setArtist(id, state, replace) {
    let artist = this.artists.get(id);
    if (!artist) {
      artist = { state: {}, group: new THREE.Group(), boxes: [] };
      artist.group.matrixAutoUpdate = false;
      this.scene.add(artist.group);
      this.artists.set(id, artist);
    }
    artist.state = replace ? { ...state } : { ...artist.state, ...state };
    this.drawArtist(artist);
  }

  removeArtist(id) {
    const artist = this.artists.get(id);
    if (!artist) return;
    this.scene.remove(artist.group);
    for (const box of artist.boxes) this.scene.remove(box);
    this.artists.delete(id);
  }

  drawArtist(artist) {
    const { state } = artist;
    const colour = Array.isArray(state.color) ? new THREE.Color(...state.color.slice(0, 3)) : new THREE.Color(1, 0.6, 0.1);
    artist.group.clear();
    const world = viewToWorld(state.view_matrix);
    artist.group.visible = world !== null && state.kind !== "viewer";
    if (world) {
      artist.group.matrix.fromArray(world);
      artist.group.matrixWorldNeedsUpdate = true;
      // A pyramid from the eye along the view direction (-Z in view space), with an "up" mark.
      const d = 0.6, w = 0.4, h = 0.25;
      const corners = [[-w, -h], [w, -h], [w, h], [-w, h]].map(([x, y]) => new THREE.Vector3(x, y, -d));
      const eye = new THREE.Vector3();
      const points = [];
      for (let i = 0; i < 4; i++) points.push(eye, corners[i], corners[i], corners[(i + 1) % 4]);
      points.push(new THREE.Vector3(-w / 2, h, -d), new THREE.Vector3(0, h * 1.6, -d));
      points.push(new THREE.Vector3(0, h * 1.6, -d), new THREE.Vector3(w / 2, h, -d));
      const lines = new THREE.LineSegments(
        new THREE.BufferGeometry().setFromPoints(points),
        new THREE.LineBasicMaterial({ color: colour }),
      );
      artist.group.add(lines);
      artist.group.add(this.label(state.name || "artist", colour));
    }
    this.drawSelection(artist);
  }

  // Boxes in the artist's colour around what they selected (again whenever objects get their content).
  drawSelection(artist) {
    const { state } = artist;
    const colour = Array.isArray(state.color) ? new THREE.Color(...state.color.slice(0, 3)) : new THREE.Color(1, 0.6, 0.1);
    for (const box of artist.boxes) this.scene.remove(box);
    artist.boxes = [];
    for (const uuid of Array.isArray(state.selection) ? state.selection : []) {
      const record = this.objects.get(uuid);
      if (!record || !record.content) continue;
      const box = new THREE.BoxHelper(record.node, colour);
      box.userData.follows = record.node;
      this.scene.add(box);
      artist.boxes.push(box);
    }
  }

  label(text, colour) {
    const canvas = document.createElement("canvas");
    canvas.width = 256;
    canvas.height = 64;
    const ctx = canvas.getContext("2d");
    ctx.font = "bold 28px system-ui, sans-serif";
    ctx.fillStyle = `#${colour.getHexString()}`;
    ctx.fillText(text.slice(0, 24), 8, 40);
    const sprite = new THREE.Sprite(
      new THREE.SpriteMaterial({ map: new THREE.CanvasTexture(canvas), depthTest: false, transparent: true }),
    );
    sprite.scale.set(1.2, 0.3, 1);
    sprite.position.set(0, 0.55, -0.6);
    return sprite;
  }

  refreshSelections() {
    for (const artist of this.artists.values())
      for (const box of artist.boxes) box.setFromObject(box.userData.follows);
  }

  // ---- framing ------------------------------------------------------------------------------------

  bounds(uuids) {
    const box = new THREE.Box3();
    for (const [uuid, record] of this.objects) {
      if (uuids && !uuids.has(uuid)) continue;
      if (!record.content || !record.node.visible) continue;
      const own = new THREE.Box3().setFromObject(record.node);
      // An object at NaN or 1e30 (a value the page draws as it is) does not take the framing with it.
      const sane = [own.min, own.max].every((v) => [v.x, v.y, v.z].every((c) => Math.abs(c) < 1e9));
      if (sane) box.union(own);
    }
    return box;
  }
}
