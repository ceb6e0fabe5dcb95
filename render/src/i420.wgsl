// RGBA → I420 (BT.601 limited range) on the GPU, before readback: 1.5 bytes a pixel come back
// instead of 4. Each invocation converts an 8×2 block: two words of luma per row, one of U, one
// of V. The arithmetic is parallax_core::yuv's, in integers, so both give the same bytes.

struct Size {
    width: u32,
    height: u32,
}

@group(0) @binding(0) var frame: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> planes: array<u32>;
@group(0) @binding(2) var<uniform> size: Size;

// The sRGB bytes the colour target stores: it is read through a non-sRGB view, so nothing is
// decoded on the way.
fn rgb(x: u32, y: u32) -> vec3<i32> {
    let texel = textureLoad(frame, vec2<u32>(x, y), 0);
    return vec3<i32>(round(texel.rgb * 255.0));
}

fn luma(c: vec3<i32>) -> u32 {
    return u32(((66 * c.r + 129 * c.g + 25 * c.b + 128) >> 8u) + 16);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let x0 = id.x * 8u;
    let y0 = id.y * 2u;
    if x0 >= size.width || y0 >= size.height {
        return;
    }
    var top = array<u32, 2>(0u, 0u);
    var bottom = array<u32, 2>(0u, 0u);
    var u_word = 0u;
    var v_word = 0u;
    // Four 2×2 blocks, each pixel read once.
    for (var block = 0u; block < 4u; block++) {
        let x = x0 + block * 2u;
        let a = rgb(x, y0);
        let b = rgb(x + 1u, y0);
        let c = rgb(x, y0 + 1u);
        let d = rgb(x + 1u, y0 + 1u);
        let word = block / 2u;
        let shift = 16u * (block % 2u);
        top[word] |= (luma(a) | (luma(b) << 8u)) << shift;
        bottom[word] |= (luma(c) | (luma(d) << 8u)) << shift;
        let sum = a + b + c + d;
        let u = u32(((-38 * sum.r - 74 * sum.g + 112 * sum.b + 512) >> 10u) + 128);
        let v = u32(((112 * sum.r - 94 * sum.g - 18 * sum.b + 512) >> 10u) + 128);
        u_word |= u << (8u * block);
        v_word |= v << (8u * block);
    }
    let luma_word = (y0 * size.width + x0) / 4u;
    let row = size.width / 4u;
    planes[luma_word] = top[0];
    planes[luma_word + 1u] = top[1];
    planes[luma_word + row] = bottom[0];
    planes[luma_word + row + 1u] = bottom[1];
    let luma_words = size.width * size.height / 4u;
    let chroma_word = (id.y * size.width / 2u + id.x * 4u) / 4u;
    planes[luma_words + chroma_word] = u_word;
    planes[luma_words + luma_words / 4u + chroma_word] = v_word;
}
