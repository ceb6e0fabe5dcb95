//! `parallax-step` reads STEP files (ISO 10303-21: AP203, AP214, AP242) into a [`Mesh`](parallax_render::Mesh) with
//! OpenCascade, the CAD kernel behind FreeCAD and KiCad, through a small C++ shim
//! (`src/shim.cpp`): the file becomes an XCAF document, every shape is tessellated, and the
//! document's tree gives the parts — an assembly becomes a group, each product instance a part
//! under it, named after its product, placed where the assembly puts it, in the colour the file
//! gives its faces. Coordinates are millimetres whatever length unit the file was written in.
//!
//! A CAD kernel can crash or hang on a hostile file, and this runs in the process that calls it:
//! Parallax calls it only in the `parallax-step` program (`src/main.rs`), a child of the
//! `parallax convert` child, under its time and memory limits; so OpenCascade's 27 libraries
//! are loaded by that program alone, never by `parallax`. OpenCascade's reader is not
//! thread-safe, so calls in one process take turns.

pub mod synthetic;

use std::ffi::{c_char, c_void};
use std::sync::Mutex;

use glam::{DVec3, Vec3};
use parallax_render::{DEFAULT_COLOR, Format, ImportError, ImportedModel, ModelBuilder};

pub use parallax_render::import::Tessellation;

/// What a read gave besides the mesh.
#[derive(Debug, Clone)]
pub struct StepModel {
    pub model: ImportedModel,
    /// The length unit the file says it is in (`MILLIMETRE`, `INCH`, …); the mesh is in
    /// millimetres either way.
    pub unit: String,
    /// The chordal deflection used, in millimetres.
    pub chordal: f64,
}

/// Reads `bytes`, a STEP file, into a welded mesh.
pub fn read(bytes: &[u8], tessellation: &Tessellation) -> Result<StepModel, ImportError> {
    read_reporting(bytes, tessellation, &mut |_| {})
}

/// [`read`], telling `progress` how much of OpenCascade's work is done (0 to 1) as it goes:
/// the transfer into its document, then the meshing, each about half.
pub fn read_reporting(
    bytes: &[u8],
    tessellation: &Tessellation,
    progress: &mut (dyn FnMut(f64) + Send),
) -> Result<StepModel, ImportError> {
    if !bytes.starts_with(b"ISO-10303-21;") && !after_blank(bytes).starts_with(b"ISO-10303-21;") {
        return Err(ImportError::Step(
            "the file does not start with ISO-10303-21; as a STEP file does".into(),
        ));
    }
    let angular = tessellation.angular_degrees;
    if !(0.5..=90.0).contains(&angular) {
        return Err(ImportError::Step(format!(
            "an angular deflection of {angular}° is outside 0.5° to 90°"
        )));
    }
    let chordal = match tessellation.chordal {
        Some(c) if !(c.is_finite() && c > 0.0) => {
            return Err(ImportError::Step(format!(
                "a chordal deflection of {c} mm is not a positive length"
            )));
        }
        Some(c) => c,
        None => 0.0,
    };
    let mut collector = Collector {
        builder: ModelBuilder::default(),
        failure: None,
        progress,
    };
    let sink = ffi::PxSink {
        context: (&raw mut collector).cast(),
        part: part_callback,
        triangles: triangles_callback,
        progress: progress_callback,
    };
    let mut info = ffi::PxStepInfo {
        chordal: 0.0,
        unit: [0; 32],
    };
    let mut error = [0 as c_char; 512];
    let status = {
        let _turn = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: every pointer is valid for the call: `bytes` for its length, `sink` and
        // `collector` (which the callbacks alone touch, on this thread, during the call),
        // `info` and `error` for their sizes, which the shim does not write past.
        unsafe {
            ffi::px_step_read(
                bytes.as_ptr(),
                bytes.len(),
                chordal,
                angular.to_radians(),
                &sink,
                &mut info,
                error.as_mut_ptr(),
                error.len(),
            )
        }
    };
    if let Some(failure) = collector.failure {
        return Err(failure);
    }
    if status != 0 {
        return Err(ImportError::Step(text(&error)));
    }
    let model = collector.builder.finish(Format::Step, 0)?;
    Ok(StepModel {
        model,
        unit: text(&info.unit),
        chordal: info.chordal,
    })
}

