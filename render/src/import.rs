//! Model import: glTF 2.0 (`.gltf` with embedded or external buffers, `.glb`), STL (binary and
//! ASCII) and OBJ, into one flat-shaded [`Mesh`] in world space. STEP files are B-reps that need a
//! CAD kernel to become triangles: the `parallax-step` crate reads them, through the same
//! [`ModelBuilder`].
//!
//! Files come from people and other tools, so nothing is trusted: the format must match the
//! name or the bytes, every coordinate must be finite, indices must be in range, buffers must be
//! as long as declared. Triangles with no area are dropped (and counted) rather than failing a
//! whole CAD export for a few slivers; a file with no drawable triangle at all is refused.

use std::io::{BufReader, Cursor};
use std::path::{Component, Path};

use base64::Engine;
use glam::{Mat3, Mat4, Vec3};
use thiserror::Error;

use crate::mesh::{Bounds, Mesh};

/// Colour of parts whose file says none (STL, OBJ without materials).
pub const DEFAULT_COLOR: [f32; 3] = [0.55, 0.60, 0.68];
/// Deepest node hierarchy accepted; deeper is almost surely a cycle or an attack.
const MAX_NODE_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Gltf,
    Glb,
    Stl,
    Obj,
    /// ISO 10303-21 (AP203/AP214/AP242): read by `parallax-step`, not by [`import`].
    Step,
}

impl Format {
    /// The format of `bytes` named `name`: binary glTF is recognised by its magic whatever the
    /// name; everything else by the extension.
    pub fn detect(name: &str, bytes: &[u8]) -> Result<Self, ImportError> {
        if bytes.starts_with(b"glTF") {
            return Ok(Self::Glb);
        }
        let extension = Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        match extension.as_str() {
            "glb" => Err(ImportError::NotGlb),
            "gltf" => Ok(Self::Gltf),
            "stl" => Ok(Self::Stl),
            "obj" => Ok(Self::Obj),
            "step" | "stp" => Ok(Self::Step),
            _ => Err(ImportError::UnknownFormat(name.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gltf => "glTF",
            Self::Glb => "GLB",
            Self::Stl => "STL",
            Self::Obj => "OBJ",
            Self::Step => "STEP",
        }
    }
}

/// How finely a CAD file's curved faces become triangles (`parallax-step`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tessellation {
    /// The largest distance between a triangle and the surface it stands for, in millimetres;
    /// `None`: a thousandth of the model's largest side, so a screw and a car look alike.
    pub chordal: Option<f64>,
    /// The largest angle between neighbouring triangles along a curve, in degrees.
    pub angular_degrees: f64,
}

impl Default for Tessellation {
    fn default() -> Self {
        Self {
            chordal: None,
            angular_degrees: 20.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImportError {
    #[error("{0:?} is not a model Parallax reads: use .step, .stp, .gltf, .glb, .stl or .obj")]
    UnknownFormat(String),
    /// A STEP file handed to [`import`], which has no CAD kernel.
    #[error("STEP files are read with OpenCascade, by parallax-step")]
    NeedsKernel,
    #[error("invalid STEP: {0}")]
    Step(String),
    #[error(
        "not a binary glTF file: a .glb must start with the 'glTF' header (JSON glTF files end in .gltf)"
    )]
    NotGlb,
    #[error("invalid glTF: {0}")]
    Gltf(String),
    #[error("glTF buffer {index} refers to {uri:?}, which was not provided")]
    MissingBuffer { index: usize, uri: String },
    #[error(
        "glTF buffer {index} holds {actual} bytes but declares {declared}: the file is truncated"
    )]
    ShortBuffer {
        index: usize,
        declared: usize,
        actual: usize,
    },
    #[error("invalid STL: {0}")]
    Stl(String),
    #[error("invalid OBJ: {0}")]
    Obj(String),
    #[error("vertex {vertex} has a coordinate that is not a finite number")]
    NonFinite { vertex: u64 },
    #[error("triangle {triangle} uses vertex {index}, but there are only {vertices} vertices")]
    IndexOutOfRange {
        triangle: u64,
        index: u32,
        vertices: usize,
    },
    #[error("the model has no drawable triangles ({degenerate} have no area)")]
    NoTriangles { degenerate: u64 },
}

