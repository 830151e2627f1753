"""Scene builders for Freestyle (listed in scene_builders.BUILDERS): a line style with modifiers in every
stack, a texture slot, a node tree and animation, drawn by a view layer's line set."""

from __future__ import annotations

import bpy
from anim_builders import keyed_action


def build_linestyle() -> None:
    """Line style ``Ink``: settings (colour, thickness, chaining, splitting, sorting, caps, dashes, textures);
    colour modifiers (along stroke with a three-stop ramp, distance from the object ``Target``), alpha
    (tangent with a moved curve point), thickness (calligraphy, noise) and geometry (a resampling, sinus
    displacement) modifiers; a clouds texture in slot 2; a node tree (kept on, defaults and a mix); its
    thickness keyed, an NLA track on it and on its tree. The scene renders Freestyle: its view layer's line
    set ``Outline`` draws with Ink over the collection ``Inked``; a second line set ``Hidden`` its own
    line style ``Faint``."""
    scene = bpy.context.scene
    target = bpy.data.objects.new("Target", None)
    scene.collection.objects.link(target)
    inked = bpy.data.collections.new("Inked")
    scene.collection.children.link(inked)

    ink = bpy.data.linestyles.new("Ink")
    ink.color = (0.1, 0.2, 0.6)
    ink.alpha = 0.8
    ink.thickness = 2.5
    ink.thickness_position = "RELATIVE"
    ink.thickness_ratio = 0.25
    ink.chaining = "SKETCHY"
    ink.rounds = 4
    ink.use_split_length, ink.split_length = True, 40.0
    ink.use_angle_min, ink.angle_min = True, 0.5
    ink.use_sorting, ink.sort_key, ink.sort_order = True, "PROJECTED_Y", "REVERSE"
    ink.caps = "ROUND"
    ink.use_dashed_line, ink.dash1, ink.gap1, ink.dash2 = True, 12, 6, 3
    ink.use_texture, ink.texture_spacing = True, 2.0
    for mod in list(ink.geometry_modifiers):  # a new line style comes with a sampling modifier
        ink.geometry_modifiers.remove(mod)

    along = ink.color_modifiers.new("Fade", "ALONG_STROKE")
    along.blend, along.influence = "MULTIPLY", 0.75
    ramp = along.color_ramp
    ramp.interpolation = "EASE"
    ramp.elements[0].color = (1.0, 0.0, 0.0, 1.0)
    ramp.elements.new(0.4).color = (0.0, 1.0, 0.0, 1.0)
    far = ink.color_modifiers.new("Far", "DISTANCE_FROM_OBJECT")
    far.target, far.range_max = target, 25.0
    tangent = ink.alpha_modifiers.new("Slant", "TANGENT")
    tangent.mapping, tangent.invert = "CURVE", True
    tangent.curve.curves[0].points[1].location = (1.0, 0.4)
    tangent.curve.update()
    pen = ink.thickness_modifiers.new("Pen", "CALLIGRAPHY")
    pen.orientation, pen.thickness_max = 0.6, 7.0
    jitter = ink.thickness_modifiers.new("Jitter", "NOISE")
    jitter.amplitude, jitter.seed = 2.0, 7
    ink.geometry_modifiers.new("Resample", "SAMPLING").sampling = 3.0
    wave = ink.geometry_modifiers.new("Wave", "SINUS_DISPLACEMENT")
    wave.wavelength, wave.amplitude = 12.0, 2.5

    clouds = bpy.data.textures.new("InkGrain", type="CLOUDS")
    slot = ink.texture_slots.create(2)
    slot.texture, slot.scale, slot.blend_type = clouds, (0.5, 0.5, 1.0), "MULTIPLY"

    ink.use_nodes = True  # Blender makes the tree with its default nodes
    tree = ink.node_tree
    mix = tree.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.location = (200.0, 300.0)
    mix.inputs["Factor"].default_value = 0.3

    ink.keyframe_insert("thickness", frame=1)
    ink.thickness = 4.0
    ink.keyframe_insert("thickness", frame=20)
    ink.thickness = 2.5
    pulse = keyed_action("Ink pulse", "LINESTYLE", ink.name, "alpha", [1.0, 0.8, 10.0, 0.4])
    track = ink.animation_data.nla_tracks.new()
    track.name = "Pulse"
    track.strips.new("Pulse", 1, pulse)
    factor = mix.inputs["Factor"].path_from_id("default_value")
    mixing = keyed_action("Ink mixing", "NODETREE", tree.name, factor, [1.0, 0.3, 9.0, 0.6])
    tree_track = tree.animation_data_create().nla_tracks.new()
    tree_track.name = "Mixing"
    tree_track.strips.new("Mixing", 1, mixing)

    scene.render.use_freestyle = True
    scene.render.line_thickness_mode = "RELATIVE"
    layer = scene.view_layers[0]
    settings = layer.freestyle_settings
    settings.crease_angle, settings.use_culling = 2.0, True
    linesets = settings.linesets
    for old in list(linesets):
        linesets.remove(old)
    outline = linesets.new("Outline")
    made = outline.linestyle
    outline.linestyle = ink
    bpy.data.linestyles.remove(made)
    outline.select_by_collection, outline.collection = True, inked
    outline.select_crease, outline.select_border = False, True
    outline.visibility, outline.qi_start, outline.qi_end = "RANGE", 1, 3
    hidden = linesets.new("Hidden")
    hidden.linestyle.name = "Faint"
    hidden.linestyle.alpha = 0.3
    hidden.show_render = False


