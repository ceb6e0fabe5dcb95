//! The wgpu device and the render pass that turns a model and a view into pixels.

use std::ops::Range;

use bytemuck::{Pod, Zeroable};
use glam::{Mat4, Vec3, Vec4};
use thiserror::Error;
use wgpu::util::DeviceExt;

use crate::camera::View;
use crate::indices::{IndexLayout, Source};
use crate::mesh::{Bounds, Mesh, Orientation, Vertex};
use crate::readback::{Readback, read_buffer};
pub use parallax_core::review::PartLook;
use parallax_core::yuv::I420;

/// Linear-space clear colour: the dark blue-grey of a CAD viewport.
pub const CLEAR_COLOR: wgpu::Color = wgpu::Color {
    r: 0.018,
    g: 0.022,
    b: 0.030,
    a: 1.0,
};
const COLOR_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8UnormSrgb;
const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;
/// The colour target seen as plain bytes, without sRGB decoding.
const BYTES_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;
/// Largest viewport side a device may ask for; beyond it frames stop being interactive anyway.
pub const MAX_VIEWPORT_SIDE: u32 = 4096;

#[derive(Debug, Error)]
pub enum RenderError {
    #[error("no GPU adapter found (install Mesa's lavapipe for CPU rendering): {0}")]
    NoAdapter(String),
    #[error("could not open the GPU device: {0}")]
    NoDevice(String),
    #[error("viewport {width}x{height} is outside 1..={MAX_VIEWPORT_SIDE} pixels per side")]
    BadViewport { width: u32, height: u32 },
    #[error("a frame is drawn for 1 to {MAX_EYES} eyes, not {0}")]
    BadEyes(usize),
    #[error("the model has no triangles")]
    EmptyModel,
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error(
        "the model needs a buffer of {} MiB, and this GPU allows at most {} MiB",
        .needed / (1 << 20),
        .allowed / (1 << 20)
    )]
    TooBig { needed: u64, allowed: u64 },
    #[error("{0}")]
    BadLook(String),
    #[error("an I420 frame needs an even width and height, not {width}x{height}")]
    OddSize { width: u32, height: u32 },
}

/// A rendered frame: tight rows of sRGB RGBA8 pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbaImage {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// The background ([`CLEAR_COLOR`]) as the sRGB bytes a frame holds.
pub fn background() -> [u8; 3] {
    [
        srgb_byte(CLEAR_COLOR.r),
        srgb_byte(CLEAR_COLOR.g),
        srgb_byte(CLEAR_COLOR.b),
    ]
}

/// A linear colour channel (0–1) encoded as an sRGB byte, as the colour target stores it.
fn srgb_byte(linear: f64) -> u8 {
    let s = if linear <= 0.003_130_8 {
        linear * 12.92
    } else {
        1.055 * linear.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0).round() as u8
}

impl RgbaImage {
    /// Mean absolute difference per channel (0–255) from `other`, an image of the same size:
    /// how golden-image tests tell "the same picture" from "another picture".
    pub fn mean_difference(&self, other: &RgbaImage) -> f64 {
        assert_eq!(
            (self.width, self.height),
            (other.width, other.height),
            "images of one size"
        );
        let total: u64 = self
            .pixels
            .iter()
            .zip(&other.pixels)
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        total as f64 / self.pixels.len().max(1) as f64
    }

    /// The share (0–1) of pixels with a colour channel more than `threshold` (0–255) away from
    /// the same pixel of `other`, an image of the same size. Unlike a mean over the whole frame,
    /// a part missing from a mostly empty frame shows up here in full.
    pub fn share_differing(&self, other: &RgbaImage, threshold: u8) -> f64 {
        assert_eq!(
            (self.width, self.height),
            (other.width, other.height),
            "images of one size"
        );
        let differing = self
            .pixels
            .chunks_exact(4)
            .zip(other.pixels.chunks_exact(4))
            .filter(|(a, b)| {
                a[..3]
                    .iter()
                    .zip(&b[..3])
                    .any(|(x, y)| x.abs_diff(*y) > threshold)
            })
            .count();
        differing as f64 / (self.width as f64 * self.height as f64).max(1.0)
    }

    /// The share (0–1) of pixels that are not the background ([`CLEAR_COLOR`]): how much of the
    /// frame the model covers. An empty frame covers nothing.
    pub fn coverage(&self) -> f64 {
        let clear = background();
        let covered = self
            .pixels
            .chunks_exact(4)
            .filter(|p| p[..3].iter().zip(clear).any(|(a, b)| a.abs_diff(b) > 6))
            .count();
        covered as f64 / (self.width as f64 * self.height as f64).max(1.0)
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let at = ((y * self.width + x) * 4) as usize;
        self.pixels[at..at + 4].try_into().expect("4 bytes")
    }
}

/// A mesh uploaded to the GPU, ready to draw many times.
pub struct GpuModel {
    vertices: wgpu::Buffer,
    /// The parts' triangles and levels as 16-bit indices from their chunk's base vertex, and
    /// those of parts too big for that as 32-bit (see [`crate::indices`]); `None` when empty.
    short: Option<wgpu::Buffer>,
    long: Option<wgpu::Buffer>,
    pub bounds: Bounds,
    pub triangles: u64,
    /// Which faces can be skipped: see [`Mesh::orientation`].
    cull: Cull,
    /// Its parts in triangle order, each its own draw; one unnamed part for a model without.
    parts: Vec<GpuPart>,
    /// Each part's [`PartState`], rewritten when the look changes; the mesh never is.
    states: wgpu::Buffer,
    /// The states last written, to skip writing them again.
    written: std::sync::Mutex<Option<Vec<PartState>>>,
    bind_group: wgpu::BindGroup,
}

/// A part's triangles in the index buffer, its centre (for the explode) and its bounds (what
/// is tested against each eye's view and the cut planes before it is drawn).
struct GpuPart {
    name: Option<String>,
    /// The index buffer its triangles and levels are in, and the vertex they count from.
    source: Source,
    /// Where its triangles are in that buffer.
    first_index: u32,
    index_count: u32,
    center: Vec3,
    bounds: Bounds,
    /// Its levels of detail, finest first: where each one's triangles are in the index buffer,
    /// and the most its surface strays from the part's (model units).
    levels: Vec<(Range<u32>, f32)>,
    /// Where its triangles are drawn from where they are held: the identity but for an
    /// instance, which draws another part's triangles.
    placement: Mat4,
    /// How much the placement enlarges them at most: a level's stray grows as much.
    stretch: f32,
}

