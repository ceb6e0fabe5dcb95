//! Triangle meshes as the renderer consumes them.
//!
//! CAD parts read best flat-shaded. The shader derives each face's normal from the positions, so
//! vertices carry only position and colour and neighbouring faces can share them: a welded mesh
//! has about a sixth of the vertices, which is what a CPU rasteriser's (single-threaded) vertex
//! stage is bound by.

use rustc_hash::FxHashMap;

use bytemuck::{Pod, Zeroable};
use glam::{Mat4, Vec3};
use parallax_core::review::PATH_SEPARATOR;

/// One corner of a triangle, laid out as the vertex shader reads it: 16 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct Vertex {
    pub position: [f32; 3],
    /// The base colour of the face, sRGB-encoded in 8 bits a channel as colour textures are
    /// (the shader decodes it), then 255 (read, but never used): what a CAD colour needs in a quarter of the bytes of
    /// linear floats. [`Vertex::new`] and [`Vertex::linear_color`] convert.
    pub color: [u8; 4],
}

impl Vertex {
    /// A corner at `position` in the linear RGB colour `linear` (each channel clamped to 0..=1).
    pub fn new(position: [f32; 3], linear: [f32; 3]) -> Self {
        Self {
            position,
            color: srgb8(linear),
        }
    }

    /// Its colour as linear RGB.
    pub fn linear_color(&self) -> [f32; 3] {
        let [r, g, b, _] = self.color;
        [r, g, b].map(|c| srgb_to_linear(f32::from(c) / 255.0))
    }
}

/// Linear RGB as the sRGB bytes a [`Vertex`] holds, alpha 255 (IEC 61966-2-1's transfer
/// function, rounded to the nearest step).
pub fn srgb8(linear: [f32; 3]) -> [u8; 4] {
    let encode = |c: f32| {
        let c = if c.is_nan() { 0.0 } else { c.clamp(0.0, 1.0) };
        let encoded = if c <= 0.003_130_8 {
            12.92 * c
        } else {
            1.055 * c.powf(1.0 / 2.4) - 0.055
        };
        (encoded * 255.0).round() as u8
    };
    let [r, g, b] = linear.map(encode);
    [r, g, b, 255]
}

/// An sRGB-encoded channel (0..=1) as linear light; the shader's `srgb_to_linear` is the same.
fn srgb_to_linear(c: f32) -> f32 {
    if c <= 0.040_45 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// How a mesh's triangles face, as [`Mesh::orientation`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// A closed surface whose triangles wind counter-clockwise seen from outside.
    Outward,
    /// A closed surface wound the other way round.
    Inward,
    /// Open, or not wound consistently: both sides of every triangle may be seen.
    Open,
}

/// Axis-aligned bounds of a mesh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min: Vec3,
    pub max: Vec3,
}

impl Bounds {
    /// The smallest box holding every point; `None` for none.
    pub fn of_points(mut points: impl Iterator<Item = Vec3>) -> Option<Self> {
        let first = points.next()?;
        let (min, max) = points.fold((first, first), |(lo, hi), p| (lo.min(p), hi.max(p)));
        Some(Self { min, max })
    }

    pub fn center(&self) -> Vec3 {
        (self.min + self.max) * 0.5
    }

    /// The box's eight corners.
    pub fn corners(&self) -> [Vec3; 8] {
        let (lo, hi) = (self.min, self.max);
        std::array::from_fn(|i| {
            Vec3::new(
                if i & 1 == 0 { lo.x } else { hi.x },
                if i & 2 == 0 { lo.y } else { hi.y },
                if i & 4 == 0 { lo.z } else { hi.z },
            )
        })
    }

    /// The smallest box holding both.
    pub fn union(&self, other: &Bounds) -> Bounds {
        Bounds {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    /// The smallest box holding this one moved by `placement`.
    pub fn placed(&self, placement: Mat4) -> Bounds {
        let corners = self.corners().map(|c| placement.transform_point3(c));
        Bounds::of_points(corners.into_iter()).unwrap_or(*self)
    }

    /// Radius of the sphere around the box: what a camera must fit to see all of it.
    pub fn radius(&self) -> f32 {
        (self.max - self.min).length() * 0.5
    }
}

/// The transfer form's magic: `PXM3` holds vertices as [`Vertex`] does (16 bytes) and indices
/// packed (16 bits where they can be, [`crate::packing`]); `PXM2` (files converted before that)
/// holds vertices as linear floats (24 bytes) and indices as u32, and `PXM1` (before parts had
/// groups) lists no part's parent either.
const TRANSFER_MAGIC: &[u8; 4] = b"PXM3";
const TRANSFER_MAGIC_FLOAT: &[u8; 4] = b"PXM2";
const TRANSFER_MAGIC_FLAT: &[u8; 4] = b"PXM1";

/// A vertex as `PXM1` and `PXM2` hold it: position and linear RGB.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct FloatVertex {
    position: [f32; 3],
    color: [f32; 3],
}

/// How the transfer form's header says its vertices, indices and parts are laid out.
#[derive(Clone, Copy)]
struct Layout {
    /// Vertices as [`Vertex`] and indices packed (`PXM3`), not as [`FloatVertex`] and u32.
    compact: bool,
    /// Parts list their parents.
    tree: bool,
}

impl Layout {
    fn vertex_bytes(self) -> usize {
        match self.compact {
            true => std::mem::size_of::<Vertex>(),
            false => std::mem::size_of::<FloatVertex>(),
        }
    }

    /// `count` indices (`what`, in errors) at the front of `bytes`, each below `vertices`, and
    /// what follows them.
    fn indices<'a>(
        self,
        bytes: &'a [u8],
        count: usize,
        vertices: usize,
        what: &str,
    ) -> Result<(Vec<u32>, &'a [u8]), String> {
        if self.compact {
            return crate::packing::unpack(bytes, count, vertices, what);
        }
        let data = bytes
            .get(..count * 4)
            .ok_or_else(|| format!("the mesh's {what} are cut short"))?;
        let indices: Vec<u32> = bytemuck::pod_collect_to_vec(data);
        if indices.iter().any(|&i| i as usize >= vertices) {
            return Err(format!(
                "one of the mesh's {what} names a vertex it does not have"
            ));
        }
        Ok((indices, &bytes[count * 4..]))
    }

