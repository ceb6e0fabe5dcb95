//! How a model's triangles sit on the GPU: 16-bit indices wherever they fit, 32-bit elsewhere.
//!
//! A model's parts follow one another in its index list, and a part's corners are mostly its
//! own vertices, near one another in the vertex list. So consecutive parts are gathered into
//! chunks whose vertices span fewer than 65,535 places, and a chunk's indices are held as 16
//! bits counted from its first vertex (the draw's base vertex): half the bytes of 32-bit
//! indices. A part too big for any chunk keeps 32-bit indices in a second buffer. A part's
//! levels of detail sit in the same buffer as its triangles, counted from the same base.

use wgpu::WriteOnly;

use crate::mesh::Mesh;

/// The widest span of vertices a 16-bit chunk covers: every index from its base up to
/// `u16::MAX - 1`. (`u16::MAX` is a strip's restart index; whether a backend ever treats it so
/// in a list is not worth finding out for one vertex in 65,536.)
const SHORT_SPAN: u32 = u16::MAX as u32;

/// Where a run of indices is drawn from: which buffer, and the vertex they count from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    /// In the 32-bit buffer (counted from vertex 0), not the 16-bit one.
    pub wide: bool,
    pub base_vertex: i32,
}

/// Where [`Mesh::draw_ranges`] and [`Mesh::levels`] sit in a model's index buffers.
pub(crate) struct IndexLayout {
    /// For each draw range: its source and its first index there.
    pub ranges: Vec<(Source, u32)>,
    /// For each level: its first index in its range's buffer.
    pub levels: Vec<u32>,
    /// How many indices each buffer holds: 16-bit, 32-bit.
    short: usize,
    long: usize,
}

impl IndexLayout {
    /// Gathers `mesh`'s draw ranges into chunks and places them and their levels; all of them
    /// in the 32-bit buffer unless the device draws from a `base_vertex`.
    pub fn of(mesh: &Mesh, base_vertex: bool) -> Self {
        let ranges = mesh.draw_ranges();
        // The lowest and highest vertex each range's triangles and levels use.
        let mut spans = vec![(u32::MAX, 0u32); ranges.len()];
        let widen = |span: &mut (u32, u32), indices: &[u32]| {
            for &i in indices {
                span.0 = span.0.min(i);
                span.1 = span.1.max(i);
            }
        };
        for ((_, triangles), span) in ranges.iter().zip(&mut spans) {
            widen(
                span,
                range_of(&mesh.indices, triangles.start * 3, triangles.len() * 3),
            );
        }
        for level in &mesh.levels {
            if let Some(span) = spans.get_mut(level.range as usize) {
                let indices = range_of(
                    &mesh.level_indices,
                    level.first_index,
                    level.index_count as usize,
                );
                widen(span, indices);
            }
        }
        // Consecutive ranges into chunks, each chunk its lowest vertex; `None` for a wide range.
        let mut chunk_of = Vec::with_capacity(ranges.len());
        let mut chunks: Vec<(u32, u32)> = Vec::new();
        for &(lo, hi) in &spans {
            let (lo, hi) = if lo > hi { (0, 0) } else { (lo, hi) };
            if hi - lo >= SHORT_SPAN || !base_vertex {
                chunk_of.push(None);
                continue;
            }
            match chunks.last_mut() {
                Some((clo, chi)) if (*chi).max(hi) - (*clo).min(lo) < SHORT_SPAN => {
                    (*clo, *chi) = ((*clo).min(lo), (*chi).max(hi));
                }
                _ => chunks.push((lo, hi)),
            }
            chunk_of.push(Some(chunks.len() - 1));
        }
        let source = |range: usize| match chunk_of[range] {
            Some(chunk) => Source {
                wide: false,
                base_vertex: chunks[chunk].0 as i32,
            },
            None => Source {
                wide: true,
                base_vertex: 0,
            },
        };
        // The ranges' triangles in order in their buffers, then the levels.
        let (mut short, mut long) = (0usize, 0usize);
        let mut next = |source: Source, count: usize| {
            let end = if source.wide { &mut long } else { &mut short };
            let first = *end as u32;
            *end += count;
            first
        };
        let placed = ranges
            .iter()
            .enumerate()
            .map(|(k, (_, triangles))| (source(k), next(source(k), triangles.len() * 3)))
            .collect();
        let levels = mesh
            .levels
            .iter()
            .map(|level| match (level.range as usize) < ranges.len() {
                true => next(source(level.range as usize), level.index_count as usize),
                false => 0,
            })
            .collect();
        Self {
            ranges: placed,
            levels,
            short,
            long,
        }
    }