impl GpuPart {
    /// Its triangles in the index buffer at full detail.
    fn whole(&self) -> Range<u32> {
        self.first_index..self.first_index + self.index_count
    }
}

impl GpuModel {
    /// The GPU memory its buffers take, in bytes: what a cache bounded in bytes weighs it by.
    pub fn gpu_bytes(&self) -> u64 {
        let size = |b: &Option<wgpu::Buffer>| b.as_ref().map_or(0, wgpu::Buffer::size);
        self.vertices.size() + size(&self.short) + size(&self.long) + self.states.size()
    }

    /// Its parts' paths, in the order a [`Look`] lists them (`None` for triangles before the
    /// first named part, or a model without names): the parts with triangles of their own, then
    /// the instances. Groups are not drawn, so not listed.
    pub fn part_names(&self) -> impl Iterator<Item = Option<&str>> {
        self.parts.iter().map(|p| p.name.as_deref())
    }
}

/// Most cut planes a frame has (ARR's limit).
pub const MAX_CUT_PLANES: usize = 8;

/// How opaque a see-through part is.
const SEE_THROUGH_ALPHA: f32 = 0.3;

/// How a frame shows a model: per-part overrides (ARR's state overrides, by part), cut planes
/// and an exploded view. The default shows the model as modelled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Look {
    /// By part, in [`GpuModel::part_names`] order; parts past the end look as modelled.
    pub parts: Vec<PartLook>,
    /// `(point, normal)` in model space, at most [`MAX_CUT_PLANES`]: what lies on the normal's
    /// side of a plane is cut away, and the section is capped.
    pub cut_planes: Vec<(Vec3, Vec3)>,
    /// 0 assembled; 1 moves each part out from the assembly's centre by as far again as its own
    /// centre lies from it.
    pub explode: f32,
    /// Where a member points, in model space: a marker at the target, and a ray to it from the
    /// origin when there is one. Drawn over the model, so it shows wherever it is.
    pub pointer: Option<(Vec3, Option<Vec3>)>,
    /// For a see-through display: the background cleared to transparent black, so the frame's
    /// alpha is the model's coverage and its colour is premultiplied by it.
    pub transparent: bool,
}

impl Look {
    /// Every part as modelled: nothing hidden, tinted, see-through, cut, moved or pointed at
    /// (the background aside).
    fn as_modelled(&self) -> bool {
        *self
            == Self {
                transparent: self.transparent,
                ..Self::default()
            }
    }

    /// A design review's state as `model` is drawn with it: overrides by part path, a group's
    /// reaching the parts within, in the order of [`GpuModel::part_names`].
    pub fn of_review(review: &parallax_core::review::Review, model: &GpuModel) -> Self {
        let parts = model
            .part_names()
            .map(|path| path.map_or_else(PartLook::default, |path| review.look_of(path)))
            .collect();
        Self {
            parts,
            cut_planes: review
                .cut_planes
                .iter()
                .map(|p| (Vec3::from(p.point), Vec3::from(p.normal)))
                .collect(),
            explode: review.explode,
            pointer: review
                .pointer
                .as_ref()
                .map(|p| (Vec3::from(p.target), p.origin.map(Vec3::from))),
            transparent: false,
        }
    }
}

/// The pointer's colour, unlike any part's, the highlight's or the cap's.
const POINTER_COLOR: [f32; 3] = [0.95, 0.10, 0.75];

/// The pointer's marker and ray for a model of bounds radius `radius`: a ball at `target`, 4% of
/// the radius in radius, and a rod a fifth as thick from `origin`.
fn pointer_mesh(target: Vec3, origin: Option<Vec3>, radius: f32) -> Mesh {
    let ball = (radius * 0.04).max(f32::MIN_POSITIVE);
    let mut mesh = Mesh::default();
    let profile: Vec<[f32; 2]> = (0..=12)
        .map(|i| {
            let angle = i as f32 / 12.0 * std::f32::consts::PI;
            [ball * angle.sin(), -ball * angle.cos()]
        })
        .collect();
    mesh.push_lathe(&profile, 16, POINTER_COLOR);
    for v in &mut mesh.vertices {
        v.position = (Vec3::from(v.position) + target).to_array();
    }
    if let Some(origin) = origin {
        let length = (target - origin).length();
        let start = mesh.vertices.len();
        let rod = ball * 0.2;
        mesh.push_lathe(
            &[[0.0, 0.0], [rod, 0.0], [rod, length], [0.0, length]],
            12,
            POINTER_COLOR,
        );
        let turn = glam::Quat::from_rotation_arc(Vec3::Y, (target - origin).normalize_or(Vec3::Y));
        for v in &mut mesh.vertices[start..] {
            v.position = (turn * Vec3::from(v.position) + origin).to_array();
        }
    }
    mesh
}

/// A part's state as the shader reads it: tint (rgb, weight) and offset (xyz, opacity).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
struct PartState {
    tint: [f32; 4],
    offset: [f32; 4],
    /// The part's centre, and how much larger its outline hull is.
    center: [f32; 4],
    /// Where its triangles are drawn from where they are held (an instance's placement).
    placement: [[f32; 4]; 4],
}

/// How much larger than its part a highlight's outline hull is drawn.
const OUTLINE_GROWTH: f32 = 1.04;

/// The cut planes as the shader reads them.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LookUniform {
    cut: [[f32; 4]; MAX_CUT_PLANES],
    /// Planes in use; 1 when the mesh's faces point inwards.
    params: [f32; 4],
}

/// Which triangles a model never shows, so the rasteriser may skip them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cull {
    Nothing = 0,
    BackFaces = 1,
    FrontFaces = 2,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Globals {
    view_proj: [[f32; 4]; 4],
    model: [[f32; 4]; 4],
    eye: [f32; 4],
    light_dir: [f32; 4],
}

/// Most eyes one frame is drawn for, side by side (a headset's two).
pub const MAX_EYES: usize = 2;

/// Bytes between two eyes' [`Globals`] in the uniform buffer: the dynamic-offset alignment
/// every device accepts.
const GLOBALS_STRIDE: u64 = 256;

