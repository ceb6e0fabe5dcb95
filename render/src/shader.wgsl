// Flat-shaded CAD parts: a key light, a fill from the eye, and ambient.

struct Globals {
    view_proj: mat4x4<f32>,
    model: mat4x4<f32>,
    eye: vec4<f32>,
    light_dir: vec4<f32>,
};

@group(0) @binding(0) var<uniform> globals: Globals;

struct VertexOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) world: vec3<f32>,
    @location(1) color: vec3<f32>,
};

@vertex
fn vs_main(@location(0) position: vec3<f32>, @location(1) color: vec3<f32>) -> VertexOut {
    let world = globals.model * vec4<f32>(position, 1.0);
    var out: VertexOut;
    out.clip = globals.view_proj * world;
    out.world = world.xyz;
    out.color = color;
    return out;
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
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
    let lit = in.color * (0.18 + 0.62 * key + 0.30 * fill) + vec3<f32>(specular);
    return vec4<f32>(lit, 1.0);
}