/// A model ready to upload.
#[derive(Debug, Clone)]
pub struct ImportedModel {
    pub format: Format,
    pub mesh: Mesh,
    /// Triangles dropped because they had no area.
    pub degenerate: u64,
    /// Primitives skipped because they are not triangles (glTF points and lines).
    pub skipped_primitives: u64,
}

impl ImportedModel {
    pub fn triangles(&self) -> u64 {
        self.mesh.triangles()
    }

    pub fn bounds(&self) -> Bounds {
        self.mesh
            .bounds()
            .expect("an imported model has at least one triangle")
    }
}

/// Imports `bytes`, a file called `name`. `resolve` supplies the external files a `.gltf`
/// refers to (by relative URI); return `None` for one that is not available.
pub fn import(
    name: &str,
    bytes: &[u8],
    resolve: &mut dyn FnMut(&str) -> Option<Vec<u8>>,
) -> Result<ImportedModel, ImportError> {
    let format = Format::detect(name, bytes)?;
    let mut builder = ModelBuilder::default();
    let mut skipped_primitives = 0;
    match format {
        Format::Gltf | Format::Glb => {
            skipped_primitives = import_gltf(bytes, resolve, &mut builder)?
        }
        Format::Stl => {
            // An STL file is one part: name it after the file.
            let stem = Path::new(name)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or(name);
            builder.mesh.begin_part(stem);
            import_stl(bytes, &mut builder)?
        }
        Format::Obj => import_obj(bytes, &mut builder)?,
        Format::Step => return Err(ImportError::NeedsKernel),
    }
    builder.finish(format, skipped_primitives)
}