/// One eye of a frame: where it is (for the lighting) and its view and projection in one matrix
/// (clip space with depth 0..1, as wgpu expects; WebXR's asymmetric projections included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eye {
    pub position: Vec3,
    pub view_projection: Mat4,
}

impl Eye {
    /// The eye of a [`View`].
    pub fn of(view: &View) -> Self {
        Self {
            position: view.eye,
            view_projection: view.view_projection(),
        }
    }
}

/// What a pointer's triangles were made for: target, origin and model radius.
type PointerKey = (Vec3, Option<Vec3>, f32);

/// Colour and depth targets for one viewport size, kept while the size stays the same.
struct Targets {
    width: u32,
    height: u32,
    color: wgpu::Texture,
    color_view: wgpu::TextureView,
    depth_view: wgpu::TextureView,
    readback: Readback,
    /// The I420 pass's buffers for this size, once a video frame was asked for.
    planes: Option<Planes>,
}

/// One GPU device with the pipeline for CAD parts. Rendering blocks the calling thread until the
/// pixels are back; run it on a render thread.
pub struct Renderer {
    adapter: wgpu::AdapterInfo,
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// Indexed by [`Cull`]: two-sided, skip back faces, skip front faces.
    pipelines: [wgpu::RenderPipeline; 3],
    /// Two-sided, cutting and capping (`fs_cut`).
    cut_pipeline: wgpu::RenderPipeline,
    /// Blended, depth kept but not written: see-through parts, without and with cut planes.
    see_through_pipelines: [wgpu::RenderPipeline; 2],
    /// Highlight outlines: for outward-facing meshes (and open ones), and for inward-facing.
    outline_pipelines: [wgpu::RenderPipeline; 2],
    /// The pointer's marker, over everything.
    pointer_pipeline: wgpu::RenderPipeline,
    /// The pointer's triangles (as [`pointer_mesh`] made them, unindexed), made again when it
    /// moves: what they were made for, the buffer, and how many vertices.
    pointer: Option<(PointerKey, wgpu::Buffer, u32)>,
    layout: wgpu::BindGroupLayout,
    globals: wgpu::Buffer,
    look: wgpu::Buffer,
    targets: Option<Targets>,
    /// The RGBA → I420 compute pipeline, made with the first video frame.
    i420: Option<I420Pass>,
    /// What the last frame drew.
    drawn: FrameStats,
    /// Whether parts that cannot show are skipped (on, but for comparisons).
    culling: bool,
    /// Whether parts far enough away are drawn at a coarser level of detail (likewise).
    levels: bool,
    /// Whether the device draws indices counted from a base vertex, as 16-bit indices need
    /// (every Vulkan, Metal and D3D12 device; not OpenGL ES before 3.2): 32-bit only if not.
    base_vertex: bool,
}

/// What a frame drew, over all its eyes: the parts drawn and those skipped because nothing of
/// them could show (hidden, outside the eye's view, or cut away), and the triangles drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    pub parts_drawn: u32,
    pub parts_culled: u32,
    /// Of the parts drawn, those drawn at a coarser level of detail.
    pub parts_coarser: u32,
    pub triangles_drawn: u64,
}