    /// The bytes of the two buffers, 16-bit and 32-bit.
    pub fn bytes(&self) -> (u64, u64) {
        // A buffer written at creation is a whole number of 4-byte words.
        (
            (self.short as u64 * 2).next_multiple_of(4),
            self.long as u64 * 4,
        )
    }

    /// Writes `mesh`'s indices (little-endian) where this layout places them, into the 16-bit
    /// buffer `short` and the 32-bit buffer `long`, sized as [`Self::bytes`] says: mapped GPU
    /// memory, which is written, never read.
    pub fn write(&self, mesh: &Mesh, mut short: WriteOnly<[u8]>, mut long: WriteOnly<[u8]>) {
        let mut put = |source: Source, first: u32, indices: &[u32]| {
            let first = first as usize;
            if source.wide {
                long.slice(first * 4..(first + indices.len()) * 4)
                    .copy_from_slice(bytemuck::cast_slice(indices));
                return;
            }
            let base = source.base_vertex as u32;
            let (pairs, _) = short
                .slice(first * 2..(first + indices.len()) * 2)
                .into_chunks::<2>();
            pairs.write_iter(indices.iter().map(|&i| ((i - base) as u16).to_le_bytes()));
        };
        for ((_, triangles), &(source, first)) in mesh.draw_ranges().iter().zip(&self.ranges) {
            put(
                source,
                first,
                range_of(&mesh.indices, triangles.start * 3, triangles.len() * 3),
            );
        }
        for (level, &first) in mesh.levels.iter().zip(&self.levels) {
            if let Some(&(source, _)) = self.ranges.get(level.range as usize) {
                let indices = range_of(
                    &mesh.level_indices,
                    level.first_index,
                    level.index_count as usize,
                );
                put(source, first, indices);
            }
        }
    }
}