/// Imports the model file at `path`, resolving a glTF's external buffers next to it.
pub fn import_file(path: &Path) -> Result<ImportedModel, std::io::Error> {
    let bytes = std::fs::read(path)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut resolve = |uri: &str| -> Option<Vec<u8>> {
        let relative = Path::new(uri);
        // Only files beside (or below) the model: a URI must not reach elsewhere on the disk.
        let confined = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        confined
            .then(|| std::fs::read(dir.join(relative)).ok())
            .flatten()
    };
    import(name, &bytes, &mut resolve)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Collects an importer's parts and triangles, checking each: a corner must be finite, and a
/// triangle without area is dropped and counted. Corners are welded as they come (by
/// [`crate::mesh::weld_key`], as [`Mesh::weld`] does), so a big model is never held as three
/// vertices a triangle: at 20 M triangles that was 1.4 GB.
#[derive(Default)]
pub struct ModelBuilder {
    pub mesh: Mesh,
    vertices_seen: u64,
    degenerate: u64,
    welded: rustc_hash::FxHashMap<[u32; 4], u32>,
    /// The last colour added, linear and as a vertex holds it: triangles come a part at a time
    /// in one colour, so it is encoded once, not for every corner.
    encoded: Option<([f32; 3], [u8; 4])>,
    /// Each glTF mesh imported so far: the part that holds its triangles, its node's transform
    /// there, and the bounds of those triangles (`None`: none kept). A node using it again
    /// becomes an instance of that part.
    first_use: rustc_hash::FxHashMap<usize, (u32, Mat4, Option<Bounds>)>,
}

impl ModelBuilder {
    /// Adds the triangle `corners` (counter-clockwise seen from outside) in `color`.
    pub fn triangle(&mut self, corners: [Vec3; 3], color: [f32; 3]) -> Result<(), ImportError> {
        for corner in corners {
            if !corner.is_finite() {
                return Err(ImportError::NonFinite {
                    vertex: self.vertices_seen,
                });
            }
            self.vertices_seen += 1;
        }
        let [a, b, c] = corners;
        let area2 = (b - a).cross(c - a).length_squared();
        let longest = (b - a)
            .length_squared()
            .max((c - b).length_squared())
            .max((a - c).length_squared());
        if area2 <= longest * longest * 1e-14 {
            self.degenerate += 1;
            return Ok(());
        }
        let encoded = match self.encoded {
            Some((linear, encoded)) if linear == color => encoded,
            _ => self.encoded.insert((color, crate::mesh::srgb8(color))).1,
        };
        let corners = [a, b, c].map(|corner| {
            let vertex = crate::mesh::Vertex {
                position: corner.to_array(),
                color: encoded,
            };
            let vertices = &mut self.mesh.vertices;
            *self
                .welded
                .entry(crate::mesh::weld_key(&vertex))
                .or_insert_with(|| {
                    vertices.push(vertex);
                    (vertices.len() - 1) as u32
                })
        });
        self.mesh.indices.extend(corners);
        self.mesh.facing = None;
        Ok(())
    }

    /// The model, welded; refused when it has no triangle to draw.
    pub fn finish(
        mut self,
        format: Format,
        skipped_primitives: u64,
    ) -> Result<ImportedModel, ImportError> {
        let before = self.mesh.triangles();
        // Its corners are welded already: what is left to do is drop the triangles whose
        // corners met, and tidy the parts.
        self.welded = Default::default();
        self.mesh.tidy_welded();
        // Welding drops the triangles whose corners meet: ones the area test let through
        // (found by fuzzing: two equal corners 1e27 from the third overflow the test's squares).
        self.degenerate += before - self.mesh.triangles();
        if self.mesh.triangles() == 0 {
            return Err(ImportError::NoTriangles {
                degenerate: self.degenerate,
            });
        }
        Ok(ImportedModel {
            format,
            mesh: self.mesh,
            degenerate: self.degenerate,
            skipped_primitives,
        })
    }
}

fn import_stl(bytes: &[u8], builder: &mut ModelBuilder) -> Result<(), ImportError> {
    let stl =
        stl_io::read_stl(&mut Cursor::new(bytes)).map_err(|e| ImportError::Stl(e.to_string()))?;
    let vertex = |i: usize| -> Result<Vec3, ImportError> {
        let v = stl.vertices.get(i).ok_or_else(|| {
            ImportError::Stl(format!("a face uses vertex {i}, which does not exist"))
        })?;
        Ok(Vec3::new(v[0], v[1], v[2]))
    };
    for face in &stl.faces {
        let [a, b, c] = face.vertices;
        builder.triangle([vertex(a)?, vertex(b)?, vertex(c)?], DEFAULT_COLOR)?;
    }
    Ok(())
}

fn import_obj(bytes: &[u8], builder: &mut ModelBuilder) -> Result<(), ImportError> {
    // Positions only: a face's position indices are all we read, so normals and texture
    // coordinates need not be unified with them (`single_index`), which would copy vertices.
    let options = tobj::LoadOptions {
        triangulate: true,
        ..Default::default()
    };
    // Materials live in side files that uploads do not carry; parts get the default colour.
    let (models, _materials) = tobj::load_obj_buf(&mut BufReader::new(bytes), &options, |_| {
        Err(tobj::LoadError::OpenFileFailed)
    })
    .map_err(|e| ImportError::Obj(e.to_string()))?;
    for model in &models {
        builder.mesh.begin_part(model.name.clone());
        let positions = &model.mesh.positions;
        let count = positions.len() / 3;
        let vertex = |index: u32, triangle: u64| -> Result<Vec3, ImportError> {
            let i = index as usize;
            if i >= count {
                return Err(ImportError::IndexOutOfRange {
                    triangle,
                    index,
                    vertices: count,
                });
            }
            Ok(Vec3::new(
                positions[3 * i],
                positions[3 * i + 1],
                positions[3 * i + 2],
            ))
        };
        for (t, tri) in model.mesh.indices.chunks_exact(3).enumerate() {
            let t = t as u64;
            builder.triangle(
                [vertex(tri[0], t)?, vertex(tri[1], t)?, vertex(tri[2], t)?],
                DEFAULT_COLOR,
            )?;
        }
    }
    Ok(())
}

/// Parses and validates a glTF or GLB file. gltf-json 1.4's validation reads the accessor a
/// primitive's POSITION names before it checks that the index is in range, and panics on one
/// that is not (found by fuzzing): the attributes' indices are checked first, and any other panic
/// of the validator is a refusal like any other.
fn parse_gltf(bytes: &[u8]) -> Result<gltf::Gltf, ImportError> {
    let invalid = |e: gltf::Error| ImportError::Gltf(e.to_string());
    let unchecked = gltf::Gltf::from_slice_without_validation(bytes).map_err(invalid)?;
    let json = unchecked.document.into_json();
    let accessors = json.accessors.len();
    let dangling = json
        .meshes
        .iter()
        .flat_map(|mesh| &mesh.primitives)
        .flat_map(|primitive| primitive.attributes.values())
        .any(|accessor| accessor.value() >= accessors);
    if dangling {
        return Err(ImportError::Gltf(format!(
            "a primitive names an accessor the file does not have (it has {accessors})"
        )));
    }
    let document = std::panic::catch_unwind(move || gltf::Document::from_json(json))
        .map_err(|_| ImportError::Gltf("the file names something it does not have".into()))?
        .map_err(invalid)?;
    Ok(gltf::Gltf {
        document,
        blob: unchecked.blob,
    })
}

/// Returns how many non-triangle primitives were skipped.
fn import_gltf(
    bytes: &[u8],
    resolve: &mut dyn FnMut(&str) -> Option<Vec<u8>>,
    builder: &mut ModelBuilder,
) -> Result<u64, ImportError> {
    let gltf = parse_gltf(bytes)?;
    let mut blob = gltf.blob.clone();
    let mut buffers = Vec::new();
    for buffer in gltf.document.buffers() {
        let index = buffer.index();
        let data = match buffer.source() {
            gltf::buffer::Source::Bin => blob.take().ok_or_else(|| {
                ImportError::Gltf(format!(
                    "buffer {index} refers to the GLB binary chunk, which is missing"
                ))
            })?,
            gltf::buffer::Source::Uri(uri) => match uri.strip_prefix("data:") {
                Some(data) => decode_data_uri(data).ok_or_else(|| {
                    ImportError::Gltf(format!("buffer {index} has a malformed data: URI"))
                })?,
                None => resolve(uri).ok_or_else(|| ImportError::MissingBuffer {
                    index,
                    uri: uri.to_string(),
                })?,
            },
        };
        if data.len() < buffer.length() {
            return Err(ImportError::ShortBuffer {
                index,
                declared: buffer.length(),
                actual: data.len(),
            });
        }
        buffers.push(data);
    }

    let mut skipped = 0;
    match gltf
        .document
        .default_scene()
        .or_else(|| gltf.document.scenes().next())
    {
        Some(scene) => {
            for node in scene.nodes() {
                visit(
                    &node,
                    Mat4::IDENTITY,
                    None,
                    0,
                    &buffers,
                    builder,
                    &mut skipped,
                )?;
            }
        }
        // No scene at all: draw every mesh where it stands.
        None => {
            for mesh in gltf.document.meshes() {
                mesh_triangles(&mesh, Mat4::IDENTITY, &buffers, builder, &mut skipped)?;
            }
        }
    }
    Ok(skipped)
}

fn decode_data_uri(data: &str) -> Option<Vec<u8>> {
    let (header, payload) = data.split_once(',')?;
    header.ends_with(";base64").then_some(())?;
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()
}

/// Adds `node` as a part within `group` (a group when it has no mesh), and its children
/// within it.
#[allow(clippy::too_many_arguments)]
fn visit(
    node: &gltf::Node,
    parent: Mat4,
    group: Option<u32>,
    depth: usize,
    buffers: &[Vec<u8>],
    builder: &mut ModelBuilder,
    skipped: &mut u64,
) -> Result<(), ImportError> {
    if depth > MAX_NODE_DEPTH {
        return Err(ImportError::Gltf(format!(
            "the node hierarchy is deeper than {MAX_NODE_DEPTH} levels"
        )));
    }
    let world = parent * Mat4::from_cols_array_2d(&node.transform().matrix());
    let mesh = node.mesh();
    let name = node
        .name()
        .or_else(|| mesh.as_ref().and_then(|m| m.name()))
        .map_or_else(|| format!("node {}", node.index()), str::to_string);
    let part = builder.mesh.begin_part_in(name, group);
    if let Some(mesh) = mesh {
        // A mesh used again: a placed copy of its first use, held once, unless the copy would
        // mirror it (its faces would wind the other way) or its first use kept no triangles.
        let copy = builder
            .first_use
            .get(&mesh.index())
            .filter(|&&(_, first, bounds)| {
                bounds.is_some()
                    && crate::mesh::Instance::can_place(world * first.inverse(), bounds)
            })
            .map(|&(of, first, _)| (of, world * first.inverse()));
        match copy {
            Some((of, placement)) => builder.mesh.instances.push(crate::mesh::Instance {
                part,
                of,
                placement,
            }),
            None => {
                mesh_triangles(&mesh, world, buffers, builder, skipped)?;
                if !builder.first_use.contains_key(&mesh.index()) {
                    let kept = builder.mesh.own_triangles(part as usize);
                    let bounds = builder.mesh.bounds_of(kept);
                    builder
                        .first_use
                        .insert(mesh.index(), (part, world, bounds));
                }
            }
        }
    }
    for child in node.children() {
        visit(
            &child,
            world,
            Some(part),
            depth + 1,
            buffers,
            builder,
            skipped,
        )?;
    }
    Ok(())
}

fn mesh_triangles(
    mesh: &gltf::Mesh,
    world: Mat4,
    buffers: &[Vec<u8>],
    builder: &mut ModelBuilder,
    skipped: &mut u64,
) -> Result<(), ImportError> {
    // Mirroring transforms flip winding; face normals come from the corners, so that is fine,
    // but a non-invertible one would flatten the part: refuse it early with a clear message.
    if Mat3::from_mat4(world).determinant() == 0.0 {
        return Err(ImportError::Gltf(
            "a node's transform flattens its mesh (zero scale)".into(),
        ));
    }
    for primitive in mesh.primitives() {
        if primitive.mode() != gltf::mesh::Mode::Triangles {
            *skipped += 1;
            continue;
        }
        let reader = primitive.reader(|buffer| buffers.get(buffer.index()).map(Vec::as_slice));
        let Some(positions) = reader.read_positions() else {
            *skipped += 1;
            continue;
        };
        let positions: Vec<Vec3> = positions
            .map(|p| world.transform_point3(Vec3::from(p)))
            .collect();
        // gltf 1.4's reader takes an index accessor of another component type for a bug of its
        // own (`unreachable!`, found by fuzzing); the file is what is wrong, so it says so.
        if let Some(accessor) = primitive.indices() {
            use gltf::accessor::{DataType, Dimensions};
            let integers = matches!(
                accessor.data_type(),
                DataType::U8 | DataType::U16 | DataType::U32
            );
            if !integers || accessor.dimensions() != Dimensions::Scalar {
                return Err(ImportError::Gltf(format!(
                    "the indices of a primitive are {:?} {:?}: they must be unsigned integer scalars",
                    accessor.data_type(),
                    accessor.dimensions()
                )));
            }
        }
        let indices: Vec<u32> = match reader.read_indices() {
            Some(indices) => indices.into_u32().collect(),
            None => (0..positions.len() as u32).collect(),
        };
        let [r, g, b, _] = primitive
            .material()
            .pbr_metallic_roughness()
            .base_color_factor();
        let color = [r, g, b];
        for (t, tri) in indices.chunks_exact(3).enumerate() {
            let corner = |i: u32| {
                positions
                    .get(i as usize)
                    .copied()
                    .ok_or(ImportError::IndexOutOfRange {
                        triangle: t as u64,
                        index: i,
                        vertices: positions.len(),
                    })
            };
            builder.triangle([corner(tri[0])?, corner(tri[1])?, corner(tri[2])?], color)?;
        }
    }
    Ok(())
}
