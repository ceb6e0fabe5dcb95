// Flat-shaded CAD parts: a key light, a fill from the eye, and ambient. Each part is its own
// draw, its index the instance index: its state (tint, see-through, explode offset) is a small
// buffer the shader reads, so changing how parts look never re-uploads the mesh.

struct Globals {
    view_proj: mat4x4<f32>,
    model: mat4x4<f32>,
    eye: vec4<f32>,
    light_dir: vec4<f32>,
};

// Cut planes in model space: a point p is cut away when dot(plane.xyz, p) + plane.w > 0.
struct Look {
    cut: array<vec4<f32>, 8>,
    // x: how many planes; y: 1 when the mesh's faces point inwards.
    params: vec4<f32>,
};

struct PartState {
    // rgb: the tint; a: how much of it replaces the modelled colour.
    tint: vec4<f32>,
    // xyz: where the explode moves the part (model space); w: its opacity.
    offset: vec4<f32>,
    // xyz: the part's centre (model space); w: how much larger its outline hull is drawn.
    center: vec4<f32>,
    // Where its triangles are drawn from where they are held: an instance's placement.
    placement: mat4x4<f32>,
};

@group(0) @binding(0) var<uniform> globals: Globals;
@group(0) @binding(1) var<uniform> look: Look;
@group(0) @binding(2) var<storage, read> parts: array<PartState>;

struct VertexOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) world: vec3<f32>,
    @location(1) color: vec3<f32>,
    @location(2) local: vec3<f32>,
    @location(3) alpha: f32,
};

@vertex
fn vs_main(
    @location(0) position: vec3<f32>,
    @location(1) color: vec4<f32>,
    @builtin(instance_index) part: u32,
) -> VertexOut {
    return transform(placed(position, part), srgb_to_linear(color.rgb), part);
}

// A vertex's colour arrives sRGB-encoded (8 bits a channel); lighting is linear.
fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    return select(pow((c + 0.055) / 1.055, vec3<f32>(2.4)), c / 12.92, c <= vec3<f32>(0.04045));
}

// A vertex where its part draws it, in model space.
fn placed(position: vec3<f32>, part: u32) -> vec3<f32> {
    return (parts[part].placement * vec4<f32>(position, 1.0)).xyz;
}

// `position` in model space, as its part placed it.
fn transform(position: vec3<f32>, color: vec3<f32>, part: u32) -> VertexOut {
    let state = parts[part];
    let local = position + state.offset.xyz;
    let world = globals.model * vec4<f32>(local, 1.0);
    var out: VertexOut;
    out.clip = globals.view_proj * world;
    out.world = world.xyz;
    out.color = mix(color, state.tint.rgb, state.tint.a);
    out.local = local;
    out.alpha = state.offset.w;
    return out;
}

// A highlighted part's outline: the part drawn again a little larger around its centre, only
// its far side (the pipeline culls the near one), in the highlight colour. Depth keeps it behind
// the part, so only a rim around the silhouette shows.
@vertex
fn vs_outline(
    @location(0) position: vec3<f32>,
    @location(1) color: vec4<f32>,
    @builtin(instance_index) part: u32,
) -> VertexOut {
    let state = parts[part];
    let at = placed(position, part);
    let grown = state.center.xyz + (at - state.center.xyz) * state.center.w;
    var out = transform(grown, srgb_to_linear(color.rgb), part);
    out.local = at + state.offset.xyz;
    return out;
}

const HIGHLIGHT = vec3<f32>(1.0, 0.62, 0.0);

// The pointer's ball and rod: placed with the model, not moved by any part's state.
@vertex
fn vs_pointer(@location(0) position: vec3<f32>, @location(1) color: vec4<f32>) -> VertexOut {
    let world = globals.model * vec4<f32>(position, 1.0);
    var out: VertexOut;
    out.clip = globals.view_proj * world;
    out.world = world.xyz;
    out.color = srgb_to_linear(color.rgb);
    out.local = position;
    out.alpha = 1.0;
    return out;
}

// Lit from the eye only, so it reads as round and bright from every side.
@fragment
fn fs_pointer(in: VertexOut) -> @location(0) vec4<f32> {
    let to_eye = normalize(globals.eye.xyz - in.world);
    let n = normalize(cross(dpdx(in.world), dpdy(in.world)));
    let fill = abs(dot(n, to_eye));
    return vec4<f32>(in.color * (0.45 + 0.55 * fill), 1.0);
}

@fragment
fn fs_outline(in: VertexOut) -> @location(0) vec4<f32> {
    let count = u32(look.params.x);
    for (var i = 0u; i < count; i++) {
        if (dot(look.cut[i].xyz, in.local) + look.cut[i].w > 0.0) {
            discard;
        }
    }
    return vec4<f32>(HIGHLIGHT, 1.0);
}

fn shade(in: VertexOut) -> vec3<f32> {
    // The face normal, from how the position changes across the screen: flat shading without
    // per-face vertices. Turned towards the eye, so badly wound imports light up the same.
    let to_eye = normalize(globals.eye.xyz - in.world);
    var n = normalize(cross(dpdx(in.world), dpdy(in.world)));
    if (dot(n, to_eye) < 0.0) {
        n = -n;
    }
    let key = max(dot(n, -globals.light_dir.xyz), 0.0);
    let fill = max(dot(n, to_eye), 0.0);
    let half_vec = normalize(to_eye - globals.light_dir.xyz);
    let specular = pow(max(dot(n, half_vec), 0.0), 48.0) * 0.25;
    return in.color * (0.18 + 0.62 * key + 0.30 * fill) + vec3<f32>(specular);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    return vec4<f32>(shade(in), in.alpha);
}

// The cap's colour, unlike any part's: the inside of a cut part, seen through the cut, reads as a
// solid section.
const CAP = vec3<f32>(0.02, 0.60, 0.45);

// With cut planes: what lies on a plane's positive side is not drawn, and where the camera looks
// into a cut part (its inner, back faces show), the section is drawn flat in the cap colour.
@fragment
fn fs_cut(in: VertexOut, @builtin(front_facing) front: bool) -> @location(0) vec4<f32> {
    // Shaded first: screen-space derivatives need every pixel of the quad still running.
    let lit = shade(in);
    let count = u32(look.params.x);
    for (var i = 0u; i < count; i++) {
        if (dot(look.cut[i].xyz, in.local) + look.cut[i].w > 0.0) {
            discard;
        }
    }
    let outside = front != (look.params.y > 0.5);
    return vec4<f32>(select(CAP, lit, outside), in.alpha);
}
