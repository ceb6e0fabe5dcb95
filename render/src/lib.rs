//! `parallax-render` draws CAD models offscreen with wgpu and turns the pixels into frames a
//! device can show. It runs on any wgpu backend; on machines without a GPU, Mesa's lavapipe
//! (Vulkan on the CPU) renders the same images.
//!
//! # Layout
//! - [`mesh`]: triangle meshes with per-face normals and colours, bounds, triangle counts.
//! - [`samples`]: the CAD-like models Parallax builds itself (bracket, gear, shaft).
//! - [`camera`]: where the eye is, and how to frame a model's bounds.
//! - [`renderer`]: the wgpu device, pipeline and one frame's render pass.
//! - [`readback`]: the only place that knows about GPU row padding.
//! - `indices`: how a model's triangles sit on the GPU (16-bit indices where they fit).
//! - [`import`]: glTF/GLB, STL and OBJ files into a mesh, validated.
//! - [`pick`]: ray casts from a screen point into the model (ARR's spatial queries).
//! - [`coverage`]: frames for see-through displays, the model's coverage below its colour.
//! - [`encode`]: JPEG and PNG encoding of a rendered frame.
//! - [`video`]: H.264 encoding of a render connection's frames, and PSNR to judge them by.

pub mod camera;
pub mod coverage;
pub mod encode;
pub mod import;
mod indices;
pub mod lod;
pub mod mesh;
mod packing;
pub mod pick;
mod readback;
pub mod renderer;
pub mod samples;
pub mod video;

pub use camera::View;
pub use coverage::with_coverage;
pub use encode::{EncodeError, decode_png, encode_jpeg, encode_png};
pub use import::{
    DEFAULT_COLOR, Format, ImportError, ImportedModel, ModelBuilder, import, import_file,
};
pub use mesh::{Bounds, Instance, Level, Mesh, Orientation, Part, Placed, Vertex, path_in, srgb8};
pub use renderer::{
    Eye, FrameStats, GpuModel, Look, MAX_CUT_PLANES, MAX_EYES, PartLook, RenderError, Renderer,
    RgbaImage,
};
pub use video::{EncodedFrame, VideoEncoder, VideoError, psnr};