STACKS = ("color", "alpha", "thickness", "geometry")


def move_modifier(style: str, stack: str, name: str, direction: str) -> None:
    """Move a line style modifier up or down its stack as the properties editor's arrows do (Blender's API
    has no move): the operator works on the line style of the active view layer's active line set."""
    settings = bpy.context.view_layer.freestyle_settings
    ls = bpy.data.linestyles[style]
    settings.linesets.active_index = next(
        i for i, lineset in enumerate(settings.linesets) if lineset.linestyle == ls
    )
    with bpy.context.temp_override(modifier=getattr(ls, f"{stack}_modifiers")[name]):
        bpy.ops.scene.freestyle_modifier_move(direction=direction)


def observed() -> list:
    """What the Freestyle look is made of here: every line style's modifiers (with their ramps and curves),
    slots and nodes, and the view layers' line sets (JSON-able, rounded)."""

    def rounded(value):
        if isinstance(value, float):
            return round(value, 4)
        if not isinstance(value, str) and hasattr(value, "__len__"):
            return [rounded(v) for v in value]
        return value

    def modifier(mod) -> list:
        ramp = getattr(mod, "color_ramp", None)
        curve = getattr(mod, "curve", None)
        return [
            mod.name,
            mod.type,
            rounded(getattr(mod, "influence", 1.0)),
            [[rounded(e.position), rounded(e.color)] for e in ramp.elements] if ramp else None,
            [rounded(p.location) for p in curve.curves[0].points] if curve else None,
        ]

    styles = [
        [
            ls.name,
            rounded(ls.color),
            rounded(ls.thickness_ratio),
            ls.caps,
            ls.use_nodes,
            {stack: [modifier(m) for m in getattr(ls, f"{stack}_modifiers")] for stack in STACKS},
            [
                [i, slot.texture.name if slot.texture else None]
                for i, slot in enumerate(ls.texture_slots)
                if slot
            ],
            sorted(n.bl_idname for n in ls.node_tree.nodes) if ls.node_tree else None,
        ]
        for ls in sorted(bpy.data.linestyles, key=lambda ls: ls.name)
    ]
    layers = [
        [
            layer.name,
            layer.use_freestyle,
            [
                [
                    s.name,
                    s.linestyle.name if s.linestyle else None,
                    s.show_render,
                    s.qi_end,
                    s.collection.name if s.collection else None,
                ]
                for s in layer.freestyle_settings.linesets
            ],
        ]
        for layer in bpy.context.scene.view_layers
    ]
    return [styles, layers, bpy.context.scene.render.use_freestyle]