impl Renderer {
    /// Opens a headless device on the first adapter wgpu finds (honouring `WGPU_BACKEND` and
    /// `WGPU_ADAPTER_NAME`); Vulkan by default, which is lavapipe on a machine without a GPU.
    pub fn new() -> Result<Self, RenderError> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            descriptor.backends =
                wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
        }
        let instance = wgpu::Instance::new(descriptor);
        let adapter = pollster::block_on(wgpu::util::initialize_adapter_from_env_or_default(
            &instance, None,
        ))
        .map_err(|e| RenderError::NoAdapter(e.to_string()))?;
        let base_vertex = adapter
            .get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::BASE_VERTEX);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("parallax-render"),
            // As big a buffer as the adapter allows: a 20-million-triangle model's indices are
            // more than the 256 MiB every device must allow.
            required_limits: wgpu::Limits {
                max_buffer_size: adapter.limits().max_buffer_size,
                ..wgpu::Limits::downlevel_defaults().using_resolution(adapter.limits())
            },
            // Small device memory blocks: models come and go from a cache bounded in bytes, and a
            // freed buffer should not keep a large shared block (on lavapipe, host memory) alive.
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            ..Default::default()
        }))
        .map_err(|e| RenderError::NoDevice(e.to_string()))?;

        let shader = device.create_shader_module(wgpu::include_wgsl!("shader.wgsl"));
        let buffer_entry = |binding, ty, has_dynamic_offset| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("globals, look, parts"),
            entries: &[
                buffer_entry(0, wgpu::BufferBindingType::Uniform, true),
                buffer_entry(1, wgpu::BufferBindingType::Uniform, false),
                buffer_entry(
                    2,
                    wgpu::BufferBindingType::Storage { read_only: true },
                    false,
                ),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("cad"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let attributes = wgpu::vertex_attr_array![0 => Float32x3, 1 => Unorm8x4];
        // One pipeline per culling mode: closed, consistently wound parts skip their hidden
        // faces (half the work on a CPU rasteriser); anything else is drawn two-sided.
        // `blend`: see-through, drawn over what is there without hiding what comes later.
        // `on_top`: drawn over everything (the pointer), neither depth-tested nor writing depth.
        let pipeline_on = |vertex: &str,
                           cull_mode: Option<wgpu::Face>,
                           fragment: &str,
                           blend: bool,
                           on_top: bool| {
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some("cad"),
                layout: Some(&pipeline_layout),
                vertex: wgpu::VertexState {
                    module: &shader,
                    entry_point: Some(vertex),
                    compilation_options: Default::default(),
                    buffers: &[Some(wgpu::VertexBufferLayout {
                        array_stride: size_of::<Vertex>() as u64,
                        step_mode: wgpu::VertexStepMode::Vertex,
                        attributes: &attributes,
                    })],
                },
                primitive: wgpu::PrimitiveState {
                    cull_mode,
                    ..Default::default()
                },
                depth_stencil: Some(wgpu::DepthStencilState {
                    format: DEPTH_FORMAT,
                    depth_write_enabled: Some(!blend && !on_top),
                    depth_compare: Some(if on_top {
                        wgpu::CompareFunction::Always
                    } else {
                        wgpu::CompareFunction::Less
                    }),
                    stencil: Default::default(),
                    bias: Default::default(),
                }),
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module: &shader,
                    entry_point: Some(fragment),
                    compilation_options: Default::default(),
                    targets: &[Some(wgpu::ColorTargetState {
                        format: COLOR_FORMAT,
                        blend: blend.then_some(wgpu::BlendState::ALPHA_BLENDING),
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        let pipeline_with = |vertex: &str, cull_mode, fragment: &str, blend: bool| {
            pipeline_on(vertex, cull_mode, fragment, blend, false)
        };
        let pipeline_for = |cull_mode: Option<wgpu::Face>, fragment: &str, blend: bool| {
            pipeline_with("vs_main", cull_mode, fragment, blend)
        };
        // The ball and rod are closed and wound outward: one front face per pixel each.
        let pointer_pipeline = pipeline_on(
            "vs_pointer",
            Some(wgpu::Face::Back),
            "fs_pointer",
            false,
            true,
        );
        // The outline hull shows its far side: the faces a closed part turns away.
        let outline_pipelines = [
            pipeline_with("vs_outline", Some(wgpu::Face::Front), "fs_outline", false),
            pipeline_with("vs_outline", Some(wgpu::Face::Back), "fs_outline", false),
        ];
        let pipelines = [
            pipeline_for(None, "fs_main", false),
            pipeline_for(Some(wgpu::Face::Back), "fs_main", false),
            pipeline_for(Some(wgpu::Face::Front), "fs_main", false),
        ];
        let cut_pipeline = pipeline_for(None, "fs_cut", false);
        let see_through_pipelines = [
            pipeline_for(None, "fs_main", true),
            pipeline_for(None, "fs_cut", true),
        ];
        let globals = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("globals"),
            size: GLOBALS_STRIDE * MAX_EYES as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let look = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("look"),
            size: size_of::<LookUniform>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Self {
            adapter: adapter.get_info(),
            device,
            queue,
            pipelines,
            cut_pipeline,
            see_through_pipelines,
            outline_pipelines,
            pointer_pipeline,
            pointer: None,
            layout,
            globals,
            look,
            targets: None,
            i420: None,
            drawn: FrameStats::default(),
            culling: true,
            levels: true,
            base_vertex,
        })
    }

    /// Whether parts that cannot show are skipped; on unless turned off, which only a comparison
    /// wants (the benchmark's "before", the test that culling changes no pixel).
    pub fn set_culling(&mut self, on: bool) {
        self.culling = on;
    }

    /// Whether parts are drawn at a coarser level of detail where the difference is under a
    /// pixel ([`crate::lod`]); on unless turned off, for comparisons like [`Self::set_culling`].
    pub fn set_levels(&mut self, on: bool) {
        self.levels = on;
    }

    /// What the last frame drew.
    pub fn last_frame(&self) -> FrameStats {
        self.drawn
    }

    /// What the device runs on, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)` on Vulkan.
    pub fn adapter(&self) -> &wgpu::AdapterInfo {
        &self.adapter
    }

    /// Uploads `mesh` to the GPU.
    pub fn upload(&self, mesh: &Mesh) -> Result<GpuModel, RenderError> {
        let bounds = mesh.bounds().ok_or(RenderError::EmptyModel)?;
        if mesh.indices.is_empty() {
            return Err(RenderError::EmptyModel);
        }
        let layout = IndexLayout::of(mesh, self.base_vertex);
        let (short_bytes, long_bytes) = layout.bytes();
        // Refused here rather than by the device, whose refusal would end the render thread.
        let allowed = self.device.limits().max_buffer_size;
        let needed = (std::mem::size_of_val(&mesh.vertices[..]) as u64)
            .max(short_bytes)
            .max(long_bytes);
        if needed > allowed {
            return Err(RenderError::TooBig { needed, allowed });
        }
        // And the parts' states, one a part and one a copy (a glTF of a million nodes is 15 MB).
        let parts = gpu_parts(mesh, &layout);
        let states = (parts.len() * size_of::<PartState>()) as u64;
        let allowed = self.device.limits().max_storage_buffer_binding_size;
        if states > allowed {
            return Err(RenderError::TooBig {
                needed: states,
                allowed,
            });
        }
        let vertices = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("vertices"),
                contents: bytemuck::cast_slice(&mesh.vertices),
                usage: wgpu::BufferUsages::VERTEX,
            });
        // The parts' triangles, then their levels of detail, written straight into the
        // buffers: at 20 M triangles a joined copy first was 300 MB more on the host.
        let buffer = |label: &str, size: u64| {
            (size > 0).then(|| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size,
                    usage: wgpu::BufferUsages::INDEX,
                    mapped_at_creation: true,
                })
            })
        };
        let short = buffer("indices (16-bit)", short_bytes);
        let long = buffer("indices (32-bit)", long_bytes);
        {
            let mapped = |b: &Option<wgpu::Buffer>| {
                b.as_ref()
                    .map(|b| b.slice(..).get_mapped_range_mut())
                    .transpose()
                    .map_err(|e| RenderError::Gpu(format!("writing the model's indices: {e}")))
            };
            let (mut short, mut long) = (mapped(&short)?, mapped(&long)?);
            layout.write(mesh, whole(&mut short), whole(&mut long));
        }
        for b in short.iter().chain(&long) {
            b.unmap();
        }
        let states = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("part states"),
                contents: bytemuck::cast_slice(&part_states(
                    &parts,
                    bounds.center(),
                    &Look::default(),
                )),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            });
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("globals, look, parts"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &self.globals,
                        offset: 0,
                        size: wgpu::BufferSize::new(size_of::<Globals>() as u64),
                    }),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: self.look.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: states.as_entire_binding(),
                },
            ],
        });
        Ok(GpuModel {
            vertices,
            short,
            long,
            bounds,
            triangles: mesh.drawn_triangles(),
            cull: match mesh.orientation() {
                Orientation::Outward => Cull::BackFaces,
                Orientation::Inward => Cull::FrontFaces,
                Orientation::Open => Cull::Nothing,
            },
            parts,
            states,
            written: std::sync::Mutex::new(None),
            bind_group,
        })
    }

    /// Renders `model`, placed by `transform`, as seen from `view`, and reads the pixels back.
    pub fn render(
        &mut self,
        model: &GpuModel,
        transform: Mat4,
        view: &View,
    ) -> Result<RgbaImage, RenderError> {
        self.render_scene(Some(model), transform, view)
    }

    /// Like [`Renderer::render`]; with no model, the empty scene (a device's clean slate).
    pub fn render_scene(
        &mut self,
        model: Option<&GpuModel>,
        transform: Mat4,
        view: &View,
    ) -> Result<RgbaImage, RenderError> {
        self.render_eyes(model, transform, &[Eye::of(view)], view.width, view.height)
    }

    /// Draws `model` once per eye into one frame of the eyes' images side by side, each
    /// `width × height` (left eye first): a headset's stereo frame in one pass.
    pub fn render_eyes(
        &mut self,
        model: Option<&GpuModel>,
        transform: Mat4,
        eyes: &[Eye],
        width: u32,
        height: u32,
    ) -> Result<RgbaImage, RenderError> {
        self.render_look((model, &Look::default()), transform, eyes, width, height)
    }

    /// [`Self::render_eyes`] with parts hidden, tinted, see-through, cut and exploded as `look`
    /// says: a design review's frame.
    pub fn render_look(
        &mut self,
        scene: (Option<&GpuModel>, &Look),
        transform: Mat4,
        eyes: &[Eye],
        width: u32,
        height: u32,
    ) -> Result<RgbaImage, RenderError> {
        let (mut encoder, frame_width) = self.draw(scene, transform, eyes, width, height)?;
        let targets = self.targets.as_ref().expect("targets were just prepared");
        targets.readback.encode_copy(&mut encoder, &targets.color);
        self.queue.submit([encoder.finish()]);
        let pixels = targets
            .readback
            .read(&self.device, &self.queue)
            .map_err(RenderError::Gpu)?;
        Ok(RgbaImage {
            width: frame_width,
            height,
            pixels,
        })
    }

    /// Whether [`Self::render_eyes_i420`] costs less than [`Self::render_eyes`] and converting
    /// on the CPU: on a real GPU the conversion is all but free and the readback shrinks to 3/8.
    /// On a CPU adapter (lavapipe) the two cost the same (docs/BENCHMARKS.md), and converting
    /// beside the render thread instead of on it wins.
    pub fn converts_to_i420_cheaper(&self) -> bool {
        self.adapter.device_type != wgpu::DeviceType::Cpu
    }

    /// [`Self::render_eyes`] as I420 for a video encoder: converted on the GPU before readback
    /// (1.5 bytes a pixel come back instead of 4) when the frame's width is a multiple of 8,
    /// else on the CPU; the same bytes either way. The frame's sides must be even.
    pub fn render_eyes_i420(
        &mut self,
        scene: (Option<&GpuModel>, &Look),
        transform: Mat4,
        eyes: &[Eye],
        width: u32,
        height: u32,
    ) -> Result<I420, RenderError> {
        let frame_width = width.saturating_mul(eyes.len() as u32);
        if !frame_width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(RenderError::OddSize {
                width: frame_width,
                height,
            });
        }
        if !frame_width.is_multiple_of(8) {
            let image = self.render_look(scene, transform, eyes, width, height)?;
            let (w, h) = (image.width as usize, image.height as usize);
            return Ok(I420::from_rgba(&image.pixels, w, h, None));
        }
        let (mut encoder, _) = self.draw(scene, transform, eyes, width, height)?;
        let pass = match self.i420.take() {
            Some(pass) => pass,
            None => I420Pass::new(&self.device),
        };
        let targets = self.targets.as_mut().expect("targets were just prepared");
        let planes = match targets.planes.take() {
            Some(planes) => planes,
            None => {
                let bytes = targets.color.create_view(&wgpu::TextureViewDescriptor {
                    format: Some(BYTES_FORMAT),
                    ..Default::default()
                });
                pass.planes(&self.device, &bytes, frame_width, height)
            }
        };
        self.queue
            .write_buffer(&pass.size, 0, bytemuck::cast_slice(&[frame_width, height]));
        {
            let mut compute = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("i420"),
                timestamp_writes: None,
            });
            compute.set_pipeline(&pass.pipeline);
            compute.set_bind_group(0, &planes.bind_group, &[]);
            compute.dispatch_workgroups((frame_width / 8).div_ceil(8), (height / 2).div_ceil(8), 1);
        }
        let bytes = planes.storage.size();
        encoder.copy_buffer_to_buffer(&planes.storage, 0, &planes.readback, 0, bytes);
        self.queue.submit([encoder.finish()]);
        let data = read_buffer(&self.device, &planes.readback).map_err(RenderError::Gpu);
        targets.planes = Some(planes);
        self.i420 = Some(pass);
        I420::from_data(frame_width as usize, height as usize, data?)
            .ok_or_else(|| RenderError::Gpu("the I420 planes came back the wrong size".into()))
    }

    /// Records the frame's render pass into a new command encoder; the frame's width.
    fn draw(
        &mut self,
        (model, look): (Option<&GpuModel>, &Look),
        transform: Mat4,
        eyes: &[Eye],
        width: u32,
        height: u32,
    ) -> Result<(wgpu::CommandEncoder, u32), RenderError> {
        if look.cut_planes.len() > MAX_CUT_PLANES {
            return Err(RenderError::BadLook(format!(
                "at most {MAX_CUT_PLANES} cut planes, not {}",
                look.cut_planes.len()
            )));
        }
        if eyes.is_empty() || eyes.len() > MAX_EYES {
            return Err(RenderError::BadEyes(eyes.len()));
        }
        let frame_width = width.saturating_mul(eyes.len() as u32);
        if !(1..=MAX_VIEWPORT_SIDE).contains(&frame_width)
            || !(1..=MAX_VIEWPORT_SIDE).contains(&height)
        {
            return Err(RenderError::BadViewport {
                width: frame_width,
                height,
            });
        }
        let light = Vec3::new(-0.4, -1.0, -0.6).normalize();
        for (i, eye) in eyes.iter().enumerate() {
            let globals = Globals {
                view_proj: eye.view_projection.to_cols_array_2d(),
                model: transform.to_cols_array_2d(),
                eye: eye.position.extend(1.0).to_array(),
                light_dir: light.extend(0.0).to_array(),
            };
            self.queue.write_buffer(
                &self.globals,
                GLOBALS_STRIDE * i as u64,
                bytemuck::bytes_of(&globals),
            );
        }

        if let Some(model) = model {
            self.write_look(model, look);
            if let Some((target, origin)) = look.pointer {
                self.prepare_pointer((target, origin, model.bounds.radius()));
            }
        }
        self.prepare_targets(frame_width, height);
        let targets = self.targets.as_ref().expect("targets were just prepared");
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("frame"),
            });
        let mut drawn = FrameStats::default();
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("cad"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &targets.color_view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(if look.transparent {
                            wgpu::Color::TRANSPARENT
                        } else {
                            CLEAR_COLOR
                        }),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                    view: &targets.depth_view,
                    depth_ops: Some(wgpu::Operations {
                        load: wgpu::LoadOp::Clear(1.0),
                        store: wgpu::StoreOp::Discard,
                    }),
                    stencil_ops: None,
                }),
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            if let Some(model) = model {
                let cutting = !look.cut_planes.is_empty();
                let solid = if cutting {
                    &self.cut_pipeline
                } else {
                    &self.pipelines[model.cull as usize]
                };
                let see_through = &self.see_through_pipelines[usize::from(cutting)];
                let outline = &self.outline_pipelines[usize::from(model.cull == Cull::FrontFaces)];
                pass.set_vertex_buffer(0, model.vertices.slice(..));
                let mut indices = IndexBinding::of(model);
                let part_look = |i: usize| look.parts.get(i).copied().unwrap_or_default();
                let model_centre = model.bounds.center();
                let explode = look.explode.max(0.0);
                for (i, eye) in eyes.iter().enumerate() {
                    let x = (i as u32 * width) as f32;
                    pass.set_viewport(x, 0.0, width as f32, height as f32, 0.0, 1.0);
                    let offset = (GLOBALS_STRIDE * i as u64) as u32;
                    pass.set_bind_group(0, &model.bind_group, &[offset]);
                    pass.set_pipeline(solid);
                    // Which parts can show in this eye, where the explode moved them, and which of
                    // their triangles are drawn: the coarsest level whose stray from the part
                    // covers at most half a pixel, or all of them.
                    let to_clip = eye.view_projection * transform;
                    let sight =
                        crate::lod::Sight::new(eye.view_projection, transform, (width, height));
                    let seen: Vec<Option<Range<u32>>> = model
                        .parts
                        .iter()
                        .enumerate()
                        .map(|(index, part)| {
                            let moved = (part.center - model_centre) * explode;
                            let bounds = Bounds {
                                min: part.bounds.min + moved,
                                max: part.bounds.max + moved,
                            };
                            let shown = !part_look(index).hidden
                                && (!self.culling
                                    || can_be_seen(&bounds, to_clip, &look.cut_planes));
                            if !shown {
                                return None;
                            }
                            if !self.levels || part.levels.is_empty() {
                                return Some(part.whole());
                            }
                            let per_unit = sight.pixels(part.stretch, &bounds);
                            let coarsest = part
                                .levels
                                .iter()
                                .rev()
                                .find(|(_, error)| error * per_unit <= crate::lod::MAX_PIXELS);
                            Some(coarsest.map_or_else(|| part.whole(), |(r, _)| r.clone()))
                        })
                        .collect();
                    for (part, shown) in model.parts.iter().zip(&seen) {
                        match shown {
                            Some(range) => {
                                drawn.parts_drawn += 1;
                                drawn.parts_coarser += u32::from(*range != part.whole());
                                drawn.triangles_drawn += u64::from(range.len() as u32 / 3);
                            }
                            None => drawn.parts_culled += 1,
                        }
                    }
                    if look.as_modelled() {
                        // As modelled, every part's state is neutral: one draw for each run of
                        // parts that can show and share an index buffer and base vertex (one a
                        // chunk of 16-bit indices when they all can).
                        let mut run: Option<(Source, Range<u32>)> = None;
                        let held = seen.iter().zip(&model.parts);
                        for (shown, part) in held.filter(|(_, p)| p.placement == Mat4::IDENTITY) {
                            match (&mut run, shown) {
                                (Some((source, r)), Some(range))
                                    if *source == part.source && r.end == range.start =>
                                {
                                    r.end = range.end
                                }
                                _ => {
                                    if let Some((source, r)) = run.take() {
                                        indices.draw(&mut pass, source, r, 0);
                                    }
                                    run = shown.clone().map(|range| (part.source, range));
                                }
                            }
                        }
                        if let Some((source, r)) = run {
                            indices.draw(&mut pass, source, r, 0);
                        }
                        // Instances each with their own state: their placement.
                        for (index, (shown, part)) in seen.iter().zip(&model.parts).enumerate() {
                            if let Some(range) = shown
                                && part.placement != Mat4::IDENTITY
                            {
                                indices.draw(&mut pass, part.source, range.clone(), index as u32);
                            }
                        }
                        continue;
                    }
                    // Opaque parts first, their highlights' outlines, then the see-through ones
                    // over them.
                    let draw_parts =
                        |pass: &mut wgpu::RenderPass,
                         indices: &mut IndexBinding,
                         wanted: fn(PartLook) -> bool| {
                            for (index, (shown, part)) in seen.iter().zip(&model.parts).enumerate()
                            {
                                if let Some(range) = shown
                                    && wanted(part_look(index))
                                {
                                    indices.draw(pass, part.source, range.clone(), index as u32);
                                }
                            }
                        };
                    draw_parts(&mut pass, &mut indices, |p| !p.hidden && !p.see_through);
                    pass.set_pipeline(outline);
                    draw_parts(&mut pass, &mut indices, |p| !p.hidden && p.highlighted);
                    pass.set_pipeline(see_through);
                    draw_parts(&mut pass, &mut indices, |p| !p.hidden && p.see_through);
                    if let (Some(_), Some((_, vertices, count))) = (look.pointer, &self.pointer) {
                        pass.set_pipeline(&self.pointer_pipeline);
                        pass.set_vertex_buffer(0, vertices.slice(..));
                        pass.draw(0..*count, 0..1);
                        pass.set_vertex_buffer(0, model.vertices.slice(..));
                    }
                }
            }
        }
        self.drawn = drawn;
        Ok((encoder, frame_width))
    }

    /// Makes the pointer's triangles for `key`, unless they were made for it last.
    fn prepare_pointer(&mut self, key: PointerKey) {
        if self
            .pointer
            .as_ref()
            .is_some_and(|(made, _, _)| *made == key)
        {
            return;
        }
        let (target, origin, radius) = key;
        let mesh = pointer_mesh(target, origin, radius);
        let vertices: Vec<Vertex> = mesh
            .indices
            .iter()
            .map(|&i| mesh.vertices[i as usize])
            .collect();
        let buffer = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("pointer"),
                contents: bytemuck::cast_slice(&vertices),
                usage: wgpu::BufferUsages::VERTEX,
            });
        self.pointer = Some((key, buffer, vertices.len() as u32));
    }

    /// Writes the cut planes, and the parts' states where they changed.
    fn write_look(&self, model: &GpuModel, look: &Look) {
        let mut uniform = LookUniform::zeroed();
        for (slot, (point, normal)) in uniform.cut.iter_mut().zip(&look.cut_planes) {
            let normal = normal.normalize_or_zero();
            *slot = normal.extend(-normal.dot(*point)).to_array();
        }
        uniform.params = [
            look.cut_planes.len() as f32,
            f32::from(u8::from(model.cull == Cull::FrontFaces)),
            0.0,
            0.0,
        ];
        self.queue
            .write_buffer(&self.look, 0, bytemuck::bytes_of(&uniform));
        let states = part_states(&model.parts, model.bounds.center(), look);
        let mut written = model
            .written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if written.as_ref() != Some(&states) {
            self.queue
                .write_buffer(&model.states, 0, bytemuck::cast_slice(&states));
            *written = Some(states);
        }
    }

    /// Makes sure colour and depth targets of `width × height` exist.
    fn prepare_targets(&mut self, width: u32, height: u32) {
        let stale = self
            .targets
            .as_ref()
            .is_none_or(|t| (t.width, t.height) != (width, height));
        if stale {
            let size = wgpu::Extent3d {
                width,
                height,
                depth_or_array_layers: 1,
            };
            let texture = |label, format, usage, view_formats| {
                self.device.create_texture(&wgpu::TextureDescriptor {
                    label: Some(label),
                    size,
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format,
                    usage,
                    view_formats,
                })
            };
            let color = texture(
                "color",
                COLOR_FORMAT,
                wgpu::TextureUsages::RENDER_ATTACHMENT
                    | wgpu::TextureUsages::COPY_SRC
                    | wgpu::TextureUsages::TEXTURE_BINDING,
                // The I420 pass reads the stored sRGB bytes as they are.
                &[BYTES_FORMAT],
            );
            let depth = texture(
                "depth",
                DEPTH_FORMAT,
                wgpu::TextureUsages::RENDER_ATTACHMENT,
                &[],
            );
            self.targets = Some(Targets {
                width,
                height,
                color_view: color.create_view(&Default::default()),
                depth_view: depth.create_view(&Default::default()),
                color,
                readback: Readback::new(&self.device, width, height),
                planes: None,
            });
        }
    }
}

