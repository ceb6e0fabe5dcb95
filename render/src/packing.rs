//! Triangle indices as the transfer form (`PXM3`) packs them: in blocks of up to
//! [`BLOCK`], each block 16-bit offsets from its lowest index where its indices span no more than
//! 16 bits count, and 32-bit indices where they span more. A part's triangles use vertices near
//! one another, so nearly every block is 16-bit: half the bytes on disk and on the wire.
//!
//! A block: its base (u32 LE; 0 and unused in a 32-bit block), its kind (0: 16-bit offsets from
//! the base, 1: 32-bit indices), then its indices, 16-bit blocks padded to a whole number of
//! 4-byte words. Every block but the last holds exactly [`BLOCK`] indices: a reader knows each
//! block's length from how many indices are still to come.

/// The most indices a block holds: its 8-byte head is 0.1 % of a 16-bit block's bytes.
const BLOCK: usize = 4096;

const SHORT: u32 = 0;
const WIDE: u32 = 1;

/// Appends `indices`, packed, to `out`.
pub(crate) fn pack(indices: &[u32], out: &mut Vec<u8>) {
    out.reserve(indices.len() * 2 + indices.len().div_ceil(BLOCK) * 8);
    for block in indices.chunks(BLOCK) {
        let (lo, hi) = block
            .iter()
            .fold((u32::MAX, 0), |(lo, hi), &i| (lo.min(i), hi.max(i)));
        if hi - lo <= u32::from(u16::MAX) {
            out.extend_from_slice(&lo.to_le_bytes());
            out.extend_from_slice(&SHORT.to_le_bytes());
            for &i in block {
                out.extend_from_slice(&((i - lo) as u16).to_le_bytes());
            }
            if block.len() % 2 == 1 {
                out.extend_from_slice(&[0, 0]);
            }
        } else {
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&WIDE.to_le_bytes());
            out.extend_from_slice(bytemuck::cast_slice(block));
        }
    }
}

/// Reads `count` indices [`pack`]ed at the front of `bytes`, checking that each names one of
/// `vertices` vertices; what follows them. `what` names them in errors.
pub(crate) fn unpack<'a>(
    mut bytes: &'a [u8],
    count: usize,
    vertices: usize,
    what: &str,
) -> Result<(Vec<u32>, &'a [u8]), String> {
    let short = || format!("the mesh's {what} are cut short");
    // No more than the bytes could hold: a count is not trusted with an allocation.
    let mut out = Vec::with_capacity(count.min(bytes.len() / 2));
    while out.len() < count {
        let n = (count - out.len()).min(BLOCK);
        let (head, rest) = bytes.split_first_chunk::<8>().ok_or_else(short)?;
        let base = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let kind = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let (start, base_wide) = (out.len(), u64::from(base));
        let highest = match kind {
            SHORT => {
                let size = (n * 2).next_multiple_of(4);
                let data = rest.get(..size).ok_or_else(short)?;
                let offsets = data[..n * 2]
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]));
                let top = offsets.clone().max().unwrap_or(0);
                out.extend(offsets.map(|o| base.wrapping_add(u32::from(o))));
                bytes = &rest[size..];
                base_wide + u64::from(top)
            }
            WIDE => {
                let data = rest.get(..n * 4).ok_or_else(short)?;
                out.extend(
                    data.chunks_exact(4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
                bytes = &rest[n * 4..];
                u64::from(out[start..].iter().copied().max().unwrap_or(0))
            }
            other => return Err(format!("{other} is not a kind of block of {what}")),
        };
        // Past the vertices, or past what a u32 counts (a base near its end, wrapped).
        if highest >= vertices as u64 || highest > u64::from(u32::MAX) {
            return Err(format!(
                "one of the mesh's {what} names a vertex it does not have"
            ));
        }
    }
    Ok((out, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_come_back_as_they_went_in_half_the_bytes_where_they_are_near() {
        // Two parts of local indices (two blocks, then one and a bit far from 0), then a block
        // that spans more than 16 bits.
        let mut indices: Vec<u32> = (0..2 * BLOCK as u32).map(|i| (i * 7) % 3_000).collect();
        indices.extend((0..5_001).map(|i| 1_000_000 + (i * 13) % 60_000));
        let wide: Vec<u32> = (0..BLOCK as u32).map(|i| i * 40).collect();
        let mut packed = Vec::new();
        pack(&indices, &mut packed);
        let near = packed.len();
        assert_eq!(
            near,
            indices.len() * 2 + 8 * 4 + 2,
            "16 bits an index, 8 a block"
        );
        pack(&wide, &mut packed);
        assert_eq!(packed.len(), near + 8 + BLOCK * 4);
        packed.extend_from_slice(b"rest");

        let (back, rest) = unpack(&packed, indices.len(), 1_100_000, "indices").unwrap();
        assert_eq!(back, indices);
        let (back, rest) = unpack(rest, wide.len(), 1_100_000, "indices").unwrap();
        assert_eq!(back, wide);
        assert_eq!(rest, b"rest");
    }

    #[test]
    fn bad_packings_are_errors() {
        let mut packed = Vec::new();
        pack(&[0, 1, 70_000], &mut packed);
        assert!(unpack(&packed, 3, 70_001, "indices").is_ok());
        // An index past the vertices, in either kind of block.
        assert!(unpack(&packed, 3, 70_000, "indices").is_err());
        let mut short = Vec::new();
        pack(&[5, 6, 7], &mut short);
        assert!(unpack(&short, 3, 7, "indices").is_err());
        // Cut short, more asked for than there are, an unknown kind, a base past u32.
        assert!(unpack(&short[..short.len() - 4], 3, 8, "indices").is_err());
        assert!(unpack(&short, 5, 8, "indices").is_err());
        let mut unknown = short.clone();
        unknown[4] = 2;
        assert!(unpack(&unknown, 3, 8, "indices").is_err());
        let mut wrapping = short.clone();
        wrapping[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpack(&wrapping, 3, usize::MAX, "indices").is_err());
    }

    #[test]
    fn a_block_spanning_65_535_is_16_bit_and_one_spanning_65_536_is_not() {
        for (indices, bytes) in [([0, 65_535, 7], 8 + 8), ([0, 65_536, 7], 8 + 12)] {
            let mut packed = Vec::new();
            pack(&indices, &mut packed);
            assert_eq!(packed.len(), bytes, "{indices:?}");
            let (back, rest) = unpack(&packed, 3, 65_537, "indices").unwrap();
            assert_eq!(back, indices);
            assert!(rest.is_empty());
        }
    }
}