/// OpenCascade's STEP reader keeps global state: one read at a time in a process.
static KERNEL: Mutex<()> = Mutex::new(());

fn after_blank(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn text(bytes: &[c_char]) -> String {
    let bytes: Vec<u8> = bytes
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

struct Collector<'a> {
    builder: ModelBuilder,
    /// The first triangle refused, which stops the read.
    failure: Option<ImportError>,
    /// `Send`: OpenCascade may report from one of its meshing threads.
    progress: &'a mut (dyn FnMut(f64) + Send),
}

extern "C" fn progress_callback(context: *mut c_void, done: f64) {
    // SAFETY: as in `part_callback`. OpenCascade calls this under its progress lock, so never
    // while another callback runs, though perhaps from one of its meshing threads: the
    // collector is not touched by the calling thread meanwhile (it waits in `px_step_read`).
    let collector = unsafe { &mut *context.cast::<Collector>() };
    if done.is_finite() {
        (collector.progress)(done.clamp(0.0, 1.0));
    }
}

extern "C" fn part_callback(
    context: *mut c_void,
    name: *const c_char,
    length: usize,
    parent: u32,
) -> u32 {
    // SAFETY: `context` is the `Collector` that `read` handed over, alive and not otherwise
    // borrowed during the call; `name` points to `length` bytes the shim owns for the call.
    let (collector, name) = unsafe {
        (
            &mut *context.cast::<Collector>(),
            std::slice::from_raw_parts(name.cast::<u8>(), length),
        )
    };
    let name = String::from_utf8_lossy(name);
    let name = match name.trim() {
        "" => "Part".to_string(),
        named => named.to_string(),
    };
    let parent = (parent != u32::MAX).then_some(parent);
    collector.builder.mesh.begin_part_in(name, parent)
}

extern "C" fn triangles_callback(
    context: *mut c_void,
    corners: *const f64,
    count: usize,
    rgb: *const f32,
) -> i32 {
    // SAFETY: as in `part_callback`; `corners` holds `count` triangles of 9 numbers and `rgb`
    // 3 numbers, owned by the shim for the call.
    let (collector, corners, rgb) = unsafe {
        (
            &mut *context.cast::<Collector>(),
            std::slice::from_raw_parts(corners, count * 9),
            std::slice::from_raw_parts(rgb, 3),
        )
    };
    // The shim says -1 for a face the file gives no colour.
    let color = if rgb.iter().all(|c| (0.0..=1.0).contains(c)) {
        [rgb[0], rgb[1], rgb[2]]
    } else {
        DEFAULT_COLOR
    };
    for triangle in corners.chunks_exact(9) {
        let corner = |i: usize| {
            DVec3::new(triangle[3 * i], triangle[3 * i + 1], triangle[3 * i + 2]).as_vec3()
        };
        let corners: [Vec3; 3] = [corner(0), corner(1), corner(2)];
        if let Err(e) = collector.builder.triangle(corners, color) {
            collector.failure = Some(e);
            return 1;
        }
    }
    0
}

mod ffi {
    use std::ffi::{c_char, c_void};

    #[repr(C)]
    pub struct PxSink {
        pub context: *mut c_void,
        pub part: extern "C" fn(*mut c_void, *const c_char, usize, u32) -> u32,
        pub triangles: extern "C" fn(*mut c_void, *const f64, usize, *const f32) -> i32,
        pub progress: extern "C" fn(*mut c_void, f64),
    }

    #[repr(C)]
    pub struct PxStepInfo {
        pub chordal: f64,
        pub unit: [c_char; 32],
    }

    unsafe extern "C" {
        pub fn px_step_read(
            data: *const u8,
            length: usize,
            chordal: f64,
            angular: f64,
            sink: *const PxSink,
            info: *mut PxStepInfo,
            error: *mut c_char,
            error_capacity: usize,
        ) -> i32;
    }
}