/// The state of each of `parts` as `look` shows them, the model's centre being `center`.
fn part_states(parts: &[GpuPart], center: Vec3, look: &Look) -> Vec<PartState> {
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let part_look = look.parts.get(i).copied().unwrap_or_default();
            let tint = part_look.tint.map_or([0.0; 4], |[r, g, b]| [r, g, b, 1.0]);
            let offset = (part.center - center) * look.explode.max(0.0);
            let alpha = if part_look.see_through {
                SEE_THROUGH_ALPHA
            } else {
                1.0
            };
            PartState {
                tint,
                offset: offset.extend(alpha).to_array(),
                center: part.center.extend(OUTLINE_GROWTH).to_array(),
                placement: part.placement.to_cols_array_2d(),
            }
        })
        .collect()
}

/// A mesh's parts as draws ([`Mesh::draw_ranges`]), each named by its path, then its instances.
fn gpu_parts(mesh: &Mesh, layout: &IndexLayout) -> Vec<GpuPart> {
    let ranges = mesh.draw_ranges();
    // Each part's levels, in one pass over them.
    let mut levels = vec![Vec::new(); ranges.len()];
    for (level, &first) in mesh.levels.iter().zip(&layout.levels) {
        if let Some(of_part) = levels.get_mut(level.range as usize) {
            of_part.push((first..first + level.index_count, level.error));
        }
    }
    let mut levels = levels.into_iter();
    let mut held = ranges
        .into_iter()
        .zip(&layout.ranges)
        .map(|((part, triangles), &(source, first_index))| {
            let bounds = mesh.bounds_of(triangles.clone()).unwrap_or(Bounds {
                min: Vec3::ZERO,
                max: Vec3::ZERO,
            });
            GpuPart {
                name: part.map(|i| mesh.path_of(i)),
                source,
                first_index,
                index_count: triangles.len() as u32 * 3,
                center: bounds.center(),
                bounds,
                levels: levels.next().unwrap_or_default(),
                placement: Mat4::IDENTITY,
                stretch: 1.0,
            }
        })
        .collect::<Vec<_>>();
    // Then the instances: each another part's triangles and levels, placed.
    let placed: Vec<GpuPart> = mesh
        .placed()
        .into_iter()
        .filter_map(|instance| {
            let of = held.get(instance.range)?;
            let (scale, _, _) = instance.placement.to_scale_rotation_translation();
            Some(GpuPart {
                name: Some(mesh.path_of(instance.part)),
                source: of.source,
                first_index: of.first_index,
                index_count: of.index_count,
                center: instance.placement.transform_point3(of.center),
                bounds: of.bounds.placed(instance.placement),
                levels: of.levels.clone(),
                placement: instance.placement,
                stretch: scale.abs().max_element(),
            })
        })
        .collect();
    held.extend(placed);
    held
}