    /// `bytes`, a whole number of vertices in this layout, as [`Vertex`]es; an error names the
    /// first whose position is not finite (what an importer made is; anything else was not
    /// made by one, found by fuzzing).
    fn vertices(self, bytes: &[u8]) -> Result<Vec<Vertex>, String> {
        let vertices: Vec<Vertex> = match self.compact {
            true => bytemuck::pod_collect_to_vec(bytes),
            false => bytes
                .chunks_exact(std::mem::size_of::<FloatVertex>())
                .map(|chunk| {
                    let old: FloatVertex = bytemuck::pod_read_unaligned(chunk);
                    match old.color.iter().all(|c| c.is_finite()) {
                        true => Ok(Vertex::new(old.position, old.color)),
                        false => Err("a vertex has a colour that is not finite".to_string()),
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        match vertices
            .iter()
            .position(|v| !v.position.iter().all(|c| c.is_finite()))
        {
            Some(bad) => Err(format!("vertex {bad} has a number that is not finite")),
            None => Ok(vertices),
        }
    }
}

/// A part's parent in the transfer form when it has none.
const NO_PARENT: u32 = u32::MAX;

/// The next little-endian word of a section of the transfer form, taken off the front of
/// `rest`; an error naming the section (`what`) when it is cut short.
fn take_word(rest: &mut &[u8], what: &str) -> Result<u32, String> {
    let (head, tail) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| format!("the mesh's {what} section is cut short"))?;
    *rest = tail;
    Ok(u32::from_le_bytes(*head))
}

/// The transfer form's header: vertex and index counts, and the layout.
fn read_header(bytes: &[u8]) -> Result<(usize, usize, Layout), String> {
    let missing = "not a Parallax mesh: the PXM3 header is missing";
    let header = bytes.get(..12).ok_or(missing)?;
    let (compact, tree) = match &header[..4] {
        m if m == TRANSFER_MAGIC => (true, true),
        m if m == TRANSFER_MAGIC_FLOAT => (false, true),
        m if m == TRANSFER_MAGIC_FLAT => (false, false),
        _ => return Err(missing.into()),
    };
    let count = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    Ok((
        count(4) as usize,
        count(8) as usize,
        Layout { compact, tree },
    ))
}

/// The part list of the transfer form (count; each first triangle, parent when `tree`, name
/// length and UTF-8 name), and what follows it. A parent must come before its part.
fn read_parts(mut rest: &[u8], tree: bool) -> Result<(Vec<Part>, &[u8]), String> {
    let mut take = |n: usize| -> Result<&[u8], String> {
        if rest.len() < n {
            return Err("the mesh's part list is cut short".to_string());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let count = word(take(4)?);
    let mut parts = Vec::new();
    for index in 0..count {
        let first_triangle = word(take(4)?);
        let parent = match tree {
            true => Some(word(take(4)?)).filter(|&p| p != NO_PARENT),
            false => None,
        };
        if parent.is_some_and(|p| p >= index) {
            return Err(format!(
                "part {index} names a parent that does not come before it"
            ));
        }
        let length = word(take(4)?) as usize;
        let name = std::str::from_utf8(take(length)?)
            .map_err(|_| "a part name is not UTF-8".to_string())?
            .to_string();
        parts.push(Part {
            name,
            first_triangle,
            parent,
        });
    }
    Ok((parts, rest))
}

/// A named piece of a model (a glTF node, an OBJ object, a sample's component): the triangles
/// from `first_triangle` up to the next part's, and the parts that name it their parent. A
/// group has no triangles of its own. What a pick names, by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub first_triangle: u32,
    /// The index of the part it is in, which comes before it; `None` at the root.
    pub parent: Option<u32>,
}

/// The path of `parts[index]` from the root of their tree.
pub fn path_in(parts: &[Part], index: usize) -> String {
    let mut names = vec![parts[index].name.as_str()];
    let mut at = parts[index].parent;
    while let Some(parent) = at {
        let part = &parts[parent as usize];
        names.push(&part.name);
        at = part.parent;
    }
    names.reverse();
    names.join(&PATH_SEPARATOR.to_string())
}

/// What vertices that weld together share: their position and colour by bit pattern, with -0.0
/// made 0.0 (adding zero does that): a radius of 0 times a negative cosine must still meet the
/// pole.
pub(crate) fn weld_key(vertex: &Vertex) -> [u32; 4] {
    let [x, y, z] = vertex.position.map(|x| (x + 0.0).to_bits());
    [x, y, z, u32::from_le_bytes(vertex.color)]
}

/// An indexed triangle list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    pub vertices: Vec<Vertex>,
    pub indices: Vec<u32>,
    /// In triangle order, a group before the parts in it; empty when the model has no named
    /// parts.
    pub parts: Vec<Part>,
    /// Coarser stand-ins for parts' triangles (see [`crate::lod`]), finest first for each part;
    /// empty until made.
    pub levels: Vec<Level>,
    /// The levels' triangles, over the same vertices.
    pub level_indices: Vec<u32>,
    /// How its triangles face, once found (at conversion, where it is carried in the transfer
    /// form, so a render host need not look at every edge of a big model again); `None` until
    /// then. Adding or welding triangles forgets it.
    pub facing: Option<Orientation>,
    /// Parts drawn as placed copies of other parts' triangles, held once.
    pub instances: Vec<Instance>,
}

/// A part drawn as a placed copy of another part's own triangles: a bolt used forty times is
/// held once. The part it is has no triangles of its own; the polygon budget counts the copies
/// ([`Mesh::drawn_triangles`]), memory the triangles held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Instance {
    /// The part it is, in [`Mesh::parts`].
    pub part: u32,
    /// The part whose own triangles it draws.
    pub of: u32,
    /// From where those triangles are to where this copy is, in model space: affine, and it
    /// does not mirror ([`Instance::can_place`], checked where instances are read or made), so
    /// the copy's faces wind as the original's.
    pub placement: Mat4,
}

impl Instance {
    /// Whether `placement` can place a copy: an affine map (its last row 0 0 0 1) that neither
    /// flattens nor mirrors (the determinant of its linear part is positive) and keeps a box
    /// of `bounds` finite.
    pub fn can_place(placement: Mat4, bounds: Option<Bounds>) -> bool {
        placement.is_finite()
            && placement.row(3) == glam::Vec4::W
            && glam::Mat3::from_mat4(placement).determinant() > 0.0
            && bounds.is_none_or(|b| {
                let placed = b.placed(placement);
                placed.min.is_finite() && placed.max.is_finite()
            })
    }
}

/// An instance as a renderer or a pick draws it: its part, the range of [`Mesh::draw_ranges`]
/// it copies, and its placement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placed {
    pub part: usize,
    pub range: usize,
    pub placement: Mat4,
}

/// A level of detail: a part's triangles simplified, drawn instead of them where the eye is far
/// enough away that the difference is under a pixel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Which part it stands in for: an index into [`Mesh::draw_ranges`].
    pub range: u32,
    /// Its triangles in [`Mesh::level_indices`]: the first index and how many.
    pub first_index: u32,
    pub index_count: u32,
    /// How far its surface may be from the part's, at most, in model units.
    pub error: f32,
}

/// The tag of the levels' section at the end of the transfer form.
const LEVELS_MAGIC: &[u8; 4] = b"LOD1";
/// The tag of the section after it that says how the triangles face ([`Mesh::facing`]).
const FACING_MAGIC: &[u8; 4] = b"FACE";
/// The tag of the last section: the instances ([`Mesh::instances`]).
const INSTANCES_MAGIC: &[u8; 4] = b"INST";

impl Mesh {
    pub fn triangles(&self) -> u64 {
        (self.indices.len() / 3) as u64
    }

