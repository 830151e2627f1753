"""Scene builder for view layers (listed in scene_builders.BUILDERS): a lighter's render layers, with passes,
overrides, AOVs, light groups, collection flags and a Freestyle line set on a second view layer."""

from __future__ import annotations

import bpy

FLAGS = ("exclude", "holdout", "indirect_only", "hide_viewport")


def layer_collection(layer, name: str):
    stack = list(layer.layer_collection.children)
    while stack:
        lc = stack.pop()
        if lc.collection.name == name:
            return lc
        stack.extend(lc.children)
    raise KeyError(name)


def build_view_layers() -> None:
    """Beauty (the first view layer, renamed) and Shadow (not rendered, 64 samples, passes, a material and
    a world override, two AOVs, a light group, a Freestyle line set) over collections Crates, Stage and
    Stage/Trim; Crates excluded from Shadow, Trim a holdout and indirect only there, Stage hidden in
    Beauty's viewport."""
    scene = bpy.context.scene
    props = bpy.data.collections.new("Crates")
    sets = bpy.data.collections.new("Stage")
    trim = bpy.data.collections.new("Trim")
    scene.collection.children.link(props)
    scene.collection.children.link(sets)
    sets.children.link(trim)
    trim.objects.link(bpy.data.objects.new("Moulding", None))
    beauty = scene.view_layers[0]
    beauty.name = "Beauty"
    beauty.use_pass_z = True
    layer_collection(beauty, "Stage").hide_viewport = True
    shadow = scene.view_layers.new("Shadow")
    shadow.use = False
    shadow.samples = 64
    shadow.use_pass_normal = shadow.use_pass_mist = True
    shadow.use_pass_cryptomatte_object = True
    shadow.eevee.use_pass_bloom = True
    shadow.cycles.use_pass_shadow_catcher = True
    shadow.material_override = bpy.data.materials.new("Clay")
    shadow.world_override = bpy.data.worlds.new("Grey")
    aov = shadow.aovs.add()
    aov.name, aov.type = "dirt", "VALUE"
    shadow.aovs.add().name = "tint"
    shadow.lightgroups.add(name="key")
    shadow.use_freestyle = True
    shadow.freestyle_settings.linesets.new("Contour").select_crease = False
    layer_collection(shadow, "Crates").exclude = True
    trim_lc = layer_collection(shadow, "Trim")
    trim_lc.holdout = trim_lc.indirect_only = True


def observed() -> list:
    """Every scene's view layers as an artist sees them (names of what they link)."""
    out = []
    for scene in sorted(bpy.data.scenes, key=lambda s: s.name):
        layers = []
        for layer in scene.view_layers:
            flags = {}
            stack = list(layer.layer_collection.children)
            while stack:
                lc = stack.pop()
                stack.extend(lc.children)
                if any(getattr(lc, f) for f in FLAGS):
                    flags[lc.collection.name] = [getattr(lc, f) for f in FLAGS]
            layers.append(
                [
                    layer.name,
                    layer.use,
                    layer.samples,
                    sorted(
                        p.identifier
                        for p in layer.bl_rna.properties
                        if p.identifier.startswith("use_pass") and getattr(layer, p.identifier)
                    ),
                    layer.eevee.use_pass_bloom,
                    layer.cycles.use_pass_shadow_catcher,
                    layer.material_override.name if layer.material_override else None,
                    layer.world_override.name if layer.world_override else None,
                    [[a.name, a.type] for a in layer.aovs],
                    [g.name for g in layer.lightgroups],
                    sorted(flags.items()),
                    layer.use_freestyle,
                    [s.name for s in layer.freestyle_settings.linesets],
                ]
            )
        out.append([scene.name, layers])
    return out