/// All of a mapped buffer, if there is one, to write; nothing to write into if not.
fn whole<'a>(mapped: &'a mut Option<wgpu::BufferViewMut>) -> wgpu::WriteOnly<'a, [u8]> {
    mapped.as_mut().map(|m| m.slice(..)).unwrap_or_default()
}

/// Draws a model's index ranges, binding its 16- or 32-bit index buffer as each range needs.
struct IndexBinding<'m> {
    model: &'m GpuModel,
    /// The buffer bound last: the 32-bit one (`true`) or the 16-bit one.
    bound: Option<bool>,
}

impl<'m> IndexBinding<'m> {
    fn of(model: &'m GpuModel) -> Self {
        Self { model, bound: None }
    }

    /// Draws the indices `range` of `source`'s buffer, as the state of part `instance`.
    fn draw(
        &mut self,
        pass: &mut wgpu::RenderPass,
        source: Source,
        range: Range<u32>,
        instance: u32,
    ) {
        if self.bound != Some(source.wide) {
            let (buffer, format) = match source.wide {
                true => (&self.model.long, wgpu::IndexFormat::Uint32),
                false => (&self.model.short, wgpu::IndexFormat::Uint16),
            };
            // A range names a buffer only when that buffer holds it.
            let Some(buffer) = buffer else { return };
            pass.set_index_buffer(buffer.slice(..), format);
            self.bound = Some(source.wide);
        }
        pass.draw_indexed(range, source.base_vertex, instance..instance + 1);
    }
}

