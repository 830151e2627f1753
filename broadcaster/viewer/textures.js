// Image textures of materials (docs/values.md, "Base colour image"): PNG or JPEG bytes decoded by the
// browser (createImageBitmap over a Blob, off the main thread), one decode per content hash, shared by
// every material that shows the same image with its own wrapping and UV transform.

import * as THREE from "three";

const WRAP = {
  REPEAT: THREE.RepeatWrapping,
  MIRROR: THREE.MirroredRepeatWrapping,
  EXTEND: THREE.ClampToEdgeWrapping,
  CLIP: THREE.ClampToEdgeWrapping, // (Blender shows transparent outside; the viewer stretches the edge)
};

const MAX_SIDE = 2048; // docs/values.md: a base colour image is at most this many pixels a side

// [width, height] from a PNG's header or a JPEG's frame marker, read before anything is decoded (a small
// file may decode to gigabytes); null when there is none.
export function imageSize(bytes) {
  const at = (i) => bytes[i] ?? 0;
  const u32 = (i) => ((at(i) << 24) | (at(i + 1) << 16) | (at(i + 2) << 8) | at(i + 3)) >>> 0;
  if (bytes.length >= 24 && at(0) === 0x89 && at(1) === 0x50 && at(12) === 0x49 && at(15) === 0x52) return [u32(16), u32(20)];
  if (at(0) !== 0xff || at(1) !== 0xd8) return null;
  for (let i = 2; i + 9 < bytes.length; ) {
    if (at(i) !== 0xff) return null;
    const marker = at(i + 1);
    const length = (at(i + 2) << 8) | at(i + 3);
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker))
      return [(at(i + 7) << 8) | at(i + 8), (at(i + 5) << 8) | at(i + 6)];
    i += 2 + length;
  }
  return null;
}

export class Textures {
  constructor() {
    this.images = new Map(); // hash -> { bitmap (null while decoding), users: Map(material -> image), failed }
  }

  // Give `material` the image, now if decoded, else once it is (until then it shows its base colour);
  // with the image its colour is white: the image is the base colour, as in Blender.
  use(material, image) {
    let entry = this.images.get(image.hash);
    if (!entry) {
      entry = { bitmap: null, users: new Map(), failed: false };
      this.images.set(image.hash, entry);
      const size = imageSize(image.data);
      if (!size || size[0] > MAX_SIDE || size[1] > MAX_SIDE) {
        entry.failed = true; // larger than values.md allows (or no size to read): not decoded at all
        return;
      }
      const blob = new Blob([image.data], { type: image.type });
      createImageBitmap(blob, { imageOrientation: "flipY" }).then(
        (bitmap) => {
          entry.bitmap = bitmap;
          for (const [user, options] of entry.users) this.assign(user, bitmap, options);
          entry.users.clear();
        },
        () => {
          entry.failed = true; // not an image this browser can decode: the base colour stays
        },
      );
    }
    material.userData.imageHash = image.hash;
    if (entry.bitmap) this.assign(material, entry.bitmap, image);
    else if (!entry.failed) entry.users.set(material, image);
  }

  assign(material, bitmap, image) {
    const texture = new THREE.Texture(bitmap);
    texture.flipY = false; // flipped when decoded: UV (0, 0) is the image's bottom left, as in Blender
    texture.colorSpace = image.linear ? THREE.NoColorSpace : THREE.SRGBColorSpace;
    texture.wrapS = texture.wrapT = WRAP[image.extension] ?? THREE.RepeatWrapping;
    const nearest = image.interpolation === "Closest";
    texture.magFilter = nearest ? THREE.NearestFilter : THREE.LinearFilter;
    texture.minFilter = nearest ? THREE.NearestFilter : THREE.LinearMipmapLinearFilter;
    const [a, b, c, d, e, f] = image.uvTransform;
    texture.matrixAutoUpdate = false;
    texture.matrix.set(a, b, c, d, e, f, 0, 0, 1);
    texture.needsUpdate = true;
    material.map = texture;
    material.color.setRGB(1, 1, 1);
    material.needsUpdate = true;
  }

  // Forget decoded images no material shows any more.
  sweep(materials) {
    const used = new Set([...materials].map((m) => m.userData.imageHash).filter(Boolean));
    for (const [hash, entry] of this.images) {
      if (used.has(hash)) continue;
      if (entry.bitmap) entry.bitmap.close();
      this.images.delete(hash);
    }
  }

  loaded() {
    return [...this.images].filter(([, entry]) => entry.bitmap).map(([hash]) => hash);
  }
}