/// `count` indices of `indices` from `first`; as many as there are.
fn range_of(indices: &[u32], first: u32, count: usize) -> &[u32] {
    let first = (first as usize).min(indices.len());
    &indices[first..(first + count).min(indices.len())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use glam::Vec3;

    /// `parts` parts of `boxes` unwelded boxes each (36 vertices a box, 36 indices).
    fn boxes(parts: usize, boxes: usize) -> Mesh {
        let mut mesh = Mesh::default();
        for p in 0..parts {
            mesh.begin_part(format!("part {p}"));
            for b in 0..boxes {
                let at = Vec3::new(p as f32, b as f32, 0.0);
                mesh.push_box(at, at + 0.5, [0.5; 3]);
            }
        }
        mesh
    }

    /// `mesh`'s indices written as `layout` places them: 16-bit, 32-bit.
    fn written(mesh: &Mesh, layout: &IndexLayout) -> (Vec<u16>, Vec<u32>) {
        let (short_bytes, long_bytes) = layout.bytes();
        let mut short = vec![0u8; short_bytes as usize];
        let mut long = vec![0u8; long_bytes as usize];
        layout.write(
            mesh,
            WriteOnly::from_mut(&mut short[..]),
            WriteOnly::from_mut(&mut long[..]),
        );
        (
            bytemuck::pod_collect_to_vec(&short),
            bytemuck::pod_collect_to_vec(&long),
        )
    }

    fn unpacked(mesh: &Mesh, layout: &IndexLayout) -> Vec<u32> {
        let (short, long) = written(mesh, layout);
        let ranges = mesh.draw_ranges();
        let mut out = Vec::new();
        for ((_, triangles), &(source, first)) in ranges.iter().zip(&layout.ranges) {
            let count = triangles.len() * 3;
            let first = first as usize;
            match source.wide {
                true => out.extend(&long[first..first + count]),
                false => out.extend(
                    short[first..first + count]
                        .iter()
                        .map(|&i| u32::from(i) + source.base_vertex as u32),
                ),
            }
        }
        out
    }

    #[test]
    fn small_parts_share_chunks_of_16_bit_indices_that_draw_the_same_triangles() {
        // 40 parts of 100 boxes: 3,600 vertices a part, 18 parts to a chunk.
        let mesh = boxes(40, 100);
        let layout = IndexLayout::of(&mesh, true);
        assert_eq!(unpacked(&mesh, &layout), mesh.indices);
        assert!(layout.ranges.iter().all(|(s, _)| !s.wide));
        let bases: std::collections::BTreeSet<i32> =
            layout.ranges.iter().map(|(s, _)| s.base_vertex).collect();
        assert_eq!(
            bases.into_iter().collect::<Vec<_>>(),
            [0, 18 * 3600, 36 * 3600]
        );
        assert_eq!(layout.bytes(), (mesh.indices.len() as u64 * 2, 0));
    }

    #[test]
    fn a_part_past_16_bits_keeps_32_bit_indices_beside_small_ones() {
        let mut mesh = boxes(2, 10);
        mesh.begin_part("big");
        for b in 0..3000 {
            let at = Vec3::new(0.0, 0.0, b as f32);
            mesh.push_box(at, at + 0.5, [0.5; 3]);
        }
        mesh.begin_part("small after");
        mesh.push_box(Vec3::ZERO, Vec3::ONE, [0.5; 3]);
        let layout = IndexLayout::of(&mesh, true);
        let wide: Vec<bool> = layout.ranges.iter().map(|(s, _)| s.wide).collect();
        assert_eq!(wide, [false, false, true, false]);
        assert_eq!(unpacked(&mesh, &layout), mesh.indices);
        let small = (2 * 10 + 1) * 36;
        assert_eq!(
            layout.bytes(),
            ((small as u64 * 2).next_multiple_of(4), 3000 * 36 * 4)
        );
    }

    #[test]
    fn levels_count_from_their_parts_base() {
        let mut mesh = crate::samples::assembly(200_000);
        crate::lod::make_levels(&mut mesh);
        assert!(!mesh.levels.is_empty());
        let layout = IndexLayout::of(&mesh, true);
        let (short, long) = written(&mesh, &layout);
        assert!(long.is_empty(), "the generated assembly's parts are small");
        assert_eq!(layout.levels.len(), mesh.levels.len());
        assert_eq!(
            unpacked(&mesh, &layout),
            mesh.indices,
            "levels leave parts alone"
        );
        for (level, &first) in mesh.levels.iter().zip(&layout.levels) {
            let (source, _) = layout.ranges[level.range as usize];
            let held = &mesh.level_indices
                [level.first_index as usize..(level.first_index + level.index_count) as usize];
            let drawn: Vec<u32> = short[first as usize..first as usize + held.len()]
                .iter()
                .map(|&i| u32::from(i) + source.base_vertex as u32)
                .collect();
            assert_eq!(drawn, held);
        }
    }

    #[test]
    fn a_span_of_65_534_is_16_bit_one_of_65_535_is_not_and_an_odd_count_is_padded() {
        let mut mesh = Mesh::default();
        mesh.vertices = (0..65_536)
            .map(|i| crate::mesh::Vertex::new([i as f32, (i % 7) as f32, 0.0], [0.5; 3]))
            .collect();
        mesh.begin_part("widest 16-bit");
        mesh.indices.extend([0, 1, 65_534]);
        mesh.begin_part("one too wide");
        mesh.indices.extend([0, 1, 65_535]);
        let layout = IndexLayout::of(&mesh, true);
        let wide: Vec<bool> = layout.ranges.iter().map(|(s, _)| s.wide).collect();
        assert_eq!(wide, [false, true]);
        // Three 16-bit indices are 6 bytes, written in two 4-byte words.
        assert_eq!(layout.bytes(), (8, 12));
        assert_eq!(unpacked(&mesh, &layout), mesh.indices);
        // A device that cannot draw from a base vertex gets 32-bit indices only.
        let plain = IndexLayout::of(&mesh, false);
        assert!(
            plain
                .ranges
                .iter()
                .all(|(s, _)| s.wide && s.base_vertex == 0)
        );
        assert_eq!(plain.bytes(), (0, 24));
        assert_eq!(unpacked(&mesh, &plain), mesh.indices);
    }
}