    /// The triangles drawn: those held, and each instance's copies.
    pub fn drawn_triangles(&self) -> u64 {
        self.triangles()
            + self
                .instances
                .iter()
                .map(|i| u64::from(self.own_triangles(i.of as usize).len() as u32))
                .sum::<u64>()
    }

    /// Part `index`'s own triangles.
    pub fn own_triangles(&self, index: usize) -> std::ops::Range<u32> {
        self.parts
            .get(index)
            .map_or(0..0, |p| p.first_triangle..self.part_end(index))
    }

    /// The instances as drawn: each with the range of [`Mesh::draw_ranges`] it copies.
    pub fn placed(&self) -> Vec<Placed> {
        let range_of: FxHashMap<usize, usize> = self
            .draw_ranges()
            .iter()
            .enumerate()
            .filter_map(|(range, (part, _))| Some(((*part)?, range)))
            .collect();
        self.instances
            .iter()
            .filter_map(|instance| {
                let range = *range_of.get(&(instance.of as usize))?;
                Some(Placed {
                    part: instance.part as usize,
                    range,
                    placement: instance.placement,
                })
            })
            .collect()
    }

    /// About how much memory the mesh holds, in bytes: what a cache bounded in bytes weighs it by.
    pub fn heap_bytes(&self) -> u64 {
        let vertices = self.vertices.capacity() * std::mem::size_of::<Vertex>();
        let indices = self.indices.capacity() * std::mem::size_of::<u32>();
        let parts: usize = self
            .parts
            .iter()
            .map(|p| std::mem::size_of::<Part>() + p.name.capacity())
            .sum();
        let levels = self.levels.capacity() * std::mem::size_of::<Level>()
            + self.level_indices.capacity() * std::mem::size_of::<u32>();
        let instances = self.instances.capacity() * std::mem::size_of::<Instance>();
        (std::mem::size_of::<Self>() + vertices + indices + parts + levels + instances) as u64
    }

    /// Triangles pushed from now on belong to part `name`, at the root of the part tree.
    pub fn begin_part(&mut self, name: impl Into<String>) -> u32 {
        self.begin_part_in(name, None)
    }

    /// Triangles pushed from now on belong to part `name` within part `parent` (an index
    /// [`Mesh::begin_part`] returned). Parts left without triangles, their own or their
    /// children's, are dropped when the mesh is welded.
    pub fn begin_part_in(&mut self, name: impl Into<String>, parent: Option<u32>) -> u32 {
        let index = self.parts.len() as u32;
        debug_assert!(parent.is_none_or(|p| p < index), "a parent comes first");
        self.parts.push(Part {
            name: name.into(),
            first_triangle: self.triangles() as u32,
            parent: parent.filter(|&p| p < index),
        });
        index
    }

    /// The path of part `index`: its groups' names and its own, joined by
    /// [`PATH_SEPARATOR`].
    pub fn path_of(&self, index: usize) -> String {
        path_in(&self.parts, index)
    }

    /// The path of the part triangle `triangle` belongs to.
    pub fn part_of(&self, triangle: usize) -> Option<String> {
        let after = self
            .parts
            .partition_point(|p| p.first_triangle as usize <= triangle);
        after.checked_sub(1).map(|i| self.path_of(i))
    }

    /// Where part `index`'s own triangles end: where the next part's begin.
    fn part_end(&self, index: usize) -> u32 {
        self.parts
            .get(index + 1)
            .map_or(self.triangles() as u32, |p| p.first_triangle)
    }

    /// The mesh's triangles as a renderer draws them, part by part: each part with triangles of
    /// its own (its index in [`Mesh::parts`] and its triangles), and those before the first
    /// part (or all of them, in a model without parts) as one more, unnamed.
    pub fn draw_ranges(&self) -> Vec<(Option<usize>, std::ops::Range<u32>)> {
        let triangles = self.triangles() as u32;
        let mut ranges = Vec::with_capacity(self.parts.len() + 1);
        let first_named = self.parts.first().map_or(triangles, |p| p.first_triangle);
        if first_named > 0 || triangles == 0 {
            ranges.push((None, 0..first_named));
        }
        for (i, part) in self.parts.iter().enumerate() {
            let end = self.part_end(i);
            if part.first_triangle < end {
                ranges.push((Some(i), part.first_triangle..end));
            }
        }
        ranges
    }

    /// The bounds of `triangles`; `None` for none.
    pub fn bounds_of(&self, triangles: std::ops::Range<u32>) -> Option<Bounds> {
        let indices = self
            .indices
            .get(triangles.start as usize * 3..triangles.end as usize * 3)
            .unwrap_or_default();
        let points = indices
            .iter()
            .filter_map(|&i| self.vertices.get(i as usize))
            .map(|v| Vec3::from(v.position));
        Bounds::of_points(points)
    }

    /// The centre of the bounds of `triangles`; the origin for none.
    pub fn centre_of(&self, triangles: std::ops::Range<u32>) -> Vec3 {
        self.bounds_of(triangles).map_or(Vec3::ZERO, |b| b.center())
    }

    /// Each part's triangles, its own and those of the parts within it, and their bounds.
    pub fn part_extents(&self) -> Vec<(u64, Option<Bounds>)> {
        let mut extents: Vec<(u64, Option<Bounds>)> = (0..self.parts.len())
            .map(|i| {
                let (first, end) = (self.parts[i].first_triangle, self.part_end(i));
                (
                    u64::from(end.saturating_sub(first)),
                    self.bounds_of(first..end),
                )
            })
            .collect();
        for instance in &self.instances {
            let of = self.own_triangles(instance.of as usize);
            let bounds = self.bounds_of_instance(instance);
            if let Some(extent) = extents.get_mut(instance.part as usize) {
                *extent = (u64::from(of.len() as u32), bounds);
            }
        }
        // Children come after their parents: fold each into its parent, last first.
        for i in (0..self.parts.len()).rev() {
            if let Some(parent) = self.parts[i].parent {
                let (count, bounds) = extents[i];
                let into = &mut extents[parent as usize];
                into.0 += count;
                into.1 = match (into.1, bounds) {
                    (Some(a), Some(b)) => Some(Bounds {
                        min: a.min.min(b.min),
                        max: a.max.max(b.max),
                    }),
                    (a, b) => a.or(b),
                };
            }
        }
        extents
    }