/// Whether anything of a part within `bounds` (model space, as placed in the frame: exploded)
/// can show in the eye whose view and projection, after the model's placement, is `to_clip`:
/// not when all of it lies beyond one side of the eye's view, nor all of it on the cut-away side
/// of one cut plane. The bounds are taken a little larger, as a highlight's outline draws them.
fn can_be_seen(bounds: &Bounds, to_clip: Mat4, cut_planes: &[(Vec3, Vec3)]) -> bool {
    let (centre, half) = (
        bounds.center(),
        (bounds.max - bounds.min) * 0.5 * OUTLINE_GROWTH,
    );
    let grown = Bounds {
        min: centre - half,
        max: centre + half,
    };
    let corners = grown.corners();
    let clip = corners.map(|c| to_clip * c.extend(1.0));
    // Clip space with depth 0..1: inside is -w <= x, y <= w and 0 <= z <= w.
    let sides: [fn(Vec4) -> f32; 6] = [
        |c| c.w + c.x,
        |c| c.w - c.x,
        |c| c.w + c.y,
        |c| c.w - c.y,
        |c| c.z,
        |c| c.w - c.z,
    ];
    let beyond_a_side = sides.iter().any(|side| clip.iter().all(|&c| side(c) < 0.0));
    let cut_away = cut_planes.iter().any(|&(point, normal)| {
        let normal = normal.normalize_or_zero();
        corners.iter().all(|&c| (c - point).dot(normal) > 0.0)
    });
    !(beyond_a_side || cut_away)
}

/// The compute pipeline that converts the colour target to I420.
struct I420Pass {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    /// The frame's width and height.
    size: wgpu::Buffer,
}

/// The I420 pass's output for one target size, and the buffer it is read back through.
struct Planes {
    storage: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

impl I420Pass {
    fn new(device: &wgpu::Device) -> Self {
        let shader = device.create_shader_module(wgpu::include_wgsl!("i420.wgsl"));
        let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty,
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("i420"),
            entries: &[
                entry(
                    0,
                    wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: false },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                ),
                entry(
                    1,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: false },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
                entry(
                    2,
                    wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                ),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("i420"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("i420"),
            layout: Some(&pipeline_layout),
            module: &shader,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let size = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("i420 size"),
            size: 8,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            pipeline,
            layout,
            size,
        }
    }

    fn planes(
        &self,
        device: &wgpu::Device,
        color: &wgpu::TextureView,
        width: u32,
        height: u32,
    ) -> Planes {
        let bytes = I420::len(width as usize, height as usize) as u64;
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let storage = buffer(
            "i420 planes",
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let readback = buffer(
            "i420 readback",
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("i420"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(color),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: storage.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: self.size.as_entire_binding(),
                },
            ],
        });
        Planes {
            storage,
            readback,
            bind_group,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(pixels: &[[u8; 4]], width: u32) -> RgbaImage {
        RgbaImage {
            width,
            height: pixels.len() as u32 / width,
            pixels: pixels.concat(),
        }
    }

    #[test]
    fn the_mean_difference_is_per_channel() {
        let black = image(&[[0, 0, 0, 255]; 4], 2);
        let mut grey = black.clone();
        grey.pixels[0] = 80; // one channel of one pixel, 80 off: 80 / 16 channels
        assert_eq!(black.mean_difference(&grey), 5.0);
    }

    #[test]
    fn the_share_differing_counts_pixels_past_the_threshold_in_colour_only() {
        let a = image(&[[10, 10, 10, 255]; 8], 4);
        let mut b = a.clone();
        b.pixels[0] = 40; // 30 off: counts at a threshold of 24
        b.pixels[4 + 1] = 34; // exactly 24 off: does not
        b.pixels[8 + 3] = 0; // alpha only: does not
        assert_eq!(a.share_differing(&b, 24), 1.0 / 8.0);
        assert_eq!(a.share_differing(&b, 23), 2.0 / 8.0);
    }

    #[test]
    fn coverage_is_the_share_of_pixels_unlike_the_background() {
        let [r, g, b] = background();
        let blank = image(&[[r, g, b, 255]; 12], 6);
        assert_eq!(blank.coverage(), 0.0);
        let mut drawn = blank.clone();
        drawn.pixels[..8].copy_from_slice(&[200, 0, 0, 255, 200, 0, 0, 255]);
        // A channel at most 6 away from the background still counts as background.
        drawn.pixels[8] = drawn.pixels[8].saturating_add(6);
        assert_eq!(drawn.coverage(), 2.0 / 12.0);
    }

    #[test]
    fn srgb_encoding_has_its_linear_toe_and_its_curve() {
        assert_eq!(srgb_byte(0.0), 0);
        assert_eq!(srgb_byte(0.002), 7); // the linear segment: 0.002 × 12.92
        assert_eq!(srgb_byte(0.216), 128); // the curve: mid grey
        assert_eq!(srgb_byte(1.0), 255);
    }

    #[test]
    fn a_pixel_is_read_by_column_and_row() {
        let pixels: Vec<[u8; 4]> = (0..6).map(|i| [i, 0, 0, 255]).collect();
        let img = image(&pixels, 3);
        assert_eq!(img.pixel(0, 0)[0], 0);
        assert_eq!(img.pixel(2, 0)[0], 2);
        assert_eq!(img.pixel(1, 1)[0], 4);
        assert_eq!(img.pixel(2, 1)[0], 5);
    }
}