    /// Drops parts without triangles in them, and makes paths unambiguous: a separator in a
    /// name becomes `∕`, and a name its sibling already has gets a number, `Bolt (2)`.
    /// `kept_before(t)` is how many of the first `t` triangles are still there.
    fn tidy_parts(&mut self, kept_before: impl Fn(u32) -> u32) {
        let triangles = self.triangles() as u32;
        let mut within = vec![0u32; self.parts.len()];
        for (i, part) in self.parts.iter().enumerate() {
            let end = self
                .parts
                .get(i + 1)
                .map_or(triangles, |next| kept_before(next.first_triangle));
            within[i] = end.saturating_sub(kept_before(part.first_triangle));
        }
        // An instance's part holds the copies: it stays while what it copies does.
        for instance in &self.instances {
            if let Some(&copied) = within.get(instance.of as usize)
                && let Some(count) = within.get_mut(instance.part as usize)
            {
                *count += copied;
            }
        }
        for i in (0..self.parts.len()).rev() {
            if let Some(parent) = self.parts[i].parent {
                within[parent as usize] += within[i];
            }
        }
        let mut new_index = vec![None; self.parts.len()];
        let mut taken = std::collections::HashSet::new();
        let mut kept = Vec::with_capacity(self.parts.len());
        for (i, mut part) in std::mem::take(&mut self.parts).into_iter().enumerate() {
            if within[i] == 0 {
                continue;
            }
            part.first_triangle = kept_before(part.first_triangle);
            part.parent = part.parent.and_then(|p| new_index[p as usize]);
            let plain = part.name.replace(PATH_SEPARATOR, "\u{2215}");
            let mut name = plain.clone();
            let mut n = 1;
            while !taken.insert((part.parent, name.clone())) {
                n += 1;
                name = format!("{plain} ({n})");
            }
            part.name = name;
            new_index[i] = Some(kept.len() as u32);
            kept.push(part);
        }
        self.parts = kept;
        // Renumbered; and a copy of a part whose own triangles all went (their corners met when
        // welded) is no copy: its part keeps only its children.
        let mut copies = std::mem::take(&mut self.instances);
        copies.retain_mut(|instance| {
            let renumbered = new_index
                .get(instance.part as usize)
                .copied()
                .flatten()
                .zip(new_index.get(instance.of as usize).copied().flatten());
            let Some((part, of)) = renumbered else {
                return false;
            };
            (instance.part, instance.of) = (part, of);
            !self.own_triangles(of as usize).is_empty()
                && self.own_triangles(part as usize).is_empty()
        });
        self.instances = copies;
    }

    /// Bounds of all vertices and of every instance's ([`Mesh::bounds_of_instance`]); `None`
    /// for an empty mesh.
    pub fn bounds(&self) -> Option<Bounds> {
        let held = Bounds::of_points(self.vertices.iter().map(|v| Vec3::from(v.position)));
        // Each part copied once, however many copies.
        let mut copied = FxHashMap::default();
        let placed = self.instances.iter().filter_map(|instance| {
            let of = *copied
                .entry(instance.of)
                .or_insert_with(|| self.bounds_of(self.own_triangles(instance.of as usize)));
            of.map(|b| b.placed(instance.placement))
        });
        held.into_iter().chain(placed).reduce(|a, b| a.union(&b))
    }

    /// The bounds of `instance`'s copy: the box of the triangles it copies, placed. (Turned, it
    /// holds the copy with room to spare; finding the copy's own would mean placing every
    /// vertex of every copy, each time the model's bounds are asked for.)
    pub fn bounds_of_instance(&self, instance: &Instance) -> Option<Bounds> {
        self.bounds_of(self.own_triangles(instance.of as usize))
            .map(|b| b.placed(instance.placement))
    }

    /// Adds triangle `a b c` (counter-clockwise seen from its front) in `color`.
    pub fn push_triangle(&mut self, a: Vec3, b: Vec3, c: Vec3, color: [f32; 3]) {
        self.facing = None;
        let base = self.vertices.len() as u32;
        for p in [a, b, c] {
            self.vertices.push(Vertex::new(p.to_array(), color));
        }
        self.indices.extend([base, base + 1, base + 2]);
    }

    /// The face normal of triangle `t` (unit length; zero for a triangle without area).
    pub fn face_normal(&self, t: usize) -> Vec3 {
        let corner =
            |i: usize| Vec3::from(self.vertices[self.indices[3 * t + i] as usize].position);
        (corner(1) - corner(0))
            .cross(corner(2) - corner(0))
            .normalize_or_zero()
    }

    /// The mesh as a binary STL file, as CAD tools write them (face normals included).
    pub fn to_binary_stl(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(84 + 50 * self.indices.len() / 3);
        out.extend_from_slice(&[0u8; 80]);
        out.extend_from_slice(&(self.triangles() as u32).to_le_bytes());
        for (t, triangle) in self.indices.chunks_exact(3).enumerate() {
            let normal = self.face_normal(t).to_array();
            let corners = triangle.iter().map(|&i| self.vertices[i as usize].position);
            for c in std::iter::once(normal).chain(corners).flatten() {
                out.extend_from_slice(&c.to_le_bytes());
            }
            out.extend_from_slice(&[0u8; 2]);
        }
        out
    }

    /// The mesh in Parallax's transfer form, how a coordinator hands a model to a render host:
    /// `PXM3`, vertex and index counts (u32 LE), then the vertices as they sit in memory (a
    /// vertex: position as three little-endian f32, colour as four sRGB bytes, the last ignored),
    /// and the indices packed ([`crate::packing`]: mostly 16 bits each), then the parts (count; each
    /// first triangle, parent index or `u32::MAX`, name length as u32 and UTF-8 name), then, when
    /// the mesh has levels of detail, `LOD1`, their count and each level (part, first index, index
    /// count as u32, error as f32), and the count of their indices and the indices, packed.
    /// Loading it is a copy of the vertices and a pass over the indices.
    pub fn to_bytes(&self) -> Vec<u8> {
        let vertices: &[u8] = bytemuck::cast_slice(&self.vertices);
        let mut out = Vec::with_capacity(12 + vertices.len() + self.indices.len() * 2);
        out.extend_from_slice(TRANSFER_MAGIC);
        out.extend_from_slice(&(self.vertices.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.indices.len() as u32).to_le_bytes());
        out.extend_from_slice(vertices);
        crate::packing::pack(&self.indices, &mut out);
        out.extend_from_slice(&(self.parts.len() as u32).to_le_bytes());
        for part in &self.parts {
            out.extend_from_slice(&part.first_triangle.to_le_bytes());
            out.extend_from_slice(&part.parent.unwrap_or(NO_PARENT).to_le_bytes());
            out.extend_from_slice(&(part.name.len() as u32).to_le_bytes());
            out.extend_from_slice(part.name.as_bytes());
        }
        if !self.levels.is_empty() {
            out.extend_from_slice(LEVELS_MAGIC);
            out.extend_from_slice(&(self.levels.len() as u32).to_le_bytes());
            for level in &self.levels {
                for word in [level.range, level.first_index, level.index_count] {
                    out.extend_from_slice(&word.to_le_bytes());
                }
                out.extend_from_slice(&level.error.to_le_bytes());
            }
            out.extend_from_slice(&(self.level_indices.len() as u32).to_le_bytes());
            crate::packing::pack(&self.level_indices, &mut out);
        }
        if let Some(facing) = self.facing {
            out.extend_from_slice(FACING_MAGIC);
            let code: u32 = match facing {
                Orientation::Open => 0,
                Orientation::Outward => 1,
                Orientation::Inward => 2,
            };
            out.extend_from_slice(&code.to_le_bytes());
        }
        if !self.instances.is_empty() {
            out.extend_from_slice(INSTANCES_MAGIC);
            out.extend_from_slice(&(self.instances.len() as u32).to_le_bytes());
            for instance in &self.instances {
                out.extend_from_slice(&instance.part.to_le_bytes());
                out.extend_from_slice(&instance.of.to_le_bytes());
                out.extend_from_slice(bytemuck::cast_slice(&instance.placement.to_cols_array()));
            }
        }
        out
    }

    /// Reads [`Mesh::to_bytes`]; checks the lengths and that every index names a vertex.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let (vertex_count, index_count, layout) = read_header(bytes)?;
        let vertex_bytes = vertex_count * layout.vertex_bytes();
        if bytes.len() < 12 + vertex_bytes || index_count % 3 != 0 {
            return Err(format!(
                "a mesh of {vertex_count} vertices and {index_count} indices cannot be {} bytes",
                bytes.len()
            ));
        }
        let vertices = layout.vertices(&bytes[12..12 + vertex_bytes])?;
        let (indices, rest) = layout.indices(
            &bytes[12 + vertex_bytes..],
            index_count,
            vertex_count,
            "indices",
        )?;
        let (parts, rest) = read_parts(rest, layout.tree)?;
        // Each part's triangles run to the next part's first: in order, and within the mesh.
        let triangles = (index_count / 3) as u32;
        if parts
            .windows(2)
            .any(|w| w[0].first_triangle > w[1].first_triangle)
            || parts.iter().any(|p| p.first_triangle > triangles)
        {
            return Err("the mesh's parts are out of order or past its triangles".into());
        }
        let mut mesh = Self {
            vertices,
            indices,
            parts,
            ..Self::default()
        };
        let mut rest = mesh.read_levels(rest, layout)?;
        if let Some(mut facing) = rest.strip_prefix(FACING_MAGIC.as_slice()) {
            mesh.facing = Some(match take_word(&mut facing, "facing")? {
                0 => Orientation::Open,
                1 => Orientation::Outward,
                2 => Orientation::Inward,
                other => return Err(format!("{other} is not a way triangles face")),
            });
            rest = facing;
        }
        let rest = mesh.read_instances(rest)?;
        if !rest.is_empty() {
            return Err(format!("{} bytes follow the mesh", rest.len()));
        }
        Ok(mesh)
    }

    /// Reads the levels' section of the transfer form, if `rest` begins with one, into this
    /// mesh; checks that each level stands in for a part the mesh has, that its triangles are
    /// among the level indices and that they name vertices the mesh has. What follows it.
    fn read_levels<'a>(&mut self, rest: &'a [u8], layout: Layout) -> Result<&'a [u8], String> {
        let Some(mut rest) = rest.strip_prefix(LEVELS_MAGIC.as_slice()) else {
            return Ok(rest);
        };
        let mut word = || take_word(&mut rest, "levels of detail");
        let count = word()?;
        let ranges = self.draw_ranges().len() as u32;
        let mut levels = Vec::new();
        for _ in 0..count {
            let [range, first_index, index_count, error] = [word()?, word()?, word()?, word()?];
            let error = f32::from_bits(error);
            if range >= ranges || !error.is_finite() || error < 0.0 || index_count % 3 != 0 {
                return Err(format!(
                    "a level of detail of part {range} (of {ranges}), error {error} and {index_count} indices is not one"
                ));
            }
            levels.push(Level {
                range,
                first_index,
                index_count,
                error,
            });
        }
        let index_count = word()? as usize;
        let (level_indices, rest) =
            layout.indices(rest, index_count, self.vertices.len(), "levels' indices")?;
        if levels
            .iter()
            .any(|l| l.first_index as usize + l.index_count as usize > level_indices.len())
        {
            return Err("a level of detail names triangles the mesh does not have".into());
        }
        // In order and apart, as conversion writes them: an upload reads each level's
        // triangles, so levels that overlapped could make it read the same ones without end.
        let mut end = 0u64;
        for level in &levels {
            if u64::from(level.first_index) < end {
                return Err("the mesh's levels of detail overlap or are out of order".into());
            }
            end = u64::from(level.first_index) + u64::from(level.index_count);
        }
        self.levels = levels;
        self.level_indices = level_indices;
        Ok(rest)
    }

    /// Reads the instances' section of the transfer form, if `rest` begins with one; checks
    /// that each is a part without triangles of its own copying one with some, placed without
    /// mirroring. What follows it.
    fn read_instances<'a>(&mut self, rest: &'a [u8]) -> Result<&'a [u8], String> {
        let Some(mut rest) = rest.strip_prefix(INSTANCES_MAGIC.as_slice()) else {
            return Ok(rest);
        };
        let mut word = || take_word(&mut rest, "instances");
        let count = word()?;
        let mut instances = Vec::new();
        let mut copies = rustc_hash::FxHashSet::default();
        for _ in 0..count {
            let (part, of) = (word()?, word()?);
            let mut columns = [0f32; 16];
            for c in &mut columns {
                *c = f32::from_bits(word()?);
            }
            let placement = Mat4::from_cols_array(&columns);
            let (own, copied) = (
                self.own_triangles(part as usize),
                self.own_triangles(of as usize),
            );
            let fine = (part as usize) < self.parts.len()
                && own.is_empty()
                && !copied.is_empty()
                && Instance::can_place(placement, self.bounds_of(copied))
                && copies.insert(part);
            if !fine {
                return Err(format!(
                    "instance part {part} of part {of} is not a part without triangles (and no \
                     other copy) copying one with some, placed without mirroring"
                ));
            }
            instances.push(Instance {
                part,
                of,
                placement,
            });
        }
        self.instances = instances;
        Ok(rest)
    }

    /// Merges vertices with the same position and colour, so faces share them, and tidies the
    /// part tree (see [`Mesh::tidy_parts`]). Call it once a mesh is complete; what it draws is
    /// unchanged.
    pub fn weld(&mut self) {
        let mut seen: FxHashMap<[u32; 4], u32> =
            FxHashMap::with_capacity_and_hasher(self.vertices.len() / 4, Default::default());
        let mut welded = Vec::with_capacity(self.vertices.len() / 4);
        let remap: Vec<u32> = self
            .vertices
            .iter()
            .map(|v| {
                *seen.entry(weld_key(v)).or_insert_with(|| {
                    welded.push(*v);
                    (welded.len() - 1) as u32
                })
            })
            .collect();
        drop(seen);
        self.vertices = welded;
        self.drop_collapsed(|i| remap[i as usize]);
    }

    /// What welding does besides merging vertices, for a mesh whose vertices are all different
    /// already (one built with them welded as they came): drops the triangles whose corners are
    /// one vertex, and tidies the part tree.
    pub fn tidy_welded(&mut self) {
        self.drop_collapsed(|i| i);
    }

    /// Renumbers each triangle's corners by `vertex_of` and drops those left without area (two
    /// corners one vertex), then tidies the part tree.
    fn drop_collapsed(&mut self, vertex_of: impl Fn(u32) -> u32) {
        // Levels name vertices and parts by number, which this changes: they are made after;
        // and how the triangles face is found again.
        self.levels.clear();
        self.level_indices.clear();
        self.facing = None;
        let mut indices = Vec::with_capacity(self.indices.len());
        // How many triangles are kept before each: parts start where they did among those.
        let mut kept_before = Vec::with_capacity(self.indices.len() / 3 + 1);
        kept_before.push(0u32);
        for triangle in self.indices.chunks_exact(3) {
            let [a, b, c] = [0, 1, 2].map(|i| vertex_of(triangle[i]));
            // Corners that welded together leave a triangle without area: nothing to draw.
            if a != b && b != c && c != a {
                indices.extend([a, b, c]);
            }
            kept_before.push((indices.len() / 3) as u32);
        }
        self.indices = indices;
        let last = kept_before.len() - 1;
        self.tidy_parts(|t| kept_before[(t as usize).min(last)]);
    }

    /// Whether every edge of the mesh is met by exactly two triangles, which run along it in
    /// opposite directions: a closed surface wound consistently. Each edge is filed under its
    /// lower vertex (counted, then placed: two passes over the triangles, 4 bytes an edge), so a
    /// big model needs no hash map of all its edges.
    fn is_closed(&self) -> bool {
        let vertices = self.vertices.len();
        if self.indices.is_empty()
            || vertices >= 1 << 31
            || self.indices.len() > u32::MAX as usize
            || self.indices.iter().any(|&i| i as usize >= vertices)
        {
            return false;
        }
        let edges = || {
            self.indices
                .chunks_exact(3)
                .flat_map(|t| [(t[0], t[1]), (t[1], t[2]), (t[2], t[0])])
        };
        let mut starts = vec![0u32; vertices + 1];
        for (a, b) in edges() {
            starts[a.min(b) as usize + 1] += 1;
        }
        for v in 0..vertices {
            starts[v + 1] += starts[v];
        }
        // Under each lower vertex: the higher one, its top bit set when the edge runs upwards.
        let mut filed = vec![0u32; self.indices.len()];
        let mut next = starts.clone();
        for (a, b) in edges() {
            let (low, high) = (a.min(b) as usize, a.max(b));
            filed[next[low] as usize] = high | (u32::from(a < b) << 31);
            next[low] += 1;
        }
        (0..vertices).all(|v| {
            let list = &mut filed[starts[v] as usize..starts[v + 1] as usize];
            list.sort_unstable();
            // Sorted, each neighbour's downward edge comes among the first half, its upward one
            // in the second: every neighbour exactly once in each.
            let half = list.len() / 2;
            list.len().is_multiple_of(2)
                && list[..half]
                    .iter()
                    .zip(&list[half..])
                    .all(|(&down, &up)| down & (1 << 31) == 0 && up == down | (1 << 31))
                && list[..half].windows(2).all(|w| w[0] != w[1])
        })
    }

    /// Which way a welded mesh's faces point, if it is a closed surface wound consistently:
    /// every edge is used once in each direction. Only then may back faces be skipped.
    pub fn orientation(&self) -> Orientation {
        if let Some(facing) = self.facing {
            return facing;
        }
        if !self.is_closed() {
            return Orientation::Open;
        }
        // Six times the enclosed volume: positive when faces wind counter-clockwise outward.
        let volume: f64 = self
            .indices
            .chunks_exact(3)
            .map(|t| {
                let [a, b, c] =
                    [0, 1, 2].map(|i| Vec3::from(self.vertices[t[i] as usize].position).as_dvec3());
                a.dot(b.cross(c))
            })
            .sum();
        if volume > 0.0 {
            Orientation::Outward
        } else {
            Orientation::Inward
        }
    }

    /// This mesh, welded.
    pub fn welded(mut self) -> Self {
        self.weld();
        self
    }

    /// Adds the planar quad `a b c d` (counter-clockwise seen from its front).
    pub fn push_quad(&mut self, a: Vec3, b: Vec3, c: Vec3, d: Vec3, color: [f32; 3]) {
        self.push_triangle(a, b, c, color);
        self.push_triangle(a, c, d, color);
    }

    /// Adds an axis-aligned box.
    pub fn push_box(&mut self, min: Vec3, max: Vec3, color: [f32; 3]) {
        let corner = |x: bool, y: bool, z: bool| {
            Vec3::new(
                if x { max.x } else { min.x },
                if y { max.y } else { min.y },
                if z { max.z } else { min.z },
            )
        };
        let (f, t) = (false, true);
        // Each face counter-clockwise seen from outside.
        let faces = [
            [
                corner(t, f, f),
                corner(t, t, f),
                corner(t, t, t),
                corner(t, f, t),
            ], // +x
            [
                corner(f, f, f),
                corner(f, f, t),
                corner(f, t, t),
                corner(f, t, f),
            ], // -x
            [
                corner(f, t, f),
                corner(f, t, t),
                corner(t, t, t),
                corner(t, t, f),
            ], // +y
            [
                corner(f, f, f),
                corner(t, f, f),
                corner(t, f, t),
                corner(f, f, t),
            ], // -y
            [
                corner(f, f, t),
                corner(t, f, t),
                corner(t, t, t),
                corner(f, t, t),
            ], // +z
            [
                corner(f, f, f),
                corner(f, t, f),
                corner(t, t, f),
                corner(t, f, f),
            ], // -z
        ];
        for [a, b, c, d] in faces {
            self.push_quad(a, b, c, d, color);
        }
    }

    /// Adds a closed prism: the polygon `outline` in the XZ plane (counter-clockwise seen from +Y),
    /// extruded from `y0` to `y1`. The outline must be convex for its caps to be right.
    pub fn push_prism(&mut self, outline: &[[f32; 2]], y0: f32, y1: f32, color: [f32; 3]) {
        let at = |p: [f32; 2], y: f32| Vec3::new(p[0], y, p[1]);
        for i in 1..outline.len().saturating_sub(1) {
            let (a, b, c) = (outline[0], outline[i], outline[i + 1]);
            self.push_triangle(at(a, y1), at(b, y1), at(c, y1), color);
            self.push_triangle(at(a, y0), at(c, y0), at(b, y0), color);
        }
        for (i, &p) in outline.iter().enumerate() {
            let q = outline[(i + 1) % outline.len()];
            self.push_quad(at(p, y0), at(q, y0), at(q, y1), at(p, y1), color);
        }
    }

    /// Adds a solid of revolution about the Y axis: `profile` is a list of `(radius, y)` points,
    /// swept through `segments` steps.
    pub fn push_lathe(&mut self, profile: &[[f32; 2]], segments: u32, color: [f32; 3]) {
        let ring = |k: u32| {
            // The last step ends exactly where the first began, so the seam welds shut.
            let angle = (k % segments) as f32 / segments as f32 * std::f32::consts::TAU;
            (angle.cos(), angle.sin())
        };
        for k in 0..segments {
            let ((c0, s0), (c1, s1)) = (ring(k), ring(k + 1));
            for pair in profile.windows(2) {
                let ([r0, y0], [r1, y1]) = (pair[0], pair[1]);
                // Counter-clockwise seen from outside, for a profile that runs bottom to top.
                self.push_quad(
                    Vec3::new(r0 * c0, y0, r0 * s0),
                    Vec3::new(r1 * c0, y1, r1 * s0),
                    Vec3::new(r1 * c1, y1, r1 * s1),
                    Vec3::new(r0 * c1, y0, r0 * s1),
                    color,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_8_bit_colour_comes_back_from_linear_as_it_was() {
        for c in 0..=255u8 {
            let vertex = Vertex {
                position: [0.0; 3],
                color: [c, c, c, 255],
            };
            assert_eq!(srgb8(vertex.linear_color()), vertex.color);
        }
        assert_eq!(srgb8([0.5, -1.0, f32::NAN]), [188, 0, 0, 255]);
        assert_eq!(srgb8([2.0, 1.0, 0.0]), [255, 255, 0, 255]);
    }

    #[test]
    fn the_transfer_form_round_trips_and_refuses_damage() {
        let mut mesh = Mesh::default();
        mesh.begin_part("Cube");
        mesh.push_box(Vec3::ZERO, Vec3::ONE, [0.2, 0.4, 0.6]);
        mesh.begin_part("Tile");
        mesh.push_quad(Vec3::X, Vec3::Y, Vec3::Z, Vec3::ONE, [1.0; 3]);
        let mesh = mesh.welded();
        assert_eq!(mesh.part_of(0).as_deref(), Some("Cube"));
        assert_eq!(mesh.part_of(11).as_deref(), Some("Cube"));
        assert_eq!(mesh.part_of(12).as_deref(), Some("Tile"));
        let bytes = mesh.to_bytes();
        assert_eq!(Mesh::from_bytes(&bytes).unwrap(), mesh);
        assert!(Mesh::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(Mesh::from_bytes(b"PXM0").is_err());
        let mut bad_index = mesh.clone();
        bad_index.parts.clear();
        let mut bad_index = bad_index.to_bytes();
        let last = bad_index.len() - 8;
        bad_index[last..last + 4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(Mesh::from_bytes(&bad_index).is_err());
        // How it faces travels once found, and is what a host then goes by; adding triangles
        // forgets it.
        let mut faced = crate::samples::gear();
        faced.facing = Some(Orientation::Inward);
        let bytes = faced.to_bytes();
        let read = Mesh::from_bytes(&bytes).unwrap();
        assert_eq!((read.orientation(), &read), (Orientation::Inward, &faced));
        let mut bad_facing = bytes.clone();
        let at = bad_facing.len() - 4;
        bad_facing[at] = 7;
        assert!(Mesh::from_bytes(&bad_facing).is_err());
        assert!(Mesh::from_bytes(&bytes[..bytes.len() - 2]).is_err());
        faced.push_triangle(Vec3::ZERO, Vec3::X, Vec3::Y, [1.0; 3]);
        assert_eq!(faced.orientation(), Orientation::Open);
    }

    #[test]
    fn welding_tidies_the_part_tree_and_files_from_before_groups_still_load() {
        let mut mesh = Mesh::default();
        let frame = mesh.begin_part("Frame");
        mesh.begin_part_in("Empty", Some(frame));
        let rail = mesh.begin_part_in("Rail", Some(frame));
        mesh.push_box(Vec3::ZERO, Vec3::ONE, [0.5; 3]);
        mesh.begin_part_in("Bolt", Some(rail));
        mesh.push_box(Vec3::ONE, Vec3::splat(2.0), [0.5; 3]);
        mesh.begin_part_in("Bolt", Some(rail));
        mesh.push_box(Vec3::splat(2.0), Vec3::splat(3.0), [0.5; 3]);
        mesh.begin_part("Lights");
        mesh.begin_part("Rail/Cap");
        mesh.push_box(Vec3::splat(3.0), Vec3::splat(4.0), [0.5; 3]);
        let mesh = mesh.welded();
        let paths: Vec<String> = (0..mesh.parts.len()).map(|i| mesh.path_of(i)).collect();
        assert_eq!(
            paths,
            [
                "Frame",
                "Frame/Rail",
                "Frame/Rail/Bolt",
                "Frame/Rail/Bolt (2)",
                "Rail\u{2215}Cap"
            ],
            "empty parts dropped, paths made unambiguous"
        );
        assert_eq!(mesh.part_of(0).as_deref(), Some("Frame/Rail"));
        assert_eq!(mesh.part_of(30).as_deref(), Some("Frame/Rail/Bolt (2)"));
        let extents = mesh.part_extents();
        assert_eq!(extents[0].0, 36, "the frame holds three boxes");
        assert_eq!(extents[1].1.unwrap().max, Vec3::splat(3.0));
        assert_eq!(Mesh::from_bytes(&mesh.to_bytes()).unwrap(), mesh);

        // The same mesh as versions before 8-bit colours stored it: linear floats.
        let bytes = mesh.to_bytes();
        let float_geometry = |magic: &[u8; 4]| {
            let mut out = Vec::from(*magic);
            out.extend_from_slice(&bytes[4..12]);
            for v in &mesh.vertices {
                let old = FloatVertex {
                    position: v.position,
                    color: v.linear_color(),
                };
                out.extend_from_slice(bytemuck::bytes_of(&old));
            }
            out.extend_from_slice(bytemuck::cast_slice(&mesh.indices));
            let mut packed = Vec::new();
            crate::packing::pack(&mesh.indices, &mut packed);
            (out, 12 + mesh.vertices.len() * 16 + packed.len())
        };
        assert!(
            mesh.levels.is_empty(),
            "what follows the indices is the same in both"
        );
        let (mut floats, geometry) = float_geometry(TRANSFER_MAGIC_FLOAT);
        floats.extend_from_slice(&bytes[geometry..]);
        assert_eq!(Mesh::from_bytes(&floats).unwrap(), mesh, "the same colours");

        // And in the flat form versions before that stored: every part at the root.
        let (mut flat, _) = float_geometry(TRANSFER_MAGIC_FLAT);
        flat.extend_from_slice(&(mesh.parts.len() as u32).to_le_bytes());
        for part in &mesh.parts {
            flat.extend_from_slice(&part.first_triangle.to_le_bytes());
            flat.extend_from_slice(&(part.name.len() as u32).to_le_bytes());
            flat.extend_from_slice(part.name.as_bytes());
        }
        let old = Mesh::from_bytes(&flat).unwrap();
        assert_eq!(old.part_of(30).as_deref(), Some("Bolt (2)"));
        assert!(old.parts.iter().all(|p| p.parent.is_none()));

        // A parent that does not come before its part is refused.
        let mut looped = mesh.clone();
        looped.parts[1].parent = Some(3);
        assert!(Mesh::from_bytes(&looped.to_bytes()).is_err());
        // Parts whose triangles would run backwards, or past the mesh's.
        let mut backwards = mesh.clone();
        backwards.parts[0].first_triangle = backwards.parts[1].first_triangle + 1;
        assert!(Mesh::from_bytes(&backwards.to_bytes()).is_err());
        let mut beyond = mesh.clone();
        beyond.parts.last_mut().unwrap().first_triangle = mesh.triangles() as u32 + 1;
        assert!(Mesh::from_bytes(&beyond.to_bytes()).is_err());
    }

    #[test]
    fn a_box_has_twelve_outward_triangles() {
        let mut mesh = Mesh::default();
        mesh.push_box(Vec3::ZERO, Vec3::new(2.0, 4.0, 6.0), [1.0; 3]);
        assert_eq!(mesh.triangles(), 12);
        let bounds = mesh.bounds().unwrap();
        assert_eq!(bounds.center(), Vec3::new(1.0, 2.0, 3.0));
        // Every face is wound to face away from the centre.
        for t in 0..12 {
            let v = mesh.vertices[mesh.indices[3 * t] as usize];
            let outward = Vec3::from(v.position) - bounds.center();
            assert!(mesh.face_normal(t).dot(outward) > 0.0);
        }
        // Welding shares the eight corners without changing a face.
        let faces: Vec<Vec3> = (0..12).map(|t| mesh.face_normal(t)).collect();
        mesh.weld();
        assert_eq!((mesh.vertices.len(), mesh.triangles()), (8, 12));
        assert_eq!(
            (0..12).map(|t| mesh.face_normal(t)).collect::<Vec<_>>(),
            faces
        );
        assert_eq!(mesh.orientation(), Orientation::Outward);
    }

    #[test]
    fn only_closed_consistently_wound_meshes_have_an_orientation() {
        let mut turned = Mesh::default();
        turned.push_lathe(
            &[[0.0, 0.0], [2.0, 0.0], [2.0, 3.0], [0.0, 3.0]],
            16,
            [1.0; 3],
        );
        let turned = turned.welded();
        assert_eq!(
            turned.orientation(),
            Orientation::Outward,
            "the seam and the poles weld shut"
        );

        let mut flipped = turned.clone();
        for t in flipped.indices.chunks_exact_mut(3) {
            t.swap(1, 2);
        }
        assert_eq!(flipped.orientation(), Orientation::Inward);

        let mut open = turned.clone();
        open.indices.truncate(open.indices.len() - 3);
        assert_eq!(open.orientation(), Orientation::Open, "a missing face");

        let mut doubled = turned.clone();
        doubled.indices.extend_from_within(..);
        assert_eq!(
            doubled.orientation(),
            Orientation::Open,
            "every edge met by four faces"
        );

        let mut mixed = turned;
        mixed.indices[..3].rotate_left(0);
        mixed.indices.swap(1, 2);
        assert_eq!(
            mixed.orientation(),
            Orientation::Open,
            "one face wound the wrong way"
        );
    }

    #[test]
    fn an_empty_mesh_has_no_bounds() {
        assert_eq!(Mesh::default().bounds(), None);
    }

    #[test]
    fn a_mesh_without_parts_round_trips_and_every_cut_is_refused() {
        let mut mesh = Mesh::default();
        mesh.push_box(Vec3::ZERO, Vec3::ONE, [0.5; 3]);
        let bytes = mesh.to_bytes();
        assert_eq!(Mesh::from_bytes(&bytes).unwrap(), mesh);
        // Cut anywhere, down to the header: an error, never a panic or a shorter mesh.
        for end in 0..bytes.len() {
            assert!(Mesh::from_bytes(&bytes[..end]).is_err(), "cut at {end}");
        }
        // Enough bytes, but indices that are not whole triangles.
        let mut ragged = bytes.clone();
        ragged[8..12].copy_from_slice(&35u32.to_le_bytes());
        assert!(Mesh::from_bytes(&ragged).is_err());
    }

    #[test]
    fn corners_take_the_maximum_where_their_index_has_the_axis_bit() {
        let bounds = Bounds {
            min: Vec3::new(0.0, 1.0, 2.0),
            max: Vec3::new(3.0, 5.0, 7.0),
        };
        let corners = bounds.corners();
        assert_eq!(corners[0], bounds.min);
        assert_eq!(corners[7], bounds.max);
        assert_eq!(corners[1], Vec3::new(3.0, 1.0, 2.0));
        assert_eq!(corners[2], Vec3::new(0.0, 5.0, 2.0));
        assert_eq!(corners[4], Vec3::new(0.0, 1.0, 7.0));
    }

    #[test]
    fn heap_bytes_counts_vertices_indices_and_part_names() {
        let mut mesh = Mesh::default();
        mesh.begin_part("Housing");
        mesh.push_box(Vec3::ZERO, Vec3::ONE, [0.5; 3]);
        mesh.vertices.shrink_to_fit();
        mesh.indices.shrink_to_fit();
        let expected = std::mem::size_of::<Mesh>()
            + 36 * std::mem::size_of::<Vertex>()
            + 36 * 4
            + std::mem::size_of::<Part>()
            + mesh.parts[0].name.capacity();
        assert_eq!(mesh.heap_bytes(), expected as u64);
    }

    #[test]
    fn a_face_normal_follows_the_winding_wherever_the_triangle_is() {
        let mut mesh = Mesh::default();
        let (a, b, c) = (
            Vec3::new(1.0, 1.0, 1.0),
            Vec3::new(3.0, 1.0, 1.0),
            Vec3::new(1.0, 4.0, 1.0),
        );
        mesh.push_triangle(a, b, c, [1.0; 3]);
        mesh.push_triangle(a, c, b, [1.0; 3]);
        assert_eq!(mesh.face_normal(0), Vec3::Z);
        assert_eq!(mesh.face_normal(1), Vec3::NEG_Z);
    }

    /// The volume the triangles enclose (positive when wound outward).
    fn volume(mesh: &Mesh) -> f32 {
        mesh.indices
            .chunks_exact(3)
            .map(|t| {
                let [a, b, c] =
                    [0, 1, 2].map(|i| Vec3::from(mesh.vertices[t[i] as usize].position));
                a.dot(b.cross(c)) / 6.0
            })
            .sum()
    }

    #[test]
    fn a_prism_is_a_closed_solid_of_its_outline_times_its_height() {
        // A regular hexagon of side 1: area 3√3/2.
        let hexagon: Vec<[f32; 2]> = (0..6)
            .map(|k| {
                let angle = -(k as f32) * std::f32::consts::FRAC_PI_3;
                [angle.cos(), angle.sin()]
            })
            .collect();
        let mut mesh = Mesh::default();
        mesh.push_prism(&hexagon, 1.0, 3.0, [1.0; 3]);
        assert_eq!(mesh.triangles(), 2 * 4 + 6 * 2);
        let expected = 3.0 * 3f32.sqrt() / 2.0 * 2.0;
        assert!((volume(&mesh) - expected).abs() < 1e-4, "{}", volume(&mesh));
        assert_eq!(mesh.welded().orientation(), Orientation::Outward);
    }
}
